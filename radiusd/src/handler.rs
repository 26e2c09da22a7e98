//! The "handle" step: one Access-Request in, Accept / Reject / Challenge out. Generic over
//! the [`Verifier`] so tests can run it without SxS; the server runs it with the SxS client.
//!
//! Which method a request takes is decided here, from the client's `methods` and the request:
//! a State names the method of the challenge it answers (signed, see [`crate::state`]); without
//! one, an empty User-Password or the SMS trigger word starts an SMS challenge, the MAC trigger
//! word (or a MAC-only client) starts a dynamic-linking challenge, and anything else is an OTP
//! (checked at once in `otp` mode, after an Access-Challenge in `challenge` mode).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::config::{Policy, RadiusMode};
use common::sms::SendLimiter;
use common::{
    Decision, Identity, IdentityMapper, Mapping, Method, Methods, Secret, Verdict, Verifier,
};

use crate::first_factor::Factors;
use crate::redeem::Redemptions;
use crate::reply::Attributes;
use crate::state::{Context, StateError, StateSigner};

/// Longest Reply-Message the handler builds for an SMS or MAC challenge (the size budget
/// reserves room for it before SxS is asked).
pub const MAX_METHOD_PROMPT: usize = 96;

/// What the handler needs from a request, already decoded and authenticated.
#[derive(Debug)]
pub struct AccessRequest {
    /// The client's configured name.
    pub client: String,
    /// The methods this client allows (`[[radius.clients]] methods`).
    pub methods: Methods,
    /// User-Name, when present and UTF-8.
    pub user: Option<String>,
    /// The decoded User-Password (the OTP), wiped on drop.
    pub password: Option<Secret>,
    /// The State attribute, when present.
    pub state: Option<Vec<u8>>,
    /// Octets of attributes an answer can carry: 4096 less the header, the
    /// Message-Authenticator and the Proxy-States copied back. Attributes known only at run time
    /// (upstream pass-through) are checked against it before SxS is asked.
    pub reply_room: usize,
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
    /// The method this request was part of.
    pub method: Method,
    /// What SxS said, if it was asked.
    pub verdict: Option<Verdict>,
    /// How long SxS took, if it was asked.
    pub sxs_latency: Option<Duration>,
    /// Why the request's State was refused, if it was (a metrics label: `expired`, …).
    pub state_rejected: Option<&'static str>,
    /// Attributes for an Accept: the user's groups' `[[radius.reply]]`, upstream pass-through.
    pub attributes: Attributes,
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

/// The SxS-backed handler: identity mapping, policy, challenge State, the methods.
#[derive(Debug)]
pub struct SxsHandler<V> {
    pub verifier: Arc<V>,
    pub mapper: IdentityMapper,
    pub policy: Policy,
    pub mode: RadiusMode,
    pub challenge_prompt: String,
    pub signer: Option<StateSigner>,
    /// Redeemed challenge States (this process, or the shared store); kept across reloads.
    pub used_states: Redemptions,
    pub state_ttl: Duration,
    pub clock: Arc<dyn UnixClock>,
    /// SMS sends per user; kept across reloads by the server.
    pub sms_limiter: Arc<dyn SendLimiter>,
    pub sms_trigger: String,
    pub mac_trigger: String,
    pub push_trigger: String,
    /// Where pushes wait for SxS's callback; `None` without an `[http]` section.
    pub push: Option<PushSetup>,
    /// First factors per client and reply attributes (`crate::first_factor`).
    pub factors: Arc<Factors>,
    /// What a password-then-OTP challenge's first round found; kept across reloads.
    pub passed: crate::first_factor::PassedStore,
}

/// What starting a push needs: the store the callback completes, and how to sign its location.
#[derive(Debug, Clone)]
pub struct PushSetup {
    pub store: crate::approval::ApprovalStore,
    pub signer: crate::approval::CallbackSigner,
    pub public_url: url::Url,
    pub timeout: Duration,
}

/// The decision word for a user in none of `policy.required_groups`.
pub(crate) const NOT_ADMITTED: &str = "not-in-required-group";

pub(crate) fn outcome(reply: Reply, user: &str, decision: &'static str) -> Outcome {
    Outcome {
        reply,
        user: user.to_string(),
        decision,
        method: Method::Otp,
        verdict: None,
        sxs_latency: None,
        state_rejected: None,
        attributes: Vec::new(),
    }
}

fn state_rejected(user: &str, decision: &'static str, reason: &'static str) -> Outcome {
    Outcome {
        state_rejected: Some(reason),
        ..outcome(Reply::Reject, user, decision)
    }
}

impl Outcome {
    fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

impl<V: Verifier + 'static> SxsHandler<V> {
    /// A client with a first factor: password, then OTP ([`crate::first_factor`]). Otherwise
    /// the OTP (or another method) alone, and on Accept the attributes of the user's system
    /// groups (NSS), as for exemptions.
    async fn handle_request(&self, request: AccessRequest) -> Outcome {
        if let Some((kind, mode)) = self.factors.of(&request.client) {
            let mode = mode.clone();
            // Boxed: its state (directory or RADIUS client) would otherwise size the task of
            // every request, also of the thousands only waiting for an SxS connection.
            return Box::pin(self.handle_first_factor(request, kind, &mode)).await;
        }
        let mut o = self.handle_inner(&request).await;
        if o.reply == Reply::Accept && !self.factors.reply.is_empty() {
            let u = o.user.clone();
            let groups = tokio::task::spawn_blocking(move || common::policy::user_groups(&u))
                .await
                .unwrap_or_default();
            o.attributes = self.factors.reply.for_groups(&groups);
        }
        o
    }

