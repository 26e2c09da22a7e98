//! Out-of-band login (PROTOCOL.md §2): a waiting login shows a challenge (digits, and a QR code
//! on a terminal); the user's authenticator app computes its response and calls our
//! DP4Mobile-style endpoint ([`crate::http`]), which validates it with SxS and completes the
//! waiting login through the approval store.
//!
//! The challenge is [`CHALLENGE_DIGITS`] random decimal digits and names the pending entry
//! (`oob-<challenge>`), because it is all the app sends back besides its serial; a collision with
//! another waiting challenge is retried. The response is validated as a MAC over the challenge
//! (`validate_mac`), so only the user's own token can answer it.

use std::time::Duration;

use common::{Identity, Method};

use crate::approval::{ApprovalStore, CreateError, Pending, Waiter};

/// Digits in a challenge (the simulator's OCRA tokens take at most 8).
pub const CHALLENGE_DIGITS: usize = 8;

/// The store id of the out-of-band login waiting for `challenge`.
pub fn pending_id(challenge: &str) -> String {
    format!("oob-{challenge}")
}

/// Registers an out-of-band login for `identity`, valid for `timeout`; returns the challenge to
/// show and the waiter that completes when the app answers (or `None` after `timeout`).
pub async fn start(
    store: &ApprovalStore,
    identity: Identity,
    origin: &str,
    timeout: Duration,
    now_unix: u64,
) -> Result<(String, Waiter), CreateError> {
    for _ in 0..5 {
        let challenge = format!(
            "{:0width$}",
            rand::random::<u64>() % 10u64.pow(CHALLENGE_DIGITS as u32),
            width = CHALLENGE_DIGITS
        );
        let pending = Pending {
            id: pending_id(&challenge),
            method: Method::Oob,
            identity: identity.clone(),
            origin: origin.to_string(),
            expires_at: now_unix.saturating_add(timeout.as_secs().max(1)),
        };
        match store.create(pending, now_unix).await {
            Ok(waiter) => return Ok((challenge, waiter)),
            Err(CreateError::Exists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(CreateError::Backend(
        "no free challenge after 5 tries".into(),
    ))
}
