//! `sxs-radiusd`: filled in by the RADIUS issue.
#![forbid(unsafe_code)]
fn main() {}