    /// By reference: a moved argument is kept twice in an async fn's state, and this state is
    /// part of every request's task (docs/benchmarks.md, "Memory per request").
    async fn handle_inner(&self, request: &AccessRequest) -> Outcome {
        let Some(login) = request.user.as_deref() else {
            return outcome(Reply::Reject, "", "no-user-name");
        };
        let identity = match self.mapper.map(login) {
            Mapping::Invalid { .. } => return outcome(Reply::Reject, login, "invalid-user-name"),
            Mapping::NotInTokenMap { user } => {
                if !self.admitted(&user).await {
                    return self.not_admitted(&user, request);
                }
                if self.is_exempt(&user).await {
                    return outcome(Reply::Accept, &user, "exempt");
                }
                let d = self.policy.decide_unenrolled();
                // In challenge mode an enrolled user's first request gets a Challenge before
                // any OTP is checked; an unenrolled one must too, or that first answer alone
                // would tell who is enrolled. The State it brings back is then refused.
                if !d.allows() && self.mode == RadiusMode::Challenge && request.state.is_none() {
                    let challenged = self.challenge(&user, &request.client, Method::Otp);
                    if matches!(challenged.reply, Reply::Challenge { .. }) {
                        return Outcome {
                            decision: d.as_str(),
                            ..challenged
                        };
                    }
                }
                return outcome(reply_of(d), &user, d.as_str());
            }
            Mapping::Known(identity) => identity,
        };
        let user = identity.user.clone();
        if !self.admitted(&user).await {
            return self.not_admitted(&user, request);
        }
        if self.is_exempt(&user).await {
            return outcome(Reply::Accept, &user, "exempt");
        }
        let methods = request.methods;
        if let Some(state) = &request.state {
            // Boxed, as the SMS start below: only the common path (a typed OTP) sizes the task
            // of every request.
            return Box::pin(self.answer_challenge(&identity, request, state)).await;
        }
        let password = request.password.as_ref();
        let word = password.and_then(Secret::expose_str).unwrap_or("");
        if methods.allows(Method::Sms)
            && (word.is_empty() || word == self.sms_trigger || methods.only(Method::Sms))
        {
            return Box::pin(self.start_sms(&identity, &request.client)).await;
        }
        if methods.allows(Method::Push) && (word == self.push_trigger || methods.only(Method::Push))
        {
            // Boxed for the same reason as the first factor (handle_request).
            return Box::pin(self.push(&identity, &request.client)).await;
        }
        if methods.allows(Method::Mac) && (word == self.mac_trigger || methods.only(Method::Mac)) {
            return self.challenge(&user, &request.client, Method::Mac);
        }
        if !methods.allows(Method::Otp) {
            tracing::info!(user, client = request.client, %methods,
                "request names no method this client allows");
            return outcome(Reply::Reject, &user, "method-not-allowed");
        }
        if self.mode == RadiusMode::Challenge {
            return self.challenge(&user, &request.client, Method::Otp);
        }
        let Some(otp) = password else {
            return outcome(Reply::Reject, &user, "no-password");
        };
        let start = Instant::now();
        let verdict = self.verifier.verify(&identity, otp).await;
        self.decide(&request.client, user, Method::Otp, verdict, start.elapsed())
    }

