//! Dynamic linking (MAC): the short MAC input shown to the user, bound to this login.
//!
//! The user types the input into the mToken app, which computes a MAC over it (the simulator's
//! tokens, like SxS's, use OCRA `QN08`: the input must be 1 to 8 decimal digits); SxS checks
//! MAC + input. The input is SHA-256 over a domain tag and, length-prefixed, the user, the
//! service, `PAM_RHOST`, `PAM_RUSER`, `PAM_TTY`, the time and a fresh random nonce, reduced
//! to 8 digits. The nonce makes every attempt's input new, so a MAC computed for one prompt is
//! worth nothing at the next; the login's fields make the input depend on what is being
//! authorised, as far as PAM can see it.
#![forbid(unsafe_code)]

use sha2::{Digest, Sha256};

/// Digits of the MAC input (OCRA QN08 takes at most 8).
pub const DIGITS: u32 = 8;

/// What PAM tells about this login (empty when an item is not set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub ruser: String,
    pub tty: String,
}

/// The 8-digit MAC input for `binding` at `now_unix` with `nonce`.
pub fn derive(binding: &Binding, now_unix: u64, nonce: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"pam_sxs mac input v1");
    for field in [
        &binding.user,
        &binding.service,
        &binding.rhost,
        &binding.ruser,
        &binding.tty,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.update(now_unix.to_be_bytes());
    h.update((nonce.len() as u64).to_be_bytes());
    h.update(nonce);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let n = u64::from_be_bytes(first) % 10u64.pow(DIGITS);
    format!("{n:0width$}", width = DIGITS as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Binding {
        Binding {
            user: "alice".into(),
            service: "sudo".into(),
            rhost: String::new(),
            ruser: "alice".into(),
            tty: "/dev/pts/3".into(),
        }
    }

    #[test]
    fn eight_digits_deterministic_for_the_same_inputs() {
        let a = derive(&login(), 1_700_000_000, &[7; 16]);
        assert_eq!(a.len(), 8);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, derive(&login(), 1_700_000_000, &[7; 16]));
    }

    #[test]
    fn every_field_the_time_and_the_nonce_change_it() {
        let base = derive(&login(), 1_700_000_000, &[7; 16]);
        let mut changed = Vec::new();
        for f in 0..5 {
            let mut b = login();
            let field = [
                &mut b.user,
                &mut b.service,
                &mut b.rhost,
                &mut b.ruser,
                &mut b.tty,
            ]
            .into_iter()
            .nth(f)
            .unwrap();
            field.push('x');
            changed.push(derive(&b, 1_700_000_000, &[7; 16]));
        }
        changed.push(derive(&login(), 1_700_000_001, &[7; 16]));
        changed.push(derive(&login(), 1_700_000_000, &[8; 16]));
        for c in &changed {
            assert_ne!(c, &base);
        }
        // Length prefixes: moving a character from one field to the next is a new input.
        let mut a = login();
        a.user = "ali".into();
        a.service = "cesudo".into();
        let mut b = login();
        b.user = "alic".into();
        b.service = "esudo".into();
        assert_ne!(derive(&a, 1, &[0; 16]), derive(&b, 1, &[0; 16]));
    }
}
