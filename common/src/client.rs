//! The async SxS client: `validateOtp` with failover, health checks, and the administrative
//! calls. One connection pool per [`SxsClient`] (our own HTTP/1.1, `http1`); build one per
//! process.
//!
//! The rule that shapes failover: an OTP is single-use at SxS, so a request is only ever sent
//! to the next server when it provably did not reach the previous one (the TCP connection or
//! the TLS handshake failed). A timeout or a reset after sending ends the call.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::codes;
use crate::config::SxsSettings;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::observe::{NoObserver, SxsObserver};
use crate::secret::{otp_is_well_formed, Otp, Secret};
use crate::sms::{Refusal, SendLimiter};
use crate::soap::{self, Outcome, SxsUser, ValidateOtpAnswer};
use crate::verdict::Verdict;

/// Anything that can judge an OTP: the SxS client, a DP4Mobile backend, a test double.
pub trait Verifier: Send + Sync {
    /// Checks `otp` for `identity`. Never panics, never retries a delivered request.
    fn verify(&self, identity: &Identity, otp: &Otp) -> impl Future<Output = Verdict> + Send;

    /// Whether a verification has a chance of getting an answer now (RADIUS Status-Server).
    fn is_ready(&self) -> bool {
        true
    }

    /// Sends an SMS one-time password to `identity`, within `limiter`'s per-user limit. A
    /// backend without SMS answers `Unavailable`.
    fn send_sms(
        &self,
        identity: &Identity,
        limiter: &dyn SendLimiter,
        now_unix: u64,
    ) -> impl Future<Output = SmsSent> + Send {
        let _ = (identity, limiter, now_unix);
        std::future::ready(SmsSent {
            verdict: Verdict::unavailable("this backend cannot send SMS codes"),
            masked_mobile: None,
        })
    }

    /// Checks a code that [`Verifier::send_sms`] sent.
    fn verify_sms(&self, identity: &Identity, code: &Otp) -> impl Future<Output = Verdict> + Send {
        let _ = (identity, code);
        std::future::ready(Verdict::unavailable("this backend cannot check SMS codes"))
    }

    /// PUSH: asks for an approval on the user's phone; the answer arrives at `callback`.
    fn start_push(
        &self,
        identity: &Identity,
        input: &str,
        callback: &str,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (identity, input, callback);
        std::future::ready(Verdict::unavailable("this backend cannot push"))
    }

    /// Dynamic linking: checks `mac` over `input`.
    fn verify_mac(
        &self,
        identity: &Identity,
        input: &str,
        mac: &Secret,
    ) -> impl Future<Output = Verdict> + Send {
        let _ = (identity, input, mac);
        std::future::ready(Verdict::unavailable("this backend cannot check MACs"))
    }
}

/// A source of monotonic time, so back-off can be tested without sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// `auth` or `admin`.
    pub root: &'static str,
    pub url: String,
    pub healthy: bool,
    pub latency: Duration,
    /// The server's message when healthy, the cause otherwise.
    pub detail: String,
}

/// The SxS client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SxsClient {
    http: http1::Http1,
    settings: SxsSettings,
    /// Per server: until when it is tried last, after a connection failure.
    down_until: Mutex<Vec<Option<Instant>>>,
    /// Per server: what `observer` was last told (up or down), so that it hears of changes
    /// only, not of every call. Taken under `down_until`'s lock, so that two calls ending at
    /// once cannot report in the opposite order of their marks.
    reported: Mutex<Vec<Option<bool>>>,
    clock: Arc<dyn Clock>,
    /// Bounds validateOtp calls in flight (and so connections and file descriptors).
    in_flight: tokio::sync::Semaphore,
    /// `sxs.max_connections` resolved when the client was built.
    max_connections: usize,
    /// Told about every call and every server found up or down (metrics).
    observer: Arc<dyn SxsObserver>,
    /// Per authentication-root path (`auth_path` and each method's), the URL on each server,
    /// joined once here rather than parsed again on every call.
    endpoints: Vec<(String, Vec<std::result::Result<url::Url, String>>)>,
}

