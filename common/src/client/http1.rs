//! The SxS client's HTTP/1.1: one request at a time per connection, kept-alive connections
//! reused per origin, over tokio and (for `https://`) rustls.
//!
//! Why not a general HTTP client: every SxS call is one small POST and one small answer. A
//! general client (reqwest over hyper) spends, per connection, a spawned connection task, a
//! dispatch channel and 8 KiB read and write buffers it does not let us size (≈ 35 KiB with
//! thousands of connections open), and per request its header maps and boxed layers. Here a
//! request's future owns its connection while it runs: the request is written with one write,
//! the answer read into the connection's own buffer (sized to the answers seen), and parsed
//! with `httparse`, the parser hyper uses.
//!
//! Safety rules, the same as the client's failover rule (an OTP is single-use):
//! - a kept connection is reused only after a non-blocking look finds it open and silent, and
//!   only when the previous answer ended exactly where its framing said (`Content-Length` or
//!   the last chunk) on an HTTP/1.1 connection the server did not ask to close;
//! - a request is never sent twice: any failure after the first byte was written ends the call
//!   (`Failed`), only a failure to connect (DNS, TCP, TLS handshake) is `NotDelivered`;
//! - nothing waits past the caller's deadline (the caller drops this future, and with it the
//!   connection).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use super::{error_chain, SendError};

/// The longest response head accepted (status line and headers).
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Response headers parsed at most.
const MAX_HEADERS: usize = 48;
/// What a connection's read buffer starts with (SxS's answers, head included, are well under
/// 1 KiB) and grows by; [`KEEP_BUF`] is the most an idle connection keeps.
const READ_BUF: usize = 2 * 1024;
const KEEP_BUF: usize = 16 * 1024;
/// How often idle connections are looked at (closed when expired or closed by the server).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// TLS boxed: its session state (≈ 1.1 KiB) would otherwise size every plain connection and
/// every call's future.
type Stream = Either<TcpStream, Box<tokio_rustls::client::TlsStream<TcpStream>>>;

/// A connection and the buffer its answers are read into.
#[derive(Debug)]
struct Conn {
    io: Stream,
    buf: Vec<u8>,
}

/// One scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: url::Host<String>,
    port: u16,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

#[derive(Debug, Default)]
struct Pools {
    by_origin: Vec<(Origin, VecDeque<Idle>)>,
    sweeping: bool,
}

/// An HTTP/1.1 client for a handful of origins.
#[derive(Debug)]
pub(super) struct Http1 {
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Idle connections kept per origin at most.
    max_idle: usize,
    /// `User-Agent` and the organisation header, rendered once.
    fixed_headers: String,
    pools: Arc<Mutex<Pools>>,
}

