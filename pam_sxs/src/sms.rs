//! SMS one-time passwords in PAM: the per-user send limit kept in files (every authentication
//! runs in a process of its own), and what the user reads.
#![forbid(unsafe_code)]

use common::sms::{FileLimiter, Recording};
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
pub type Limiter = Recording<FileLimiter>;

/// The limiter `[sms]` configures for PAM: files in `pam_state_dir`.
pub fn limiter(cfg: &Config) -> Limiter {
    Recording::new(FileLimiter::new(
        cfg.sms.pam_state_dir.clone(),
        cfg.sms.max_per_user,
        cfg.sms.window,
    ))
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