/// Where a request failed, for the failover rule.
#[derive(Debug)]
enum SendError {
    /// Not delivered (connect, DNS, TLS handshake): the next server may be tried.
    NotDelivered(String),
    /// Maybe delivered: stop.
    Failed(String),
}

impl SxsClient {
    /// Builds the client and its connection pool from `[sxs]`.
    pub fn new(settings: &SxsSettings) -> Result<Self> {
        Self::with_clock(settings, Arc::new(SystemClock))
    }

    /// As [`SxsClient::new`], with a clock for tests.
    pub fn with_clock(settings: &SxsSettings, clock: Arc<dyn Clock>) -> Result<Self> {
        // Checked when the configuration was read; again here, as they go on the wire as is.
        if !http1::is_token(&settings.organization_header) {
            return Err(Error::HttpClient(format!(
                "sxs.organization_header: {:?} is not an HTTP header name",
                settings.organization_header
            )));
        }
        if !http1::is_field_value(&settings.organization_id) {
            return Err(Error::HttpClient(
                "sxs.organization_id: holds a control character".into(),
            ));
        }
        let max_connections = settings.max_connections.resolve();
        if settings.insecure_skip_verify {
            tracing::warn!(
                "sxs.insecure_skip_verify = true: the SxS server's TLS certificate is NOT checked; anyone on the path can answer for SxS"
            );
        }
        // The TLS settings are read (and so checked) when an https URL or a TLS key names
        // them; the system CA bundle only at a handshake that needs it (`tls`).
        let https = settings
            .servers
            .iter()
            .chain(settings.admin_url.iter())
            .any(|u| u.scheme() == "https");
        let tls = if https || settings.ca_file.is_some() || settings.client_cert.is_some() {
            Some(tls::client_config(settings)?)
        } else {
            None
        };
        let http = http1::Http1::new(
            tls,
            settings.connect_timeout,
            IDLE_TIMEOUT,
            max_connections,
            &[
                (
                    "User-Agent",
                    concat!("sxs-auth/", env!("CARGO_PKG_VERSION")),
                ),
                (&settings.organization_header, &settings.organization_id),
            ],
        );
        let paths = [
            &settings.auth_path,
            &settings.methods.validate_mac.path,
            &settings.methods.send_sms.path,
            &settings.methods.start_push.path,
        ];
        let mut endpoints: Vec<(String, Vec<_>)> = Vec::with_capacity(paths.len());
        for path in paths {
            if endpoints.iter().all(|(p, _)| p != path) {
                let urls = settings
                    .servers
                    .iter()
                    .map(|base| join(base, path))
                    .collect();
                endpoints.push((path.clone(), urls));
            }
        }
        Ok(Self {
            endpoints,
            http,
            down_until: Mutex::new(vec![None; settings.servers.len()]),
            reported: Mutex::new(vec![None; settings.servers.len()]),
            settings: settings.clone(),
            clock,
            in_flight: tokio::sync::Semaphore::new(max_connections),
            max_connections,
            observer: Arc::new(NoObserver),
        })
    }

    /// Reports every call and server state to `observer` (the default ignores them).
    pub fn with_observer(mut self, observer: Arc<dyn SxsObserver>) -> Self {
        self.observer = observer;
        // A new observer has been told nothing yet.
        if let Ok(r) = self.reported.get_mut() {
            r.fill(None);
        }
        self
    }

    /// Tells the observer that `method` on server `index` ended with `verdict` after the time
    /// since `start` (`verdict`: [`Verdict::kind`]). Every SxS call reports through here.
    fn observed(&self, method: &'static str, index: usize, start: Instant, verdict: &'static str) {
        if let Some(base) = self.settings.servers.get(index) {
            self.observer
                .sxs_call(method, base.as_str(), verdict, start.elapsed());
        }
    }