/// An answer: status and body (at most `max_body` bytes).
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Http1 {
    /// `fixed_headers`: `(name, value)` pairs sent with every request, already validated.
    pub(super) fn new(
        tls: Option<rustls::ClientConfig>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        fixed_headers: &[(&str, &str)],
    ) -> Self {
        let mut rendered = String::new();
        for (name, value) in fixed_headers {
            let _ = write!(rendered, "{name}: {value}\r\n");
        }
        Self {
            tls: tls.map(Arc::new),
            connect_timeout,
            idle_timeout,
            max_idle,
            fixed_headers: rendered,
            pools: Arc::default(),
        }
    }

    /// Sends `method` to `url` with `headers` and `body`; reads the answer, at most
    /// `max_body` bytes of body. The caller bounds the time.
    pub(super) async fn send(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: &[u8],
        max_body: usize,
    ) -> Result<Answer, SendError> {
        let origin = origin(url).map_err(SendError::NotDelivered)?;
        let request = self
            .render(method, url, headers, body)
            .map_err(SendError::Failed)?;
        let mut conn = match self.checkout(&origin) {
            Some(conn) => conn,
            // Boxed: connecting's state (resolver, handshake) exists once per connection, not
            // in every call's future.
            None => Box::pin(self.connect(&origin)).await?,
        };
        conn.buf.clear();
        let write = async {
            conn.io.write_all(&request).await?;
            conn.io.flush().await
        };
        write
            .await
            .map_err(|e| SendError::Failed(format!("sending the request: {}", error_chain(&e))))?;
        drop(request);
        let (answer, reusable) = read_answer(&mut conn, method == "HEAD", max_body)
            .await
            .map_err(SendError::Failed)?;
        if reusable {
            if conn.buf.capacity() > KEEP_BUF {
                conn.buf = Vec::with_capacity(READ_BUF);
            }
            self.checkin(origin, conn);
        }
        Ok(answer)
    }

    /// The request, head and body in one buffer (one write), zeroed when dropped: the body
    /// may hold a one-time password.
    fn render(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        for (name, value) in headers {
            if !is_token(name) || !is_field_value(value) {
                return Err(format!("header {name:?} cannot be sent as written"));
            }
        }
        // Written straight into the one buffer, sized exactly first: it never grows, so no
        // freed block keeps a copy of the body.
        let host = url.host_str().unwrap_or_default();
        let mut port = itoa::Buffer::new();
        let port = url.port().map(|p| port.format(p));
        let mut length = itoa::Buffer::new();
        let length = (!body.is_empty() || method == "POST").then(|| length.format(body.len()));
        let head = |put: &mut dyn FnMut(&[u8])| {
            for piece in [method.as_bytes(), b" ", url.path().as_bytes()] {
                put(piece);
            }
            if let Some(q) = url.query() {
                put(b"?");
                put(q.as_bytes());
            }
            put(b" HTTP/1.1\r\nHost: ");
            put(host.as_bytes());
            if let Some(port) = port {
                put(b":");
                put(port.as_bytes());
            }
            put(b"\r\n");
            put(self.fixed_headers.as_bytes());
            for (name, value) in headers {
                for piece in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                    put(piece);
                }
            }
            if let Some(length) = length {
                for piece in [b"Content-Length: ".as_slice(), length.as_bytes(), b"\r\n"] {
                    put(piece);
                }
            }
            put(b"\r\n");
        };
        let mut size = body.len();
        head(&mut |piece| size += piece.len());
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(size));
        head(&mut |piece| out.extend_from_slice(piece));
        out.extend_from_slice(body);
        Ok(out)
    }

    /// A kept connection to `origin` that is still open and silent, if any. The most recently
    /// used first; those found closed or expired are closed after the lock is released.
    fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let mut stale = Vec::new();
        let mut pools = lock(&self.pools);
        let idle = pools
            .by_origin
            .iter_mut()
            .find(|(o, _)| o == origin)
            .map(|(_, q)| q)?;
        let now = Instant::now();
        let mut found = None;
        while let Some(Idle { mut conn, since }) = idle.pop_back() {
            if now.saturating_duration_since(since) < self.idle_timeout
                && is_open_and_silent(&mut conn)
            {
                found = Some(conn);
                break;
            }
            stale.push(conn);
        }
        drop(pools);
        drop(stale);
        found
    }

    fn checkin(&self, origin: Origin, conn: Conn) {
        let mut pools = lock(&self.pools);
        let idle = Idle {
            conn,
            since: Instant::now(),
        };
        match pools.by_origin.iter_mut().find(|(o, _)| *o == origin) {
            Some((_, q)) => {
                if q.len() >= self.max_idle {
                    q.pop_front();
                }
                q.push_back(idle);
            }
            None => pools.by_origin.push((origin, VecDeque::from([idle]))),
        }
        if !pools.sweeping {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                pools.sweeping = true;
                let guard = Sweeping(Arc::downgrade(&self.pools));
                runtime.spawn(sweep(guard, self.idle_timeout));
            }
        }
    }

    /// A new connection: resolve, TCP (each address in turn), TLS. Every failure here is
    /// `NotDelivered`: nothing was sent.
    async fn connect(&self, origin: &Origin) -> Result<Conn, SendError> {
        let not_delivered = SendError::NotDelivered;
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let work = async {
            let addrs: Vec<SocketAddr> = match &origin.host {
                url::Host::Ipv4(ip) => vec![SocketAddr::from((*ip, origin.port))],
                url::Host::Ipv6(ip) => vec![SocketAddr::from((*ip, origin.port))],
                url::Host::Domain(name) => tokio::net::lookup_host((name.as_str(), origin.port))
                    .await
                    .map_err(|e| format!("resolving {name}: {e}"))?
                    .collect(),
            };
            // Each address gets an equal share of the time left, so one that drops packets
            // (an IPv6 route that goes nowhere) leaves time for the next.
            let mut last = format!("{} resolves to no address", origin.host);
            let count = addrs.len();
            for (i, addr) in addrs.into_iter().enumerate() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let share = left / u32::try_from(count - i).unwrap_or(u32::MAX);
                match tokio::time::timeout(share, TcpStream::connect(addr)).await {
                    Ok(Ok(tcp)) => {
                        let _ = tcp.set_nodelay(true);
                        return Ok(tcp);
                    }
                    Ok(Err(e)) => last = format!("connecting to {addr}: {e}"),
                    Err(_) => last = format!("connecting to {addr}: timed out after {share:?}"),
                }
            }
            Err(last)
        };
        let tcp = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| {
                not_delivered(format!(
                    "connecting to {}:{}: timed out after {:?} (sxs.connect_timeout)",
                    origin.host, origin.port, self.connect_timeout
                ))
            })?
            .map_err(not_delivered)?;
        let io = if origin.https {
            let Some(tls) = &self.tls else {
                return Err(not_delivered("https without a TLS configuration".into()));
            };
            let name = match &origin.host {
                url::Host::Domain(d) => rustls::pki_types::ServerName::try_from(d.clone())
                    .map_err(|e| not_delivered(format!("{d}: {e}")))?,
                url::Host::Ipv4(ip) => {
                    rustls::pki_types::ServerName::from(std::net::IpAddr::V4(*ip))
                }
                url::Host::Ipv6(ip) => {
                    rustls::pki_types::ServerName::from(std::net::IpAddr::V6(*ip))
                }
            };
            let handshake = tokio_rustls::TlsConnector::from(Arc::clone(tls)).connect(name, tcp);
            let stream = tokio::time::timeout(self.connect_timeout, handshake)
                .await
                .map_err(|_| {
                    not_delivered(format!(
                        "TLS handshake with {}: timed out after {:?} (sxs.connect_timeout)",
                        origin.host, self.connect_timeout
                    ))
                })?
                .map_err(|e| {
                    not_delivered(format!(
                        "TLS handshake with {}: {}",
                        origin.host,
                        error_chain(&e)
                    ))
                })?;
            Either::Right(Box::new(stream))
        } else {
            Either::Left(tcp)
        };
        Ok(Conn {
            io,
            buf: Vec::with_capacity(READ_BUF),
        })
    }

    /// Idle connections kept now (all origins).
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        lock(&self.pools)
            .by_origin
            .iter()
            .map(|(_, q)| q.len())
            .sum()
    }
}

