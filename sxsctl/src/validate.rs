//! Checks run on operator input before anything is sent to SxS.

use common::identity::MAX_USER_LEN;
use common::Error;

type Result<T = ()> = std::result::Result<T, Error>;

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::InvalidInput {
        field,
        message: message.into(),
    }
}

/// An SxS user id: what PAM and RADIUS send as `UserID` (no spaces, no control characters).
pub fn user_id(id: &str) -> Result {
    if id.is_empty() || id.len() > MAX_USER_LEN {
        return Err(invalid(
            "USER",
            format!("must be 1 to {MAX_USER_LEN} bytes long"),
        ));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "USER",
            format!("{id:?} contains spaces or control characters"),
        ));
    }
    Ok(())
}

/// A mobile number in E.164 form: `+`, country code and number, 7 to 15 digits, nothing else.
pub fn mobile(number: &str) -> Result {
    let hint = "expected E.164 such as +385991234567 (a '+', the country code and the number, \
                7 to 15 digits, no spaces)";
    let Some(digits) = number.strip_prefix('+') else {
        return Err(invalid("--mobile", format!("{number:?}: {hint}")));
    };
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(invalid("--mobile", format!("{number:?}: {hint}")))
    }
}

/// The shape of an e-mail address: `local@domain.tld`, ASCII, no spaces, sane lengths. Not a
/// full RFC 5322 parser (no quoted local parts, no IP literals): SxS needs an address a mail
/// server accepts.
pub fn email(address: &str) -> Result {
    let bad = |why: &str| invalid("--email", format!("{address:?}: {why}"));
    if address.len() > 254 {
        return Err(bad("longer than 254 characters"));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(bad("expected local@domain, e.g. alice@example.com"));
    };
    const LOCAL_SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~.-";
    if local.is_empty()
        || local.len() > 64
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(&b))
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(bad(
            "the part before '@' is empty or has characters an address cannot have",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad(
            "the domain after '@' must be a host name with a dot, e.g. example.com",
        ));
    }
    Ok(())
}

/// A free-text field (names, address): no control characters, bounded length.
pub fn text(field: &'static str, value: &str) -> Result {
    if value.chars().count() > 255 {
        return Err(invalid(field, "longer than 255 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A token serial number: decimal digits.
pub fn serial(sn: &str) -> Result {
    if sn.is_empty() || sn.len() > 20 || !sn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "SERIAL",
            format!("{sn:?}: expected the token serial number in decimal, e.g. 2000038252"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobiles() {
        for ok in ["+385991234567", "+12025550123", "+2901234"] {
            assert!(mobile(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "385991234567",
            "+385 99 123 4567",
            "+0385991234567",
            "+12345",
            "+1234567890123456",
            "+38599123456x",
            "00385991234567",
        ] {
            let e = mobile(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --mobile:"), "{e}");
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "alice@example.com",
            "a.b+tag@mail.example.co.uk",
            "x_y-z@a-b.hr",
        ] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@exa mple.com",
            "ali ce@example.com",
            "alice@@example.com",
            ".alice@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@example..com",
            "alice@example.com\n",
        ] {
            let e = email(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --email:"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn users_serials_and_text() {
        assert!(user_id("alice").is_ok());
        assert!(user_id("").is_err());
        assert!(user_id("a b").is_err());
        assert!(user_id("a\u{7}").is_err());
        assert!(user_id(&"x".repeat(300)).is_err());
        assert!(serial("2000038252").is_ok());
        assert!(serial("2000-38252").is_err());
        assert!(serial("").is_err());
        assert!(text("--address", "Ilica 1, Zagreb").is_ok());
        assert!(text("--address", "a\nb").is_err());
    }
}
