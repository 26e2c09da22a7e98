//! The UDP server: receive → validate → dedup → handle → encode → send.
//!
//! Receiving and validation run in the socket's loop (cheap, no await); each request that
//! survives them is handled in its own task, bounded by `max_in_flight` permits. The
//! configuration (clients, handler) sits behind an `Arc` that SIGHUP swaps; requests in flight
//! keep the one they started with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::config::RadiusSettings;
use common::Secret;
use tokio::net::UdpSocket;
use tokio::sync::{watch, Semaphore};

use crate::auth;
use crate::clients::ClientTable;
use crate::dedup::{Action, DedupCache, DedupKey, SharedDedupCache};
use crate::handler::{AccessRequest, Handler, Outcome, Reply};
use crate::packet::{attr, Code, Packet, ResponseCode, MAX_PACKET_LEN};

/// Everything a reload replaces.
#[derive(Debug)]
pub struct Runtime<H> {
    pub settings: RadiusSettings,
    pub clients: ClientTable,
    pub handler: Arc<H>,
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
    sockets: Vec<(Arc<UdpSocket>, SocketAddr)>,
    /// Unix second of the last "unknown client" log line (rate limit).
    unknown_logged_at: AtomicU64,
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
    /// A server over already bound sockets.
    pub fn new(runtime: Runtime<H>, sockets: Vec<UdpSocket>) -> std::io::Result<Arc<Self>> {
        let max_in_flight = runtime.settings.max_in_flight;
        let dedup_ttl = runtime.settings.dedup_ttl;
        let mut socks = Vec::with_capacity(sockets.len());
        for s in sockets {
            let addr = s.local_addr()?;
            socks.push((Arc::new(s), addr));
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
            sockets: socks,
            unknown_logged_at: AtomicU64::new(0),
        }))
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(_, a)| *a).collect()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Runtime<H>> {
        self.runtime()
    }

    fn runtime(&self) -> Arc<Runtime<H>> {
        match self.runtime.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Swaps in a new configuration; requests in flight finish with the old one. Listen
    /// addresses and `max_in_flight` need a restart to change.
    pub fn reload(&self, new: Runtime<H>) {
        let old = self.runtime();
        if old.settings.listen != new.settings.listen {
            tracing::warn!("radius.listen changed: restart sxs-radiusd for it to take effect");
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
        let purge = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    me.dedup.purge(Instant::now());
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
            self.process(&socket, local, peer, data);
        }
    }

    /// Validate and dedup in the receive loop; spawn the rest.
    fn process(
        self: &Arc<Self>,
        socket: &Arc<UdpSocket>,
        local: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
    ) {
        let rt = self.runtime();
        // Receive: known clients only.
        let Some(client) = rt.clients.lookup(peer.ip()) else {
            Stats::bump(&self.stats.unknown_client);
            self.log_unknown_client(peer);
            return;
        };
        // Validate: the packet, then its authenticator.
        let packet = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => {
                Stats::bump(&self.stats.malformed);
                tracing::warn!(client = client.name, %peer, error = %e, "malformed packet dropped");
                return;
            }
        };
        let secret = client.secret.expose();
        if packet.code() == Code::AccountingRequest {
            self.answer_accounting(&rt, socket, peer, &packet, client);
            return;
        }
        if let Err(e) =
            auth::check_message_authenticator(&packet, secret, client.require_message_authenticator)
        {
            Stats::bump(&self.stats.bad_authenticator);
            tracing::warn!(client = client.name, %peer, id = packet.identifier(), error = %e,
                "packet dropped: Message-Authenticator missing or wrong (wrong shared secret?)");
            return;
        }
        if client.limit_proxy_state
            && !packet.has_message_authenticator()
            && packet.proxy_states().next().is_some()
        {
            Stats::bump(&self.stats.bad_authenticator);
            tracing::warn!(client = client.name, %peer, "packet dropped: Proxy-State without Message-Authenticator (limit_proxy_state)");
            return;
        }
        if packet.code() == Code::StatusServer {
            Stats::bump(&self.stats.status_server);
            if rt.handler.is_ready() {
                let reply = crate::packet::encode_response_to(
                    &packet,
                    ResponseCode::AccessAccept,
                    &[(attr::REPLY_MESSAGE, b"sxs-radiusd ok".as_slice())],
                    secret,
                );
                if let Ok(bytes) = reply {
                    let _ = socket.try_send_to(&bytes, peer);
                }
            } else {
                tracing::warn!(
                    client = client.name,
                    "Status-Server not answered: no SxS server is reachable"
                );
            }
            return;
        }
        if packet.code() != Code::AccessRequest {
            Stats::bump(&self.stats.malformed);
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
                Stats::bump(&self.stats.duplicate_dropped);
                tracing::debug!(client = client.name, %peer, id = packet.identifier(), "retransmission of a request in flight dropped");
                return;
            }
            Action::Resend(bytes) => {
                Stats::bump(&self.stats.duplicate_resent);
                if let Err(e) = socket.try_send_to(&bytes, peer) {
                    tracing::warn!(%peer, error = %e, "cannot resend the cached answer");
                }
                return;
            }
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.dedup.abandon(key, &authenticator);
            Stats::bump(&self.stats.overload_dropped);
            tracing::warn!(
                client = client.name,
                "overloaded: max_in_flight reached, request dropped"
            );
            return;
        };
        let password = match packet.user_password() {
            Some(enc) => match auth::decode_user_password(enc, &authenticator, secret) {
                Ok(p) => Some(Secret::new(p.to_vec())),
                Err(_) => None,
            },
            None => None,
        };
        let request = AccessRequest {
            client: client.name.clone(),
            user: packet
                .user_name()
                .and_then(|u| std::str::from_utf8(u).ok())
                .map(str::to_string),
            password,
            state: packet.state().map(<[u8]>::to_vec),
        };
        let client_name = client.name.clone();
        let secret = client.secret.clone();
        let me = self.clone();
        let socket = socket.clone();
        let received = Instant::now();
        tokio::spawn(async move {
            let outcome = rt.handler.handle(request).await;
            let bytes = me.encode(&rt, &packet, &outcome, secret.expose());
            if outcome.reply == Reply::Reject {
                tokio::time::sleep_until((received + rt.settings.reject_delay).into()).await;
            }
            match bytes {
                Some(bytes) => {
                    // Cached before it is sent: a retransmission that crosses the answer on
                    // the wire must find it, not an entry still "in flight".
                    me.dedup
                        .complete(key, &authenticator, bytes.clone(), Instant::now());
                    if let Err(e) = socket.send_to(&bytes, peer).await {
                        tracing::warn!(client = client_name, %peer, error = %e, "send failed");
                    }
                }
                None => {
                    me.dedup.abandon(key, &authenticator);
                }
            }
            log_decision(&client_name, &outcome, received.elapsed());
            drop(permit);
        });
    }

    /// `radius.accounting`: an authentic Accounting-Request gets an Accounting-Response and
    /// nothing is kept. Otherwise accounting is dropped.
    fn answer_accounting(
        &self,
        rt: &Runtime<H>,
        socket: &UdpSocket,
        peer: SocketAddr,
        packet: &Packet,
        client: &common::config::RadiusClient,
    ) {
        Stats::bump(&self.stats.accounting);
        if !rt.settings.accounting {
            tracing::debug!(client = client.name, %peer, "Accounting-Request dropped (radius.accounting is off)");
            return;
        }
        let secret = client.secret.expose();
        if let Err(e) = auth::verify_accounting_request(packet, secret) {
            Stats::bump(&self.stats.bad_authenticator);
            tracing::warn!(client = client.name, %peer, id = packet.identifier(), error = %e, "Accounting-Request dropped");
            return;
        }
        match crate::packet::encode_response_to(
            packet,
            ResponseCode::AccountingResponse,
            &[],
            secret,
        ) {
            Ok(bytes) => {
                let _ = socket.try_send_to(&bytes, peer);
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
                    client = client.name,
                    user,
                    status,
                    "accounting answered (nothing kept)"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot encode an Accounting-Response"),
        }
    }

    /// Encode: the reply with Message-Authenticator first and Proxy-State copied back.
    fn encode(
        &self,
        rt: &Runtime<H>,
        packet: &Packet,
        outcome: &Outcome,
        secret: &[u8],
    ) -> Option<Vec<u8>> {
        let result = match &outcome.reply {
            Reply::Accept => {
                Stats::bump(&self.stats.accepts);
                crate::packet::encode_response_to(packet, ResponseCode::AccessAccept, &[], secret)
            }
            Reply::Reject => {
                Stats::bump(&self.stats.rejects);
                crate::packet::encode_response_to(
                    packet,
                    ResponseCode::AccessReject,
                    &[(attr::REPLY_MESSAGE, rt.settings.reject_message.as_bytes())],
                    secret,
                )
            }
            Reply::Challenge { state, message } => {
                Stats::bump(&self.stats.challenges);
                crate::packet::encode_response_to(
                    packet,
                    ResponseCode::AccessChallenge,
                    &[
                        (attr::REPLY_MESSAGE, message.as_bytes()),
                        (attr::STATE, state.as_slice()),
                    ],
                    secret,
                )
            }
        };
        match result {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the reply; request dropped");
                None
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

fn log_decision(client: &str, o: &Outcome, total: Duration) {
    let reply = match o.reply {
        Reply::Accept => "accept",
        Reply::Reject => "reject",
        Reply::Challenge { .. } => "challenge",
    };
    let (verdict, code) = match &o.verdict {
        Some(v) => (v.kind(), v.code().unwrap_or("")),
        None => ("", ""),
    };
    let cause = match &o.verdict {
        Some(common::Verdict::Unavailable { cause }) => cause.as_str(),
        Some(common::Verdict::Reject { message, .. }) => message.as_str(),
        _ => "",
    };
    tracing::info!(
        client,
        user = o.user,
        reply,
        decision = o.decision,
        verdict,
        code,
        cause,
        sxs_ms = o.sxs_latency.map(|d| d.as_millis() as u64),
        total_ms = total.as_millis() as u64,
        "radius decision"
    );
}
