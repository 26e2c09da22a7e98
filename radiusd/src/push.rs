//! One push, start to end, for every door that starts one: the RADIUS handler
//! ([`crate::handler`]) and the PAM socket ([`crate::pamsock`]). Register a pending approval,
//! ask SxS to push it with the signed callback location, then wait up to `push.timeout` for the
//! HTTP door ([`crate::http`]) to complete it. Two steps, so a door can tell its peer that the
//! push is on the phone before it waits.

use std::time::{Duration, Instant};

use common::{Identity, Method, Verdict, Verifier};

use crate::approval::{new_id, Approval, CreateError, Pending, StoreError, Waiter};
use crate::handler::PushSetup;

/// How a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The store refused a new pending approval (per-user or total limit, store down).
    Refused(CreateError),
    /// SxS did not take the push request: its verdict (a reject, or unavailable).
    NotStarted(Verdict),
    /// Approved on the phone; the OTP that came with the callback was validated: this verdict.
    Checked(Verdict),
    /// Denied on the phone.
    Denied,
    /// No callback within `push.timeout`.
    Timeout,
    /// The shared approval store failed while the login waited: refuse (never SxS's failmode).
    StoreFailed(StoreError),
}

/// A push SxS took, waiting for its callback.
#[derive(Debug)]
pub struct Started {
    waiter: Waiter,
    timeout: Duration,
    /// When SxS was asked (the latency of the decision counts from here).
    pub since: Instant,
}

/// Registers the pending approval and asks SxS to push it. `origin` (the RADIUS client or
/// `pam:SERVICE`) is for logs.
pub async fn start<V: Verifier>(
    setup: &PushSetup,
    verifier: &V,
    identity: &Identity,
    origin: &str,
    now_unix: u64,
) -> Result<Started, Ended> {
    let id = new_id();
    let pending = Pending {
        id: id.clone(),
        method: Method::Push,
        identity: identity.clone(),
        origin: origin.to_string(),
        expires_at: now_unix.saturating_add(setup.timeout.as_secs().max(1)),
    };
    let waiter = setup
        .store
        .create(pending, now_unix)
        .await
        .map_err(Ended::Refused)?;
    let input = format!("{:08}", rand::random::<u32>() % 100_000_000);
    let callback = setup.signer.location(&setup.public_url, &id);
    let since = Instant::now();
    let started = verifier.start_push(identity, &input, &callback).await;
    if !matches!(started, Verdict::Accept { .. }) {
        // Dropping the waiter forgets the pending entry.
        return Err(Ended::NotStarted(started));
    }
    Ok(Started {
        waiter,
        timeout: setup.timeout,
        since,
    })
}

impl Started {
    /// Waits for the callback, up to `push.timeout`.
    pub async fn wait(self) -> Ended {
        ended_of(self.waiter.wait(self.timeout).await)
    }
}

/// How a wait for an approval (push or out-of-band) ended.
pub fn ended_of(waited: Result<Option<Approval>, StoreError>) -> Ended {
    match waited {
        Ok(Some(Approval::Checked(verdict))) => Ended::Checked(verdict),
        Ok(Some(Approval::Denied)) => Ended::Denied,
        Ok(None) => Ended::Timeout,
        Err(e) => Ended::StoreFailed(e),
    }
}

/// [`start`] then [`Started::wait`]: the push's end and how long it took since SxS was asked.
pub async fn run<V: Verifier>(
    setup: &PushSetup,
    verifier: &V,
    identity: &Identity,
    origin: &str,
    now_unix: u64,
) -> (Ended, Duration) {
    let t0 = Instant::now();
    match start(setup, verifier, identity, origin, now_unix).await {
        Ok(started) => {
            let since = started.since;
            (started.wait().await, since.elapsed())
        }
        Err(ended) => (ended, t0.elapsed()),
    }
}
