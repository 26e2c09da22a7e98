//! One authentication: who is it, is the user exempt or unenrolled, which method (an mToken OTP,
//! a code sent by SMS, a MAC over a shown input), one call into `common` per answer, a PAM code.
//! Generic over [`Pam`] (the handle) and [`Backend`] (the SxS calls, the clock and the nonce),
//! so all of it is unit-tested without libpam.
#![forbid(unsafe_code)]

use std::ffi::c_int;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::config::{FailMode, LoadOptions};
use common::method::group_digits;
use common::pamsock::{self, Outcome};
use common::secret::otp_is_well_formed;
use common::{codes, Config, Decision, Identity, IdentityMapper, Mapping, Secret, SxsClient};
use common::{Method, Methods, Verdict};
use rand::TryRngCore;

use crate::args::{Args, FirstPass};
use crate::calls::SxsCalls;
use crate::code::{PamCode, PamResult};
use crate::logging::{self, field, Collector};
use crate::mac_input::{self, Binding};
use crate::pam::{Item, Level, Pam, Style};
use crate::sms;

/// What every refused user reads, whatever the reason (wrong OTP, unknown user, locked token):
/// it must not tell whether the user exists.
pub const DENIED_MESSAGE: &str = "Authentication failed.";
/// What the user reads when SxS cannot be reached and failmode is "secure".
pub const UNAVAILABLE_MESSAGE: &str =
    "The one-time password cannot be checked right now. Try again later.";

/// `PAM_SILENT`.
const PAM_SILENT: c_int = 0x8000;

/// The flags libpam passes to a hook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `PAM_SILENT`: show the user nothing.
    pub silent: bool,
}

impl Flags {
    pub fn from_raw(raw: c_int) -> Flags {
        Flags {
            silent: raw & PAM_SILENT != 0,
        }
    }
}

/// What the module needs from outside itself besides PAM: the SxS calls (built from the
/// configuration), the time and fresh randomness (parameters, so tests control them).
pub trait Backend {
    type Calls: SxsCalls;
    fn build(&self, cfg: &Config) -> common::Result<Self::Calls>;

    /// Unix seconds now: the SMS send limit and the MAC input.
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// A fresh random nonce for one MAC input.
    fn nonce(&self) -> Result<[u8; 16], String> {
        let mut n = [0u8; 16];
        rand::rngs::OsRng
            .try_fill_bytes(&mut n)
            .map_err(|e| format!("no randomness from the OS: {e}"))?;
        Ok(n)
    }
}

/// The real backend: `common`'s SxS client.
#[derive(Debug, Default, Clone, Copy)]
pub struct SxsBackend;

impl Backend for SxsBackend {
    type Calls = SxsClient;
    fn build(&self, cfg: &Config) -> common::Result<SxsClient> {
        SxsClient::new(&cfg.sxs)
    }
}

/// The SxS calls and the current-thread runtime they run on, both made for one
/// `pam_sm_authenticate` call and dropped at its end: no thread is left behind in sshd or sudo,
/// nothing survives a fork. One runtime serves every attempt of the call, so the connection of
/// the first attempt can be reused by the next.
struct Session<C> {
    // Field order is drop order: the client (and its pooled connections) before the runtime.
    calls: C,
    runtime: tokio::runtime::Runtime,
}

impl<C: SxsCalls> Session<C> {
    fn new(calls: C) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Session { calls, runtime })
    }

    /// Runs one call to completion, `common`'s log events forwarded to syslog.
    fn run<P: Pam, T>(&self, pam: &mut P, debug: bool, call: impl Future<Output = T>) -> T {
        let (collector, events) = Collector::new(debug);
        let out = logging::with_collector(collector, || self.runtime.block_on(call));
        for (level, line) in logging::drain(&events) {
            pam.log(level, &line);
        }
        out
    }
}

