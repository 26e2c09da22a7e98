//! Signed, self-contained RADIUS `State` for challenge/response.
//!
//! The server answers the first Access-Request with an Access-Challenge carrying a State; the
//! client sends it back with the OTP. Instead of remembering each State in a store that every
//! server instance would have to share, the State carries its own expiry and a nonce and is
//! signed with HMAC-SHA256 under a key all instances share, bound to the user and client it
//! was issued for. Any instance with the key can then verify it. Replay is refused per
//! instance by [`UsedStates`], or across instances through the shared store
//! ([`crate::redeem`]).
//!
//! Wire layout (42 octets, fits the 253-octet attribute):
//! `version (1) ‖ context (1) ‖ expiry unix seconds (8, big-endian) ‖ nonce (16) ‖ tag (16)`,
//! where `tag = HMAC-SHA256(key, version ‖ context ‖ expiry ‖ nonce ‖ len(user) ‖ user ‖
//! len(client) ‖ client)` truncated to 16 octets, lengths as 8-octet big-endian integers.
//!
//! The signed *context* says what the challenge is for: which [`Method`] the follow-up answers
//! (a typed OTP, an SMS code that was sent, a MAC over a shown input) and whether a first factor
//! (a directory password) already passed. A State issued for one purpose cannot be used for
//! another. The MAC input shown for a `mac` challenge is derived from the State's nonce under the
//! key ([`StateSigner::mac_input`]), so it need not be carried and cannot be swapped.
//!
//! Time (`now_unix`) and randomness (`rng`) are parameters so tests control them.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use common::Method;
use hmac::{Hmac, Mac};
use rand::CryptoRng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Format version; a change of layout or MAC input gets a new number.
pub const STATE_VERSION: u8 = 2;
/// Shortest key accepted: 128 bits.
pub const MIN_KEY_LEN: usize = 16;
/// Length of the random nonce.
pub const NONCE_LEN: usize = 16;
/// Length of the truncated HMAC-SHA256 tag.
pub const TAG_LEN: usize = 16;
/// Length of an issued State.
pub const STATE_LEN: usize = 2 + 8 + NONCE_LEN + TAG_LEN;
/// Digits in a MAC input shown for dynamic linking.
pub const MAC_INPUT_DIGITS: usize = 8;

/// What a challenge is for; signed into the State.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    /// The method the follow-up answers.
    pub method: Method,
    /// Whether the first factor (a directory password) has already passed.
    pub first_factor: bool,
}

impl Context {
    /// A challenge for a typed OTP, nothing else passed yet.
    pub const OTP: Context = Context {
        method: Method::Otp,
        first_factor: false,
    };

    /// A challenge for `method`.
    pub fn new(method: Method) -> Self {
        Self {
            method,
            first_factor: false,
        }
    }

    fn to_byte(self) -> u8 {
        self.method.code() | if self.first_factor { 0x80 } else { 0 }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(Self {
            method: Method::from_code(b & 0x7f)?,
            first_factor: b & 0x80 != 0,
        })
    }
}

/// Why a State key was refused or a State was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The configured key is too short; fix the configuration.
    #[error("State key is {length} bytes; at least {MIN_KEY_LEN} are required")]
    KeyTooShort {
        /// Length of the key given.
        length: usize,
    },
    /// Not a State this server issued (wrong length or version): reject the request.
    #[error("State is malformed: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Forged, altered, signed with another key, or issued for another user or client:
    /// reject the request.
    #[error(
        "State signature does not verify (forged, altered, other key, or issued for another user or client)"
    )]
    BadSignature,
    /// Genuine but too old: reject; the user starts over.
    #[error("State expired at {expires_at} (now {now})")]
    Expired {
        /// Expiry carried in the State, unix seconds.
        expires_at: u64,
        /// The time it was checked at, unix seconds.
        now: u64,
    },
    /// Genuine and fresh but already redeemed on this instance: reject (a replay).
    #[error("State has already been used")]
    Replayed,
    /// HMAC-SHA256 refused the key; cannot happen (HMAC takes any key length), kept as an
    /// error so issuing has no panic path.
    #[error("HMAC-SHA256 could not be keyed with the State key")]
    HmacUnavailable,
    /// The shared store (`[shared] redis_url`) that records single use could not be asked:
    /// reject (a State is never accepted without being marked used).
    #[error("State single use could not be recorded: {0}")]
    Store(String),
    /// Too many unexpired States are remembered to take one more; refused rather than
    /// forgetting one, which would allow its replay. Reject; the user starts over.
    #[error("replay cache is full ({capacity} unexpired States); State refused")]
    ReplayCacheFull {
        /// The configured capacity.
        capacity: usize,
    },
}

