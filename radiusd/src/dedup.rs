//! Duplicate request detection (RFC 5080 §2.2.2).
//!
//! Clients retransmit when an answer is slow or lost. A retransmission must not be processed
//! again (it would spend a second OTP check and could lock the user out), so the server keeps,
//! per (local socket, client address and port, Identifier), the Request Authenticator of the
//! latest request and, once answered, the exact response bytes to send again. A request with
//! the same key but a new authenticator is a new request and replaces the entry.
//!
//! Time is a parameter (`now: Instant`) so tests control it.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest lifetime honoured for entries; larger settings are clamped so deadlines stay
/// computable and a misconfiguration cannot pin memory for days.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What identifies "the same request" (RFC 5080 §2.2.2): the socket it arrived on, where it
/// came from, and its Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey {
    /// Our socket's address (a server may listen on several).
    pub local: SocketAddr,
    /// The client's address and source port.
    pub client: SocketAddr,
    /// The packet Identifier.
    pub identifier: u8,
}

/// What to do with a request, as decided by [`DedupCache::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not seen (or a new request reusing the key): process it, then call
    /// [`DedupCache::complete`] or [`DedupCache::abandon`].
    New,
    /// A retransmission of a request still being processed: discard it silently.
    DropInFlight,
    /// A retransmission of a request already answered: send these exact bytes again (none,
    /// when the request was processed but no reply could be encoded: then drop it).
    Resend(Vec<u8>),
}

#[derive(Debug)]
enum Progress {
    InFlight,
    Answered { response: Vec<u8> },
}

#[derive(Debug)]
struct Entry {
    request_authenticator: [u8; 16],
    progress: Progress,
    /// The entry is alive while `now <= deadline`.
    deadline: Instant,
    /// Tie-breaker in the expiry index, unique per entry version.
    seq: u64,
}

/// The duplicate-detection cache.
///
/// Bounded by `max_entries`: when that many live entries exist, a request with a key not in
/// the cache still gets [`Action::New`] and is processed, but it is NOT cached, so its
/// retransmissions will be processed again (and its later `complete` is a no-op). This keeps
/// the server answering under a flood; it only loses duplicate suppression for the excess.
/// Memory is at most about `max_entries` × (4096-byte response + overhead).
///
/// In-flight entries expire after `in_flight_ttl` so that a handler that never reports back
/// cannot block a key forever; answered entries expire `ttl` after the answer. Expired entries
/// are removed lazily on every call and by [`DedupCache::purge`], in O(log n) each.
#[derive(Debug)]
pub struct DedupCache {
    entries: HashMap<DedupKey, Entry>,
    expiry: BTreeMap<(Instant, u64), DedupKey>,
    next_seq: u64,
    ttl: Duration,
    in_flight_ttl: Duration,
    max_entries: usize,
}

/// The next sequence number (each entry version gets its own).
fn next(seq: &mut u64) -> u64 {
    let n = *seq;
    *seq = seq.wrapping_add(1);
    n
}

/// `now + ttl`, or `now` if that is not representable (the entry then expires at once).
fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or(now)
}

