//! The server: receive → validate → dedup → handle → encode → send.
//!
//! Two transports feed the same steps: UDP datagrams (here) and RADIUS/TLS streams
//! ([`crate::tls`]). Each finds the client (UDP: by source address; TLS: by address and
//! certificate, once per connection) and hands a packet to `Server::process`, which
//! validates and dedups it without awaiting and handles each surviving request in its own
//! task, bounded by `max_in_flight` permits. The answer goes back through a [`ReplyTo`].
//! The configuration (clients, handler, TLS certificates) sits behind an `Arc` that SIGHUP
//! swaps; requests in flight keep the one they started with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::config::RadiusSettings;
use common::Secret;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::auth::{self, PreparedSecret, SharedSecret};
use crate::budget::{self, Budget};
use crate::clients::{Client, ClientTable};
use crate::dedup::{Action, DedupCache, DedupKey, SharedDedupCache};
use crate::handler::{AccessRequest, Handler, Outcome, Reply};
use crate::log_limit::{Admit, LogLimiter};
use crate::metrics::{Drop, Metrics};
use crate::packet::{attr, Code, Packet, ResponseCode, MAX_PACKET_LEN};
use crate::tls::TlsRuntime;

/// Everything a reload replaces.
#[derive(Debug)]
pub struct Runtime<H> {
    pub settings: RadiusSettings,
    pub clients: ClientTable,
    pub handler: Arc<H>,
    /// Certificates and clients of `[radius.tls]`, when configured.
    pub tls: Option<TlsRuntime>,
}

/// Where the answer to one packet goes.
#[derive(Debug)]
pub enum ReplyTo {
    /// Back out of the UDP socket it came in on.
    Udp {
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
    },
    /// Onto a TLS connection's writer, through a slot reserved when the packet was read (so
    /// what a connection buffers is bounded).
    Stream(mpsc::OwnedPermit<Vec<u8>>),
}

impl ReplyTo {
    fn transport(&self) -> &'static str {
        match self {
            ReplyTo::Udp { .. } => "udp",
            ReplyTo::Stream(_) => "tls",
        }
    }

    /// Sends without waiting (a cached or immediate answer).
    fn send_now(self, bytes: Vec<u8>) -> std::io::Result<()> {
        match self {
            ReplyTo::Udp { socket, peer } => socket.try_send_to(&bytes, peer).map(|_| ()),
            ReplyTo::Stream(slot) => {
                slot.send(bytes);
                Ok(())
            }
        }
    }

    async fn send(self, bytes: Vec<u8>) -> std::io::Result<()> {
        match self {
            ReplyTo::Udp { socket, peer } => socket.send_to(&bytes, peer).await.map(|_| ()),
            ReplyTo::Stream(slot) => {
                slot.send(bytes);
                Ok(())
            }
        }
    }
}

/// One packet from a known client, as a transport hands it to `Server::process`.
#[derive(Debug)]
pub struct Inbound<'a> {
    /// Our address it arrived on.
    pub local: SocketAddr,
    /// The peer's address and port (UDP) or the connection's (TLS): with `local`, the dedup
    /// key, so duplicates are detected per connection on TLS.
    pub peer: SocketAddr,
    pub client: &'a Arc<Client>,
    pub reply: ReplyTo,
}

/// Counters, for logs, tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub unknown_client: AtomicU64,
    pub malformed: AtomicU64,
    pub bad_authenticator: AtomicU64,
    pub duplicate_resent: AtomicU64,
    pub duplicate_dropped: AtomicU64,
    pub overload_dropped: AtomicU64,
    pub accepts: AtomicU64,
    pub rejects: AtomicU64,
    pub challenges: AtomicU64,
    pub status_server: AtomicU64,
    pub accounting: AtomicU64,
    /// Requests no reply could be encoded for (nothing sent, retransmissions ignored).
    pub unanswerable: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub received: u64,
    pub unknown_client: u64,
    pub malformed: u64,
    pub bad_authenticator: u64,
    pub duplicate_resent: u64,
    pub duplicate_dropped: u64,
    pub overload_dropped: u64,
    pub accepts: u64,
    pub rejects: u64,
    pub challenges: u64,
    pub status_server: u64,
    pub accounting: u64,
    pub unanswerable: u64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received: g(&self.received),
            unknown_client: g(&self.unknown_client),
            malformed: g(&self.malformed),
            bad_authenticator: g(&self.bad_authenticator),
            duplicate_resent: g(&self.duplicate_resent),
            duplicate_dropped: g(&self.duplicate_dropped),
            overload_dropped: g(&self.overload_dropped),
            accepts: g(&self.accepts),
            rejects: g(&self.rejects),
            challenges: g(&self.challenges),
            status_server: g(&self.status_server),
            accounting: g(&self.accounting),
            unanswerable: g(&self.unanswerable),
        }
    }
}

