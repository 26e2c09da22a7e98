//! The challenge State verifier on arbitrary States, users and clients: forged input is never
//! accepted, and a genuine State is accepted only for its own user and client.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use radiusd::state::{Context, StateSigner, STATE_LEN};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_700_000_000;

/// A deterministic "RNG" from the input, so crashes reproduce.
struct Bytes<'a>(&'a [u8]);
impl rand::RngCore for Bytes<'_> {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            *d = self.0.get(i).copied().unwrap_or(0);
        }
    }
}
impl rand::CryptoRng for Bytes<'_> {}

fuzz_target!(|data: &[u8]| {
    let Ok(signer) = StateSigner::new(KEY) else { return };
    let (state, rest) = data.split_at(data.len().min(STATE_LEN));
    let (user, client) = rest.split_at(rest.len() / 2);
    // Forged: bytes an attacker chose. A 16-byte HMAC-SHA256 tag cannot be hit by chance.
    assert!(signer.verify(state, user, client, NOW).is_err());
    // Genuine: accepted for its user and client only, until it expires.
    let mut rng = Bytes(data);
    let Ok(good) = signer.issue(Context::OTP, user, client, NOW, Duration::from_secs(60), &mut rng)
    else {
        return;
    };
    assert!(signer.verify(&good, user, client, NOW).is_ok());
    assert!(signer.verify(&good, user, client, NOW + 61).is_err());
    let mut other = user.to_vec();
    other.push(b'x');
    assert!(signer.verify(&good, &other, client, NOW).is_err());
});