impl DedupCache {
    /// A cache remembering answers for `ttl` (RFC 5080 suggests a few seconds longer than the
    /// clients' retransmission window), in-flight requests for `in_flight_ttl` (longer than the
    /// slowest handler), and at most `max_entries` entries. Both durations are capped at
    /// [`MAX_TTL`].
    pub fn new(ttl: Duration, in_flight_ttl: Duration, max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            expiry: BTreeMap::new(),
            next_seq: 0,
            ttl: ttl.min(MAX_TTL),
            in_flight_ttl: in_flight_ttl.min(MAX_TTL),
            max_entries,
        }
    }

    /// Classifies a received request; see [`Action`]. A `New` request is recorded as in flight
    /// (unless the cache is full, see the type's documentation).
    pub fn check(
        &mut self,
        key: DedupKey,
        request_authenticator: &[u8; 16],
        now: Instant,
    ) -> Action {
        self.purge(now);
        let full = self.entries.len() >= self.max_entries;
        let (deadline, seq) = (deadline(now, self.in_flight_ttl), next(&mut self.next_seq));
        let fresh = Entry {
            request_authenticator: *request_authenticator,
            progress: Progress::InFlight,
            deadline,
            seq,
        };
        // One lookup: the entry API, with the expiry index (another field) updated alongside.
        match self.entries.entry(key) {
            MapEntry::Occupied(mut o) => {
                let e = o.get();
                if e.request_authenticator == *request_authenticator {
                    return match &e.progress {
                        Progress::InFlight => Action::DropInFlight,
                        Progress::Answered { response } => Action::Resend(response.clone()),
                    };
                }
                // A new request reusing the key replaces the old one.
                self.expiry.remove(&(e.deadline, e.seq));
                o.insert(fresh);
            }
            MapEntry::Vacant(_) if full => return Action::New,
            MapEntry::Vacant(v) => {
                v.insert(fresh);
            }
        }
        self.expiry.insert((deadline, seq), key);
        Action::New
    }

    /// Records the response sent for a request, to be resent to its retransmissions for `ttl`
    /// from `now`. Ignored (returns false) if the entry is gone or now belongs to a newer
    /// request with another authenticator, so a slow handler cannot overwrite a newer answer.
    pub fn complete(
        &mut self,
        key: DedupKey,
        request_authenticator: &[u8; 16],
        response: Vec<u8>,
        now: Instant,
    ) -> bool {
        let Some(e) = self.entries.get_mut(&key) else {
            return false;
        };
        if e.request_authenticator != *request_authenticator {
            return false;
        }
        self.expiry.remove(&(e.deadline, e.seq));
        e.progress = Progress::Answered { response };
        e.deadline = deadline(now, self.ttl);
        e.seq = next(&mut self.next_seq);
        self.expiry.insert((e.deadline, e.seq), key);
        true
    }

    /// Forgets an in-flight request that will not be answered (dropped, or its handler
    /// failed), so that a retransmission is processed afresh. Answered entries and entries of
    /// other authenticators are kept. Returns whether an entry was removed.
    pub fn abandon(&mut self, key: DedupKey, request_authenticator: &[u8; 16]) -> bool {
        let MapEntry::Occupied(o) = self.entries.entry(key) else {
            return false;
        };
        let e = o.get();
        if e.request_authenticator != *request_authenticator
            || !matches!(e.progress, Progress::InFlight)
        {
            return false;
        }
        let old = o.remove();
        self.expiry.remove(&(old.deadline, old.seq));
        true
    }

    /// Removes every entry whose deadline is before `now`; returns how many.
    pub fn purge(&mut self, now: Instant) -> usize {
        let mut removed = 0usize;
        while let Some(first) = self.expiry.first_entry() {
            if first.key().0 >= now {
                break;
            }
            let ((_, seq), key) = first.remove_entry();
            if let MapEntry::Occupied(o) = self.entries.entry(key) {
                if o.get().seq == seq {
                    o.remove();
                }
            }
            removed = removed.saturating_add(1);
        }
        removed
    }

    /// Number of entries (live or not yet purged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A [`DedupCache`] behind a `Mutex`, for the per-packet tasks to share. Each call holds the
/// lock only for the map operation. A poisoned lock is recovered: the cache never panics
/// while holding it, and its state is consistent between calls.
#[derive(Debug)]
pub struct SharedDedupCache {
    inner: Mutex<DedupCache>,
}

