//! `sxsctl push USER`: one push through the daemon's PAM socket, the documented way (the same
//! path `pam_sxs.so` takes), so what the operator sees is what a login gets: the daemon maps
//! the user, asks SxS to push, receives the callback and validates its OTP. sxsctl itself does
//! not listen for SxS's callback.

use std::time::Instant;

use common::pamsock::{self, AskError, Event, Op, Outcome, Request};
use serde_json::json;

use crate::app::Ctx;
use crate::cli::PushArgs;
use crate::error::{Exit, Failure};
use crate::output::{millis, Out};

pub fn run(ctx: &Ctx, out: &mut Out, args: &PushArgs) -> Result<Exit, Failure> {
    let socket = &ctx.cfg.push.socket;
    let request = Request {
        op: Op::Push,
        user: args.user.clone(),
        service: "sxsctl".into(),
        rhost: String::new(),
    };
    let deadline = pamsock::client_deadline(ctx.cfg.push.timeout);
    let start = Instant::now();
    let json = out.json();
    let mut started = false;
    let asked = pamsock::ask(socket, &request, deadline, |e| {
        if *e == Event::Started {
            started = true;
            if !json {
                // People watch it wait; scripts get one object at the end.
                let _ = out.line(format!(
                    "push sent to {}'s phone; waiting up to {} for the answer",
                    args.user,
                    humantime::format_duration(ctx.cfg.push.timeout)
                ));
            }
        }
    });
    let done = match asked {
        Ok(done) => done,
        Err(e @ AskError::Connect { .. }) => {
            return Err(Failure::new(Exit::Unavailable, e.to_string()).hint(format!(
                "is sxs-radiusd running with an [http] section? push.socket in {}; the socket is root's",
                ctx.cfg.source
            )))
        }
        Err(e) => return Err(Failure::new(Exit::Unavailable, e.to_string())),
    };
    let took = start.elapsed();
    let exit = match done.result {
        Outcome::Accept => Exit::Success,
        Outcome::Reject | Outcome::Denied | Outcome::Timeout | Outcome::Refused => Exit::Refused,
        Outcome::Unavailable => Exit::Unavailable,
        Outcome::Error => {
            return Err(Failure::usage(format!(
                "the daemon refused the request: {} ({})",
                done.message.as_deref().unwrap_or(""),
                done.code.as_deref().unwrap_or("")
            )))
        }
    };
    if out.json() {
        out.emit(&json!({
            "user": args.user,
            "socket": socket.display().to_string(),
            "started": started,
            "result": done.result.as_str(),
            "code": done.code,
            "message": done.message,
            "latency_ms": millis(took),
        }))?;
    } else {
        out.field("user", &args.user)?;
        out.field("result", describe(done.result))?;
        if let Some(code) = &done.code {
            out.field(
                "code",
                format_args!("{code}: {}", done.message.as_deref().unwrap_or("")),
            )?;
        }
        out.field("latency", format_args!("{:.1} ms", millis(took)))?;
    }
    Ok(exit)
}

fn describe(o: Outcome) -> &'static str {
    match o {
        Outcome::Accept => "accept: approved on the phone, OTP validated by SxS",
        Outcome::Reject => "reject: SxS refused",
        Outcome::Denied => "denied on the phone",
        Outcome::Timeout => "timeout: no answer from the phone within push.timeout",
        Outcome::Unavailable => "unavailable: SxS could not be reached",
        Outcome::Refused => "refused: too many pushes waiting (push.max_pending_per_user)",
        Outcome::Error => "error",
    }
}
