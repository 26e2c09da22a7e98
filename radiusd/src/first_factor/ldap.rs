//! LDAP first factor (`[first_factor.ldap]`): bind as the user, through a DN template or a
//! search with a service account, over LDAPS or StartTLS with a CA file, with connect and
//! operation timeouts and URL failover; then read the user's groups (an attribute of the entry
//! such as `memberOf`, or a group search).
//!
//! Every piece of the login that goes into a DN is escaped by RFC 4514 (`dn_escape`) and every
//! piece that goes into a filter by RFC 4515 (`ldap_escape`). An empty password is refused
//! before any bind: LDAP treats a simple bind with a DN and no password as an anonymous
//! ("unauthenticated") bind, which succeeds (RFC 4513 §5.1.2).
//!
//! A connection serves one login at a time (binding changes a connection's identity, so
//! sharing one across concurrent logins would mix them). Afterwards it goes back to a small pool
//! of idle connections (`pool_size`, `pool_idle_timeout`) for the next login, which saves the
//! TCP and TLS handshakes: every login starts with a bind (the service account's or the
//! user's), so nothing of the previous identity is used, and a failed bind leaves the connection
//! anonymous (RFC 4513 §4). A connection that failed in any other way is closed, not kept; a
//! kept connection the server has meanwhile closed is noticed and the login retried once on a
//! new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::config::{LdapBind, LdapGroups, LdapSettings};
use common::Secret;
use ldap3::{
    dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry,
};

use super::{Check, FirstFactor};

/// LDAP result code invalidCredentials (RFC 4511): wrong password or no such DN.
const INVALID_CREDENTIALS: u32 = 49;

/// The LDAP backend.
#[derive(Debug)]
pub struct LdapFirstFactor {
    settings: LdapSettings,
    tls: Arc<rustls::ClientConfig>,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<(Ldap, Instant)>>,
    /// Connections opened so far (for the log and the tests).
    opened: AtomicU64,
}

/// Why one step did not succeed.
enum Step {
    /// The directory said no to the user: a Reject.
    Refused(String),
    /// The directory could not be asked: try the next URL, then Reject.
    Down(String),
}

fn down(what: &str, e: &LdapError) -> Step {
    Step::Down(format!("{what}: {e}"))
}

