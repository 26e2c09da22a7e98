//! Secrets as a type: OTPs, passwords, RADIUS shared secrets and keys.
//!
//! The bytes are wiped on drop and `Debug`/`Display` never show them, so a secret that ends up
//! in a log line, an error message or a panic message prints as `***`.

use std::fmt;
use zeroize::Zeroizing;

/// A secret byte string, zeroized on drop, printed as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps the bytes; the caller's copy should itself be a zeroizing buffer or a literal.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    /// The secret bytes, for the one place that must use them (HMAC, wire encoding).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as UTF-8 text, when it is text.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A one-time password as typed by the user: a [`Secret`] that is checked to be plain digits
/// before it is ever sent anywhere.
pub type Otp = Secret;

/// Whether `otp` has the shape SxS accepts (decimal digits, 4 to 10 of them). Anything else is
/// refused locally, without spending an SxS call.
pub fn otp_is_well_formed(otp: &Secret) -> bool {
    let b = otp.expose();
    (4..=10).contains(&b.len()) && b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::from("123456");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s)), "Some(***)");
    }

    #[test]
    fn otp_shape() {
        assert!(otp_is_well_formed(&"123456".into()));
        assert!(otp_is_well_formed(&"12345678".into()));
        assert!(!otp_is_well_formed(&"12a456".into()));
        assert!(!otp_is_well_formed(&"123".into()));
        assert!(!otp_is_well_formed(&"".into()));
        assert!(!otp_is_well_formed(&"12345678901".into()));
        assert!(!otp_is_well_formed(&" 123456".into()));
    }
}
