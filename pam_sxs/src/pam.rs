//! What the authentication logic needs from PAM, as a trait: the real handle (`ffi.rs`) is one
//! implementation, the scripted fake of the unit tests another.
#![forbid(unsafe_code)]

use common::Secret;

use crate::code::PamResult;

/// A PAM item the module reads for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    Service,
    RHost,
    Tty,
    RUser,
}

/// How a message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `PAM_ERROR_MSG`.
    Error,
    /// `PAM_TEXT_INFO`.
    Info,
}

/// Syslog severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    /// The syslog(3) priority number.
    pub fn syslog_priority(self) -> i32 {
        match self {
            Level::Err => 3,
            Level::Warning => 4,
            Level::Notice => 5,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// The PAM handle, as the authentication logic sees it.
pub trait Pam {
    /// `PAM_USER` (`pam_get_user`, which may prompt for it).
    fn user(&mut self) -> PamResult<String>;
    /// A string item, when set.
    fn item(&self, item: Item) -> Option<String>;
    /// `PAM_AUTHTOK`, when an earlier module set it.
    fn authtok(&self) -> PamResult<Option<Secret>>;
    /// Sets `PAM_AUTHTOK` for the modules stacked after this one.
    fn set_authtok(&mut self, token: &Secret) -> PamResult<()>;
    /// Asks the user, without echo.
    fn prompt(&mut self, text: &str) -> PamResult<Secret>;
    /// Shows a message.
    fn message(&mut self, style: Style, text: &str) -> PamResult<()>;
    /// Writes one line to syslog (authpriv). Never given a secret.
    fn log(&mut self, level: Level, line: &str);
    /// `pam_fail_delay`: asks libpam to wait about this long (it randomises ±50 %) before it
    /// returns a failure to the application; libpam keeps the largest delay any module asked.
    fn fail_delay(&mut self, delay: std::time::Duration) -> PamResult<()>;
    /// Waits, blocking (the deny floor). A parameter so tests do not wait.
    fn pause(&mut self, duration: std::time::Duration);
}
