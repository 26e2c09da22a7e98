//! Limits on sending SMS one-time passwords: SMS costs money and is a harassment vector, so
//! each user gets at most `sms.max_per_user` sends per `sms.window`.
//!
//! Two implementations of one trait: [`MemoryLimiter`] for the long-running `sxs-radiusd`
//! (per instance: N instances allow up to N times the limit), and [`FileLimiter`] for
//! `pam_sxs`, whose every authentication runs in a separate process, so the count lives in a
//! root-only directory, one small file per user, updated under an exclusive lock.
//! A send is counted when it is attempted, not when SxS confirms it: a request that may have
//! reached SxS may have sent an SMS.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Why a send was not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user reached the limit; a send is allowed again after this many seconds.
    Limited { retry_after_secs: u64 },
    /// The limiter's own state could not be read or written (fail closed).
    Broken(String),
}

/// Counts SMS sends per user.
pub trait SendLimiter: Send + Sync + fmt::Debug {
    /// Records one send for `user` at `now_unix` if the user is under the limit.
    fn try_acquire(&self, user: &str, now_unix: u64) -> Result<(), Refusal>;
}

/// Keeps `times` within the window ending at `now`, then admits one more if there is room.
fn admit(times: &mut VecDeque<u64>, max: u32, window: Duration, now: u64) -> Result<(), Refusal> {
    let window = window.as_secs().max(1);
    while times
        .front()
        .is_some_and(|&t| t.saturating_add(window) <= now)
    {
        times.pop_front();
    }
    if times.len() >= max as usize {
        let oldest = times.front().copied().unwrap_or(now);
        return Err(Refusal::Limited {
            retry_after_secs: oldest.saturating_add(window).saturating_sub(now).max(1),
        });
    }
    times.push_back(now);
    Ok(())
}

/// In-process limiter (for `sxs-radiusd`). Bounded: users whose sends have all left the window
/// are forgotten when the table grows. Kept across configuration reloads, which may change
/// its limits ([`MemoryLimiter::set_limits`]) without forgetting who sent what.
#[derive(Debug)]
pub struct MemoryLimiter {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    max: u32,
    window: Duration,
    users: HashMap<String, VecDeque<u64>>,
}

impl MemoryLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            inner: Mutex::new(MemoryInner {
                max,
                window,
                users: HashMap::new(),
            }),
        }
    }

    /// New limits, from a reloaded configuration.
    pub fn set_limits(&self, max: u32, window: Duration) {
        let mut inner = match self.inner.lock() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        inner.max = max;
        inner.window = window;
    }
}

impl SendLimiter for MemoryLimiter {
    fn try_acquire(&self, user: &str, now_unix: u64) -> Result<(), Refusal> {
        let mut inner = match self.inner.lock() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        let (max, window) = (inner.max, inner.window);
        if inner.users.len() > 10_000 {
            let secs = window.as_secs().max(1);
            inner
                .users
                .retain(|_, t| t.back().is_some_and(|&last| last + secs > now_unix));
        }
        let times = inner.users.entry(user.to_string()).or_default();
        admit(times, max, window, now_unix)
    }
}

/// File-backed limiter (for `pam_sxs`): `dir/<sha256(user)>` holds the send times, one per line.
/// The directory is created `0700`; one that other users can write to is refused.
#[derive(Debug, Clone)]
pub struct FileLimiter {
    dir: PathBuf,
    max: u32,
    window: Duration,
}

impl FileLimiter {
    pub fn new(dir: PathBuf, max: u32, window: Duration) -> Self {
        Self { dir, max, window }
    }

    fn path_for(&self, user: &str) -> PathBuf {
        let digest = Sha256::digest(user.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    fn update(&self, user: &str, now: u64) -> std::io::Result<Result<(), Refusal>> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let meta = std::fs::metadata(&self.dir)?;
        if meta.mode() & 0o022 != 0 {
            return Ok(Err(Refusal::Broken(format!(
                "{} is writable by other users (mode {:04o}); run `chmod 700 {}`",
                self.dir.display(),
                meta.mode() & 0o7777,
                self.dir.display()
            ))));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.path_for(user))?;
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut times: VecDeque<u64> = text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&t| t <= now)
            .collect();
        let verdict = admit(&mut times, self.max, self.window, now);
        let out: String = times.iter().map(|t| format!("{t}\n")).collect();
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(out.as_bytes())?;
        Ok(verdict)
    }
}