    /// Calls in flight at once: `sxs.max_connections` as resolved when the client was built.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &SxsSettings {
        &self.settings
    }

    /// Server indexes in the order to try them: those not in back-off first, in configured
    /// order, then those in back-off.
    fn server_order(&self) -> Vec<usize> {
        let now = self.clock.now();
        let down = match self.down_until.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        let is_down = |i: usize| down.get(i).copied().flatten().is_some_and(|t| t > now);
        let n = self.settings.servers.len();
        let mut order = Vec::with_capacity(n);
        order.extend((0..n).filter(|&i| !is_down(i)));
        order.extend((0..n).filter(|&i| is_down(i)));
        order
    }

    fn mark(&self, index: usize, down: bool) {
        let until = down.then(|| self.clock.now() + self.settings.down_backoff);
        let mut guard = match self.down_until.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(slot) = guard.get_mut(index) {
            *slot = until;
        }
        let mut reported = match self.reported.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let (Some(base), Some(last)) =
            (self.settings.servers.get(index), reported.get_mut(index))
        {
            if *last != Some(!down) {
                *last = Some(!down);
                self.observer.sxs_server(base.as_str(), !down);
            }
        }
    }

    /// Whether any server is outside its back-off (for RADIUS Status-Server).
    pub fn any_server_up(&self) -> bool {
        let now = self.clock.now();
        match self.down_until.lock() {
            Ok(d) => d.iter().any(|t| t.is_none_or(|t| t <= now)),
            Err(_) => false,
        }
    }

    /// `validateOtp` for `identity`. See [`Verdict`] for what each outcome means.
    pub async fn validate_otp(&self, identity: &Identity, otp: &Otp) -> Verdict {
        self.validate_otp_with_profile(identity, otp, &self.settings.application_profile)
            .await
    }

    /// `validateOtp` with another application profile (an SMS code is checked with
    /// `[sxs.methods.send_sms] application_profile`).
    pub async fn validate_otp_with_profile(
        &self,
        identity: &Identity,
        otp: &Otp,
        application_profile: &str,
    ) -> Verdict {
        if !otp_is_well_formed(otp) {
            return Verdict::Reject {
                code: codes::LOCAL_MALFORMED_OTP.into(),
                message: "the one-time password must be 4 to 10 digits".into(),
            };
        }
        if let Err(v) = has_identity(identity) {
            return v;
        }
        let envelope = || {
            soap::validate_otp_request(
                otp,
                identity.token_sn.as_deref(),
                identity.user_id.as_deref(),
                application_profile,
            )
        };
        self.auth_call(
            "validateOtp",
            &self.settings.auth_path,
            "",
            envelope,
            |status, body, url| interpret_validate(status, body, identity, url),
        )
        .await
    }

    /// Dynamic linking: has SxS check that `mac` is the MAC the user's token computes over
    /// `input` (`[sxs.methods.validate_mac]`). Single use like an OTP: never sent twice.
    pub async fn validate_mac(&self, identity: &Identity, input: &str, mac: &Secret) -> Verdict {
        if !otp_is_well_formed(mac) {
            return Verdict::Reject {
                code: codes::LOCAL_MALFORMED_OTP.into(),
                message: "the MAC must be 4 to 10 digits".into(),
            };
        }
        if input.is_empty()
            || input.len() > MAX_MAC_INPUT
            || !input.bytes().all(|b| b.is_ascii_graphic())
        {
            return Verdict::Reject {
                code: codes::LOCAL_MALFORMED_MAC_INPUT.into(),
                message: format!(
                    "the MAC input must be 1 to {MAX_MAC_INPUT} printable characters without spaces"
                ),
            };
        }
        if let Err(v) = has_identity(identity) {
            return v;
        }
        let method = &self.settings.methods.validate_mac;
        let envelope = || {
            soap::validate_mac_request(
                method,
                mac,
                input,
                identity.token_sn.as_deref(),
                identity.user_id.as_deref(),
            )
        };
        self.auth_call(
            "validateMac",
            &method.path,
            &method.soap_action,
            envelope,
            |status, body, url| interpret_validate(status, body, identity, url),
        )
        .await
    }

    /// Asks SxS to send an SMS one-time password to `identity`'s registered mobile
    /// (`[sxs.methods.send_sms]`), within the per-user limit of `limiter`. Not idempotent:
    /// never retried once it may have been delivered. `Accept` means SxS took the request.
    pub async fn send_sms_otp(
        &self,
        identity: &Identity,
        limiter: &dyn SendLimiter,
        now_unix: u64,
    ) -> SmsSent {
        let refused = |verdict| SmsSent {
            verdict,
            masked_mobile: None,
        };
        if let Err(v) = has_identity(identity) {
            return refused(v);
        }
        match limiter.try_acquire(&identity.user, now_unix) {
            Ok(()) => {}
            Err(Refusal::Limited { retry_after_secs }) => {
                return refused(Verdict::Reject {
                    code: codes::LOCAL_SMS_RATE_LIMITED.into(),
                    message: format!(
                    "too many SMS codes requested for this user; try again in {retry_after_secs} s"
                ),
                })
            }
            Err(Refusal::Broken(cause)) => return refused(Verdict::unavailable(cause)),
        }
        let method = &self.settings.methods.send_sms;
        let envelope = || {
            zeroize::Zeroizing::new(soap::send_sms_request(
                method,
                identity.token_sn.as_deref(),
                identity.user_id.as_deref(),
            ))
        };
        let mut masked_mobile = None;
        let verdict = self
            .auth_call(
                "sendSms",
                &method.path,
                &method.soap_action,
                envelope,
                |status, body, url| match soap::read_send_sms(body, &method.mobile_element) {
                    Ok(soap::SendSmsAnswer::Failure { code, message }) => {
                        Verdict::Reject { code, message }
                    }
                    Ok(soap::SendSmsAnswer::Sent { mobile }) if status == 200 => {
                        masked_mobile = mobile.map(|m| crate::method::mask_mobile(&m));
                        Verdict::Accept {
                            token_sn: identity.token_sn.clone().unwrap_or_default(),
                            user_id: identity.user_id.clone().unwrap_or_default(),
                        }
                    }
                    Ok(soap::SendSmsAnswer::Sent { .. }) => {
                        Verdict::unavailable(format!("{url}: HTTP {status} with a success body"))
                    }
                    Err(e) if status == 200 => {
                        Verdict::unavailable(format!("{url}: malformed answer: {e}"))
                    }
                    Err(_) => {
                        Verdict::unavailable(format!("{url}: HTTP {status} without a SOAP answer"))
                    }
                },
            )
            .await;
        SmsSent {
            verdict,
            masked_mobile,
        }
    }

    /// PUSH: asks SxS to push a request to `identity`'s mToken app showing `input`, and to
    /// call `callback` with the result (`[sxs.methods.start_push]`). `Accept` means SxS took
    /// the request; the approval itself arrives at the callback. Never repeated.
    pub async fn start_push(&self, identity: &Identity, input: &str, callback: &str) -> Verdict {
        if let Err(v) = has_identity(identity) {
            return v;
        }
        let method = &self.settings.methods.start_push;
        let envelope = || {
            soap::start_push_request(
                method,
                input,
                callback,
                identity.token_sn.as_deref(),
                identity.user_id.as_deref(),
            )
        };
        self.auth_call(
            "startPush",
            &method.path,
            &method.soap_action,
            envelope,
            |status, body, url| match soap::read_ack(body) {
                Ok(Some((code, message))) => Verdict::Reject { code, message },
                Ok(None) if status == 200 => Verdict::Accept {
                    token_sn: identity.token_sn.clone().unwrap_or_default(),
                    user_id: identity.user_id.clone().unwrap_or_default(),
                },
                Ok(None) => {
                    Verdict::unavailable(format!("{url}: HTTP {status} with a success body"))
                }
                Err(e) if status == 200 => {
                    Verdict::unavailable(format!("{url}: malformed answer: {e}"))
                }
                Err(_) => {
                    Verdict::unavailable(format!("{url}: HTTP {status} without a SOAP answer"))
                }
            },
        )
        .await
    }

    /// One single-use call to the authentication service at `path`: bounded by
    /// `max_connections` and one deadline, sent to the next server only when the previous one
    /// provably did not get it. The HTTP answer of the server that did, or `Unavailable`.
    /// `envelope` is written once a connection is free: requests queued for one hold no body.
    async fn auth_call(
        &self,
        operation: &'static str,
        path: &str,
        soap_action: &str,
        envelope: impl FnOnce() -> zeroize::Zeroizing<String>,
        interpret: impl FnOnce(u16, &str, &url::Url) -> Verdict,
    ) -> Verdict {
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, self.in_flight.acquire()).await
        else {
            return Verdict::unavailable(format!(
                "{} SxS calls already in flight (sxs.max_connections) for {:?}",
                self.max_connections, self.settings.timeout
            ));
        };
        let envelope = envelope();
        let mut not_delivered = Vec::new();
        let servers = self.server_order();
        let count = servers.len();
        for (attempt, index) in servers.into_iter().enumerate() {
            let Some(base) = self.settings.servers.get(index) else {
                continue;
            };
            let joined = self
                .endpoints
                .iter()
                .find(|(p, _)| p == path)
                .and_then(|(_, urls)| urls.get(index).cloned());
            let url = match joined.unwrap_or_else(|| join(base, path)) {
                Ok(u) => u,
                Err(e) => return Verdict::unavailable(e),
            };
            let start = Instant::now();
            // Boxed, so the HTTP exchange's state exists only while a connection is in use,
            // not in every request waiting for one above (thousands in a burst).
            match Box::pin(self.post(&url, soap_action, envelope.as_bytes(), deadline)).await {
                Ok((status, body)) => {
                    self.mark(index, false);
                    let verdict = interpret(status, &body, &url);
                    self.observed(operation, index, start, verdict.kind());
                    return verdict;
                }
                Err(SendError::NotDelivered(cause)) => {
                    self.mark(index, true);
                    if attempt + 1 < count {
                        tracing::warn!(server = %url, cause, "SxS server not reachable; trying the next one");
                    } else {
                        tracing::warn!(server = %url, cause, "SxS server not reachable; no other server to try");
                    }
                    not_delivered.push(format!("{url}: {cause}"));
                    self.observed(operation, index, start, "unavailable");
                }
                Err(SendError::Failed(cause)) => {
                    let verdict = Verdict::unavailable(format!("{url}: {cause}"));
                    self.observed(operation, index, start, verdict.kind());
                    return verdict;
                }
            }
        }
        Verdict::unavailable(format!(
            "no SxS server reachable ({})",
            not_delivered.join("; ")
        ))
    }

    /// POSTs a SOAP body and reads the answer (bounded), all before `deadline`.
    async fn post(
        &self,
        url: &url::Url,
        soap_action: &str,
        body: &[u8],
        deadline: tokio::time::Instant,
    ) -> std::result::Result<(u16, String), SendError> {
        let timed_out =
            || SendError::Failed(format!("timed out after {:?}", self.settings.timeout));
        if deadline <= tokio::time::Instant::now() {
            return Err(timed_out());
        }
        let action;
        let action = if soap_action.is_empty() {
            "\"\""
        } else {
            action = format!("\"{soap_action}\"");
            &action
        };
        let headers = [
            ("Content-Type", "text/xml; charset=utf-8"),
            ("SOAPAction", action),
        ];
        let work = self.http.send("POST", url, &headers, body, soap::MAX_BODY);
        let answer = tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| timed_out())??;
        let text = String::from_utf8(answer.body)
            .map_err(|_| SendError::Failed("response is not UTF-8".into()))?;
        Ok((answer.status, text))
    }

    /// `GET {root}/api/healthCheck` on every server's auth root and on the admin root.
    pub async fn health_check(&self) -> Vec<HealthReport> {
        let mut targets = Vec::new();
        for base in &self.settings.servers {
            targets.push((
                "auth",
                base.join(&self.settings.health_path)
                    .map_err(|e| e.to_string()),
            ));
        }
        if let Some(admin) = &self.settings.admin_url {
            targets.push(("admin", admin_join(admin, &self.settings.admin_health_path)));
        }
        // Few targets, each bounded by the timeout: checked one after the other.
        let mut reports = Vec::with_capacity(targets.len());
        for (root, url) in targets {
            reports.push(match url {
                Ok(url) => self.health_one(root, url).await,
                Err(e) => HealthReport {
                    root,
                    url: String::new(),
                    healthy: false,
                    latency: Duration::ZERO,
                    detail: format!("bad URL: {e}"),
                },
            });
        }
        // A healthy auth root ends a back-off early.
        for (i, r) in reports.iter().enumerate() {
            if r.root == "auth" && i < self.settings.servers.len() {
                self.mark(i, !r.healthy);
            }
        }
        reports
    }

    async fn health_one(&self, root: &'static str, url: url::Url) -> HealthReport {
        let start = Instant::now();
        let result = async {
            let work = self.http.send(
                "GET",
                &url,
                &[("Accept", "application/json")],
                &[],
                MAX_HEALTH_BODY,
            );
            let answer = tokio::time::timeout(self.settings.timeout, work)
                .await
                .map_err(|_| format!("timed out after {:?}", self.settings.timeout))?
                .map_err(|e| match e {
                    SendError::NotDelivered(c) | SendError::Failed(c) => c,
                })?;
            if !(200..300).contains(&answer.status) {
                return Err(format!("HTTP {}", answer.status));
            }
            let v: serde_json::Value = serde_json::from_slice(&answer.body)
                .map_err(|e| format!("not a JSON health answer: {e}"))?;
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
                .ok_or_else(|| "JSON health answer has no \"message\"".to_string())
        }
        .await;
        let latency = start.elapsed();
        match result {
            Ok(message) => HealthReport {
                root,
                url: url.to_string(),
                healthy: true,
                latency,
                detail: message,
            },
            Err(cause) => HealthReport {
                root,
                url: url.to_string(),
                healthy: false,
                latency,
                detail: cause,
            },
        }
    }

    // -----------------------------------------------------------------------------------------
    // Administration (admin root, no failover: these calls are not single-use but some create)

    async fn admin_call(
        &self,
        operation: &'static str,
        service_path: &str,
        envelope: String,
    ) -> Result<soap::Element<'static>> {
        let admin = self
            .settings
            .admin_url
            .as_ref()
            .ok_or_else(|| Error::InvalidInput {
                field: "sxs.admin_url",
                message: "not set in the configuration; administrative calls need it".into(),
            })?;
        let url = admin_join(admin, service_path).map_err(|e| Error::SxsUnavailable {
            operation,
            cause: format!("bad admin URL: {e}"),
        })?;
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        let (status, body) = self
            .post(&url, "", envelope.as_bytes(), deadline)
            .await
            .map_err(|e| Error::SxsUnavailable {
                operation,
                cause: match e {
                    SendError::NotDelivered(c) | SendError::Failed(c) => format!("{url}: {c}"),
                },
            })?;
        let parsed = soap::parse(&body);
        let root = match parsed {
            Ok(root) => root,
            Err(e) => {
                return Err(Error::SxsUnavailable {
                    operation,
                    cause: format!("{url}: HTTP {status}, unreadable answer: {e}"),
                })
            }
        };
        match soap::outcome(&root) {
            Ok(Outcome::Fault { code, message } | Outcome::Exception { code, message }) => {
                Err(Error::Sxs {
                    operation,
                    code,
                    message,
                })
            }
            Ok(Outcome::Body(body)) if (200..300).contains(&status) => {
                Ok(body.clone().into_owned())
            }
            Ok(Outcome::Body(_)) => Err(Error::SxsUnavailable {
                operation,
                cause: format!("{url}: HTTP {status}"),
            }),
            Err(e) => Err(Error::SxsUnavailable {
                operation,
                cause: format!("{url}: malformed answer: {e}"),
            }),
        }
    }

    /// `createOrUpdateSxsUser`.
    pub async fn create_or_update_user(&self, user: &SxsUser) -> Result<()> {
        self.admin_call(
            "createOrUpdateSxsUser",
            "/UserAdministrationService",
            soap::create_or_update_user_request(user),
        )
        .await
        .map(|_| ())
    }

    /// `mtmRedistributeToken`: a new token for `user_id`; returns its serial.
    pub async fn redistribute_token(
        &self,
        user_id: &str,
        token_profile_id: u32,
        service_ids: u32,
    ) -> Result<String> {
        const OP: &str = "mtmRedistributeToken";
        let body = self
            .admin_call(
                OP,
                "/services/MobileTokenManagementService",
                soap::redistribute_token_request(user_id, token_profile_id, service_ids),
            )
            .await?;
        let sn = body
            .unique("tokenSN")
            .ok()
            .flatten()
            .or_else(|| body.unique("tokensn").ok().flatten())
            .map(|e| e.text.clone())
            .unwrap_or_default();
        if sn.is_empty() || !sn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::SxsUnavailable {
                operation: OP,
                cause: "the answer carries no decimal token serial".into(),
            });
        }
        Ok(sn)
    }

    /// `mtmRenewActivationCode` with `generateNew=true`.
    pub async fn renew_activation_code(&self, token_sn: &str) -> Result<()> {
        self.admin_call(
            "mtmRenewActivationCode",
            "/services/MobileTokenManagementService",
            soap::renew_activation_code_request(token_sn),
        )
        .await
        .map(|_| ())
    }

    /// `mtmGetActivationCode` with `formatId=1`: the 16-digit activation string.
    pub async fn get_activation_code(&self, token_sn: &str) -> Result<ActivationCode> {
        const OP: &str = "mtmGetActivationCode";
        let body = self
            .admin_call(
                OP,
                "/services/MobileTokenManagementService",
                soap::get_activation_code_request(token_sn),
            )
            .await?;
        let text = body
            .unique("activationCode")
            .ok()
            .flatten()
            .map(|e| e.text.clone())
            .unwrap_or_default();
        ActivationCode::parse(&text).ok_or_else(|| Error::SxsUnavailable {
            operation: OP,
            cause: "the answer carries no 16-digit activationCode".into(),
        })
    }
}

