//! `[first_factor.ldap]`, `[first_factor.radius]`, the per-client `first_factor` and
//! `password_otp` keys, and `[[radius.reply]]`: how a RADIUS login checks a directory password
//! before the OTP, and what the NAS gets on Accept.
//!
//! The dictionary names in `[[radius.reply]]` and `pass_attributes` are resolved by
//! `sxs-radiusd` (which reads the FreeRADIUS dictionary); here they are only collected.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Validator;
use crate::error::Result;
use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFirstFactor {
    ldap: Option<RawLdap>,
    radius: Option<RawUpstreamRadius>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLdap {
    urls: Vec<String>,
    #[serde(default)]
    starttls: bool,
    ca_file: Option<PathBuf>,
    connect_timeout: Option<String>,
    timeout: Option<String>,
    pool_size: Option<usize>,
    pool_idle_timeout: Option<String>,
    bind_dn: Option<String>,
    search_base: Option<String>,
    search_filter: Option<String>,
    service_dn: Option<String>,
    service_password: Option<String>,
    service_password_file: Option<PathBuf>,
    group_attribute: Option<String>,
    group_search_base: Option<String>,
    group_search_filter: Option<String>,
    group_name_attribute: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamRadius {
    servers: Vec<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    timeout: Option<String>,
    nas_identifier: Option<String>,
    require_message_authenticator: Option<bool>,
    #[serde(default)]
    pass_attributes: Vec<String>,
}

/// One `[[radius.reply]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReply {
    group: String,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, RawAttributeValue>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAttributeValue {
    One(RawScalar),
    Many(Vec<RawScalar>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawScalar {
    Int(i64),
    Text(String),
}

/// `[first_factor]`: the backends clients may name in `first_factor`.
#[derive(Debug, Clone, Default)]
pub struct FirstFactorSettings {
    pub ldap: Option<LdapSettings>,
    pub radius: Option<UpstreamRadiusSettings>,
}

/// How the user's entry is found and bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapBind {
    /// Bind directly as `template` with `{user}` replaced by the RFC 4514-escaped login.
    Template(String),
    /// Bind as the service account, search `base` with `filter` (`{user}` RFC 4515-escaped),
    /// then bind as the one entry found.
    Search {
        base: String,
        filter: String,
        service_dn: String,
        service_password: Secret,
    },
}

/// Where the user's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapGroups {
    /// No groups.
    None,
    /// An attribute of the user's entry holding group DNs (`memberOf`); the group name is the
    /// value of the DN's first RDN.
    Attribute(String),
    /// A search under `base` with `filter` (`{dn}` and `{user}` RFC 4515-escaped); the group
    /// name is `name_attribute` of each entry found.
    Search {
        base: String,
        filter: String,
        name_attribute: String,
    },
}

/// `[first_factor.ldap]`.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldap://` or `ldaps://` URLs, tried in order.
    pub urls: Vec<String>,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Idle connections kept for the next logins (0: a connection per login).
    pub pool_size: usize,
    /// An idle connection older than this is closed instead of reused.
    pub pool_idle_timeout: Duration,
    pub bind: LdapBind,
    pub groups: LdapGroups,
}

/// `[first_factor.radius]`: an existing RADIUS server that checks the password.
#[derive(Debug, Clone)]
pub struct UpstreamRadiusSettings {
    /// `host:port`, tried in order.
    pub servers: Vec<String>,
    pub secret: Secret,
    /// Per server tried.
    pub timeout: Duration,
    pub nas_identifier: String,
    /// Ignore answers without a Message-Authenticator (default true).
    pub require_message_authenticator: bool,
    /// Attribute names (FreeRADIUS dictionary) copied from the upstream Accept to ours.
    pub pass_attributes: Vec<String>,
}

/// A client's `first_factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstFactorKind {
    /// The NAS checks the password itself, or nobody does (`User-Password` is the OTP).
    #[default]
    None,
    Ldap,
    Radius,
}

