//! The SxS simulator: a real HTTP server on loopback that speaks the SOAP and JSON of
//! PROTOCOL.md §1, with RFC 6238 tokens, single-use OTPs, lockout, the Organization ID check,
//! the admin calls, and test hooks under `/sim/` (current OTP, counters, injected faults, a
//! movable clock, phone activation). Used by tests, benchmarks and the demo; documented in
//! `docs/simulator.md`.

pub mod tls_health;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::codes;
use crate::soap::{self, Element};
use crate::totp;

/// Default Organization ID the simulator expects.
pub const DEFAULT_ORGANIZATION_ID: &str = "1";
/// Default header carrying it.
pub const DEFAULT_ORGANIZATION_HEADER: &str = "OrganizationId";
/// Consecutive failures that lock a token, by default.
pub const DEFAULT_LOCKOUT: u32 = 5;
/// Wrong activation attempts that kill an activation code (SxS's default).
pub const ACTIVATION_TRIES: u32 = 3;

/// One user of the seed file (`[[user]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    pub id: String,
    /// The user's token; a user without one exists but cannot log in.
    pub token_sn: Option<String>,
    /// Base32 TOTP secret; generated when absent.
    pub secret: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub address: Option<String>,
    /// Whether the token is already activated (default true for seeded tokens).
    pub active: Option<bool>,
    /// The user also holds an SMS token (needs `mobile`).
    pub sms: Option<bool>,
    /// The SMS token's serial; assigned when absent.
    pub sms_token_sn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    user: Vec<SeedUser>,
}

/// Reads a seed file.
pub fn load_seed(path: &Path) -> Result<Vec<SeedUser>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_seed(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses seed TOML text.
pub fn parse_seed(text: &str) -> Result<Vec<SeedUser>, String> {
    let seed: SeedFile = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(seed.user)
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub organization_id: String,
    pub organization_header: String,
    /// Consecutive wrong OTPs before a token locks.
    pub lockout: u32,
    /// Accept an OTP more than once (benchmarks only: a real SxS never does).
    pub allow_replay: bool,
    pub seed: Vec<SeedUser>,
    /// How long an SMS code stays valid.
    pub sms_ttl: Duration,
    /// The SOAP names of sendSms and validateMac, as the client is configured
    /// (`[sxs.methods]`); the defaults match the client's.
    pub methods: crate::config::SxsMethods,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            organization_id: DEFAULT_ORGANIZATION_ID.into(),
            organization_header: DEFAULT_ORGANIZATION_HEADER.into(),
            lockout: DEFAULT_LOCKOUT,
            allow_replay: false,
            seed: Vec::new(),
            sms_ttl: Duration::from_secs(300),
            methods: crate::config::SxsMethods::defaults(AUTH_PATH, "OTP_APP"),
        }
    }
}

/// Where validateOtp is served (and, by default, sendSms and validateMac).
pub const AUTH_PATH: &str = "/SxSWS/SxS5Authentication";

/// A user's SMS token.
#[derive(Debug, Clone, Default)]
struct SmsToken {
    sn: String,
    /// The pending code and when it expires (unix seconds).
    code: Option<(String, u64)>,
    failures: u32,
    locked: bool,
}

/// One SMS as the phone received it (`GET /sim/sms/USER`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SmsMessage {
    pub user_id: String,
    pub mobile: String,
    pub code: String,
    /// Unix seconds (simulator clock).
    pub sent_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, Default)]
struct User {
    first_name: String,
    last_name: String,
    email: String,
    mobile: String,
    address: String,
    token_sn: Option<String>,
    sms: Option<SmsToken>,
}

#[derive(Debug, Clone)]
struct Token {
    user_id: String,
    secret: Vec<u8>,
    active: bool,
    failures: u32,
    locked: bool,
    last_step: Option<u64>,
    activation: Option<Activation>,
    /// MAC inputs already answered (a MAC, like an OTP, is single use).
    used_mac_inputs: std::collections::HashSet<String>,
}

#[derive(Debug, Clone)]
struct Activation {
    digits: String,
    wrong: u32,
}

#[derive(Debug, Default)]
struct Store {
    users: HashMap<String, User>,
    tokens: HashMap<String, Token>,
    next_sn: u64,
    /// Every SMS sent, oldest first (bounded).
    outbox: Vec<SmsMessage>,
}

/// Counters served at `GET /sim/stats`.
#[derive(Debug, Default)]
struct Stats {
    validate_otp: AtomicU64,
    accepts: AtomicU64,
    rejects: AtomicU64,
    faults: AtomicU64,
    admin: AtomicU64,
    health: AtomicU64,
    send_sms: AtomicU64,
    validate_mac: AtomicU64,
    start_push: AtomicU64,
}

/// A snapshot of the counters. `accepts`/`rejects` count validateOtp, sendSms and
/// validateMac answers alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub validate_otp: u64,
    pub accepts: u64,
    pub rejects: u64,
    pub faults: u64,
    pub admin: u64,
    pub health: u64,
    #[serde(default)]
    pub send_sms: u64,
    #[serde(default)]
    pub validate_mac: u64,
    #[serde(default)]
    pub start_push: u64,
}

/// An injected error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// HTTP 500 with a plain-text body (no SOAP).
    Http500,
    /// HTTP 200 with a truncated, not well-formed body.
    Malformed,
    /// The connection is closed with a TCP reset after the request was read.
    Reset,
    /// A validateOtp exception (wrong OTP) whose message quotes the OTP received, as an SxS
    /// version or a proxy that echoes its input might: the logs must not repeat it.
    EchoOtp,
}

/// Faults applied to SxS calls (not to `/sim/`), set with `POST /sim/faults`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added before answering.
    #[serde(default)]
    pub latency_ms: u64,
    pub error: Option<FaultKind>,
    /// Apply to this many calls, then clear; absent: until cleared (`DELETE /sim/faults`).
    pub calls: Option<u64>,
}

#[derive(Debug)]
struct SimState {
    opts: SimOptions,
    store: Mutex<Store>,
    stats: Stats,
    faults: Mutex<Faults>,
    time_offset: AtomicI64,
    pushes: Mutex<Vec<PushRecord>>,
    /// Calls push callbacks (accepts any certificate: a test's self-signed one).
    callback_client: reqwest::Client,
}