/// The server. Build with [`Server::new`], then [`Server::run`].
#[derive(Debug)]
pub struct Server<H> {
    runtime: RwLock<Arc<Runtime<H>>>,
    dedup: SharedDedupCache,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    stats: Stats,
    pub(crate) metrics: Arc<Metrics>,
    sockets: Vec<(Arc<UdpSocket>, SocketAddr)>,
    tls_listeners: Vec<(Arc<TcpListener>, SocketAddr)>,
    /// Unix second of the last "unknown client" log line (rate limit).
    unknown_logged_at: AtomicU64,
    /// Per client and reason, at most one warning per window (log_limit).
    log_limit: LogLimiter,
}

/// The next connection on `listener`, or `None` once `shutdown` turns true. Accept errors
/// (typically out of file descriptors) are logged and retried after a pause, so that
/// connections can end meanwhile.
pub(crate) async fn accept_until(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
    what: &'static str,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(error = %e, what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return None,
        }
    }
}

/// Binds one UDP socket per address. IPv6 sockets are IPv6-only, so `0.0.0.0:1812` and
/// `[::]:1812` can both be bound.
pub fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let socket = Socket::new(Domain::for_address(*addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        // A deep receive queue absorbs bursts; the kernel caps it at rmem_max.
        let _ = socket.set_recv_buffer_size(8 << 20);
        socket.set_nonblocking(true)?;
        socket
            .bind(&(*addr).into())
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        out.push(UdpSocket::from_std(socket.into())?);
    }
    Ok(out)
}

impl<H: Handler> Server<H> {
    /// A server over already bound UDP sockets and TLS listeners (see [`bind`] and
    /// [`crate::tls::bind`]), counting into `metrics`.
    pub fn new(
        runtime: Runtime<H>,
        sockets: Vec<UdpSocket>,
        tls_listeners: Vec<TcpListener>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Arc<Self>> {
        let max_in_flight = runtime.settings.max_in_flight;
        let dedup_ttl = runtime.settings.dedup_ttl;
        let mut socks = Vec::with_capacity(sockets.len());
        for s in sockets {
            let addr = s.local_addr()?;
            socks.push((Arc::new(s), addr));
        }
        let mut listeners = Vec::with_capacity(tls_listeners.len());
        for l in tls_listeners {
            let addr = l.local_addr()?;
            listeners.push((Arc::new(l), addr));
        }
        Ok(Arc::new(Self {
            dedup: SharedDedupCache::new(DedupCache::new(
                dedup_ttl,
                // An in-flight entry outlives the slowest possible answer.
                Duration::from_secs(60),
                max_in_flight.saturating_mul(4).max(1024),
            )),
            runtime: RwLock::new(Arc::new(runtime)),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            stats: Stats::default(),
            metrics,
            sockets: socks,
            tls_listeners: listeners,
            unknown_logged_at: AtomicU64::new(0),
            log_limit: LogLimiter::default(),
        }))
    }

    /// The UDP addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(_, a)| *a).collect()
    }

