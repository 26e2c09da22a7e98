//! `sxsctl token enroll` and `sxsctl token renew`: the enrolment flow of PROTOCOL.md §1.3.

use std::time::{Duration, Instant};

use common::client::ActivationCode;
use serde_json::json;

use crate::app::Ctx;
use crate::cli::{QrTheme, TokenEnroll, TokenRenew};
use crate::error::{Exit, Failure};
use crate::output::{error, latency, millis, warn, Out};
use crate::tokenmap::{self, Change};
use crate::user::login_mismatch;
use crate::validate;

/// Wrong activation attempts before SxS kills a code (its default).
const ACTIVATION_TRIES: u32 = 3;

pub fn enroll(ctx: &Ctx, out: &mut Out, args: &TokenEnroll) -> Result<Exit, Failure> {
    validate::user_id(&args.user)?;
    let map_target = if args.write_map {
        Some(tokenmap::prepare(&ctx.cfg.identity, &args.user)?)
    } else {
        None
    };
    let mut warnings: Vec<String> = login_mismatch(&ctx.cfg, &args.user)?.into_iter().collect();
    warnings.iter().for_each(warn);
    let start = Instant::now();
    let sn = ctx.block_on(
        ctx.client
            .redistribute_token(&args.user, args.profile, args.service),
    )?;

    // The token exists now: the map follows SxS even if getting a code fails below.
    let map = map_target.map(|target| {
        tokenmap::upsert(&target, &ctx.cfg.identity, &args.user, &sn).map_err(|f| (target, f))
    });
    if let Some(Ok(u)) = &map {
        for other in &u.same_serial {
            let w = format!(
                "token map {}: the line of {other:?} also names token {sn}, which SxS now gives \
                 to {}; remove that stale line",
                u.file.display(),
                args.user
            );
            warn(&w);
            warnings.push(w);
        }
    }

    let code = new_activation_code(ctx, &sn).map_err(|f| {
        if let Some(Err((_, map_failure))) = &map {
            warn(map_failure);
        }
        f.hint(format!(
            "token {sn} was created for {}; get its activation code with `sxsctl token renew {sn}`",
            args.user
        ))
    })?;
    let took = start.elapsed();

    let map_json = match &map {
        None => serde_json::Value::Null,
        Some(Ok(u)) => json!({
            "file": u.file,
            "line": u.line,
            "change": u.change.as_str(),
            "previous_serial": match &u.change {
                Change::Replaced { previous } => Some(previous),
                _ => None,
            },
        }),
        Some(Err((target, f))) => json!({ "file": target, "error": f.message }),
    };
    if out.json() {
        let mut v = code_json(&sn, &code, took);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("user".into(), args.user.clone().into());
            obj.insert("token_map".into(), map_json);
            obj.insert("warnings".into(), warnings.into());
        }
        out.emit(&v)?;
    } else {
        out.line(format_args!(
            "Token {sn} enrolled for {} ({}).",
            args.user,
            latency(took)
        ))?;
        print_code(out, &code, args.qr)?;
        match &map {
            None => {}
            Some(Ok(u)) => {
                let what = match &u.change {
                    Change::Added => format!("added `{}`", u.line),
                    Change::Replaced { previous } => {
                        format!("replaced serial {previous} with `{}`", u.line)
                    }
                    Change::Unchanged => format!("already had `{}`", u.line),
                };
                out.blank()?;
                out.line(format_args!("Token map {}: {what}.", u.file.display()))?;
            }
            Some(Err((target, _))) => {
                out.blank()?;
                out.line(format_args!(
                    "Token map {} NOT updated: add the line `{} {sn}` by hand.",
                    target.display(),
                    args.user
                ))?;
            }
        }
    }
    match map {
        // The codes are out; the map is not: say so once, as the error of this run.
        Some(Err((_, f))) => {
            error(&f);
            Ok(Exit::Local)
        }
        _ => Ok(Exit::Success),
    }
}

pub fn renew(ctx: &Ctx, out: &mut Out, args: &TokenRenew) -> Result<Exit, Failure> {
    validate::serial(&args.serial)?;
    let start = Instant::now();
    let code = new_activation_code(ctx, &args.serial)?;
    let took = start.elapsed();
    if out.json() {
        out.emit(&code_json(&args.serial, &code, took))?;
    } else {
        out.line(format_args!(
            "New activation code for token {} ({}); the previous one no longer works.",
            args.serial,
            latency(took)
        ))?;
        print_code(out, &code, args.qr)?;
    }
    Ok(Exit::Success)
}

/// mtmRenewActivationCode (generateNew=true), then mtmGetActivationCode (formatId=1).
fn new_activation_code(ctx: &Ctx, sn: &str) -> Result<ActivationCode, Failure> {
    ctx.block_on(async {
        ctx.client.renew_activation_code(sn).await?;
        ctx.client.get_activation_code(sn).await
    })
    .map_err(Failure::from)
}

/// The line the operator pastes into a message to the user.
fn message_for_user(code: &ActivationCode) -> String {
    format!(
        "To activate your SxS mobile token, enter client ID {} and activation code {} in the \
         app, then choose a PIN. The code works for {ACTIVATION_TRIES} attempts.",
        code.client_id, code.activation_code
    )
}

fn code_json(sn: &str, code: &ActivationCode, took: Duration) -> serde_json::Value {
    json!({
        "token_sn": sn,
        "client_id": code.client_id,
        "activation_code": code.activation_code,
        "message_for_user": message_for_user(code),
        "latency_ms": millis(took),
    })
}

fn print_code(out: &mut Out, code: &ActivationCode, qr: Option<QrTheme>) -> Result<(), Failure> {
    out.blank()?;
    out.field("  client ID", &code.client_id)?;
    out.field("  activation code", &code.activation_code)?;
    if let Some(theme) = qr {
        out.blank()?;
        out.line(qr_code(code, theme)?)?;
    }
    out.blank()?;
    out.line("Message for the user:")?;
    out.line(format_args!("  {}", message_for_user(code)))?;
    Ok(())
}

/// A QR code of the 16 digits (client ID then activation code), in Unicode half blocks.
fn qr_code(code: &ActivationCode, theme: QrTheme) -> Result<String, Failure> {
    use qrcode::render::unicode::Dense1x2;
    let digits = format!("{}{}", code.client_id, code.activation_code);
    let qr = qrcode::QrCode::new(digits.as_bytes())
        .map_err(|e| Failure::new(Exit::Local, format!("cannot draw the QR code: {e}")))?;
    let (dark, light) = match theme {
        // Light modules drawn in the terminal's (light) foreground on a dark background.
        QrTheme::Dark => (Dense1x2::Light, Dense1x2::Dark),
        QrTheme::Light => (Dense1x2::Dark, Dense1x2::Light),
    };
    Ok(qr
        .render::<Dense1x2>()
        .dark_color(dark)
        .light_color(light)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_code_has_the_quiet_zone_and_is_square_ish() {
        let code = ActivationCode::parse("1234567887654321").unwrap();
        let text = qr_code(&code, QrTheme::Dark).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Version 1 (21 modules) + 2×4 quiet zone = 29 columns, two rows per line.
        assert_eq!(lines[0].chars().count(), 29);
        assert_eq!(lines.len(), 15);
        assert!(message_for_user(&code).contains("client ID 12345678"));
        assert!(message_for_user(&code).contains("activation code 87654321"));
    }
}
