//! `sxs-sim`: the SxS simulator as a process. See docs/simulator.md.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use common::sim::{self, SimOptions};

/// A stand-in for ASEE SxS on loopback: validateOtp, admin calls, health, and /sim/ hooks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8442")]
    listen: SocketAddr,
    /// TOML seed file with `[[user]]` entries (id, token_sn, secret, mobile, …).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// The Organization ID every SxS call must carry.
    #[arg(long, default_value = sim::DEFAULT_ORGANIZATION_ID)]
    organization_id: String,
    /// The header that carries it.
    #[arg(long, default_value = sim::DEFAULT_ORGANIZATION_HEADER)]
    organization_header: String,
    /// Consecutive wrong OTPs that lock a token.
    #[arg(long, default_value_t = sim::DEFAULT_LOCKOUT)]
    lockout: u32,
    /// Accept an OTP more than once. For benchmarks only: a real SxS never does.
    #[arg(long)]
    allow_replay: bool,
    /// How long an SMS code stays valid.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    sms_ttl: std::time::Duration,
    /// Take the SOAP names of sendSms and validateMac from this sxs.toml's `[sxs.methods]`,
    /// so the simulator answers a client configured with other names.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let seed = match &args.seed {
        Some(path) => sim::load_seed(path)?,
        None => Vec::new(),
    };
    let methods = match &args.config {
        Some(path) => {
            common::Config::load(
                path,
                common::config::LoadOptions {
                    env_overrides: false,
                },
            )
            .map_err(|e| e.to_string())?
            .sxs
            .methods
        }
        None => SimOptions::default().methods,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let users: Vec<String> = seed.iter().map(|u| u.id.clone()).collect();
        let handle = sim::start(
            listener,
            SimOptions {
                organization_id: args.organization_id,
                organization_header: args.organization_header,
                lockout: args.lockout,
                allow_replay: args.allow_replay,
                seed,
                sms_ttl: args.sms_ttl,
                methods,
            },
        )?;
        // The first line is machine-read by test harnesses: keep its shape.
        println!("sxs-sim listening on {}", handle.url());
        for user in users {
            println!(
                "user {user}: current OTP at {}/sim/otp/{user}",
                handle.url()
            );
        }
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
        handle.stop();
        Ok(())
    })
}