impl Verifier for SxsClient {
    fn verify(&self, identity: &Identity, otp: &Otp) -> impl Future<Output = Verdict> + Send {
        self.validate_otp(identity, otp)
    }

    fn send_sms(
        &self,
        identity: &Identity,
        limiter: &dyn SendLimiter,
        now_unix: u64,
    ) -> impl Future<Output = SmsSent> + Send {
        self.send_sms_otp(identity, limiter, now_unix)
    }

    fn start_push(
        &self,
        identity: &Identity,
        input: &str,
        callback: &str,
    ) -> impl Future<Output = Verdict> + Send {
        SxsClient::start_push(self, identity, input, callback)
    }

    fn verify_sms(&self, identity: &Identity, code: &Otp) -> impl Future<Output = Verdict> + Send {
        self.validate_otp_with_profile(
            identity,
            code,
            &self.settings.methods.send_sms.application_profile,
        )
    }

    fn verify_mac(
        &self,
        identity: &Identity,
        input: &str,
        mac: &Secret,
    ) -> impl Future<Output = Verdict> + Send {
        self.validate_mac(identity, input, mac)
    }

    fn is_ready(&self) -> bool {
        self.any_server_up()
    }
}

/// How long a kept connection to SxS may stay idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest health-check answer read.
const MAX_HEALTH_BODY: usize = 64 * 1024;

