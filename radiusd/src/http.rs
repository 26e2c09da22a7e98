//! The HTTP door: an HTTPS listener (`[http]`) that SxS and authenticator apps call.
//!
//! - `POST /push/callback/{id}?sig=…` — SxS's answer to a push. The location was signed by
//!   this daemon ([`CallbackSigner`]), so a forged or altered one is refused before the store is
//!   asked; the pending login is claimed exactly once; an approval's OTP is validated with SxS
//!   here, and only the verdict is handed to the waiting login.
//! - `GET|POST /dp4mobile?serialNumber=…&otp=…&challenge=…` — an authenticator app's response
//!   to an out-of-band challenge ([`crate::oob`]), with the URL masks of PROTOCOL.md §2;
//!   validated with SxS, answered `<DP4Mobile retCode="0" message="…" serverTime="…"/>`, and
//!   the waiting login completed.
//! - `GET /healthz` — 200 while some SxS server is reachable, else 503 (for load balancers).
//!
//! Bounded: connections (`max_connections`), header bytes, body bytes (`max_body`), and the
//! time one connection may take (`request_timeout`). One request per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::config::HttpSettings;
use common::{Secret, Verifier};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;

use crate::approval::{Approval, ApprovalStore, CallbackSigner, ClaimError};
use crate::handler::UnixClock;

/// What the door needs; shared by every connection.
pub struct Door<V> {
    /// The current SxS client (it changes when the configuration is reloaded).
    pub verifier: Box<dyn Fn() -> Arc<V> + Send + Sync>,
    pub store: ApprovalStore,
    pub signer: CallbackSigner,
    pub clock: Arc<dyn UnixClock>,
    pub settings: HttpSettings,
}

impl<V> std::fmt::Debug for Door<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("listen", &self.settings.listen)
            .finish_non_exhaustive()
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, body: serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: &str) -> Resp {
    respond(status, serde_json::json!({ "error": message }))
}

/// The TLS server configuration from `[http] tls_cert`/`tls_key` (PEM).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("http.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "http.tls_cert {}: no certificate in the file",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("http.tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("[http] TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map(Arc::new)
        .map_err(|e| format!("http.tls_cert/http.tls_key: {e}"))
}

/// Binds every `[http] listen` address.
pub async fn bind(settings: &HttpSettings) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::new();
    for addr in &settings.listen {
        out.push(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("http.listen {addr}: {e}"))?,
        );
    }
    Ok(out)
}

