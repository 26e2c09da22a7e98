//! RADIUS over TLS (RadSec, RFC 6614): the second transport into [`Server::process`].
//!
//! Per connection: the source address must belong to a `[[radius.tls.clients]]` network
//! before any handshake; the handshake (TLS 1.2 or 1.3, rustls with the ring provider) must
//! finish within `handshake_timeout` and, by default, present a client certificate from
//! `ca_file` that is valid now; the certificate's DNS names or subject CN must then match the
//! client's `certificate` pattern. After that the stream carries RADIUS packets framed by
//! their own Length field. Each packet goes through the same validate → dedup → handle →
//! encode steps as a UDP datagram; answers go back in whatever order they are ready.
//!
//! What a peer can hold: one of `max_connections`; per connection at most
//! `max_buffered_bytes / 4096` packets between read and written (reading stops while they are
//! all taken); a connection without a packet for `idle_timeout` is closed, and so is one that
//! takes longer than `read_timeout` to deliver a packet it started (one byte a second) or
//! `write_timeout` to take an answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::config::{RadiusTlsSettings, TlsClient};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::clients::Client;
use crate::handler::Handler;
use crate::metrics::Drop;
use crate::packet::MAX_PACKET_LEN;
use crate::server::{Inbound, ReplyTo, Server};

/// The RADIUS header: Code, Identifier, Length (2 bytes).
const HEADER_LEN: usize = 4;
/// The smallest RADIUS packet (RFC 2865 §3).
const MIN_PACKET_LEN: usize = 20;

/// What `[radius.tls]` becomes at (re)load: the certificates read and the client table.
/// Rebuilt on SIGHUP, so new certificates apply to the next connection.
pub struct TlsRuntime {
    acceptor: TlsAcceptor,
    /// Sorted by prefix length, longest first; each with its [`Client`] for the server.
    clients: Vec<(TlsClient, Arc<Client>)>,
    settings: RadiusTlsSettings,
}

impl std::fmt::Debug for TlsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRuntime")
            .field("cert_file", &self.settings.cert_file)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl TlsRuntime {
    /// Reads the certificate, key and CA files. Errors name the key and the file.
    pub fn new(settings: &RadiusTlsSettings) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&settings.cert_file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!("radius.tls.cert_file {}: {e}", settings.cert_file.display())
                })?;
        if certs.is_empty() {
            return Err(format!(
                "radius.tls.cert_file {}: no PEM certificate in the file",
                settings.cert_file.display()
            ));
        }
        // The error says what is wrong with the file, never what is in it.
        let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| {
            format!(
                "radius.tls.key_file {}: no usable PEM private key ({})",
                settings.key_file.display(),
                key_error_kind(&e)
            )
        })?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("radius.tls: {e}"))?;
        let builder = match &settings.ca_file {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("radius.tls.ca_file {}: {e}", ca.display()))?;
                for c in cas {
                    roots
                        .add(c)
                        .map_err(|e| format!("radius.tls.ca_file {}: {e}", ca.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "radius.tls.ca_file {}: no PEM certificate in the file",
                        ca.display()
                    ));
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if settings.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| format!("radius.tls.ca_file {}: {e}", ca.display()))?,
                )
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            format!(
                "radius.tls.cert_file {} / key_file {}: {e}",
                settings.cert_file.display(),
                settings.key_file.display()
            )
        })?;
        let mut clients: Vec<(TlsClient, Arc<Client>)> = settings
            .clients
            .iter()
            .map(|c| (c.clone(), Client::new(c.client.clone())))
            .collect();
        clients.sort_by_key(|(c, _)| std::cmp::Reverse(c.client.network.prefix_len()));
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            clients,
            settings: settings.clone(),
        })
    }

    fn address_known(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.clients
            .iter()
            .any(|(c, _)| c.client.network.contains(&ip))
    }

    /// The client for this address and these certificate names: the most specific network
    /// whose pattern matches.
    fn find(&self, ip: IpAddr, names: &[String]) -> Option<&Arc<Client>> {
        let ip = ip.to_canonical();
        self.clients
            .iter()
            .filter(|(c, _)| c.client.network.contains(&ip))
            .find(|(c, _)| match &c.certificate {
                None => true,
                Some(pattern) => names.iter().any(|n| name_matches(pattern, n)),
            })
            .map(|(_, client)| client)
    }
}