impl LdapFirstFactor {
    /// Builds the TLS configuration: the CA file's certificates when given, else the system's.
    pub fn new(settings: &LdapSettings) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &settings.ca_file {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("first_factor.ldap.ca_file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        format!("first_factor.ldap.ca_file {}: {e}", path.display())
                    })?;
                    roots.add(cert).map_err(|e| {
                        format!("first_factor.ldap.ca_file {}: {e}", path.display())
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "first_factor.ldap.ca_file {}: no PEM certificate in it",
                        path.display()
                    ));
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("first_factor.ldap: TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            settings: settings.clone(),
            tls: Arc::new(tls),
            idle: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
        })
    }

    /// Connections opened since start (each costs a TCP and maybe a TLS handshake).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The most recently used idle connection that is still open and not too old.
    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((mut ldap, since)) = idle.pop() {
            if since.elapsed() <= self.settings.pool_idle_timeout && !ldap.is_closed() {
                return Some(ldap);
            }
            // Dropping the last handle ends its driver task, which closes the socket.
        }
        None
    }

    /// Keeps `ldap` for the next login, when the pool has room; closes it otherwise.
    async fn give_back(&self, mut ldap: Ldap) {
        if self.settings.pool_size > 0 && !ldap.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                let now = Instant::now();
                idle.retain(|(_, since)| {
                    now.duration_since(*since) <= self.settings.pool_idle_timeout
                });
                if idle.len() < self.settings.pool_size {
                    idle.push((ldap, now));
                    return;
                }
            }
        }
        let _ = ldap.unbind().await;
    }

    /// The first URL that answers, with its connection driven in the background.
    async fn connect(&self) -> Result<Ldap, String> {
        let mut causes = Vec::new();
        for url in &self.settings.urls {
            let settings = LdapConnSettings::new()
                .set_conn_timeout(self.settings.connect_timeout)
                .set_starttls(self.settings.starttls)
                .set_config(self.tls.clone());
            // The connect timeout covers TCP; StartTLS and the TLS handshake get one more.
            let attempt = tokio::time::timeout(
                self.settings.connect_timeout.saturating_mul(2),
                LdapConnAsync::with_settings(settings, url),
            )
            .await;
            match attempt {
                Ok(Ok((conn, ldap))) => {
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(async move {
                        if let Err(e) = conn.drive().await {
                            tracing::debug!(error = %e, "LDAP connection ended");
                        }
                    });
                    return Ok(ldap);
                }
                Ok(Err(e)) => {
                    tracing::warn!(url, error = %e, "LDAP server unreachable; trying the next");
                    causes.push(format!("{url}: {e}"));
                }
                Err(_) => {
                    tracing::warn!(url, "LDAP connect timed out; trying the next");
                    causes.push(format!("{url}: connect timed out"));
                }
            }
        }
        Err(causes.join("; "))
    }

    async fn bind(&self, ldap: &mut Ldap, dn: &str, password: &str) -> Result<(), Step> {
        match ldap
            .with_timeout(self.settings.timeout)
            .simple_bind(dn, password)
            .await
        {
            Ok(r) if r.rc == 0 => Ok(()),
            Ok(r) if r.rc == INVALID_CREDENTIALS => {
                Err(Step::Refused("invalid credentials".to_string()))
            }
            Ok(r) => Err(Step::Down(format!("bind answered rc={} {}", r.rc, r.text))),
            Err(e) => Err(down("bind", &e)),
        }
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<String>,
    ) -> Result<Vec<SearchEntry>, Step> {
        let result = ldap
            .with_timeout(self.settings.timeout)
            .search(base, scope, filter, attrs)
            .await
            .map_err(|e| down("search", &e))?;
        let (entries, res) = match result.success() {
            Ok(x) => x,
            // noSuchObject: the base does not exist, so neither does the user.
            Err(LdapError::LdapResult { result }) if result.rc == 32 => return Ok(Vec::new()),
            Err(e) => return Err(down("search", &e)),
        };
        let _ = res;
        // `SearchEntry::construct` panics on malformed BER from the server; fail closed.
        entries
            .into_iter()
            .map(|e| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(e)))
                    .map_err(|_| Step::Down("malformed search entry from the server".to_string()))
            })
            .collect()
    }

    async fn run(&self, ldap: &mut Ldap, user: &str, password: &str) -> Result<Vec<String>, Step> {
        let group_attr = match &self.settings.groups {
            LdapGroups::Attribute(a) => vec![a.clone()],
            _ => vec!["1.1".to_string()],
        };
        let (dn, entry) = match &self.settings.bind {
            LdapBind::Template(t) => (t.replace("{user}", &dn_escape(user)), None),
            LdapBind::Search {
                base,
                filter,
                service_dn,
                service_password,
            } => {
                let service_pw = service_password.expose_str().unwrap_or("");
                match self.bind(ldap, service_dn, service_pw).await {
                    Ok(()) => {}
                    Err(Step::Refused(_)) => {
                        return Err(Step::Down(
                            "the service account's bind was refused (check service_dn and service_password)".into(),
                        ))
                    }
                    Err(e) => return Err(e),
                }
                let filter = filter.replace("{user}", &ldap_escape(user));
                let mut found = self
                    .search(ldap, base, Scope::Subtree, &filter, group_attr.clone())
                    .await?;
                match found.len() {
                    0 => return Err(Step::Refused("no such user in the directory".into())),
                    1 => {}
                    n => {
                        return Err(Step::Refused(format!(
                            "{n} entries match the search filter"
                        )))
                    }
                }
                let entry = found.pop();
                (
                    entry.as_ref().map(|e| e.dn.clone()).unwrap_or_default(),
                    entry,
                )
            }
        };
        // Group searches run as the service account, before the connection becomes the user's.
        let mut groups = Vec::new();
        if let (LdapGroups::Search { .. }, LdapBind::Search { .. }) =
            (&self.settings.groups, &self.settings.bind)
        {
            groups = self.group_search(ldap, user, &dn).await?;
        }
        self.bind(ldap, &dn, password).await?;
        match &self.settings.groups {
            LdapGroups::None => {}
            LdapGroups::Attribute(a) => {
                let entry = match entry {
                    Some(e) => e,
                    None => self
                        .search(
                            ldap,
                            &dn,
                            Scope::Base,
                            "(objectClass=*)",
                            group_attr.clone(),
                        )
                        .await?
                        .pop()
                        .ok_or_else(|| Step::Down("cannot read the user's own entry".into()))?,
                };
                groups = entry
                    .attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(a))
                    .flat_map(|(_, v)| v.iter())
                    .filter_map(|dn| group_name_of(dn))
                    .collect();
            }
            LdapGroups::Search { .. } => {
                if matches!(self.settings.bind, LdapBind::Template(_)) {
                    groups = self.group_search(ldap, user, &dn).await?;
                }
            }
        }
        Ok(groups)
    }

    async fn group_search(
        &self,
        ldap: &mut Ldap,
        user: &str,
        dn: &str,
    ) -> Result<Vec<String>, Step> {
        let LdapGroups::Search {
            base,
            filter,
            name_attribute,
        } = &self.settings.groups
        else {
            return Ok(Vec::new());
        };
        let filter = filter
            .replace("{dn}", &ldap_escape(dn))
            .replace("{user}", &ldap_escape(user));
        let entries = self
            .search(
                ldap,
                base,
                Scope::Subtree,
                &filter,
                vec![name_attribute.clone()],
            )
            .await?;
        Ok(entries
            .into_iter()
            .flat_map(|e| {
                e.attrs
                    .into_iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name_attribute))
                    .flat_map(|(_, v)| v)
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}

/// The value of a DN's first RDN: `cn=vpn-admins,ou=groups,…` → `vpn-admins`.
pub fn group_name_of(dn: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = dn.chars();
    let mut in_value = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next()?;
                if in_value {
                    out.push(next);
                }
            }
            '=' if !in_value => in_value = true,
            ',' | '+' => break,
            c if in_value => out.push(c),
            _ => {}
        }
    }
    let out = out.trim().to_string();
    (in_value && !out.is_empty()).then_some(out)
}

