//! The one configuration file, `/etc/sxs/sxs.toml`, shared by the PAM module, the RADIUS
//! server and `sxsctl`.
//!
//! Parse, then validate: a private serde schema with `deny_unknown_fields` is read with the
//! `config` crate (file, then `SXS_SECTION__KEY` environment overrides where the caller allows
//! them) and turned into the validated [`Config`] the rest of the code uses. Every error names
//! the file and the key. Every key is documented in `examples/sxs.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::method::Methods;
use crate::secret::Secret;

mod connections;
mod push;
pub use connections::{ConnectionLimit, AUTO_CAP};
pub use push::{redacted_url, HttpSettings, PushSettings, SharedSettings};
mod first_factor;
pub use first_factor::{
    FirstFactorKind, FirstFactorSettings, LdapBind, LdapGroups, LdapSettings, PasswordOtp,
    ReplyRule, ReplyValue, UpstreamRadiusSettings,
};

/// Where the file lives unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/sxs/sxs.toml";

/// How a configuration is loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Apply `SXS_SECTION__KEY` environment overrides. The PAM module must not: under `sudo`
    /// or `su` the environment belongs to the user being authenticated.
    pub env_overrides: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            env_overrides: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The schema as written in the file.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    sxs: RawSxs,
    #[serde(default)]
    identity: RawIdentity,
    #[serde(default)]
    policy: RawPolicy,
    radius: Option<RawRadius>,
    #[serde(default)]
    pam: RawPam,
    #[serde(default)]
    sms: RawSms,
    http: Option<push::RawHttp>,
    #[serde(default)]
    push: push::RawPush,
    #[serde(default)]
    shared: push::RawShared,
    metrics: Option<RawMetrics>,
    #[serde(default)]
    first_factor: first_factor::RawFirstFactor,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    max_per_user: Option<u32>,
    window: Option<String>,
    pam_state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethods {
    send_sms: Option<RawSxsMethod>,
    validate_mac: Option<RawSxsMethod>,
    start_push: Option<RawSxsMethod>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSxsMethod {
    path: Option<String>,
    namespace: Option<String>,
    request: Option<String>,
    soap_action: Option<String>,
    application_profile: Option<String>,
    mobile_element: Option<String>,
    mac_element: Option<String>,
    input_element: Option<String>,
    callback_element: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSxs {
    servers: Vec<String>,
    auth_path: Option<String>,
    health_path: Option<String>,
    admin_url: Option<String>,
    admin_health_path: Option<String>,
    organization_id: String,
    organization_header: Option<String>,
    application_profile: Option<String>,
    connect_timeout: Option<String>,
    timeout: Option<String>,
    down_backoff: Option<String>,
    max_connections: Option<connections::RawConnectionLimit>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    methods: RawMethods,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    send: Option<String>,
    token_map: Option<PathBuf>,
    strip_realm: Option<bool>,
    lowercase: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    failmode: Option<String>,
    unenrolled: Option<String>,
    unenrolled_codes: Option<Vec<String>>,
    #[serde(default)]
    exempt_users: Vec<String>,
    #[serde(default)]
    exempt_groups: Vec<String>,
    #[serde(default)]
    required_groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadius {
    listen: Option<Vec<String>>,
    mode: Option<String>,
    challenge_prompt: Option<String>,
    state_key: Option<String>,
    state_key_file: Option<PathBuf>,
    state_ttl: Option<String>,
    dedup_ttl: Option<String>,
    max_in_flight: Option<usize>,
    reject_message: Option<String>,
    reject_delay: Option<String>,
    methods: Option<Vec<String>>,
    sms_trigger: Option<String>,
    mac_trigger: Option<String>,
    push_trigger: Option<String>,
    #[serde(default)]
    accounting: bool,
    dictionary: Option<PathBuf>,
    #[serde(default)]
    reply: Vec<first_factor::RawReply>,
    #[serde(default)]
    clients: Vec<RawRadiusClient>,
    tls: Option<RawRadiusTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadiusTls {
    listen: Option<Vec<String>>,
    cert_file: PathBuf,
    key_file: PathBuf,
    ca_file: Option<PathBuf>,
    require_client_cert: Option<bool>,
    handshake_timeout: Option<String>,
    idle_timeout: Option<String>,
    read_timeout: Option<String>,
    write_timeout: Option<String>,
    max_connections: Option<usize>,
    max_buffered_bytes: Option<usize>,
    #[serde(default)]
    clients: Vec<RawTlsClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsClient {
    name: String,
    address: String,
    certificate: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    require_message_authenticator: Option<bool>,
    limit_proxy_state: Option<bool>,
    methods: Option<Vec<String>>,
    first_factor: Option<String>,
    password_otp: Option<String>,
    otp_digits: Option<usize>,
    otp_separator: Option<String>,
}

/// What a `[[radius.tls.clients]]` entry is checked against: the first-factor backends, whether
/// challenges can be signed, and the UDP clients' names.
struct TlsClientContext<'a> {
    backends: &'a FirstFactorSettings,
    has_state_key: bool,
    udp_clients: &'a [RadiusClient],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadiusClient {
    name: String,
    address: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    require_message_authenticator: Option<bool>,
    limit_proxy_state: Option<bool>,
    methods: Option<Vec<String>>,
    first_factor: Option<String>,
    password_otp: Option<String>,
    otp_digits: Option<usize>,
    otp_separator: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPam {
    prompt: Option<String>,
    failmode: Option<String>,
    methods: Option<Vec<String>>,
    #[serde(default)]
    service: BTreeMap<String, RawPamService>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPamService {
    prompt: Option<String>,
    failmode: Option<String>,
    methods: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// A validated configuration. Build it with [`Config::load`] or [`Config::from_toml_str`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (a path, or a name such as `<demo>`), for messages.
    pub source: String,
    pub sxs: SxsSettings,
    pub identity: IdentitySettings,
    pub policy: Policy,
    /// Present when the file has a `[radius]` section.
    pub radius: Option<RadiusSettings>,
    pub pam: PamSettings,
    pub sms: SmsSettings,
    /// Present when the file has an `[http]` section.
    pub http: Option<HttpSettings>,
    pub push: PushSettings,
    pub shared: SharedSettings,
    /// Present when `[metrics] listen` is set (sxs-radiusd's Prometheus endpoint).
    pub metrics: Option<MetricsSettings>,
    /// `[first_factor.*]`: password checks clients can ask for before the OTP.
    pub first_factor: FirstFactorSettings,
}

/// `[sms]`: limits on sending SMS one-time passwords.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    /// At most this many SMS per user per `window` (0 disables SMS sending).
    pub max_per_user: u32,
    pub window: Duration,
    /// Where `pam_sxs` records send times, one file per user (root only), so the limit holds
    /// across the separate processes PAM runs in.
    pub pam_state_dir: PathBuf,
}

/// One SxS call whose SOAP names the vendor does not publish (`[sxs.methods.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SxsMethod {
    /// Service path joined to each server URL.
    pub path: String,
    /// Namespace of the request element (prefix `aut`).
    pub namespace: String,
    /// Local name of the request element.
    pub request: String,
    /// `SOAPAction` header value (without quotes).
    pub soap_action: String,
    pub application_profile: String,
    /// Extra element names, per method: `mobile` (send_sms answer), `mac` and `input`
    /// (validate_mac request).
    pub mobile_element: String,
    pub mac_element: String,
    pub input_element: String,
    /// The element carrying the callback location (start_push).
    pub callback_element: String,
}

/// `[sxs.methods]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SxsMethods {
    pub send_sms: SxsMethod,
    pub validate_mac: SxsMethod,
    pub start_push: SxsMethod,
}

impl SxsMethods {
    /// The defaults: the authentication service, `aut` namespace, `sendSmsOtpRequest` and
    /// `validateMacRequest` (assumed names: see docs/protocol-notes.md).
    pub fn defaults(auth_path: &str, application_profile: &str) -> Self {
        let base = SxsMethod {
            path: auth_path.to_string(),
            namespace: crate::soap::NS_AUTH.to_string(),
            request: String::new(),
            soap_action: String::new(),
            application_profile: application_profile.to_string(),
            mobile_element: "mobile".into(),
            mac_element: "mac".into(),
            input_element: "macInput".into(),
            callback_element: "callbackUrl".into(),
        };
        Self {
            send_sms: SxsMethod {
                request: "sendSmsOtpRequest".into(),
                ..base.clone()
            },
            validate_mac: SxsMethod {
                request: "validateMacRequest".into(),
                ..base.clone()
            },
            start_push: SxsMethod {
                request: "startPushRequest".into(),
                ..base
            },
        }
    }
}

/// `[metrics]`: where `sxs-radiusd` serves `GET /metrics`.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
}

/// `[sxs]`: how to reach SxS.
#[derive(Debug, Clone)]
pub struct SxsSettings {
    /// Base URLs (scheme, host, port), tried in order.
    pub servers: Vec<url::Url>,
    pub auth_path: String,
    pub health_path: String,
    pub admin_url: Option<url::Url>,
    pub admin_health_path: String,
    pub organization_id: String,
    pub organization_header: String,
    pub application_profile: String,
    pub connect_timeout: Duration,
    /// The whole budget of one call, failover included.
    pub timeout: Duration,
    /// How long a server that refused a connection is tried last.
    pub down_backoff: Duration,
    /// validateOtp calls in flight at once (each holds one HTTP connection); more wait, within
    /// `timeout`, for a free one. Resolved to a number when the client is built.
    pub max_connections: ConnectionLimit,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    /// The SxS calls beyond validateOtp: SMS sending and MAC validation.
    pub methods: SxsMethods,
}

/// What is sent to SxS to say who the user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendIdentity {
    /// `UserID` = the (normalised) login name.
    UserId,
    /// `TokenSN` looked up in the token map.
    TokenSn,
    /// Both `TokenSN` (from the map) and `UserID`.
    Both,
}

/// `[identity]`: from a login name to what SxS knows.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    pub send: SendIdentity,
    pub token_map: Option<PathBuf>,
    pub strip_realm: bool,
    pub lowercase: bool,
}

