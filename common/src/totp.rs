//! RFC 6238 TOTP (HMAC-SHA1, 30 s steps, 6 digits): what the simulator's tokens compute.
//! The same secret gives the same codes as `oathtool --totp -b SECRET`.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per time step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;

/// Decodes an RFC 4648 base32 secret (case-insensitive, padding and spaces optional).
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if clean.is_empty() {
        return None;
    }
    while clean.len() % 8 != 0 {
        clean.push('=');
    }
    data_encoding::BASE32.decode(clean.as_bytes()).ok()
}

/// Encodes bytes as unpadded base32 (what authenticator apps and oathtool take).
pub fn encode_base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// The HOTP value (RFC 4226) of `secret` at `counter`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    truncate(secret, &[&counter.to_be_bytes()], digits)
}

/// The OCRA suite the simulator's tokens use for dynamic linking (MAC).
pub const OCRA_SUITE: &str = "OCRA-1:HOTP-SHA1-6:QN08";

/// The OCRA value (RFC 6287) of `secret` for suite [`OCRA_SUITE`]: a one-way challenge-response
/// over a numeric question of 1 to 8 decimal digits; `None` for any other question.
pub fn ocra_qn08(secret: &[u8], question: &str) -> Option<String> {
    if question.is_empty() || question.len() > 8 || !question.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Q: the question as a hexadecimal number, left-justified in 128 bytes, zero-padded.
    let value: u64 = question.parse().ok()?;
    let mut hex = format!("{value:x}");
    while hex.len() < 256 {
        hex.push('0');
    }
    let q = data_encoding::HEXLOWER.decode(hex.as_bytes()).ok()?;
    let code = truncate(secret, &[OCRA_SUITE.as_bytes(), &[0], &q], 6);
    Some(format!("{code:06}"))
}

/// HMAC-SHA1 over `parts`, dynamic truncation (RFC 4226 §5.3), `digits` decimal digits.
fn truncate(secret: &[u8], parts: &[&[u8]], digits: u32) -> u32 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for HMAC-SHA1.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    for p in parts {
        mac.update(p);
    }
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The time step of `unix_seconds`.
pub fn step_of(unix_seconds: u64) -> u64 {
    unix_seconds / STEP
}

/// The 6-digit code of `secret` at time step `step`, zero-padded.
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn ocra_matches_rfc6287_one_way_vectors() {
        // RFC 6287 Appendix C.1, suite OCRA-1:HOTP-SHA1-6:QN08, 20-byte key.
        let key = b"12345678901234567890";
        for (q, want) in [
            ("00000000", "237653"),
            ("11111111", "243178"),
            ("22222222", "653583"),
            ("33333333", "740991"),
            ("44444444", "608993"),
            ("55555555", "388898"),
            ("66666666", "816933"),
            ("77777777", "224598"),
            ("88888888", "750600"),
            ("99999999", "294470"),
        ] {
            assert_eq!(super::ocra_qn08(key, q).as_deref(), Some(want), "{q}");
        }
        assert_eq!(super::ocra_qn08(key, ""), None);
        assert_eq!(super::ocra_qn08(key, "123456789"), None);
        assert_eq!(super::ocra_qn08(key, "12ab"), None);
    }

    use super::*;

    /// RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", 8 digits.
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(secret, step_of(t), 8), want, "t={t}");
        }
    }

    #[test]
    fn six_digits_are_zero_padded() {
        let secret = b"12345678901234567890";
        // RFC 4226 Appendix D: counter 0 -> 755224, ... counter 5 -> 254676.
        assert_eq!(code_at_step(secret, 0), "755224");
        assert_eq!(code_at_step(secret, 5), "254676");
    }

    #[test]
    fn base32_round_trip() {
        let raw = decode_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(raw, b"Hello!\xde\xad\xbe\xef");
        assert_eq!(encode_base32(&raw), "JBSWY3DPEHPK3PXP");
        assert_eq!(decode_base32("jbsw y3dp ehpk 3pxp"), Some(raw));
        assert_eq!(decode_base32("not base32!"), None);
        assert_eq!(decode_base32(""), None);
    }
}