impl StateError {
    /// A short fixed word for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            StateError::KeyTooShort { .. } | StateError::HmacUnavailable => "key",
            StateError::Malformed { .. } => "malformed",
            StateError::BadSignature => "bad_signature",
            StateError::Expired { .. } => "expired",
            StateError::Replayed => "replayed",
            StateError::ReplayCacheFull { .. } => "replay_cache_full",
            StateError::Store(_) => "store_unavailable",
        }
    }
}

/// The identity of one verified State: its nonce and expiry, what [`UsedStates`] remembers,
/// and the context it was issued with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce {
    value: [u8; NONCE_LEN],
    expires_at: u64,
    context: Context,
}

impl Nonce {
    /// The random nonce.
    pub fn value(&self) -> &[u8; NONCE_LEN] {
        &self.value
    }

    /// When the State stops being valid, unix seconds; until then it must stay remembered.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// What the State was issued for.
    pub fn context(&self) -> Context {
        self.context
    }
}

/// Issues and verifies States under one key. Instances sharing the key accept each other's
/// States. The key is wiped on drop and never printed.
#[derive(Clone)]
pub struct StateSigner {
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateSigner(***)")
    }
}

/// Appends `bytes` to the MAC with an 8-octet length prefix, so that user/client boundaries
/// cannot be shifted ("ab"+"c" vs "a"+"bc").
fn update_prefixed(mac: &mut HmacSha256, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

impl StateSigner {
    /// A signer for `key`, which must be at least [`MIN_KEY_LEN`] bytes of secret randomness.
    pub fn new(key: &[u8]) -> Result<Self, StateError> {
        if key.len() < MIN_KEY_LEN {
            return Err(StateError::KeyTooShort { length: key.len() });
        }
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
        })
    }

    fn tag(
        &self,
        context: u8,
        expires_at: u64,
        nonce: &[u8; NONCE_LEN],
        user: &[u8],
        client: &[u8],
    ) -> Option<[u8; TAG_LEN]> {
        // HMAC accepts any key length, so this never fails; callers treat None as a failure.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).ok()?;
        mac.update(&[STATE_VERSION, context]);
        mac.update(&expires_at.to_be_bytes());
        mac.update(nonce);
        update_prefixed(&mut mac, user);
        update_prefixed(&mut mac, client);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(full.get(..TAG_LEN)?);
        Some(tag)
    }

    /// A new State for `user` at `client` with `context`, valid until `now_unix + ttl` (whole
    /// seconds) inclusive. `rng` must be a cryptographic RNG (`rand::rng()` in the server).
    ///
    /// Fails only with [`StateError::HmacUnavailable`], which cannot happen; the `Result` keeps
    /// that path panic-free.
    pub fn issue<R: CryptoRng + ?Sized>(
        &self,
        context: Context,
        user: &[u8],
        client: &[u8],
        now_unix: u64,
        ttl: Duration,
        rng: &mut R,
    ) -> Result<Vec<u8>, StateError> {
        let expires_at = now_unix.saturating_add(ttl.as_secs());
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let tag = self
            .tag(context.to_byte(), expires_at, &nonce, user, client)
            .ok_or(StateError::HmacUnavailable)?;
        let mut out = Vec::with_capacity(STATE_LEN);
        out.push(STATE_VERSION);
        out.push(context.to_byte());
        out.extend_from_slice(&expires_at.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Checks that `state` was issued by a holder of this key for `user` at `client` and has
    /// not expired at `now_unix`. The signature is checked (in constant time) before the
    /// expiry, so [`StateError::Expired`] is only reported for genuine States. Does not check
    /// replay: pass the result to [`UsedStates::redeem`], or use [`StateSigner::redeem`].
    pub fn verify(
        &self,
        state: &[u8],
        user: &[u8],
        client: &[u8],
        now_unix: u64,
    ) -> Result<Nonce, StateError> {
        if state.len() != STATE_LEN {
            return Err(StateError::Malformed {
                reason: "wrong length",
            });
        }
        let (Some(&version), Some(&context), Some(expiry), Some(nonce), Some(tag)) = (
            state.first(),
            state.get(1),
            state.get(2..10),
            state.get(10..10 + NONCE_LEN),
            state.get(10 + NONCE_LEN..STATE_LEN),
        ) else {
            return Err(StateError::Malformed {
                reason: "wrong length",
            });
        };
        if version != STATE_VERSION {
            return Err(StateError::Malformed {
                reason: "unknown version",
            });
        }
        let mut expiry_bytes = [0u8; 8];
        expiry_bytes.copy_from_slice(expiry);
        let expires_at = u64::from_be_bytes(expiry_bytes);
        let mut value = [0u8; NONCE_LEN];
        value.copy_from_slice(nonce);
        let expected = self
            .tag(context, expires_at, &value, user, client)
            .ok_or(StateError::BadSignature)?;
        if !bool::from(expected.ct_eq(tag)) {
            return Err(StateError::BadSignature);
        }
        // Signed by us, so a context we cannot read is from a newer version of this server.
        let context = Context::from_byte(context).ok_or(StateError::Malformed {
            reason: "unknown context",
        })?;
        if now_unix > expires_at {
            return Err(StateError::Expired {
                expires_at,
                now: now_unix,
            });
        }
        Ok(Nonce {
            value,
            expires_at,
            context,
        })
    }

    /// The MAC input shown to the user for the `mac` challenge whose State has `nonce`:
    /// [`MAC_INPUT_DIGITS`] decimal digits derived from the nonce, user and client under the
    /// key, so the follow-up recomputes it and a MAC made for another challenge does not fit.
    pub fn mac_input(&self, nonce: &[u8; NONCE_LEN], user: &[u8], client: &[u8]) -> String {
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"sxs-auth mac-input v1");
        mac.update(nonce);
        update_prefixed(&mut mac, user);
        update_prefixed(&mut mac, client);
        let full = mac.finalize().into_bytes();
        let mut n = [0u8; 8];
        if let Some(head) = full.get(..8) {
            n.copy_from_slice(head);
        }
        let value = u64::from_be_bytes(n) % 10u64.pow(MAC_INPUT_DIGITS as u32);
        format!("{value:0width$}", width = MAC_INPUT_DIGITS)
    }

    /// The nonce inside an issued (or received) State, unverified; for [`StateSigner::mac_input`]
    /// right after [`StateSigner::issue`].
    pub fn nonce_of(state: &[u8]) -> Option<[u8; NONCE_LEN]> {
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(state.get(10..10 + NONCE_LEN)?);
        Some(n)
    }

    /// [`StateSigner::verify`] then [`UsedStates::redeem`]: the one call the request handler
    /// needs, so that a verified State cannot be used without being marked used.
    pub fn redeem(
        &self,
        used: &mut UsedStates,
        state: &[u8],
        user: &[u8],
        client: &[u8],
        now_unix: u64,
    ) -> Result<Nonce, StateError> {
        let nonce = self.verify(state, user, client, now_unix)?;
        used.redeem(&nonce, now_unix)?;
        Ok(nonce)
    }
}

