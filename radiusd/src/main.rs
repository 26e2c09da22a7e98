//! `sxs-radiusd`: command line, configuration, signals, systemd readiness, and the demo.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use common::config::{Config, LoadOptions};
use common::sim::{self, SeedUser, SimOptions};
use common::sms::MemoryLimiter;
use common::{IdentityMapper, SxsClient};
use radiusd::approval::{ApprovalStore, CallbackSigner, MemoryStore, RedisStore};
use radiusd::clients::ClientTable;
use radiusd::first_factor::PassedStore;
use radiusd::handler::{PushSetup, SxsHandler, SystemUnixClock};
use radiusd::http::Door;
use radiusd::metrics::{self, Metrics};
use radiusd::pamsock::PamDoor;
use radiusd::redeem::Redemptions;
use radiusd::server::{self, Runtime, Server};
use radiusd::state::{StateSigner, UsedStates};
use radiusd::tls::{self, TlsRuntime};

// The packages are built with `--features jemalloc` (packaging/build): measured against
// glibc's allocator it costs less CPU per request and less memory with thousands of requests
// in flight (docs/benchmarks.md, "Allocator"). `mimalloc` only for measuring.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// RADIUS server that validates one-time passwords with ASEE SxS.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Configuration keys: examples/sxs.toml and sxs.toml(5).\n\
Signals: SIGHUP reloads the configuration and clients; SIGTERM/SIGINT stop after answering the requests in flight."
)]
struct Args {
    /// Configuration file.
    #[arg(long, default_value = common::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Validate the configuration, reach every SxS server's health check, print a report, and
    /// exit 0 (all good) or 1.
    #[arg(long)]
    check_config: bool,
    /// Run a self-contained demo: the SxS simulator in-process with user `demo`, RADIUS on
    /// 127.0.0.1:1812 with client secret `testing123`. Prints what to type to try it.
    #[arg(long, conflicts_with = "check_config")]
    demo: bool,
    /// Listen on these addresses instead of `radius.listen` (repeatable; port 0 picks one).
    #[arg(long)]
    listen: Vec<SocketAddr>,
}

/// Threads for blocking calls (name resolution, NSS lookups); more wait for a free one.
const BLOCKING_THREADS: usize = 32;

fn main() -> ExitCode {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Log lines are written off the request path, none lost (radiusd::log_writer).
    let (writer, log_guard) = radiusd::log_writer::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(ansi)
        // The default formatter's text, written with less work (radiusd::log_format).
        .event_format(radiusd::log_format::FastFormat::new(
            radiusd::log_format::FastTime,
        ))
        .fmt_fields(radiusd::log_format::FastFields)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // The blocking pool runs getaddrinfo for every new SxS connection to a host name (and
        // the NSS group lookups): tokio's default of 512 threads let a burst of 1 024 new
        // connections start 319 threads, +15 MiB (docs/benchmarks.md). Lookups queue instead.
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if args.check_config {
            return check_config(&args.config).await;
        }
        if args.demo {
            return demo(&args.listen).await;
        }
        serve(ConfigSource::File(args.config.clone()), &args.listen).await
    });
    // Tasks still running may log while they stop; then every queued line is written before
    // the error below or the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(log_guard);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Many requests in flight mean many sockets towards SxS: use the hard file limit.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-files limit");
            }
        }
    }
}

/// Where the configuration comes from; SIGHUP reads it again.
#[derive(Debug, Clone)]
enum ConfigSource {
    File(PathBuf),
    Embedded(String),
}

impl ConfigSource {
    fn load(&self) -> Result<Config, String> {
        match self {
            ConfigSource::File(path) => {
                Config::load(path, LoadOptions::default()).map_err(|e| e.to_string())
            }
            ConfigSource::Embedded(text) => Config::from_toml_str(
                text,
                "<demo>",
                LoadOptions {
                    env_overrides: false,
                },
            )
            .map_err(|e| e.to_string()),
        }
    }
}