impl<V: Verifier + 'static> Door<V> {
    /// Serves `listener` until `shutdown` fires.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let permits = Arc::new(Semaphore::new(self.settings.max_connections));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "http: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "http: max_connections reached, connection closed");
                continue;
            };
            let me = self.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let budget = me.settings.request_timeout;
                let _ = tokio::time::timeout(budget, me.clone().connection(stream, peer, acceptor))
                    .await;
                drop(permit);
            });
        }
    }

    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let me = self.clone();
        let service = hyper::service::service_fn(move |req| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.route(req, peer).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .keep_alive(false)
            .max_buf_size(16 * 1024)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(5));
        let result = match acceptor {
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(tls) => {
                    builder
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await
                }
                Err(e) => {
                    tracing::info!(%peer, error = %e, "http: TLS handshake failed");
                    return;
                }
            },
            None => {
                builder
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "http: connection ended with an error");
        }
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Resp {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/healthz") => {
                if (self.verifier)().is_ready() {
                    respond(StatusCode::OK, serde_json::json!({"status": "ok"}))
                } else {
                    error(StatusCode::SERVICE_UNAVAILABLE, "no SxS server reachable")
                }
            }
            (&Method::POST, p) if p.starts_with("/push/callback/") => {
                let id = p.trim_start_matches("/push/callback/").to_string();
                self.push_callback(req, &id, peer).await
            }
            (&Method::GET | &Method::POST, "/dp4mobile") => self.dp4mobile(req, peer).await,
            (_, "/healthz") => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
            (_, p) if p.starts_with("/push/callback/") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
            }
            _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
        }
    }

    async fn push_callback(&self, req: Request<Incoming>, id: &str, peer: SocketAddr) -> Resp {
        let sig = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("sig="))
            .unwrap_or("")
            .to_string();
        if !self.signer.verify(id, &sig) {
            tracing::warn!(%peer, "push callback refused: signature missing or wrong");
            return error(StatusCode::FORBIDDEN, "bad or missing signature");
        }
        // Read and understand the body before anything changes.
        let body = match Limited::new(req.into_body(), self.settings.max_body)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body unreadable or larger than http.max_body",
                )
            }
        };
        let callback: Callback = match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                    "expected JSON {{\"result\": \"approved\"|\"denied\", \"otp\": \"…\"}}: {e}"
                ),
                )
            }
        };
        let approved = match callback.result.to_ascii_lowercase().as_str() {
            "approved" | "approve" | "accepted" | "success" | "ok" => true,
            "denied" | "deny" | "rejected" | "declined" => false,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "result must be \"approved\" or \"denied\"",
                )
            }
        };
        let otp = callback.otp.map(Secret::from);
        if approved && otp.as_ref().is_none_or(|o| o.is_empty()) {
            return error(StatusCode::BAD_REQUEST, "an approval must carry the OTP");
        }
        let now = self.clock.now_unix();
        let pending = match self.store.claim(id, now).await {
            Ok(p) => p,
            Err(e) => {
                let status = match e {
                    ClaimError::Unknown => StatusCode::NOT_FOUND,
                    ClaimError::Expired => StatusCode::GONE,
                    ClaimError::AlreadyCompleted => StatusCode::CONFLICT,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                tracing::info!(%peer, error = %e, "push callback refused");
                return error(status, &e.to_string());
            }
        };
        let user = pending.identity.user.as_str();
        let (approval, status) = match otp {
            Some(otp) if approved => {
                let verifier = (self.verifier)();
                let verdict = verifier.verify(&pending.identity, &otp).await;
                let status = verdict.kind();
                (Approval::Checked(verdict), status)
            }
            _ => (Approval::Denied, "denied"),
        };
        if let Err(e) = self.store.finish(id, approval).await {
            tracing::error!(user, origin = pending.origin, error = %e,
                "push callback not delivered: the approval store failed (the login is refused)");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "approval store unavailable",
            );
        }
        tracing::info!(user, origin = pending.origin, status, "push callback");
        respond(StatusCode::OK, serde_json::json!({ "status": status }))
    }
}