impl SharedDedupCache {
    /// Wraps a cache.
    pub fn new(cache: DedupCache) -> Self {
        Self {
            inner: Mutex::new(cache),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DedupCache> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// See [`DedupCache::check`].
    pub fn check(&self, key: DedupKey, request_authenticator: &[u8; 16], now: Instant) -> Action {
        self.lock().check(key, request_authenticator, now)
    }

    /// See [`DedupCache::complete`].
    pub fn complete(
        &self,
        key: DedupKey,
        request_authenticator: &[u8; 16],
        response: Vec<u8>,
        now: Instant,
    ) -> bool {
        self.lock()
            .complete(key, request_authenticator, response, now)
    }

    /// See [`DedupCache::abandon`].
    pub fn abandon(&self, key: DedupKey, request_authenticator: &[u8; 16]) -> bool {
        self.lock().abandon(key, request_authenticator)
    }

    /// See [`DedupCache::purge`].
    pub fn purge(&self, now: Instant) -> usize {
        self.lock().purge(now)
    }

    /// See [`DedupCache::len`].
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// See [`DedupCache::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const TTL: Duration = Duration::from_secs(30);
    const IN_FLIGHT: Duration = Duration::from_secs(60);
    const A1: [u8; 16] = [1u8; 16];
    const A2: [u8; 16] = [2u8; 16];

    fn key(port: u16, id: u8) -> DedupKey {
        DedupKey {
            local: "127.0.0.1:1812".parse().unwrap(),
            client: format!("127.0.0.2:{port}").parse().unwrap(),
            identifier: id,
        }
    }

    fn cache() -> DedupCache {
        DedupCache::new(TTL, IN_FLIGHT, 1000)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn new_then_in_flight_then_resend() {
        let t0 = Instant::now();
        let mut c = cache();
        let k = key(5000, 7);
        assert_eq!(c.check(k, &A1, t0), Action::New);
        assert_eq!(c.check(k, &A1, t0 + secs(1)), Action::DropInFlight);
        assert!(c.complete(k, &A1, b"answer".to_vec(), t0 + secs(2)));
        assert_eq!(
            c.check(k, &A1, t0 + secs(3)),
            Action::Resend(b"answer".to_vec())
        );
        // Still resent at exactly ttl after the answer, not after.
        assert_eq!(
            c.check(k, &A1, t0 + secs(2) + TTL),
            Action::Resend(b"answer".to_vec())
        );
        assert_eq!(c.check(k, &A1, t0 + secs(3) + TTL), Action::New);
    }

    #[test]
    fn new_authenticator_replaces_entry() {
        let t0 = Instant::now();
        let mut c = cache();
        let k = key(5000, 7);
        assert_eq!(c.check(k, &A1, t0), Action::New);
        assert!(c.complete(k, &A1, b"first".to_vec(), t0));
        assert_eq!(c.check(k, &A2, t0 + secs(1)), Action::New);
        assert_eq!(c.check(k, &A2, t0 + secs(1)), Action::DropInFlight);
        assert_eq!(c.len(), 1);
        // The old request's retransmission is now a new request again.
        assert_eq!(c.check(k, &A1, t0 + secs(2)), Action::New);
    }

    #[test]
    fn stale_complete_is_ignored() {
        let t0 = Instant::now();
        let mut c = cache();
        let k = key(5000, 7);
        c.check(k, &A1, t0);
        c.check(k, &A2, t0); // the client moved on; A1's handler is still running
        assert!(!c.complete(k, &A1, b"late".to_vec(), t0));
        assert_eq!(c.check(k, &A2, t0), Action::DropInFlight);
        assert!(c.complete(k, &A2, b"right".to_vec(), t0));
        assert_eq!(c.check(k, &A2, t0), Action::Resend(b"right".to_vec()));
        assert!(!c.complete(key(1, 1), &A1, b"nobody".to_vec(), t0));
    }

    #[test]
    fn abandon_forgets_only_in_flight() {
        let t0 = Instant::now();
        let mut c = cache();
        let k = key(5000, 7);
        c.check(k, &A1, t0);
        assert!(!c.abandon(k, &A2));
        assert!(c.abandon(k, &A1));
        assert!(c.is_empty());
        assert_eq!(c.check(k, &A1, t0), Action::New);
        c.complete(k, &A1, b"x".to_vec(), t0);
        assert!(!c.abandon(k, &A1));
        assert_eq!(c.check(k, &A1, t0), Action::Resend(b"x".to_vec()));
    }

    #[test]
    fn key_parts_are_distinct() {
        let t0 = Instant::now();
        let mut c = cache();
        let base = key(5000, 7);
        c.check(base, &A1, t0);
        let other_id = key(5000, 8);
        let other_port = key(5001, 7);
        let other_local = DedupKey {
            local: "127.0.0.1:11812".parse().unwrap(),
            ..base
        };
        let other_ip = DedupKey {
            client: "127.0.0.3:5000".parse().unwrap(),
            ..base
        };
        for k in [other_id, other_port, other_local, other_ip] {
            assert_eq!(c.check(k, &A1, t0), Action::New, "{k:?}");
        }
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn in_flight_entries_time_out() {
        let t0 = Instant::now();
        let mut c = cache();
        let k = key(5000, 7);
        c.check(k, &A1, t0);
        assert_eq!(c.check(k, &A1, t0 + IN_FLIGHT), Action::DropInFlight);
        assert_eq!(c.check(k, &A1, t0 + IN_FLIGHT + secs(1)), Action::New);
    }

    #[test]
    fn purge_removes_expired_only() {
        let t0 = Instant::now();
        let mut c = cache();
        for port in 0..10 {
            c.check(key(port, 0), &A1, t0);
        }
        for port in 0..5 {
            c.complete(key(port, 0), &A1, vec![1], t0);
        }
        // Answered ones expire at t0+30, in-flight ones at t0+60.
        assert_eq!(c.purge(t0 + TTL), 0);
        assert_eq!(c.purge(t0 + TTL + secs(1)), 5);
        assert_eq!(c.len(), 5);
        assert_eq!(c.purge(t0 + IN_FLIGHT + secs(1)), 5);
        assert!(c.is_empty());
        assert!(c.expiry.is_empty());
    }

    #[test]
    fn index_stays_consistent_through_replacements() {
        let t0 = Instant::now();
        let mut c = cache();
        let k = key(1, 1);
        for i in 0..50u8 {
            let a = [i; 16];
            c.check(k, &a, t0 + secs(u64::from(i)));
            c.complete(k, &a, vec![i], t0 + secs(u64::from(i)));
        }
        assert_eq!(c.len(), 1);
        assert_eq!(c.expiry.len(), 1);
    }

    #[test]
    fn full_cache_still_answers_but_does_not_cache() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(TTL, IN_FLIGHT, 2);
        assert_eq!(c.check(key(1, 0), &A1, t0), Action::New);
        assert_eq!(c.check(key(2, 0), &A1, t0), Action::New);
        let k3 = key(3, 0);
        assert_eq!(c.check(k3, &A1, t0), Action::New);
        // Not cached: the retransmission is new again, and complete is a no-op.
        assert_eq!(c.check(k3, &A1, t0), Action::New);
        assert!(!c.complete(k3, &A1, vec![1], t0));
        assert_eq!(c.len(), 2);
        // Existing keys keep working, including replacement by a new authenticator.
        assert_eq!(c.check(key(1, 0), &A2, t0), Action::New);
        assert_eq!(c.check(key(1, 0), &A2, t0), Action::DropInFlight);
        // Once entries expire there is room again.
        assert_eq!(c.check(k3, &A1, t0 + IN_FLIGHT + secs(1)), Action::New);
        assert_eq!(
            c.check(k3, &A1, t0 + IN_FLIGHT + secs(1)),
            Action::DropInFlight
        );
    }

    #[test]
    fn huge_ttls_are_clamped() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(Duration::MAX, Duration::MAX, 10);
        let k = key(1, 1);
        assert_eq!(c.check(k, &A1, t0), Action::New);
        assert_eq!(c.check(k, &A1, t0 + MAX_TTL), Action::DropInFlight);
        assert_eq!(c.check(k, &A1, t0 + MAX_TTL + secs(1)), Action::New);
    }

    #[test]
    fn shared_cache_across_threads() {
        let t0 = Instant::now();
        let shared = Arc::new(SharedDedupCache::new(cache()));
        let k = key(9, 9);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || s.check(k, &A1, t0))
            })
            .collect();
        let actions: Vec<Action> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(actions.iter().filter(|a| **a == Action::New).count(), 1);
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == Action::DropInFlight)
                .count(),
            7
        );
        assert!(shared.complete(k, &A1, b"r".to_vec(), t0));
        assert_eq!(shared.check(k, &A1, t0), Action::Resend(b"r".to_vec()));
        assert_eq!(shared.len(), 1);
        assert!(!shared.abandon(k, &A1));
        assert_eq!(shared.purge(t0 + TTL + secs(1)), 1);
        assert!(shared.is_empty());
    }
}
