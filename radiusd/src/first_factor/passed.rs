//! What the first round of a `password_otp = "challenge"` login found (the user's groups, the
//! upstream server's pass-through attributes), kept under the State's nonce until the OTP
//! comes back: in this process ([`Passed`]), or — with `[shared] redis_url` — in Redis, so
//! that the OTP may reach any instance. Kept across configuration reloads by the server, like
//! the States' single use. Nothing here is secret: no password, no OTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::approval::RedisStore;
use crate::reply::Attributes;

/// What passed: the groups and the upstream attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedEntry {
    pub groups: Vec<String>,
    pub attributes: Attributes,
}

/// At most this many logins wait for their OTP at once in one process; beyond it new
/// challenges are refused.
const MAX_PASSED: usize = 100_000;

/// The in-process store.
#[derive(Debug, Default)]
pub struct Passed {
    inner: Mutex<HashMap<[u8; 16], (u64, PassedEntry)>>,
}

impl Passed {
    /// Remembers `entry` for the State with `nonce` until `expires_at`; `false` when full.
    pub fn insert(&self, nonce: [u8; 16], expires_at: u64, now: u64, entry: PassedEntry) -> bool {
        let Ok(mut m) = self.inner.lock() else {
            return false;
        };
        if m.len() >= MAX_PASSED {
            m.retain(|_, (exp, _)| *exp >= now);
            if m.len() >= MAX_PASSED {
                return false;
            }
        }
        m.insert(nonce, (expires_at, entry));
        true
    }

    /// Takes what was remembered for `nonce`, unless it expired.
    pub fn take(&self, nonce: &[u8; 16], now: u64) -> Option<PassedEntry> {
        let (expires_at, entry) = self.inner.lock().ok()?.remove(nonce)?;
        (expires_at >= now).then_some(entry)
    }

    /// Forgets what expired before `now`.
    pub fn purge(&self, now: u64) {
        if let Ok(mut m) = self.inner.lock() {
            m.retain(|_, (exp, _)| *exp >= now);
        }
    }
}

/// Where first rounds are kept.
#[derive(Debug, Clone)]
pub enum PassedStore {
    Local(Arc<Passed>),
    Shared(Arc<RedisStore>),
}

impl Default for PassedStore {
    fn default() -> Self {
        PassedStore::Local(Arc::default())
    }
}

impl PassedStore {
    /// Keeps `entry` for `nonce` until `expires_at`. An error says why it could not (full, or
    /// the shared store is unreachable): the login is then refused, never accepted without
    /// its attributes.
    pub async fn insert(
        &self,
        nonce: [u8; 16],
        expires_at: u64,
        now: u64,
        entry: PassedEntry,
    ) -> Result<(), String> {
        match self {
            PassedStore::Local(p) => p
                .insert(nonce, expires_at, now, entry)
                .then_some(())
                .ok_or_else(|| format!("{MAX_PASSED} logins already wait for their OTP")),
            PassedStore::Shared(store) => {
                let json = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
                store
                    .put_passed(&nonce, expires_at, now, &json)
                    .await
                    .map_err(|e| e.0)
            }
        }
    }

    /// Takes what was kept for `nonce`: `Ok(None)` when nothing is (another instance without
    /// the shared store issued it, it expired, or the daemon restarted).
    pub async fn take(&self, nonce: &[u8; 16], now: u64) -> Result<Option<PassedEntry>, String> {
        match self {
            PassedStore::Local(p) => Ok(p.take(nonce, now)),
            PassedStore::Shared(store) => match store.take_passed(nonce).await.map_err(|e| e.0)? {
                None => Ok(None),
                Some(json) => serde_json::from_str(&json)
                    .map(Some)
                    .map_err(|e| format!("unreadable first-factor entry in Redis: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_once_until_expiry() {
        let p = Passed::default();
        let e = PassedEntry {
            groups: vec!["vpn".into()],
            attributes: vec![(25, b"admins".to_vec())],
        };
        assert!(p.insert([1; 16], 100, 10, e.clone()));
        assert!(p.insert([2; 16], 100, 10, e.clone()));
        assert_eq!(p.take(&[1; 16], 50), Some(e.clone()));
        assert_eq!(p.take(&[1; 16], 50), None, "single use");
        assert_eq!(p.take(&[2; 16], 101), None, "expired");
        assert!(p.insert([3; 16], 20, 10, e));
        p.purge(21);
        assert_eq!(p.take(&[3; 16], 15), None, "purged");
    }

    #[test]
    fn the_shared_form_round_trips() {
        let e = PassedEntry {
            groups: vec!["a,b".into(), "ü".into()],
            attributes: vec![(26, vec![0, 0, 0, 9, 1, 3, 0xff])],
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<PassedEntry>(&json).unwrap(), e);
    }
}
