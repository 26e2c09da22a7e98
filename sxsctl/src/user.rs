//! `sxsctl user create`: createOrUpdateSxsUser, after checking the input.

use std::time::Instant;

use common::config::{Config, SendIdentity};
use common::soap::SxsUser;
use common::IdentityMapper;
use serde_json::json;

use crate::app::Ctx;
use crate::cli::UserCreate;
use crate::error::{Exit, Failure};
use crate::output::{latency, millis, warn, Out};
use crate::validate;

pub fn create(ctx: &Ctx, out: &mut Out, args: &UserCreate) -> Result<Exit, Failure> {
    validate::user_id(&args.user)?;
    validate::email(&args.email)?;
    validate::mobile(&args.mobile)?;
    let first_name = args.first_name.clone().unwrap_or_default();
    let last_name = args.last_name.clone().unwrap_or_default();
    let address = args.address.clone().unwrap_or_default();
    validate::text("--first-name", &first_name)?;
    validate::text("--last-name", &last_name)?;
    validate::text("--address", &address)?;
    let warnings: Vec<String> = login_mismatch(&ctx.cfg, &args.user)?.into_iter().collect();
    warnings.iter().for_each(warn);
    let user = SxsUser {
        user_id: args.user.clone(),
        first_name,
        last_name,
        email: args.email.clone(),
        mobile: args.mobile.clone(),
        address,
    };
    let start = Instant::now();
    ctx.block_on(ctx.client.create_or_update_user(&user))?;
    let took = start.elapsed();
    if out.json() {
        out.emit(&json!({
            "user_id": user.user_id,
            "email": user.email,
            "mobile": user.mobile,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "address": user.address,
            "latency_ms": millis(took),
            "warnings": warnings,
        }))?;
    } else {
        out.line(format_args!(
            "SxS user {} created or updated ({}).",
            user.user_id,
            latency(took)
        ))?;
        out.field("  e-mail", &user.email)?;
        out.field("  mobile", &user.mobile)?;
        for (key, value) in [
            ("  first name", &user.first_name),
            ("  last name", &user.last_name),
            ("  address", &user.address),
        ] {
            if !value.is_empty() {
                out.field(key, value)?;
            }
        }
    }
    Ok(Exit::Success)
}

/// A warning when `user` is not what PAM and RADIUS send as `UserID` for any login: they
/// normalise the login name (`identity.strip_realm`, `identity.lowercase`) first, so SxS would
/// be asked about another user than the one being created.
/// In `token_sn` mode the user id is never sent, so there is nothing to warn about.
pub fn login_mismatch(cfg: &Config, user: &str) -> Result<Option<String>, Failure> {
    if cfg.identity.send == SendIdentity::TokenSn {
        return Ok(None);
    }
    let mut settings = cfg.identity.clone();
    settings.send = SendIdentity::UserId;
    let normalised = IdentityMapper::new(&settings)?.normalise(user);
    Ok((normalised != user).then(|| {
        format!(
            "PAM and RADIUS send the user id {normalised:?}, not {user:?} \
             (identity.strip_realm / identity.lowercase): logins will not find {user:?}"
        )
    }))
}