/// Longest MAC input sent to SxS.
pub const MAX_MAC_INPUT: usize = 64;

/// What [`SxsClient::send_sms_otp`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSent {
    /// `Accept`: SxS took the request; `Reject`: SxS (or the rate limit) said no;
    /// `Unavailable`: no usable answer.
    pub verdict: Verdict,
    /// Where it went, masked (`+38599*****67`), when SxS's answer names the number.
    pub masked_mobile: Option<String>,
}

fn has_identity(identity: &Identity) -> std::result::Result<(), Verdict> {
    if identity.token_sn.is_none() && identity.user_id.is_none() {
        return Err(Verdict::unavailable(
            "identity has neither a token serial nor a user id",
        ));
    }
    Ok(())
}

/// The 16-digit activation string, split as the app asks for it.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode {
    /// Digits 1–8.
    pub client_id: String,
    /// Digits 9–16.
    pub activation_code: String,
}

impl ActivationCode {
    /// Splits a 16-digit string; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        (t.len() == 16 && t.bytes().all(|b| b.is_ascii_digit())).then(|| Self {
            client_id: t[..8].to_string(),
            activation_code: t[8..].to_string(),
        })
    }
}

impl fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivationCode")
            .field("client_id", &self.client_id)
            .field("activation_code", &"***")
            .finish()
    }
}