type SxsRuntime = Runtime<SxsHandler<SxsClient>>;

/// What outlives a configuration reload: redeemed States, SMS send counts, waiting pushes
/// (in process, or in the shared store, whose `[shared] redis_url` is read at start only).
#[derive(Debug)]
struct Kept {
    used: Redemptions,
    passed: PassedStore,
    sms: Arc<MemoryLimiter>,
    approvals: ApprovalStore,
    /// Counters keep counting across reloads.
    metrics: Arc<Metrics>,
    redis_url: Option<common::Secret>,
}

impl Kept {
    /// In process, or — with `[shared] redis_url` — in Redis, which must answer now.
    async fn new(cfg: &Config, metrics: Arc<Metrics>) -> Result<Kept, String> {
        let sms = Arc::new(MemoryLimiter::new(cfg.sms.max_per_user, cfg.sms.window));
        let redis_url = cfg.shared.redis_url.clone();
        let Some(url) = &redis_url else {
            return Ok(Kept {
                used: Redemptions::Local(Arc::new(Mutex::new(UsedStates::new(1_000_000)))),
                passed: PassedStore::default(),
                sms,
                approvals: ApprovalStore::Memory(MemoryStore::new(
                    cfg.push.max_pending_per_user,
                    cfg.push.max_pending,
                )),
                redis_url,
                metrics,
            });
        };
        let store = RedisStore::connect(url, cfg.push.max_pending_per_user, cfg.push.max_pending)
            .await
            .map_err(|e| {
                format!(
                    "{}: key `shared.redis_url`: {e} (sxs-radiusd does not start without the store it shares with the other instances)",
                    cfg.source
                )
            })?;
        tracing::info!(
            url = store.url(),
            "pending approvals, challenge State single use and password-then-OTP first rounds are shared through Redis"
        );
        Ok(Kept {
            used: Redemptions::Shared(store.clone()),
            passed: PassedStore::Shared(store.clone()),
            sms,
            approvals: ApprovalStore::Redis(store),
            redis_url,
            metrics,
        })
    }

    /// Says so when a reload asks for another shared store: that takes a restart.
    fn warn_if_store_changed(&self, cfg: &Config) {
        let new = cfg.shared.redis_url.as_ref().map(common::Secret::expose);
        if new != self.redis_url.as_ref().map(common::Secret::expose) {
            tracing::warn!(
                "shared.redis_url changed: it takes effect at the next restart; the running store is kept"
            );
        }
    }
}

fn build_runtime(cfg: Config, kept: &Kept) -> Result<SxsRuntime, String> {
    let factors = radiusd::first_factor::Factors::build(&cfg)?;
    let settings = cfg.radius.ok_or_else(|| {
        format!(
            "{}: no [radius] section; sxs-radiusd needs one (see examples/sxs.toml)",
            cfg.source
        )
    })?;
    if settings.clients.is_empty() {
        tracing::warn!("no [[radius.clients]] configured: every packet will be dropped");
    }
    let client = SxsClient::new(&cfg.sxs)
        .map_err(|e| e.to_string())?
        .with_observer(kept.metrics.clone());
    tracing::info!(
        sxs_max_connections = client.max_connections(),
        configured = ?cfg.sxs.max_connections,
        "SxS calls in flight at most"
    );
    let tls = settings.tls.as_ref().map(TlsRuntime::new).transpose()?;
    let mapper = IdentityMapper::new(&cfg.identity).map_err(|e| e.to_string())?;
    let signer = settings
        .state_key
        .as_ref()
        .map(|k| StateSigner::new(k.expose()))
        .transpose()
        .map_err(|e| format!("{}: key `radius.state_key`: {e}", cfg.source))?;
    let handler = SxsHandler {
        verifier: Arc::new(client),
        mapper,
        policy: cfg.policy,
        mode: settings.mode,
        challenge_prompt: settings.challenge_prompt.clone(),
        signer,
        used_states: kept.used.clone(),
        state_ttl: settings.state_ttl,
        clock: Arc::new(SystemUnixClock),
        sms_limiter: kept.sms.clone(),
        sms_trigger: settings.sms_trigger.clone(),
        mac_trigger: settings.mac_trigger.clone(),
        push_trigger: settings.push_trigger.clone(),
        push: cfg.http.as_ref().map(|h| PushSetup {
            store: kept.approvals.clone(),
            signer: CallbackSigner::new(h.callback_key.expose()),
            public_url: h.public_url.clone(),
            timeout: cfg.push.timeout,
        }),
        factors: Arc::new(factors),
        passed: kept.passed.clone(),
    };
    Ok(Runtime {
        clients: ClientTable::new(&settings.clients),
        settings,
        handler: Arc::new(handler),
        tls,
    })
}