    /// The follow-up of an Access-Challenge: the State says which method it answers.
    async fn answer_challenge(
        &self,
        identity: &Identity,
        request: &AccessRequest,
        state: &[u8],
    ) -> Outcome {
        let user = identity.user.as_str();
        let Some(signer) = &self.signer else {
            return state_rejected(user, "no-state-key", "no_state_key");
        };
        let now = self.clock.now_unix();
        let redeemed = self
            .used_states
            .redeem(
                signer,
                state,
                user.as_bytes(),
                request.client.as_bytes(),
                now,
            )
            .await;
        let nonce = match redeemed {
            Ok(nonce) => nonce,
            Err(e @ StateError::Store(_)) => {
                tracing::error!(user, client = request.client, error = %e,
                    "challenge State refused: the shared store is unreachable (fail closed)");
                return state_rejected(user, "state-store-unavailable", e.reason());
            }
            Err(e) => {
                tracing::info!(user, client = request.client, error = %e, "challenge State refused");
                return state_rejected(user, "bad-state", e.reason());
            }
        };
        let method = nonce.context().method;
        if nonce.context().first_factor || !request.methods.allows(method) {
            tracing::info!(user, client = request.client, context = ?nonce.context(),
                "challenge State is for a method or step this client does not allow");
            return state_rejected(user, "bad-state", "wrong_context").with_method(method);
        }
        let Some(answer) = request.password.as_ref().filter(|p| !p.is_empty()) else {
            return outcome(Reply::Reject, user, "no-password").with_method(method);
        };
        let start = Instant::now();
        let verdict = match method {
            Method::Otp => self.verifier.verify(identity, answer).await,
            Method::Sms => self.verifier.verify_sms(identity, answer).await,
            Method::Mac => {
                let input =
                    signer.mac_input(nonce.value(), user.as_bytes(), request.client.as_bytes());
                self.verifier.verify_mac(identity, &input, answer).await
            }
            _ => return state_rejected(user, "bad-state", "wrong_context"),
        };
        self.decide(
            &request.client,
            user.to_string(),
            method,
            verdict,
            start.elapsed(),
        )
    }

    /// Asks SxS to send an SMS; on success, challenges for the code.
    async fn start_sms(&self, identity: &Identity, client: &str) -> Outcome {
        let user = identity.user.as_str();
        if self.signer.is_none() {
            return outcome(Reply::Reject, user, "no-state-key").with_method(Method::Sms);
        }
        let start = Instant::now();
        let sent = self
            .verifier
            .send_sms(identity, self.sms_limiter.as_ref(), self.clock.now_unix())
            .await;
        let latency = start.elapsed();
        if !matches!(sent.verdict, Verdict::Accept { .. }) {
            return self.decide(client, user.to_string(), Method::Sms, sent.verdict, latency);
        }
        let mut o = self.challenge(user, client, Method::Sms);
        if let Reply::Challenge { message, .. } = &mut o.reply {
            *message = match &sent.masked_mobile {
                Some(m) if m.len() <= 32 => format!("Enter the code sent to {m}: "),
                _ => "Enter the code sent to your mobile phone: ".to_string(),
            };
        }
        o.decision = "sms-sent";
        o.verdict = Some(sent.verdict);
        o.sxs_latency = Some(latency);
        o
    }

