//! Prometheus metrics: the counters the server and the SxS client feed, and the `/metrics`
//! endpoint (`[metrics] listen`, off by default).
//!
//! Labels carry client names (from the configuration), SxS server URLs, and fixed words —
//! never a user name: cardinality stays bounded by the configuration, and the metrics hold no
//! personal data. Encoding is `prometheus-client`'s text format.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    client: Label,
    transport: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    client: Label,
    reply: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SxsCallLabels {
    method: &'static str,
    server: Label,
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SxsLatencyLabels {
    method: &'static str,
    server: Label,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: Label,
}

/// A label value shared rather than copied: a client's name (held by the client, see
/// `clients::Client`) or an SxS server URL (held once per server by [`Metrics`]).
pub type Label = Arc<str>;

/// Which [`Metrics`] a cached counter belongs to (a process may run several servers, in tests).
static NEXT_METRICS_ID: AtomicU64 = AtomicU64::new(0);

/// Counters already looked up, so that counting again hashes no label set. Keyed by the
/// `Metrics` they belong to and the fixed words of the label set; bounded, because those
/// words are constants of the program.
#[derive(Debug)]
struct Handles<M> {
    found: Mutex<Vec<(u64, &'static str, &'static str, M)>>,
}

impl<M> Default for Handles<M> {
    fn default() -> Self {
        Self {
            found: Mutex::default(),
        }
    }
}

impl<M: Clone> Handles<M> {
    fn get(&self, metrics: u64, a: &'static str, b: &'static str, make: impl FnOnce() -> M) -> M {
        let mut found = match self.found.lock() {
            Ok(found) => found,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((.., m)) = found
            .iter()
            .find(|(id, x, y, _)| *id == metrics && *x == a && *y == b)
        {
            return m.clone();
        }
        let m = make();
        found.push((metrics, a, b, m.clone()));
        m
    }
}

/// A client's label and its counters once found: held by the client (`clients::Client`).
#[derive(Debug)]
pub struct ClientMetrics {
    label: Label,
    requests: Handles<Counter>,
    decisions: Handles<Counter>,
}

impl ClientMetrics {
    pub fn new(name: &str) -> Self {
        Self {
            label: name.into(),
            requests: Handles::default(),
            decisions: Handles::default(),
        }
    }
}

/// An SxS server's counters once found.
#[derive(Debug)]
struct ServerMetrics {
    url: Label,
    calls: Handles<Counter>,
    latency: Handles<Histogram>,
}

/// Why a packet was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// From an address (or certificate) that is not a configured client.
    UnknownClient,
    /// Not a RADIUS packet, or a code we do not serve.
    Malformed,
    /// Message-Authenticator missing or wrong, or a wrong accounting authenticator.
    BadAuthenticator,
    /// `max_in_flight` requests already in flight.
    Overload,
    /// A retransmission of a request still in flight.
    Duplicate,
    /// Status-Server while no SxS server is reachable.
    NotReady,
    /// Accounting-Request while `radius.accounting` is off.
    Accounting,
}

impl Drop {
    fn label(self) -> &'static str {
        match self {
            Drop::UnknownClient => "unknown_client",
            Drop::Malformed => "malformed",
            Drop::BadAuthenticator => "bad_authenticator",
            Drop::Overload => "overload",
            Drop::Duplicate => "duplicate",
            Drop::NotReady => "not_ready",
            Drop::Accounting => "accounting_off",
        }
    }
}

/// `sxs_radius_state_rejects_total` reasons ([`crate::state::StateError::reason`] and the
/// handler's own).
const STATE_REJECT_REASONS: [&str; 8] = [
    "malformed",
    "bad_signature",
    "expired",
    "replayed",
    "replay_cache_full",
    "key",
    "wrong_context",
    "no_state_key",
];

/// `sxs_radius_tls_handshake_failures_total` reasons (see `crate::tls`).
const TLS_FAILURE_REASONS: [&str; 11] = [
    "unknown_client",
    "certificate_not_matched",
    "unknown_ca",
    "expired",
    "not_yet_valid",
    "bad_certificate",
    "no_certificate",
    "protocol",
    "timeout",
    "too_many_connections",
    "io",
];

