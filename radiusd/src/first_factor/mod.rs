//! The first factor: a directory password checked before the OTP, one backend per file
//! ([`ldap`], [`radius`]). The handler asks it before SxS and never after, so a wrong password
//! never spends an OTP. A backend that cannot be reached is a Reject, whatever `failmode` says:
//! failmode is about SxS only.

use std::future::Future;

use common::config::FirstFactorKind;
use common::Secret;

use crate::reply::Attributes;

mod flow;
pub mod ldap;
pub mod passed;
pub mod radius;

pub use self::ldap::LdapFirstFactor;
pub use self::passed::{PassedEntry, PassedStore};
pub use self::radius::UpstreamRadius;

/// What a first-factor check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The password is right.
    Pass {
        /// The user's groups (LDAP), for reply attributes and exemptions.
        groups: Vec<String>,
        /// Attributes to pass through to our Accept (upstream RADIUS).
        attributes: Attributes,
    },
    /// Wrong password, unknown user, or input refused; `reason` is for the log (no secrets).
    Fail { reason: String },
    /// The backend could not be asked; `cause` is for the log.
    Unavailable { cause: String },
}

/// A password check. One implementation per backend.
pub trait FirstFactor: Send + Sync + std::fmt::Debug {
    /// Checks `password` for `user` (the login as received, before identity mapping).
    fn check(&self, user: &str, password: &Secret) -> impl Future<Output = Check> + Send;
}

/// The backends configured in `[first_factor]`; a client picks one by name.
#[derive(Debug, Default)]
pub struct FirstFactors {
    pub ldap: Option<LdapFirstFactor>,
    pub radius: Option<UpstreamRadius>,
}

impl FirstFactors {
    /// Checks with the backend `kind`. `None` passes without looking (no groups).
    pub async fn check(&self, kind: FirstFactorKind, user: &str, password: &Secret) -> Check {
        let missing = || Check::Unavailable {
            cause: format!("first_factor = \"{}\" is not configured", kind.as_str()),
        };
        match kind {
            FirstFactorKind::None => Check::Pass {
                groups: Vec::new(),
                attributes: Vec::new(),
            },
            FirstFactorKind::Ldap => match &self.ldap {
                Some(l) => l.check(user, password).await,
                None => missing(),
            },
            FirstFactorKind::Radius => match &self.radius {
                Some(r) => r.check(user, password).await,
                None => missing(),
            },
        }
    }
}

/// Per-client first-factor settings, the backends and the reply attributes: everything the
/// handler needs beyond the OTP (what passed in a challenge's first round is kept in a
/// [`PassedStore`], which outlives reloads).
#[derive(Debug, Default)]
pub struct Factors {
    pub backends: FirstFactors,
    /// By client name; a client not listed has `first_factor = "none"`.
    pub clients: std::collections::HashMap<String, (FirstFactorKind, PasswordOtp)>,
    pub reply: crate::reply::ReplyAttributes,
}

impl Factors {
    /// The client's first factor and input form, when it has one.
    pub fn of(&self, client: &str) -> Option<(FirstFactorKind, &PasswordOtp)> {
        self.clients
            .get(client)
            .filter(|(k, _)| *k != FirstFactorKind::None)
            .map(|(k, m)| (*k, m))
    }
}

use common::config::PasswordOtp;

/// Splits `User-Password` into (password, OTP) for `append` and `separator`; `None` when it
/// does not have the expected shape. In `challenge` the whole value is the password.
pub fn split(mode: &PasswordOtp, value: &Secret) -> Option<(Secret, Option<Secret>)> {
    let bytes = value.expose();
    match mode {
        PasswordOtp::Challenge => Some((value.clone(), None)),
        PasswordOtp::Append { digits } => {
            let cut = bytes.len().checked_sub(*digits).filter(|c| *c > 0)?;
            let (pw, otp) = bytes.split_at(cut);
            otp.iter()
                .all(u8::is_ascii_digit)
                .then(|| (Secret::new(pw.to_vec()), Some(Secret::new(otp.to_vec()))))
        }
        PasswordOtp::Separator(sep) => {
            let sep = sep.as_bytes();
            let at = bytes
                .windows(sep.len())
                .rposition(|w| w == sep)
                .filter(|at| *at > 0)?;
            let pw = bytes.get(..at)?;
            let otp = bytes.get(at + sep.len()..).filter(|o| !o.is_empty())?;
            Some((Secret::new(pw.to_vec()), Some(Secret::new(otp.to_vec()))))
        }
    }
}

impl Factors {
    /// Everything from the validated configuration: the backends, the dictionary-resolved reply
    /// attributes, the clients' choices. Errors read `FILE: key `KEY`: message`.
    pub fn build(cfg: &common::Config) -> Result<Factors, String> {
        let Some(radius) = &cfg.radius else {
            return Ok(Factors::default());
        };
        let file = &cfg.source;
        let key_err = |(key, msg): (String, String)| format!("{file}: key `{key}`: {msg}");
        let pass_names = cfg
            .first_factor
            .radius
            .as_ref()
            .map(|r| r.pass_attributes.as_slice())
            .unwrap_or_default();
        // The dictionary is read only when something names an attribute.
        let dict = if radius.reply.is_empty() && pass_names.is_empty() {
            crate::dictionary::Dictionary::default()
        } else {
            crate::dictionary::Dictionary::load(&radius.dictionary)
                .map_err(|e| format!("{file}: key `radius.dictionary`: {e}"))?
        };
        let reply =
            crate::reply::ReplyAttributes::compile(&radius.reply, &dict).map_err(key_err)?;
        let ldap = cfg
            .first_factor
            .ldap
            .as_ref()
            .map(LdapFirstFactor::new)
            .transpose()
            .map_err(|e| format!("{file}: {e}"))?;
        let upstream = match &cfg.first_factor.radius {
            Some(r) => {
                let pass = crate::reply::PassThrough::compile(&r.pass_attributes, &dict)
                    .map_err(key_err)?;
                Some(UpstreamRadius::new(r, pass))
            }
            None => None,
        };
        Ok(Factors {
            backends: FirstFactors {
                ldap,
                radius: upstream,
            },
            clients: radius
                .all_clients()
                .map(|c| (c.name.clone(), (c.first_factor, c.password_otp.clone())))
                .collect(),
            reply,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Secret {
        Secret::from(x)
    }

    fn parts(mode: &PasswordOtp, v: &str) -> Option<(String, Option<String>)> {
        split(mode, &s(v)).map(|(p, o)| {
            (
                p.expose_str().unwrap().to_string(),
                o.map(|o| o.expose_str().unwrap().to_string()),
            )
        })
    }

    #[test]
    fn input_forms() {
        let append = PasswordOtp::Append { digits: 6 };
        assert_eq!(
            parts(&append, "s3cret123456"),
            Some(("s3cret".into(), Some("123456".into())))
        );
        assert_eq!(parts(&append, "123456"), None, "no password");
        assert_eq!(parts(&append, "secret12345x"), None, "not digits");
        let sep = PasswordOtp::Separator(",".into());
        assert_eq!(
            parts(&sep, "pa,ss,123456"),
            Some(("pa,ss".into(), Some("123456".into())))
        );
        assert_eq!(parts(&sep, "password"), None);
        assert_eq!(parts(&sep, ",123456"), None);
        assert_eq!(parts(&sep, "password,"), None);
        assert_eq!(
            parts(&PasswordOtp::Challenge, "pw,1"),
            Some(("pw,1".into(), None))
        );
    }
}
