//! Integration tests: the real `sxsctl` binary against the SxS simulator, started in-process
//! on port 0, with a temporary configuration file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod errors;
mod harness;
mod health;
mod man;
mod otp;
mod sms_mac;
mod tls;
mod token;
mod user;
