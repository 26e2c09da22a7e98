//! Rate limit for per-packet warnings: a flood of bad datagrams from one client must not
//! become a flood of log lines (186 000 lines, 34 MB from a 9-second burst before this).
//!
//! Per (client, reason): the first event of a window is logged; the rest of the window is
//! counted, and reported as one "N more suppressed" line when the window is over (on the next
//! event of that kind, or by [`LogLimiter::flush`] from the server's housekeeping tick). Time
//! is a parameter so tests control it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one logged event stands for its kind, per client.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Whether to log an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Log it; `suppressed` events of the same kind were swallowed in the window before.
    Log { suppressed: u64 },
    /// Count it, do not log it.
    Suppress,
}

#[derive(Debug)]
struct Slot {
    opened: Instant,
    suppressed: u64,
}

/// Counts suppressed events per (client, reason). The keys are configured client names (or
/// one shared key for unknown addresses) and a fixed set of reasons, so the map stays small.
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    slots: Mutex<HashMap<(String, &'static str), Slot>>,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl LogLimiter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, &'static str), Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one event of `reason` from `client` at `now`.
    pub fn admit(&self, client: &str, reason: &'static str, now: Instant) -> Admit {
        let mut slots = self.lock();
        match slots.get_mut(&(client.to_string(), reason)) {
            Some(slot) if now.saturating_duration_since(slot.opened) < self.window => {
                slot.suppressed = slot.suppressed.saturating_add(1);
                Admit::Suppress
            }
            Some(slot) => {
                let suppressed = std::mem::take(&mut slot.suppressed);
                slot.opened = now;
                Admit::Log { suppressed }
            }
            None => {
                slots.insert(
                    (client.to_string(), reason),
                    Slot {
                        opened: now,
                        suppressed: 0,
                    },
                );
                Admit::Log { suppressed: 0 }
            }
        }
    }

    /// The windows over at `now` that swallowed events: (client, reason, count), each reported
    /// once. Quiet, finished windows are forgotten.
    pub fn flush(&self, now: Instant) -> Vec<(String, &'static str, u64)> {
        let mut out = Vec::new();
        self.lock().retain(|(client, reason), slot| {
            if now.saturating_duration_since(slot.opened) < self.window {
                return true;
            }
            if slot.suppressed > 0 {
                out.push((
                    client.clone(),
                    *reason,
                    std::mem::take(&mut slot.suppressed),
                ));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_logged_rest_counted_then_summarised() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(
            l.admit("nas", "malformed", t0),
            Admit::Log { suppressed: 0 }
        );
        for i in 1..=1000u64 {
            let t = t0 + Duration::from_millis(i * 9);
            assert_eq!(l.admit("nas", "malformed", t), Admit::Suppress);
        }
        // Another reason and another client have windows of their own.
        assert_eq!(
            l.admit("nas", "bad-authenticator", t0),
            Admit::Log { suppressed: 0 }
        );
        assert_eq!(
            l.admit("vpn", "malformed", t0),
            Admit::Log { suppressed: 0 }
        );
        assert!(l.flush(t0 + Duration::from_secs(5)).is_empty());
        // The next event after the window carries the count...
        assert_eq!(
            l.admit("nas", "malformed", t0 + Duration::from_secs(10)),
            Admit::Log { suppressed: 1000 }
        );
        // ...or, when none comes, the housekeeping flush does, once.
        let t1 = t0 + Duration::from_secs(10);
        l.admit("nas", "malformed", t1 + Duration::from_secs(1));
        l.admit("nas", "malformed", t1 + Duration::from_secs(2));
        let mut f = l.flush(t1 + Duration::from_secs(20));
        f.sort();
        assert_eq!(f, vec![("nas".to_string(), "malformed", 2)]);
        assert!(l.flush(t1 + Duration::from_secs(40)).is_empty());
        assert_eq!(
            l.admit("nas", "malformed", t1 + Duration::from_secs(41)),
            Admit::Log { suppressed: 0 }
        );
    }
}
