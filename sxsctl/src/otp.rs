//! `sxsctl otp check`: one validateOtp exactly as the front ends make it; the identity mapping
//! and the report are shared with `mac check` and `sms send`.
//!
//! Same identity mapping (`common::IdentityMapper` over `[identity]`), same client (servers,
//! failover, TLS, Organization ID header, application profile), same policy
//! (`common::Policy::decide`): what this prints is what `pam_sxs.so` and `sxs-radiusd` see.

use std::io::{self, BufRead, IsTerminal, Read};
use std::time::{Duration, Instant};

use common::config::{FailMode, SendIdentity};
use common::{codes, Identity, IdentityMapper, Mapping, Secret, Verdict};
use serde_json::json;
use zeroize::Zeroizing;

use crate::app::Ctx;
use crate::cli::OtpCheck;
use crate::error::{Exit, Failure};
use crate::output::{latency, millis, Out};

/// Longest OTP line read from standard input.
const MAX_OTP_LINE: u64 = 256;

pub fn check(ctx: &Ctx, out: &mut Out, mut args: OtpCheck) -> Result<Exit, Failure> {
    let Some(identity) = identity_for(ctx, out, &args.user)? else {
        return Ok(Exit::Refused);
    };
    let otp = match args.otp.take() {
        Some(text) => Secret::from(text),
        None => read_secret("OTP", &identity.user)?,
    };
    let start = Instant::now();
    let verdict = ctx.block_on(ctx.client.validate_otp(&identity, &otp));
    let took = start.elapsed();
    drop(otp);
    let profile = ctx.client.settings().application_profile.clone();
    report(ctx, out, &identity, &profile, None, verdict, took)
}

/// The login name mapped by `[identity]`, as the front ends map it. `None` when the user has
/// no line in the token map: that is reported here (what `policy.unenrolled` decides) and the
/// command exits 1 without calling SxS.
pub fn identity_for(ctx: &Ctx, out: &mut Out, user: &str) -> Result<Option<Identity>, Failure> {
    let mapper = IdentityMapper::new(&ctx.cfg.identity)?;
    match mapper.map(user) {
        Mapping::Known(identity) => Ok(Some(identity)),
        Mapping::Invalid { reason } => {
            Err(Failure::usage(format!("invalid USER {user:?}: {reason}")))
        }
        Mapping::NotInTokenMap { user } => {
            let decision = ctx.cfg.policy.decide_unenrolled();
            let map = ctx
                .cfg
                .identity
                .token_map
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if out.json() {
                out.emit(&json!({
                    "user": user,
                    "verdict": "not-in-token-map",
                    "token_map": map,
                    "decision": decision.as_str(),
                }))?;
            } else {
                out.field("user", &user)?;
                out.field(
                    "verdict",
                    format_args!(
                        "not checked: no line for {user:?} in the token map {map} (identity.send = {})",
                        send_name(ctx.cfg.identity.send)
                    ),
                )?;
                out.field(
                    "decision",
                    format_args!("{} (policy.unenrolled)", decision.as_str()),
                )?;
            }
            Ok(None)
        }
    }
}

/// The exit status of a verdict: 0 accepted, 1 refused, 3 unavailable.
pub fn exit_of(verdict: &Verdict) -> Exit {
    match verdict {
        Verdict::Accept { .. } => Exit::Success,
        Verdict::Reject { .. } => Exit::Refused,
        Verdict::Unavailable { .. } => Exit::Unavailable,
    }
}