/// A push SxS was asked to deliver, as the phone sees it (`GET /sim/push/USER`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushRecord {
    pub id: String,
    pub user_id: String,
    /// The data shown on the phone (and signed by the token).
    pub input: String,
    pub callback: String,
    /// `pending`, `approved` or `denied`.
    pub status: String,
    pub created_at: u64,
}

/// How `POST /sim/push/ID/approve|deny` calls the callback (query parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackOptions {
    /// Call it this many times (a replay test).
    #[serde(default)]
    times: Option<u32>,
    /// Wait this long first (a late-callback test).
    #[serde(default)]
    delay_ms: Option<u64>,
    /// Alter the signature in the callback location (a forgery test).
    #[serde(default)]
    bad_signature: Option<bool>,
    /// Send the callback of another push id (a cross-request test) — the id in the path.
    /// (Ids are digits: the query parser reads them as numbers.)
    #[serde(default)]
    other_id: Option<serde_json::Value>,
}

/// A running simulator; dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    state: Arc<SimState>,
}

impl SimHandle {
    /// `http://ADDR`, the value for `sxs.servers`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The current OTP of `user_id`'s token, as the phone would show it.
    pub fn current_otp(&self, user_id: &str) -> Option<String> {
        self.state.current_otp(user_id)
    }

    /// The SMS codes sent to `user_id`, oldest first.
    pub fn sms_outbox(&self, user_id: &str) -> Vec<SmsMessage> {
        lock(&self.state.store)
            .outbox
            .iter()
            .filter(|m| m.user_id == user_id)
            .cloned()
            .collect()
    }

    /// The pushes waiting on `user_id`'s phone.
    pub fn pending_pushes(&self, user_id: &str) -> Vec<PushRecord> {
        lock(&self.state.pushes)
            .iter()
            .filter(|p| p.user_id == user_id && p.status == "pending")
            .cloned()
            .collect()
    }

    /// The MAC `user_id`'s mToken app shows for `input`.
    pub fn mac(&self, user_id: &str, input: &str) -> Option<String> {
        self.state.mac(user_id, input)
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats_snapshot()
    }

    /// Sets injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Moves the simulator's clock forward (so a test needs no sleep for a fresh OTP).
    pub fn advance_time(&self, secs: i64) {
        self.state.time_offset.fetch_add(secs, Ordering::SeqCst);
    }

    /// Stops the server: the listener and every open connection are closed.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the simulator on `listener`; it runs on the current tokio runtime.
pub fn start(listener: TcpListener, opts: SimOptions) -> Result<SimHandle, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = Arc::new(SimState::new(opts)?);
    let (shutdown, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(accept_loop(listener, state.clone(), watch));
    Ok(SimHandle {
        addr,
        shutdown,
        state,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

type Shutdown = tokio::sync::watch::Receiver<bool>;

async fn accept_loop(listener: TcpListener, state: Arc<SimState>, mut shutdown: Shutdown) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "sxs-sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, state.clone(), shutdown.clone()));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    state: Arc<SimState>,
    mut shutdown: Shutdown,
) {
    // Keep a second handle on the socket so a `reset` fault can turn the close into a RST.
    let (stream, dup) = match stream.into_std().and_then(|s| {
        let dup = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, dup))
    }) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "sxs-sim: cannot set up connection");
            return;
        }
    };
    let abort = Arc::new(Notify::new());
    let svc_abort = abort.clone();
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let abort = svc_abort.clone();
        async move { Ok::<_, Infallible>(handle(state, abort, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = shutdown.changed() => {}
        _ = abort.notified() => {
            let _ = socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO));
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json(status: StatusCode, value: &impl Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond(status, "application/json", body)
}

fn soap_ok(wrapper: &str, ns: &str, inner: &str) -> Resp {
    let body = format!(
        "<soap:Envelope xmlns:soap=\"{}\"><soap:Body><ns2:{wrapper} xmlns:ns2=\"{ns}\">{inner}</ns2:{wrapper}></soap:Body></soap:Envelope>",
        soap::NS_SOAP
    );
    respond(StatusCode::OK, "text/xml; charset=utf-8", body)
}

fn soap_exception(wrapper: &str, ns: &str, code: &str, message: &str) -> Resp {
    soap_ok(
        wrapper,
        ns,
        &format!(
            "<exception><exceptionCode>{}</exceptionCode><exceptionMessage>{}</exceptionMessage></exception>",
            soap::escape(code),
            soap::escape(message)
        ),
    )
}

fn soap_fault(code: &str, message: &str) -> Resp {
    let body = format!(
        "<soap:Envelope xmlns:soap=\"{}\"><soap:Body><soap:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring></soap:Fault></soap:Body></soap:Envelope>",
        soap::NS_SOAP,
        soap::escape(code),
        soap::escape(message)
    );
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/xml; charset=utf-8",
        body,
    )
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), soap::MAX_BODY)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(soap_fault(
            "soap:Client",
            "request body unreadable or too large",
        )),
    }
}

