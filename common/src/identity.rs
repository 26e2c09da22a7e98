//! From a login name (`alice`, `alice@CORP`, `CORP\alice`) to what SxS is told: a `UserID`,
//! a `TokenSN` from the token map, or both.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{IdentitySettings, SendIdentity};
use crate::error::{Error, Result};

/// Longest login name accepted.
pub const MAX_USER_LEN: usize = 256;

/// What is sent to SxS for one user. Serde: a pending approval in the shared store records it
/// (names and serials only, nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The normalised login name (for logs and policy).
    pub user: String,
    /// Sent as `TokenSN` when set.
    pub token_sn: Option<String>,
    /// Sent as `UserID` when set.
    pub user_id: Option<String>,
}

/// The result of mapping a login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// Ready to verify.
    Known(Identity),
    /// Token-serial mode and the user has no line in the token map: unenrolled.
    NotInTokenMap { user: String },
    /// The name cannot be a user (empty, too long, control characters): deny.
    Invalid { reason: &'static str },
}

/// Maps login names by the `[identity]` rules. Build once per process (the PAM module: per
/// call; the RADIUS server: at start and on reload).
#[derive(Debug, Clone)]
pub struct IdentityMapper {
    settings: IdentitySettings,
    token_map: HashMap<String, String>,
}

impl IdentityMapper {
    /// Loads the token map when the settings need it.
    pub fn new(settings: &IdentitySettings) -> Result<Self> {
        let token_map = match (&settings.token_map, settings.send) {
            (Some(path), SendIdentity::TokenSn | SendIdentity::Both) => {
                load_token_map(path, settings)?
            }
            _ => HashMap::new(),
        };
        Ok(Self {
            settings: settings.clone(),
            token_map,
        })
    }

    /// Applies `strip_realm` and `lowercase`.
    pub fn normalise(&self, login: &str) -> String {
        normalise(login, &self.settings)
    }

    /// Maps a login name.
    pub fn map(&self, login: &str) -> Mapping {
        if login.is_empty() || login.len() > MAX_USER_LEN {
            return Mapping::Invalid {
                reason: "user name is empty or too long",
            };
        }
        if login.chars().any(char::is_control) {
            return Mapping::Invalid {
                reason: "user name contains control characters",
            };
        }
        let user = self.normalise(login);
        if user.is_empty() {
            return Mapping::Invalid {
                reason: "user name is empty after removing the realm",
            };
        }
        let token_sn = match self.settings.send {
            SendIdentity::UserId => None,
            SendIdentity::TokenSn | SendIdentity::Both => match self.token_map.get(&user) {
                Some(sn) => Some(sn.clone()),
                None => return Mapping::NotInTokenMap { user },
            },
        };
        let user_id = match self.settings.send {
            SendIdentity::TokenSn => None,
            SendIdentity::UserId | SendIdentity::Both => Some(user.clone()),
        };
        Mapping::Known(Identity {
            user,
            token_sn,
            user_id,
        })
    }
}

fn normalise(login: &str, settings: &IdentitySettings) -> String {
    let mut name = login.trim();
    if settings.strip_realm {
        if let Some((_, after)) = name.rsplit_once('\\') {
            name = after;
        }
        if let Some((before, _)) = name.split_once('@') {
            name = before;
        }
    }
    if settings.lowercase {
        name.to_lowercase()
    } else {
        name.to_string()
    }
}

/// Reads `user serial` lines (`#` starts a comment). User names are normalised like logins.
fn load_token_map(path: &Path, settings: &IdentitySettings) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        file: path.to_path_buf(),
        key: "identity.token_map".into(),
        source,
    })?;
    parse_token_map(&text, path, settings)
}

pub(crate) fn parse_token_map(
    text: &str,
    path: &Path,
    settings: &IdentitySettings,
) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: String| Error::TokenMap {
            file: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let mut fields = line.split_whitespace();
        let (Some(user), Some(sn), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err("expected `user serial` (two fields)".into()));
        };
        if !sn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("token serial {sn:?} is not decimal")));
        }
        let user = normalise(user, settings);
        if map.insert(user.clone(), sn.to_string()).is_some() {
            return Err(err(format!("user {user:?} appears twice")));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn settings(send: SendIdentity) -> IdentitySettings {
        IdentitySettings {
            send,
            token_map: None,
            strip_realm: true,
            lowercase: true,
        }
    }

    #[test]
    fn realm_and_case() {
        let m = IdentityMapper::new(&settings(SendIdentity::UserId)).unwrap();
        assert_eq!(m.normalise("Alice@CORP.example"), "alice");
        assert_eq!(m.normalise("CORP\\Alice"), "alice");
        assert_eq!(m.normalise(" bob "), "bob");
        let mut s = settings(SendIdentity::UserId);
        s.strip_realm = false;
        s.lowercase = false;
        let m = IdentityMapper::new(&s).unwrap();
        assert_eq!(m.normalise("Alice@CORP"), "Alice@CORP");
    }

    #[test]
    fn invalid_names() {
        let m = IdentityMapper::new(&settings(SendIdentity::UserId)).unwrap();
        assert!(matches!(m.map(""), Mapping::Invalid { .. }));
        assert!(matches!(m.map("a\nb"), Mapping::Invalid { .. }));
        assert!(matches!(m.map("@CORP"), Mapping::Invalid { .. }));
        assert!(matches!(m.map(&"x".repeat(300)), Mapping::Invalid { .. }));
    }

    #[test]
    fn token_map_modes() {
        let path = PathBuf::from("/etc/sxs/tokens.map");
        let s = settings(SendIdentity::Both);
        let map = parse_token_map(
            "# comment\nAlice 2000038252\n\nbob 42 # trailing\n",
            &path,
            &s,
        )
        .unwrap();
        let m = IdentityMapper {
            settings: s,
            token_map: map.clone(),
        };
        assert_eq!(
            m.map("alice@corp"),
            Mapping::Known(Identity {
                user: "alice".into(),
                token_sn: Some("2000038252".into()),
                user_id: Some("alice".into()),
            })
        );
        assert_eq!(
            m.map("carol"),
            Mapping::NotInTokenMap {
                user: "carol".into()
            }
        );
        let m = IdentityMapper {
            settings: settings(SendIdentity::TokenSn),
            token_map: map,
        };
        let Mapping::Known(id) = m.map("bob") else {
            panic!()
        };
        assert_eq!(id.token_sn.as_deref(), Some("42"));
        assert_eq!(id.user_id, None);
    }

    #[test]
    fn token_map_errors_name_the_line() {
        let path = PathBuf::from("/tmp/t.map");
        let s = settings(SendIdentity::TokenSn);
        for (text, line, needle) in [
            ("alice\n", 1, "two fields"),
            ("a 1\nb 2 3\n", 2, "two fields"),
            ("a 1\n\nb x1\n", 3, "not decimal"),
            ("a 1\nA 2\n", 2, "twice"),
        ] {
            let e = parse_token_map(text, &path, &s).unwrap_err().to_string();
            assert!(e.starts_with(&format!("/tmp/t.map:{line}:")), "{e}");
            assert!(e.contains(needle), "{e}");
        }
    }
}
