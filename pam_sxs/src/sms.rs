//! SMS one-time passwords in PAM: the per-user send limit kept in files (every authentication
//! runs in a process of its own), and what the user reads.
#![forbid(unsafe_code)]

use std::sync::Mutex;

use common::sms::{FileLimiter, Refusal, SendLimiter};
use common::Config;

/// The prompt for the code once it was sent.
pub const CODE_PROMPT: &str = "SMS code: ";
/// What the user reads when the per-user limit is reached.
pub const LIMITED_MESSAGE: &str = "Too many SMS codes were requested. Try again later.";

/// What the user reads once SxS took the request.
pub fn sent_message(masked_mobile: Option<&str>) -> String {
    match masked_mobile {
        Some(m) => format!("A code was sent to {m}."),
        None => "A code was sent to your registered mobile.".into(),
    }
}

/// `[sms]`'s file limiter, remembering whether its state could not be used: the client reports
/// that as `Unavailable` (no SMS is sent), and failmode "safe" must not turn a broken local
/// directory into a way in. Only SxS transport failures are failmode's to decide.
#[derive(Debug)]
pub struct Limiter {
    inner: FileLimiter,
    broken: Mutex<Option<String>>,
}

impl Limiter {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            inner: FileLimiter::new(
                cfg.sms.pam_state_dir.clone(),
                cfg.sms.max_per_user,
                cfg.sms.window,
            ),
            broken: Mutex::new(None),
        }
    }

    /// Why the limiter's state could not be used, if it could not.
    pub fn broken(&self) -> Option<String> {
        match self.broken.lock() {
            Ok(b) => b.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl SendLimiter for Limiter {
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
    fn messages() {
        assert_eq!(
            sent_message(Some("+38599*****67")),
            "A code was sent to +38599*****67."
        );
        assert!(sent_message(None).contains("registered mobile"));
    }
}