    /// PUSH: asks SxS to push an approval to the user's phone and holds the answer until the
    /// callback (through the HTTP door) completes it, or `push.timeout` passes. The OTP that
    /// came with an approval was validated by the door; its verdict decides.
    async fn push(&self, identity: &Identity, client: &str) -> Outcome {
        let user = identity.user.as_str();
        let Some(p) = &self.push else {
            return outcome(Reply::Reject, user, "push-not-configured").with_method(Method::Push);
        };
        let (ended, latency) = crate::push::run(
            p,
            self.verifier.as_ref(),
            identity,
            client,
            self.clock.now_unix(),
        )
        .await;
        let decided =
            |verdict| self.decide(client, user.to_string(), Method::Push, verdict, latency);
        match ended {
            crate::push::Ended::Refused(e) => {
                tracing::warn!(user, client, error = %e, "push refused");
                outcome(Reply::Reject, user, "push-refused").with_method(Method::Push)
            }
            crate::push::Ended::NotStarted(verdict) | crate::push::Ended::Checked(verdict) => {
                decided(verdict)
            }
            crate::push::Ended::Denied => {
                outcome(Reply::Reject, user, "push-denied").with_method(Method::Push)
            }
            crate::push::Ended::Timeout => {
                outcome(Reply::Reject, user, "push-timeout").with_method(Method::Push)
            }
            // The store's failure is not SxS's: failmode does not apply, the login is refused.
            crate::push::Ended::StoreFailed(e) => {
                tracing::error!(user, client, error = %e,
                    "push refused: the approval store failed while the login waited (fail closed)");
                outcome(Reply::Reject, user, "push-store-unavailable").with_method(Method::Push)
            }
        }
    }

    /// The policy's decision on a verdict, logged loudly when it lets someone in unchecked.
    pub(crate) fn decide(
        &self,
        client: &str,
        user: String,
        method: Method,
        verdict: Verdict,
        latency: Duration,
    ) -> Outcome {
        let decision = self.policy.decide(&verdict, self.policy.failmode);
        if decision == Decision::AllowFailOpen {
            tracing::warn!(user, client, method = %method, verdict = verdict.kind(),
                "SxS unavailable and failmode = \"safe\": letting the user in WITHOUT a second factor");
        }
        Outcome {
            reply: reply_of(decision),
            user,
            decision: decision.as_str(),
            method,
            verdict: Some(verdict),
            sxs_latency: Some(latency),
            state_rejected: None,
            attributes: Vec::new(),
        }
    }

    /// `exempt_groups` needs the system's user database (NSS: files, sssd, LDAP…), which can
    /// block: off the async workers then.
    pub(crate) async fn is_exempt(&self, user: &str) -> bool {
        if self.policy.exempt_groups.is_empty() {
            return self.policy.is_exempt(user);
        }
        let (policy, user) = (self.policy.clone(), user.to_string());
        tokio::task::spawn_blocking(move || policy.is_exempt(&user))
            .await
            .unwrap_or(false)
    }

    /// `policy.required_groups` against the system's groups (NSS), off the async workers
    /// like [`Self::is_exempt`]; no lookup when no group is required.
    pub(crate) async fn admitted(&self, user: &str) -> bool {
        if self.policy.required_groups.is_empty() {
            return true;
        }
        let (policy, user) = (self.policy.clone(), user.to_string());
        tokio::task::spawn_blocking(move || policy.admits_user(&user))
            .await
            .unwrap_or(false)
    }

    /// The refusal of a user in none of `policy.required_groups`. In challenge mode a first
    /// request is challenged like any other (as for unenrolled users) so that the first answer
    /// does not tell group membership; the follow-up is refused.
    pub(crate) fn not_admitted(&self, user: &str, request: &AccessRequest) -> Outcome {
        tracing::info!(
            user,
            client = request.client,
            "user is in none of policy.required_groups: refused before SxS"
        );
        if self.mode == RadiusMode::Challenge && request.state.is_none() {
            let challenged = self.challenge(user, &request.client, Method::Otp);
            if matches!(challenged.reply, Reply::Challenge { .. }) {
                return Outcome {
                    decision: NOT_ADMITTED,
                    ..challenged
                };
            }
        }
        outcome(Reply::Reject, user, NOT_ADMITTED)
    }

    /// An Access-Challenge for `method` with a fresh signed State. For `mac` the message
    /// carries the MAC input derived from that State.
    fn challenge(&self, user: &str, client: &str, method: Method) -> Outcome {
        self.challenge_for(Context::new(method), user, client)
    }

