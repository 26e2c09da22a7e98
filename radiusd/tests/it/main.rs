//! End-to-end tests of `sxs-radiusd`: the real binary, the simulator over real HTTP, and
//! FreeRADIUS's `radclient` as the peer that decides whether we pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod first_factor;
mod harness;
mod methods;
mod metrics;
mod oob;
mod peers;
mod protocol;
mod push;
mod radclient;
mod radsec;
mod recipes;
mod shared;
