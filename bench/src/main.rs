//! `sxs-bench`: load generators that print figures (never asserted in tests).
//!
//! - `sxs-bench radius`: starts the SxS simulator in-process (replay allowed, optional
//!   injected latency), runs the real `sxs-radiusd` binary as a child process, and drives it
//!   with many Access-Requests in flight; prints req/s, p50/p99 latency and the server's
//!   peak RSS.
//! - `sxs-bench sim`: drives the simulator's validateOtp through the SxS client; prints calls/s.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use common::sim::{self, Faults, SeedUser, SimHandle, SimOptions};
use radiusd::auth::encode_user_password;
use radiusd::packet::{attr, encode_request, Code};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks for sxs-radiusd and sxs-sim")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// sxs-radiusd + simulator under load.
    Radius {
        /// Requests kept in flight.
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
        /// Seconds of load (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Latency the simulator adds to each validateOtp.
        #[arg(long, default_value_t = 0)]
        sxs_latency_ms: u64,
        /// `sxs.max_connections` of the server under test.
        #[arg(long, default_value_t = 512)]
        sxs_max_connections: usize,
        /// The sxs-radiusd binary (default: next to this one).
        #[arg(long)]
        radiusd: Option<PathBuf>,
    },
    /// validateOtp calls per second against the simulator.
    Sim {
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

const SECRET: &str = "benchmark-shared-secret";

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.cmd {
        Cmd::Radius {
            in_flight,
            seconds,
            sxs_latency_ms,
            sxs_max_connections,
            radiusd,
        } => rt.block_on(radius(
            in_flight,
            seconds,
            sxs_latency_ms,
            sxs_max_connections,
            radiusd,
        )),
        Cmd::Sim {
            concurrency,
            seconds,
        } => rt.block_on(sim_bench(concurrency, seconds)),
    }
}

async fn start_sim() -> SimHandle {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::start(
        l,
        SimOptions {
            allow_replay: true,
            seed: vec![SeedUser {
                id: "bench".into(),
                token_sn: Some("2000000042".into()),
                ..SeedUser::default()
            }],
            ..SimOptions::default()
        },
    )
    .unwrap()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn sim_bench(concurrency: usize, seconds: u64) {
    let sim = start_sim().await;
    let cfg = common::Config::from_toml_str(
        &format!(
            "[sxs]\nservers = [\"{}\"]\norganization_id = \"1\"\n",
            sim.url()
        ),
        "<bench>",
        common::config::LoadOptions {
            env_overrides: false,
        },
    )
    .unwrap();
    let client = Arc::new(common::SxsClient::new(&cfg.sxs).unwrap());
    let identity = common::Identity {
        user: "bench".into(),
        token_sn: None,
        user_id: Some("bench".into()),
    };
    let otp = Arc::new(Mutex::new(sim.current_otp("bench").unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for _ in 0..concurrency {
        let (client, identity, otp, stop) =
            (client.clone(), identity.clone(), otp.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut accepted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let code = otp.lock().unwrap().clone();
                let v = client.validate_otp(&identity, &code.as_str().into()).await;
                n += 1;
                accepted += u64::from(v.kind() == "accept");
            }
            (n, accepted)
        }));
    }
    let deadline = start + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        *otp.lock().unwrap() = sim.current_otp("bench").unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut accepted) = (0u64, 0u64);
    for t in tasks {
        let (n, a) = t.await.unwrap();
        total += n;
        accepted += a;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "sim: {concurrency} concurrent clients, {elapsed:.1} s: {total} validateOtp ({accepted} accepted), {:.0} calls/s (client and simulator share the machine)",
        total as f64 / elapsed
    );
}