fn lock(pools: &Mutex<Pools>) -> std::sync::MutexGuard<'_, Pools> {
    match pools.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The sweeper of a client's pools; when its task ends (the client dropped, or the runtime
/// it ran on shut down), the next connection put back starts another.
struct Sweeping(Weak<Mutex<Pools>>);

impl Drop for Sweeping {
    fn drop(&mut self) {
        if let Some(pools) = self.0.upgrade() {
            lock(&pools).sweeping = false;
        }
    }
}

/// Every [`SWEEP_EVERY`], closes idle connections that expired or that the server closed, so
/// a quiet daemon does not hold sockets the server has given up. Ends with the client.
async fn sweep(sweeping: Sweeping, idle_timeout: Duration) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pools) = sweeping.0.upgrade() else {
            return;
        };
        let mut stale = Vec::new();
        let mut guard = lock(&pools);
        let now = Instant::now();
        for (_, q) in &mut guard.by_origin {
            let mut kept = VecDeque::with_capacity(q.len());
            for mut i in q.drain(..) {
                if now.saturating_duration_since(i.since) < idle_timeout
                    && is_open_and_silent(&mut i.conn)
                {
                    kept.push_back(i);
                } else {
                    stale.push(i);
                }
            }
            *q = kept;
        }
        drop(guard);
        drop(stale);
    }
}

