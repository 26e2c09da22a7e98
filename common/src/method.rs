//! The ways a user can prove possession of a token, shared by both front ends, so that PAM
//! and RADIUS agree on what each method is called, how it is configured, and how a pending
//! challenge records which one it is.
//!
//! - `otp`: the user types the mToken's one-time password; SxS `validateOtp`.
//! - `sms`: SxS sends a one-time password by SMS to the user's registered mobile; the user
//!   types it; SxS `validateOtp`.
//! - `mac`: dynamic linking. The front end shows a short *MAC input* bound to this login; the
//!   mToken app computes a MAC over it; SxS validates MAC + MAC input.
//! - `push`: SxS pushes a request to the user's mToken app; the user approves on the phone;
//!   SxS calls our callback with the result and an OTP, which is then validated.
//! - `oob`: out-of-band login: a challenge is shown (digits and a QR code); the user's
//!   authenticator app answers it at our DP4Mobile-style endpoint; the waiting login completes.

use std::fmt;
use std::str::FromStr;

/// One authentication method. Serialised by its [`Method::as_str`] name (a pending approval
/// in the shared store records it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Method {
    Otp,
    Sms,
    Mac,
    Push,
    Oob,
}

impl Method {
    /// Every method, in the order they are documented.
    pub const ALL: [Method; 5] = [
        Method::Otp,
        Method::Sms,
        Method::Mac,
        Method::Push,
        Method::Oob,
    ];

    /// The name used in configuration files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Otp => "otp",
            Method::Sms => "sms",
            Method::Mac => "mac",
            Method::Push => "push",
            Method::Oob => "oob",
        }
    }

    /// A stable one-byte code (carried inside the signed RADIUS State).
    pub fn code(self) -> u8 {
        match self {
            Method::Otp => 0,
            Method::Sms => 1,
            Method::Mac => 2,
            Method::Push => 3,
            Method::Oob => 4,
        }
    }

    /// The method with this [`Method::code`].
    pub fn from_code(code: u8) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.code() == code)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown method {s:?}; expected \"otp\", \"sms\", \"mac\", \"push\" or \"oob\""
                )
            })
    }
}

/// An ordered, duplicate-free, non-empty set of allowed methods. `Copy`, so it travels with
/// every request without an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    order: [Method; 5],
    len: u8,
}

impl Methods {
    /// Parses a configured list; errors say which entry is wrong.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Methods, String> {
        if items.is_empty() {
            return Err("at least one method is required".into());
        }
        let mut out = Methods {
            order: [Method::Otp; 5],
            len: 0,
        };
        for (i, s) in items.iter().enumerate() {
            let m: Method = s.as_ref().parse().map_err(|e| format!("[{i}]: {e}"))?;
            if out.allows(m) {
                return Err(format!("[{i}]: {m:?} is listed twice"));
            }
            if let Some(slot) = out.order.get_mut(usize::from(out.len)) {
                *slot = m;
                out.len += 1;
            }
        }
        Ok(out)
    }

    /// Only `otp`: what every front end did before methods existed.
    pub fn otp_only() -> Methods {
        Methods {
            order: [Method::Otp; 5],
            len: 1,
        }
    }

    fn as_slice(&self) -> &[Method] {
        self.order.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn allows(&self, m: Method) -> bool {
        self.as_slice().contains(&m)
    }

    /// The methods in configured order.
    pub fn iter(&self) -> impl Iterator<Item = Method> + '_ {
        self.as_slice().iter().copied()
    }

    /// The first configured method: what a user is offered without asking.
    pub fn first(&self) -> Method {
        self.as_slice().first().copied().unwrap_or(Method::Otp)
    }

    /// Whether exactly this one method is allowed.
    pub fn only(&self, m: Method) -> bool {
        self.as_slice() == [m]
    }
}

impl Default for Methods {
    fn default() -> Self {
        Methods::otp_only()
    }
}

impl fmt::Display for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(m.as_str())?;
        }
        Ok(())
    }
}

/// A phone number as it may be shown to the user: the first six and last two characters,
/// the rest as `*` (`+385991234567` → `+38599*****67`). Short or empty numbers are fully
/// masked, so a mistyped seed never shows whole.
pub fn mask_mobile(mobile: &str) -> String {
    let chars: Vec<char> = mobile.trim().chars().collect();
    if chars.len() < 9 {
        return "*".repeat(chars.len().max(4));
    }
    let head: String = chars.iter().take(6).collect();
    let tail: String = chars.iter().skip(chars.len() - 2).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// Groups digits for reading off a screen and typing on a keypad: `12345678` → `1234 5678`.
pub fn group_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_codes() {
        let m = Methods::parse(&["sms", "otp"]).unwrap();
        assert_eq!(m.first(), Method::Sms);
        assert!(m.allows(Method::Otp) && !m.allows(Method::Mac));
        assert_eq!(m.to_string(), "sms,otp");
        assert!(Methods::parse::<&str>(&[]).is_err());
        assert_eq!(
            Methods::parse(&["otp", "otp"]).unwrap_err(),
            "[1]: Otp is listed twice"
        );
        assert!(Methods::parse(&["fax"])
            .unwrap_err()
            .contains("[0]: unknown method \"fax\""));
        for m in Method::ALL {
            assert_eq!(Method::from_code(m.code()), Some(m));
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert_eq!(Method::from_code(200), None);
    }

    #[test]
    fn masking() {
        assert_eq!(mask_mobile("+385991234567"), "+38599*****67");
        assert_eq!(mask_mobile("0912345678"), "091234**78");
        assert_eq!(mask_mobile("12345"), "*****");
        assert_eq!(mask_mobile(""), "****");
        assert_eq!(group_digits("12345678"), "1234 5678");
        assert_eq!(group_digits("123"), "123");
    }
}