    /// An Access-Challenge whose State is signed with `context` (method, first factor passed).
    pub(crate) fn challenge_for(&self, context: Context, user: &str, client: &str) -> Outcome {
        let method = context.method;
        let Some(signer) = &self.signer else {
            return outcome(Reply::Reject, user, "no-state-key").with_method(method);
        };
        let now = self.clock.now_unix();
        let state = match signer.issue(
            context,
            user.as_bytes(),
            client.as_bytes(),
            now,
            self.state_ttl,
            &mut rand::rng(),
        ) {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(error = %e, "cannot issue a challenge State");
                return outcome(Reply::Reject, user, "state-error").with_method(method);
            }
        };
        let message = match method {
            Method::Mac => {
                let input = StateSigner::nonce_of(&state)
                    .map(|n| signer.mac_input(&n, user.as_bytes(), client.as_bytes()))
                    .unwrap_or_default();
                format!(
                    "Sign-in code {}: enter it in your app and type the MAC it shows: ",
                    common::method::group_digits(&input)
                )
            }
            _ => self.challenge_prompt.clone(),
        };
        outcome(Reply::Challenge { state, message }, user, "challenge").with_method(method)
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
        self.handle_request(request)
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

    /// Accepts "123456" for anyone; counts calls. SMS codes are "654321"; the MAC of an input
    /// is its reverse's last six digits.
    #[derive(Debug, Default)]
    struct Fixed {
        calls: std::sync::atomic::AtomicUsize,
        sms_sent: std::sync::atomic::AtomicUsize,
        down: bool,
    }

    fn mac_of(input: &str) -> String {
        input.chars().rev().take(6).collect()
    }

    impl Verifier for Fixed {
        fn send_sms(
            &self,
            _identity: &Identity,
            limiter: &dyn SendLimiter,
            now_unix: u64,
        ) -> impl Future<Output = common::SmsSent> + Send {
            let verdict = match limiter.try_acquire("x", now_unix) {
                Err(_) => Verdict::Reject {
                    code: "local:sms-rate-limited".into(),
                    message: "limited".into(),
                },
                Ok(()) if self.down => Verdict::Unavailable {
                    cause: "down".into(),
                },
                Ok(()) => {
                    self.sms_sent
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Verdict::Accept {
                        token_sn: "3".into(),
                        user_id: "u".into(),
                    }
                }
            };
            async move {
                common::SmsSent {
                    verdict,
                    masked_mobile: Some("+38599*****67".into()),
                }
            }
        }

        fn verify_sms(
            &self,
            _identity: &Identity,
            code: &Secret,
        ) -> impl Future<Output = Verdict> + Send {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ok = code.expose() == b"654321";
            async move { verdict(ok) }
        }

        fn verify_mac(
            &self,
            _identity: &Identity,
            input: &str,
            mac: &Secret,
        ) -> impl Future<Output = Verdict> + Send {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ok = mac.expose() == mac_of(input).as_bytes();
            async move { verdict(ok) }
        }

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

    fn verdict(ok: bool) -> Verdict {
        if ok {
            Verdict::Accept {
                token_sn: "1".into(),
                user_id: "u".into(),
            }
        } else {
            Verdict::Reject {
                code: "2010".into(),
                message: "Wrong".into(),
            }
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
            used_states: Redemptions::Local(Arc::new(std::sync::Mutex::new(
                crate::state::UsedStates::new(1000),
            ))),
            state_ttl: r.state_ttl,
            clock: clock.clone(),
            sms_limiter: Arc::new(common::sms::MemoryLimiter::new(
                cfg.sms.max_per_user,
                cfg.sms.window,
            )),
            sms_trigger: r.sms_trigger,
            mac_trigger: r.mac_trigger,
            push_trigger: r.push_trigger,
            push: None,
            factors: Default::default(),
            passed: Default::default(),
        };
        (h, clock)
    }

