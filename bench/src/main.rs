//! `sxs-bench`: load generators that print figures (never asserted in tests).
//!
//! - `sxs-bench radius`: starts the SxS simulator in-process (replay allowed, optional
//!   injected latency), runs the real `sxs-radiusd` binary as a child process (or drives an
//!   external server: `--server ADDR --secret S`), and keeps many Access-Requests in flight;
//!   prints req/s, p50/p99 latency, lost answers, the server's CPU-ms per request and peak RSS.
//! - `sxs-bench peer`: the same load, same simulator, against FreeRADIUS 3.2 + `rlm_rest`
//!   (packaged configuration, private copy) and against `sxs-radiusd`, at 0 ms and 100 ms of
//!   SxS latency; prints both and the ratios.
//! - `sxs-bench sim`: drives the simulator's validateOtp through the SxS client; prints calls/s.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod freeradius;
mod soak;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    /// sxs-radiusd (or an external server) + simulator under load.
    Radius {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        server_args: ServerArgs,
        /// Latency the simulator adds to each validateOtp.
        #[arg(long, default_value_t = 0)]
        sxs_latency_ms: u64,
        /// `sxs.max_connections` of the server under test (a number or "auto").
        #[arg(long, default_value = "auto")]
        sxs_max_connections: String,
        /// The sxs-radiusd binary (default: next to this one).
        #[arg(long)]
        radiusd: Option<PathBuf>,
        /// Drive this already running server instead of starting sxs-radiusd; it must use
        /// the simulator at `--sim-listen`.
        #[arg(long, requires = "secret")]
        server: Option<SocketAddr>,
        /// Its shared secret for 127.0.0.1.
        #[arg(long)]
        secret: Option<String>,
        /// Its process id, for CPU time and peak RSS (optional).
        #[arg(long)]
        server_pid: Option<u32>,
        /// Where the simulator listens (user `bench`, replay allowed).
        #[arg(long, default_value = "127.0.0.1:0")]
        sim_listen: SocketAddr,
    },
    /// FreeRADIUS 3.2 + rlm_rest against sxs-radiusd: same simulator, same load.
    Peer {
        /// Seconds of load per run (after one second of warm-up).
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// Requests in flight with an instant SxS.
        #[arg(long, default_value_t = 64)]
        in_flight_fast: usize,
        /// Requests in flight with 100 ms of SxS latency.
        #[arg(long, default_value_t = 2000)]
        in_flight_slow: usize,
        /// The freeradius binary.
        #[arg(long, default_value = "/usr/sbin/freeradius")]
        freeradius: PathBuf,
        /// The sxs-radiusd binary (default: next to this one).
        #[arg(long)]
        radiusd: Option<PathBuf>,
        #[command(flatten)]
        server_args: ServerArgs,
    },
    /// Two sxs-radiusd binaries under the same load, alternately (A B A B …), so a loaded
    /// machine slows both alike; prints each run and the median ratios B / A.
    Compare {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        server_args: ServerArgs,
        /// Binary A (the baseline).
        #[arg(long)]
        baseline: PathBuf,
        /// Binary B (default: the sxs-radiusd next to this one).
        #[arg(long)]
        radiusd: Option<PathBuf>,
        /// Runs of each.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Latency the simulator adds to each validateOtp.
        #[arg(long, default_value_t = 0)]
        sxs_latency_ms: u64,
    },
    /// What building the SxS client costs (the PAM module builds one per authentication):
    /// http, https with `sxs.ca_file`, https with the system roots, and reqwest's own
    /// native-roots loader (what the client used before).
    ClientBuild {
        #[arg(long, default_value_t = 200)]
        iterations: u32,
        /// A PEM CA for the `ca_file` case (default: the first certificate of the system
        /// bundle, as an operator's one SxS CA would be).
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
    /// sxs-radiusd at full speed with retransmissions and malformed datagrams; exits 1 on a
    /// wrong answer, a lost request, a second SxS call for one request, or growing memory.
    Soak {
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Requests kept in flight.
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
        /// Percentage of requests retransmitted (0-50 ms after the first send).
        #[arg(long, default_value_t = 10)]
        retransmit_pct: u32,
        /// Malformed datagrams, as a percentage of the requests in flight, every millisecond.
        #[arg(long, default_value_t = 5)]
        malformed_pct: u32,
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

/// How the server under test runs.
#[derive(Debug, Clone, clap::Args)]
struct ServerArgs {
    /// Pin the server under test to this CPU (`taskset -c`), so its CPU time is not spread
    /// over the cores the load generator and the simulator use.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// `RUST_LOG` of sxs-radiusd. `info` (the default, as deployed) writes one line per
    /// decision, to a file in the scratch directory; the lines are counted against the answers.
    #[arg(long, default_value = "info")]
    server_log: String,
}

#[derive(Debug, Clone, Copy, clap::Args)]
struct LoadArgs {
    /// Requests kept in flight.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Seconds of load (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
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
            load,
            server_args,
            sxs_latency_ms,
            sxs_max_connections,
            radiusd,
            server,
            secret,
            server_pid,
            sim_listen,
        } => rt.block_on(async {
            let sim = Arc::new(start_sim(sim_listen, sxs_latency_ms).await);
            let f = match (server, secret) {
                (Some(server), Some(secret)) => {
                    println!("simulator: {}", sim.url());
                    measure(&sim, server, &secret, load, server_pid).await
                }
                _ => {
                    let mut s = Server::radiusd(
                        radiusd,
                        &sim,
                        &sxs_max_connections,
                        load,
                        &server_args,
                    );
                    let f = measure(&sim, s.addr, SECRET, load, Some(s.child.id())).await;
                    print_log_check(s.stop(), &f);
                    f
                }
            };
            println!(
                "radius: {} in flight, SxS latency {sxs_latency_ms} ms, sxs.max_connections {sxs_max_connections}: {}",
                load.in_flight,
                f.line()
            );
        }),
        Cmd::Peer {
            seconds,
            in_flight_fast,
            in_flight_slow,
            freeradius,
            radiusd,
            server_args,
        } => rt.block_on(peer(
            seconds,
            in_flight_fast,
            in_flight_slow,
            &freeradius,
            radiusd,
            &server_args,
        )),
        Cmd::Compare {
            load,
            server_args,
            baseline,
            radiusd,
            rounds,
            sxs_latency_ms,
        } => rt.block_on(compare(
            load,
            &server_args,
            baseline,
            radiusd,
            rounds,
            sxs_latency_ms,
        )),
        Cmd::Soak {
            seconds,
            in_flight,
            retransmit_pct,
            malformed_pct,
            radiusd,
        } => {
            let ok = rt.block_on(soak::soak(
                seconds,
                in_flight,
                retransmit_pct,
                malformed_pct,
                radiusd,
            ));
            std::process::exit(if ok { 0 } else { 1 });
        }
        Cmd::Sim {
            concurrency,
            seconds,
        } => rt.block_on(sim_bench(concurrency, seconds)),
        Cmd::ClientBuild {
            iterations,
            ca_file,
        } => client_build(iterations, ca_file),
    }
}

