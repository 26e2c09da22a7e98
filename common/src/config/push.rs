//! `[http]`, `[push]` and `[shared]`: what the daemon needs to *receive* calls (SxS push
//! callbacks, DP4Mobile-style response validation) and to share pending approvals between
//! instances.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Validator;
use crate::error::Result;
use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    listen: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    allow_plain_loopback: bool,
    public_url: Option<String>,
    callback_key: Option<String>,
    callback_key_file: Option<PathBuf>,
    max_connections: Option<usize>,
    max_body: Option<usize>,
    request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPush {
    timeout: Option<String>,
    max_pending_per_user: Option<u32>,
    max_pending: Option<usize>,
    socket: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShared {
    redis_url: Option<String>,
}

/// `[http]`: the daemon's HTTPS listener (push callbacks, DP4Mobile endpoint, `/healthz`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: Vec<SocketAddr>,
    /// Certificate chain and key (PEM); absent only for plain HTTP on loopback.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The base URL SxS and apps reach this listener at (`https://host:port`), from which the
    /// callback location is built.
    pub public_url: url::Url,
    /// Signs callback locations (HMAC-SHA256); shared by all instances.
    pub callback_key: Secret,
    pub max_connections: usize,
    pub max_body: usize,
    pub request_timeout: Duration,
}

/// `[push]`: approvals that wait.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// How long a login waits for the approval. For RADIUS keep it below the NAS's timeout.
    pub timeout: Duration,
    pub max_pending_per_user: u32,
    pub max_pending: usize,
    /// Unix socket on which the daemon serves `pam_sxs` (push and out-of-band logins).
    pub socket: PathBuf,
}

/// `[shared]`: a store several instances share.
#[derive(Debug, Clone, Default)]
pub struct SharedSettings {
    /// Redis or Valkey (`redis://host:port/db`, `rediss://` for TLS); absent: in process. A
    /// [`Secret`] because it may carry a password (`redis://:PASSWORD@host`); print it with
    /// [`redacted_url`].
    pub redis_url: Option<Secret>,
}

/// `url` without its password, for logs and error messages.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

impl Validator<'_> {
    pub(super) fn validate_http(&mut self, raw: Option<RawHttp>) -> Result<Option<HttpSettings>> {
        let Some(raw) = raw else { return Ok(None) };
        let listen = raw
            .listen
            .unwrap_or_else(|| vec!["0.0.0.0:8443".into()])
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<SocketAddr>().map_err(|_| {
                    self.err(
                        &format!("http.listen[{i}]"),
                        format!("expected an address such as \"0.0.0.0:8443\", got {s:?}"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if listen.is_empty() {
            return Err(self.err("http.listen", "at least one address is required"));
        }
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => {
                super::check_secret_file_mode(&key, "http.tls_key")?;
                Some((cert, key))
            }
            (None, None) => None,
            _ => {
                return Err(self.err(
                    "http.tls_cert",
                    "`tls_cert` and `tls_key` go together: give both",
                ))
            }
        };
        if tls.is_none() {
            if !raw.allow_plain_loopback {
                return Err(self.err(
                    "http.tls_cert",
                    "HTTPS needs `tls_cert` and `tls_key`; plain HTTP is allowed only on loopback addresses with `allow_plain_loopback = true`",
                ));
            }
            if let Some(a) = listen.iter().find(|a| !a.ip().is_loopback()) {
                return Err(self.err(
                    "http.listen",
                    format!("{a} is not a loopback address: plain HTTP (no tls_cert) is allowed on loopback only"),
                ));
            }
        }
        let public_url = match raw.public_url.as_deref() {
            Some(u) => self.url("http.public_url", u)?,
            None => {
                return Err(self.err(
                    "http.public_url",
                    "required: the https://host:port at which SxS and authenticator apps reach this listener",
                ))
            }
        };
        let callback_key = self
            .secret("http.callback_key", raw.callback_key, raw.callback_key_file)?
            .ok_or_else(|| {
                self.err(
                    "http.callback_key_file",
                    "required: signs the callback locations given to SxS (e.g. `head -c 32 /dev/urandom > /etc/sxs/callback.key`; the same file on every instance)",
                )
            })?;
        if callback_key.len() < 16 {
            return Err(self.err(
                "http.callback_key",
                format!(
                    "must be at least 16 bytes long, is {} bytes",
                    callback_key.len()
                ),
            ));
        }
        let max_connections = raw.max_connections.unwrap_or(1024);
        let max_body = raw.max_body.unwrap_or(16 * 1024);
        if max_connections == 0 || max_body == 0 {
            return Err(self.err("http.max_connections", "limits must be at least 1"));
        }
        Ok(Some(HttpSettings {
            listen,
            tls,
            public_url,
            callback_key,
            max_connections,
            max_body,
            request_timeout: self.duration(
                "http.request_timeout",
                raw.request_timeout.as_deref(),
                "10s",
            )?,
        }))
    }

    pub(super) fn validate_push(&self, raw: RawPush) -> Result<PushSettings> {
        let timeout = self.duration("push.timeout", raw.timeout.as_deref(), "25s")?;
        if timeout.is_zero() {
            return Err(self.err("push.timeout", "must be greater than zero"));
        }
        let socket = raw
            .socket
            .unwrap_or_else(|| PathBuf::from("/run/sxs/radiusd/push.sock"));
        if !socket.is_absolute() {
            return Err(self.err("push.socket", "expected an absolute path"));
        }
        Ok(PushSettings {
            timeout,
            max_pending_per_user: raw.max_pending_per_user.unwrap_or(3),
            max_pending: raw.max_pending.unwrap_or(10_000),
            socket,
        })
    }

    pub(super) fn validate_shared(&self, raw: RawShared) -> Result<SharedSettings> {
        if let Some(u) = &raw.redis_url {
            let ok = url::Url::parse(u).ok().is_some_and(|url| {
                matches!(url.scheme(), "redis" | "rediss" | "valkey" | "valkeys")
            });
            if !ok {
                return Err(self.err(
                    "shared.redis_url",
                    "expected a URL such as \"redis://127.0.0.1:6379/0\" (or rediss:// for TLS)",
                ));
            }
        }
        Ok(SharedSettings {
            redis_url: raw.redis_url.map(Secret::from),
        })
    }
}
