//! `sxsctl health`: the JSON health check of every SxS root.

use serde_json::json;

use crate::app::Ctx;
use crate::error::{Exit, Failure};
use crate::output::{latency, millis, Out};

pub fn run(ctx: &Ctx, out: &mut Out) -> Result<Exit, Failure> {
    let reports = ctx.block_on(ctx.client.health_check());
    let up = reports.iter().filter(|r| r.healthy).count();
    let healthy = up == reports.len();
    let admin_configured = ctx.cfg.sxs.admin_url.is_some();
    if out.json() {
        let checks: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "root": r.root,
                    "url": r.url,
                    "healthy": r.healthy,
                    "latency_ms": millis(r.latency),
                    "detail": r.detail,
                })
            })
            .collect();
        out.emit(&json!({
            "healthy": healthy,
            "admin_configured": admin_configured,
            "checks": checks,
        }))?;
    } else {
        let url_width = reports.iter().map(|r| r.url.len()).max().unwrap_or(0);
        for r in &reports {
            out.line(format_args!(
                "{:<6} {:<5} {:>9}  {:<url_width$}  {}",
                r.root,
                if r.healthy { "up" } else { "DOWN" },
                latency(r.latency),
                r.url,
                r.detail,
            ))?;
        }
        if !admin_configured {
            out.line(
                "admin  -      not configured (sxs.admin_url): user and token commands need it",
            )?;
        }
        if healthy {
            out.line(format_args!("{up} of {} SxS roots up", reports.len()))?;
        } else {
            out.line(format_args!(
                "{} of {} SxS roots DOWN",
                reports.len() - up,
                reports.len()
            ))?;
        }
    }
    Ok(if healthy {
        Exit::Success
    } else {
        Exit::Unavailable
    })
}