fn key_error_kind(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::NoItemsFound => "no key found",
        E::Io(_) => "cannot read the file",
        _ => "malformed PEM",
    }
}

/// `*` matches any name; `*.example.org` one more label in front of `example.org`;
/// anything else the name itself, ignoring case.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .strip_suffix(suffix)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => name == pattern,
    }
}

/// The DNS names (subjectAltName) and the subject CNs of a DER certificate.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            let s = s.to_ascii_lowercase();
            if !names.contains(&s) {
                names.push(s);
            }
        }
    }
    names
}

/// Binds one TCP listener per address (IPv6 ones IPv6-only, as for UDP).
pub fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let socket = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&(*addr).into()).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (radius.tls.listen): {e}"),
            )
        })?;
        socket.listen(1024)?;
        out.push(TcpListener::from_std(socket.into())?);
    }
    Ok(out)
}

/// Why a handshake failed, as a metrics label.
fn handshake_failure(e: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "expired",
        Some(Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => "not_yet_valid",
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => "unknown_ca",
        Some(Error::InvalidCertificate(_)) => "bad_certificate",
        Some(Error::NoCertificatesPresented) => "no_certificate",
        Some(_) => "protocol",
        None => "io",
    }
}

impl<H: Handler> Server<H> {
    /// Accepts connections on one listener until `shutdown`; each runs in its own task.
    pub(crate) async fn accept_loop(
        self: Arc<Self>,
        listener: Arc<TcpListener>,
        local: SocketAddr,
        connections: Arc<Semaphore>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let Some((stream, peer)) =
                crate::server::accept_until(&listener, &mut shutdown, "RADIUS/TLS").await
            else {
                return;
            };
            let Ok(slot) = connections.clone().try_acquire_owned() else {
                self.metrics.tls_handshake_failed("too_many_connections");
                tracing::warn!(%peer, "RADIUS/TLS connection refused: radius.tls.max_connections reached");
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(
                self.clone()
                    .connection(stream, local, peer, slot, shutdown.clone()),
            );
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        _slot: OwnedSemaphorePermit,
        shutdown: watch::Receiver<bool>,
    ) {
        let rt = self.runtime();
        let Some(tls) = rt.tls.as_ref() else {
            return;
        };
        // Strangers get no handshake.
        if !tls.address_known(peer.ip()) {
            self.metrics.tls_handshake_failed("unknown_client");
            self.drop_unknown_client(peer);
            return;
        }
        let settings = tls.settings.clone();
        let stream =
            match tokio::time::timeout(settings.handshake_timeout, tls.acceptor.accept(stream))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let reason = handshake_failure(&e);
                    self.metrics.tls_handshake_failed(reason);
                    tracing::warn!(%peer, reason, error = %e, "RADIUS/TLS handshake failed");
                    return;
                }
                Err(_) => {
                    self.metrics.tls_handshake_failed("timeout");
                    tracing::warn!(%peer, timeout = ?settings.handshake_timeout,
                        "RADIUS/TLS handshake not finished in time (radius.tls.handshake_timeout)");
                    return;
                }
            };
        let (names, version) = {
            let (_, conn) = stream.get_ref();
            let names = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| certificate_names(c.as_ref()))
                .unwrap_or_default();
            (names, conn.protocol_version())
        };
        let Some(client) = tls.find(peer.ip(), &names) else {
            self.metrics.tls_handshake_failed("certificate_not_matched");
            Server::<H>::drop_unknown_client(&self, peer);
            tracing::warn!(%peer, certificate_names = ?names,
                "RADIUS/TLS client refused: no [[radius.tls.clients]] entry matches its address and certificate");
            return;
        };
        let name = client.config.name.clone();
        tracing::info!(client = name, %peer, certificate_names = ?names, version = ?version,
            "RADIUS/TLS connection");
        drop(rt);
        let _open = self.metrics.tls_connection();
        let slots = (settings.max_buffered_bytes / MAX_PACKET_LEN).max(1);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(slots);
        let (rd, wr) = tokio::io::split(stream);
        let reader = self
            .clone()
            .read_loop(rd, tx, local, peer, names, settings.clone(), shutdown);
        let writer = write_loop(wr, rx, settings.write_timeout);
        tokio::pin!(reader, writer);
        let why = tokio::select! {
            why = &mut reader => {
                // Answers still being worked on go out before the connection closes.
                let _ = (&mut writer).await;
                why
            }
            why = &mut writer => why,
        };
        tracing::info!(client = name, %peer, why, "RADIUS/TLS connection closed");
    }

    /// Reads framed packets until the peer closes, idles, dawdles or misbehaves, or shutdown.
    #[allow(clippy::too_many_arguments)]
    async fn read_loop<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        mut rd: R,
        tx: mpsc::Sender<Vec<u8>>,
        local: SocketAddr,
        peer: SocketAddr,
        names: Vec<String>,
        settings: RadiusTlsSettings,
        mut shutdown: watch::Receiver<bool>,
    ) -> &'static str {
        loop {
            // A slot for the answer first: with all of them taken, stop reading.
            let slot = tokio::select! {
                s = tx.clone().reserve_owned() => match s {
                    Ok(s) => s,
                    Err(_) => return "writer gone",
                },
                _ = shutdown.changed() => return "shutting down",
            };
            let mut header = [0u8; HEADER_LEN];
            let first = tokio::select! {
                r = tokio::time::timeout(settings.idle_timeout, rd.read_exact(&mut header[..1])) => r,
                _ = shutdown.changed() => return "shutting down",
            };
            match first {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return "closed by the peer",
                Err(_) => return "idle (radius.tls.idle_timeout)",
            }
            // The rest of the packet within read_timeout: a trickle cannot hold the slot.
            let deadline = tokio::time::Instant::now() + settings.read_timeout;
            match tokio::time::timeout_at(deadline, rd.read_exact(&mut header[1..])).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return "closed by the peer",
                Err(_) => return "packet too slow (radius.tls.read_timeout)",
            }
            let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
            if !(MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(&len) {
                // The stream cannot be resynchronised after a bad length (RFC 6614 §2.5).
                self.metrics.dropped(Drop::Malformed);
                tracing::warn!(%peer, length = len, "RADIUS/TLS packet with an impossible Length; closing");
                return "bad Length";
            }
            let mut packet = vec![0u8; len];
            packet[..HEADER_LEN].copy_from_slice(&header);
            match tokio::time::timeout_at(deadline, rd.read_exact(&mut packet[HEADER_LEN..])).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return "closed by the peer",
                Err(_) => return "packet too slow (radius.tls.read_timeout)",
            }
            self.count_received();
            // The configuration of now: a reload that removes the client ends the connection.
            let rt = self.runtime();
            let Some(client) = rt.tls.as_ref().and_then(|t| t.find(peer.ip(), &names)) else {
                return "client no longer configured";
            };
            self.process(
                &rt,
                Inbound {
                    local,
                    peer,
                    client,
                    reply: ReplyTo::Stream(slot),
                },
                &packet,
            );
        }
    }
}

/// Writes answers as they come; gives up on a peer that does not take one within `timeout`.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    timeout: Duration,
) -> &'static str {
    while let Some(bytes) = rx.recv().await {
        let write = async {
            wr.write_all(&bytes).await?;
            wr.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return "write failed",
            Err(_) => return "peer does not read (radius.tls.write_timeout)",
        }
    }
    let _ = tokio::time::timeout(timeout, wr.shutdown()).await;
    "done"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(name_matches("*", "anything.example"));
        assert!(name_matches("nas1.example.org", "NAS1.example.org"));
        assert!(name_matches("nas1.example.org", "nas1.example.org."));
        assert!(!name_matches("nas1.example.org", "nas2.example.org"));
        assert!(name_matches("*.example.org", "nas1.example.org"));
        assert!(!name_matches("*.example.org", "example.org"));
        assert!(!name_matches("*.example.org", "a.b.example.org"));
        assert!(!name_matches("*.example.org", "nas1.badexample.org"));
        assert!(!name_matches("*.example.org", ".example.org"));
    }
}
