//! `sxsctl`: the operator's command line for ASEE SxS: health, users, token enrolment, OTP
//! checks. It reads `/etc/sxs/sxs.toml` and talks to SxS only through `common`, so it sees
//! SxS exactly as `pam_sxs.so` and `sxs-radiusd` do. It may touch the network (SxS), standard
//! input/output, the terminal (OTP prompt) and, with `token enroll --write-map`, the token map.
//!
//! This file parses the arguments, runs the command, prints `error: …` once and exits; the
//! commands live in their modules.
#![forbid(unsafe_code)]

mod app;
mod cli;
mod error;
mod health;
mod mac;
mod man;
mod otp;
mod output;
mod push;
mod sms;
mod token;
mod tokenmap;
mod user;
mod validate;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A bug must still end as one `error:` line, not a panic message with a backtrace hint.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error in sxsctl (please report it): {info}"
        );
    }));
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    let json = cli.json;
    match app::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "error: {failure}");
            if json {
                let _ = output::Out::new(true).emit(&failure.to_json());
            }
            ExitCode::from(failure.exit.code())
        }
    }
}

/// The client's `tracing` events on stderr: warnings by default (e.g. failover,
/// `insecure_skip_verify`), more with `-v`; `RUST_LOG` wins when set.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}
