//! The one answer both front ends consume.

use std::fmt;

/// What SxS (or any [`crate::Verifier`]) said about one OTP. Serde: the shared approval store
/// carries a verdict from the instance that checked it to the one that waits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// SxS validated the OTP. Only ever built from a well-formed success response.
    Accept { token_sn: String, user_id: String },
    /// SxS answered and said no: an exception (`code`, `message`) or a SOAP fault.
    Reject { code: String, message: String },
    /// No usable answer: connect error, timeout, TLS failure, 5xx without a SOAP body, a
    /// response we do not fully understand. Whether to let the user in is policy (`failmode`).
    Unavailable { cause: String },
}

impl Verdict {
    /// A short word for logs and metrics: `accept`, `reject`, `unavailable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Accept { .. } => "accept",
            Verdict::Reject { .. } => "reject",
            Verdict::Unavailable { .. } => "unavailable",
        }
    }

    /// The SxS exception or fault code, if SxS gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Verdict::Reject { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn unavailable(cause: impl Into<String>) -> Self {
        Verdict::Unavailable {
            cause: cause.into(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept { token_sn, user_id } => {
                write!(f, "accept (user {user_id}, token {token_sn})")
            }
            Verdict::Reject { code, message } => write!(f, "reject (SxS {code}: {message})"),
            Verdict::Unavailable { cause } => write!(f, "unavailable ({cause})"),
        }
    }
}