/// The nonces of States already redeemed on this instance, each kept until its State expires,
/// so a State is accepted at most once per instance. Bounded: when `capacity` unexpired
/// nonces are held, further redemptions fail with [`StateError::ReplayCacheFull`] (fail
/// closed) instead of forgetting one. Not shared between instances: with several instances and
/// no `[shared] redis_url` a State could be redeemed once on each (the OTP itself, single use
/// at SxS, still stops a second login); with it, [`crate::redeem::Redemptions::Shared`] records
/// single use in Redis instead.
#[derive(Debug)]
pub struct UsedStates {
    by_nonce: HashMap<[u8; NONCE_LEN], u64>,
    by_expiry: BTreeSet<(u64, [u8; NONCE_LEN])>,
    capacity: usize,
}

impl UsedStates {
    /// An empty set holding at most `capacity` unexpired nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            by_nonce: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
        }
    }

    /// Marks `nonce` used at `now_unix`. Fails with [`StateError::Replayed`] if it already
    /// was, [`StateError::Expired`] if it is past its expiry, and
    /// [`StateError::ReplayCacheFull`] if there is no room. Purges expired nonces first.
    pub fn redeem(&mut self, nonce: &Nonce, now_unix: u64) -> Result<(), StateError> {
        self.purge(now_unix);
        if now_unix > nonce.expires_at {
            return Err(StateError::Expired {
                expires_at: nonce.expires_at,
                now: now_unix,
            });
        }
        if self.by_nonce.contains_key(&nonce.value) {
            return Err(StateError::Replayed);
        }
        if self.by_nonce.len() >= self.capacity {
            return Err(StateError::ReplayCacheFull {
                capacity: self.capacity,
            });
        }
        self.by_nonce.insert(nonce.value, nonce.expires_at);
        self.by_expiry.insert((nonce.expires_at, nonce.value));
        Ok(())
    }

    /// Forgets nonces whose State has expired at `now_unix` (they can no longer verify, so
    /// need no remembering). Returns how many were forgotten. Cheap when nothing expired.
    pub fn purge(&mut self, now_unix: u64) -> usize {
        let mut removed = 0usize;
        while let Some(&(expires_at, value)) = self.by_expiry.first() {
            if expires_at >= now_unix {
                break;
            }
            self.by_expiry.pop_first();
            self.by_nonce.remove(&value);
            removed = removed.saturating_add(1);
        }
        removed
    }

    /// Number of nonces remembered.
    pub fn len(&self) -> usize {
        self.by_nonce.len()
    }

    /// Whether none are remembered.
    pub fn is_empty(&self) -> bool {
        self.by_nonce.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngCore, SeedableRng};

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;
    const TTL: Duration = Duration::from_secs(120);

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn signer() -> StateSigner {
        StateSigner::new(KEY).unwrap()
    }

    #[test]
    fn key_length_and_debug() {
        assert_eq!(
            StateSigner::new(&[1u8; 15]).unwrap_err(),
            StateError::KeyTooShort { length: 15 }
        );
        assert!(StateSigner::new(&[1u8; 16]).is_ok());
        let s = format!("{:?}", signer());
        assert_eq!(s, "StateSigner(***)");
        assert!(!s.contains("0123"));
    }

    #[test]
    fn round_trip() {
        let s = signer();
        let st = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        assert_eq!(st.len(), STATE_LEN);
        assert_eq!(st[0], STATE_VERSION);
        let n = s.verify(&st, b"alice", b"vpn", NOW + 5).unwrap();
        assert_eq!(n.expires_at(), NOW + 120);
        assert_eq!(n.value(), &st[10..26]);
        // Valid through the expiry second, not after.
        assert!(s.verify(&st, b"alice", b"vpn", NOW + 120).is_ok());
    }

    #[test]
    fn known_answer_pins_the_format() {
        // python3: hmac.new(KEY, b"\x02\x00" + (NOW+120).to_bytes(8,"big") + bytes(range(16))
        //   + (5).to_bytes(8,"big") + b"alice" + (3).to_bytes(8,"big") + b"vpn",
        //   hashlib.sha256).hexdigest()[:32]
        struct Counting;
        impl RngCore for Counting {
            fn next_u32(&mut self) -> u32 {
                0
            }
            fn next_u64(&mut self) -> u64 {
                0
            }
            fn fill_bytes(&mut self, dst: &mut [u8]) {
                for (i, b) in dst.iter_mut().enumerate() {
                    *b = i as u8;
                }
            }
        }
        impl CryptoRng for Counting {}
        let st = signer()
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut Counting)
            .unwrap();
        let hex: String = st.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            format!(
                "0200{:016x}000102030405060708090a0b0c0d0e0f{}",
                NOW + 120,
                TAG_HEX
            )
        );
    }

    const TAG_HEX: &str = "75b9cf55088a3e9341ae83eac62b67f6";

    #[test]
    fn every_forged_byte_is_rejected() {
        let s = signer();
        let st = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        for i in 1..st.len() {
            let mut f = st.clone();
            f[i] ^= 0x40;
            assert_eq!(
                s.verify(&f, b"alice", b"vpn", NOW),
                Err(StateError::BadSignature),
                "byte {i}"
            );
        }
        let mut f = st.clone();
        f[0] = 1;
        assert_eq!(
            s.verify(&f, b"alice", b"vpn", NOW),
            Err(StateError::Malformed {
                reason: "unknown version"
            })
        );
    }

    #[test]
    fn context_is_signed_and_returned() {
        let s = signer();
        let sms = Context::new(Method::Sms);
        let st = s
            .issue(sms, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        assert_eq!(st[1], 1);
        assert_eq!(s.verify(&st, b"alice", b"vpn", NOW).unwrap().context(), sms);
        // An SMS challenge cannot be turned into a MAC one, or marked first-factor-passed.
        for forged in [2u8, 0x81] {
            let mut f = st.clone();
            f[1] = forged;
            assert_eq!(
                s.verify(&f, b"alice", b"vpn", NOW),
                Err(StateError::BadSignature)
            );
        }
        let ff = Context {
            method: Method::Otp,
            first_factor: true,
        };
        let st = s.issue(ff, b"alice", b"vpn", NOW, TTL, &mut rng()).unwrap();
        assert_eq!(s.verify(&st, b"alice", b"vpn", NOW).unwrap().context(), ff);
    }

    #[test]
    fn mac_input_is_bound_to_the_state() {
        let s = signer();
        let mut r = rng();
        let a = s
            .issue(
                Context::new(Method::Mac),
                b"alice",
                b"vpn",
                NOW,
                TTL,
                &mut r,
            )
            .unwrap();
        let b = s
            .issue(
                Context::new(Method::Mac),
                b"alice",
                b"vpn",
                NOW,
                TTL,
                &mut r,
            )
            .unwrap();
        let na = StateSigner::nonce_of(&a).unwrap();
        let nb = StateSigner::nonce_of(&b).unwrap();
        let ia = s.mac_input(&na, b"alice", b"vpn");
        assert_eq!(ia.len(), MAC_INPUT_DIGITS);
        assert!(ia.bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(ia, s.mac_input(&na, b"alice", b"vpn"));
        assert_ne!(ia, s.mac_input(&nb, b"alice", b"vpn"));
        assert_ne!(ia, s.mac_input(&na, b"bob", b"vpn"));
        assert_eq!(s.verify(&a, b"alice", b"vpn", NOW).unwrap().value(), &na);
        let other = StateSigner::new(b"another key of 32 bytes, really!").unwrap();
        assert_ne!(ia, other.mac_input(&na, b"alice", b"vpn"));
    }

    #[test]
    fn extended_expiry_is_rejected() {
        let s = signer();
        let st = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        let mut f = st.clone();
        f[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            s.verify(&f, b"alice", b"vpn", NOW + 1000),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn other_user_or_client_is_rejected() {
        let s = signer();
        let st = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        assert_eq!(
            s.verify(&st, b"mallory", b"vpn", NOW),
            Err(StateError::BadSignature)
        );
        assert_eq!(
            s.verify(&st, b"alice", b"wifi", NOW),
            Err(StateError::BadSignature)
        );
        // Length prefixes stop shifting bytes between the two names.
        let st = s
            .issue(Context::OTP, b"ab", b"c", NOW, TTL, &mut rng())
            .unwrap();
        assert_eq!(
            s.verify(&st, b"a", b"bc", NOW),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn malformed_states() {
        let s = signer();
        for len in [0usize, 1, 41, 43, 253] {
            assert_eq!(
                s.verify(&vec![1u8; len], b"a", b"c", NOW),
                Err(StateError::Malformed {
                    reason: "wrong length"
                })
            );
        }
    }

    #[test]
    fn expired_after_ttl() {
        let s = signer();
        let st = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        assert_eq!(
            s.verify(&st, b"alice", b"vpn", NOW + 121),
            Err(StateError::Expired {
                expires_at: NOW + 120,
                now: NOW + 121
            })
        );
        // A forged State is reported as forged, not as expired.
        let mut f = st.clone();
        f[30] ^= 1;
        assert_eq!(
            s.verify(&f, b"alice", b"vpn", NOW + 10_000),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn replay_is_refused_once_redeemed() {
        let s = signer();
        let mut used = UsedStates::new(100);
        let st = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        s.redeem(&mut used, &st, b"alice", b"vpn", NOW + 1).unwrap();
        assert_eq!(
            s.redeem(&mut used, &st, b"alice", b"vpn", NOW + 2),
            Err(StateError::Replayed)
        );
        // Still refused at the last valid second, then refused as expired.
        assert_eq!(
            s.redeem(&mut used, &st, b"alice", b"vpn", NOW + 120),
            Err(StateError::Replayed)
        );
        assert!(matches!(
            s.redeem(&mut used, &st, b"alice", b"vpn", NOW + 121),
            Err(StateError::Expired { .. })
        ));
        assert_eq!(used.len(), 1);
        assert_eq!(used.purge(NOW + 121), 1);
        assert!(used.is_empty());
        // A second State from the same signer is independent.
        let mut r = rng();
        let a = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut r)
            .unwrap();
        let b = s
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut r)
            .unwrap();
        assert_ne!(a, b);
        s.redeem(&mut used, &a, b"alice", b"vpn", NOW).unwrap();
        s.redeem(&mut used, &b, b"alice", b"vpn", NOW).unwrap();
        assert_eq!(used.len(), 2);
    }

    #[test]
    fn used_states_bounded_and_purged() {
        let s = signer();
        let mut r = rng();
        let mut used = UsedStates::new(3);
        for i in 0..3u64 {
            let st = s
                .issue(
                    Context::OTP,
                    b"u",
                    b"c",
                    NOW + i,
                    Duration::from_secs(10),
                    &mut r,
                )
                .unwrap();
            s.redeem(&mut used, &st, b"u", b"c", NOW).unwrap();
        }
        let st = s.issue(Context::OTP, b"u", b"c", NOW, TTL, &mut r).unwrap();
        assert_eq!(
            s.redeem(&mut used, &st, b"u", b"c", NOW),
            Err(StateError::ReplayCacheFull { capacity: 3 })
        );
        // The first one (expiry NOW+10) goes at NOW+11, making room.
        assert_eq!(used.purge(NOW + 10), 0);
        assert_eq!(used.purge(NOW + 11), 1);
        s.redeem(&mut used, &st, b"u", b"c", NOW + 11).unwrap();
        assert_eq!(used.len(), 3);
        assert_eq!(used.purge(NOW + 1_000), 3);
        assert!(used.is_empty());
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let s = signer();
        let mut used = UsedStates::new(0);
        let st = s
            .issue(Context::OTP, b"u", b"c", NOW, TTL, &mut rng())
            .unwrap();
        assert!(matches!(
            s.redeem(&mut used, &st, b"u", b"c", NOW),
            Err(StateError::ReplayCacheFull { .. })
        ));
    }

    #[test]
    fn instances_sharing_a_key_accept_each_other() {
        let a = StateSigner::new(KEY).unwrap();
        let b = StateSigner::new(KEY).unwrap();
        let st = a
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        b.verify(&st, b"alice", b"vpn", NOW + 3).unwrap();
        let st = b
            .issue(Context::OTP, b"bob", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        a.verify(&st, b"bob", b"vpn", NOW + 3).unwrap();
    }

    #[test]
    fn wrong_key_rejects() {
        let a = StateSigner::new(KEY).unwrap();
        let b = StateSigner::new(b"another key of 32 bytes, really!").unwrap();
        let st = a
            .issue(Context::OTP, b"alice", b"vpn", NOW, TTL, &mut rng())
            .unwrap();
        assert_eq!(
            b.verify(&st, b"alice", b"vpn", NOW),
            Err(StateError::BadSignature)
        );
    }

    #[test]
    fn huge_ttl_saturates() {
        let s = signer();
        let st = s
            .issue(
                Context::OTP,
                b"u",
                b"c",
                u64::MAX - 5,
                Duration::from_secs(100),
                &mut rng(),
            )
            .unwrap();
        assert_eq!(
            s.verify(&st, b"u", b"c", u64::MAX).unwrap().expires_at(),
            u64::MAX
        );
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            StateError::Expired {
                expires_at: 5,
                now: 9
            }
            .to_string(),
            "State expired at 5 (now 9)"
        );
        assert_eq!(
            StateError::KeyTooShort { length: 3 }.to_string(),
            "State key is 3 bytes; at least 16 are required"
        );
    }
}
