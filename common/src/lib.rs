//! `common`: the one place that knows SxS.
//!
//! Configuration ([`config`]), identity mapping ([`identity`]), SOAP envelopes ([`soap`]),
//! the async SxS client with failover and health ([`client`]), the [`Verdict`] both front ends
//! consume, the shared [`policy`], and the SxS simulator ([`sim`], feature `sim`) that tests,
//! benchmarks and the demo run against. It may touch the network (SxS only) and read its
//! configuration files; it never prints (it logs through `tracing`).
#![forbid(unsafe_code)]

pub mod client;
pub mod codes;
pub mod config;
pub mod error;
pub mod identity;
pub mod method;
pub mod observe;
pub mod pamsock;
pub mod policy;
pub mod secret;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sms;
pub mod soap;
pub mod totp;
pub mod verdict;

pub use client::{SmsSent, SxsClient, Verifier};
pub use config::Config;
pub use error::{Error, Result};
pub use identity::{Identity, IdentityMapper, Mapping};
pub use method::{Method, Methods};
pub use observe::{NoObserver, SxsObserver};
pub use policy::Decision;
pub use secret::{Otp, Secret};
pub use verdict::Verdict;
