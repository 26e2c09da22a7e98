//! Exit statuses and the one error type of `sxsctl`.
//!
//! Every failure ends as one [`Failure`]: `main` prints `error: …` once on stderr (and, with
//! `--json`, one JSON object on stdout) and exits with its [`Exit`] status.

use std::fmt;

use serde_json::json;

/// The exit statuses, documented in `--help` and sxsctl(1) from [`EXIT_STATUS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what it says.
    Success = 0,
    /// SxS answered and said no (exception or SOAP fault), or the OTP was not accepted.
    Refused = 1,
    /// Bad arguments, invalid input (nothing sent), configuration or token-map error.
    Usage = 2,
    /// No usable answer from SxS: network, TLS, timeout, unreadable answer; a root is down.
    Unavailable = 3,
    /// SxS did its part but a local step failed afterwards (token map, standard output).
    Local = 4,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Exit statuses with their meaning: the table printed by `--help` and the man page.
pub const EXIT_STATUS: &[(Exit, &str)] = &[
    (
        Exit::Success,
        "Success. health: every SxS root is up; otp check, mac check: SxS accepted the OTP or \
         MAC; sms send: SxS took the SMS; push: approved on the phone and its OTP accepted.",
    ),
    (
        Exit::Refused,
        "SxS said no: an SxS exception or SOAP fault, shown with its code and message. \
         otp check, mac check: the OTP or MAC was rejected (or refused locally as malformed), \
         or the user has no line in the token map. sms send: SxS refused the send, or the \
         per-user limit is reached (nothing was sent). push: rejected, denied on the phone, no \
         answer within push.timeout, or too many pushes waiting.",
    ),
    (
        Exit::Usage,
        "Usage or configuration error: bad arguments, input that failed validation (nothing \
         was sent to SxS), an unreadable or invalid configuration file or token map, a bad CA \
         or client certificate file, an unusable SMS limit directory (sms.pam_state_dir).",
    ),
    (
        Exit::Unavailable,
        "SxS unavailable: network, TLS or timeout error, or an answer that could not be \
         understood; the server and the cause are shown. health: at least one root is down. \
         push: the daemon (sxs-radiusd) is not running or did not answer.",
    ),
    (
        Exit::Local,
        "Local failure after SxS did its part: the token map could not be written (the token \
         exists and its activation codes were printed), or standard output could not be \
         written.",
    ),
];

/// The `--help` text after the options: the exit statuses, wrapped to 80 columns with a
/// hanging indent.
pub fn exit_status_help() -> String {
    const WIDTH: usize = 80;
    const INDENT: &str = "     ";
    let mut text = String::from("Exit status:\n");
    for (exit, meaning) in EXIT_STATUS {
        let mut line = format!("  {}  ", exit.code());
        for word in meaning.split_whitespace() {
            if line.len() + 1 + word.len() > WIDTH && line.len() > INDENT.len() {
                text.push_str(line.trim_end());
                text.push('\n');
                line = INDENT.to_string();
            }
            if !line.ends_with(' ') {
                line.push(' ');
            }
            line.push_str(word);
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str("\nSee sxsctl(1) and docs/sxsctl.md for examples.");
    text
}

/// Why a command failed.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    /// The whole message, shown after `error: `.
    pub message: String,
    /// The SxS operation, exception code and message, when SxS gave them.
    pub sxs: Option<SxsDetail>,
}

/// An SxS exception or fault, for `--json`.
#[derive(Debug, Clone)]
pub struct SxsDetail {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            sxs: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// Adds what the operator should do next after the message.
    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.message = format!("{} ({hint})", self.message);
        self
    }

    /// The `--json` form of the error.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = json!({
            "exit_code": self.exit.code(),
            "message": self.message,
        });
        if let (Some(sxs), Some(obj)) = (&self.sxs, error.as_object_mut()) {
            obj.insert("operation".into(), sxs.operation.into());
            obj.insert("sxs_code".into(), sxs.code.clone().into());
            obj.insert("sxs_message".into(), sxs.message.clone().into());
        }
        json!({ "error": error })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<common::Error> for Failure {
    fn from(e: common::Error) -> Self {
        use common::Error as E;
        let exit = match &e {
            E::Sxs { .. } => Exit::Refused,
            E::SxsUnavailable { .. } => Exit::Unavailable,
            E::ConfigFile { .. }
            | E::ConfigKey { .. }
            | E::SecretFileMode { .. }
            | E::ReadFile { .. }
            | E::TokenMap { .. }
            | E::HttpClient(_)
            | E::InvalidInput { .. } => Exit::Usage,
            // A variant added later: a failure, not a success.
            _ => Exit::Refused,
        };
        let sxs = match &e {
            E::Sxs {
                operation,
                code,
                message,
            } => Some(SxsDetail {
                operation,
                code: code.clone(),
                message: message.clone(),
            }),
            _ => None,
        };
        Self {
            exit,
            message: e.to_string(),
            sxs,
        }
    }
}

/// Standard output that cannot be written (a closed pipe): the command's result is lost.
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::new(Exit::Local, format!("cannot write the output: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_errors_map_to_exit_statuses() {
        let sxs: Failure = common::Error::Sxs {
            operation: "mtmRenewActivationCode",
            code: "2002".into(),
            message: "Unknown token".into(),
        }
        .into();
        assert_eq!(sxs.exit, Exit::Refused);
        assert!(sxs.message.contains("2002") && sxs.message.contains("Unknown token"));
        assert_eq!(sxs.to_json()["error"]["sxs_code"], "2002");
        let down: Failure = common::Error::SxsUnavailable {
            operation: "createOrUpdateSxsUser",
            cause: "http://x: connection refused".into(),
        }
        .into();
        assert_eq!(down.exit, Exit::Unavailable);
        let bad: Failure = common::Error::InvalidInput {
            field: "--mobile",
            message: "x".into(),
        }
        .into();
        assert_eq!(bad.exit, Exit::Usage);
    }

    #[test]
    fn exit_help_fits_80_columns() {
        let help = exit_status_help();
        assert!(help.lines().all(|l| l.len() <= 80), "{help}");
        assert!(help.contains("\n  3  SxS unavailable:"), "{help}");
    }

    #[test]
    fn every_exit_status_is_documented_once() {
        let codes: Vec<u8> = EXIT_STATUS.iter().map(|(e, _)| e.code()).collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4]);
    }
}
