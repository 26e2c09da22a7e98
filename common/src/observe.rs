//! The seam through which the SxS client reports what it does, for metrics.
//!
//! The client calls an [`SxsObserver`] once per SxS call and whenever it learns that a server
//! is up or down; it never knows what the observer does with that. `sxs-radiusd` passes one
//! that feeds its Prometheus registry; the PAM module, which has no daemon to expose numbers,
//! keeps the default [`NoObserver`].

use std::fmt;
use std::time::Duration;

/// Receives what the SxS client did. Implementations must be cheap and must not block: they
/// run on the request path.
pub trait SxsObserver: Send + Sync + fmt::Debug {
    /// One SxS call ended. `method` is the SOAP operation (`validateOtp`, …), `server` the
    /// base URL it went to, `verdict` a short word ([`crate::Verdict::kind`]: `accept`,
    /// `reject`, `unavailable`), `latency` the time spent on that server.
    fn sxs_call(
        &self,
        method: &'static str,
        server: &str,
        verdict: &'static str,
        latency: Duration,
    );

    /// `server` (a base URL) was found reachable (`up`) or not, by a call or a health check.
    fn sxs_server(&self, server: &str, up: bool);
}

/// The observer that ignores everything (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl SxsObserver for NoObserver {
    fn sxs_call(&self, _: &'static str, _: &str, _: &'static str, _: Duration) {}
    fn sxs_server(&self, _: &str, _: bool) {}
}