impl FirstFactor for LdapFirstFactor {
    async fn check(&self, user: &str, password: &Secret) -> Check {
        if user.is_empty() {
            return Check::Fail {
                reason: "empty user name".into(),
            };
        }
        // An empty password would make the bind anonymous, and succeed.
        let Some(password) = password.expose_str().filter(|p| !p.is_empty()) else {
            return Check::Fail {
                reason: "empty or non-UTF-8 password".into(),
            };
        };
        // One overall bound on top of the per-operation timeouts.
        let budget = self.settings.timeout.saturating_mul(4) + Duration::from_millis(100);
        let mut reused = self.take_idle();
        loop {
            let was_reused = reused.is_some();
            let mut ldap = match reused.take() {
                Some(l) => l,
                None => match self.connect().await {
                    Ok(l) => l,
                    Err(cause) => {
                        return Check::Unavailable {
                            cause: format!("no LDAP server reachable: {cause}"),
                        }
                    }
                },
            };
            let result = tokio::time::timeout(budget, self.run(&mut ldap, user, password)).await;
            return match result {
                Ok(Ok(groups)) => {
                    self.give_back(ldap).await;
                    Check::Pass {
                        groups,
                        attributes: Vec::new(),
                    }
                }
                Ok(Err(Step::Refused(reason))) => {
                    self.give_back(ldap).await;
                    Check::Fail { reason }
                }
                Ok(Err(Step::Down(cause))) => {
                    let _ = ldap.unbind().await;
                    if was_reused {
                        // The server may have closed it while it was idle: once more, on a new one.
                        tracing::debug!(
                            cause,
                            "a kept LDAP connection failed; retrying on a new one"
                        );
                        continue;
                    }
                    Check::Unavailable { cause }
                }
                Err(_) => {
                    let _ = ldap.unbind().await;
                    Check::Unavailable {
                        cause: "LDAP operations timed out".into(),
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_from_dns() {
        assert_eq!(
            group_name_of("cn=vpn-admins,ou=groups,dc=example,dc=org").as_deref(),
            Some("vpn-admins")
        );
        assert_eq!(
            group_name_of("CN=Doe\\, Jane,OU=x").as_deref(),
            Some("Doe, Jane")
        );
        assert_eq!(group_name_of("cn=a+uid=b,dc=x").as_deref(), Some("a"));
        assert_eq!(group_name_of("garbage"), None);
        assert_eq!(group_name_of("cn=,dc=x"), None);
    }

    #[test]
    fn escaping_is_rfc_4514_and_4515() {
        assert_eq!(dn_escape("doe, jane"), "doe\\2c jane");
        assert_eq!(ldap_escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(ldap_escape("a\0b"), "a\\00b");
        assert_eq!(ldap_escape("\\00"), "\\5c00");
    }
}