    /// The TLS addresses actually bound.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls_listeners.iter().map(|(_, a)| *a).collect()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Sets the gauges that are read rather than counted; run before a scrape.
    pub fn refresh_metrics(&self) {
        self.metrics.set_dedup_entries(self.dedup.len());
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Runtime<H>> {
        self.runtime()
    }

    pub(crate) fn runtime(&self) -> Arc<Runtime<H>> {
        match self.runtime.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swaps in a new configuration; requests in flight finish with the old one, and TLS
    /// connections already open keep their certificates. Listen addresses and
    /// `max_in_flight` need a restart to change.
    pub fn reload(&self, new: Runtime<H>) {
        let old = self.runtime();
        if old.settings.listen != new.settings.listen {
            tracing::warn!("radius.listen changed: restart sxs-radiusd for it to take effect");
        }
        let tls_listen = |rt: &Runtime<H>| rt.settings.tls.as_ref().map(|t| t.listen.clone());
        if tls_listen(&old) != tls_listen(&new) {
            tracing::warn!("radius.tls.listen changed: restart sxs-radiusd for it to take effect");
        }
        if new.settings.max_in_flight != self.max_in_flight {
            tracing::warn!(
                "radius.max_in_flight changed: restart sxs-radiusd for it to take effect"
            );
        }
        let mut guard = match self.runtime.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = Arc::new(new);
    }

    /// Serves until `shutdown` turns true, then stops receiving and waits up to `drain` for
    /// the requests in flight to be answered.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        let mut loops = tokio::task::JoinSet::new();
        for (socket, local) in &self.sockets {
            loops.spawn(
                self.clone()
                    .recv_loop(socket.clone(), *local, shutdown.clone()),
            );
        }
        // One cap for all TLS listeners, fixed at start like the listeners themselves.
        let max_connections = self
            .runtime()
            .settings
            .tls
            .as_ref()
            .map_or(1, |t| t.max_connections);
        let connections = Arc::new(Semaphore::new(max_connections));
        for (listener, local) in &self.tls_listeners {
            loops.spawn(self.clone().accept_loop(
                listener.clone(),
                *local,
                connections.clone(),
                shutdown.clone(),
            ));
        }
        let purge = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    me.dedup.purge(Instant::now());
                    for (client, reason, n) in me.log_limit.flush(Instant::now()) {
                        log_suppressed(&client, reason, n);
                    }
                }
            })
        };
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        while loops.join_next().await.is_some() {}
        purge.abort();
        let all = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        match tokio::time::timeout(drain, self.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("all requests in flight answered"),
            Err(_) => tracing::warn!(
                in_flight = self.max_in_flight - self.permits.available_permits(),
                "drain time over; requests still in flight are abandoned"
            ),
        }
    }

    async fn recv_loop(
        self: Arc<Self>,
        socket: Arc<UdpSocket>,
        local: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // One byte more than the largest packet, so an oversized datagram is seen as such.
        let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
        loop {
            let (n, peer) = tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, %local, "receive failed");
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            Stats::bump(&self.stats.received);
            let data = buf.get(..n.min(MAX_PACKET_LEN)).unwrap_or(&[]);
            let rt = self.runtime();
            // Receive: known clients only.
            let Some(client) = rt.clients.lookup(peer.ip()) else {
                self.drop_unknown_client(peer);
                continue;
            };
            let inbound = Inbound {
                local,
                peer,
                client,
                reply: ReplyTo::Udp {
                    socket: socket.clone(),
                    peer,
                },
            };
            self.process(&rt, inbound, data);
        }
    }

    /// A packet read from a TLS stream (UDP counts its datagrams in the receive loop).
    pub(crate) fn count_received(&self) {
        Stats::bump(&self.stats.received);
    }

    /// A packet from an address (or certificate) that is no configured client.
    pub(crate) fn drop_unknown_client(&self, peer: SocketAddr) {
        Stats::bump(&self.stats.unknown_client);
        self.metrics.dropped(Drop::UnknownClient);
        self.log_unknown_client(peer);
    }

    /// Counts a drop in the stats and the metrics.
    fn dropped(&self, counter: &AtomicU64, why: Drop) {
        Stats::bump(counter);
        self.metrics.dropped(why);
    }

    /// Validate and dedup without awaiting; spawn the rest. Every transport ends here.
    pub(crate) fn process(
        self: &Arc<Self>,
        rt: &Arc<Runtime<H>>,
        inbound: Inbound<'_>,
        data: &[u8],
    ) {
        let Inbound {
            local,
            peer,
            client,
            reply,
        } = inbound;
        let transport = reply.transport();
        // Validate: the packet, then its authenticator.
        let packet = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.dropped(&self.stats.malformed, Drop::Malformed);
                if self.limited(&client.config.name, "malformed") {
                    tracing::warn!(client = client.config.name, %peer, transport, error = %e, "malformed packet dropped");
                }
                return;
            }
        };
        self.metrics
            .request(&client.metrics, transport, packet.code().name());
        let secret = &client.secret;
        if packet.code() == Code::AccountingRequest {
            self.answer_accounting(rt, reply, peer, &packet, client);
            return;
        }
        if let Err(e) = auth::check_message_authenticator(
            &packet,
            secret,
            client.config.require_message_authenticator,
        ) {
            self.dropped(&self.stats.bad_authenticator, Drop::BadAuthenticator);
            if !self.limited(&client.config.name, "bad-authenticator") {
                // Rate-limited: this client's drops were logged a moment ago.
            } else if e == auth::AuthError::MissingMessageAuthenticator {
                tracing::warn!(client = client.config.name, %peer, id = packet.identifier(),
                    "packet dropped: it has no Message-Authenticator and this client requires one \
                     (pam_radius_auth 2.0, radsecproxy and openvpn-auth-radius send none: see \
                     docs/radiusd.md, or set require_message_authenticator = false for this client)");
            } else {
                tracing::warn!(client = client.config.name, %peer, id = packet.identifier(), error = %e,
                    "packet dropped: Message-Authenticator wrong (the shared secrets differ, or the packet was altered)");
            }
            return;
        }
        if client.config.limit_proxy_state
            && !packet.has_message_authenticator()
            && packet.proxy_states().next().is_some()
        {
            self.dropped(&self.stats.bad_authenticator, Drop::BadAuthenticator);
            if self.limited(&client.config.name, "proxy-state-without-ma") {
                tracing::warn!(client = client.config.name, %peer, "packet dropped: Proxy-State without Message-Authenticator (limit_proxy_state)");
            }
            return;
        }
        if packet.code() == Code::StatusServer {
            Stats::bump(&self.stats.status_server);
            if rt.handler.is_ready() {
                let answer = crate::packet::encode_response_to(
                    &packet,
                    ResponseCode::AccessAccept,
                    &[(attr::REPLY_MESSAGE, b"sxs-radiusd ok".as_slice())],
                    secret,
                );
                if let Ok(bytes) = answer {
                    let _ = reply.send_now(bytes);
                }
            } else {
                self.metrics.dropped(Drop::NotReady);
                if self.limited(&client.config.name, "status-server-not-ready") {
                    tracing::warn!(
                        client = client.config.name,
                        "Status-Server not answered: no SxS server is reachable"
                    );
                }
            }
            return;
        }
        if packet.code() != Code::AccessRequest {
            self.dropped(&self.stats.malformed, Drop::Malformed);
            return;
        }
        // Dedup (RFC 5080 §2.2.2).
        let key = DedupKey {
            local,
            client: peer,
            identifier: packet.identifier(),
        };
        let authenticator = *packet.authenticator();
        match self.dedup.check(key, &authenticator, Instant::now()) {
            Action::New => {}
            Action::DropInFlight => {
                self.dropped(&self.stats.duplicate_dropped, Drop::Duplicate);
                tracing::debug!(client = client.config.name, %peer, id = packet.identifier(), "retransmission of a request in flight dropped");
                return;
            }
            Action::Resend(bytes) if bytes.is_empty() => {
                // Processed, and no reply could be encoded: ignoring it again is the answer.
                self.dropped(&self.stats.duplicate_dropped, Drop::Duplicate);
                return;
            }
            Action::Resend(bytes) => {
                Stats::bump(&self.stats.duplicate_resent);
                self.metrics.resent();
                if let Err(e) = reply.send_now(bytes) {
                    tracing::warn!(%peer, error = %e, "cannot resend the cached answer");
                }
                return;
            }
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.dedup.abandon(key, &authenticator);
            self.dropped(&self.stats.overload_dropped, Drop::Overload);
            if self.limited(&client.config.name, "overloaded") {
                tracing::warn!(
                    client = client.config.name,
                    "overloaded: max_in_flight reached, request dropped"
                );
            }
            return;
        };
        // Budget: every reply this request could get must fit BEFORE SxS is asked; an answer
        // that turns out unencodable afterwards would have spent the OTP for nothing.
        match budget::check(&packet, &rt.settings) {
            Budget::Fits => {}
            Budget::BareRejectOnly { needed } => {
                if self.limited(&client.config.name, "reply-too-large") {
                    tracing::warn!(client = client.config.name, %peer, id = packet.identifier(), needed,
                        "the reply would exceed 4096 bytes (Proxy-State too large for reject_message or challenge_prompt): answering Access-Reject without asking SxS");
                }
                let user = packet
                    .user_name()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let outcome = Outcome {
                    reply: Reply::Reject,
                    user: user.into_owned(),
                    decision: "reply-too-large",
                    method: common::Method::Otp,
                    verdict: None,
                    sxs_latency: None,
                    state_rejected: None,
                    attributes: Vec::new(),
                };
                let job = Answer::new(self, rt.clone(), reply, peer, key, packet, client);
                tokio::spawn(job.send(outcome, permit));
                return;
            }
            Budget::Nothing { needed } => {
                if self.limited(&client.config.name, "no-reply-fits") {
                    tracing::warn!(client = client.config.name, %peer, id = packet.identifier(), needed,
                        "no reply can fit in 4096 bytes (Proxy-State too large): request not answered, retransmissions ignored");
                }
                self.dedup
                    .complete(key, &authenticator, Vec::new(), Instant::now());
                let user = packet
                    .user_name()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let outcome = Outcome {
                    reply: Reply::Reject,
                    user: user.into_owned(),
                    decision: "reply-too-large",
                    method: common::Method::Otp,
                    verdict: None,
                    sxs_latency: None,
                    state_rejected: None,
                    attributes: Vec::new(),
                };
                log_decision(&client.config.name, Sent::Nothing, &outcome, Duration::ZERO);
                self.metrics
                    .decision(&client.metrics, Sent::Nothing.as_str(), "reply-too-large");
                drop(reply);
                drop(permit);
                return;
            }
        }
        let password = match packet.user_password() {
            Some(enc) => match auth::decode_user_password(enc, &authenticator, secret.bytes()) {
                // Moved, not copied: no second copy of the OTP to wipe.
                Ok(mut p) => Some(Secret::new(std::mem::take(&mut *p))),
                Err(_) => None,
            },
            None => None,
        };
        let request = AccessRequest {
            client: client.config.name.clone(),
            methods: client.config.methods,
            user: packet
                .user_name()
                .and_then(|u| std::str::from_utf8(u).ok())
                .map(str::to_string),
            password,
            state: packet.state().map(<[u8]>::to_vec),
            reply_room: crate::packet::MAX_PACKET_LEN
                .saturating_sub(crate::packet::response_overhead(&packet)),
        };
        let handler = rt.handler.clone();
        let job = Answer::new(self, rt.clone(), reply, peer, key, packet, client);
        // Boxed: the task then holds a pointer, not the ~1.7 KB state of asking SxS, which
        // spawning and completing a task would otherwise copy several times.
        tokio::spawn(Box::pin(async move {
            let outcome = handler.handle(request).await;
            // Boxed: sending's state would otherwise be part of the task while it waits for
            // SxS, in every request in flight.
            Box::pin(job.send(outcome, permit)).await;
        }));
    }

    /// `radius.accounting`: an authentic Accounting-Request gets an Accounting-Response and
    /// nothing is kept. Otherwise accounting is dropped.
    fn answer_accounting(
        &self,
        rt: &Runtime<H>,
        reply: ReplyTo,
        peer: SocketAddr,
        packet: &Packet,
        client: &Client,
    ) {
        Stats::bump(&self.stats.accounting);
        if !rt.settings.accounting {
            self.metrics.dropped(Drop::Accounting);
            tracing::debug!(client = client.config.name, %peer, "Accounting-Request dropped (radius.accounting is off)");
            return;
        }
        let secret = &client.secret;
        if let Err(e) = auth::verify_accounting_request(packet, secret.bytes()) {
            self.dropped(&self.stats.bad_authenticator, Drop::BadAuthenticator);
            if self.limited(&client.config.name, "bad-accounting") {
                tracing::warn!(client = client.config.name, %peer, id = packet.identifier(), error = %e, "Accounting-Request dropped");
            }
            return;
        }
        match crate::packet::encode_response_to(
            packet,
            ResponseCode::AccountingResponse,
            &[],
            secret,
        ) {
            Ok(bytes) => {
                let _ = reply.send_now(bytes);
                let status = packet
                    .first(attr::ACCT_STATUS_TYPE)
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_be_bytes);
                let status = match status {
                    Some(1) => "Start",
                    Some(2) => "Stop",
                    Some(3) => "Interim-Update",
                    Some(7) => "Accounting-On",
                    Some(8) => "Accounting-Off",
                    _ => "other",
                };
                let user = packet
                    .user_name()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let user: &str = &user;
                tracing::info!(
                    client = client.config.name,
                    user,
                    status,
                    "accounting answered (nothing kept)"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot encode an Accounting-Response"),
        }
    }

    /// Encode: the reply with Message-Authenticator first and Proxy-State copied back. A reply
    /// that cannot be encoded (the budget check makes it unlikely: a handler prompt longer
    /// than configured) becomes a bare Access-Reject, fail closed; if even that cannot be
    /// encoded, nothing is sent. Returns what is sent and its bytes (empty: nothing).
    fn encode(
        &self,
        rt: &Runtime<H>,
        packet: &Packet,
        outcome: &Outcome,
        secret: &PreparedSecret,
    ) -> (Sent, Vec<u8>) {
        // An empty Reply-Message cannot be sent (RFC 8044 §3.5); leave it out instead.
        let text =
            |t: &str| (!t.is_empty()).then_some((attr::REPLY_MESSAGE, t.as_bytes().to_vec()));
        let (sent, code, attrs): (Sent, ResponseCode, Vec<(u8, Vec<u8>)>) = match &outcome.reply {
            Reply::Accept => (
                Sent::Accept,
                ResponseCode::AccessAccept,
                outcome.attributes.clone(),
            ),
            Reply::Reject => (
                Sent::Reject,
                ResponseCode::AccessReject,
                text(&rt.settings.reject_message).into_iter().collect(),
            ),
            Reply::Challenge { state, message } => (
                Sent::Challenge,
                ResponseCode::AccessChallenge,
                text(message)
                    .into_iter()
                    .chain([(attr::STATE, state.clone())])
                    .collect(),
            ),
        };
        let attrs: Vec<(u8, &[u8])> = attrs.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let result = match crate::packet::encode_response_to(packet, code, &attrs, secret) {
            Ok(bytes) => Ok((sent, bytes)),
            Err(e) => {
                tracing::warn!(error = %e, reply = sent.as_str(), "cannot encode the reply; answering a bare Access-Reject instead");
                crate::packet::encode_response_to(packet, ResponseCode::AccessReject, &[], secret)
                    .map(|b| (Sent::Reject, b))
            }
        };
        let (sent, bytes) = match result {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode even a bare Access-Reject; no answer sent, retransmissions ignored");
                (Sent::Nothing, Vec::new())
            }
        };
        match sent {
            Sent::Accept => Stats::bump(&self.stats.accepts),
            Sent::Reject => Stats::bump(&self.stats.rejects),
            Sent::Challenge => Stats::bump(&self.stats.challenges),
            Sent::Nothing => Stats::bump(&self.stats.unanswerable),
        }
        (sent, bytes)
    }

    /// Whether a per-packet warning of `reason` from `client` is to be logged now (at most one
    /// per client, reason and 10 s; what was swallowed is reported as a count).
    fn limited(&self, client: &str, reason: &'static str) -> bool {
        match self.log_limit.admit(client, reason, Instant::now()) {
            Admit::Suppress => false,
            Admit::Log { suppressed } => {
                log_suppressed(client, reason, suppressed);
                true
            }
        }
    }

    fn log_unknown_client(&self, peer: SocketAddr) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.unknown_logged_at.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .unknown_logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%peer, dropped_so_far = self.stats.unknown_client.load(Ordering::Relaxed),
                "packet from an address that is not a configured client dropped (logged at most every 10 s)");
        }
    }
}

