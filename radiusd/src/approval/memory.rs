//! The in-process approval store: one instance, no shared state. Bounded per user and in total;
//! expired entries are dropped when new ones are created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::{Approval, ClaimError, CreateError, Pending};

#[derive(Debug)]
struct Slot {
    pending: Pending,
    claimed: bool,
    done: watch::Sender<Option<Approval>>,
}

/// Pending approvals of this process.
#[derive(Debug)]
pub struct MemoryStore {
    slots: Mutex<HashMap<String, Slot>>,
    max_per_user: u32,
    max_total: usize,
}

/// Waits for one entry of a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryWaiter {
    id: String,
    rx: watch::Receiver<Option<Approval>>,
    store: Arc<MemoryStore>,
}

impl MemoryStore {
    pub fn new(max_per_user: u32, max_total: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            max_per_user,
            max_total,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        match self.slots.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn create(
        self: &Arc<Self>,
        pending: Pending,
        now: u64,
    ) -> Result<MemoryWaiter, CreateError> {
        let mut slots = self.lock();
        slots.retain(|_, s| s.pending.expires_at >= now);
        if slots.contains_key(&pending.id) {
            return Err(CreateError::Exists);
        }
        let user = &pending.identity.user;
        let for_user = slots
            .values()
            .filter(|s| !s.claimed && &s.pending.identity.user == user)
            .count();
        if for_user >= self.max_per_user as usize {
            return Err(CreateError::UserLimit {
                user: user.clone(),
                limit: self.max_per_user,
            });
        }
        if slots.len() >= self.max_total {
            return Err(CreateError::Full {
                limit: self.max_total,
            });
        }
        let (done, rx) = watch::channel(None);
        let id = pending.id.clone();
        slots.insert(
            id.clone(),
            Slot {
                pending,
                claimed: false,
                done,
            },
        );
        Ok(MemoryWaiter {
            id,
            rx,
            store: self.clone(),
        })
    }

    pub fn claim(&self, id: &str, now: u64) -> Result<Pending, ClaimError> {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(id) else {
            return Err(ClaimError::Unknown);
        };
        if slot.claimed {
            return Err(ClaimError::AlreadyCompleted);
        }
        if slot.pending.expires_at < now {
            slots.remove(id);
            return Err(ClaimError::Expired);
        }
        slot.claimed = true;
        Ok(slot.pending.clone())
    }

    pub fn finish(&self, id: &str, approval: Approval) {
        if let Some(slot) = self.lock().get(id) {
            let _ = slot.done.send(Some(approval));
        }
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryWaiter {
    pub async fn wait(mut self, timeout: Duration) -> Option<Approval> {
        let result = tokio::time::timeout(timeout, self.rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|v| v.clone()));
        // Done or given up: either way the entry goes (a late callback finds nothing).
        self.store.forget(&self.id);
        result
    }
}

impl Drop for MemoryWaiter {
    fn drop(&mut self) {
        self.store.forget(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{Identity, Method, Verdict};

    fn pending(id: &str, user: &str, expires_at: u64) -> Pending {
        Pending {
            id: id.into(),
            method: Method::Push,
            identity: Identity {
                user: user.into(),
                token_sn: None,
                user_id: Some(user.into()),
            },
            origin: "nas".into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn completes_exactly_once_and_wakes_the_waiter() {
        let store = MemoryStore::new(2, 10);
        let w = store.create(pending("a", "alice", 100), 50).unwrap();
        assert_eq!(store.claim("nope", 60), Err(ClaimError::Unknown));
        let p = store.claim("a", 60).unwrap();
        assert_eq!(p.identity.user, "alice");
        assert_eq!(store.claim("a", 61), Err(ClaimError::AlreadyCompleted));
        let ok = Approval::Checked(Verdict::Accept {
            token_sn: "1".into(),
            user_id: "alice".into(),
        });
        store.finish("a", ok.clone());
        assert_eq!(w.wait(Duration::from_secs(1)).await, Some(ok));
        assert!(store.is_empty(), "forgotten once waited");
        assert_eq!(store.claim("a", 62), Err(ClaimError::Unknown));
    }

    #[tokio::test]
    async fn limits_expiry_and_timeouts() {
        let store = MemoryStore::new(2, 3);
        let _a = store.create(pending("a", "alice", 100), 50).unwrap();
        let _b = store.create(pending("b", "alice", 100), 50).unwrap();
        assert!(matches!(
            store.create(pending("c", "alice", 100), 50),
            Err(CreateError::UserLimit { limit: 2, .. })
        ));
        assert_eq!(
            store.create(pending("a", "bob", 100), 50).unwrap_err(),
            CreateError::Exists
        );
        let _d = store.create(pending("d", "bob", 100), 50).unwrap();
        assert!(matches!(
            store.create(pending("e", "carol", 100), 50),
            Err(CreateError::Full { limit: 3 })
        ));
        assert_eq!(store.claim("a", 101), Err(ClaimError::Expired));
        // Expired ones make room when the next is created.
        let _f = store.create(pending("f", "carol", 300), 200).unwrap();
        assert_eq!(store.len(), 1);
        // A waiter that times out forgets its entry: a late completion finds nothing.
        let w = store.create(pending("g", "dave", 300), 200).unwrap();
        assert_eq!(w.wait(Duration::from_millis(10)).await, None);
        assert_eq!(store.claim("g", 201), Err(ClaimError::Unknown));
        // A waiter dropped unfinished (the request went away) forgets it too.
        drop(_f);
        assert_eq!(store.claim("f", 201), Err(ClaimError::Unknown));
    }
}