/// Who the OTP is checked for.
enum Target {
    Known(Identity),
    /// Not in the token map, or SxS said the user has no token, and policy denies: every
    /// further attempt is refused without a call, and looks like a wrong OTP to the user.
    Unenrolled,
    /// The name cannot be a user.
    Invalid(&'static str),
    /// In none of `policy.required_groups`: prompted like anyone (the prompt does not tell
    /// membership), never sent to SxS, refused.
    NotAdmitted,
}

/// The fields of the one log line per decision.
struct Context {
    service: String,
    user: String,
    rhost: String,
}

impl Context {
    fn line(&self, verdict: &str, code: Option<&str>, decision: &str, result: PamCode) -> String {
        format!(
            "decision service={} user={} rhost={} verdict={verdict} code={} decision={decision} result={}",
            field(&self.service),
            field(&self.user),
            field(&self.rhost),
            field(code.unwrap_or("")),
            result.name()
        )
    }
}

/// What one attempt did: the method used, SxS's (or a local) verdict, and extra fields for
/// the decision line (never a secret: the masked mobile, the MAC input).
struct Tried {
    method: Method,
    verdict: Verdict,
    note: String,
}

impl Tried {
    fn new(method: Method, verdict: Verdict) -> Self {
        Self {
            method,
            verdict,
            note: String::new(),
        }
    }
}

/// A refusal decided here, without a call.
fn local_reject(code: &str, message: &str) -> Verdict {
    Verdict::Reject {
        code: code.into(),
        message: message.into(),
    }
}

/// What the user reads while a push waits on the phone (PAM_TEXT_INFO).
pub const PUSH_MESSAGE: &str = "Approve the sign-in on your phone.";
/// What the user reads when a push or an out-of-band login did not succeed and a typed OTP is
/// allowed.
pub const PUSH_FALLBACK_MESSAGE: &str =
    "The sign-in was not approved with the app; enter a one-time password instead.";

/// What the user reads for an out-of-band login: the challenge as digits and as a QR code.
pub fn oob_message(challenge: &str) -> String {
    use qrcode::render::unicode::Dense1x2;
    let digits = group_digits(challenge);
    let qr = qrcode::QrCode::new(challenge.as_bytes())
        .map(|q| {
            q.render::<Dense1x2>()
                .dark_color(Dense1x2::Light)
                .light_color(Dense1x2::Dark)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    format!("Sign in with your authenticator app: scan the code or enter {digits}.\n{qr}")
}
/// Local codes of push refusals decided by the phone or the daemon, not by SxS.
pub const LOCAL_PUSH_DENIED: &str = "local:push-denied";
pub const LOCAL_PUSH_TIMEOUT: &str = "local:push-timeout";
pub const LOCAL_DAEMON_UNAVAILABLE: &str = "local:daemon-unavailable";

/// Code of a refusal because the SMS limit's state directory cannot be used (fail closed).
pub const LOCAL_SMS_LIMIT_STATE: &str = "local:sms-limit-state";

/// `pam_sm_authenticate`.
pub fn authenticate<P: Pam, B: Backend>(
    pam: &mut P,
    args: &Args,
    flags: Flags,
    backend: &B,
) -> PamCode {
    for w in &args.warnings {
        pam.log(Level::Warning, w);
    }
    // Like pam_unix: asked at the start, so every failure below (and of any module stacked
    // with us) is slowed down; libpam applies the largest delay requested.
    if !args.fail_delay.is_zero() {
        if let Err(code) = pam.fail_delay(args.fail_delay) {
            pam.log(
                Level::Warning,
                &format!("pam_fail_delay failed: {}", code.name()),
            );
        }
    }
    let mut ctx = Context {
        service: pam.item(Item::Service).unwrap_or_default(),
        user: String::new(),
        rhost: pam.item(Item::RHost).unwrap_or_default(),
    };
    let cfg = match Config::load(
        &args.config,
        LoadOptions {
            env_overrides: false,
        },
    ) {
        Ok(cfg) => cfg,
        Err(e) => {
            pam.log(
                Level::Err,
                &format!(
                    "configuration unusable, refusing with PAM_AUTHINFO_UNAVAIL: {}",
                    logging::sanitize(&e.to_string())
                ),
            );
            return PamCode::AuthInfoUnavail;
        }
    };
    let user = match pam.user() {
        Ok(u) => u,
        Err(code) => {
            pam.log(
                Level::Err,
                &format!("cannot get the user name: {}", code.name()),
            );
            return code;
        }
    };
    ctx.user = user.clone();
    if args.debug {
        pam.log(
            Level::Debug,
            &format!(
                "start service={} user={} rhost={} config={} first_pass={:?} forward_pass={} prompts={}",
                field(&ctx.service),
                field(&ctx.user),
                field(&ctx.rhost),
                field(&args.config.display().to_string()),
                args.first_pass,
                args.forward_pass,
                args.prompts
            ),
        );
    }

    // Required groups first: an exempt user outside them is refused too.
    let admitted = cfg.policy.admits_user(&user);
    if admitted && cfg.policy.is_exempt(&user) {
        pam.log(
            Level::Info,
            &ctx.line("none", None, "exempt", PamCode::Ignore),
        );
        return PamCode::Ignore;
    }

    let mapper = match IdentityMapper::new(&cfg.identity) {
        Ok(m) => m,
        Err(e) => {
            pam.log(
                Level::Err,
                &format!(
                    "identity mapping unusable, refusing with PAM_AUTHINFO_UNAVAIL: {}",
                    logging::sanitize(&e.to_string())
                ),
            );
            return PamCode::AuthInfoUnavail;
        }
    };
    let mut target = match mapper.map(&user) {
        _ if !admitted => Target::NotAdmitted,
        Mapping::Known(id) => Target::Known(id),
        Mapping::NotInTokenMap { .. } => {
            let decision = cfg.policy.decide_unenrolled();
            if decision.allows() {
                pam.log(
                    Level::Info,
                    &ctx.line(
                        "local",
                        Some("not-in-token-map"),
                        decision.as_str(),
                        PamCode::Success,
                    ),
                );
                return PamCode::Success;
            }
            Target::Unenrolled
        }
        Mapping::Invalid { reason } => Target::Invalid(reason),
    };

    // Built for every user, enrolled or not: building it takes time before the prompt, and
    // who is enrolled must not show in how soon the prompt appears.
    let session = {
        let (collector, events) = Collector::new(args.debug);
        let built = logging::with_collector(collector, || backend.build(&cfg));
        for (level, line) in logging::drain(&events) {
            pam.log(level, &line);
        }
        let verifier = match built {
            Ok(v) => v,
            Err(e) => {
                pam.log(
                    Level::Err,
                    &format!(
                        "SxS client unusable, refusing with PAM_AUTHINFO_UNAVAIL: {}",
                        logging::sanitize(&e.to_string())
                    ),
                );
                return PamCode::AuthInfoUnavail;
            }
        };
        match Session::new(verifier) {
            Ok(s) => Some(s),
            Err(e) => {
                pam.log(Level::Err, &format!("cannot start the async runtime: {e}"));
                return PamCode::SystemErr;
            }
        }
    };

    let methods = effective_methods(pam, args, &cfg, &ctx.service);
    // A prompt set by the operator is shown as written; the default one says how to ask for
    // the other methods.
    let prompt = match args.prompt.as_deref().or(cfg.pam.prompt_for(&ctx.service)) {
        Some(p) => p.to_string(),
        None if args.forward_pass => args.prompt_text(None).to_string(),
        None => default_prompt(&methods),
    };
    // Once the daemon was asked, typing push or oob does nothing more: not offered again.
    let fallback_prompt = match args.prompt.as_deref().or(cfg.pam.prompt_for(&ctx.service)) {
        Some(p) => p.to_string(),
        None if args.forward_pass => args.prompt_text(None).to_string(),
        None => {
            let typed: Vec<&str> = methods
                .iter()
                .filter(|m| !matches!(m, Method::Push | Method::Oob))
                .map(Method::as_str)
                .collect();
            Methods::parse(&typed)
                .map(|m| default_prompt(&m))
                .unwrap_or_else(|_| crate::args::DEFAULT_PROMPT.to_string())
        }
    };
    let failmode = cfg.pam.failmode_for(&ctx.service, cfg.policy.failmode);
    let binding = Binding {
        user: ctx.user.clone(),
        service: ctx.service.clone(),
        rhost: ctx.rhost.clone(),
        ruser: pam.item(Item::RUser).unwrap_or_default(),
        tty: pam.item(Item::Tty).unwrap_or_default(),
    };
    if args.debug {
        pam.log(
            Level::Debug,
            &format!(
                "methods={methods} ruser={} tty={}",
                field(&binding.ruser),
                field(&binding.tty)
            ),
        );
    }
    let mut run = Run {
        args,
        flags,
        backend,
        session: session.as_ref(),
        limiter: sms::limiter(&cfg),
        methods,
        prompt,
        fallback_prompt,
        binding,
        sms_pending: false,
        push: cfg.push.clone(),
        daemon_asked: false,
        answered: Instant::now(),
    };

    for attempt in 1..=args.prompts {
        let tried = match run.attempt(pam, &target, attempt) {
            Ok(t) => t,
            Err(code) => {
                pam.log(
                    Level::Err,
                    &format!(
                        "no answer obtained: {} (service={} user={})",
                        code.name(),
                        field(&ctx.service),
                        field(&ctx.user)
                    ),
                );
                return code;
            }
        };
        // From the last answer to the verdict: what SxS (or the refusal) took, not the user.
        let started = run.answered;
        let latency = started.elapsed();
        let decision = match &target {
            Target::Known(_) => match cfg.policy.decide(&tried.verdict, failmode) {
                // "unenrolled = allow" lets in users without any token; a user refused an
                // SMS or a MAC for lack of that kind of token is refused.
                Decision::AllowUnenrolled if tried.method != Method::Otp => Decision::Deny,
                d => d,
            },
            Target::Unenrolled => cfg.policy.decide_unenrolled(),
            Target::Invalid(_) | Target::NotAdmitted => Decision::Deny,
        };
        if decision == Decision::DenyUnenrolled {
            target = Target::Unenrolled;
        }
        let code = result_of(decision);
        if code == PamCode::AuthErr {
            // The deny floor: an unenrolled or invalid user is refused without asking SxS; a
            // wrong OTP costs an SxS round trip. Every refusal takes at least as long, so the
            // difference does not show.
            let pad = args.deny_floor.saturating_sub(started.elapsed());
            if !pad.is_zero() {
                pam.pause(pad);
            }
        }
        log_decision(
            pam,
            &ctx,
            &tried,
            decision,
            code,
            failmode,
            attempt,
            args.prompts,
            latency,
        );
        let limited = tried.verdict.code() == Some(codes::LOCAL_SMS_RATE_LIMITED);
        match code {
            PamCode::Success => return code,
            PamCode::AuthErr if limited => {
                show(pam, flags, sms::LIMITED_MESSAGE);
                return code;
            }
            PamCode::AuthErr if attempt < args.prompts && args.first_pass != FirstPass::Use => {
                show(pam, flags, DENIED_MESSAGE);
            }
            PamCode::AuthInfoUnavail => {
                show(pam, flags, UNAVAILABLE_MESSAGE);
                return code;
            }
            _ => {
                show(pam, flags, DENIED_MESSAGE);
                return code;
            }
        }
    }
    PamCode::AuthErr
}

/// The methods of this stack line: `methods=` of the module arguments, else the
/// configuration's for the service. Under `use_first_pass` (never prompt) and `forward_pass`
/// (password and OTP in one answer) only `otp` can work: the others are dropped, with a warning.
fn effective_methods<P: Pam>(pam: &mut P, args: &Args, cfg: &Config, service: &str) -> Methods {
    let methods = args.methods.unwrap_or_else(|| cfg.pam.methods_for(service));
    let why = if args.first_pass == FirstPass::Use {
        "use_first_pass"
    } else if args.forward_pass {
        "forward_pass"
    } else {
        return methods;
    };
    if !methods.only(Method::Otp) {
        pam.log(
            Level::Warning,
            &format!("methods {methods} reduced to otp: {why} allows only a typed OTP"),
        );
    }
    Methods::otp_only()
}

/// The default first prompt for `methods` (when `otp` comes first).
pub fn default_prompt(methods: &Methods) -> String {
    let mut others = Vec::new();
    if methods.allows(Method::Sms) {
        others.push("press Enter for a code by SMS");
    }
    if methods.allows(Method::Mac) {
        others.push("type mac to sign with the app");
    }
    if methods.allows(Method::Push) {
        others.push("type push to approve on your phone");
    }
    if methods.allows(Method::Oob) {
        others.push("type oob to sign in with the app");
    }
    if others.is_empty() {
        return crate::args::DEFAULT_PROMPT.to_string();
    }
    format!("OTP (or {}): ", others.join(", or "))
}

/// One authentication's settings, and the state carried from one attempt to the next.
struct Run<'a, B: Backend> {
    args: &'a Args,
    flags: Flags,
    backend: &'a B,
    session: Option<&'a Session<B::Calls>>,
    limiter: sms::Limiter,
    methods: Methods,
    prompt: String,
    /// The prompt once push or oob was tried.
    fallback_prompt: String,
    binding: Binding,
    /// An SMS code was sent: further attempts ask for it again (no new SMS).
    sms_pending: bool,
    /// Where and how long a push waits (`[push]`).
    push: common::config::PushSettings,
    /// The daemon was asked (push or oob) in this authentication; with `otp` allowed, it is not
    /// asked again.
    daemon_asked: bool,
    /// When the user last answered (the latency and the deny floor count from here).
    answered: Instant,
}

impl<B: Backend> Run<'_, B> {
    /// One attempt: the user's answer by the method the user chose (or the only one), checked.
    /// `Err` is a PAM failure to return at once (the conversation broke).
    fn attempt<P: Pam>(&mut self, pam: &mut P, target: &Target, attempt: u32) -> PamResult<Tried> {
        self.answered = Instant::now();
        if self.sms_pending {
            return self.sms_code(pam, target);
        }
        match self.methods.first() {
            Method::Sms => return self.sms(pam, target),
            Method::Mac => return self.mac(pam, target),
            // Once per authentication when a typed OTP is the fallback, else every attempt.
            m @ (Method::Push | Method::Oob)
                if !self.daemon_asked || !self.methods.allows(Method::Otp) =>
            {
                return self.daemon(pam, target, attempt, m)
            }
            _ => {}
        }
        self.typed(pam, target, attempt)
    }

    /// The prompt for a typed answer: an OTP, or a word that asks for another method.
    fn typed<P: Pam>(&mut self, pam: &mut P, target: &Target, attempt: u32) -> PamResult<Tried> {
        let prompt = if self.daemon_asked {
            &self.fallback_prompt
        } else {
            &self.prompt
        };
        let typed = obtain(pam, self.args, attempt, prompt)?;
        self.answered = Instant::now();
        let answer = typed.expose();
        if self.methods.allows(Method::Sms)
            && (answer.is_empty() || answer.eq_ignore_ascii_case(b"sms"))
        {
            return self.sms(pam, target);
        }
        if self.methods.allows(Method::Mac) && answer.eq_ignore_ascii_case(b"mac") {
            return self.mac(pam, target);
        }
        for m in [Method::Push, Method::Oob] {
            if self.methods.allows(m)
                && !self.daemon_asked
                && answer.eq_ignore_ascii_case(m.as_str().as_bytes())
            {
                return self.daemon(pam, target, attempt, m);
            }
        }
        let otp = if self.args.forward_pass {
            let split = split_forward(&typed, self.args.otp_digits);
            drop(typed);
            match split {
                Some((password, otp)) => {
                    if let Err(code) = pam.set_authtok(&password) {
                        pam.log(
                            Level::Err,
                            &format!("cannot set PAM_AUTHTOK: {}", code.name()),
                        );
                        return Err(code);
                    }
                    otp
                }
                // Not password+OTP: refused below as a malformed OTP, like any typo.
                None => Secret::default(),
            }
        } else {
            typed
        };
        let verdict = match target {
            _ if !otp_is_well_formed(&otp) => {
                local_reject(codes::LOCAL_MALFORMED_OTP, "not an OTP")
            }
            Target::Known(id) => self.call(pam, |c| c.validate_otp(id, &otp)),
            _ => not_checked(target),
        };
        Ok(Tried::new(Method::Otp, verdict))
    }

    /// Push and out-of-band logins, run by the daemon through its PAM socket. Push: an
    /// approval goes to the user's phone; out-of-band: a challenge is shown (digits and a QR
    /// code) that the user's authenticator app answers at the daemon's DP4Mobile endpoint. The
    /// daemon answers once it is approved (and the OTP or response validated), denied, or timed
    /// out. Denied, timed out, refused or no daemon: the OTP prompt when `otp` is allowed too,
    /// else a refusal. Only "SxS unreachable" reported by the daemon is failmode's to decide.
    fn daemon<P: Pam>(
        &mut self,
        pam: &mut P,
        target: &Target,
        attempt: u32,
        method: Method,
    ) -> PamResult<Tried> {
        self.daemon_asked = true;
        let Target::Known(_) = target else {
            return Ok(Tried::new(method, not_checked(target)));
        };
        let op = if method == Method::Oob {
            pamsock::Op::Oob
        } else {
            pamsock::Op::Push
        };
        let request = pamsock::Request {
            op,
            user: self.binding.user.clone(),
            service: self.binding.service.clone(),
            rhost: self.binding.rhost.clone(),
        };
        let deadline = pamsock::client_deadline(self.push.timeout);
        let silent = self.flags.silent;
        let mut shown = String::new();
        let asked = pamsock::ask(&self.push.socket, &request, deadline, |event| {
            let text = match event {
                pamsock::Event::Started => PUSH_MESSAGE.to_string(),
                pamsock::Event::Challenge { challenge } => {
                    shown = challenge.clone();
                    oob_message(challenge)
                }
                pamsock::Event::Done(_) => return,
            };
            if !silent {
                // The user not seeing it does not change the answer.
                let _ = pam.message(Style::Info, &text);
            }
        });
        self.answered = Instant::now();
        let (verdict, fallback) = match asked {
            Ok(done) => {
                let code = done.code.unwrap_or_default();
                let message = done.message.unwrap_or_default();
                match done.result {
                    Outcome::Accept => (
                        Verdict::Accept {
                            token_sn: String::new(),
                            user_id: self.binding.user.clone(),
                        },
                        None,
                    ),
                    Outcome::Reject => (Verdict::Reject { code, message }, None),
                    Outcome::Unavailable => (Verdict::Unavailable { cause: message }, None),
                    Outcome::Denied => (local_reject(LOCAL_PUSH_DENIED, "denied"), Some("denied")),
                    Outcome::Timeout => (
                        local_reject(LOCAL_PUSH_TIMEOUT, "no answer"),
                        Some("timeout"),
                    ),
                    Outcome::Refused => (local_reject(&code, &message), Some("refused")),
                    Outcome::Error => {
                        pam.log(
                            Level::Err,
                            &format!(
                                "push: the daemon refused the request: {} ({})",
                                logging::sanitize(&message),
                                field(&code)
                            ),
                        );
                        (local_reject(&code, "daemon error"), Some("daemon-error"))
                    }
                }
            }
            Err(e) => {
                pam.log(
                    Level::Err,
                    &format!(
                        "push: no answer from the daemon at {}: {}",
                        self.push.socket.display(),
                        logging::sanitize(&e.to_string())
                    ),
                );
                (
                    local_reject(LOCAL_DAEMON_UNAVAILABLE, "no daemon"),
                    Some("no-daemon"),
                )
            }
        };
        if let Some(why) = fallback {
            if self.methods.allows(Method::Otp) {
                if !self.flags.silent {
                    pam.message(Style::Info, PUSH_FALLBACK_MESSAGE)?;
                }
                let mut tried = self.typed(pam, target, attempt)?;
                tried.note.push_str(&format!(" {method}={why}"));
                return Ok(tried);
            }
        }
        let mut tried = Tried::new(method, verdict);
        if let Some(why) = fallback {
            tried.note = format!(" {method}={why}");
        }
        if !shown.is_empty() {
            tried
                .note
                .push_str(&format!(" challenge={}", field(&shown)));
        }
        Ok(tried)
    }

    /// Runs one SxS call on the session.
    fn call<'s, P: Pam, F: Future<Output = Verdict>>(
        &'s self,
        pam: &mut P,
        make: impl FnOnce(&'s B::Calls) -> F,
    ) -> Verdict {
        match self.session {
            Some(s) => s.run(pam, self.args.debug, make(&s.calls)),
            None => Verdict::Unavailable {
                cause: "no SxS client".into(),
            },
        }
    }

    /// Sends an SMS code and asks for it.
    fn sms<P: Pam>(&mut self, pam: &mut P, target: &Target) -> PamResult<Tried> {
        let Target::Known(id) = target else {
            return Ok(Tried::new(Method::Sms, not_checked(target)));
        };
        let now = self.backend.now_unix();
        let sent = match self.session {
            Some(s) => s.run(
                pam,
                self.args.debug,
                s.calls.send_sms(id, &self.limiter, now),
            ),
            None => common::SmsSent {
                verdict: Verdict::Unavailable {
                    cause: "no SxS client".into(),
                },
                masked_mobile: None,
            },
        };
        if let Some(cause) = self.limiter.broken() {
            pam.log(
                Level::Err,
                &format!(
                    "SMS not sent: the send limit's state is unusable: {}",
                    logging::sanitize(&cause)
                ),
            );
            return Ok(Tried::new(
                Method::Sms,
                local_reject(LOCAL_SMS_LIMIT_STATE, "SMS limit state unusable"),
            ));
        }
        if !matches!(sent.verdict, Verdict::Accept { .. }) {
            return Ok(Tried::new(Method::Sms, sent.verdict));
        }
        self.sms_pending = true;
        let to = sent.masked_mobile.as_deref();
        if !self.flags.silent {
            pam.message(Style::Info, &sms::sent_message(to))?;
        }
        let mut tried = self.sms_code(pam, target)?;
        if let Some(m) = to {
            tried.note = format!(" sms_to={}", field(m));
        }
        Ok(tried)
    }

    /// Asks for the code that was sent and checks it.
    fn sms_code<P: Pam>(&mut self, pam: &mut P, target: &Target) -> PamResult<Tried> {
        let code = pam.prompt(sms::CODE_PROMPT)?;
        self.answered = Instant::now();
        let verdict = match target {
            _ if !otp_is_well_formed(&code) => {
                local_reject(codes::LOCAL_MALFORMED_OTP, "not an SMS code")
            }
            Target::Known(id) => self.call(pam, |c| c.validate_sms(id, &code)),
            _ => not_checked(target),
        };
        Ok(Tried::new(Method::Sms, verdict))
    }

    /// Shows a fresh MAC input and checks the MAC the user's app computed over it. Users who
    /// cannot be checked see the same, so the prompt does not tell whether a user exists.
    fn mac<P: Pam>(&mut self, pam: &mut P, target: &Target) -> PamResult<Tried> {
        let nonce = self.backend.nonce().map_err(|e| {
            pam.log(Level::Err, &format!("cannot make a MAC input: {e}"));
            PamCode::SystemErr
        })?;
        let input = mac_input::derive(&self.binding, self.backend.now_unix(), &nonce);
        let shown = group_digits(&input);
        if !self.flags.silent {
            pam.message(
                Style::Info,
                &format!("Type {shown} into the mToken app and enter the MAC it shows."),
            )?;
        }
        let mac = pam.prompt(&format!("MAC for {shown}: "))?;
        self.answered = Instant::now();
        let verdict = match target {
            _ if !otp_is_well_formed(&mac) => local_reject(codes::LOCAL_MALFORMED_OTP, "not a MAC"),
            Target::Known(id) => self.call(pam, |c| c.validate_mac(id, &input, &mac)),
            _ => not_checked(target),
        };
        let mut tried = Tried::new(Method::Mac, verdict);
        tried.note = format!(" mac_input={input}");
        Ok(tried)
    }
}

/// The verdict for a user whose answer is not sent to SxS.
fn not_checked(target: &Target) -> Verdict {
    match target {
        Target::Invalid(reason) => local_reject("local:invalid-user", reason),
        Target::NotAdmitted => local_reject(
            "local:not-in-required-group",
            "in none of policy.required_groups",
        ),
        _ => local_reject("local:unenrolled", "unenrolled"),
    }
}

/// The PAM code for a decision.
pub fn result_of(decision: Decision) -> PamCode {
    match decision {
        Decision::Allow | Decision::AllowFailOpen | Decision::AllowUnenrolled => PamCode::Success,
        Decision::Deny | Decision::DenyUnenrolled => PamCode::AuthErr,
        Decision::DenyUnavailable => PamCode::AuthInfoUnavail,
    }
}

#[allow(clippy::too_many_arguments)]
fn log_decision<P: Pam>(
    pam: &mut P,
    ctx: &Context,
    tried: &Tried,
    decision: Decision,
    code: PamCode,
    failmode: FailMode,
    attempt: u32,
    prompts: u32,
    latency: Duration,
) {
    let verdict = &tried.verdict;
    let mut line = ctx.line(verdict.kind(), verdict.code(), decision.as_str(), code);
    line.push_str(&format!(
        " method={} attempt={attempt}/{prompts} latency_ms={}{}",
        tried.method,
        latency.as_millis(),
        tried.note
    ));
    let level = match decision {
        Decision::Allow | Decision::AllowUnenrolled => Level::Info,
        Decision::Deny | Decision::DenyUnenrolled => Level::Notice,
        Decision::AllowFailOpen | Decision::DenyUnavailable => Level::Warning,
    };
    if let Verdict::Unavailable { cause } = verdict {
        line.push_str(&format!(" cause={}", field(cause)));
    }
    if decision == Decision::AllowFailOpen {
        line.push_str(&format!(
            " failmode={} warning=\"SxS unavailable: user let in WITHOUT a checked {}\"",
            match failmode {
                FailMode::Safe => "safe",
                FailMode::Secure => "secure",
            },
            match tried.method {
                Method::Mac => "MAC",
                _ => "OTP",
            }
        ));
    }
    pam.log(level, &line);
}

fn show<P: Pam>(pam: &mut P, flags: Flags, text: &str) {
    if !flags.silent {
        // The user not seeing a message does not change the answer.
        let _ = pam.message(Style::Error, text);
    }
}

/// The answer for attempt `attempt`: from `PAM_AUTHTOK` or from a prompt, per the arguments.
fn obtain<P: Pam>(pam: &mut P, args: &Args, attempt: u32, prompt: &str) -> PamResult<Secret> {
    match (args.first_pass, attempt) {
        (FirstPass::Use, _) => match pam.authtok()? {
            Some(tok) => Ok(tok),
            None => {
                pam.log(
                    Level::Err,
                    "use_first_pass: no PAM_AUTHTOK was set by an earlier module",
                );
                Err(PamCode::AuthtokRecoveryErr)
            }
        },
        (FirstPass::Try, 1) => match pam.authtok()? {
            // A password (not OTP-shaped) from an earlier module is not sent to SxS, where
            // it would only count as a failure: ask for the OTP instead.
            Some(tok) if usable_first_pass(&tok, args) => Ok(tok),
            _ => pam.prompt(prompt),
        },
        _ => pam.prompt(prompt),
    }
}

fn usable_first_pass(tok: &Secret, args: &Args) -> bool {
    if args.forward_pass {
        split_forward(tok, args.otp_digits).is_some()
    } else {
        otp_is_well_formed(tok)
    }
}

/// `forward_pass`: password followed by `digits` OTP digits. `None` when the answer does not
/// end in that many digits.
pub fn split_forward(typed: &Secret, digits: usize) -> Option<(Secret, Secret)> {
    let bytes = typed.expose();
    let cut = bytes.len().checked_sub(digits)?;
    let (password, otp) = bytes.split_at(cut);
    if !otp.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((Secret::new(password.to_vec()), Secret::new(otp.to_vec())))
}

#[cfg(test)]
mod tests;
