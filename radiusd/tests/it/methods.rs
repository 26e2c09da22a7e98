//! SMS one-time passwords and dynamic linking (MAC) through Access-Challenge, judged by
//! radclient, against the simulator's SMS outbox and OCRA tokens.

use common::sim::{FaultKind, Faults};

use crate::harness::*;
use crate::radclient::{auth, radclient, Reply};

fn with_state(target: &str, user: &str, answer: &str, state: &str) -> Reply {
    radclient(
        target,
        "auth",
        SECRET,
        &format!("User-Name = \"{user}\"\nUser-Password = \"{answer}\"\nState = {state}\nMessage-Authenticator = 0x00\n"),
    )
}

fn code(r: &Reply) -> &str {
    r.code.as_deref().unwrap_or("no answer")
}

#[test]
fn sms_challenge_round_trip_and_replay() {
    let sim = Sim::start();
    let r = Radiusd::start(
        &config_text(&sim.url(), "methods = [\"otp\", \"sms\"]\n", None),
        "127.0.0.1:0",
    );
    let first = auth(&r.target(), "alice", "sms");
    assert_eq!(code(&first), "Access-Challenge", "{}", first.output);
    assert_eq!(
        first.attr("Reply-Message").as_deref(),
        Some("Enter the code sent to +38599*****67: ")
    );
    let state = first.attr("State").expect("State");
    let outbox = sim.handle.sms_outbox("alice");
    assert_eq!(outbox.len(), 1);
    let sms_code = outbox[0].code.clone();
    let reply = with_state(&r.target(), "alice", &sms_code, &state);
    assert_eq!(code(&reply), "Access-Accept", "{}", reply.output);
    // The same code with the same State: refused (State single use).
    let reply = with_state(&r.target(), "alice", &sms_code, &state);
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    // A fresh challenge answered with the old code: SxS refuses it (code single use).
    let again = auth(&r.target(), "alice", "sms");
    assert_eq!(code(&again), "Access-Challenge", "{}", again.output);
    let state = again.attr("State").unwrap();
    let reply = with_state(&r.target(), "alice", &sms_code, &state);
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    // A typed mToken OTP still works for the same client.
    let reply = auth(&r.target(), "alice", &sim.otp("alice"));
    assert_eq!(code(&reply), "Access-Accept", "{}", reply.output);
    assert_eq!(sim.handle.stats().send_sms, 2);
    // No code and no full phone number in the log.
    r.wait_for_log("decision=\"sms-sent\"");
    let logs = r.logs();
    assert!(!logs.contains(&sms_code), "SMS code in the log:\n{logs}");
    assert!(
        !logs.contains(ALICE_MOBILE),
        "phone number in the log:\n{logs}"
    );
    assert!(logs.contains("method=\"sms\""), "{logs}");
}

#[test]
fn sms_refusals_rate_limit_and_sxs_down() {
    let sim = Sim::start();
    let text = config_text(&sim.url(), "methods = [\"sms\", \"otp\"]\n", None)
        + "[sms]\nmax_per_user = 2\nwindow = \"10m\"\n";
    let r = Radiusd::start(&text, "127.0.0.1:0");
    // bob has no SMS token; nobody does not exist: Reject, no challenge.
    for user in ["bob", "nobody"] {
        let reply = auth(&r.target(), user, "sms");
        assert_eq!(code(&reply), "Access-Reject", "{user}: {}", reply.output);
    }
    // SxS fails while sending: Reject (failmode secure), exactly one sendSms call.
    sim.handle.set_faults(Faults {
        error: Some(FaultKind::Http500),
        calls: Some(1),
        ..Faults::default()
    });
    let before = sim.handle.stats().send_sms;
    let reply = auth(&r.target(), "alice", "sms");
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    assert_eq!(sim.handle.stats().send_sms, before + 1);
    // That attempt counted: one more send is allowed, the next is refused before SxS.
    let reply = auth(&r.target(), "alice", "sms");
    assert_eq!(code(&reply), "Access-Challenge", "{}", reply.output);
    let reply = auth(&r.target(), "alice", "sms");
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    assert_eq!(sim.handle.stats().send_sms, before + 2);
    r.wait_for_log("local:sms-rate-limited");
}

#[test]
fn mac_challenge_round_trip_bound_to_its_state() {
    let sim = Sim::start();
    let clients = format!(
        "[[radius.clients]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nmethods = [\"otp\", \"mac\"]\n"
    );
    let r = Radiusd::start(&config_text(&sim.url(), "", Some(&clients)), "127.0.0.1:0");
    let challenge = |r: &Radiusd| {
        let first = auth(&r.target(), "alice", "mac");
        assert_eq!(code(&first), "Access-Challenge", "{}", first.output);
        let message = first.attr("Reply-Message").unwrap();
        let input: String = message.chars().filter(|c| c.is_ascii_digit()).collect();
        assert_eq!(input.len(), 8, "{message}");
        (first.attr("State").unwrap(), input, message)
    };
    let (state_a, input_a, message) = challenge(&r);
    assert!(
        message.starts_with("Sign-in code ") && message.contains(' '),
        "{message}"
    );
    let (state_b, input_b, _) = challenge(&r);
    assert_ne!(input_a, input_b);
    let mac_a = sim.handle.mac("alice", &input_a).unwrap();
    let mac_b = sim.handle.mac("alice", &input_b).unwrap();
    // B's MAC with A's State: refused (the input is bound to the State).
    let reply = with_state(&r.target(), "alice", &mac_b, &state_a);
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    // B's MAC with B's State: accepted, once.
    let reply = with_state(&r.target(), "alice", &mac_b, &state_b);
    assert_eq!(code(&reply), "Access-Accept", "{}", reply.output);
    let reply = with_state(&r.target(), "alice", &mac_b, &state_b);
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    assert_eq!(sim.handle.stats().validate_mac, 2);
    r.wait_for_log("method=\"mac\"");
    let logs = r.logs();
    for secret in [&mac_a, &mac_b] {
        assert!(
            !logs.contains(secret.as_str()),
            "a MAC reached the log:\n{logs}"
        );
    }
}