/// What to do when SxS cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Deny (the default).
    Secure,
    /// Let the user in, with a warning in the log. Transport failures only.
    Safe,
}

/// What to do with a user SxS (or the token map) does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unenrolled {
    Deny,
    Allow,
}

/// `[policy]`: the decisions both front ends share.
#[derive(Debug, Clone)]
pub struct Policy {
    pub failmode: FailMode,
    pub unenrolled: Unenrolled,
    /// SxS exception codes that mean "this user has no token here".
    pub unenrolled_codes: Vec<String>,
    pub exempt_users: Vec<String>,
    pub exempt_groups: Vec<String>,
    /// When not empty, only members of one of these groups may authenticate at all (checked
    /// before exemptions and before SxS is asked).
    pub required_groups: Vec<String>,
}

/// `radius.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadiusMode {
    /// `User-Password` is the OTP.
    Otp,
    /// First answer Access-Challenge, the follow-up carries the OTP.
    Challenge,
}

/// `[radius]`: the RADIUS server.
#[derive(Debug, Clone)]
pub struct RadiusSettings {
    pub listen: Vec<SocketAddr>,
    pub mode: RadiusMode,
    pub challenge_prompt: String,
    /// Key that signs `State`; required in challenge mode.
    pub state_key: Option<Secret>,
    pub state_ttl: Duration,
    pub dedup_ttl: Duration,
    pub max_in_flight: usize,
    pub reject_message: String,
    pub reject_delay: Duration,
    /// Methods clients may use unless a client says otherwise (`[radius] methods`).
    pub methods: Methods,
    /// A User-Password equal to this (or empty) asks for an SMS, where SMS is allowed.
    pub sms_trigger: String,
    /// A User-Password equal to this asks for a MAC challenge, where MAC is allowed.
    pub mac_trigger: String,
    /// A User-Password equal to this starts a push approval, where push is allowed.
    pub push_trigger: String,
    /// Answer Accounting-Request with Accounting-Response (and keep nothing).
    pub accounting: bool,
    /// The FreeRADIUS dictionary that names reply attributes.
    pub dictionary: PathBuf,
    /// `[[radius.reply]]`: attributes per group on Accept.
    pub reply: Vec<ReplyRule>,
    pub clients: Vec<RadiusClient>,
    /// `[radius.tls]`: RADIUS over TLS (RFC 6614), when configured.
    pub tls: Option<RadiusTlsSettings>,
}