/// The encode → send step of one request, with what it needs from the receive step.
struct Answer<H> {
    server: Arc<Server<H>>,
    rt: Arc<Runtime<H>>,
    reply: ReplyTo,
    peer: SocketAddr,
    key: DedupKey,
    packet: Packet,
    client: Arc<Client>,
    received: Instant,
    /// Counts the request in `sxs_radius_in_flight` until it is answered.
    in_flight: crate::metrics::GaugeGuard,
}

impl<H: Handler> Answer<H> {
    fn new(
        server: &Arc<Server<H>>,
        rt: Arc<Runtime<H>>,
        reply: ReplyTo,
        peer: SocketAddr,
        key: DedupKey,
        packet: Packet,
        client: &Arc<Client>,
    ) -> Self {
        Self {
            in_flight: server.metrics.in_flight(),
            server: server.clone(),
            rt,
            reply,
            peer,
            key,
            packet,
            client: client.clone(),
            received: Instant::now(),
        }
    }

    /// Encodes, waits out the reject delay, caches the answer (or the absence of one) for
    /// retransmissions, sends it, and logs the reply actually sent.
    async fn send(self, outcome: Outcome, permit: tokio::sync::OwnedSemaphorePermit) {
        let (sent, bytes) =
            self.server
                .encode(&self.rt, &self.packet, &outcome, &self.client.secret);
        if sent == Sent::Reject {
            tokio::time::sleep_until((self.received + self.rt.settings.reject_delay).into()).await;
        }
        // Cached before it is sent: a retransmission that crosses the answer on the wire must
        // find it, not an entry still "in flight". An empty answer is remembered too
        // (retransmissions are then ignored): the request was processed, and processing it
        // again could spend the OTP a second time.
        self.server.dedup.complete(
            self.key,
            self.packet.authenticator(),
            bytes.clone(),
            Instant::now(),
        );
        if !bytes.is_empty() {
            if let Err(e) = self.reply.send(bytes).await {
                tracing::warn!(client = self.client.config.name, peer = %self.peer, error = %e, "send failed");
            }
        }
        let metrics = &self.server.metrics;
        let client = &self.client.config.name;
        metrics.decision(&self.client.metrics, sent.as_str(), outcome.decision);
        if let Some(reason) = outcome.state_rejected {
            metrics.state_reject(reason);
        }
        drop(self.in_flight);
        log_decision(client, sent, &outcome, self.received.elapsed());
        drop(permit);
    }
}