/// Prints SxS's verdict on an OTP or a MAC (`mac_input` given) and what the policy decides;
/// gives the exit status.
pub fn report(
    ctx: &Ctx,
    out: &mut Out,
    identity: &Identity,
    profile: &str,
    mac_input: Option<&str>,
    verdict: Verdict,
    took: Duration,
) -> Result<Exit, Failure> {
    let policy = &ctx.cfg.policy;
    // What pam_sxs and sxs-radiusd would do first: the required groups, then exemptions.
    let admitted = policy.admits_user(&identity.user);
    let exempt = admitted && policy.is_exempt(&identity.user);
    let decision = policy.decide(&verdict, policy.failmode);
    let exit = exit_of(&verdict);
    let local = matches!(
        verdict.code(),
        Some(codes::LOCAL_MALFORMED_OTP | codes::LOCAL_MALFORMED_MAC_INPUT)
    );
    let settings = ctx.client.settings();

    if out.json() {
        let (token_sn, user_id, code, message, cause) = match &verdict {
            Verdict::Accept { token_sn, user_id } => {
                (Some(token_sn), Some(user_id), None, None, None)
            }
            Verdict::Reject { code, message } => (None, None, Some(code), Some(message), None),
            Verdict::Unavailable { cause } => (None, None, None, None, Some(cause)),
        };
        let mut v = json!({
            "user": identity.user,
            "sent": {
                "token_sn": identity.token_sn,
                "user_id": identity.user_id,
                "application_profile": profile,
                "organization_header": settings.organization_header,
            },
            "verdict": verdict.kind(),
            "sent_to_sxs": !local,
            "sxs_token_sn": token_sn,
            "sxs_user_id": user_id,
            "sxs_code": code,
            "sxs_message": message,
            "cause": cause,
            "latency_ms": millis(took),
            "decision": decision.as_str(),
            "failmode": failmode_name(policy.failmode),
            "exempt": exempt,
            "in_required_groups": admitted,
        });
        if let (Some(input), Some(obj)) = (mac_input, v.as_object_mut()) {
            obj.insert("mac_input".into(), input.into());
        }
        out.emit(&v)?;
        return Ok(exit);
    }

    out.field("user", &identity.user)?;
    out.field(
        "sent",
        format_args!(
            "{} (application profile {profile}, header {})",
            describe(identity),
            settings.organization_header
        ),
    )?;
    if let Some(input) = mac_input {
        out.field("mac input", input)?;
    }
    match &verdict {
        Verdict::Accept { token_sn, user_id } => {
            out.field("verdict", "accept")?;
            out.field("token serial", token_sn)?;
            out.field("sxs user id", user_id)?;
        }
        Verdict::Reject { code, message } => {
            out.field("verdict", "reject")?;
            if local {
                out.field("reason", format_args!("{message} (not sent to SxS)"))?;
            } else {
                out.field("sxs code", code)?;
                out.field("sxs message", message)?;
            }
        }
        Verdict::Unavailable { cause } => {
            out.field("verdict", "unavailable")?;
            out.field("cause", cause)?;
        }
    }
    out.field("latency", latency(took))?;
    out.field(
        "decision",
        format_args!(
            "{} (policy.failmode = {}; a [pam.service] failmode may differ)",
            decision.as_str(),
            failmode_name(policy.failmode)
        ),
    )?;
    if !admitted {
        out.field(
            "note",
            format_args!(
                "{} is in none of policy.required_groups {:?}: pam_sxs and sxs-radiusd refuse them before SxS is asked, whatever the OTP",
                identity.user, policy.required_groups
            ),
        )?;
    }
    if exempt {
        out.field(
            "note",
            format_args!(
                "{} is exempt (policy.exempt_users/exempt_groups): pam_sxs does not ask for an OTP",
                identity.user
            ),
        )?;
    }
    Ok(exit)
}

/// The OTP (or MAC: `what`) from the terminal without echo, or one line of standard input
/// when it is not a terminal (`echo 123456 | sxsctl otp check alice`).
pub fn read_secret(what: &str, user: &str) -> Result<Secret, Failure> {
    let text = if io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(format!("{what} for {user}: ")).map_err(|e| {
                Failure::usage(format!("cannot read the {what} from the terminal: {e}"))
            })?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        io::stdin()
            .lock()
            .take(MAX_OTP_LINE)
            .read_line(&mut line)
            .map_err(|e| {
                Failure::usage(format!("cannot read the {what} from standard input: {e}"))
            })?;
        line
    };
    let otp = text.trim_end_matches(['\n', '\r']);
    if otp.is_empty() {
        return Err(Failure::usage(format!(
            "no {what} given (as an argument, on the terminal or on standard input)"
        )));
    }
    Ok(Secret::from(otp))
}

pub fn describe(identity: &Identity) -> String {
    match (&identity.token_sn, &identity.user_id) {
        (Some(sn), Some(uid)) => format!("TokenSN={sn} UserID={uid}"),
        (Some(sn), None) => format!("TokenSN={sn}"),
        (None, Some(uid)) => format!("UserID={uid}"),
        (None, None) => "nothing".into(),
    }
}

fn send_name(send: SendIdentity) -> &'static str {
    match send {
        SendIdentity::UserId => "user_id",
        SendIdentity::TokenSn => "token_sn",
        SendIdentity::Both => "both",
    }
}

fn failmode_name(mode: FailMode) -> &'static str {
    match mode {
        FailMode::Secure => "secure",
        FailMode::Safe => "safe",
    }
}
