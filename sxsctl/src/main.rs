//! `sxsctl`: filled in by the sxsctl issue.
#![forbid(unsafe_code)]
fn main() {}