/// The count of warnings [`LogLimiter`] swallowed, if any.
fn log_suppressed(client: &str, reason: &str, suppressed: u64) {
    if suppressed > 0 {
        tracing::warn!(
            client,
            reason,
            suppressed,
            "{suppressed} more \"{reason}\" warnings from this client suppressed (logged at most every 10 s per client and reason)"
        );
    }
}

/// The reply actually sent, for the decision log and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Accept,
    Reject,
    Challenge,
    /// No reply could be encoded; nothing was sent.
    Nothing,
}

impl Sent {
    fn as_str(self) -> &'static str {
        match self {
            Sent::Accept => "accept",
            Sent::Reject => "reject",
            Sent::Challenge => "challenge",
            Sent::Nothing => "none",
        }
    }
}

/// One line per decision. SxS's exception message is NOT logged, only its code: an SxS (or a
/// proxy in front of it) whose error text quotes the request would put the OTP in the log.
fn log_decision(client: &str, sent: Sent, o: &Outcome, total: Duration) {
    let (user, decision, method) = (o.user.as_str(), o.decision, o.method.as_str());
    let (verdict, sxs_latency) = (o.verdict.as_ref(), o.sxs_latency);
    let (verdict_kind, code) = match verdict {
        Some(v) => (v.kind(), v.code().unwrap_or("")),
        None => ("", ""),
    };
    // Our own description of a transport failure (server, HTTP status, timeout), never text
    // received from SxS.
    let cause = match verdict {
        Some(common::Verdict::Unavailable { cause }) => cause.as_str(),
        _ => "",
    };
    tracing::info!(
        client,
        user,
        reply = sent.as_str(),
        decision,
        method,
        verdict = verdict_kind,
        code,
        cause,
        sxs_ms = sxs_latency.map(|d| d.as_millis() as u64),
        total_ms = total.as_millis() as u64,
        "radius decision"
    );
}