/// Polls a read once without waiting: pending means open and silent. End of stream, an error
/// or unexpected bytes (a server never speaks first) mean it is not to be used again.
fn is_open_and_silent(conn: &mut Conn) -> bool {
    let mut probe = [0u8; 1];
    conn.io.read(&mut probe).now_or_never().is_none()
}

fn origin(url: &url::Url) -> Result<Origin, String> {
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(format!("{url}: scheme {other:?} is not http or https")),
    };
    let host = url
        .host()
        .ok_or_else(|| format!("{url}: no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{url}: no port"))?;
    Ok(Origin { https, host, port })
}

/// Whether `s` may be sent as a header field's value: visible ASCII, space and tab (RFC 9110
/// §5.5 without obs-text, as `http::HeaderValue::from_str`).
pub(crate) fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// RFC 9110 token characters (header names).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// How the answer's body is delimited.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads more into `conn.buf`; `Ok(false)` at end of stream.
async fn fill(conn: &mut Conn) -> Result<bool, String> {
    if conn.buf.capacity() - conn.buf.len() < 512 {
        conn.buf.reserve(READ_BUF);
    }
    match conn.io.read_buf(&mut conn.buf).await {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(format!("reading the response: {}", error_chain(&e))),
    }
}

/// Reads one answer. `Ok((answer, reusable))`.
async fn read_answer(
    conn: &mut Conn,
    head_only: bool,
    max_body: usize,
) -> Result<(Answer, bool), String> {
    // The head, skipping informational (1xx) answers.
    let (status, framing, mut keep_alive, mut pos) = loop {
        // Nothing read yet (the usual first pass): nothing to parse.
        let head = if conn.buf.is_empty() {
            Head::Partial
        } else {
            parse_head(&conn.buf, head_only)?
        };
        match head {
            Head::Final {
                len,
                status,
                framing,
                keep_alive,
            } => break (status, framing, keep_alive, len),
            Head::Interim(len) => {
                conn.buf.drain(..len);
            }
            Head::Partial => {
                if conn.buf.len() > MAX_HEAD {
                    return Err(format!("response head larger than {MAX_HEAD} bytes"));
                }
                let had = conn.buf.len();
                if !fill(conn).await? {
                    return Err(if had == 0 {
                        "the server closed the connection without answering".into()
                    } else {
                        "the server closed the connection in the response head".into()
                    });
                }
            }
        }
    };
    let too_large = || format!("response larger than {max_body} bytes");
    let body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(n) => {
            if n > max_body {
                return Err(too_large());
            }
            while conn.buf.len() - pos < n {
                if !fill(conn).await? {
                    return Err(format!(
                        "the server closed the connection after {} of {n} body bytes",
                        conn.buf.len() - pos
                    ));
                }
            }
            let body = conn.buf[pos..pos + n].to_vec();
            pos += n;
            body
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                match httparse::parse_chunk_size(&conn.buf[pos..]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        let size = usize::try_from(size).map_err(|_| too_large())?;
                        if size > max_body.saturating_sub(body.len()) {
                            return Err(too_large());
                        }
                        let start = pos + used;
                        if size == 0 {
                            pos = start;
                            break;
                        }
                        while conn.buf.len() < start + size + 2 {
                            if !fill(conn).await? {
                                return Err("the server closed the connection in a chunk".into());
                            }
                        }
                        if &conn.buf[start + size..start + size + 2] != b"\r\n" {
                            return Err("malformed chunked body: no CRLF after a chunk".into());
                        }
                        body.extend_from_slice(&conn.buf[start..start + size]);
                        pos = start + size + 2;
                    }
                    Ok(httparse::Status::Partial) => {
                        if conn.buf.len() - pos > 1024 {
                            return Err("malformed chunked body: chunk size line too long".into());
                        }
                        if !fill(conn).await? {
                            return Err("the server closed the connection in a chunk".into());
                        }
                    }
                    Err(_) => return Err("malformed chunked body: bad chunk size".into()),
                }
            }
            // Trailer fields (ignored), up to the empty line.
            loop {
                match parse_trailer(&conn.buf[pos..]) {
                    Ok(Some(used)) => {
                        pos += used;
                        break;
                    }
                    Ok(None) => {
                        if conn.buf.len() - pos > MAX_HEAD {
                            return Err(format!("trailer larger than {MAX_HEAD} bytes"));
                        }
                        if !fill(conn).await? {
                            return Err("the server closed the connection in the trailer".into());
                        }
                    }
                    Err(e) => return Err(format!("malformed trailer: {e}")),
                }
            }
            body
        }
        Framing::UntilClose => {
            keep_alive = false;
            while fill(conn).await? {
                if conn.buf.len() - pos > max_body {
                    return Err(too_large());
                }
            }
            if conn.buf.len() - pos > max_body {
                return Err(too_large());
            }
            let body = conn.buf[pos..].to_vec();
            pos = conn.buf.len();
            body
        }
    };
    // Bytes beyond the answer: the server is out of step; do not read another answer here.
    let reusable = keep_alive && pos == conn.buf.len();
    Ok((Answer { status, body }, reusable))
}

