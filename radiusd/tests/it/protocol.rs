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
    let logs = r.logs();
    assert!(logs.contains("malformed packet dropped"), "{logs}");
    assert!(
        logs.contains("Message-Authenticator missing or wrong"),
        "{logs}"
    );
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
