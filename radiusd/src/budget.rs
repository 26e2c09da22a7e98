//! The reply size budget, checked BEFORE the handler runs.
//!
//! A reply that cannot be encoded (over 4096 bytes once the request's Proxy-States are copied
//! back) must never be discovered after SxS was asked: the OTP would be spent with nothing to
//! show for it, and the NAS would retransmit. So the server asks here first whether every
//! reply the handler may choose fits; if not, it answers at once with the largest reply that
//! does (an Access-Reject without Reply-Message) or, if even that cannot fit, with nothing,
//! and remembers that in the duplicate cache so retransmissions are not processed again.

use common::config::{FirstFactorKind, PasswordOtp, RadiusMode, RadiusSettings, ReplyValue};

use crate::packet::{attr, encoded_attributes_len, response_overhead, Packet, MAX_PACKET_LEN};
use crate::state::STATE_LEN;
use common::Method;

/// What the request's reply budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Every configured reply fits: handle the request.
    Fits,
    /// Some reply would not fit, but a bare Access-Reject does: send that, ask nobody.
    BareRejectOnly {
        /// Octets the largest configured reply would need.
        needed: usize,
    },
    /// Not even a bare Access-Reject fits (the Proxy-States alone are too large): no reply is
    /// possible.
    Nothing {
        /// Octets a bare Access-Reject would need.
        needed: usize,
    },
}

/// Octets the largest reply the server may send takes in attributes of its own: the Reject
/// with `reject_message`, the Accept with every `[[radius.reply]]` attribute (a user may be in
/// every group; an upper bound), or (in challenge mode, or for a client whose first factor
/// is followed by a challenge) the Challenge with `challenge_prompt` and a State. Attributes
/// passed through from an upstream RADIUS server are known only once it answered: the handler
/// checks them against the request's room (`AccessRequest::reply_room`) then, still before SxS
/// is asked ([`crate::first_factor`]). Anything else that does not fit is caught when encoding,
/// and becomes a bare Access-Reject.
pub fn largest_reply_attributes(settings: &RadiusSettings) -> usize {
    let reject =
        encoded_attributes_len(&[(attr::REPLY_MESSAGE, settings.reject_message.as_bytes())])
            .max(largest_accept_attributes(settings));
    // SMS and MAC challenges carry prompts the handler builds, at most MAX_METHOD_PROMPT long.
    let methods = settings
        .all_clients()
        .map(|c| c.methods)
        .chain(std::iter::once(settings.methods));
    let method_challenges = methods
        .clone()
        .any(|m| m.allows(Method::Sms) || m.allows(Method::Mac));
    // A client whose password is followed by an OTP challenge sends challenge_prompt too.
    let password_then_challenge = settings.all_clients().any(|c| {
        c.first_factor != FirstFactorKind::None && c.password_otp == PasswordOtp::Challenge
    });
    let mode = if password_then_challenge {
        RadiusMode::Challenge
    } else {
        settings.mode
    };
    let prompt = match (mode, method_challenges) {
        (RadiusMode::Otp, false) => return reject,
        (RadiusMode::Otp, true) => crate::handler::MAX_METHOD_PROMPT,
        (RadiusMode::Challenge, false) => settings.challenge_prompt.len(),
        (RadiusMode::Challenge, true) => settings
            .challenge_prompt
            .len()
            .max(crate::handler::MAX_METHOD_PROMPT),
    };
    let state = [0u8; STATE_LEN];
    let text = vec![b'x'; prompt];
    let challenge = encoded_attributes_len(&[
        (attr::REPLY_MESSAGE, text.as_slice()),
        (attr::STATE, state.as_slice()),
    ]);
    reject.max(challenge)
}

/// An upper bound of the `[[radius.reply]]` attributes one Accept can carry: each value as
/// text (or 8 octets for a number), a possible RFC 2868 tag octet, and a Vendor-Specific
/// header, for every attribute of every table.
fn largest_accept_attributes(settings: &RadiusSettings) -> usize {
    settings
        .reply
        .iter()
        .flat_map(|r| r.attributes.iter())
        .map(|(_, v)| {
            let value = match v {
                ReplyValue::Int(_) => 8,
                // IPv6 addresses can encode longer than they are written ("::1" is 16 octets).
                ReplyValue::Text(t) => t.len().max(16),
            };
            value + 1 + 2 + 6
        })
        .sum()
}