/// What the start of the buffer holds.
enum Head {
    /// Not a whole head yet.
    Partial,
    /// A 1xx answer of this many bytes, to be skipped.
    Interim(usize),
    Final {
        len: usize,
        status: u16,
        framing: Framing,
        keep_alive: bool,
    },
}

/// Parses a response head. Not async: the header array stays on the stack, out of the state
/// of every call in flight.
fn parse_head(buf: &[u8], head_only: bool) -> Result<Head, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            if status == 101 {
                return Err("the server switched protocols (HTTP 101)".into());
            }
            if (100..200).contains(&status) {
                return Ok(Head::Interim(len));
            }
            let (framing, keep_alive) =
                framing(&response, status, head_only).map_err(|e| format!("HTTP {status}: {e}"))?;
            Ok(Head::Final {
                len,
                status,
                framing,
                keep_alive,
            })
        }
        Ok(httparse::Status::Partial) => Ok(Head::Partial),
        Err(e) => Err(format!("malformed response head: {e}")),
    }
}

/// The trailer section's length (ignored fields up to the empty line), `None` if incomplete.
fn parse_trailer(buf: &[u8]) -> Result<Option<usize>, httparse::Error> {
    let mut trailers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(buf, &mut trailers)? {
        httparse::Status::Complete((used, _)) => Ok(Some(used)),
        httparse::Status::Partial => Ok(None),
    }
}

/// The body's framing (RFC 9112 §6.3) and whether the connection may be kept.
fn framing(
    response: &httparse::Response<'_, '_>,
    status: u16,
    head_only: bool,
) -> Result<(Framing, bool), String> {
    let http11 = response.version == Some(1);
    let mut keep_alive = http11;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or("");
            let n = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|_| text.trim().bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("bad Content-Length {text:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("two different Content-Length values".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` alone, once, on HTTP/1.1: anything else is refused rather than
            // guessed at (a wrong guess reads the next answer out of step).
            let text = std::str::from_utf8(h.value).unwrap_or("");
            if !http11 || chunked || !text.trim().eq_ignore_ascii_case("chunked") {
                return Err(format!("unsupported Transfer-Encoding {text:?}"));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            // HTTP/1.0 answers are never kept, keep-alive or not.
            let text = std::str::from_utf8(h.value).unwrap_or("");
            if text
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                keep_alive = false;
            }
        }
    }
    if head_only || status == 204 || status == 304 {
        return Ok((Framing::None, keep_alive));
    }
    if chunked {
        if length.is_some() {
            // RFC 9112 §6.1: a sender must not send both; the connection is closed after.
            return Ok((Framing::Chunked, false));
        }
        return Ok((Framing::Chunked, keep_alive));
    }
    match length {
        Some(0) => Ok((Framing::None, keep_alive)),
        Some(n) => Ok((Framing::Length(n), keep_alive)),
        None => Ok((Framing::UntilClose, false)),
    }
}

#[cfg(test)]
mod tests;