/// Every metric `sxs-radiusd` exposes. Cheap to share behind an `Arc`; every method is a few
/// atomic operations (plus a map lookup for labelled families).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    drops: Family<ReasonLabels, Counter>,
    resent: Counter,
    state_rejects: Family<ReasonLabels, Counter>,
    sxs_calls: Family<SxsCallLabels, Counter>,
    sxs_latency: Family<SxsLatencyLabels, Histogram>,
    sxs_up: Family<ServerLabels, Gauge>,
    in_flight: Gauge,
    dedup_entries: Gauge,
    tls_connections: Gauge,
    tls_handshake_failures: Family<ReasonLabels, Counter>,
    /// Distinguishes this instance's counters in the clients' caches.
    id: u64,
    /// The SxS servers' counters once found, by URL; each URL allocated once (bounded by the
    /// configuration, like the label sets themselves). Client names come as the clients' own
    /// [`Label`]s.
    servers: RwLock<Vec<Arc<ServerMetrics>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "sxs_radius_requests",
            "RADIUS packets received from known clients, by client, transport (udp, tls) and code",
            requests.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "sxs_radius_decisions",
            "Access-Request answers by client, reply (accept, reject, challenge) and reason",
            decisions.clone(),
        );
        let drops = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sxs_radius_dropped",
            "Packets dropped without an answer, by reason",
            drops.clone(),
        );
        let resent = Counter::default();
        registry.register(
            "sxs_radius_retransmissions_answered",
            "Retransmissions answered from the duplicate cache (no second SxS call)",
            resent.clone(),
        );
        let state_rejects = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sxs_radius_state_rejects",
            "Challenge follow-ups rejected because of their State, by reason",
            state_rejects.clone(),
        );
        let sxs_calls = Family::<SxsCallLabels, Counter>::default();
        registry.register(
            "sxs_calls",
            "SxS calls by method, server and verdict (accept, reject, unavailable)",
            sxs_calls.clone(),
        );
        let sxs_latency = Family::<SxsLatencyLabels, Histogram>::new_with_constructor(
            // 5 ms to about 10 s.
            (|| Histogram::new(exponential_buckets(0.005, 2.0, 12))) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "sxs_call_duration",
            "Time of one SxS call on one server",
            Unit::Seconds,
            sxs_latency.clone(),
        );
        let sxs_up = Family::<ServerLabels, Gauge>::default();
        registry.register(
            "sxs_server_up",
            "1 when the SxS server answered its last call or health check, 0 when it could not be reached",
            sxs_up.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "sxs_radius_in_flight",
            "Access-Requests being handled now",
            in_flight.clone(),
        );
        let dedup_entries = Gauge::default();
        registry.register(
            "sxs_radius_dedup_entries",
            "Entries in the duplicate-request cache",
            dedup_entries.clone(),
        );
        let tls_connections = Gauge::default();
        registry.register(
            "sxs_radius_tls_connections",
            "RADIUS/TLS connections open now",
            tls_connections.clone(),
        );
        let tls_handshake_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sxs_radius_tls_handshake_failures",
            "RADIUS/TLS connections refused before or during the handshake, by reason",
            tls_handshake_failures.clone(),
        );
        // Fixed reasons start at 0, so they are listed (and rate() works) before the first one.
        for why in [
            Drop::UnknownClient,
            Drop::Malformed,
            Drop::BadAuthenticator,
            Drop::Overload,
            Drop::Duplicate,
            Drop::NotReady,
            Drop::Accounting,
        ] {
            drops
                .get_or_create(&ReasonLabels {
                    reason: why.label(),
                })
                .inc_by(0);
        }
        for reason in STATE_REJECT_REASONS {
            state_rejects
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        for reason in TLS_FAILURE_REASONS {
            tls_handshake_failures
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        registry.register_collector(Box::new(ProcessCollector {
            // Built at start-up; /proc/stat (boot time) is hidden under ProcSubset=pid.
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }));
        Self {
            registry,
            requests,
            decisions,
            drops,
            resent,
            state_rejects,
            sxs_calls,
            sxs_latency,
            sxs_up,
            in_flight,
            dedup_entries,
            tls_connections,
            tls_handshake_failures,
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
            servers: RwLock::default(),
        }
    }

    /// A packet from a known client (`code`: the RADIUS code's name).
    pub fn request(&self, client: &ClientMetrics, transport: &'static str, code: &'static str) {
        client
            .requests
            .get(self.id, transport, code, || {
                self.requests.get_or_create_owned(&RequestLabels {
                    client: client.label.clone(),
                    transport,
                    code,
                })
            })
            .inc();
    }

    pub fn decision(&self, client: &ClientMetrics, reply: &'static str, reason: &'static str) {
        client
            .decisions
            .get(self.id, reply, reason, || {
                self.decisions.get_or_create_owned(&DecisionLabels {
                    client: client.label.clone(),
                    reply,
                    reason,
                })
            })
            .inc();
    }

    /// The counters of the SxS server at `url`, found once.
    fn server(&self, url: &str) -> Arc<ServerMetrics> {
        let known =
            |servers: &[Arc<ServerMetrics>]| servers.iter().find(|s| &*s.url == url).cloned();
        let found = match self.servers.read() {
            Ok(servers) => known(&servers),
            Err(poisoned) => known(&poisoned.into_inner()),
        };
        if let Some(server) = found {
            return server;
        }
        let mut servers = match self.servers.write() {
            Ok(servers) => servers,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(server) = known(&servers) {
            return server;
        }
        let server = Arc::new(ServerMetrics {
            url: Arc::from(url),
            calls: Handles::default(),
            latency: Handles::default(),
        });
        servers.push(server.clone());
        server
    }

    pub fn dropped(&self, why: Drop) {
        self.drops
            .get_or_create(&ReasonLabels {
                reason: why.label(),
            })
            .inc();
    }

    pub fn resent(&self) {
        self.resent.inc();
    }

    pub fn state_reject(&self, reason: &'static str) {
        self.state_rejects
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn tls_handshake_failed(&self, reason: &'static str) {
        self.tls_handshake_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts a TLS connection as open until the guard is dropped.
    pub fn tls_connection(self: &Arc<Self>) -> GaugeGuard {
        self.tls_connections.inc();
        GaugeGuard(self.tls_connections.clone())
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn in_flight(&self) -> GaugeGuard {
        self.in_flight.inc();
        GaugeGuard(self.in_flight.clone())
    }

    pub fn set_dedup_entries(&self, n: usize) {
        self.dedup_entries.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Decrements a gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard(Gauge);

impl std::ops::Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl common::SxsObserver for Metrics {
    fn sxs_call(
        &self,
        method: &'static str,
        server: &str,
        verdict: &'static str,
        latency: Duration,
    ) {
        let server = self.server(server);
        server
            .calls
            .get(self.id, method, verdict, || {
                self.sxs_calls.get_or_create_owned(&SxsCallLabels {
                    method,
                    server: server.url.clone(),
                    verdict,
                })
            })
            .inc();
        server
            .latency
            .get(self.id, method, "", || {
                self.sxs_latency.get_or_create_owned(&SxsLatencyLabels {
                    method,
                    server: server.url.clone(),
                })
            })
            .observe(latency.as_secs_f64());
    }

    fn sxs_server(&self, server: &str, up: bool) {
        self.sxs_up
            .get_or_create(&ServerLabels {
                server: self.server(server).url.clone(),
            })
            .set(i64::from(up));
    }
}

/// The standard `process_*` metrics, read from `/proc/self` and `getrusage` at scrape time.
#[derive(Debug)]
struct ProcessCollector {
    /// Unix time the metrics were set up, at start-up.
    started: f64,
}

impl ProcessCollector {
    fn resident_bytes() -> Option<i64> {
        // statm: size resident shared … (in pages).
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()?;
        Some(pages.saturating_mul(page))
    }

    fn open_fds() -> Option<i64> {
        let n = std::fs::read_dir("/proc/self/fd").ok()?.count();
        i64::try_from(n).ok()
    }

    fn cpu_seconds() -> Option<f64> {
        use nix::sys::resource::{getrusage, UsageWho};
        let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        Some(secs(u.user_time()) + secs(u.system_time()))
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(v) = Self::cpu_seconds() {
            let m = ConstCounter::new(v);
            m.encode(encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time spent",
                Some(&Unit::Seconds),
                m.metric_type(),
            )?)?;
        }
        if let Some(v) = Self::resident_bytes() {
            let m = ConstGauge::new(v);
            m.encode(encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                m.metric_type(),
            )?)?;
        }
        if let Some(v) = Self::open_fds() {
            let m = ConstGauge::new(v);
            m.encode(encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                m.metric_type(),
            )?)?;
        }
        let m = ConstGauge::new(self.started);
        m.encode(encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Some(&Unit::Seconds),
            m.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true. `refresh` runs before each
/// scrape to set the gauges that are read rather than counted (dedup cache size).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
    mut shutdown: watch::Receiver<bool>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Response, StatusCode};
    loop {
        let Some((stream, peer)) =
            crate::server::accept_until(&listener, &mut shutdown, "metrics").await
        else {
            return;
        };
        let metrics = metrics.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    let refresh = refresh.clone();
                    async move {
                        let (status, ctype, body) = if req.method() != Method::GET {
                            (
                                StatusCode::METHOD_NOT_ALLOWED,
                                "text/plain",
                                "GET only\n".to_string(),
                            )
                        } else if req.uri().path() != "/metrics" {
                            (
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "try /metrics\n".to_string(),
                            )
                        } else {
                            refresh();
                            match metrics.encode() {
                                Ok(text) => (
                                    StatusCode::OK,
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                    text,
                                ),
                                Err(_) => (
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "text/plain",
                                    "cannot encode the metrics\n".to_string(),
                                ),
                            }
                        };
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = status;
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(ctype),
                        );
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = tokio::time::timeout(Duration::from_secs(30), conn).await {
                tracing::debug!(%peer, error = %e, "metrics connection closed");
            }
        });
    }
}

/// Binds the metrics listener (`[metrics] listen`).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} (metrics.listen): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::SxsObserver;

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn counters_found_once_count_as_before() {
        let metrics = Metrics::new();
        let nas = ClientMetrics::new("nas1");
        for _ in 0..3 {
            metrics.request(&nas, "udp", "Access-Request");
        }
        metrics.request(&nas, "tls", "Access-Request");
        metrics.decision(&nas, "accept", "allow");
        metrics.decision(&nas, "accept", "allow");
        metrics.decision(&nas, "reject", "deny");
        let text = metrics.encode().unwrap();
        let requests =
            r#"sxs_radius_requests_total{client="nas1",transport="udp",code="Access-Request"} "#;
        assert_eq!(line(&text, requests), Some(&*format!("{requests}3")));
        let tls =
            r#"sxs_radius_requests_total{client="nas1",transport="tls",code="Access-Request"} "#;
        assert_eq!(line(&text, tls), Some(&*format!("{tls}1")));
        let allow = r#"sxs_radius_decisions_total{client="nas1",reply="accept",reason="allow"} "#;
        assert_eq!(line(&text, allow), Some(&*format!("{allow}2")));
        let deny = r#"sxs_radius_decisions_total{client="nas1",reply="reject",reason="deny"} "#;
        assert_eq!(line(&text, deny), Some(&*format!("{deny}1")));
        // Equal words from another place in the program are the same series.
        let reason = String::from("allow").leak();
        metrics.decision(&nas, "accept", reason);
        let text = metrics.encode().unwrap();
        assert_eq!(line(&text, allow), Some(&*format!("{allow}3")));
        assert_eq!(text.matches("reason=\"allow\"").count(), 1, "{text}");
    }

    #[test]
    fn a_client_counted_by_two_servers_counts_in_each() {
        let (first, second) = (Metrics::new(), Metrics::new());
        let nas = ClientMetrics::new("nas1");
        first.request(&nas, "udp", "Access-Request");
        second.request(&nas, "udp", "Access-Request");
        second.request(&nas, "udp", "Access-Request");
        let key =
            r#"sxs_radius_requests_total{client="nas1",transport="udp",code="Access-Request"} "#;
        let first = first.encode().unwrap();
        let second = second.encode().unwrap();
        assert_eq!(line(&first, key), Some(&*format!("{key}1")));
        assert_eq!(line(&second, key), Some(&*format!("{key}2")));
    }

    #[test]
    fn sxs_calls_are_counted_per_server_method_and_verdict() {
        let metrics = Metrics::new();
        let (a, b) = ("http://a.example/SxSWS", "http://b.example/SxSWS");
        metrics.sxs_call("validateOtp", a, "accept", Duration::from_millis(250));
        metrics.sxs_call("validateOtp", a, "accept", Duration::from_millis(500));
        metrics.sxs_call("validateOtp", a, "reject", Duration::from_millis(250));
        metrics.sxs_call("sendSms", a, "accept", Duration::from_millis(3));
        // The URL as another string than the one counted first.
        let a_again = String::from(a);
        metrics.sxs_call("validateOtp", &a_again, "accept", Duration::ZERO);
        metrics.sxs_call("validateOtp", b, "unavailable", Duration::from_secs(2));
        let text = metrics.encode().unwrap();
        for (labels, n) in [
            (
                format!(r#"method="validateOtp",server="{a}",verdict="accept""#),
                3,
            ),
            (
                format!(r#"method="validateOtp",server="{a}",verdict="reject""#),
                1,
            ),
            (
                format!(r#"method="sendSms",server="{a}",verdict="accept""#),
                1,
            ),
            (
                format!(r#"method="validateOtp",server="{b}",verdict="unavailable""#),
                1,
            ),
        ] {
            let key = format!("sxs_calls_total{{{labels}}} ");
            assert_eq!(line(&text, &key), Some(&*format!("{key}{n}")), "{text}");
        }
        let count =
            format!(r#"sxs_call_duration_seconds_count{{method="validateOtp",server="{a}"}} "#);
        assert_eq!(line(&text, &count), Some(&*format!("{count}4")), "{text}");
        let sum = format!(r#"sxs_call_duration_seconds_sum{{method="validateOtp",server="{a}"}} "#);
        assert_eq!(line(&text, &sum), Some(&*format!("{sum}1.0")), "{text}");
        assert_eq!(metrics.servers.read().unwrap().len(), 2);
    }
}