async fn serve(source: ConfigSource, listen_override: &[SocketAddr]) -> Result<ExitCode, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let cfg = source.load()?;
    let metrics_listen = cfg.metrics.as_ref().map(|m| m.listen);
    let metrics = Arc::new(Metrics::new());
    let kept = Kept::new(&cfg, metrics.clone()).await?;
    let http = cfg.http.clone();
    let push_socket = cfg.push.socket.clone();
    let rt = build_runtime(cfg, &kept)?;
    if rt.settings.state_key.is_none() {
        tracing::info!("no radius.state_key: challenge mode is off");
    }
    let addrs = if listen_override.is_empty() {
        rt.settings.listen.clone()
    } else {
        listen_override.to_vec()
    };
    let drain = rt.settings.reject_delay + Duration::from_secs(10);
    let sockets = server::bind(&addrs).map_err(|e| e.to_string())?;
    let tls_addrs = rt
        .settings
        .tls
        .as_ref()
        .map(|t| t.listen.clone())
        .unwrap_or_default();
    let tls_listeners = tls::bind(&tls_addrs).map_err(|e| e.to_string())?;
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(metrics::bind(addr).await.map_err(|e| e.to_string())?),
        None => None,
    };
    let server =
        Server::new(rt, sockets, tls_listeners, metrics.clone()).map_err(|e| e.to_string())?;
    // Machine-read by tests: keep the shapes.
    for addr in server.local_addrs() {
        println!("sxs-radiusd listening on {addr}");
    }
    for addr in server.tls_addrs() {
        println!("sxs-radiusd tls listening on {addr}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut pam_serving = None;
    if let Some(h) = http {
        let tls = match &h.tls {
            Some((cert, key)) => Some(radiusd::http::tls_config(cert, key)?),
            None => None,
        };
        let listeners = radiusd::http::bind(&h).await?;
        let current = server.clone();
        let door = Arc::new(Door {
            verifier: Box::new(move || current.current().handler.verifier.clone()),
            store: kept.approvals.clone(),
            signer: CallbackSigner::new(h.callback_key.expose()),
            clock: Arc::new(SystemUnixClock),
            settings: h.clone(),
        });
        for l in listeners {
            let scheme = if tls.is_some() { "https" } else { "http" };
            if let Ok(a) = l.local_addr() {
                println!("sxs-radiusd http listening on {scheme}://{a}");
            }
            tokio::spawn(door.clone().serve(l, tls.clone(), stop_rx.clone()));
        }
        // Push needs the callback, so the PAM socket is served with [http] only.
        let listener = radiusd::pamsock::bind(&push_socket)?;
        println!("sxs-radiusd pam socket on {}", push_socket.display());
        let current = server.clone();
        let pam_door = Arc::new(PamDoor {
            handler: Box::new(move || current.current().handler.clone()),
            path: push_socket.clone(),
        });
        pam_serving = Some(tokio::spawn(pam_door.serve(listener, stop_rx.clone())));
    }
    if let Some(listener) = metrics_listener {
        if let Ok(addr) = listener.local_addr() {
            println!("sxs-radiusd metrics on http://{addr}/metrics");
        }
        let refresh = {
            let server = server.clone();
            Arc::new(move || server.refresh_metrics())
        };
        tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            refresh,
            stop_rx.clone(),
        ));
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let serving = tokio::spawn(server.clone().run(stop_rx, drain));
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut health = tokio::time::interval(Duration::from_secs(10));
    let mut purge = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                match source.load().and_then(|cfg| {
                    kept.sms.set_limits(cfg.sms.max_per_user, cfg.sms.window);
                    kept.warn_if_store_changed(&cfg);
                    build_runtime(cfg, &kept)
                }) {
                    Ok(new) => {
                        let clients = new.clients.len();
                        server.reload(new);
                        tracing::info!(clients, "configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed; keeping the running configuration"),
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = health.tick() => {
                // Keeps the view of which SxS servers are up fresh for Status-Server.
                let verifier = server.current().handler.verifier.clone();
                tokio::spawn(async move {
                    for r in verifier.health_check().await.iter().filter(|r| !r.healthy && r.root == "auth") {
                        tracing::warn!(url = r.url, cause = r.detail, "SxS health check failed");
                    }
                });
            }
            _ = purge.tick() => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if let Redemptions::Local(used) = &kept.used {
                    if let Ok(mut u) = used.lock() {
                        u.purge(now);
                    }
                }
                if let PassedStore::Local(passed) = &kept.passed {
                    passed.purge(now);
                }
            }
        }
    }
    tracing::info!("stopping: answering the requests in flight");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let _ = serving.await;
    if let Some(p) = pam_serving {
        // Removes the socket file.
        let _ = p.await;
    }
    let s = server.stats();
    tracing::info!(
        received = s.received,
        accepts = s.accepts,
        rejects = s.rejects,
        challenges = s.challenges,
        dropped_unknown_client = s.unknown_client,
        dropped_malformed = s.malformed,
        dropped_bad_authenticator = s.bad_authenticator,
        dropped_overload = s.overload_dropped,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}

