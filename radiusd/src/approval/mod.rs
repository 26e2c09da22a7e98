//! Approvals that wait: a login that started a push (or an out-of-band challenge) waits here
//! until a door — the HTTP endpoint ([`crate::http`]) for SxS's callback, later the PAM socket —
//! completes it, exactly once.
//!
//! One store, two implementations behind [`ApprovalStore`]: in process ([`memory`]), and
//! Redis/Valkey shared by several instances ([`redis`], `[shared] redis_url`). The waiting side
//! creates a [`Pending`] and gets a [`Waiter`]; the completing side *claims* the pending entry
//! (which succeeds once, for whoever comes first, on any instance), does the work (validates
//! the OTP that came with the callback), and *finishes* it with an [`Approval`], which wakes
//! the waiter. Nothing secret is stored: the callback's OTP is validated by the side that
//! receives it, and only the verdict travels.

pub mod memory;
pub mod redis;

use std::time::Duration;

use common::{Identity, Method, Verdict};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// A login waiting for an approval. Serde: the shared store keeps it as JSON (nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Unguessable (128 random bits, hex).
    pub id: String,
    pub method: Method,
    pub identity: Identity,
    /// The RADIUS client or PAM service that waits, for logs.
    pub origin: String,
    /// Unix seconds after which the entry is dead.
    pub expires_at: u64,
}

/// How a pending login ended. Serde: the shared store carries it to the waiting instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Approval {
    /// Approved on the phone; the OTP that came with it was checked with SxS: this verdict.
    Checked(Verdict),
    /// Denied on the phone.
    Denied,
}

/// Why a pending entry could not be created.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The user already has `max_pending_per_user` logins waiting: refuse this one.
    #[error("{user} already has {limit} approvals waiting")]
    UserLimit { user: String, limit: u32 },
    /// `max_pending` logins are waiting: refuse this one.
    #[error("{limit} approvals are already waiting")]
    Full { limit: usize },
    /// An entry with this id is already waiting (ids are random: retry with another).
    #[error("an approval with this id is already waiting")]
    Exists,
    /// The shared store failed: refuse (fail closed).
    #[error("approval store: {0}")]
    Backend(String),
}

/// Why a completion was refused; the door answers with a clear HTTP error and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClaimError {
    #[error("no such pending approval")]
    Unknown,
    #[error("the pending approval has expired")]
    Expired,
    #[error("the pending approval was already completed")]
    AlreadyCompleted,
    #[error("approval store: {0}")]
    Backend(String),
}

/// The shared store could not be asked or did not answer in time (Redis down, unreachable,
/// or answering nonsense). Fail closed: the login is refused, the callback answered 503.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("approval store: {0}")]
pub struct StoreError(pub String);

/// The store: in process, or shared.
#[derive(Debug, Clone)]
pub enum ApprovalStore {
    Memory(std::sync::Arc<MemoryStore>),
    Redis(std::sync::Arc<RedisStore>),
}

/// The waiting side of one pending approval; forgets the entry when dropped unfinished.
#[derive(Debug)]
pub enum Waiter {
    Memory(memory::MemoryWaiter),
    Redis(redis::RedisWaiter),
}

impl ApprovalStore {
    /// Registers `pending` and returns its waiter.
    pub async fn create(&self, pending: Pending, now_unix: u64) -> Result<Waiter, CreateError> {
        match self {
            ApprovalStore::Memory(m) => m.create(pending, now_unix).map(Waiter::Memory),
            ApprovalStore::Redis(r) => r.create(pending, now_unix).await.map(Waiter::Redis),
        }
    }

    /// Takes the pending entry `id` for completion: succeeds once.
    pub async fn claim(&self, id: &str, now_unix: u64) -> Result<Pending, ClaimError> {
        match self {
            ApprovalStore::Memory(m) => m.claim(id, now_unix),
            ApprovalStore::Redis(r) => r.claim(id, now_unix).await,
        }
    }

    /// Completes a claimed entry: its waiter (on whichever instance) wakes with `approval`.
    pub async fn finish(&self, id: &str, approval: Approval) -> Result<(), StoreError> {
        match self {
            ApprovalStore::Memory(m) => {
                m.finish(id, approval);
                Ok(())
            }
            ApprovalStore::Redis(r) => r.finish(id, &approval).await,
        }
    }

    /// Entries waiting in this process (for metrics and tests).
    pub fn len(&self) -> usize {
        match self {
            ApprovalStore::Memory(m) => m.len(),
            ApprovalStore::Redis(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Waiter {
    /// Waits up to `timeout` for the approval; `Ok(None)` when it did not come in time (the
    /// entry is then forgotten: a late callback finds nothing); `Err` when the shared store
    /// failed while waiting (refuse the login: the store's failure is never an accept).
    pub async fn wait(self, timeout: Duration) -> Result<Option<Approval>, StoreError> {
        match self {
            Waiter::Memory(w) => Ok(w.wait(timeout).await),
            Waiter::Redis(w) => w.wait(timeout).await,
        }
    }
}

/// Signs and checks callback locations: `{public_url}/push/callback/{id}?sig={hex}` with
/// `sig = HMAC-SHA256(key, "sxs-auth push-callback v1" ‖ id)`, 16 octets. A callback is
/// accepted only with the signature of its own id, so a guessed or altered id fails before the
/// store is asked. The key is shared by every instance; it is never logged.
#[derive(Clone)]
pub struct CallbackSigner {
    key: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for CallbackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSigner(***)")
    }
}

impl CallbackSigner {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: zeroize::Zeroizing::new(key.to_vec()),
        }
    }

    fn tag(&self, id: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            mac.update(b"sxs-auth push-callback v1");
            mac.update(id.as_bytes());
            let full = mac.finalize().into_bytes();
            if let Some(head) = full.get(..16) {
                out.copy_from_slice(head);
            }
        }
        out
    }

    /// The signature of `id`, hex.
    pub fn sign(&self, id: &str) -> String {
        self.tag(id).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `sig` (hex) is `id`'s signature, compared in constant time.
    pub fn verify(&self, id: &str, sig: &str) -> bool {
        let Some(given) = decode_hex16(sig) else {
            return false;
        };
        bool::from(self.tag(id).ct_eq(&given))
    }

    /// The callback location for `id` under `public_url`.
    pub fn location(&self, public_url: &url::Url, id: &str) -> String {
        format!(
            "{}/push/callback/{id}?sig={}",
            public_url.as_str().trim_end_matches('/'),
            self.sign(id)
        )
    }
}

fn decode_hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fresh, unguessable id: 128 random bits as hex.
pub fn new_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_signatures() {
        let s = CallbackSigner::new(b"0123456789abcdef0123");
        let id = new_id();
        assert_eq!(id.len(), 32);
        let sig = s.sign(&id);
        assert!(s.verify(&id, &sig));
        assert!(!s.verify(&new_id(), &sig), "another id");
        assert!(!s.verify(&id, &sig[..30]), "short");
        assert!(!s.verify(&id, "zz"), "not hex");
        let other = CallbackSigner::new(b"another key, 16+ bytes");
        assert!(!other.verify(&id, &sig), "another key");
        let url = url::Url::parse("https://auth.example:8443/").unwrap();
        assert_eq!(
            s.location(&url, "ab"),
            format!(
                "https://auth.example:8443/push/callback/ab?sig={}",
                s.sign("ab")
            )
        );
        assert_eq!(format!("{s:?}"), "CallbackSigner(***)");
    }
}
