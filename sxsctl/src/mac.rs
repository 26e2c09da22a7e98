//! `sxsctl mac check`: one validateMac exactly as the front ends make it (dynamic linking).

use std::time::Instant;

use common::Secret;

use crate::app::Ctx;
use crate::cli::MacCheck;
use crate::error::{Exit, Failure};
use crate::otp::{identity_for, read_secret, report};
use crate::output::Out;

pub fn check(ctx: &Ctx, out: &mut Out, mut args: MacCheck) -> Result<Exit, Failure> {
    let Some(identity) = identity_for(ctx, out, &args.user)? else {
        return Ok(Exit::Refused);
    };
    let mac = match args.mac.take() {
        Some(text) => Secret::from(text),
        None => read_secret("MAC", &identity.user)?,
    };
    let start = Instant::now();
    let verdict = ctx.block_on(ctx.client.validate_mac(&identity, &args.input, &mac));
    let took = start.elapsed();
    drop(mac);
    let profile = ctx
        .client
        .settings()
        .methods
        .validate_mac
        .application_profile
        .clone();
    report(
        ctx,
        out,
        &identity,
        &profile,
        Some(&args.input),
        verdict,
        took,
    )
}