/// Peak resident set size of a process, from /proc.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn radius(
    in_flight: usize,
    seconds: u64,
    latency_ms: u64,
    max_connections: usize,
    radiusd: Option<PathBuf>,
) {
    let sim = Arc::new(start_sim().await);
    if latency_ms > 0 {
        sim.set_faults(Faults {
            latency_ms,
            ..Faults::default()
        });
    }
    let dir = std::env::temp_dir().join(format!("sxs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sxs.toml");
    let max = (in_flight * 2).max(1024);
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        "[sxs]\nservers = [\"{}\"]\norganization_id = \"1\"\ntimeout = \"10s\"\nmax_connections = {max_connections}\n[radius]\nreject_delay = \"0s\"\nmax_in_flight = {max}\n[[radius.clients]]\nname = \"bench\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n",
        sim.url()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bin = radiusd.unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .with_file_name("sxs-radiusd")
    });
    let mut child = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let target: SocketAddr = line
        .trim()
        .strip_prefix("sxs-radiusd listening on ")
        .unwrap_or_else(|| panic!("sxs-radiusd did not start: {line:?}"))
        .parse()
        .unwrap();
    let otp = Arc::new(Mutex::new(sim.current_otp("bench").unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    // Up to 250 outstanding identifiers per socket.
    let per_socket = in_flight.clamp(1, 250);
    let sockets = in_flight.div_ceil(per_socket);
    let mut tasks = Vec::new();
    for s in 0..sockets {
        let window = per_socket.min(in_flight - s * per_socket);
        tasks.push(tokio::spawn(drive(
            target,
            window,
            otp.clone(),
            stop.clone(),
            measuring.clone(),
        )));
    }
    let refresher = {
        let otp = otp.clone();
        let stop = stop.clone();
        let sim = sim.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                *otp.lock().unwrap() = sim.current_otp("bench").unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let rss = peak_rss_kib(child.id());
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let (mut accepts, mut others, mut lost) = (0u64, 0u64, 0u64);
    for t in tasks {
        let r = t.await.unwrap();
        latencies.extend(r.latencies_us);
        accepts += r.accepts;
        others += r.others;
        lost += r.lost;
    }
    refresher.await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_unstable();
    println!(
        "radius: {in_flight} in flight, SxS latency {latency_ms} ms, sxs.max_connections {max_connections}, {elapsed:.1} s: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms; {accepts} accepts, {others} other answers, {lost} lost; sxs-radiusd peak RSS {} MiB",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        rss.map(|k| format!("{:.1}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into()),
    );
}

#[derive(Default)]
struct DriveResult {
    latencies_us: Vec<u32>,
    accepts: u64,
    others: u64,
    lost: u64,
}

/// One UDP socket with up to `window` requests outstanding, each identifier reused only
/// after its answer (or after 5 s, counted lost).
async fn drive(
    target: SocketAddr,
    window: usize,
    otp: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    measuring: Arc<AtomicBool>,
) -> DriveResult {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(target).await.unwrap();
    let mut pending: Vec<Option<(Instant, bool)>> = vec![None; 256];
    let mut outstanding = 0usize;
    let mut next_id = 0u8;
    let mut result = DriveResult::default();
    let mut buf = [0u8; 4096];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping && outstanding < window {
            while pending[usize::from(next_id)].is_some() {
                next_id = next_id.wrapping_add(1);
            }
            let id = next_id;
            next_id = next_id.wrapping_add(1);
            let auth: [u8; 16] = rand::random();
            let code = otp.lock().unwrap().clone();
            let pw = encode_user_password(code.as_bytes(), &auth, SECRET.as_bytes()).unwrap();
            let pkt = encode_request(
                Code::AccessRequest,
                id,
                &auth,
                &[(attr::USER_NAME, b"bench"), (attr::USER_PASSWORD, &pw)],
                Some(SECRET.as_bytes()),
            )
            .unwrap();
            if sock.send(&pkt).await.is_err() {
                break;
            }
            pending[usize::from(id)] = Some((Instant::now(), measuring.load(Ordering::Relaxed)));
            outstanding += 1;
        }
        if stopping && outstanding == 0 {
            return result;
        }
        match tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await {
            Ok(Ok(n)) if n >= 20 => {
                let id = usize::from(buf[1]);
                if let Some((sent, counted)) = pending[id].take() {
                    outstanding -= 1;
                    if counted {
                        result
                            .latencies_us
                            .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                        if buf[0] == 2 {
                            result.accepts += 1;
                        } else {
                            result.others += 1;
                        }
                    }
                }
            }
            _ => {
                let now = Instant::now();
                for slot in pending.iter_mut() {
                    if slot.is_some_and(|(t, _)| now - t > Duration::from_secs(5)) {
                        *slot = None;
                        outstanding -= 1;
                        result.lost += 1;
                    }
                }
                if stopping {
                    // Give stragglers one more chance, then leave.
                    if outstanding > 0
                        && !pending
                            .iter()
                            .flatten()
                            .any(|(t, _)| now - *t < Duration::from_secs(5))
                    {
                        return result;
                    }
                }
            }
        }
    }
}