/// `admin_url` + a path, keeping the admin root's own path (`…/SxSAdminWS` + `/api/…`).
fn admin_join(base: &url::Url, path: &str) -> std::result::Result<url::Url, String> {
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url::Url::parse(&joined).map_err(|e| e.to_string())
}

/// `path` on the server `base`, or why not.
fn join(base: &url::Url, path: &str) -> std::result::Result<url::Url, String> {
    base.join(path)
        .map_err(|e| format!("bad URL for {base}: {e}"))
}

/// An error with its causes, `a: b: c`, without repeating the same text.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Turns an HTTP status and body into a verdict. Only a 200 with a well-formed success that
/// matches the identity asked about is an `Accept`.
fn interpret_validate(status: u16, body: &str, identity: &Identity, url: &url::Url) -> Verdict {
    match soap::read_validate_otp(body) {
        Ok(ValidateOtpAnswer::Failure { code, message }) => Verdict::Reject { code, message },
        Ok(ValidateOtpAnswer::Success(ok)) if status == 200 => {
            if let Some(sent) = &identity.token_sn {
                if &ok.token_sn != sent {
                    return Verdict::unavailable(format!(
                        "{url}: answer is for token {} but token {sent} was asked about",
                        ok.token_sn
                    ));
                }
            }
            if let Some(sent) = &identity.user_id {
                if !ok.user_id.is_empty() && !ok.user_id.eq_ignore_ascii_case(sent) {
                    return Verdict::unavailable(format!(
                        "{url}: answer is for user {:?} but user {sent:?} was asked about",
                        ok.user_id
                    ));
                }
            }
            Verdict::Accept {
                token_sn: ok.token_sn,
                user_id: if ok.user_id.is_empty() {
                    identity.user_id.clone().unwrap_or_default()
                } else {
                    ok.user_id
                },
            }
        }
        Ok(ValidateOtpAnswer::Success(_)) => {
            Verdict::unavailable(format!("{url}: HTTP {status} with a success body"))
        }
        Err(e) if status == 200 => Verdict::unavailable(format!("{url}: malformed answer: {e}")),
        Err(_) => Verdict::unavailable(format!("{url}: HTTP {status} without a SOAP answer")),
    }
}

mod http1;
mod tls;

pub(crate) use http1::{is_field_value, is_token};

#[cfg(test)]
mod tests;
