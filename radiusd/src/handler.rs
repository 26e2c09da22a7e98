//! The "handle" step: one Access-Request in, Accept / Reject / Challenge out. Generic over
//! the [`Verifier`] so tests can run it without SxS; the server runs it with the SxS client.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::config::{Policy, RadiusMode};
use common::{Decision, IdentityMapper, Mapping, Secret, Verdict, Verifier};

use crate::state::{StateSigner, UsedStates};

/// What the handler needs from a request, already decoded and authenticated.
#[derive(Debug)]
pub struct AccessRequest {
    /// The client's configured name.
    pub client: String,
    /// User-Name, when present and UTF-8.
    pub user: Option<String>,
    /// The decoded User-Password (the OTP), wiped on drop.
    pub password: Option<Secret>,
    /// The State attribute, when present.
    pub state: Option<Vec<u8>>,
}

/// The answer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Accept,
    Reject,
    Challenge { state: Vec<u8>, message: String },
}

/// The answer and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reply: Reply,
    /// The normalised user, or what was received.
    pub user: String,
    /// Why, in one word (`allow`, `deny`, `exempt`, `challenge`, `bad-state`, …).
    pub decision: &'static str,
    /// What SxS said, if it was asked.
    pub verdict: Option<Verdict>,
    /// How long SxS took, if it was asked.
    pub sxs_latency: Option<Duration>,
}

/// The handle step.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: AccessRequest) -> impl Future<Output = Outcome> + Send;
    /// Whether Status-Server should be answered (some SxS server is reachable).
    fn is_ready(&self) -> bool;
}