async fn check_config(path: &Path) -> Result<ExitCode, String> {
    let cfg = Config::load(path, LoadOptions::default()).map_err(|e| e.to_string())?;
    let mut ok = true;
    println!("configuration: {} is valid", path.display());
    match &cfg.radius {
        Some(r) => {
            println!(
                "radius: mode {:?}, listen {}, {} client(s)",
                r.mode,
                r.listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                r.clients.len()
            );
            for c in &r.clients {
                println!(
                    "  client {}: {} (Message-Authenticator {}), first factor {}{}",
                    c.name,
                    c.network,
                    if c.require_message_authenticator {
                        "required"
                    } else {
                        "NOT required"
                    },
                    c.first_factor.as_str(),
                    match (c.first_factor, &c.password_otp) {
                        (common::config::FirstFactorKind::None, _) => String::new(),
                        (_, p) => format!(", password + OTP by {p:?}").to_lowercase(),
                    }
                );
            }
            if let Some(t) = &r.tls {
                // Reads the certificate, key and CA as a start or SIGHUP would.
                match TlsRuntime::new(t) {
                    Ok(_) => println!(
                        "radius.tls: listen {}, certificate {}, client certificates {}, {} client(s)",
                        t.listen
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        t.cert_file.display(),
                        if t.require_client_cert {
                            "required"
                        } else {
                            "NOT required"
                        },
                        t.clients.len()
                    ),
                    Err(e) => {
                        println!("radius.tls: {e}");
                        ok = false;
                    }
                }
                for c in &t.clients {
                    println!(
                        "  tls client {}: {} certificate {}",
                        c.client.name,
                        c.client.network,
                        c.certificate.as_deref().unwrap_or("(any or none)")
                    );
                }
            }
            if r.clients.iter().any(|c| c.require_message_authenticator) {
                println!(
                    "  note: requests without a Message-Authenticator are dropped for clients that require it. \
                     pam_radius_auth 2.0 (Debian 12), radsecproxy and openvpn-auth-radius send none: \
                     set require_message_authenticator = false for such a client only, and keep it on a \
                     trusted network (docs/radiusd.md, \"What real peers taught us\"). \
                     Test with: echo 'Message-Authenticator = 0x00' | radclient SERVER:1812 status SECRET"
                );
            }
            match radiusd::first_factor::Factors::build(&cfg) {
                Ok(f) => {
                    if let Some(l) = &cfg.first_factor.ldap {
                        println!(
                            "first factor ldap: {} (groups: {:?}; up to {} idle connection(s) kept {:?})",
                            l.urls.join(", "),
                            l.groups,
                            l.pool_size,
                            l.pool_idle_timeout
                        );
                    }
                    if let Some(u) = &cfg.first_factor.radius {
                        println!("first factor radius: {}", u.servers.join(", "));
                    }
                    if !cfg.policy.required_groups.is_empty() {
                        println!(
                            "policy: only members of {:?} may authenticate (checked before exemptions)",
                            cfg.policy.required_groups
                        );
                    }
                    if !f.reply.is_empty() {
                        println!(
                            "reply attributes: {} group rule(s), resolved with {}",
                            r.reply.len(),
                            r.dictionary.display()
                        );
                    }
                }
                Err(e) => {
                    println!("error: {e}");
                    ok = false;
                }
            }
        }
        None => {
            println!("radius: no [radius] section (sxs-radiusd cannot run with this file)");
            ok = false;
        }
    }
    if let Some(m) = &cfg.metrics {
        println!("metrics: http://{}/metrics", m.listen);
    }
    if let Some(url) = &cfg.shared.redis_url {
        match RedisStore::connect(url, cfg.push.max_pending_per_user, cfg.push.max_pending).await {
            Ok(store) => println!("shared ok   Redis {} (PING, subscription)", store.url()),
            Err(e) => {
                println!("shared DOWN key `shared.redis_url`: {e}");
                ok = false;
            }
        }
    }
    let client = SxsClient::new(&cfg.sxs).map_err(|e| e.to_string())?;
    for r in client.health_check().await {
        let mark = if r.healthy { "ok  " } else { "DOWN" };
        println!(
            "sxs {mark} {} root {} ({} ms): {}",
            r.root,
            r.url,
            r.latency.as_millis(),
            r.detail
        );
        ok &= r.healthy;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The README's first command.
fn random_hex() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn demo(listen_override: &[SocketAddr]) -> Result<ExitCode, String> {
    // The push callback listener, on a free loopback port (its URL is in the config).
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port for the demo's HTTP listener: {e}"))?;
    let secret_bytes: [u8; 20] = rand::random();
    let secret = common::totp::encode_base32(&secret_bytes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the SxS simulator: {e}"))?;
    let sim = sim::start(
        listener,
        SimOptions {
            seed: vec![SeedUser {
                id: "demo".into(),
                token_sn: Some("2000000001".into()),
                secret: Some(secret.clone()),
                mobile: Some("+385991234567".into()),
                sms: Some(true),
                ..SeedUser::default()
            }],
            ..SimOptions::default()
        },
    )?;
    let listen = if listen_override.is_empty() {
        vec!["127.0.0.1:1812".parse().map_err(|_| "bad address")?]
    } else {
        listen_override.to_vec()
    };
    let port = listen.first().map(SocketAddr::port).unwrap_or(1812);
    let text = format!(
        r#"[sxs]
servers = ["{url}"]
admin_url = "{url}/SxSAdminWS"
organization_id = "1"
timeout = "3s"
[radius]
listen = [{listen}]
state_key = "{state_key}"
methods = ["otp", "sms", "mac", "push"]
[[radius.clients]]
name = "demo-nas"
address = "127.0.0.0/8"
secret = "testing123"
[[radius.clients]]
name = "demo-nas-v6"
address = "::1"
secret = "testing123"
[http]
listen = ["127.0.0.1:{http_port}"]
allow_plain_loopback = true
public_url = "http://127.0.0.1:{http_port}"
callback_key = "{callback_key}"
[push]
timeout = "60s"
socket = "{socket}"
"#,
        // Not /run/sxs: the demo runs as any user, and beside an installed daemon.
        socket = std::env::temp_dir()
            .join(format!("sxs-demo-{}", std::process::id()))
            .join("push.sock")
            .display(),
        state_key = random_hex(),
        callback_key = random_hex(),
        url = sim.url(),
        listen = listen
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "sxs-radiusd demo\n\
         \x20 SxS simulator:  {url} (Organization ID 1)\n\
         \x20 RADIUS:         {listen} (client secret testing123)\n\
         \x20 demo user:      demo, TOTP secret {secret} (add it to any authenticator app)\n\n\
         Try it from another terminal:\n\
         \x20 OTP=$(curl -s {url}/sim/otp/demo)\n\
         \x20 radtest demo \"$OTP\" 127.0.0.1:{port} 0 testing123     # Access-Accept\n\
         \x20 radtest demo \"$OTP\" 127.0.0.1:{port} 0 testing123     # same OTP again: Access-Reject (single use)\n\
         \x20 radtest demo 000000 127.0.0.1:{port} 0 testing123       # Access-Reject\n\n\
         SMS: the password \"sms\" asks SxS to text a code to the demo user's phone, which is the\n\
         simulator's outbox ({url}/sim/sms/demo); the answer is an Access-Challenge with a State:\n\
         \x20 STATE=$(radtest demo sms 127.0.0.1:{port} 0 testing123 | sed -n 's/.*State = //p')\n\
         \x20 CODE=$(curl -s {url}/sim/sms/demo/code)\n\
         \x20 echo \"User-Name=demo,User-Password=$CODE,State=$STATE,Message-Authenticator=0x00\" | radclient -x 127.0.0.1:{port} auth testing123   # Access-Accept\n\n\
         MAC (dynamic linking): the password \"mac\" gets a sign-in code to type into the app, which\n\
         answers with a MAC over it (the simulator computes it at {url}/sim/mac/demo?input=CODE):\n\
         \x20 OUT=$(radtest demo mac 127.0.0.1:{port} 0 testing123); echo \"$OUT\" | grep Reply-Message\n\
         \x20 STATE=$(echo \"$OUT\" | sed -n 's/.*State = //p'); INPUT=$(echo \"$OUT\" | sed -n 's/.*Sign-in code \\([0-9]*\\) \\([0-9]*\\).*/\\1\\2/p')\n\
         \x20 MAC=$(curl -s \"{url}/sim/mac/demo?input=$INPUT\")\n\
         \x20 echo \"User-Name=demo,User-Password=$MAC,State=$STATE,Message-Authenticator=0x00\" | radclient -x 127.0.0.1:{port} auth testing123   # Access-Accept\n\n\
         PUSH: the password \"push\" holds the request until the demo user approves on the phone,\n\
         which is the simulator ({url}/sim/push/demo lists what waits); SxS then calls this server\n\
         back at http://127.0.0.1:{http_port}/push/callback/… (GET http://127.0.0.1:{http_port}/healthz):\n\
         \x20 echo \"User-Name=demo,User-Password=push,Message-Authenticator=0x00\" | radclient -x -t 60 127.0.0.1:{port} auth testing123 &\n\
         \x20 sleep 1; ID=$(curl -s {url}/sim/push/demo | sed -n 's/.*\"id\":\"\\([0-9]*\\)\".*/\\1/p')\n\
         \x20 curl -s -X POST {url}/sim/push/$ID/approve; wait     # radclient: Access-Accept (deny: Access-Reject)\n\n\
         (radtest and radclient are in the freeradius-utils package.) Stop with Ctrl-C.\n",
        url = sim.url(),
        listen = listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );
    let code = serve(ConfigSource::Embedded(text), &listen).await;
    sim.stop();
    code
}
