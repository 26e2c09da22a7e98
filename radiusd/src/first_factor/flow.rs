//! The handler's path for a client with a first factor: password, then OTP.
//!
//! - `append` / `separator`: one Access-Request carries both; the password is checked first,
//!   and only a right password lets the OTP reach SxS.
//! - `challenge`: the Access-Request carries the password; when it is right, an
//!   Access-Challenge asks for the OTP with a State signed as "first factor passed"; the
//!   follow-up's `User-Password` is the OTP.
//!
//! A backend that cannot be asked is a Reject (failmode is about SxS only).

use common::config::{FirstFactorKind, PasswordOtp};
use common::{Mapping, Method, Secret, Verifier};

use super::{split, Check, PassedEntry};
use crate::handler::{outcome, Outcome, Reply, SxsHandler, NOT_ADMITTED};
use crate::reply::Attributes;
use crate::state::{Context, StateSigner};

/// The State context of an OTP challenge issued after the password passed.
pub const AFTER_PASSWORD: Context = Context {
    method: Method::Otp,
    first_factor: true,
};

fn reject(user: &str, decision: &'static str) -> Outcome {
    outcome(Reply::Reject, user, decision)
}

impl<V: Verifier + 'static> SxsHandler<V> {
    pub(crate) async fn handle_first_factor(
        &self,
        request: crate::handler::AccessRequest,
        kind: FirstFactorKind,
        mode: &PasswordOtp,
    ) -> Outcome {
        let login = request.user.as_deref().unwrap_or_default();
        let (user, identity) = match self.mapper.map(login) {
            Mapping::Invalid { .. } => return reject(login, "invalid-user-name"),
            Mapping::NotInTokenMap { user } => (user, None),
            Mapping::Known(identity) => (identity.user.clone(), Some(identity)),
        };
        let client = request.client.as_str();
        let Some(value) = request.password else {
            return reject(&user, "no-password");
        };
        if let Some(state) = &request.state {
            if *mode != PasswordOtp::Challenge {
                return reject(&user, "unexpected-state");
            }
            return self
                .after_challenge(&user, identity, client, state, &value, request.reply_room)
                .await;
        }
        let Some((password, otp)) = split(mode, &value) else {
            tracing::info!(
                user,
                client,
                "User-Password is not in the configured password + OTP form"
            );
            return reject(&user, "bad-password-otp-form");
        };
        let (groups, upstream) = match self.factors.backends.check(kind, &user, &password).await {
            Check::Pass { groups, attributes } => (groups, attributes),
            Check::Fail { reason } => {
                tracing::info!(
                    user,
                    client,
                    first_factor = kind.as_str(),
                    reason,
                    "first factor refused"
                );
                return reject(&user, "first-factor-reject");
            }
            Check::Unavailable { cause } => {
                tracing::warn!(
                    user,
                    client,
                    first_factor = kind.as_str(),
                    cause,
                    "first factor unavailable: Reject (failmode applies to SxS only)"
                );
                return reject(&user, "first-factor-unavailable");
            }
        };
        drop(password);
        // Required groups: the first factor's (LDAP) or the system's (NSS).
        if !self.policy.admits(&groups) && !self.admitted(&user).await {
            tracing::info!(
                user,
                client,
                "user is in none of policy.required_groups: refused before SxS"
            );
            return reject(&user, NOT_ADMITTED);
        }
        let entry = PassedEntry {
            groups,
            attributes: upstream,
        };
        // The Accept must fit before SxS is asked (upstream attributes are known only now).
        if let Some(o) = self.too_large(&user, client, &entry, request.reply_room) {
            return o;
        }
        let exempt_by_group = entry
            .groups
            .iter()
            .any(|g| self.policy.exempt_groups.contains(g));
        if exempt_by_group || self.is_exempt(&user).await {
            return self.accept(&user, "exempt", entry);
        }
        let Some(identity) = identity else {
            let d = self.policy.decide_unenrolled();
            return if d.allows() {
                self.accept(&user, d.as_str(), entry)
            } else {
                reject(&user, d.as_str())
            };
        };
        match otp {
            Some(otp) => {
                self.verify_then_attributes(&identity, &otp, client, entry)
                    .await
            }
            None => {
                let o = self.challenge_for(AFTER_PASSWORD, &user, client);
                if let Reply::Challenge { state, .. } = &o.reply {
                    let now = self.clock.now_unix();
                    let Some(nonce) = StateSigner::nonce_of(state) else {
                        return reject(&user, "state-error");
                    };
                    let expires_at = now.saturating_add(self.state_ttl.as_secs());
                    if let Err(cause) = self.passed.insert(nonce, expires_at, now, entry).await {
                        tracing::error!(user, client, cause,
                            "cannot keep the first factor's result for the OTP round: Reject (fail closed)");
                        return reject(&user, "first-factor-store-unavailable");
                    }
                }
                o
            }
        }
    }

    /// The follow-up of a password-then-OTP challenge: `otp` is the User-Password.
    async fn after_challenge(
        &self,
        user: &str,
        identity: Option<common::Identity>,
        client: &str,
        state: &[u8],
        otp: &Secret,
        reply_room: usize,
    ) -> Outcome {
        let Some(signer) = &self.signer else {
            return reject(user, "no-state-key");
        };
        let now = self.clock.now_unix();
        let redeemed = self
            .used_states
            .redeem(signer, state, user.as_bytes(), client.as_bytes(), now)
            .await;
        match redeemed {
            Ok(nonce) if nonce.context() == AFTER_PASSWORD => {}
            Ok(nonce) => {
                tracing::info!(user, client, context = ?nonce.context(),
                    "challenge State was not issued after a passed first factor");
                return reject(user, "bad-state");
            }
            Err(e @ crate::state::StateError::Store(_)) => {
                tracing::error!(user, client, error = %e,
                    "challenge State refused: the shared store is unreachable (fail closed)");
                return reject(user, "state-store-unavailable");
            }
            Err(e) => {
                tracing::info!(user, client, error = %e, "challenge State refused");
                return reject(user, "bad-state");
            }
        }
        let taken = match StateSigner::nonce_of(state) {
            Some(nonce) => self.passed.take(&nonce, now).await,
            None => Ok(None),
        };
        let entry = match taken {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                tracing::warn!(user, client,
                    "challenge answered on an instance that did not issue it (without [shared] redis_url), after it expired, or after a restart: the login starts again");
                return reject(user, "challenge-unknown-here");
            }
            Err(cause) => {
                tracing::error!(
                    user,
                    client,
                    cause,
                    "the first factor's result cannot be read: Reject (fail closed)"
                );
                return reject(user, "first-factor-store-unavailable");
            }
        };
        let Some(identity) = identity else {
            return reject(user, "deny-unenrolled");
        };
        // This round's Proxy-States may leave less room than the first's.
        if let Some(o) = self.too_large(user, client, &entry, reply_room) {
            return o;
        }
        self.verify_then_attributes(&identity, otp, client, entry)
            .await
    }

    fn attributes(&self, entry: PassedEntry) -> Attributes {
        let PassedEntry {
            groups,
            attributes: mut upstream,
        } = entry;
        let mut a = self.factors.reply.for_groups(&groups);
        a.append(&mut upstream);
        a
    }

    /// Refuses, before SxS is asked, a login whose Accept could not be sent: its attributes
    /// (the groups' and the upstream server's) do not fit in what `reply_room` leaves.
    fn too_large(
        &self,
        user: &str,
        client: &str,
        entry: &PassedEntry,
        reply_room: usize,
    ) -> Option<Outcome> {
        let attributes = self.attributes(entry.clone());
        let pairs: Vec<(u8, &[u8])> = attributes.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let needed = crate::packet::encoded_attributes_len(&pairs);
        if needed <= reply_room {
            return None;
        }
        tracing::warn!(
            user,
            client,
            needed,
            room = reply_room,
            "the Accept's attributes (reply rules and upstream pass-through) would not fit in a RADIUS packet: Reject before SxS is asked"
        );
        Some(reject(user, "reply-too-large"))
    }

    fn accept(&self, user: &str, decision: &'static str, entry: PassedEntry) -> Outcome {
        Outcome {
            attributes: self.attributes(entry),
            ..outcome(Reply::Accept, user, decision)
        }
    }

    /// The OTP, and on Accept the attributes of what passed.
    async fn verify_then_attributes(
        &self,
        identity: &common::Identity,
        otp: &Secret,
        client: &str,
        entry: PassedEntry,
    ) -> Outcome {
        let mut o = self.verify_otp(identity, otp, client).await;
        if o.reply == Reply::Accept {
            o.attributes = self.attributes(entry);
        }
        o
    }

    /// SxS validateOtp, then policy (failmode, unenrolled codes).
    async fn verify_otp(&self, identity: &common::Identity, otp: &Secret, client: &str) -> Outcome {
        let start = std::time::Instant::now();
        let verdict = self.verifier.verify(identity, otp).await;
        self.decide(
            client,
            identity.user.clone(),
            Method::Otp,
            verdict,
            start.elapsed(),
        )
    }
}