async fn handle(state: Arc<SimState>, abort: Arc<Notify>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if let Some(rest) = path.strip_prefix("/sim/") {
        return handle_sim(&state, &method, rest, req).await;
    }
    // An authentication call is read first (bounded) so it can be counted by operation on
    // arrival (a slow answer is still a call); then injected faults apply.
    let mut auth_body = None;
    let mut req = Some(req);
    if let Some(r) = req.take_if(|r| r.method() == Method::POST && state.is_auth_path(&path)) {
        let org_ok = state.org_ok(&r);
        let body = match read_body(r).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let op = state.classify(&body);
        let counter = match op {
            AuthOp::SendSms => &state.stats.send_sms,
            AuthOp::ValidateMac => &state.stats.validate_mac,
            AuthOp::StartPush => &state.stats.start_push,
            AuthOp::ValidateOtp | AuthOp::Unknown => &state.stats.validate_otp,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        auth_body = Some((org_ok, op, body));
    }
    let faults = state.take_fault();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    match faults.error {
        Some(FaultKind::Http500) => {
            state.stats.faults.fetch_add(1, Ordering::Relaxed);
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "Internal Server Error",
            );
        }
        Some(FaultKind::Malformed) => {
            state.stats.faults.fetch_add(1, Ordering::Relaxed);
            return respond(
                StatusCode::OK,
                "text/xml",
                "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><ns2:validateOtpResponse><tokenSN>20000",
            );
        }
        Some(FaultKind::Reset) => {
            state.stats.faults.fetch_add(1, Ordering::Relaxed);
            // Drain the request so the close is a reset, not a half-read.
            if let Some(r) = req {
                let _ = read_body(r).await;
            }
            abort.notify_one();
            return std::future::pending().await;
        }
        Some(FaultKind::EchoOtp) => {
            state.stats.faults.fetch_add(1, Ordering::Relaxed);
            let body = auth_body.map(|(_, _, b)| b).unwrap_or_default();
            let otp = request_element(&body, "validateOtpRequest")
                .and_then(|r| r.child("otp").map(|e| e.text.clone()))
                .unwrap_or_default();
            return soap_exception(
                "validateOtpResponse",
                soap::NS_AUTH,
                codes::WRONG_OTP,
                &format!("OTP {otp} is not valid for this token"),
            );
        }
        None => {}
    }
    if let Some((org_ok, op, body)) = auth_body {
        if !org_ok {
            state.stats.rejects.fetch_add(1, Ordering::Relaxed);
            return soap_fault("soap:Server", "Organization not found");
        }
        return match op {
            AuthOp::ValidateOtp => state.validate_otp(&body),
            AuthOp::SendSms => state.send_sms(&body),
            AuthOp::ValidateMac => state.validate_mac(&body),
            AuthOp::StartPush => state.start_push(&body),
            AuthOp::Unknown => {
                state.stats.rejects.fetch_add(1, Ordering::Relaxed);
                soap_fault("soap:Client", "unknown operation")
            }
        };
    }
    let Some(req) = req else {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "no request",
        );
    };
    match (&method, path.as_str()) {
        (&Method::GET, "/SxSWS/api/healthCheck" | "/SxSAdminWS/api/healthCheck") => {
            state.stats.health.fetch_add(1, Ordering::Relaxed);
            json(
                StatusCode::OK,
                &serde_json::json!({"message": "Service is alive and well."}),
            )
        }
        (
            &Method::POST,
            "/SxSAdminWS/UserAdministrationService"
            | "/SxSAdminWS/services/MobileTokenManagementService",
        ) => {
            state.stats.admin.fetch_add(1, Ordering::Relaxed);
            if !state.org_ok(&req) {
                return soap_fault("soap:Server", "Organization not found");
            }
            match read_body(req).await {
                Ok(body) => state.admin(&body),
                Err(r) => r,
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

async fn handle_sim(state: &SimState, method: &Method, rest: &str, req: Request<Incoming>) -> Resp {
    match (method, rest) {
        (&Method::GET, "stats") => json(StatusCode::OK, &state.stats_snapshot()),
        (&Method::GET, "faults") => json(StatusCode::OK, &*lock(&state.faults)),
        (&Method::DELETE, "faults") => {
            *lock(&state.faults) = Faults::default();
            json(StatusCode::OK, &Faults::default())
        }
        (&Method::POST, "faults") => match read_json::<Faults>(req).await {
            Ok(f) => {
                *lock(&state.faults) = f.clone();
                json(StatusCode::OK, &f)
            }
            Err(r) => r,
        },
        (&Method::POST, "time") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Advance {
                advance_secs: i64,
            }
            match read_json::<Advance>(req).await {
                Ok(a) => {
                    let now = state
                        .time_offset
                        .fetch_add(a.advance_secs, Ordering::SeqCst)
                        + a.advance_secs;
                    json(StatusCode::OK, &serde_json::json!({"offset_secs": now}))
                }
                Err(r) => r,
            }
        }
        (&Method::POST, "activate") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Activate {
                client_id: String,
                activation_code: String,
            }
            match read_json::<Activate>(req).await {
                Ok(a) => state.activate(&a.client_id, &a.activation_code),
                Err(r) => r,
            }
        }
        (&Method::GET, other) if other.starts_with("push/") => {
            let user = other.trim_start_matches("push/");
            let list: Vec<PushRecord> = lock(&state.pushes)
                .iter()
                .filter(|p| p.user_id == user && p.status == "pending")
                .cloned()
                .collect();
            json(StatusCode::OK, &list)
        }
        (&Method::POST, other) if other.starts_with("push/") => {
            let rest = other.trim_start_matches("push/");
            let (id, approve) = match (rest.strip_suffix("/approve"), rest.strip_suffix("/deny")) {
                (Some(id), _) => (id.to_string(), true),
                (_, Some(id)) => (id.to_string(), false),
                _ => return respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
            };
            let opts: CallbackOptions = match req.uri().query() {
                None => CallbackOptions::default(),
                Some(q) => match serde_urlencoded_lite(q) {
                    Ok(o) => o,
                    Err(e) => {
                        return respond(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n"))
                    }
                },
            };
            state.answer_push(&id, approve, opts).await
        }
        (&Method::GET, other) if other.starts_with("sms/") => {
            let user = other.trim_start_matches("sms/");
            // `/sim/sms/USER/code`: just the code, for shell scripts.
            let (user, code_only) = match user.strip_suffix("/code") {
                Some(u) => (u, true),
                None => (user, false),
            };
            let sent: Vec<SmsMessage> = lock(&state.store)
                .outbox
                .iter()
                .filter(|m| m.user_id == user)
                .cloned()
                .collect();
            match sent.last() {
                Some(last) if code_only => {
                    respond(StatusCode::OK, "text/plain", format!("{}\n", last.code))
                }
                Some(last) => json(StatusCode::OK, last),
                None => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": format!("no SMS sent to {user:?}")}),
                ),
            }
        }
        (&Method::GET, other) if other.starts_with("mac/") => {
            let user = other.trim_start_matches("mac/");
            let input = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("input="))
                .unwrap_or("");
            match state.mac(user, input) {
                Some(mac) => respond(StatusCode::OK, "text/plain", format!("{mac}\n")),
                None => respond(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!(
                        "no user {user:?} with a token, or input {input:?} is not 1 to 8 digits (OCRA {})\n",
                        totp::OCRA_SUITE
                    ),
                ),
            }
        }
        (&Method::GET, other) => match other.strip_prefix("otp/") {
            Some(user) if !user.is_empty() => match state.current_otp(user) {
                Some(otp) => respond(StatusCode::OK, "text/plain", format!("{otp}\n")),
                None => respond(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!("no user {user:?} with a token\n"),
                ),
            },
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        },
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Resp> {
    let body = Limited::new(req.into_body(), 16 * 1024)
        .collect()
        .await
        .map_err(|_| respond(StatusCode::BAD_REQUEST, "text/plain", "body unreadable\n"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": e.to_string()}),
        )
    })
}

/// Parses `a=1&b=x` into `T` (values as JSON strings or numbers), for the few query options
/// of the test hooks.
fn serde_urlencoded_lite<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, String> {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        let value = if let Ok(n) = v.parse::<u64>() {
            serde_json::Value::from(n)
        } else if let Ok(b) = v.parse::<bool>() {
            serde_json::Value::from(b)
        } else {
            serde_json::Value::from(v)
        };
        map.insert(k.to_string(), value);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| format!("query: {e}"))
}

