//! Integration tests of the SxS client against the simulator over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod harness;
mod observe;
mod sms_mac;
mod validate;