impl<V: Verifier + 'static> Door<V> {
    /// DP4Mobile response validation: the parameters come in the query (GET) or a form body
    /// (POST). Every answer is the DP4Mobile element; `retCode` 0 only for a response SxS
    /// accepted for the user whose login is waiting on that challenge.
    async fn dp4mobile(&self, req: Request<Incoming>, peer: SocketAddr) -> Resp {
        let mut params = req.uri().query().map(parse_form).unwrap_or_default();
        if req.method() == Method::POST {
            match Limited::new(req.into_body(), self.settings.max_body)
                .collect()
                .await
            {
                Ok(b) => params.extend(parse_form(&String::from_utf8_lossy(&b.to_bytes()))),
                Err(_) => {
                    return dp4(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        RET_BAD_REQUEST,
                        "Request too large",
                    )
                }
            }
        }
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        // Formats of PROTOCOL.md §2; anything else is refused before SxS or the store is asked.
        let otp = get("otp").unwrap_or("");
        let challenge = get("challenge").unwrap_or("");
        let serial = get("serialNumber").unwrap_or("");
        let sequence = get("sequenceNumber").unwrap_or("");
        let hex = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
        };
        let dec = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        let problem = if !hex(otp, 16) {
            Some("otp must be 1 to 16 hexadecimal characters")
        } else if !dec(challenge, 16) {
            Some("challenge must be 1 to 16 decimal digits")
        } else if serial.is_empty()
            || serial.len() > 10
            || !serial.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            Some("serialNumber must be 1 to 10 letters or digits")
        } else if !sequence.is_empty() && !dec(sequence, 2) {
            Some("sequenceNumber must be 2 digits")
        } else {
            None
        };
        if let Some(problem) = problem {
            tracing::info!(%peer, problem, "DP4Mobile request refused");
            return dp4(StatusCode::BAD_REQUEST, RET_BAD_REQUEST, problem);
        }
        let now = self.clock.now_unix();
        let pending = match self
            .store
            .claim(&crate::oob::pending_id(challenge), now)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(%peer, error = %e, "DP4Mobile response for no waiting login");
                let message = match e {
                    ClaimError::Expired => "The sign-in request has expired",
                    ClaimError::AlreadyCompleted => "The sign-in request was already answered",
                    ClaimError::Unknown => "No sign-in is waiting for this challenge",
                    _ => "Service temporarily unavailable",
                };
                return dp4(StatusCode::OK, RET_NO_LOGIN, message);
            }
        };
        let user = pending.identity.user.clone();
        if pending
            .identity
            .token_sn
            .as_deref()
            .is_some_and(|sn| sn != serial)
        {
            tracing::warn!(user, %peer, "DP4Mobile response from another authenticator than the user's");
            let refused = Approval::Checked(common::Verdict::Reject {
                code: "local:serial-mismatch".into(),
                message: "the response came from another authenticator".into(),
            });
            if let Err(e) = self.store.finish(&pending.id, refused).await {
                // The waiting login is refused either way (at its timeout at the latest).
                tracing::error!(user, error = %e, "DP4Mobile refusal not delivered: the approval store failed");
            }
            return dp4(
                StatusCode::OK,
                RET_REJECTED,
                "This authenticator is not enrolled for this sign-in",
            );
        }
        let verifier = (self.verifier)();
        let verdict = verifier
            .verify_mac(&pending.identity, challenge, &Secret::from(otp))
            .await;
        let (ret, message) = match &verdict {
            common::Verdict::Accept { .. } => (RET_OK, "Operation Successful"),
            common::Verdict::Reject { .. } => (RET_REJECTED, "Authentication failed"),
            common::Verdict::Unavailable { .. } => {
                (RET_UNAVAILABLE, "Service temporarily unavailable")
            }
        };
        tracing::info!(
            user,
            origin = pending.origin,
            verdict = verdict.kind(),
            code = verdict.code().unwrap_or(""),
            "DP4Mobile response"
        );
        if let Err(e) = self
            .store
            .finish(&pending.id, Approval::Checked(verdict))
            .await
        {
            tracing::error!(user, origin = pending.origin, error = %e,
                "DP4Mobile response not delivered: the approval store failed (the login is refused)");
            return dp4(
                StatusCode::SERVICE_UNAVAILABLE,
                RET_UNAVAILABLE,
                "Service temporarily unavailable",
            );
        }
        dp4(StatusCode::OK, ret, message)
    }
}

/// `retCode` values of our DP4Mobile answers (0 is success, as PROTOCOL.md §2 says; the other
/// numbers are ours and documented in docs/radiusd.md).
pub const RET_OK: u32 = 0;
pub const RET_REJECTED: u32 = 1;
pub const RET_NO_LOGIN: u32 = 2;
pub const RET_UNAVAILABLE: u32 = 3;
pub const RET_BAD_REQUEST: u32 = 4;

/// `<DP4Mobile retCode="…" message="…" serverTime="…"/>`, serverTime in GMT.
fn dp4(status: StatusCode, ret: u32, message: &str) -> Resp {
    let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let body = format!(
        "<DP4Mobile retCode=\"{ret}\" message=\"{}\" serverTime=\"{time}\"/>",
        common::soap::escape(message)
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

/// `a=1&b=x%20y` → pairs (percent- and `+`-decoded).
fn parse_form(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The body of SxS's push callback (an assumption: docs/protocol-notes.md).
#[derive(Deserialize)]
struct Callback {
    result: String,
    otp: Option<String>,
    #[allow(dead_code)]
    mac: Option<String>,
}