    fn req(user: &str, otp: Option<&str>, state: Option<Vec<u8>>) -> AccessRequest {
        AccessRequest {
            client: "nas".into(),
            methods: Methods::otp_only(),
            user: Some(user.into()),
            password: otp.map(Secret::from),
            state,
            reply_room: 4096 - 38,
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
        assert_eq!((o.reply, o.decision), (Reply::Reject, "bad-state"));
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

    /// Issue #12 defect 8: in challenge mode an unenrolled user (not in the token map,
    /// unenrolled = "deny") gets a Challenge like an enrolled one, never an immediate Reject
    /// that would tell who is enrolled; the answer to it is refused without asking SxS.
    #[tokio::test]
    async fn an_unenrolled_user_is_challenged_like_an_enrolled_one() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("tokens.map");
        std::fs::write(&map, "alice 2000038252\n").unwrap();
        let extra = format!(
            "[identity]\nsend = \"token_sn\"\ntoken_map = \"{}\"\n",
            map.display()
        );
        let (h, _) = handler("challenge", &extra, false);
        let mut states = Vec::new();
        for user in ["alice", "mallory"] {
            let o = h.handle(req(user, Some("password"), None)).await;
            let Reply::Challenge { state, message } = o.reply else {
                panic!("{user}: {o:?}")
            };
            assert_eq!(message, "Enter your one-time password: ");
            assert_eq!(state.len(), crate::state::STATE_LEN);
            states.push(state);
        }
        let o = h
            .handle(req("mallory", Some("123456"), Some(states[1].clone())))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "deny-unenrolled"));
        assert_eq!(
            h.verifier.calls.load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        // In OTP mode nothing changes: refused at once, still without SxS.
        let (h, _) = handler("otp", &extra, false);
        let o = h.handle(req("mallory", Some("123456"), None)).await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "deny-unenrolled"));
    }

    #[tokio::test]
    async fn challenge_round_trip_expiry_replay_and_other_user() {
        let (h, clock) = handler("challenge", "", false);
        let o = h.handle(req("alice", Some("password"), None)).await;
        let Reply::Challenge { state, message } = o.reply else {
            panic!("{o:?}")
        };
        assert_eq!(message, "Enter your one-time password: ");
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

    fn with_methods(mut r: AccessRequest, methods: &[&str]) -> AccessRequest {
        r.methods = Methods::parse(methods).unwrap();
        r
    }

    fn challenge_of(o: &Outcome) -> (Vec<u8>, String) {
        match &o.reply {
            Reply::Challenge { state, message } => (state.clone(), message.clone()),
            other => panic!("expected a challenge, got {other:?} ({o:?})"),
        }
    }

    #[tokio::test]
    async fn sms_trigger_sends_then_the_code_completes_once() {
        let (h, _) = handler("otp", "", false);
        let m = ["otp", "sms"];
        // An empty password and the trigger word both send an SMS.
        for word in [None, Some("sms")] {
            let o = h.handle(with_methods(req("alice", word, None), &m)).await;
            let (_, message) = challenge_of(&o);
            assert_eq!(message, "Enter the code sent to +38599*****67: ");
            assert_eq!((o.decision, o.method), ("sms-sent", Method::Sms));
        }
        assert_eq!(
            h.verifier
                .sms_sent
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        let o = h.handle(with_methods(req("alice", None, None), &m)).await;
        let (state, _) = challenge_of(&o);
        // The code, with the State: accepted once.
        let o = h
            .handle(with_methods(
                req("alice", Some("654321"), Some(state.clone())),
                &m,
            ))
            .await;
        assert_eq!((o.reply, o.method), (Reply::Accept, Method::Sms));
        let o = h
            .handle(with_methods(req("alice", Some("654321"), Some(state)), &m))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "bad-state"));
        // A digit password is still an OTP for an otp+sms client.
        let o = h
            .handle(with_methods(req("alice", Some("123456"), None), &m))
            .await;
        assert_eq!((o.reply, o.method), (Reply::Accept, Method::Otp));
        // The fourth SMS within the window is refused, without a challenge.
        let o = h.handle(with_methods(req("alice", None, None), &m)).await;
        assert_eq!(o.reply, Reply::Reject);
        assert_eq!(
            o.verdict.as_ref().and_then(|v| v.code()),
            Some("local:sms-rate-limited")
        );
    }

