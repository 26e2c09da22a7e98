//! One authentication: who is it, is the user exempt or unenrolled, get the OTP, one call into
//! `common`, a PAM code. Generic over [`Pam`] (the handle) and [`Backend`] (what checks the
//! OTP), so all of it is unit-tested without libpam.
#![forbid(unsafe_code)]

use std::ffi::c_int;
use std::time::{Duration, Instant};

use common::config::{FailMode, LoadOptions};
use common::secret::otp_is_well_formed;
use common::{codes, Config, Decision, Identity, IdentityMapper, Mapping, Secret, SxsClient};
use common::{Verdict, Verifier};

use crate::args::{Args, FirstPass};
use crate::code::{PamCode, PamResult};
use crate::logging::{self, field, Collector};
use crate::pam::{Item, Level, Pam, Style};

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

/// Builds what checks OTPs, from the configuration.
pub trait Backend {
    type Verifier: Verifier;
    fn build(&self, cfg: &Config) -> common::Result<Self::Verifier>;
}

/// The real backend: `common`'s SxS client.
#[derive(Debug, Default, Clone, Copy)]
pub struct SxsBackend;

impl Backend for SxsBackend {
    type Verifier = SxsClient;
    fn build(&self, cfg: &Config) -> common::Result<SxsClient> {
        SxsClient::new(&cfg.sxs)
    }
}

/// A verifier and the current-thread runtime it runs on, both made for one `pam_sm_authenticate`
/// call and dropped at its end: no thread is left behind in sshd or sudo, nothing survives a
/// fork. One runtime serves every attempt of the call, so the connection of the first attempt
/// can be reused by the next.
struct Session<V> {
    // Field order is drop order: the client (and its pooled connections) before the runtime.
    verifier: V,
    runtime: tokio::runtime::Runtime,
}

impl<V: Verifier> Session<V> {
    fn new(verifier: V) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Session { verifier, runtime })
    }

    fn verify<P: Pam>(&self, pam: &mut P, debug: bool, id: &Identity, otp: &Secret) -> Verdict {
        let (collector, events) = Collector::new(debug);
        let verdict = logging::with_collector(collector, || {
            self.runtime.block_on(self.verifier.verify(id, otp))
        });
        for (level, line) in logging::drain(&events) {
            pam.log(level, &line);
        }
        verdict
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

    if cfg.policy.is_exempt(&user) {
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

    let prompt = args
        .prompt_text(cfg.pam.prompt_for(&ctx.service))
        .to_string();
    let failmode = cfg.pam.failmode_for(&ctx.service, cfg.policy.failmode);

    for attempt in 1..=args.prompts {
        let typed = match obtain(pam, args, attempt, &prompt) {
            Ok(t) => t,
            Err(code) => {
                pam.log(
                    Level::Err,
                    &format!(
                        "no one-time password obtained: {} (service={} user={})",
                        code.name(),
                        field(&ctx.service),
                        field(&ctx.user)
                    ),
                );
                return code;
            }
        };
        let otp = if args.forward_pass {
            let split = split_forward(&typed, args.otp_digits);
            drop(typed);
            match split {
                Some((password, otp)) => {
                    if let Err(code) = pam.set_authtok(&password) {
                        pam.log(
                            Level::Err,
                            &format!("cannot set PAM_AUTHTOK: {}", code.name()),
                        );
                        return code;
                    }
                    otp
                }
                // Not password+OTP: refused below as a malformed OTP, like any typo.
                None => Secret::default(),
            }
        } else {
            typed
        };

        let started = Instant::now();
        let verdict = match &target {
            _ if !otp_is_well_formed(&otp) => Verdict::Reject {
                code: codes::LOCAL_MALFORMED_OTP.into(),
                message: "not an OTP".into(),
            },
            Target::Known(id) => match &session {
                Some(s) => s.verify(pam, args.debug, id, &otp),
                None => Verdict::Unavailable {
                    cause: "no verifier".into(),
                },
            },
            Target::Unenrolled => Verdict::Reject {
                code: "local:unenrolled".into(),
                message: "unenrolled".into(),
            },
            Target::Invalid(reason) => Verdict::Reject {
                code: "local:invalid-user".into(),
                message: (*reason).into(),
            },
        };
        drop(otp);
        let latency = started.elapsed();
        let decision = match &target {
            Target::Known(_) => cfg.policy.decide(&verdict, failmode),
            Target::Unenrolled => cfg.policy.decide_unenrolled(),
            Target::Invalid(_) => Decision::Deny,
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
            &verdict,
            decision,
            code,
            failmode,
            attempt,
            args.prompts,
            latency,
        );
        match code {
            PamCode::Success => return code,
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
    verdict: &Verdict,
    decision: Decision,
    code: PamCode,
    failmode: FailMode,
    attempt: u32,
    prompts: u32,
    latency: Duration,
) {
    let mut line = ctx.line(verdict.kind(), verdict.code(), decision.as_str(), code);
    line.push_str(&format!(
        " attempt={attempt}/{prompts} latency_ms={}",
        latency.as_millis()
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
            " failmode={} warning=\"SxS unavailable: user let in WITHOUT a checked OTP\"",
            match failmode {
                FailMode::Safe => "safe",
                FailMode::Secure => "secure",
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
