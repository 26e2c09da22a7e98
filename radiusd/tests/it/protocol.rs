//! Wire-level checks a stock client does not show: identical cached answers, the response
//! Message-Authenticator as the first attribute, Proxy-State order, malformed packets.

use std::net::UdpSocket;
use std::time::Duration;

use radiusd::auth::{encode_user_password, verify_response};
use radiusd::packet::{attr, encode_request, Code, Packet};

use crate::harness::*;

struct Client {
    sock: UdpSocket,
}

impl Client {
    fn new(r: &Radiusd) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(r.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        Client { sock }
    }

    fn send(&self, bytes: &[u8]) {
        self.sock.send(bytes).unwrap();
    }

    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        self.sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }
}

fn access_request(id: u8, auth: [u8; 16], user: &str, otp: &str, extra: &[(u8, &[u8])]) -> Vec<u8> {
    let pw = encode_user_password(otp.as_bytes(), &auth, SECRET.as_bytes()).unwrap();
    let mut attrs: Vec<(u8, &[u8])> = vec![
        (attr::USER_NAME, user.as_bytes()),
        (attr::USER_PASSWORD, &pw),
    ];
    attrs.extend_from_slice(extra);
    encode_request(
        Code::AccessRequest,
        id,
        &auth,
        &attrs,
        Some(SECRET.as_bytes()),
    )
    .unwrap()
}

#[test]
fn retransmission_after_the_answer_gets_the_identical_bytes_and_no_second_sxs_call() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let c = Client::new(&r);
    let auth = [7u8; 16];
    let req = access_request(9, auth, "alice", &sim.otp("alice"), &[]);
    c.send(&req);
    let first = c.recv().expect("an answer");
    let packet = verify_response(&first, &auth, SECRET.as_bytes()).expect("valid response");
    assert_eq!(packet.code(), Code::AccessAccept);
    c.send(&req);
    let second = c
        .recv()
        .unwrap_or_else(|| panic!("no cached answer:\n{}", r.logs()));
    assert_eq!(first, second);
    assert_eq!(sim.handle.stats().validate_otp, 1);
    // Same identifier, new authenticator: a new request (and here a replayed OTP).
    let req2 = access_request(9, [8u8; 16], "alice", &sim.otp("alice"), &[]);
    c.send(&req2);
    let third = c.recv().expect("a new answer");
    let p = verify_response(&third, &[8u8; 16], SECRET.as_bytes()).unwrap();
    assert_eq!(p.code(), Code::AccessReject);
    assert_eq!(sim.handle.stats().validate_otp, 2);
}

#[test]
fn responses_carry_message_authenticator_first_and_proxy_state_in_order() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let c = Client::new(&r);
    for (otp, code) in [
        (sim.otp("alice"), Code::AccessAccept),
        ("000000".to_string(), Code::AccessReject),
    ] {
        let auth: [u8; 16] = rand::random();
        let req = access_request(
            1,
            auth,
            "alice",
            &otp,
            &[
                (attr::PROXY_STATE, b"first"),
                (attr::PROXY_STATE, b"second"),
            ],
        );
        c.send(&req);
        let resp = c.recv().expect("answer");
        let p: Packet = verify_response(&resp, &auth, SECRET.as_bytes()).unwrap();
        assert_eq!(p.code(), code);
        assert_eq!(
            p.attributes().next().unwrap().attr_type,
            attr::MESSAGE_AUTHENTICATOR
        );
        let ps: Vec<&[u8]> = p.proxy_states().collect();
        assert_eq!(ps, vec![b"first".as_slice(), b"second".as_slice()]);
    }
}

#[test]
fn malformed_and_forged_packets_are_dropped_and_the_server_keeps_serving() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let c = Client::new(&r);
    let auth = [3u8; 16];
    let good = access_request(5, auth, "alice", "123456", &[]);
    let mut bad_length = good.clone();
    bad_length[3] = bad_length[3].wrapping_add(40);
    let mut bad_ma = good.clone();
    let n = bad_ma.len();
    bad_ma[n - 1] ^= 1; // Message-Authenticator is the last attribute encode_request wrote
    let short = good[..19].to_vec();
    let mut bad_code = good.clone();
    bad_code[0] = 99;
    for (name, pkt) in [
        ("length", bad_length),
        ("authenticator", bad_ma),
        ("short", short),
        ("code", bad_code),
        ("empty", vec![]),
    ] {
        c.send(&pkt);
        assert_eq!(c.recv(), None, "{name}: expected no answer");
    }
    assert_eq!(sim.handle.stats().validate_otp, 0);
    r.wait_for_log("malformed packet dropped");
    r.wait_for_log("packet dropped: Message-Authenticator wrong (the shared secrets differ");
    let ok = access_request(6, [4u8; 16], "alice", &sim.otp("alice"), &[]);
    c.send(&ok);
    let resp = c.recv().expect("still serving");
    assert_eq!(
        verify_response(&resp, &[4u8; 16], SECRET.as_bytes())
            .unwrap()
            .code(),
        Code::AccessAccept
    );
}