/// Seconds since the Unix epoch; a parameter so State expiry can be tested.
pub trait UnixClock: Send + Sync + std::fmt::Debug {
    fn now_unix(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemUnixClock;

impl UnixClock for SystemUnixClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The SxS-backed handler: identity mapping, policy, challenge State, validateOtp.
#[derive(Debug)]
pub struct SxsHandler<V> {
    pub verifier: Arc<V>,
    pub mapper: IdentityMapper,
    pub policy: Policy,
    pub mode: RadiusMode,
    pub challenge_prompt: String,
    pub signer: Option<StateSigner>,
    /// Redeemed challenge States; kept across reloads by the server.
    pub used_states: Arc<Mutex<UsedStates>>,
    pub state_ttl: Duration,
    pub clock: Arc<dyn UnixClock>,
}

fn outcome(reply: Reply, user: &str, decision: &'static str) -> Outcome {
    Outcome {
        reply,
        user: user.to_string(),
        decision,
        verdict: None,
        sxs_latency: None,
    }
}

impl<V: Verifier + 'static> SxsHandler<V> {
    async fn handle_inner(&self, request: AccessRequest) -> Outcome {
        let Some(login) = request.user.as_deref() else {
            return outcome(Reply::Reject, "", "no-user-name");
        };
        let identity = match self.mapper.map(login) {
            Mapping::Invalid { .. } => return outcome(Reply::Reject, login, "invalid-user-name"),
            Mapping::NotInTokenMap { user } => {
                if self.is_exempt(&user).await {
                    return outcome(Reply::Accept, &user, "exempt");
                }
                let d = self.policy.decide_unenrolled();
                return outcome(reply_of(d), &user, d.as_str());
            }
            Mapping::Known(identity) => identity,
        };
        let user = identity.user.clone();
        if self.is_exempt(&user).await {
            return outcome(Reply::Accept, &user, "exempt");
        }
        match (self.mode, &request.state) {
            (RadiusMode::Otp, Some(_)) => {
                return outcome(Reply::Reject, &user, "unexpected-state");
            }
            (RadiusMode::Challenge, None) => return self.challenge(&user, &request.client),
            (RadiusMode::Challenge, Some(state)) => {
                let Some(signer) = &self.signer else {
                    return outcome(Reply::Reject, &user, "no-state-key");
                };
                let now = self.clock.now_unix();
                let redeemed = match self.used_states.lock() {
                    Ok(mut used) => signer.redeem(
                        &mut used,
                        state,
                        user.as_bytes(),
                        request.client.as_bytes(),
                        now,
                    ),
                    Err(_) => return outcome(Reply::Reject, &user, "state-cache-poisoned"),
                };
                match redeemed {
                    Ok(nonce) if nonce.context() == crate::state::Context::OTP => {}
                    Ok(nonce) => {
                        tracing::info!(user, client = request.client, context = ?nonce.context(),
                            "challenge State was issued for another purpose");
                        return outcome(Reply::Reject, &user, "bad-state");
                    }
                    Err(e) => {
                        tracing::info!(user, client = request.client, error = %e, "challenge State refused");
                        return outcome(Reply::Reject, &user, "bad-state");
                    }
                }
            }
            (RadiusMode::Otp, None) => {}
        }
        let Some(otp) = request.password else {
            return outcome(Reply::Reject, &user, "no-password");
        };
        let start = Instant::now();
        let verdict = self.verifier.verify(&identity, &otp).await;
        let latency = start.elapsed();
        let decision = self.policy.decide(&verdict, self.policy.failmode);
        if decision == Decision::AllowFailOpen {
            tracing::warn!(user, client = request.client, verdict = %verdict,
                "SxS unavailable and failmode = \"safe\": letting the user in WITHOUT a second factor");
        }
        Outcome {
            reply: reply_of(decision),
            user,
            decision: decision.as_str(),
            verdict: Some(verdict),
            sxs_latency: Some(latency),
        }
    }

    /// `exempt_groups` needs the system's user database (NSS: files, sssd, LDAP…), which can
    /// block: off the async workers then.
    async fn is_exempt(&self, user: &str) -> bool {
        if self.policy.exempt_groups.is_empty() {
            return self.policy.is_exempt(user);
        }
        let (policy, user) = (self.policy.clone(), user.to_string());
        tokio::task::spawn_blocking(move || policy.is_exempt(&user))
            .await
            .unwrap_or(false)
    }

    fn challenge(&self, user: &str, client: &str) -> Outcome {
        let Some(signer) = &self.signer else {
            return outcome(Reply::Reject, user, "no-state-key");
        };
        let now = self.clock.now_unix();
        match signer.issue(
            crate::state::Context::OTP,
            user.as_bytes(),
            client.as_bytes(),
            now,
            self.state_ttl,
            &mut rand::rng(),
        ) {
            Ok(state) => outcome(
                Reply::Challenge {
                    state,
                    message: self.challenge_prompt.clone(),
                },
                user,
                "challenge",
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot issue a challenge State");
                outcome(Reply::Reject, user, "state-error")
            }
        }
    }
}

fn reply_of(d: Decision) -> Reply {
    if d.allows() {
        Reply::Accept
    } else {
        Reply::Reject
    }
}

impl<V: Verifier + 'static> Handler for SxsHandler<V> {
    fn handle(&self, request: AccessRequest) -> impl Future<Output = Outcome> + Send {
        self.handle_inner(request)
    }