fn client_build(iterations: u32, ca_file: Option<PathBuf>) {
    let iterations = iterations.max(1);
    let scratch = Server::scratch("client-build");
    let ca_file = ca_file.unwrap_or_else(|| {
        let bundle = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
        let end = "-----END CERTIFICATE-----";
        let first = &bundle[..bundle.find(end).unwrap() + end.len()];
        let path = scratch.join("one-ca.pem");
        std::fs::write(&path, format!("{first}\n")).unwrap();
        path
    });
    let time = |name: &str, build: &dyn Fn()| {
        build();
        let start = Instant::now();
        for _ in 0..iterations {
            build();
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(iterations);
        println!("client build, {name}: {ms:.3} ms");
    };
    let settings = |server: &str, extra: &str| {
        common::Config::from_toml_str(
            &format!("[sxs]\nservers = [\"{server}\"]\norganization_id = \"1\"\n{extra}"),
            "<bench>",
            common::config::LoadOptions {
                env_overrides: false,
            },
        )
        .unwrap()
        .sxs
    };
    let http = settings("http://127.0.0.1:8442", "");
    let with_ca = settings(
        "https://127.0.0.1:8442",
        &format!("ca_file = {:?}\n", ca_file.display().to_string()),
    );
    let system = settings("https://127.0.0.1:8442", "");
    time("http", &|| drop(common::SxsClient::new(&http).unwrap()));
    time("https + sxs.ca_file", &|| {
        drop(common::SxsClient::new(&with_ca).unwrap())
    });
    time("https, system roots (one bundle file)", &|| {
        drop(common::SxsClient::new(&system).unwrap())
    });
    time("https, reqwest's native-roots loader (before)", &|| {
        drop(
            reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(true)
                .build()
                .unwrap(),
        )
    });

    // What an authentication pays: build the client, connect (TLS handshake, the server's
    // chain verified) and make one call, on a runtime made for it, as the PAM module does.
    // The server: `openssl s_server -WWW` with a certificate of a test CA that is in
    // SSL_CERT_FILE (the machine's bundle plus that CA) and in a `ca_file`.
    let tls = TlsPeer::start(&scratch);
    let url = format!("https://localhost:{}/SxSWS/", tls.port);
    let one_call = |settings: &common::config::SxsSettings| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = common::SxsClient::new(settings).unwrap();
        let reports = rt.block_on(client.health_check());
        assert!(
            reports.iter().all(|r| r.healthy),
            "health check over TLS failed: {reports:?}"
        );
    };
    let with_ca = settings(
        &url,
        &format!("ca_file = {:?}\n", tls.ca.display().to_string()),
    );
    let system = settings(&url, "");
    time("https + sxs.ca_file, build + one call over TLS", &|| {
        one_call(&with_ca)
    });
    time(
        "https, system roots (SSL_CERT_FILE), build + one call over TLS",
        &|| one_call(&system),
    );
    drop(tls);
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `openssl s_server -WWW` on a free loopback port, certificate for `localhost` from a test
/// CA made with `openssl req`; `SSL_CERT_FILE` pointed at the machine's bundle plus that CA.
struct TlsPeer {
    _server: common::sim::tls_health::TlsHealthPeer,
    port: u16,
    ca: PathBuf,
}

impl TlsPeer {
    fn start(dir: &Path) -> TlsPeer {
        let run = |args: &[&str]| {
            let ok = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "openssl {args:?} failed");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=sxs-bench CA",
                "-days",
                "2",
            ],
        ]
        .concat());
        run(&[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        let mut bundle =
            std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        bundle.push_str(&std::fs::read_to_string(dir.join("ca.pem")).unwrap());
        std::fs::write(dir.join("bundle.pem"), bundle).unwrap();
        // Read by the SxS client's system trust store; set before any client is built.
        std::env::set_var("SSL_CERT_FILE", dir.join("bundle.pem"));
        let server = common::sim::tls_health::TlsHealthPeer::start(
            dir,
            &dir.join("server.pem"),
            &dir.join("server.key"),
            None,
            None,
        )
        .unwrap();
        TlsPeer {
            port: server.port,
            _server: server,
            ca: dir.join("ca.pem"),
        }
    }
}