impl SendLimiter for FileLimiter {
    fn try_acquire(&self, user: &str, now_unix: u64) -> Result<(), Refusal> {
        self.update(user, now_unix).unwrap_or_else(|e| {
            Err(Refusal::Broken(format!(
                "SMS rate-limit state in {}: {e}",
                self.dir.display()
            )))
        })
    }
}

/// A limiter that remembers why its state could not be used: `send_sms_otp` reports that as
/// `Unavailable` (nothing was sent), and a front end must not let failmode "safe" open on a
/// broken local directory, nor an operator tool call it an SxS outage.
#[derive(Debug)]
pub struct Recording<L> {
    inner: L,
    broken: Mutex<Option<String>>,
}

impl<L: SendLimiter> Recording<L> {
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            broken: Mutex::new(None),
        }
    }

    /// Why the state could not be used, if it could not.
    pub fn broken(&self) -> Option<String> {
        match self.broken.lock() {
            Ok(b) => b.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl<L: SendLimiter> SendLimiter for Recording<L> {
    fn try_acquire(&self, user: &str, now_unix: u64) -> Result<(), Refusal> {
        let r = self.inner.try_acquire(user, now_unix);
        if let Err(Refusal::Broken(cause)) = &r {
            match self.broken.lock() {
                Ok(mut b) => *b = Some(cause.clone()),
                Err(p) => *p.into_inner() = Some(cause.clone()),
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_remembers_a_broken_state_only() {
        let ok = Recording::new(MemoryLimiter::new(1, Duration::from_secs(60)));
        assert_eq!(ok.try_acquire("a", 1), Ok(()));
        assert!(ok.try_acquire("a", 2).is_err());
        assert_eq!(ok.broken(), None, "a limit reached is not a broken state");
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let bad = Recording::new(FileLimiter::new(
            dir.path().to_path_buf(),
            3,
            Duration::from_secs(60),
        ));
        assert!(bad.try_acquire("a", 1).is_err());
        assert!(bad
            .broken()
            .is_some_and(|c| c.contains("writable by other users")));
    }

    fn check(l: &dyn SendLimiter) {
        let t = 1_000_000;
        for i in 0..3 {
            assert_eq!(l.try_acquire("alice", t + i), Ok(()));
        }
        assert_eq!(
            l.try_acquire("alice", t + 10),
            Err(Refusal::Limited {
                retry_after_secs: 290
            })
        );
        // Others are not affected.
        assert_eq!(l.try_acquire("bob", t + 10), Ok(()));
        // The first send leaves the window at t+300.
        assert!(l.try_acquire("alice", t + 299).is_err());
        assert_eq!(l.try_acquire("alice", t + 300), Ok(()));
        assert!(l.try_acquire("alice", t + 300).is_err());
    }

    #[test]
    fn memory_limiter() {
        check(&MemoryLimiter::new(3, Duration::from_secs(300)));
        let zero = MemoryLimiter::new(0, Duration::from_secs(300));
        assert!(matches!(
            zero.try_acquire("a", 1),
            Err(Refusal::Limited { .. })
        ));
    }

    #[test]
    fn file_limiter_persists_across_instances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sms");
        check(&FileLimiter::new(path.clone(), 3, Duration::from_secs(300)));
        // A new limiter (a new PAM process) sees the same counts.
        let again = FileLimiter::new(path.clone(), 3, Duration::from_secs(300));
        assert!(again.try_acquire("alice", 1_000_300).is_err());
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // The file name does not reveal the user.
        for e in std::fs::read_dir(&path).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert_eq!(name.len(), 64);
            assert!(!name.contains("alice"));
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            again.try_acquire("carol", 1),
            Err(Refusal::Broken(m)) if m.contains("writable by other users")
        ));
    }

    use std::os::unix::fs::PermissionsExt;
}
