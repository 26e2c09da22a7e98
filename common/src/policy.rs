//! The decisions both front ends share: exemptions, unenrolled users, failmode.

use crate::config::{FailMode, Policy, Unenrolled};
use crate::verdict::Verdict;

/// What a front end should do with one authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// SxS accepted the OTP.
    Allow,
    /// SxS could not be reached and `failmode = "safe"`: let in, log loudly.
    AllowFailOpen,
    /// The user has no token and `unenrolled = "allow"`.
    AllowUnenrolled,
    /// SxS said no (wrong OTP, locked token, fault…).
    Deny,
    /// The user has no token and `unenrolled = "deny"`.
    DenyUnenrolled,
    /// SxS could not be reached and `failmode = "secure"`.
    DenyUnavailable,
}

impl Decision {
    /// Whether the user gets in.
    pub fn allows(self) -> bool {
        matches!(
            self,
            Decision::Allow | Decision::AllowFailOpen | Decision::AllowUnenrolled
        )
    }

    /// A short word for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::AllowFailOpen => "allow-failopen",
            Decision::AllowUnenrolled => "allow-unenrolled",
            Decision::Deny => "deny",
            Decision::DenyUnenrolled => "deny-unenrolled",
            Decision::DenyUnavailable => "deny-unavailable",
        }
    }
}

impl Policy {
    /// Decides a verdict under `failmode` (the PAM module may override it per service).
    pub fn decide(&self, verdict: &Verdict, failmode: FailMode) -> Decision {
        match verdict {
            Verdict::Accept { .. } => Decision::Allow,
            Verdict::Reject { code, .. } if self.unenrolled_codes.iter().any(|c| c == code) => {
                self.decide_unenrolled()
            }
            Verdict::Reject { .. } => Decision::Deny,
            Verdict::Unavailable { .. } => match failmode {
                FailMode::Secure => Decision::DenyUnavailable,
                FailMode::Safe => Decision::AllowFailOpen,
            },
        }
    }

    /// The decision for a user with no token (not in the token map, or unknown to SxS).
    pub fn decide_unenrolled(&self) -> Decision {
        match self.unenrolled {
            Unenrolled::Deny => Decision::DenyUnenrolled,
            Unenrolled::Allow => Decision::AllowUnenrolled,
        }
    }

    /// Whether `user` is exempt: listed in `exempt_users`, or a member of an `exempt_groups`
    /// group according to the system's user database. Group lookups happen only when groups
    /// are configured.
    pub fn is_exempt(&self, user: &str) -> bool {
        if self.exempt_users.iter().any(|u| u == user) {
            return true;
        }
        if self.exempt_groups.is_empty() {
            return false;
        }
        let groups = user_groups(user);
        self.exempt_groups.iter().any(|g| groups.contains(g))
    }
}

impl Policy {
    /// Whether a user in `groups` may authenticate: always when `required_groups` is empty,
    /// else when one of `groups` is listed there.
    pub fn admits(&self, groups: &[String]) -> bool {
        self.required_groups.is_empty() || self.required_groups.iter().any(|g| groups.contains(g))
    }

    /// [`Policy::admits`] with the system's groups of `user` (NSS), looked up only when
    /// `required_groups` is set.
    pub fn admits_user(&self, user: &str) -> bool {
        self.required_groups.is_empty() || self.admits(&user_groups(user))
    }
}

/// The names of the groups `user` belongs to (primary and supplementary); empty when the user
/// is not a local/NSS user.
pub fn user_groups(user: &str) -> Vec<String> {
    use nix::unistd::{Group, User};
    let Ok(Some(u)) = User::from_name(user) else {
        return Vec::new();
    };
    let Ok(cname) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    let gids = nix::unistd::getgrouplist(&cname, u.gid).unwrap_or_else(|_| vec![u.gid]);
    gids.into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten().map(|g| g.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(unenrolled: Unenrolled) -> Policy {
        Policy {
            failmode: FailMode::Secure,
            unenrolled,
            unenrolled_codes: vec!["2001".into()],
            exempt_users: vec!["breakglass".into()],
            exempt_groups: vec![],
            required_groups: vec![],
        }
    }

    #[test]
    fn decisions() {
        let p = policy(Unenrolled::Deny);
        let acc = Verdict::Accept {
            token_sn: "1".into(),
            user_id: "a".into(),
        };
        let rej = Verdict::Reject {
            code: "2010".into(),
            message: "Wrong OTP".into(),
        };
        let unk = Verdict::Reject {
            code: "2001".into(),
            message: "Unknown user".into(),
        };
        let down = Verdict::Unavailable {
            cause: "connect".into(),
        };
        assert_eq!(p.decide(&acc, FailMode::Secure), Decision::Allow);
        assert_eq!(p.decide(&rej, FailMode::Safe), Decision::Deny);
        assert_eq!(p.decide(&unk, FailMode::Secure), Decision::DenyUnenrolled);
        assert_eq!(p.decide(&down, FailMode::Secure), Decision::DenyUnavailable);
        assert_eq!(p.decide(&down, FailMode::Safe), Decision::AllowFailOpen);
        let p = policy(Unenrolled::Allow);
        assert_eq!(p.decide(&unk, FailMode::Secure), Decision::AllowUnenrolled);
        assert!(!Decision::DenyUnavailable.allows());
        assert!(Decision::AllowFailOpen.allows());
    }

    #[test]
    fn exemptions() {
        let mut p = policy(Unenrolled::Deny);
        assert!(p.is_exempt("breakglass"));
        assert!(!p.is_exempt("alice"));
        // root is in group root on every Linux system.
        p.exempt_groups = vec!["root".into()];
        assert!(p.is_exempt("root"));
        assert!(!p.is_exempt("no-such-user-sxs"));
    }

    #[test]
    fn required_groups() {
        let mut p = policy(Unenrolled::Deny);
        assert!(p.admits(&[]), "no required group: everyone");
        assert!(p.admits_user("no-such-user-sxs"));
        p.required_groups = vec!["vpn".into(), "root".into()];
        assert!(p.admits(&["staff".into(), "vpn".into()]));
        assert!(!p.admits(&["staff".into()]));
        assert!(!p.admits(&[]));
        assert!(p.admits_user("root"));
        assert!(!p.admits_user("no-such-user-sxs"));
        // An exempt user is exempt from the OTP, not from the gate.
        assert!(p.is_exempt("breakglass") && !p.admits_user("breakglass"));
    }
}
