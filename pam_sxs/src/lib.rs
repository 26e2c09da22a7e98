//! `pam_sxs.so`: the PAM doorway of sxs-auth.
//!
//! Thin by design: parse the module arguments ([`args`]), talk to the user through the PAM
//! conversation, make one call into `common` ([`auth`]), answer with a PAM code ([`code`]).
//! The logic is ordinary Rust, generic over the [`pam::Pam`] trait; the only file that knows
//! raw pointers is `ffi.rs`, which holds the six `pam_sm_*` entry points and every `unsafe`
//! block of the crate. This room may read the configuration file and reach SxS (through
//! `common`); it never prints, it logs to syslog (authpriv).
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod args;
pub mod auth;
pub mod calls;
pub mod code;
pub mod logging;
pub mod mac_input;
pub mod pam;
pub mod sms;

// The hook registration: `pam_sm_authenticate`, `pam_sm_setcred`, `pam_sm_acct_mgmt`,
// `pam_sm_open_session`, `pam_sm_close_session` and `pam_sm_chauthtok`.
#[allow(unsafe_code)]
mod ffi;

#[cfg(test)]
mod fake;