impl FirstFactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstFactorKind::None => "none",
            FirstFactorKind::Ldap => "ldap",
            FirstFactorKind::Radius => "radius",
        }
    }
}

/// A client's `password_otp`: how the password and the OTP arrive when there is a first factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOtp {
    /// The Access-Request carries the password; an Access-Challenge asks for the OTP.
    Challenge,
    /// `User-Password` is the password followed by the OTP's `digits` characters.
    Append { digits: usize },
    /// `User-Password` is password, `separator`, OTP (split at the last separator).
    Separator(String),
}

/// A value of one reply attribute, as written; typed against the dictionary by sxs-radiusd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyValue {
    Int(i64),
    Text(String),
}

/// One `[[radius.reply]]` table: what members of `group` get on Accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRule {
    pub group: String,
    /// (attribute name, value), in file order; an attribute may repeat.
    pub attributes: Vec<(String, ReplyValue)>,
}

/// The per-client keys of this file, as written.
pub(super) struct ClientFactorKeys {
    pub first_factor: Option<String>,
    pub password_otp: Option<String>,
    pub otp_digits: Option<usize>,
    pub otp_separator: Option<String>,
}

impl Validator<'_> {
    pub(super) fn validate_first_factor(
        &mut self,
        raw: RawFirstFactor,
    ) -> Result<FirstFactorSettings> {
        let ldap = raw.ldap.map(|l| self.validate_ldap(l)).transpose()?;
        let radius = raw
            .radius
            .map(|r| self.validate_upstream_radius(r))
            .transpose()?;
        Ok(FirstFactorSettings { ldap, radius })
    }

    fn validate_ldap(&mut self, raw: RawLdap) -> Result<LdapSettings> {
        const K: &str = "first_factor.ldap";
        if raw.urls.is_empty() {
            return Err(self.err(
                &format!("{K}.urls"),
                "at least one ldap:// or ldaps:// URL is required",
            ));
        }
        for (i, u) in raw.urls.iter().enumerate() {
            let lower = u.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("ldaps://")
                .or_else(|| lower.strip_prefix("ldap://"));
            if rest.is_none_or(|r| r.trim_end_matches('/').is_empty()) {
                return Err(self.err(
                    &format!("{K}.urls[{i}]"),
                    format!("expected ldap://HOST[:PORT] or ldaps://HOST[:PORT], got {u:?}"),
                ));
            }
            if raw.starttls && lower.starts_with("ldaps://") {
                return Err(self.err(
                    &format!("{K}.starttls"),
                    format!("StartTLS is for ldap:// URLs; {u:?} is already TLS"),
                ));
            }
        }
        if let Some(ca) = &raw.ca_file {
            if !ca.is_file() {
                return Err(self.err(
                    &format!("{K}.ca_file"),
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        let connect_timeout = self.duration(
            &format!("{K}.connect_timeout"),
            raw.connect_timeout.as_deref(),
            "3s",
        )?;
        let timeout = self.duration(&format!("{K}.timeout"), raw.timeout.as_deref(), "5s")?;
        if connect_timeout.is_zero() || timeout.is_zero() {
            return Err(self.err(
                &format!("{K}.timeout"),
                "timeouts must be greater than zero",
            ));
        }
        let pool_size = raw.pool_size.unwrap_or(8);
        if pool_size > 1024 {
            return Err(self.err(
                &format!("{K}.pool_size"),
                format!("{pool_size}: at most 1024 idle connections (0 opens one per login)"),
            ));
        }
        let pool_idle_timeout = self.duration(
            &format!("{K}.pool_idle_timeout"),
            raw.pool_idle_timeout.as_deref(),
            "60s",
        )?;
        let bind = match (raw.bind_dn, raw.search_filter) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    &format!("{K}.bind_dn"),
                    "give either `bind_dn` (a DN template) or `search_filter` (search then bind), not both",
                ))
            }
            (None, None) => {
                return Err(self.err(
                    &format!("{K}.bind_dn"),
                    "give `bind_dn` (e.g. \"uid={user},ou=people,dc=example,dc=org\") or `search_base` + `search_filter` + `service_dn`",
                ))
            }
            (Some(t), None) => {
                if !t.contains("{user}") {
                    return Err(self.err(&format!("{K}.bind_dn"), "the template must contain {user}"));
                }
                LdapBind::Template(t)
            }
            (None, Some(filter)) => {
                if !filter.contains("{user}") {
                    return Err(self.err(&format!("{K}.search_filter"), "the filter must contain {user}"));
                }
                let base = raw.search_base.ok_or_else(|| {
                    self.err(&format!("{K}.search_base"), "required with `search_filter`")
                })?;
                let service_dn = raw.service_dn.ok_or_else(|| {
                    self.err(&format!("{K}.service_dn"), "required with `search_filter` (the account that searches)")
                })?;
                let service_password = self
                    .secret(&format!("{K}.service_password"), raw.service_password, raw.service_password_file)?
                    .ok_or_else(|| {
                        self.err(&format!("{K}.service_password_file"), "required with `service_dn`")
                    })?;
                LdapBind::Search {
                    base,
                    filter,
                    service_dn,
                    service_password,
                }
            }
        };
        let groups = match (raw.group_attribute, raw.group_search_filter) {
            (Some(_), Some(_)) => return Err(self.err(
                &format!("{K}.group_attribute"),
                "give either `group_attribute` (e.g. memberOf) or `group_search_filter`, not both",
            )),
            (Some(a), None) => LdapGroups::Attribute(a),
            (None, Some(filter)) => LdapGroups::Search {
                base: raw.group_search_base.ok_or_else(|| {
                    self.err(
                        &format!("{K}.group_search_base"),
                        "required with `group_search_filter`",
                    )
                })?,
                filter,
                name_attribute: raw.group_name_attribute.unwrap_or_else(|| "cn".to_string()),
            },
            (None, None) => LdapGroups::None,
        };
        Ok(LdapSettings {
            urls: raw.urls,
            starttls: raw.starttls,
            ca_file: raw.ca_file,
            connect_timeout,
            timeout,
            pool_size,
            pool_idle_timeout,
            bind,
            groups,
        })
    }

    fn validate_upstream_radius(
        &mut self,
        raw: RawUpstreamRadius,
    ) -> Result<UpstreamRadiusSettings> {
        const K: &str = "first_factor.radius";
        if raw.servers.is_empty() {
            return Err(self.err(
                &format!("{K}.servers"),
                "at least one server (\"host:port\") is required",
            ));
        }
        for (i, s) in raw.servers.iter().enumerate() {
            let port_ok = s.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                return Err(self.err(
                    &format!("{K}.servers[{i}]"),
                    format!("expected \"host:port\" such as \"10.0.0.5:1812\", got {s:?}"),
                ));
            }
        }
        let secret = self
            .secret(&format!("{K}.secret"), raw.secret, raw.secret_file)?
            .ok_or_else(|| {
                self.err(
                    &format!("{K}.secret_file"),
                    "the upstream server's shared secret is required",
                )
            })?;
        let timeout = self.duration(&format!("{K}.timeout"), raw.timeout.as_deref(), "3s")?;
        if timeout.is_zero() {
            return Err(self.err(&format!("{K}.timeout"), "must be greater than zero"));
        }
        Ok(UpstreamRadiusSettings {
            servers: raw.servers,
            secret,
            timeout,
            nas_identifier: raw
                .nas_identifier
                .unwrap_or_else(|| "sxs-radiusd".to_string()),
            require_message_authenticator: raw.require_message_authenticator.unwrap_or(true),
            pass_attributes: raw.pass_attributes,
        })
    }

    /// A client's `first_factor`, `password_otp`, `otp_digits` and `otp_separator`.
    pub(super) fn client_factors(
        &self,
        key: &str,
        raw: ClientFactorKeys,
        backends: &FirstFactorSettings,
        has_state_key: bool,
    ) -> Result<(FirstFactorKind, PasswordOtp)> {
        let ClientFactorKeys {
            first_factor,
            password_otp,
            otp_digits,
            otp_separator,
        } = raw;
        let (first_factor, password_otp) = (first_factor.as_deref(), password_otp.as_deref());
        let kind = match first_factor {
            None | Some("none") => FirstFactorKind::None,
            Some("ldap") => FirstFactorKind::Ldap,
            Some("radius") => FirstFactorKind::Radius,
            Some(other) => {
                return Err(self.err(
                    &format!("{key}.first_factor"),
                    format!("expected \"none\", \"ldap\" or \"radius\", got {other:?}"),
                ))
            }
        };
        match kind {
            FirstFactorKind::Ldap if backends.ldap.is_none() => {
                return Err(self.err(
                    &format!("{key}.first_factor"),
                    "\"ldap\" needs a [first_factor.ldap] section",
                ))
            }
            FirstFactorKind::Radius if backends.radius.is_none() => {
                return Err(self.err(
                    &format!("{key}.first_factor"),
                    "\"radius\" needs a [first_factor.radius] section",
                ))
            }
            _ => {}
        }
        if kind == FirstFactorKind::None
            && (password_otp.is_some() || otp_digits.is_some() || otp_separator.is_some())
        {
            return Err(self.err(
                &format!("{key}.password_otp"),
                "only meaningful with first_factor = \"ldap\" or \"radius\"",
            ));
        }
        let mode = match password_otp {
            None | Some("challenge") => PasswordOtp::Challenge,
            Some("append") => {
                let digits = otp_digits.unwrap_or(6);
                if !(4..=10).contains(&digits) {
                    return Err(self.err(
                        &format!("{key}.otp_digits"),
                        format!("expected 4 to 10, got {digits}"),
                    ));
                }
                PasswordOtp::Append { digits }
            }
            Some("separator") => {
                let sep = otp_separator.unwrap_or_else(|| ",".to_string());
                if sep.is_empty() {
                    return Err(self.err(&format!("{key}.otp_separator"), "must not be empty"));
                }
                PasswordOtp::Separator(sep)
            }
            Some(other) => {
                return Err(self.err(
                    &format!("{key}.password_otp"),
                    format!("expected \"challenge\", \"append\" or \"separator\", got {other:?}"),
                ))
            }
        };
        if kind != FirstFactorKind::None && mode == PasswordOtp::Challenge && !has_state_key {
            return Err(self.err(
                "radius.state_key_file",
                format!("required by {key}: password_otp = \"challenge\" signs a State"),
            ));
        }
        Ok((kind, mode))
    }

    pub(super) fn validate_reply(&self, raw: Vec<RawReply>) -> Result<Vec<ReplyRule>> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            if r.group.trim().is_empty() {
                return Err(self.err(&format!("radius.reply[{i}].group"), "must not be empty"));
            }
            if r.attributes.is_empty() {
                return Err(self.err(
                    &format!("radius.reply[{i}].attributes"),
                    "no attributes given",
                ));
            }
            let mut attributes = Vec::new();
            for (name, value) in r.attributes {
                let values = match value {
                    RawAttributeValue::One(v) => vec![v],
                    RawAttributeValue::Many(v) => v,
                };
                for v in values {
                    attributes.push((
                        name.clone(),
                        match v {
                            RawScalar::Int(n) => ReplyValue::Int(n),
                            RawScalar::Text(s) => ReplyValue::Text(s),
                        },
                    ));
                }
            }
            out.push(ReplyRule {
                group: r.group,
                attributes,
            });
        }
        Ok(out)
    }
}