impl RadiusSettings {
    /// Every client: `[[radius.clients]]` (UDP), then `[[radius.tls.clients]]`.
    pub fn all_clients(&self) -> impl Iterator<Item = &RadiusClient> + Clone {
        self.clients.iter().chain(
            self.tls
                .iter()
                .flat_map(|t| t.clients.iter().map(|c| &c.client)),
        )
    }
}

/// `[radius.tls]`: RADIUS over TLS (RadSec, RFC 6614).
#[derive(Debug, Clone)]
pub struct RadiusTlsSettings {
    pub listen: Vec<SocketAddr>,
    /// PEM: the server's certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM: its private key (not readable by other users).
    pub key_file: PathBuf,
    /// PEM: the CA(s) that sign client certificates.
    pub ca_file: Option<PathBuf>,
    /// Refuse a handshake without a client certificate from `ca_file` (the default).
    pub require_client_cert: bool,
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A connection with no packet for this long is closed.
    pub idle_timeout: Duration,
    /// Once a packet has started, all of it must arrive within this.
    pub read_timeout: Duration,
    /// Writing one answer must finish within this (a peer that does not read is dropped).
    pub write_timeout: Duration,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Bytes of requests and answers held per connection (in 4096-byte slots).
    pub max_buffered_bytes: usize,
    pub clients: Vec<TlsClient>,
}

/// One `[[radius.tls.clients]]` entry: who may connect, by address and certificate.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// Name, network, shared secret (`radsec` unless set) and Message-Authenticator rules.
    pub client: RadiusClient,
    /// Pattern for the certificate's DNS names or subject CN (`*.nas.example.org`, `*`);
    /// `None` only when client certificates are not required.
    pub certificate: Option<String>,
}

/// One `[[radius.clients]]` entry.
#[derive(Debug, Clone)]
pub struct RadiusClient {
    pub name: String,
    pub network: IpNet,
    pub secret: Secret,
    pub require_message_authenticator: bool,
    pub limit_proxy_state: bool,
    /// The methods this client's users may use.
    pub methods: Methods,
    /// The password check before the OTP.
    pub first_factor: FirstFactorKind,
    /// How password and OTP arrive when `first_factor` is not `None`.
    pub password_otp: PasswordOtp,
}

/// `[pam]`: prompt and failmode, with per-service overrides (`[pam.service.sudo]`).
#[derive(Debug, Clone, Default)]
pub struct PamSettings {
    pub prompt: Option<String>,
    pub failmode: Option<FailMode>,
    pub methods: Option<Methods>,
    pub services: BTreeMap<String, PamServiceSettings>,
}

/// One `[pam.service.NAME]` table.
#[derive(Debug, Clone, Default)]
pub struct PamServiceSettings {
    pub prompt: Option<String>,
    pub failmode: Option<FailMode>,
    pub methods: Option<Methods>,
}

impl PamSettings {
    /// The prompt for `service`: the service's own, else `[pam].prompt`.
    pub fn prompt_for(&self, service: &str) -> Option<&str> {
        self.services
            .get(service)
            .and_then(|s| s.prompt.as_deref())
            .or(self.prompt.as_deref())
    }

    /// The methods for `service`: the service's own, else `[pam].methods`, else `otp` only.
    pub fn methods_for(&self, service: &str) -> Methods {
        self.services
            .get(service)
            .and_then(|s| s.methods)
            .or(self.methods)
            .unwrap_or_default()
    }

    /// The failmode for `service`: the service's own, else `[pam].failmode`, else `default`.
    pub fn failmode_for(&self, service: &str, default: FailMode) -> FailMode {
        self.services
            .get(service)
            .and_then(|s| s.failmode)
            .or(self.failmode)
            .unwrap_or(default)
    }
}

