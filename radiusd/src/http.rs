//! The HTTP door: an HTTPS listener (`[http]`) that SxS and authenticator apps call.
//!
//! - `POST /push/callback/{id}?sig=…` — SxS's answer to a push. The location was signed by
//!   this daemon ([`CallbackSigner`]), so a forged or altered one is refused before the store is
//!   asked; the pending login is claimed exactly once; an approval's OTP is validated with SxS
//!   here, and only the verdict is handed to the waiting login.
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
        tracing::info!(user, origin = pending.origin, status, "push callback");
        self.store.finish(id, approval).await;
        respond(StatusCode::OK, serde_json::json!({ "status": status }))
    }
}

/// The body of SxS's push callback (an assumption: docs/protocol-notes.md).
#[derive(Deserialize)]
struct Callback {
    result: String,
    otp: Option<String>,
    #[allow(dead_code)]
    mac: Option<String>,
}
