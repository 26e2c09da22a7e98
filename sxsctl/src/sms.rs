//! `sxsctl sms send`: one SMS one-time password, sent as `pam_sxs.so` sends it and counted in
//! the same per-user limit files (`sms.pam_state_dir`), so an operator's sends and the users'
//! logins share one limit.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::sms::{FileLimiter, Recording};
use common::{codes, Verdict};
use serde_json::json;

use crate::app::Ctx;
use crate::cli::SmsSend;
use crate::error::{Exit, Failure};
use crate::otp::{describe, exit_of, identity_for};
use crate::output::{latency, millis, Out};

pub fn send(ctx: &Ctx, out: &mut Out, args: &SmsSend) -> Result<Exit, Failure> {
    let Some(identity) = identity_for(ctx, out, &args.user)? else {
        return Ok(Exit::Refused);
    };
    let sms = &ctx.cfg.sms;
    let limiter = Recording::new(FileLimiter::new(
        sms.pam_state_dir.clone(),
        sms.max_per_user,
        sms.window,
    ));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let start = Instant::now();
    let sent = ctx.block_on(ctx.client.send_sms_otp(&identity, &limiter, now));
    let took = start.elapsed();
    if let Some(cause) = limiter.broken() {
        // Nothing was sent: the local state, not SxS, is the problem.
        return Err(Failure::usage(format!(
            "no SMS sent: the send limit's state is unusable: {cause}"
        ))
        .hint(format!(
            "sms.pam_state_dir is shared with pam_sxs.so and must be root's, mode 0700; run sxsctl as root or set [sms] pam_state_dir in {}",
            ctx.cfg.source
        )));
    }
    let verdict = sent.verdict;
    let exit = exit_of(&verdict);
    let limited = verdict.code() == Some(codes::LOCAL_SMS_RATE_LIMITED);
    let method = &ctx.client.settings().methods.send_sms;
    let limit = format!(
        "{} per user per {} (sms.max_per_user, sms.window), counted in {}",
        sms.max_per_user,
        humantime::format_duration(sms.window),
        sms.pam_state_dir.display()
    );

    if out.json() {
        let (code, message, cause) = match &verdict {
            Verdict::Accept { .. } => (None, None, None),
            Verdict::Reject { code, message } => (Some(code), Some(message), None),
            Verdict::Unavailable { cause } => (None, None, Some(cause)),
        };
        out.emit(&json!({
            "user": identity.user,
            "sent": {
                "token_sn": identity.token_sn,
                "user_id": identity.user_id,
                "application_profile": method.application_profile,
                "request": method.request,
            },
            "verdict": if exit == Exit::Success { "sent" } else { verdict.kind() },
            "masked_mobile": sent.masked_mobile,
            "sent_to_sxs": !limited,
            "sxs_code": code,
            "sxs_message": message,
            "cause": cause,
            "latency_ms": millis(took),
            "limit": {
                "max_per_user": sms.max_per_user,
                "window_secs": sms.window.as_secs(),
                "state_dir": sms.pam_state_dir.display().to_string(),
            },
        }))?;
        return Ok(exit);
    }

    out.field("user", &identity.user)?;
    out.field(
        "sent",
        format_args!(
            "{} ({}, application profile {})",
            describe(&identity),
            method.request,
            method.application_profile
        ),
    )?;
    match &verdict {
        Verdict::Accept { .. } => {
            out.field("verdict", "sent")?;
            out.field(
                "to",
                sent.masked_mobile
                    .as_deref()
                    .unwrap_or("the user's registered mobile (SxS did not say which)"),
            )?;
        }
        Verdict::Reject { message, .. } if limited => {
            out.field("verdict", "not sent")?;
            out.field("reason", format_args!("{message} (not sent to SxS)"))?;
        }
        Verdict::Reject { code, message } => {
            out.field("verdict", "reject")?;
            out.field("sxs code", code)?;
            out.field("sxs message", message)?;
        }
        Verdict::Unavailable { cause } => {
            out.field("verdict", "unavailable")?;
            out.field("cause", cause)?;
        }
    }
    out.field("latency", latency(took))?;
    out.field("limit", limit)?;
    Ok(exit)
}