/// Whether the replies to `request` fit in a RADIUS packet.
pub fn check(request: &Packet, settings: &RadiusSettings) -> Budget {
    let overhead = response_overhead(request);
    if overhead > MAX_PACKET_LEN {
        return Budget::Nothing { needed: overhead };
    }
    let needed = overhead.saturating_add(largest_reply_attributes(settings));
    if needed > MAX_PACKET_LEN {
        return Budget::BareRejectOnly { needed };
    }
    Budget::Fits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{encode_request, Code};
    use common::config::{Config, LoadOptions};

    fn settings(extra: &str) -> RadiusSettings {
        Config::from_toml_str(
            &format!("[sxs]\nservers = [\"http://127.0.0.1:1\"]\norganization_id = \"1\"\n[radius]\nstate_key = \"0123456789abcdef0123\"\n{extra}"),
            "<t>",
            LoadOptions { env_overrides: false },
        )
        .unwrap()
        .radius
        .unwrap()
    }

    fn request(proxy_state: usize) -> Packet {
        let ps = vec![b'p'; 253];
        let mut attrs: Vec<(u8, &[u8])> = vec![(attr::USER_NAME, b"u"), (attr::STATE, b"s")];
        for _ in 0..proxy_state / 253 {
            attrs.push((attr::PROXY_STATE, &ps));
        }
        let rest = vec![b'q'; proxy_state % 253];
        if !rest.is_empty() {
            attrs.push((attr::PROXY_STATE, &rest));
        }
        Packet::parse(&encode_request(Code::AccessRequest, 1, &[0; 16], &attrs, None).unwrap())
            .unwrap()
    }

    #[test]
    fn the_budget_matches_what_the_encoder_can_produce() {
        let s = settings("reject_message = \"Authentication failed\"\n");
        let reject = [(attr::REPLY_MESSAGE, s.reject_message.as_bytes())];
        let mut seen = [false; 3];
        for ps in [0, 100, 3000, 3990, 4000, 4010, 4020, 4030, 4036] {
            let p = request(ps);
            let full = crate::packet::encode_response_to(
                &p,
                crate::packet::ResponseCode::AccessReject,
                &reject,
                b"k",
            );
            let bare = crate::packet::encode_response_to(
                &p,
                crate::packet::ResponseCode::AccessReject,
                &[],
                b"k",
            );
            match check(&p, &s) {
                Budget::Fits => {
                    assert!(full.is_ok(), "{ps}");
                    seen[0] = true;
                }
                Budget::BareRejectOnly { needed } => {
                    assert!(full.is_err() && bare.is_ok(), "{ps}");
                    assert!(needed > MAX_PACKET_LEN);
                    seen[1] = true;
                }
                Budget::Nothing { .. } => {
                    assert!(bare.is_err(), "{ps}");
                    seen[2] = true;
                }
            }
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn challenge_mode_also_budgets_the_prompt_and_state() {
        let otp = settings("");
        let challenge = settings("mode = \"challenge\"\n");
        assert!(largest_reply_attributes(&challenge) > largest_reply_attributes(&otp));
        assert_eq!(
            largest_reply_attributes(&challenge),
            2 + "Enter your one-time password: ".len() + 2 + STATE_LEN
        );
    }

    /// `[[radius.reply]]` attributes count against the budget (upper bound over all groups),
    /// as does the challenge of a password-then-OTP client with radius.mode = "otp".
    #[test]
    fn reply_attributes_and_first_factor_challenges_are_budgeted() {
        let otp = settings("");
        let big = "x".repeat(200);
        let with_reply = settings(&format!(
            "[[radius.reply]]\ngroup = \"a\"\nattributes = {{ \"Filter-Id\" = \"{big}\", \"Session-Timeout\" = 1 }}\n"
        ));
        assert_eq!(largest_reply_attributes(&with_reply), 200 + 9 + 8 + 9);
        let p = request(3900);
        assert_eq!(check(&p, &otp), Budget::Fits);
        assert!(matches!(
            check(&p, &with_reply),
            Budget::BareRejectOnly { .. }
        ));
        let ff = settings(
            "[[radius.clients]]\nname = \"gw\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\n\
             first_factor = \"radius\"\n[first_factor.radius]\nservers = [\"10.0.0.5:1812\"]\nsecret = \"0123456789\"\n",
        );
        assert_eq!(
            largest_reply_attributes(&ff),
            largest_reply_attributes(&settings("mode = \"challenge\"\n"))
        );
    }
}