    fn is_ready(&self) -> bool {
        self.verifier.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::{Config, LoadOptions};
    use common::Identity;

    /// Accepts "123456" for anyone; counts calls.
    #[derive(Debug, Default)]
    struct Fixed {
        calls: std::sync::atomic::AtomicUsize,
        down: bool,
    }

    impl Verifier for Fixed {
        fn verify(
            &self,
            identity: &Identity,
            otp: &Secret,
        ) -> impl Future<Output = Verdict> + Send {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let v = if self.down {
                Verdict::Unavailable {
                    cause: "down".into(),
                }
            } else if otp.expose() == b"123456" {
                Verdict::Accept {
                    token_sn: "1".into(),
                    user_id: identity.user.clone(),
                }
            } else {
                Verdict::Reject {
                    code: "2010".into(),
                    message: "Wrong OTP".into(),
                }
            };
            async move { v }
        }
    }

    #[derive(Debug)]
    struct Clock(std::sync::atomic::AtomicU64);
    impl UnixClock for Clock {
        fn now_unix(&self) -> u64 {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn handler(mode: &str, extra: &str, down: bool) -> (SxsHandler<Fixed>, Arc<Clock>) {
        let cfg = Config::from_toml_str(
            &format!(
                "[sxs]\nservers = [\"http://127.0.0.1:1\"]\norganization_id = \"1\"\n{extra}[radius]\nmode = \"{mode}\"\nstate_key = \"0123456789abcdef0123\"\n"
            ),
            "<t>",
            LoadOptions { env_overrides: false },
        )
        .unwrap();
        let r = cfg.radius.unwrap();
        let clock = Arc::new(Clock(1_000_000.into()));
        let h = SxsHandler {
            verifier: Arc::new(Fixed {
                down,
                ..Fixed::default()
            }),
            mapper: IdentityMapper::new(&cfg.identity).unwrap(),
            policy: cfg.policy,
            mode: r.mode,
            challenge_prompt: r.challenge_prompt,
            signer: r.state_key.map(|k| StateSigner::new(k.expose()).unwrap()),
            used_states: Arc::new(Mutex::new(UsedStates::new(1000))),
            state_ttl: r.state_ttl,
            clock: clock.clone(),
        };
        (h, clock)
    }

    fn req(user: &str, otp: Option<&str>, state: Option<Vec<u8>>) -> AccessRequest {
        AccessRequest {
            client: "nas".into(),
            user: Some(user.into()),
            password: otp.map(Secret::from),
            state,
        }
    }

    #[tokio::test]
    async fn otp_mode() {
        let (h, _) = handler("otp", "", false);
        assert_eq!(
            h.handle(req("Alice@CORP", Some("123456"), None))
                .await
                .reply,
            Reply::Accept
        );
        let o = h.handle(req("alice", Some("000000"), None)).await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "deny"));
        assert_eq!(o.user, "alice");
        let o = h
            .handle(req("alice", Some("123456"), Some(vec![1, 2, 3])))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "unexpected-state"));
        let o = h
            .handle(AccessRequest {
                user: None,
                ..req("x", Some("123456"), None)
            })
            .await;
        assert_eq!(o.reply, Reply::Reject);
    }

    #[tokio::test]
    async fn failmode_and_exempt() {
        let (h, _) = handler("otp", "", true);
        let o = h.handle(req("alice", Some("123456"), None)).await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "deny-unavailable"));
        let (h, _) = handler(
            "otp",
            "[policy]\nfailmode = \"safe\"\nexempt_users = [\"breakglass\"]\n",
            true,
        );
        let o = h.handle(req("alice", Some("123456"), None)).await;
        assert_eq!((o.reply, o.decision), (Reply::Accept, "allow-failopen"));
        let o = h.handle(req("breakglass", None, None)).await;
        assert_eq!((o.reply, o.decision), (Reply::Accept, "exempt"));
        assert_eq!(
            h.verifier.calls.load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    #[tokio::test]
    async fn challenge_round_trip_expiry_replay_and_other_user() {
        let (h, clock) = handler("challenge", "", false);
        let o = h.handle(req("alice", Some("password"), None)).await;
        let Reply::Challenge { state, message } = o.reply else {
            panic!("{o:?}")
        };
        assert_eq!(message, "Enter your one-time password");
        assert_eq!(
            h.verifier.calls.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        // Another user cannot use alice's State.
        let o = h
            .handle(req("bob", Some("123456"), Some(state.clone())))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "bad-state"));
        let o = h
            .handle(req("alice", Some("123456"), Some(state.clone())))
            .await;
        assert_eq!(o.reply, Reply::Accept, "{o:?}");
        // Replayed.
        let o = h.handle(req("alice", Some("123456"), Some(state))).await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "bad-state"));
        // Expired.
        let Reply::Challenge { state, .. } = h.handle(req("alice", None, None)).await.reply else {
            panic!()
        };
        clock.0.fetch_add(121, std::sync::atomic::Ordering::SeqCst);
        let o = h.handle(req("alice", Some("123456"), Some(state))).await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "bad-state"));
        // Forged.
        let o = h
            .handle(req("alice", Some("123456"), Some(vec![0; 41])))
            .await;
        assert_eq!(o.reply, Reply::Reject);
    }
}