async fn start_sim(listen: SocketAddr, latency_ms: u64) -> SimHandle {
    let l = tokio::net::TcpListener::bind(listen).await.unwrap();
    let sim = sim::start(
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
    .unwrap();
    if latency_ms > 0 {
        sim.set_faults(Faults {
            latency_ms,
            ..Faults::default()
        });
    }
    sim
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn sim_bench(concurrency: usize, seconds: u64) {
    let sim = start_sim("127.0.0.1:0".parse().unwrap(), 0).await;
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

/// CPU time (user + system) a process has used, in milliseconds, from /proc.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the first, utime the
    // 12th, stime the 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(100);
    Some(ticks as f64 * 1000.0 / hz as f64)
}

/// A server under test, run as a child process and killed by its PID.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Server {
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sxs-bench-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `sxs-radiusd` on the simulator: Message-Authenticator required, `reject_delay = 0s`.
    fn radiusd(
        bin: Option<PathBuf>,
        sim: &SimHandle,
        max_connections: &str,
        load: LoadArgs,
        how: &ServerArgs,
    ) -> Self {
        let dir = Self::scratch("radiusd");
        let config = dir.join("sxs.toml");
        let max = (load.in_flight * 2).max(1024);
        let max_connections = match max_connections.parse::<usize>() {
            Ok(n) => n.to_string(),
            Err(_) => format!("{max_connections:?}"),
        };
        let text = format!(
            "[sxs]\nservers = [\"{}\"]\norganization_id = \"1\"\ntimeout = \"10s\"\nmax_connections = {max_connections}\n[radius]\nreject_delay = \"0s\"\nmax_in_flight = {max}\n[[radius.clients]]\nname = \"bench\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nrequire_message_authenticator = true\n",
            sim.url()
        );
        let log = std::fs::File::create(dir.join("radiusd.log")).unwrap();
        let (child, addr) = launch_radiusd(
            bin,
            &config,
            &text,
            |bin| pinned(bin, how.server_cpu),
            &how.server_log,
            log.into(),
        );
        Server { child, addr, dir }
    }

    /// FreeRADIUS + rlm_rest on the simulator; returns once it answers an Access-Request.
    async fn freeradius(bin: &Path, sim: &SimHandle, cpu: Option<usize>) -> Self {
        let dir = Self::scratch("freeradius");
        let cfg = freeradius::configure(&dir.join("raddb"), &sim.url(), SECRET);
        let child = freeradius::spawn(pinned(bin, cpu), &cfg);
        let mut server = Server {
            child,
            addr: cfg.listen,
            dir,
        };
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(server.addr).await.unwrap();
        let mut buf = [0u8; 4096];
        for _ in 0..100 {
            if let Ok(Some(_)) = server.child.try_wait() {
                panic!(
                    "freeradius exited; run `freeradius -X -d {}` to see why",
                    cfg.dir.display()
                );
            }
            let code = sim.current_otp("bench").unwrap();
            let _ = sock.send(&access_request(1, &code, SECRET)).await;
            // Until it listens, the connected socket reports the ICMP refusal at once.
            let answer =
                tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await;
            if let Ok(Ok(n)) = answer {
                assert!(
                    n >= 20 && buf[0] == 2,
                    "freeradius answered the probe with code {}, not Access-Accept",
                    buf[0]
                );
                return server;
            }
            if let Ok(Err(_)) = answer {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        server.stop();
        panic!("freeradius did not answer within 20 s");
    }

    /// Stops the server with SIGTERM (sxs-radiusd answers what is in flight, flushes its log
    /// and exits; killed after 10 s), removes its directory, and gives the number of decision
    /// lines (`radius decision`) sxs-radiusd logged (`None` for another server).
    fn stop(&mut self) -> Option<u64> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let lines = std::fs::read_to_string(self.dir.join("radiusd.log"))
            .ok()
            .map(|log| log.matches("radius decision").count() as u64);
        let _ = std::fs::remove_dir_all(&self.dir);
        lines
    }
}

/// `bin`, run through `taskset -c CPU` when a CPU is given (taskset execs it: the child's
/// PID is the server's).
/// Writes `config_text` to `config` (mode 0600, as sxs-radiusd requires of a file holding
/// secrets), runs `bin` (default: the `sxs-radiusd` next to this binary) through `command`
/// (plain, or pinned with taskset) on a free loopback port at `RUST_LOG=rust_log`, and gives
/// the child and the address it reports listening on.
fn launch_radiusd(
    bin: Option<PathBuf>,
    config: &Path,
    config_text: &str,
    command: impl FnOnce(&Path) -> Command,
    rust_log: &str,
    stderr: Stdio,
) -> (Child, SocketAddr) {
    std::fs::write(config, config_text).unwrap();
    std::fs::set_permissions(config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let bin = bin.unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .with_file_name("sxs-radiusd")
    });
    let mut child = command(&bin)
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("sxs-radiusd listening on ")
        .unwrap_or_else(|| panic!("sxs-radiusd did not start: {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn pinned(bin: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    req_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    accepts: u64,
    others: u64,
    lost: u64,
    /// Every answer received, warm-up and drain included (the decision lines to expect).
    answered_all: u64,
    cpu_ms_per_req: Option<f64>,
    peak_rss_mib: Option<f64>,
}

impl Figures {
    /// The decision log against the answers: one line each, none lost.
    fn log_check(&self, lines: u64) -> String {
        format!(
            "{lines} decision lines for {} answers{}",
            self.answered_all,
            if lines == self.answered_all {
                ""
            } else {
                " (MISMATCH)"
            }
        )
    }

    fn line(&self) -> String {
        format!(
            "{:.0} req/s, p50 {:.1} ms, p99 {:.1} ms; {} accepts, {} other answers, {} lost; server {} CPU-ms/req, peak RSS {} MiB",
            self.req_s,
            self.p50_ms,
            self.p99_ms,
            self.accepts,
            self.others,
            self.lost,
            self.cpu_ms_per_req
                .map_or_else(|| "?".into(), |v| format!("{v:.4}")),
            self.peak_rss_mib
                .map_or_else(|| "?".into(), |v| format!("{v:.1}")),
        )
    }
}

fn access_request(id: u8, otp: &str, secret: &str) -> Vec<u8> {
    let auth: [u8; 16] = rand::random();
    let pw = encode_user_password(otp.as_bytes(), &auth, secret.as_bytes()).unwrap();
    encode_request(
        Code::AccessRequest,
        id,
        &auth,
        &[(attr::USER_NAME, b"bench"), (attr::USER_PASSWORD, &pw)],
        Some(secret.as_bytes()),
    )
    .unwrap()
}

/// Keeps `load.in_flight` Access-Requests for user `bench` in flight at `target` for one
/// second of warm-up and `load.seconds` measured; `pid` (the server) for CPU and RSS.
async fn measure(
    sim: &Arc<SimHandle>,
    target: SocketAddr,
    secret: &str,
    load: LoadArgs,
    pid: Option<u32>,
) -> Figures {
    let secret: Arc<str> = Arc::from(secret);
    let otp = Arc::new(Mutex::new(sim.current_otp("bench").unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    // Up to 250 outstanding identifiers per socket.
    let in_flight = load.in_flight.max(1);
    let per_socket = in_flight.clamp(1, 250);
    let sockets = in_flight.div_ceil(per_socket);
    let mut tasks = Vec::new();
    for s in 0..sockets {
        let window = per_socket.min(in_flight - s * per_socket);
        tasks.push(tokio::spawn(drive(
            target,
            secret.clone(),
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
    let cpu_before = pid.and_then(cpu_ms);
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(load.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = pid.and_then(cpu_ms);
    let rss = pid.and_then(peak_rss_kib);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let (mut accepts, mut others, mut lost, mut answered_all) = (0u64, 0u64, 0u64, 0u64);
    for t in tasks {
        let r = t.await.unwrap();
        latencies.extend(r.latencies_us);
        accepts += r.accepts;
        others += r.others;
        lost += r.lost;
        answered_all += r.answered_all;
    }
    refresher.await.unwrap();
    latencies.sort_unstable();
    let answered = latencies.len() as f64;
    Figures {
        req_s: answered / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        accepts,
        others,
        lost,
        answered_all,
        cpu_ms_per_req: match (cpu_before, cpu_after) {
            (Some(b), Some(a)) if answered > 0.0 => Some((a - b) / answered),
            _ => None,
        },
        peak_rss_mib: rss.map(|k| k as f64 / 1024.0),
    }
}

/// FreeRADIUS + rlm_rest and sxs-radiusd, one after the other, on the same simulator and load.
async fn peer(
    seconds: u64,
    in_flight_fast: usize,
    in_flight_slow: usize,
    freeradius_bin: &Path,
    radiusd_bin: Option<PathBuf>,
    how: &ServerArgs,
) {
    let mut rows = Vec::new();
    for (latency_ms, in_flight) in [(0, in_flight_fast), (100, in_flight_slow)] {
        let load = LoadArgs { in_flight, seconds };
        let sim = Arc::new(start_sim("127.0.0.1:0".parse().unwrap(), latency_ms).await);
        let mut fr = Server::freeradius(freeradius_bin, &sim, how.server_cpu).await;
        let theirs = measure(&sim, fr.addr, SECRET, load, Some(fr.child.id())).await;
        fr.stop();
        println!(
            "freeradius+rlm_rest, {latency_ms} ms SxS, {in_flight} in flight: {}",
            theirs.line()
        );
        let mut ours = Server::radiusd(radiusd_bin.clone(), &sim, "auto", load, how);
        let mine = measure(&sim, ours.addr, SECRET, load, Some(ours.child.id())).await;
        print_log_check(ours.stop(), &mine);
        println!(
            "sxs-radiusd,         {latency_ms} ms SxS, {in_flight} in flight: {}",
            mine.line()
        );
        rows.push((latency_ms, in_flight, theirs, mine));
    }
    println!();
    println!(
        "| SxS latency | in flight | server | req/s | p50 | p99 | lost | CPU-ms/req | peak RSS |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    let opt =
        |v: Option<f64>, digits: usize| v.map_or_else(|| "?".into(), |v| format!("{v:.digits$}"));
    for (latency_ms, in_flight, theirs, mine) in &rows {
        for (name, f) in [("FreeRADIUS 3.2 + rlm_rest", theirs), ("sxs-radiusd", mine)] {
            println!(
                "| {latency_ms} ms | {in_flight} | {name} | {:.0} | {:.1} ms | {:.1} ms | {} | {} | {} MiB |",
                f.req_s, f.p50_ms, f.p99_ms, f.lost, opt(f.cpu_ms_per_req, 4), opt(f.peak_rss_mib, 1)
            );
        }
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "?".into(),
        };
        println!(
            "| {latency_ms} ms | {in_flight} | **ratio sxs-radiusd / FreeRADIUS** | {} | | | | {} | {} |",
            ratio(Some(mine.req_s), Some(theirs.req_s)),
            ratio(mine.cpu_ms_per_req, theirs.cpu_ms_per_req),
            ratio(mine.peak_rss_mib, theirs.peak_rss_mib),
        );
    }
}

fn print_log_check(lines: Option<u64>, f: &Figures) {
    if let Some(lines) = lines {
        println!("log: {}", f.log_check(lines));
    }
}

/// Binary A and binary B alternately under the same load; each run's figures, then the median
/// of B / A for CPU-ms per request, req/s and peak RSS.
async fn compare(
    load: LoadArgs,
    how: &ServerArgs,
    baseline: PathBuf,
    radiusd: Option<PathBuf>,
    rounds: usize,
    latency_ms: u64,
) {
    let b = radiusd.unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .with_file_name("sxs-radiusd")
    });
    let sim = Arc::new(start_sim("127.0.0.1:0".parse().unwrap(), latency_ms).await);
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for round in 1..=rounds.max(1) {
        let mut pair = Vec::new();
        for (name, bin) in [("A", &baseline), ("B", &b)] {
            let mut s = Server::radiusd(Some(bin.clone()), &sim, "auto", load, how);
            let f = measure(&sim, s.addr, SECRET, load, Some(s.child.id())).await;
            let lines = s.stop();
            println!(
                "round {round} {name} ({}): {}; log: {}",
                bin.display(),
                f.line(),
                lines.map_or_else(|| "?".into(), |l| f.log_check(l))
            );
            pair.push(f);
        }
        let (a, b) = (pair[0], pair[1]);
        if let (Some(x), Some(y)) = (a.cpu_ms_per_req, b.cpu_ms_per_req) {
            ratios[0].push(y / x);
        }
        ratios[1].push(b.req_s / a.req_s);
        if let (Some(x), Some(y)) = (a.peak_rss_mib, b.peak_rss_mib) {
            ratios[2].push(y / x);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2)
            .map_or_else(|| "?".into(), |m| format!("{m:.2}"))
    };
    let [cpu, rate, rss] = &mut ratios;
    println!(
        "B / A, median of {rounds} rounds ({} in flight, {latency_ms} ms SxS): CPU-ms/req {}, req/s {}, peak RSS {}",
        load.in_flight,
        median(cpu),
        median(rate),
        median(rss)
    );
}

#[derive(Default)]
struct DriveResult {
    latencies_us: Vec<u32>,
    accepts: u64,
    others: u64,
    lost: u64,
    answered_all: u64,
}

/// One UDP socket with up to `window` requests outstanding, each identifier reused only
/// after its answer (or after 5 s, counted lost).
async fn drive(
    target: SocketAddr,
    secret: Arc<str>,
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
            let code = otp.lock().unwrap().clone();
            let pkt = access_request(id, &code, &secret);
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
                    result.answered_all += 1;
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
