//! Every PAM return code, through one enum with an exhaustive mapping to Linux-PAM's numbers.
#![forbid(unsafe_code)]

use std::ffi::c_int;

/// `Result` whose error is the PAM code to return.
pub type PamResult<T> = Result<T, PamCode>;

/// The Linux-PAM return codes (`<security/_pam_types.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamCode {
    Success,
    OpenErr,
    SymbolErr,
    ServiceErr,
    SystemErr,
    BufErr,
    PermDenied,
    AuthErr,
    CredInsufficient,
    AuthInfoUnavail,
    UserUnknown,
    MaxTries,
    NewAuthtokReqd,
    AcctExpired,
    SessionErr,
    CredUnavail,
    CredExpired,
    CredErr,
    NoModuleData,
    ConvErr,
    AuthtokErr,
    AuthtokRecoveryErr,
    AuthtokLockBusy,
    AuthtokDisableAging,
    TryAgain,
    Ignore,
    Abort,
    AuthtokExpired,
    ModuleUnknown,
    BadItem,
    ConvAgain,
    Incomplete,
}

impl PamCode {
    /// The number Linux-PAM expects.
    pub fn to_raw(self) -> c_int {
        match self {
            PamCode::Success => 0,
            PamCode::OpenErr => 1,
            PamCode::SymbolErr => 2,
            PamCode::ServiceErr => 3,
            PamCode::SystemErr => 4,
            PamCode::BufErr => 5,
            PamCode::PermDenied => 6,
            PamCode::AuthErr => 7,
            PamCode::CredInsufficient => 8,
            PamCode::AuthInfoUnavail => 9,
            PamCode::UserUnknown => 10,
            PamCode::MaxTries => 11,
            PamCode::NewAuthtokReqd => 12,
            PamCode::AcctExpired => 13,
            PamCode::SessionErr => 14,
            PamCode::CredUnavail => 15,
            PamCode::CredExpired => 16,
            PamCode::CredErr => 17,
            PamCode::NoModuleData => 18,
            PamCode::ConvErr => 19,
            PamCode::AuthtokErr => 20,
            PamCode::AuthtokRecoveryErr => 21,
            PamCode::AuthtokLockBusy => 22,
            PamCode::AuthtokDisableAging => 23,
            PamCode::TryAgain => 24,
            PamCode::Ignore => 25,
            PamCode::Abort => 26,
            PamCode::AuthtokExpired => 27,
            PamCode::ModuleUnknown => 28,
            PamCode::BadItem => 29,
            PamCode::ConvAgain => 30,
            PamCode::Incomplete => 31,
        }
    }

    /// The code for a number libpam returned; an unknown number is a system error.
    pub fn from_raw(raw: c_int) -> PamCode {
        ALL.iter()
            .copied()
            .find(|c| c.to_raw() == raw)
            .unwrap_or(PamCode::SystemErr)
    }

    /// The name as in the C headers, for logs.
    pub fn name(self) -> &'static str {
        match self {
            PamCode::Success => "PAM_SUCCESS",
            PamCode::OpenErr => "PAM_OPEN_ERR",
            PamCode::SymbolErr => "PAM_SYMBOL_ERR",
            PamCode::ServiceErr => "PAM_SERVICE_ERR",
            PamCode::SystemErr => "PAM_SYSTEM_ERR",
            PamCode::BufErr => "PAM_BUF_ERR",
            PamCode::PermDenied => "PAM_PERM_DENIED",
            PamCode::AuthErr => "PAM_AUTH_ERR",
            PamCode::CredInsufficient => "PAM_CRED_INSUFFICIENT",
            PamCode::AuthInfoUnavail => "PAM_AUTHINFO_UNAVAIL",
            PamCode::UserUnknown => "PAM_USER_UNKNOWN",
            PamCode::MaxTries => "PAM_MAXTRIES",
            PamCode::NewAuthtokReqd => "PAM_NEW_AUTHTOK_REQD",
            PamCode::AcctExpired => "PAM_ACCT_EXPIRED",
            PamCode::SessionErr => "PAM_SESSION_ERR",
            PamCode::CredUnavail => "PAM_CRED_UNAVAIL",
            PamCode::CredExpired => "PAM_CRED_EXPIRED",
            PamCode::CredErr => "PAM_CRED_ERR",
            PamCode::NoModuleData => "PAM_NO_MODULE_DATA",
            PamCode::ConvErr => "PAM_CONV_ERR",
            PamCode::AuthtokErr => "PAM_AUTHTOK_ERR",
            PamCode::AuthtokRecoveryErr => "PAM_AUTHTOK_RECOVERY_ERR",
            PamCode::AuthtokLockBusy => "PAM_AUTHTOK_LOCK_BUSY",
            PamCode::AuthtokDisableAging => "PAM_AUTHTOK_DISABLE_AGING",
            PamCode::TryAgain => "PAM_TRY_AGAIN",
            PamCode::Ignore => "PAM_IGNORE",
            PamCode::Abort => "PAM_ABORT",
            PamCode::AuthtokExpired => "PAM_AUTHTOK_EXPIRED",
            PamCode::ModuleUnknown => "PAM_MODULE_UNKNOWN",
            PamCode::BadItem => "PAM_BAD_ITEM",
            PamCode::ConvAgain => "PAM_CONV_AGAIN",
            PamCode::Incomplete => "PAM_INCOMPLETE",
        }
    }
}

const ALL: [PamCode; 32] = [
    PamCode::Success,
    PamCode::OpenErr,
    PamCode::SymbolErr,
    PamCode::ServiceErr,
    PamCode::SystemErr,
    PamCode::BufErr,
    PamCode::PermDenied,
    PamCode::AuthErr,
    PamCode::CredInsufficient,
    PamCode::AuthInfoUnavail,
    PamCode::UserUnknown,
    PamCode::MaxTries,
    PamCode::NewAuthtokReqd,
    PamCode::AcctExpired,
    PamCode::SessionErr,
    PamCode::CredUnavail,
    PamCode::CredExpired,
    PamCode::CredErr,
    PamCode::NoModuleData,
    PamCode::ConvErr,
    PamCode::AuthtokErr,
    PamCode::AuthtokRecoveryErr,
    PamCode::AuthtokLockBusy,
    PamCode::AuthtokDisableAging,
    PamCode::TryAgain,
    PamCode::Ignore,
    PamCode::Abort,
    PamCode::AuthtokExpired,
    PamCode::ModuleUnknown,
    PamCode::BadItem,
    PamCode::ConvAgain,
    PamCode::Incomplete,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_numbers() {
        for (i, c) in ALL.iter().enumerate() {
            assert_eq!(c.to_raw(), i as c_int, "{c:?}");
            assert_eq!(PamCode::from_raw(c.to_raw()), *c);
            assert!(c.name().starts_with("PAM_"));
        }
        assert_eq!(PamCode::from_raw(-1), PamCode::SystemErr);
        assert_eq!(PamCode::from_raw(99), PamCode::SystemErr);
        // The numbers the rest of the code relies on, as in <security/_pam_types.h>.
        assert_eq!(PamCode::AuthErr.to_raw(), 7);
        assert_eq!(PamCode::AuthInfoUnavail.to_raw(), 9);
        assert_eq!(PamCode::Ignore.to_raw(), 25);
    }
}