fn random_digits(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

impl SimState {
    fn new(opts: SimOptions) -> Result<Self, String> {
        let mut store = Store {
            next_sn: 2_000_100_000,
            ..Store::default()
        };
        for u in &opts.seed {
            if u.id.is_empty() {
                return Err("seed: a user has an empty id".into());
            }
            if let Some(sn) = &u.token_sn {
                if sn.is_empty() || !sn.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "seed: user {}: token_sn {sn:?} is not decimal",
                        u.id
                    ));
                }
                let secret = match &u.secret {
                    Some(s) => totp::decode_base32(s)
                        .ok_or_else(|| format!("seed: user {}: secret is not base32", u.id))?,
                    None => {
                        let mut b = vec![0u8; 20];
                        rand::rng().fill(&mut b[..]);
                        b
                    }
                };
                if store.tokens.contains_key(sn) {
                    return Err(format!("seed: token {sn} appears twice"));
                }
                store.tokens.insert(
                    sn.clone(),
                    Token {
                        user_id: u.id.clone(),
                        secret,
                        active: u.active.unwrap_or(true),
                        failures: 0,
                        locked: false,
                        last_step: None,
                        activation: None,
                        used_mac_inputs: Default::default(),
                    },
                );
            }
            let sms = if u.sms.unwrap_or(false) {
                if u.mobile.as_deref().is_none_or(str::is_empty) {
                    return Err(format!("seed: user {}: sms = true needs a mobile", u.id));
                }
                let sn = match &u.sms_token_sn {
                    Some(sn) if !sn.is_empty() && sn.bytes().all(|b| b.is_ascii_digit()) => {
                        sn.clone()
                    }
                    Some(sn) => {
                        return Err(format!(
                            "seed: user {}: sms_token_sn {sn:?} is not decimal",
                            u.id
                        ))
                    }
                    None => {
                        // The same counter as enrolment, taken the same way: never reused.
                        let sn = store.next_sn.to_string();
                        store.next_sn += 1;
                        sn
                    }
                };
                Some(SmsToken {
                    sn,
                    ..SmsToken::default()
                })
            } else {
                None
            };
            store.users.insert(
                u.id.clone(),
                User {
                    sms,
                    first_name: u.first_name.clone().unwrap_or_default(),
                    last_name: u.last_name.clone().unwrap_or_default(),
                    email: u.email.clone().unwrap_or_default(),
                    mobile: u.mobile.clone().unwrap_or_default(),
                    address: u.address.clone().unwrap_or_default(),
                    token_sn: u.token_sn.clone(),
                },
            );
        }
        Ok(Self {
            opts,
            store: Mutex::new(store),
            stats: Stats::default(),
            faults: Mutex::new(Faults::default()),
            time_offset: AtomicI64::new(0),
            pushes: Mutex::new(Vec::new()),
            callback_client: reqwest::Client::builder()
                .use_rustls_tls()
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| format!("cannot build the callback client: {e}"))?,
        })
    }

    fn now_unix(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        real.saturating_add_signed(self.time_offset.load(Ordering::SeqCst))
    }

    fn org_ok<B>(&self, req: &Request<B>) -> bool {
        req.headers()
            .get(self.opts.organization_header.as_str())
            .is_some_and(|v| v.as_bytes() == self.opts.organization_id.as_bytes())
    }

    fn take_fault(&self) -> Faults {
        let mut f = lock(&self.faults);
        let current = f.clone();
        if let Some(n) = f.calls {
            if n <= 1 {
                *f = Faults::default();
            } else {
                f.calls = Some(n - 1);
            }
        }
        current
    }

    fn stats_snapshot(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            validate_otp: s.validate_otp.load(Ordering::Relaxed),
            accepts: s.accepts.load(Ordering::Relaxed),
            rejects: s.rejects.load(Ordering::Relaxed),
            faults: s.faults.load(Ordering::Relaxed),
            admin: s.admin.load(Ordering::Relaxed),
            health: s.health.load(Ordering::Relaxed),
            send_sms: s.send_sms.load(Ordering::Relaxed),
            validate_mac: s.validate_mac.load(Ordering::Relaxed),
            start_push: s.start_push.load(Ordering::Relaxed),
        }
    }

    fn current_otp(&self, user_id: &str) -> Option<String> {
        let store = lock(&self.store);
        let sn = store.users.get(user_id)?.token_sn.as_ref()?;
        let token = store.tokens.get(sn)?;
        Some(totp::code_at_step(
            &token.secret,
            totp::step_of(self.now_unix()),
        ))
    }

    fn validate_otp(&self, body: &[u8]) -> Resp {
        const W: &str = "validateOtpResponse";
        let reject = |code: &str, message: &str| {
            self.stats.rejects.fetch_add(1, Ordering::Relaxed);
            soap_exception(W, soap::NS_AUTH, code, message)
        };
        let Some(req) = request_element(body, "validateOtpRequest") else {
            self.stats.rejects.fetch_add(1, Ordering::Relaxed);
            return soap_fault("soap:Client", "expected a validateOtpRequest");
        };
        let field = |name: &str| req.child(name).map(|e| e.text.as_str());
        let Some(otp) = field("otp").filter(|o| !o.is_empty()) else {
            return reject(codes::BAD_REQUEST, "otp is missing");
        };
        match field("applicationProfileName") {
            Some(p) if self.profile_ok(p) => {}
            Some(other) => {
                return reject(
                    codes::BAD_REQUEST,
                    &format!("unknown application profile {other}"),
                )
            }
            None => return reject(codes::BAD_REQUEST, "applicationProfileName is missing"),
        }
        let token_sn = field("TokenSN").filter(|s| !s.is_empty());
        let user_id = field("UserID").filter(|s| !s.is_empty());
        let now = self.now_unix();
        let now_step = totp::step_of(now);
        let mut store = lock(&self.store);
        // An SMS token answers when asked for by its serial, or by user id while a code sent to
        // it is pending (or when it is the user's only token).
        let sms_user = match (token_sn, user_id) {
            (Some(sn), uid) => store
                .users
                .iter()
                .find(|(_, u)| u.sms.as_ref().is_some_and(|t| t.sn == sn))
                .map(|(id, _)| id.clone())
                .filter(|id| uid.is_none_or(|u| u == id)),
            (None, Some(uid)) => store
                .users
                .get(uid)
                .filter(|u| {
                    u.sms
                        .as_ref()
                        .is_some_and(|t| t.code.is_some() || u.token_sn.is_none())
                })
                .map(|_| uid.to_string()),
            (None, None) => None,
        };
        if let Some(uid) = sms_user {
            let lockout = self.opts.lockout;
            let Some(user) = store.users.get_mut(&uid) else {
                return reject(codes::UNKNOWN_USER, "Unknown user");
            };
            // A user who also has an mToken may type its OTP instead: a code that is not the
            // pending SMS code goes on to the mToken (asked for by user id).
            let also_mtoken = user.token_sn.is_some() && token_sn.is_none();
            let Some(t) = user.sms.as_mut() else {
                return reject(codes::NO_TOKEN, "User has no SMS token");
            };
            if t.locked {
                return reject(codes::TOKEN_LOCKED, "Token locked");
            }
            match t.code.take() {
                Some((code, expires)) if code == otp && now <= expires => {
                    t.failures = 0;
                    self.stats.accepts.fetch_add(1, Ordering::Relaxed);
                    return soap_ok(
                        W,
                        soap::NS_AUTH,
                        &format!(
                            "<tokenSN>{}</tokenSN><userId>{}</userId>",
                            soap::escape(&t.sn),
                            soap::escape(&uid)
                        ),
                    );
                }
                Some((code, expires)) if code == otp && now > expires && !also_mtoken => {
                    return reject(codes::OTP_EXPIRED, "SMS code expired; request a new one");
                }
                pending if also_mtoken => {
                    // Keep the pending code (the user may still type it).
                    t.code = pending.filter(|(_, expires)| now <= *expires);
                }
                pending => {
                    // A wrong try keeps the pending code (the user may retype it) and counts.
                    t.code = pending;
                    t.failures += 1;
                    if t.failures >= lockout {
                        t.locked = true;
                        t.code = None;
                    }
                    return reject(codes::WRONG_OTP, "Wrong OTP");
                }
            }
        }
        let sn = match (token_sn, user_id) {
            (Some(sn), uid) => {
                let Some(t) = store.tokens.get(sn) else {
                    return reject(codes::UNKNOWN_TOKEN, "Unknown token");
                };
                if uid.is_some_and(|u| u != t.user_id) {
                    return reject(codes::TOKEN_USER_MISMATCH, "Token does not belong to user");
                }
                sn.to_string()
            }
            (None, Some(uid)) => match store.users.get(uid) {
                None => return reject(codes::UNKNOWN_USER, "Unknown user"),
                Some(u) => match &u.token_sn {
                    Some(sn) => sn.clone(),
                    None => return reject(codes::NO_TOKEN, "User has no token"),
                },
            },
            (None, None) => return reject(codes::BAD_REQUEST, "TokenSN or UserID is required"),
        };
        let lockout = self.opts.lockout;
        let allow_replay = self.opts.allow_replay;
        let Some(token) = store.tokens.get_mut(&sn) else {
            return reject(codes::UNKNOWN_TOKEN, "Unknown token");
        };
        if !token.active {
            return reject(codes::TOKEN_NOT_ACTIVE, "Token not activated");
        }
        if token.locked {
            return reject(codes::TOKEN_LOCKED, "Token locked");
        }
        let matched = [now_step.saturating_sub(1), now_step, now_step + 1]
            .into_iter()
            .find(|&s| totp::code_at_step(&token.secret, s) == otp);
        match matched {
            Some(step) if allow_replay || token.last_step.is_none_or(|last| step > last) => {
                token.last_step = Some(step);
                token.failures = 0;
                self.stats.accepts.fetch_add(1, Ordering::Relaxed);
                let user = token.user_id.clone();
                soap_ok(
                    W,
                    soap::NS_AUTH,
                    &format!(
                        "<tokenSN>{}</tokenSN><userId>{}</userId>",
                        soap::escape(&sn),
                        soap::escape(&user)
                    ),
                )
            }
            Some(_) => reject(codes::OTP_REPLAYED, "OTP already used"),
            None => {
                token.failures += 1;
                if token.failures >= lockout {
                    token.locked = true;
                }
                reject(codes::WRONG_OTP, "Wrong OTP")
            }
        }
    }

    /// An exception answer in `wrapper`, counted as a reject.
    fn reject(&self, wrapper: &str, code: &str, message: &str) -> Resp {
        self.stats.rejects.fetch_add(1, Ordering::Relaxed);
        soap_exception(wrapper, soap::NS_AUTH, code, message)
    }

    /// The request element of `m` in `body` and the answer's wrapper name, or the reject for a
    /// request that is malformed or names an unknown application profile.
    fn method_request(
        &self,
        body: &[u8],
        m: &crate::config::SxsMethod,
    ) -> Result<(Element<'static>, String), Box<Resp>> {
        let wrapper = format!("{}Response", m.request.trim_end_matches("Request"));
        let Some(req) = request_element(body, &m.request) else {
            return Err(Box::new(self.reject(
                &wrapper,
                codes::BAD_REQUEST,
                "malformed request",
            )));
        };
        match req.child("applicationProfileName").map(|e| e.text.as_str()) {
            Some(p) if self.profile_ok(p) => Ok((req, wrapper)),
            _ => Err(Box::new(self.reject(
                &wrapper,
                codes::BAD_REQUEST,
                "unknown or missing applicationProfileName",
            ))),
        }
    }

    fn profile_ok(&self, profile: &str) -> bool {
        let m = &self.opts.methods;
        profile == "OTP_APP"
            || profile == m.send_sms.application_profile
            || profile == m.validate_mac.application_profile
    }

    fn is_auth_path(&self, path: &str) -> bool {
        path == AUTH_PATH
            || path == self.opts.methods.send_sms.path
            || path == self.opts.methods.validate_mac.path
    }

    fn classify(&self, body: &[u8]) -> AuthOp {
        let Some(op) = request_element(body, "") else {
            return AuthOp::Unknown;
        };
        let m = &self.opts.methods;
        if op.name == "validateOtpRequest" {
            AuthOp::ValidateOtp
        } else if op.name == m.send_sms.request {
            AuthOp::SendSms
        } else if op.name == m.validate_mac.request {
            AuthOp::ValidateMac
        } else if op.name == m.start_push.request {
            AuthOp::StartPush
        } else {
            AuthOp::Unknown
        }
    }

    /// The user id a request names (by `TokenSN` of either token, or `UserID`), or the
    /// exception code and message to refuse it with.
    fn resolve_user(
        store: &Store,
        req: &Element<'_>,
    ) -> Result<String, (&'static str, &'static str)> {
        let field = |name: &str| {
            req.child(name)
                .map(|e| e.text.as_str())
                .filter(|s| !s.is_empty())
        };
        match (field("TokenSN"), field("UserID")) {
            (Some(sn), uid) => {
                let owner = store.tokens.get(sn).map(|t| t.user_id.clone()).or_else(|| {
                    store
                        .users
                        .iter()
                        .find(|(_, u)| u.sms.as_ref().is_some_and(|t| t.sn == sn))
                        .map(|(id, _)| id.clone())
                });
                match owner {
                    None => Err((codes::UNKNOWN_TOKEN, "Unknown token")),
                    Some(o) if uid.is_some_and(|u| u != o) => {
                        Err((codes::TOKEN_USER_MISMATCH, "Token does not belong to user"))
                    }
                    Some(o) => Ok(o),
                }
            }
            (None, Some(uid)) if store.users.contains_key(uid) => Ok(uid.to_string()),
            (None, Some(_)) => Err((codes::UNKNOWN_USER, "Unknown user")),
            (None, None) => Err((codes::BAD_REQUEST, "TokenSN or UserID is required")),
        }
    }

    fn send_sms(&self, body: &[u8]) -> Resp {
        let m = &self.opts.methods.send_sms;
        let (req, wrapper) = match self.method_request(body, m) {
            Ok(r) => r,
            Err(resp) => return *resp,
        };
        let reject = |code: &str, message: &str| self.reject(&wrapper, code, message);
        let now = self.now_unix();
        let mut store = lock(&self.store);
        let uid = match Self::resolve_user(&store, &req) {
            Ok(u) => u,
            Err((code, message)) => return reject(code, message),
        };
        let ttl = self.opts.sms_ttl.as_secs();
        let Some(user) = store.users.get_mut(&uid) else {
            return reject(codes::UNKNOWN_USER, "Unknown user");
        };
        let mobile = user.mobile.clone();
        let Some(t) = user.sms.as_mut() else {
            return reject(codes::NO_TOKEN, "User has no SMS token");
        };
        if mobile.is_empty() {
            return reject(codes::NO_MOBILE, "User has no mobile number");
        }
        if t.locked {
            return reject(codes::TOKEN_LOCKED, "Token locked");
        }
        let code = random_digits(6);
        let expires_at = now.saturating_add(ttl);
        t.code = Some((code.clone(), expires_at));
        if store.outbox.len() >= 10_000 {
            store.outbox.remove(0);
        }
        store.outbox.push(SmsMessage {
            user_id: uid,
            mobile: mobile.clone(),
            code,
            sent_at: now,
            expires_at,
        });
        self.stats.accepts.fetch_add(1, Ordering::Relaxed);
        soap_ok(
            &wrapper,
            soap::NS_AUTH,
            &format!("<{0}>{1}</{0}>", m.mobile_element, soap::escape(&mobile)),
        )
    }

    fn start_push(&self, body: &[u8]) -> Resp {
        let m = &self.opts.methods.start_push;
        let (req, wrapper) = match self.method_request(body, m) {
            Ok(r) => r,
            Err(resp) => return *resp,
        };
        let reject = |code: &str, message: &str| self.reject(&wrapper, code, message);
        let text = |n: &str| req.child(n).map(|e| e.text.clone()).unwrap_or_default();
        let (input, callback) = (text(&m.input_element), text(&m.callback_element));
        if input.is_empty() || url::Url::parse(&callback).is_err() {
            return reject(
                codes::BAD_REQUEST,
                "MAC input and an absolute callback URL are required",
            );
        }
        let store = lock(&self.store);
        let uid = match Self::resolve_user(&store, &req) {
            Ok(u) => u,
            Err((code, message)) => return reject(code, message),
        };
        let Some(sn) = store.users.get(&uid).and_then(|u| u.token_sn.clone()) else {
            return reject(codes::NO_TOKEN, "User has no token");
        };
        match store.tokens.get(&sn) {
            Some(t) if t.locked => return reject(codes::TOKEN_LOCKED, "Token locked"),
            Some(t) if !t.active => return reject(codes::TOKEN_NOT_ACTIVE, "Token not activated"),
            Some(_) => {}
            None => return reject(codes::UNKNOWN_TOKEN, "Unknown token"),
        }
        drop(store);
        let id = random_digits(12);
        let mut pushes = lock(&self.pushes);
        if pushes.len() >= 10_000 {
            pushes.remove(0);
        }
        pushes.push(PushRecord {
            id: id.clone(),
            user_id: uid,
            input,
            callback,
            status: "pending".into(),
            created_at: self.now_unix(),
        });
        self.stats.accepts.fetch_add(1, Ordering::Relaxed);
        soap_ok(&wrapper, soap::NS_AUTH, &format!("<pushId>{id}</pushId>"))
    }

    /// The phone's answer to a push: SxS checks the MAC and calls the callback with the
    /// result and, when approved, a fresh OTP. Answers with what the callback returned.
    async fn answer_push(&self, id: &str, approve: bool, opts: CallbackOptions) -> Resp {
        let record = {
            let mut pushes = lock(&self.pushes);
            let Some(p) = pushes.iter_mut().find(|p| p.id == id) else {
                return json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": format!("no push {id}")}),
                );
            };
            p.status = if approve { "approved" } else { "denied" }.into();
            p.clone()
        };
        let body = if approve {
            let (mac, otp) = {
                let mut store = lock(&self.store);
                let sn = store
                    .users
                    .get(&record.user_id)
                    .and_then(|u| u.token_sn.clone())
                    .unwrap_or_default();
                let now_step = totp::step_of(self.now_unix());
                match store.tokens.get_mut(&sn) {
                    Some(t) => {
                        // A fresh OTP the customer can still validate: past any step used.
                        let step = match t.last_step {
                            Some(last) if last >= now_step => now_step + 1,
                            _ => now_step,
                        };
                        (
                            totp::ocra_qn08(&t.secret, &record.input).unwrap_or_default(),
                            totp::code_at_step(&t.secret, step),
                        )
                    }
                    None => (String::new(), String::new()),
                }
            };
            serde_json::json!({"result": "approved", "mac": mac, "otp": otp})
        } else {
            serde_json::json!({"result": "denied"})
        };
        let mut url = record.callback.clone();
        if let Some(other) = &opts.other_id {
            // Another push's callback location carrying this push's signature.
            let other = match other {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let Some(target) = lock(&self.pushes)
                .iter()
                .find(|p| p.id == other)
                .map(|p| p.callback.clone())
            else {
                return json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": format!("no push {other}")}),
                );
            };
            let mine = url
                .split_once("sig=")
                .map(|(_, s)| s.to_string())
                .unwrap_or_default();
            url = match target.split_once("sig=") {
                Some((head, _)) => format!("{head}sig={mine}"),
                None => target,
            };
        }
        if opts.bad_signature.unwrap_or(false) {
            url = match url.split_once("sig=") {
                Some((head, sig)) => {
                    let flipped: String = sig
                        .chars()
                        .enumerate()
                        .map(|(i, c)| {
                            if i == 0 {
                                if c == '0' {
                                    '1'
                                } else {
                                    '0'
                                }
                            } else {
                                c
                            }
                        })
                        .collect();
                    format!("{head}sig={flipped}")
                }
                None => format!("{url}&sig=00"),
            };
        }
        if let Some(ms) = opts.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut statuses = Vec::new();
        for _ in 0..opts.times.unwrap_or(1).clamp(1, 10) {
            let r = self
                .callback_client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await;
            statuses.push(match r {
                Ok(resp) => serde_json::json!(resp.status().as_u16()),
                Err(e) => serde_json::json!(format!("error: {e}")),
            });
        }
        json(
            StatusCode::OK,
            &serde_json::json!({"id": id, "callback_status": statuses}),
        )
    }

    fn mac(&self, user_id: &str, input: &str) -> Option<String> {
        let store = lock(&self.store);
        let sn = store.users.get(user_id)?.token_sn.as_ref()?;
        totp::ocra_qn08(&store.tokens.get(sn)?.secret, input)
    }

    fn validate_mac(&self, body: &[u8]) -> Resp {
        let m = &self.opts.methods.validate_mac;
        let (req, wrapper) = match self.method_request(body, m) {
            Ok(r) => r,
            Err(resp) => return *resp,
        };
        let reject = |code: &str, message: &str| self.reject(&wrapper, code, message);
        let text = |n: &str| req.child(n).map(|e| e.text.clone()).unwrap_or_default();
        let (mac, input) = (text(&m.mac_element), text(&m.input_element));
        if mac.is_empty() || input.is_empty() {
            return reject(codes::BAD_REQUEST, "MAC and MAC input are required");
        }
        let lockout = self.opts.lockout;
        let allow_replay = self.opts.allow_replay;
        let mut store = lock(&self.store);
        let uid = match Self::resolve_user(&store, &req) {
            Ok(u) => u,
            Err((code, message)) => return reject(code, message),
        };
        let Some(sn) = store.users.get(&uid).and_then(|u| u.token_sn.clone()) else {
            return reject(codes::NO_TOKEN, "User has no token");
        };
        let Some(token) = store.tokens.get_mut(&sn) else {
            return reject(codes::UNKNOWN_TOKEN, "Unknown token");
        };
        if !token.active {
            return reject(codes::TOKEN_NOT_ACTIVE, "Token not activated");
        }
        if token.locked {
            return reject(codes::TOKEN_LOCKED, "Token locked");
        }
        let Some(expected) = totp::ocra_qn08(&token.secret, &input) else {
            return reject(
                codes::BAD_REQUEST,
                "MAC input must be 1 to 8 decimal digits (OCRA-1:HOTP-SHA1-6:QN08)",
            );
        };
        if expected != mac {
            token.failures += 1;
            if token.failures >= lockout {
                token.locked = true;
            }
            return reject(codes::WRONG_OTP, "Wrong MAC");
        }
        if !allow_replay && !token.used_mac_inputs.insert(input) {
            return reject(codes::OTP_REPLAYED, "MAC already used");
        }
        token.failures = 0;
        self.stats.accepts.fetch_add(1, Ordering::Relaxed);
        soap_ok(
            &wrapper,
            soap::NS_AUTH,
            &format!(
                "<tokenSN>{}</tokenSN><userId>{}</userId>",
                soap::escape(&sn),
                soap::escape(&uid)
            ),
        )
    }

    fn admin(&self, body: &[u8]) -> Resp {
        let Some(op) = request_element(body, "") else {
            return soap_fault("soap:Client", "expected a SOAP request");
        };
        let mut store = lock(&self.store);
        match &*op.name {
            "createOrUpdateSxsUser" => {
                const W: &str = "createOrUpdateSxsUserResponse";
                let Some(u) = op.child("sxsUserWS") else {
                    return soap_exception(
                        W,
                        soap::NS_USER,
                        codes::BAD_REQUEST,
                        "sxsUserWS is missing",
                    );
                };
                let text = |n: &str| u.child(n).map(|e| e.text.clone()).unwrap_or_default();
                let id = text("userId");
                if id.is_empty() {
                    return soap_exception(
                        W,
                        soap::NS_USER,
                        codes::BAD_REQUEST,
                        "userId is missing",
                    );
                }
                let entry = store.users.entry(id).or_default();
                entry.first_name = text("firstName");
                entry.last_name = text("lastName");
                entry.email = text("email");
                entry.mobile = text("mobile");
                entry.address = text("address");
                soap_ok(W, soap::NS_USER, "")
            }
            "mtmRedistributeTokenRequest" => {
                const W: &str = "mtmRedistributeTokenResponse";
                let uid = op
                    .child("sxsUserWS")
                    .and_then(|u| u.child("userId"))
                    .map(|e| e.text.clone())
                    .unwrap_or_default();
                let digits = |n: &str| {
                    op.child(n).is_some_and(|e| {
                        !e.text.is_empty() && e.text.bytes().all(|b| b.is_ascii_digit())
                    })
                };
                if !digits("tokenProfileId") || !digits("serviceIds") {
                    return soap_exception(
                        W,
                        soap::NS_MTM,
                        codes::BAD_REQUEST,
                        "tokenProfileId and serviceIds must be numbers",
                    );
                }
                if !store.users.contains_key(&uid) {
                    return soap_exception(W, soap::NS_MTM, codes::UNKNOWN_USER, "Unknown user");
                }
                let sn = store.next_sn.to_string();
                store.next_sn += 1;
                let mut secret = vec![0u8; 20];
                rand::rng().fill(&mut secret[..]);
                store.tokens.insert(
                    sn.clone(),
                    Token {
                        user_id: uid.clone(),
                        secret,
                        active: false,
                        failures: 0,
                        locked: false,
                        last_step: None,
                        activation: None,
                        used_mac_inputs: Default::default(),
                    },
                );
                if let Some(old) = store
                    .users
                    .get_mut(&uid)
                    .and_then(|u| u.token_sn.replace(sn.clone()))
                {
                    store.tokens.remove(&old);
                }
                soap_ok(W, soap::NS_MTM, &format!("<tokenSN>{sn}</tokenSN>"))
            }
            "mtmRenewActivationCodeRequest" => {
                const W: &str = "mtmRenewActivationCodeResponse";
                let sn = op
                    .child("tokensn")
                    .map(|e| e.text.clone())
                    .unwrap_or_default();
                if op.child("generateNew").map(|e| e.text.as_str()) != Some("true") {
                    return soap_exception(
                        W,
                        soap::NS_MTM,
                        codes::BAD_REQUEST,
                        "generateNew must be true",
                    );
                }
                let Some(token) = store.tokens.get_mut(&sn) else {
                    return soap_exception(W, soap::NS_MTM, codes::UNKNOWN_TOKEN, "Unknown token");
                };
                token.activation = Some(Activation {
                    digits: random_digits(16),
                    wrong: 0,
                });
                soap_ok(W, soap::NS_MTM, "")
            }
            "mtmGetActivationCodeRequest" => {
                const W: &str = "mtmGetActivationCodeResponse";
                let sn = op
                    .child("tokensn")
                    .map(|e| e.text.clone())
                    .unwrap_or_default();
                if op.child("formatId").map(|e| e.text.as_str()) != Some("1") {
                    return soap_exception(
                        W,
                        soap::NS_MTM,
                        codes::BAD_REQUEST,
                        "formatId must be 1",
                    );
                }
                let Some(token) = store.tokens.get(&sn) else {
                    return soap_exception(W, soap::NS_MTM, codes::UNKNOWN_TOKEN, "Unknown token");
                };
                match &token.activation {
                    Some(a) if a.wrong < ACTIVATION_TRIES => soap_ok(
                        W,
                        soap::NS_MTM,
                        &format!("<activationCode>{}</activationCode>", a.digits),
                    ),
                    _ => soap_exception(
                        W,
                        soap::NS_MTM,
                        codes::ACTIVATION_CODE_DEAD,
                        "No valid activation code; renew it",
                    ),
                }
            }
            other => soap_fault("soap:Client", &format!("unknown operation {other}")),
        }
    }

    /// The phone's activation: client ID (digits 1–8) and activation code (digits 9–16).
    fn activate(&self, client_id: &str, activation_code: &str) -> Resp {
        let mut store = lock(&self.store);
        let found = store.tokens.iter_mut().find(|(_, t)| {
            t.activation
                .as_ref()
                .is_some_and(|a| a.digits.get(..8) == Some(client_id))
        });
        let Some((sn, token)) = found else {
            return json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"code": codes::ACTIVATION_CODE_DEAD, "message": "Unknown client ID"}),
            );
        };
        let sn = sn.clone();
        let Some(a) = token.activation.as_mut() else {
            return json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"code": codes::ACTIVATION_CODE_DEAD}),
            );
        };
        if a.wrong >= ACTIVATION_TRIES {
            return json(
                StatusCode::FORBIDDEN,
                &serde_json::json!({"code": codes::ACTIVATION_CODE_DEAD, "message": "Activation code is dead; generate a new one"}),
            );
        }
        if a.digits.get(8..) != Some(activation_code) {
            a.wrong += 1;
            let left = ACTIVATION_TRIES.saturating_sub(a.wrong);
            return json(
                StatusCode::FORBIDDEN,
                &serde_json::json!({"code": codes::WRONG_ACTIVATION_CODE, "message": "Wrong activation code", "tries_left": left}),
            );
        }
        token.activation = None;
        token.active = true;
        token.failures = 0;
        token.locked = false;
        json(
            StatusCode::OK,
            &serde_json::json!({"activated": true, "token_sn": sn, "user_id": token.user_id}),
        )
    }
}

/// Which authentication operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthOp {
    ValidateOtp,
    SendSms,
    ValidateMac,
    StartPush,
    Unknown,
}

/// The first element inside the SOAP Body; with a non-empty `name`, only if it has that
/// local name.
fn request_element(body: &[u8], name: &str) -> Option<Element<'static>> {
    let text = std::str::from_utf8(body).ok()?;
    let root = soap::parse(text).ok()?;
    let body = soap::body(&root).ok()?;
    let first = body.children.first()?;
    (name.is_empty() || first.name == name).then(|| first.clone().into_owned())
}