impl Config {
    /// Loads and validates the file at `path`.
    pub fn load(path: &Path, opts: LoadOptions) -> Result<Config> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| Error::ConfigFile {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        if meta.mode() & 0o002 != 0 {
            return Err(Error::ConfigFile {
                file: file.clone(),
                message: format!(
                    "is writable by other users (mode {:04o}); run `chmod o-w {file}`",
                    meta.mode() & 0o7777
                ),
            });
        }
        let builder = config::Config::builder().add_source(
            config::File::from(path.to_path_buf())
                .format(config::FileFormat::Toml)
                .required(true),
        );
        let cfg = Self::build(builder, &file, opts)?;
        // Inline secrets make the file itself a secret file.
        if cfg.has_inline_secret && meta.mode() & 0o004 != 0 {
            return Err(Error::SecretFileMode {
                file: path.to_path_buf(),
                key: cfg.inline_secret_key.unwrap_or_default(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(cfg.config)
    }

    /// Parses and validates TOML text; `origin` names it in errors (e.g. `<demo>`).
    /// Environment overrides apply when `opts` says so.
    pub fn from_toml_str(text: &str, origin: &str, opts: LoadOptions) -> Result<Config> {
        let builder = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml));
        Ok(Self::build(builder, origin, opts)?.config)
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
        file: &str,
        opts: LoadOptions,
    ) -> Result<Loaded> {
        let builder = if opts.env_overrides {
            // Only `SXS_SECTION__KEY` variables are overrides; an unrelated `SXS_SOMETHING`
            // in the environment (a script's own variable) is none of our business.
            let overrides: config::Map<String, String> = std::env::vars()
                .filter(|(k, _)| {
                    k.strip_prefix("SXS_")
                        .is_some_and(|rest| rest.contains("__"))
                })
                .collect();
            builder.add_source(
                config::Environment::with_prefix("SXS")
                    .source(Some(overrides))
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("sxs.servers")
                    .with_list_parse_key("radius.listen")
                    .with_list_parse_key("radius.tls.listen")
                    .with_list_parse_key("policy.exempt_users")
                    .with_list_parse_key("policy.exempt_groups")
                    .with_list_parse_key("policy.required_groups")
                    .with_list_parse_key("policy.unenrolled_codes"),
            )
        } else {
            builder
        };
        let raw: RawConfig = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| Error::ConfigFile {
                file: file.to_string(),
                message: describe_config_error(&e),
            })?;
        Validator {
            file,
            inline_secret_key: None,
        }
        .validate(raw)
    }
}

struct Loaded {
    config: Config,
    has_inline_secret: bool,
    inline_secret_key: Option<String>,
}

fn describe_config_error(e: &config::ConfigError) -> String {
    redact_secret_lines(&e.to_string())
}

/// A TOML syntax error quotes the offending line (`3 | secret = "…`); when that line may hold
/// a secret, the quote is replaced so the secret does not reach a terminal or a log.
fn redact_secret_lines(message: &str) -> String {
    message
        .lines()
        .map(|line| {
            let quoted = line.split_once('|').filter(|(num, _)| {
                let n = num.trim();
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            });
            match quoted {
                Some((num, text)) if text.contains("secret") || text.contains("key") => {
                    format!("{num}| <line not shown: it may hold a secret>")
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Validator<'a> {
    file: &'a str,
    inline_secret_key: Option<String>,
}

impl Validator<'_> {
    fn err(&self, key: &str, message: impl Into<String>) -> Error {
        Error::ConfigKey {
            file: self.file.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn duration(&self, key: &str, value: Option<&str>, default: &str) -> Result<Duration> {
        let text = value.unwrap_or(default);
        humantime::parse_duration(text.trim()).map_err(|e| {
            self.err(
                key,
                format!("expected a duration such as \"5s\" or \"250ms\", got {text:?} ({e})"),
            )
        })
    }

    fn url(&self, key: &str, text: &str) -> Result<url::Url> {
        let url = url::Url::parse(text)
            .map_err(|e| self.err(key, format!("expected an http(s) URL, got {text:?} ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(self.err(
                key,
                format!("expected an http:// or https:// URL with a host, got {text:?}"),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not sent (the SxS client sends no Authorization), and a URL is in every error.
            return Err(self.err(
                key,
                "a user name or password in the URL is not supported: SxS is told who we are by \
                 sxs.organization_id and, if it asks, a client certificate (sxs.client_cert)",
            ));
        }
        Ok(url)
    }

    fn path_key(&self, key: &str, value: Option<String>, default: &str) -> Result<String> {
        let p = value.unwrap_or_else(|| default.to_string());
        if !p.starts_with('/') {
            return Err(self.err(key, format!("expected a path starting with '/', got {p:?}")));
        }
        Ok(p)
    }

    fn failmode(&self, key: &str, value: Option<&str>) -> Result<Option<FailMode>> {
        match value {
            None => Ok(None),
            Some("secure") => Ok(Some(FailMode::Secure)),
            Some("safe") => Ok(Some(FailMode::Safe)),
            Some(other) => Err(self.err(
                key,
                format!("expected \"secure\" or \"safe\", got {other:?}"),
            )),
        }
    }

    /// A secret given inline (`key`) or as a file (`key_file`): exactly one of them.
    fn secret(
        &mut self,
        key: &str,
        inline: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Secret>> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(self.err(
                key,
                format!("give either `{key}` or `{key}_file`, not both"),
            )),
            (Some(s), None) => {
                self.inline_secret_key
                    .get_or_insert_with(|| key.to_string());
                Ok(Some(Secret::from(s)))
            }
            (None, Some(path)) => read_secret_file(&path, &format!("{key}_file")).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn validate(mut self, raw: RawConfig) -> Result<Loaded> {
        let sxs = self.validate_sxs(raw.sxs)?;
        let identity = self.validate_identity(raw.identity)?;
        let policy = self.validate_policy(raw.policy)?;
        let first_factor = self.validate_first_factor(raw.first_factor)?;
        let radius = raw
            .radius
            .map(|r| self.validate_radius(r, &first_factor))
            .transpose()?;
        let pam = self.validate_pam(raw.pam)?;
        let sms = self.validate_sms(raw.sms)?;
        let http = self.validate_http(raw.http)?;
        let push = self.validate_push(raw.push)?;
        let shared = self.validate_shared(raw.shared)?;
        let wants_push = radius.as_ref().is_some_and(|r| {
            r.methods.allows(crate::Method::Push)
                || r.clients
                    .iter()
                    .chain(
                        r.tls
                            .iter()
                            .flat_map(|t| t.clients.iter().map(|c| &c.client)),
                    )
                    .any(|c| c.methods.allows(crate::Method::Push))
        });
        if wants_push && http.is_none() {
            return Err(self.err(
                "http",
                "a RADIUS client allows \"push\": an [http] section is needed to receive SxS's callback",
            ));
        }
        let metrics = self.validate_metrics(raw.metrics)?;
        Ok(Loaded {
            config: Config {
                source: self.file.to_string(),
                sxs,
                identity,
                policy,
                radius,
                pam,
                sms,
                http,
                push,
                shared,
                metrics,
                first_factor,
            },
            has_inline_secret: self.inline_secret_key.is_some(),
            inline_secret_key: self.inline_secret_key,
        })
    }

    fn validate_sxs(&mut self, raw: RawSxs) -> Result<SxsSettings> {
        if raw.servers.is_empty() {
            return Err(self.err("sxs.servers", "at least one server URL is required"));
        }
        let servers = raw
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| self.url(&format!("sxs.servers[{i}]"), s))
            .collect::<Result<Vec<_>>>()?;
        let admin_url = raw
            .admin_url
            .as_deref()
            .map(|s| self.url("sxs.admin_url", s))
            .transpose()?;
        let organization_header = raw
            .organization_header
            .unwrap_or_else(|| "OrganizationId".to_string());
        if !crate::client::is_token(&organization_header) {
            return Err(self.err(
                "sxs.organization_header",
                format!("{organization_header:?} is not a valid HTTP header name"),
            ));
        }
        if raw.organization_id.is_empty() || !crate::client::is_field_value(&raw.organization_id) {
            return Err(self.err(
                "sxs.organization_id",
                "must be a non-empty value that fits in an HTTP header",
            ));
        }
        let application_profile = raw
            .application_profile
            .unwrap_or_else(|| "OTP_APP".to_string());
        if application_profile.is_empty() {
            return Err(self.err("sxs.application_profile", "must not be empty"));
        }
        let connect_timeout =
            self.duration("sxs.connect_timeout", raw.connect_timeout.as_deref(), "2s")?;
        let timeout = self.duration("sxs.timeout", raw.timeout.as_deref(), "5s")?;
        if timeout.is_zero() || connect_timeout.is_zero() {
            return Err(self.err("sxs.timeout", "timeouts must be greater than zero"));
        }
        let down_backoff = self.duration("sxs.down_backoff", raw.down_backoff.as_deref(), "30s")?;
        let max_connections = match raw.max_connections {
            None => ConnectionLimit::Auto,
            Some(limit) => limit
                .validate()
                .map_err(|why| self.err("sxs.max_connections", why))?,
        };
        if raw.client_cert.is_some() != raw.client_key.is_some() {
            return Err(self.err(
                "sxs.client_cert",
                "`client_cert` and `client_key` go together: give both or neither",
            ));
        }
        if let Some(key) = &raw.client_key {
            check_secret_file_mode(key, "sxs.client_key")?;
        }
        let auth_path =
            self.path_key("sxs.auth_path", raw.auth_path, "/SxSWS/SxS5Authentication")?;
        let defaults = SxsMethods::defaults(&auth_path, &application_profile);
        let methods = SxsMethods {
            send_sms: self.sxs_method(
                "sxs.methods.send_sms",
                raw.methods.send_sms,
                defaults.send_sms,
            )?,
            validate_mac: self.sxs_method(
                "sxs.methods.validate_mac",
                raw.methods.validate_mac,
                defaults.validate_mac,
            )?,
            start_push: self.sxs_method(
                "sxs.methods.start_push",
                raw.methods.start_push,
                defaults.start_push,
            )?,
        };
        Ok(SxsSettings {
            servers,
            auth_path,
            health_path: self.path_key(
                "sxs.health_path",
                raw.health_path,
                "/SxSWS/api/healthCheck",
            )?,
            admin_url,
            admin_health_path: self.path_key(
                "sxs.admin_health_path",
                raw.admin_health_path,
                "/api/healthCheck",
            )?,
            organization_id: raw.organization_id,
            organization_header,
            application_profile,
            connect_timeout,
            timeout,
            down_backoff,
            max_connections,
            ca_file: raw.ca_file,
            client_cert: raw.client_cert,
            client_key: raw.client_key,
            insecure_skip_verify: raw.insecure_skip_verify,
            methods,
        })
    }

    fn sxs_method(
        &self,
        key: &str,
        raw: Option<RawSxsMethod>,
        default: SxsMethod,
    ) -> Result<SxsMethod> {
        let Some(raw) = raw else {
            return Ok(default);
        };
        let name = |field: &str, v: Option<String>, d: String| -> Result<String> {
            let v = v.unwrap_or(d);
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
                || v.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
            {
                return Err(self.err(
                    &format!("{key}.{field}"),
                    format!("{v:?} is not an XML element name (letters, digits, '_', '-', '.')"),
                ));
            }
            Ok(v)
        };
        let soap_action = raw.soap_action.unwrap_or(default.soap_action);
        if !crate::client::is_field_value(&format!("\"{soap_action}\""))
            || soap_action.contains('"')
        {
            return Err(self.err(
                &format!("{key}.soap_action"),
                "must fit in an HTTP header and hold no '\"'",
            ));
        }
        let namespace = raw.namespace.unwrap_or(default.namespace);
        if namespace.is_empty() || namespace.contains(['"', '<', '>', '&']) {
            return Err(self.err(
                &format!("{key}.namespace"),
                "must be a non-empty URI without '\"', '<', '>' or '&'",
            ));
        }
        let application_profile = raw
            .application_profile
            .unwrap_or(default.application_profile);
        if application_profile.is_empty() {
            return Err(self.err(&format!("{key}.application_profile"), "must not be empty"));
        }
        Ok(SxsMethod {
            path: self.path_key(&format!("{key}.path"), raw.path, &default.path)?,
            namespace,
            request: name("request", raw.request, default.request)?,
            soap_action,
            application_profile,
            mobile_element: name("mobile_element", raw.mobile_element, default.mobile_element)?,
            mac_element: name("mac_element", raw.mac_element, default.mac_element)?,
            input_element: name("input_element", raw.input_element, default.input_element)?,
            callback_element: name(
                "callback_element",
                raw.callback_element,
                default.callback_element,
            )?,
        })
    }

    fn methods(&self, key: &str, raw: Option<Vec<String>>) -> Result<Option<Methods>> {
        raw.map(|list| Methods::parse(&list).map_err(|e| self.err(key, e)))
            .transpose()
    }

    fn validate_sms(&self, raw: RawSms) -> Result<SmsSettings> {
        Ok(SmsSettings {
            max_per_user: raw.max_per_user.unwrap_or(3),
            window: self.duration("sms.window", raw.window.as_deref(), "5m")?,
            pam_state_dir: match raw.pam_state_dir {
                Some(p) if p.is_absolute() => p,
                Some(p) => {
                    return Err(self.err(
                        "sms.pam_state_dir",
                        format!("expected an absolute path, got {}", p.display()),
                    ))
                }
                None => PathBuf::from("/run/sxs/sms"),
            },
        })
    }

    fn validate_identity(&self, raw: RawIdentity) -> Result<IdentitySettings> {
        let send = match raw.send.as_deref() {
            None | Some("user_id") => SendIdentity::UserId,
            Some("token_sn") => SendIdentity::TokenSn,
            Some("both") => SendIdentity::Both,
            Some(other) => {
                return Err(self.err(
                    "identity.send",
                    format!("expected \"user_id\", \"token_sn\" or \"both\", got {other:?}"),
                ))
            }
        };
        if send != SendIdentity::UserId && raw.token_map.is_none() {
            return Err(self.err(
                "identity.token_map",
                "required when identity.send is \"token_sn\" or \"both\"",
            ));
        }
        Ok(IdentitySettings {
            send,
            token_map: raw.token_map,
            strip_realm: raw.strip_realm.unwrap_or(true),
            lowercase: raw.lowercase.unwrap_or(true),
        })
    }

    fn validate_policy(&self, raw: RawPolicy) -> Result<Policy> {
        let failmode = self
            .failmode("policy.failmode", raw.failmode.as_deref())?
            .unwrap_or(FailMode::Secure);
        let unenrolled = match raw.unenrolled.as_deref() {
            None | Some("deny") => Unenrolled::Deny,
            Some("allow") => Unenrolled::Allow,
            Some(other) => {
                return Err(self.err(
                    "policy.unenrolled",
                    format!("expected \"deny\" or \"allow\", got {other:?}"),
                ))
            }
        };
        Ok(Policy {
            failmode,
            unenrolled,
            unenrolled_codes: raw.unenrolled_codes.unwrap_or_else(|| {
                crate::codes::UNENROLLED
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            }),
            exempt_users: raw.exempt_users,
            exempt_groups: raw.exempt_groups,
            required_groups: self.group_names("policy.required_groups", raw.required_groups)?,
        })
    }

    /// One name per client, across `[[radius.clients]]` and `[[radius.tls.clients]]`: names
    /// identify clients in logs, bind challenge States and pick the first factor.
    fn unique_client_name<'a>(
        &self,
        key: &str,
        name: &str,
        mut taken: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        if taken.any(|t| t == name) {
            return Err(self.err(
                &format!("{key}.name"),
                format!("client name {name:?} is used twice (names are unique across [[radius.clients]] and [[radius.tls.clients]]); names identify clients in logs and challenge States"),
            ));
        }
        Ok(())
    }

    /// A list of group names: none empty or padded (a typo there would lock everyone out, or
    /// silently match nothing).
    fn group_names(&self, key: &str, names: Vec<String>) -> Result<Vec<String>> {
        for (i, g) in names.iter().enumerate() {
            if g.is_empty() || g.trim() != g {
                return Err(self.err(
                    &format!("{key}[{i}]"),
                    format!("{g:?}: a group name must not be empty or start or end with spaces"),
                ));
            }
        }
        Ok(names)
    }

    /// A list of listen addresses (`key`), by default every IPv4 and IPv6 address on `port`.
    fn listen(&self, key: &str, value: Option<Vec<String>>, port: u16) -> Result<Vec<SocketAddr>> {
        value
            .unwrap_or_else(|| vec![format!("0.0.0.0:{port}"), format!("[::]:{port}")])
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<SocketAddr>().map_err(|_| {
                    self.err(
                        &format!("{key}[{i}]"),
                        format!("expected an address such as \"0.0.0.0:{port}\" or \"[::]:{port}\", got {s:?}"),
                    )
                })
            })
            .collect()
    }

    /// A client table's `name` (not empty) and `address` (an address or CIDR network).
    fn client_network(&self, key: &str, name: &str, address: &str) -> Result<IpNet> {
        if name.trim().is_empty() {
            return Err(self.err(&format!("{key}.name"), "must not be empty"));
        }
        parse_network(address).ok_or_else(|| {
            self.err(
                &format!("{key}.address"),
                format!("expected an IP address or CIDR such as \"10.0.0.0/24\", got {address:?}"),
            )
        })
    }

    fn validate_radius(
        &mut self,
        mut raw: RawRadius,
        backends: &FirstFactorSettings,
    ) -> Result<RadiusSettings> {
        let listen = self.listen("radius.listen", raw.listen.take(), 1812)?;
        let mode = match raw.mode.as_deref() {
            None | Some("otp") => RadiusMode::Otp,
            Some("challenge") => RadiusMode::Challenge,
            Some(other) => {
                return Err(self.err(
                    "radius.mode",
                    format!("expected \"otp\" or \"challenge\", got {other:?}"),
                ))
            }
        };
        let state_key = self.secret("radius.state_key", raw.state_key, raw.state_key_file)?;
        if let Some(k) = &state_key {
            if k.len() < 16 {
                return Err(self.err(
                    "radius.state_key",
                    format!("must be at least 16 bytes long, is {} bytes", k.len()),
                ));
            }
        } else if mode == RadiusMode::Challenge {
            return Err(self.err(
                "radius.state_key_file",
                "required when radius.mode = \"challenge\" (e.g. `head -c 32 /dev/urandom > /etc/sxs/state.key`)",
            ));
        }
        let max_in_flight = raw.max_in_flight.unwrap_or(10_000);
        if max_in_flight == 0 {
            return Err(self.err("radius.max_in_flight", "must be at least 1"));
        }
        let default_methods = self
            .methods("radius.methods", raw.methods)?
            .unwrap_or_default();
        let mut clients = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.into_iter().enumerate() {
            let key = format!("radius.clients[{i}]");
            let network = self.client_network(&key, &c.name, &c.address)?;
            let secret = self
                .secret(&format!("{key}.secret"), c.secret, c.secret_file)?
                .ok_or_else(|| {
                    self.err(
                        &format!("{key}.secret_file"),
                        format!("client {:?} needs `secret_file` (or `secret`)", c.name),
                    )
                })?;
            if secret.len() <= 8 {
                return Err(self.err(
                    &format!("{key}.secret"),
                    format!(
                        "the secret of client {:?} is {} characters; more than 8 are required (16 or more recommended)",
                        c.name,
                        secret.len()
                    ),
                ));
            }
            let methods = self
                .methods(&format!("{key}.methods"), c.methods)?
                .unwrap_or(default_methods);
            self.unique_client_name(
                &key,
                &c.name,
                clients.iter().map(|o: &RadiusClient| o.name.as_str()),
            )?;
            let (first_factor, password_otp) = self.client_factors(
                &key,
                first_factor::ClientFactorKeys {
                    first_factor: c.first_factor,
                    password_otp: c.password_otp,
                    otp_digits: c.otp_digits,
                    otp_separator: c.otp_separator,
                },
                backends,
                state_key.is_some(),
            )?;
            clients.push(RadiusClient {
                name: c.name,
                network,
                secret,
                require_message_authenticator: c.require_message_authenticator.unwrap_or(true),
                limit_proxy_state: c.limit_proxy_state.unwrap_or(false),
                methods,
                first_factor,
                password_otp,
            });
        }
        let trigger = |key: &str, v: Option<String>, d: &str| -> Result<String> {
            let v = v.unwrap_or_else(|| d.to_string());
            if v.is_empty() || v.len() > 32 || v.bytes().any(|b| b.is_ascii_digit()) {
                return Err(self.err(
                    key,
                    format!("{v:?}: a trigger word must be 1 to 32 characters with no digits (it must never look like an OTP)"),
                ));
            }
            Ok(v)
        };
        let sms_trigger = trigger("radius.sms_trigger", raw.sms_trigger, "sms")?;
        let mac_trigger = trigger("radius.mac_trigger", raw.mac_trigger, "mac")?;
        let push_trigger = trigger("radius.push_trigger", raw.push_trigger, "push")?;
        if sms_trigger == mac_trigger || push_trigger == sms_trigger || push_trigger == mac_trigger
        {
            return Err(self.err(
                "radius.push_trigger",
                "radius.sms_trigger, mac_trigger and push_trigger must differ",
            ));
        }
        let tls = raw
            .tls
            .take()
            .map(|t| {
                self.validate_radius_tls(
                    t,
                    &default_methods,
                    TlsClientContext {
                        backends,
                        has_state_key: state_key.is_some(),
                        udp_clients: &clients,
                    },
                )
            })
            .transpose()?;
        let uses = |m: crate::Method| {
            default_methods.allows(m)
                || clients.iter().any(|c| c.methods.allows(m))
                || tls
                    .iter()
                    .flat_map(|t| &t.clients)
                    .any(|c| c.client.methods.allows(m))
        };
        if (uses(crate::Method::Sms) || uses(crate::Method::Mac)) && state_key.is_none() {
            return Err(self.err(
                "radius.state_key_file",
                "required when a client allows \"sms\" or \"mac\" (they answer with a challenge); e.g. `head -c 32 /dev/urandom > /etc/sxs/state.key`",
            ));
        }
        if listen.is_empty() && tls.is_none() {
            return Err(self.err(
                "radius.listen",
                "at least one address is required (or a [radius.tls] listener)",
            ));
        }
        Ok(RadiusSettings {
            listen,
            mode,
            challenge_prompt: raw
                .challenge_prompt
                .unwrap_or_else(|| "Enter your one-time password: ".to_string()),
            state_key,
            state_ttl: self.duration("radius.state_ttl", raw.state_ttl.as_deref(), "120s")?,
            dedup_ttl: self.duration("radius.dedup_ttl", raw.dedup_ttl.as_deref(), "30s")?,
            max_in_flight,
            reject_message: raw
                .reject_message
                .unwrap_or_else(|| "Authentication failed".to_string()),
            reject_delay: self.duration(
                "radius.reject_delay",
                raw.reject_delay.as_deref(),
                "1s",
            )?,
            methods: default_methods,
            sms_trigger,
            mac_trigger,
            push_trigger,
            accounting: raw.accounting,
            dictionary: raw
                .dictionary
                .unwrap_or_else(|| PathBuf::from("/usr/share/freeradius/dictionary")),
            reply: self.validate_reply(raw.reply)?,
            clients,
            tls,
        })
    }

    fn validate_radius_tls(
        &mut self,
        mut raw: RawRadiusTls,
        default_methods: &crate::Methods,
        ctx: TlsClientContext<'_>,
    ) -> Result<RadiusTlsSettings> {
        let listen = self.listen("radius.tls.listen", raw.listen.take(), 2083)?;
        if listen.is_empty() {
            return Err(self.err("radius.tls.listen", "at least one address is required"));
        }
        check_secret_file_mode(&raw.key_file, "radius.tls.key_file")?;
        let require_client_cert = raw.require_client_cert.unwrap_or(true);
        if require_client_cert && raw.ca_file.is_none() {
            return Err(self.err(
                "radius.tls.ca_file",
                "required while radius.tls.require_client_cert = true (the CA that signs the clients' certificates)",
            ));
        }
        let max_connections = raw.max_connections.unwrap_or(1000);
        if max_connections == 0 {
            return Err(self.err("radius.tls.max_connections", "must be at least 1"));
        }
        let max_buffered_bytes = raw.max_buffered_bytes.unwrap_or(256 * 1024);
        if max_buffered_bytes < 4096 {
            return Err(self.err(
                "radius.tls.max_buffered_bytes",
                format!("must be at least 4096 (one packet), got {max_buffered_bytes}"),
            ));
        }
        let mut clients = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.into_iter().enumerate() {
            let key = format!("radius.tls.clients[{i}]");
            let network = self.client_network(&key, &c.name, &c.address)?;
            let certificate = match c.certificate {
                Some(p) if p.trim().is_empty() => {
                    return Err(self.err(&format!("{key}.certificate"), "must not be empty"))
                }
                Some(p) => Some(p.trim().to_ascii_lowercase()),
                None if require_client_cert => {
                    return Err(self.err(
                        &format!("{key}.certificate"),
                        format!(
                            "client {:?} needs a certificate name pattern (such as \"nas1.example.org\", \"*.example.org\" or \"*\") while client certificates are required",
                            c.name
                        ),
                    ))
                }
                None => None,
            };
            // RFC 6614 §2.3: over TLS the shared secret protects nothing and is "radsec".
            let secret = self
                .secret(&format!("{key}.secret"), c.secret, c.secret_file)?
                .unwrap_or_else(|| Secret::from("radsec"));
            let taken = ctx
                .udp_clients
                .iter()
                .chain(clients.iter().map(|o: &TlsClient| &o.client));
            self.unique_client_name(&key, &c.name, taken.map(|o| o.name.as_str()))?;
            let (first_factor, password_otp) = self.client_factors(
                &key,
                first_factor::ClientFactorKeys {
                    first_factor: c.first_factor,
                    password_otp: c.password_otp,
                    otp_digits: c.otp_digits,
                    otp_separator: c.otp_separator,
                },
                ctx.backends,
                ctx.has_state_key,
            )?;
            clients.push(TlsClient {
                client: RadiusClient {
                    name: c.name,
                    network,
                    secret,
                    require_message_authenticator: c.require_message_authenticator.unwrap_or(true),
                    limit_proxy_state: c.limit_proxy_state.unwrap_or(false),
                    methods: self
                        .methods(&format!("{key}.methods"), c.methods)?
                        .unwrap_or(*default_methods),
                    first_factor,
                    password_otp,
                },
                certificate,
            });
        }
        let mut timeouts = [Duration::ZERO; 4];
        for (slot, (key, value, default)) in timeouts.iter_mut().zip([
            (
                "radius.tls.handshake_timeout",
                &raw.handshake_timeout,
                "10s",
            ),
            ("radius.tls.idle_timeout", &raw.idle_timeout, "120s"),
            ("radius.tls.read_timeout", &raw.read_timeout, "10s"),
            ("radius.tls.write_timeout", &raw.write_timeout, "10s"),
        ]) {
            *slot = self.duration(key, value.as_deref(), default)?;
            if slot.is_zero() {
                return Err(self.err(key, "must be greater than zero"));
            }
        }
        let [handshake_timeout, idle_timeout, read_timeout, write_timeout] = timeouts;
        Ok(RadiusTlsSettings {
            listen,
            cert_file: raw.cert_file,
            key_file: raw.key_file,
            ca_file: raw.ca_file,
            require_client_cert,
            handshake_timeout,
            idle_timeout,
            read_timeout,
            write_timeout,
            max_connections,
            max_buffered_bytes,
            clients,
        })
    }

    fn validate_metrics(&self, raw: Option<RawMetrics>) -> Result<Option<MetricsSettings>> {
        let Some(text) = raw.and_then(|m| m.listen) else {
            return Ok(None);
        };
        let listen = text.trim().parse::<SocketAddr>().map_err(|_| {
            self.err(
                "metrics.listen",
                format!("expected an address such as \"127.0.0.1:9812\", got {text:?}"),
            )
        })?;
        Ok(Some(MetricsSettings { listen }))
    }

    fn validate_pam(&self, raw: RawPam) -> Result<PamSettings> {
        let mut services = BTreeMap::new();
        for (name, s) in raw.service {
            let failmode = self.failmode(
                &format!("pam.service.{name}.failmode"),
                s.failmode.as_deref(),
            )?;
            let methods = self.methods(&format!("pam.service.{name}.methods"), s.methods)?;
            services.insert(
                name,
                PamServiceSettings {
                    prompt: s.prompt,
                    failmode,
                    methods,
                },
            );
        }
        Ok(PamSettings {
            prompt: raw.prompt,
            failmode: self.failmode("pam.failmode", raw.failmode.as_deref())?,
            methods: self.methods("pam.methods", raw.methods)?,
            services,
        })
    }
}

/// An IP address (a /32 or /128) or a CIDR network.
fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Refuses a secret file other users can read.
pub fn check_secret_file_mode(path: &Path, key: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::ReadFile {
        file: path.to_path_buf(),
        key: key.to_string(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(Error::SecretFileMode {
            file: path.to_path_buf(),
            key: key.to_string(),
            mode,
        });
    }
    Ok(())
}

/// Reads a secret file: refused when other users can read it; one trailing newline is removed.
/// The largest secret file read (shared secrets, keys and passwords are far smaller).
pub const MAX_SECRET_FILE: usize = 64 * 1024;

pub fn read_secret_file(path: &Path, key: &str) -> Result<Secret> {
    use std::io::Read;
    check_secret_file_mode(path, key)?;
    let read_err = |source| Error::ReadFile {
        file: path.to_path_buf(),
        key: key.to_string(),
        source,
    };
    // Bounded (a key file is small; a device or a log named by mistake is not), into a buffer
    // allocated once so that no copy of the secret is left behind by a reallocation.
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(MAX_SECRET_FILE + 1));
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE as u64 + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() > MAX_SECRET_FILE {
        return Err(Error::ConfigKey {
            file: path.display().to_string(),
            key: key.to_string(),
            message: format!(
                "the secret file is larger than {MAX_SECRET_FILE} bytes: is it the right file?"
            ),
        });
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(Error::ConfigKey {
            file: path.display().to_string(),
            key: key.to_string(),
            message: "the secret file is empty".to_string(),
        });
    }
    Ok(Secret::new(bytes.to_vec()))
}

#[cfg(test)]
mod tests;