    #[tokio::test]
    async fn sms_and_mac_work_in_challenge_mode_too() {
        let (h, _) = handler("challenge", "", false);
        let m = ["otp", "sms", "mac"];
        let o = h
            .handle(with_methods(req("alice", Some("sms"), None), &m))
            .await;
        let (state, message) = challenge_of(&o);
        assert!(message.contains("+38599*****67"), "{message}");
        let o = h
            .handle(with_methods(req("alice", Some("654321"), Some(state)), &m))
            .await;
        assert_eq!((o.reply, o.method), (Reply::Accept, Method::Sms));
        let o = h
            .handle(with_methods(req("alice", Some("mac"), None), &m))
            .await;
        let (state, message) = challenge_of(&o);
        let input: String = message.chars().filter(|c| c.is_ascii_digit()).collect();
        let o = h
            .handle(with_methods(
                req("alice", Some(&mac_of(&input)), Some(state)),
                &m,
            ))
            .await;
        assert_eq!((o.reply, o.method), (Reply::Accept, Method::Mac));
        // Anything else is the OTP challenge, as before.
        let o = h
            .handle(with_methods(req("alice", Some("secret"), None), &m))
            .await;
        let (state, message) = challenge_of(&o);
        assert_eq!(message, h.challenge_prompt);
        let o = h
            .handle(with_methods(req("alice", Some("123456"), Some(state)), &m))
            .await;
        assert_eq!((o.reply, o.method), (Reply::Accept, Method::Otp));
    }

    #[tokio::test]
    async fn sms_not_allowed_and_sxs_down_follow_policy() {
        let (h, _) = handler("otp", "", false);
        // A client without sms: the trigger word is just a wrong password.
        let o = h.handle(req("alice", Some("sms"), None)).await;
        assert_eq!(o.reply, Reply::Reject);
        assert_eq!(
            h.verifier
                .sms_sent
                .load(std::sync::atomic::Ordering::SeqCst),
            0
        );
        let (h, _) = handler("otp", "", true);
        let o = h
            .handle(with_methods(req("alice", None, None), &["sms"]))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "deny-unavailable"));
        let (h, _) = handler("otp", "[policy]\nfailmode = \"safe\"\n", true);
        let o = h
            .handle(with_methods(req("alice", None, None), &["sms"]))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Accept, "allow-failopen"));
    }

    #[tokio::test]
    async fn mac_challenge_binds_the_input_to_the_state() {
        let (h, _) = handler("otp", "", false);
        let m = ["otp", "mac"];
        let o = h
            .handle(with_methods(req("alice", Some("mac"), None), &m))
            .await;
        let (state, message) = challenge_of(&o);
        let input: String = message.chars().filter(|c| c.is_ascii_digit()).collect();
        assert_eq!(input.len(), 8, "{message}");
        assert!(message.contains(' '), "grouped for reading: {message}");
        // Another challenge's MAC does not fit this State.
        let o2 = h
            .handle(with_methods(req("alice", Some("mac"), None), &m))
            .await;
        let (state2, message2) = challenge_of(&o2);
        let input2: String = message2.chars().filter(|c| c.is_ascii_digit()).collect();
        assert_ne!(input, input2);
        let o = h
            .handle(with_methods(
                req("alice", Some(&mac_of(&input2)), Some(state.clone())),
                &m,
            ))
            .await;
        assert_eq!(o.reply, Reply::Reject);
        // The State was redeemed by that try: start again, answer with the right MAC.
        let o = h
            .handle(with_methods(
                req("alice", Some(&mac_of(&input2)), Some(state2)),
                &m,
            ))
            .await;
        assert_eq!((o.reply, o.method), (Reply::Accept, Method::Mac));
        // A MAC-only client gets a MAC challenge for any first request.
        let o = h
            .handle(with_methods(req("alice", Some("123456"), None), &["mac"]))
            .await;
        challenge_of(&o);
        // A MAC State is refused by a client that does not allow mac.
        let o = h
            .handle(with_methods(req("alice", Some("mac"), None), &m))
            .await;
        let (state, message) = challenge_of(&o);
        let input: String = message.chars().filter(|c| c.is_ascii_digit()).collect();
        let o = h
            .handle(with_methods(
                req("alice", Some(&mac_of(&input)), Some(state)),
                &["otp"],
            ))
            .await;
        assert_eq!((o.reply, o.decision), (Reply::Reject, "bad-state"));
    }
}