/// A server whose one client (127.0.0.1) does not require Message-Authenticator.
fn legacy_client_server(sim: &Sim) -> Radiusd {
    let clients = format!(
        "[[radius.clients]]\nname = \"legacy\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nrequire_message_authenticator = false\n"
    );
    Radiusd::start(&config_text(&sim.url(), "", Some(&clients)), "127.0.0.1:0")
}

/// Proxy-State attributes adding up to `total` value octets (253 each, the rest in the last).
fn proxy_states(total: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut left = total;
    let mut n = 0u8;
    while left > 0 {
        let len = left.min(253);
        out.push(vec![b'a' + n % 26; len]);
        left -= len;
        n = n.wrapping_add(1);
    }
    out
}

/// Issue #12 defect 1: a reply that cannot fit (here the Reject's Reply-Message after ~4 kB of
/// Proxy-State) used to be found out after SxS was asked; the request was dropped and its
/// dedup entry removed, so every retransmission spent the OTP again. Now the budget is checked
/// first: a bare Access-Reject that fits, no SxS call, and retransmissions get the same bytes.
#[test]
fn a_reply_that_cannot_fit_is_decided_before_sxs_and_never_spends_the_otp_again() {
    let sim = Sim::start();
    let long = "x".repeat(200);
    let r = Radiusd::start(
        &config_text(&sim.url(), &format!("reject_message = \"{long}\""), None),
        "127.0.0.1:0",
    );
    let c = Client::new(&r);
    // 20 header + 18 Message-Authenticator + 7 User-Name + 18 User-Password + 16×2 + 4001:
    // exactly 4096, the largest request there is.
    let ps = proxy_states(4001);
    assert_eq!(ps.len(), 16);
    let extra: Vec<(u8, &[u8])> = ps
        .iter()
        .map(|v| (attr::PROXY_STATE, v.as_slice()))
        .collect();
    let auth = [0x51u8; 16];
    let req = access_request(11, auth, "alice", &sim.otp("alice"), &extra);
    assert_eq!(req.len(), 4096);
    c.send(&req);
    let first = c
        .recv()
        .unwrap_or_else(|| panic!("no answer:\n{}", r.logs()));
    let p = verify_response(&first, &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(p.code(), Code::AccessReject);
    assert_eq!(p.first(attr::REPLY_MESSAGE), None, "the message cannot fit");
    let echoed: Vec<&[u8]> = p.proxy_states().collect();
    assert_eq!(echoed, ps.iter().map(Vec::as_slice).collect::<Vec<_>>());
    for _ in 0..3 {
        c.send(&req);
        assert_eq!(c.recv().as_deref(), Some(first.as_slice()), "cached answer");
    }
    assert_eq!(sim.handle.stats().validate_otp, 0, "SxS must not be asked");
    r.wait_for_log("decision=\"reply-too-large\"");
    let logs = r.logs();
    assert!(logs.contains("reply=\"reject\""), "{logs}");
    assert_eq!(logs.matches("radius decision").count(), 1, "{logs}");
}

/// Defect 1, the worst case: Proxy-States so large that not even a bare Access-Reject fits (a
/// request without Message-Authenticator, carrying only a State). Nothing can be sent; the
/// request is remembered as answered-with-nothing, so retransmissions are not processed again,
/// and the decision log says no reply was sent.
#[test]
fn when_no_reply_can_fit_nothing_is_sent_and_retransmissions_are_ignored() {
    let sim = Sim::start();
    let r = legacy_client_server(&sim);
    let c = Client::new(&r);
    // 20 header + 7 User-Name + 3 State + 16×2 + 4034 = 4096; the reply would need 4104.
    let ps = proxy_states(4034);
    let mut attrs: Vec<(u8, &[u8])> = vec![(attr::USER_NAME, b"alice"), (attr::STATE, b"s")];
    attrs.extend(ps.iter().map(|v| (attr::PROXY_STATE, v.as_slice())));
    let auth = [0x52u8; 16];
    let req = encode_request(Code::AccessRequest, 12, &auth, &attrs, None).unwrap();
    assert_eq!(req.len(), 4096);
    c.send(&req);
    assert_eq!(c.recv(), None);
    c.send(&req);
    assert_eq!(c.recv(), None);
    // The socket is read in order: once this is answered, both copies above were processed.
    let ok = access_request(13, [0x53u8; 16], "bob", &sim.otp("bob"), &[]);
    c.send(&ok);
    let resp = c.recv().expect("still serving");
    assert_eq!(
        verify_response(&resp, &[0x53u8; 16], SECRET.as_bytes())
            .unwrap()
            .code(),
        Code::AccessAccept
    );
    r.wait_for_log("reply=\"none\"");
    let logs = r.logs();
    assert_eq!(logs.matches("reply=\"none\"").count(), 1, "{logs}");
    assert!(logs.contains("no reply can fit in 4096 bytes"), "{logs}");
}

/// Issue #12 defect 2: a zero-length Proxy-State used to pass the parser, spend the OTP, and
/// then make the reply unencodable while the log said `reply="accept"`. RFC 2865 attributes
/// carry at least one octet: refused at parse time, before SxS.
#[test]
fn a_zero_length_attribute_is_refused_before_sxs_is_asked() {
    let sim = Sim::start();
    let r = legacy_client_server(&sim);
    let c = Client::new(&r);
    let auth = [0x54u8; 16];
    let pw = encode_user_password(sim.otp("alice").as_bytes(), &auth, SECRET.as_bytes()).unwrap();
    let mut req = encode_request(
        Code::AccessRequest,
        14,
        &auth,
        &[(attr::USER_NAME, b"alice"), (attr::USER_PASSWORD, &pw)],
        None,
    )
    .unwrap();
    req.extend_from_slice(&[attr::PROXY_STATE, 2]);
    let len = u16::try_from(req.len()).unwrap().to_be_bytes();
    req[2..4].copy_from_slice(&len);
    c.send(&req);
    assert_eq!(c.recv(), None);
    r.wait_for_log("malformed packet dropped");
    let logs = r.logs();
    assert!(logs.contains("(type 33) at offset 45 is empty"), "{logs}");
    assert!(!logs.contains("radius decision"), "{logs}");
    assert_eq!(sim.handle.stats().validate_otp, 0);
}

/// Issue #12 defect 3: SxS's exception message used to be logged verbatim (`cause="…"`); an
/// SxS or proxy that quotes the request would put the OTP in the log. Only the code is logged.
#[test]
fn an_sxs_message_quoting_the_otp_never_reaches_the_log() {
    let sim = Sim::start();
    sim.handle.set_faults(common::sim::Faults {
        error: Some(common::sim::FaultKind::EchoOtp),
        ..Default::default()
    });
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let c = Client::new(&r);
    let otp = "8675309";
    let auth = [0x55u8; 16];
    c.send(&access_request(15, auth, "alice", otp, &[]));
    let resp = c.recv().expect("an answer");
    assert_eq!(
        verify_response(&resp, &auth, SECRET.as_bytes())
            .unwrap()
            .code(),
        Code::AccessReject
    );
    assert_eq!(sim.handle.stats().validate_otp, 1);
    r.wait_for_log("radius decision");
    let logs = r.logs();
    // The echoing fault answered (health checks may have met it too).
    assert!(logs.contains("code=\"2010\""), "{logs}");
    assert!(!logs.contains(otp), "the OTP reached the log:\n{logs}");
}

/// Issue #12 defect 4: every malformed datagram from a configured client used to write a WARN
/// line (186 000 lines from a 9-second burst). Now one line per client and reason per 10 s;
/// the rest are counted (reported as "N more suppressed", see log_limit's tests).
#[test]
fn a_burst_of_bad_packets_from_a_known_client_logs_one_line_per_reason() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let c = Client::new(&r);
    let good = access_request(7, [9u8; 16], "alice", "123456", &[]);
    let mut bad_ma = good.clone();
    let n = bad_ma.len();
    bad_ma[n - 1] ^= 1;
    for i in 0..2000u32 {
        let mut short = good[..19].to_vec();
        short[1] = i as u8;
        c.send(&short);
        c.send(&bad_ma);
    }
    // The socket is read in order: once this is answered, the burst was processed.
    let ok = access_request(8, [10u8; 16], "alice", &sim.otp("alice"), &[]);
    c.send(&ok);
    let resp = c.recv().expect("still serving");
    assert_eq!(
        verify_response(&resp, &[10u8; 16], SECRET.as_bytes())
            .unwrap()
            .code(),
        Code::AccessAccept
    );
    r.wait_for_log("radius decision");
    let logs = r.logs();
    assert_eq!(
        logs.matches("malformed packet dropped").count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("packet dropped: Message-Authenticator wrong")
            .count(),
        1,
        "{logs}"
    );
}

/// An empty User-Password as a NAS sends it (16 octets of NUL padding; radclient sends a
/// zero-length one, which RFC 2865 forbids) asks for an SMS code where SMS is allowed.
#[test]
fn an_empty_password_asks_for_an_sms() {
    let sim = Sim::start();
    let r = Radiusd::start(
        &config_text(&sim.url(), "methods = [\"otp\", \"sms\"]\n", None),
        "127.0.0.1:0",
    );
    let c = Client::new(&r);
    let auth = [3u8; 16];
    c.send(&access_request(4, auth, "alice", "", &[]));
    let answer = c.recv().expect("an answer");
    assert_eq!(answer[0], 11, "Access-Challenge expected: {answer:?}");
    assert!(verify_response(&answer, &auth, SECRET.as_bytes()).is_ok());
    assert_eq!(sim.handle.stats().send_sms, 1);
}
