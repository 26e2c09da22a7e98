//! `sxs-radiusd` as a library: the RADIUS server that asks SxS, through `common`.
//!
//! The per-packet path is: receive → validate ([`packet`], [`auth`], [`clients`]) → dedup
//! ([`dedup`]) → handle ([`handler`]: [`first_factor`] → OTP → policy, challenge [`state`] and
//! its single use [`redeem`], [`reply`] attributes named by the [`dictionary`]) → encode → send,
//! in [`server`]. It may touch the UDP sockets it is given, SxS (through `common`), the LDAP or
//! RADIUS servers of a configured first factor, its HTTP listener and, when
//! `[shared] redis_url` is set, Redis/Valkey ([`approval::redis`]); nothing else.
#![forbid(unsafe_code)]

pub mod approval;
pub mod auth;
pub mod budget;
pub mod clients;
pub mod dedup;
pub mod dictionary;
pub mod first_factor;
pub mod handler;
pub mod http;
pub mod log_format;
pub mod log_limit;
pub mod log_writer;
pub mod metrics;
pub mod oob;
pub mod packet;
pub mod pamsock;
pub mod push;
pub mod redeem;
pub mod reply;
pub mod server;
pub mod state;
pub mod tls;
