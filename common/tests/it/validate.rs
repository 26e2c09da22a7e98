use std::time::{Duration, Instant};

use common::sim::{FaultKind, Faults, SimOptions};
use common::{Identity, Verdict};

use crate::harness::*;

fn reject_code(v: &Verdict) -> &str {
    match v {
        Verdict::Reject { code, .. } => code,
        other => panic!("expected a reject, got {other:?}"),
    }
}

fn assert_unavailable(v: &Verdict, needle: &str) {
    match v {
        Verdict::Unavailable { cause } => assert!(cause.contains(needle), "{cause}"),
        other => panic!("expected unavailable ({needle}), got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_the_current_otp_and_refuses_its_replay() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let otp = sim.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(
        v,
        Verdict::Accept {
            token_sn: ALICE_SN.into(),
            user_id: "alice".into()
        }
    );
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(reject_code(&v), "2011");
    // The next time step gives a new, valid OTP.
    sim.advance_time(30);
    let otp = sim.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept");
    let s = sim.stats();
    assert_eq!((s.validate_otp, s.accepts, s.rejects), (3, 2, 1));
}

#[tokio::test]
async fn simulator_otp_equals_an_independent_rfc6238_computation() {
    let sim = sim().await;
    let secret = common::totp::decode_base32(ALICE_SECRET).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ours = sim.current_otp("alice").unwrap();
    // Either side of a step boundary.
    let candidates = [now, now + 1].map(|t| common::totp::code_at_step(&secret, t / 30));
    assert!(candidates.contains(&ours), "{ours} not in {candidates:?}");
}

#[tokio::test]
async fn wrong_otp_then_lockout() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let good = sim.current_otp("bob").unwrap();
    let wrong = if good == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let v = c.validate_otp(&user("bob"), &wrong.into()).await;
        assert_eq!(
            v,
            Verdict::Reject {
                code: "2010".into(),
                message: "Wrong OTP".into()
            }
        );
    }
    // Locked: even the right OTP is refused now.
    let v = c.validate_otp(&user("bob"), &good.as_str().into()).await;
    assert_eq!(reject_code(&v), "2012");
}

#[tokio::test]
async fn unknown_user_and_user_without_token() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let v = c.validate_otp(&user("mallory"), &"123456".into()).await;
    assert_eq!(reject_code(&v), "2001");
    let v = c.validate_otp(&user("tokenless"), &"123456".into()).await;
    assert_eq!(reject_code(&v), "2003");
}

#[tokio::test]
async fn token_serial_identity() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let otp = sim.current_otp("alice").unwrap();
    let by_sn = Identity {
        user: "alice".into(),
        token_sn: Some(ALICE_SN.into()),
        user_id: None,
    };
    let v = c.validate_otp(&by_sn, &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept");
    let wrong_owner = Identity {
        user: "bob".into(),
        token_sn: Some(ALICE_SN.into()),
        user_id: Some("bob".into()),
    };
    let v = c.validate_otp(&wrong_owner, &"123456".into()).await;
    assert_eq!(reject_code(&v), "2004");
    let unknown_sn = Identity {
        user: "x".into(),
        token_sn: Some("999".into()),
        user_id: None,
    };
    assert_eq!(
        reject_code(&c.validate_otp(&unknown_sn, &"123456".into()).await),
        "2002"
    );
}

#[tokio::test]
async fn wrong_or_missing_organization_id_is_a_reject_not_unavailable() {
    let org42 = sim_with(SimOptions {
        organization_id: "42".into(),
        seed: seed(),
        ..SimOptions::default()
    })
    .await;
    let c = client(&[org42.url()], "");
    let otp = org42.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(
        v,
        Verdict::Reject {
            code: "soap:Server".into(),
            message: "Organization not found".into()
        }
    );
    // A header of another name is the same as none.
    let sim2 = sim().await;
    let c = client(&[sim2.url()], "organization_header = \"X-Org\"\n");
    let v = c.validate_otp(&user("alice"), &"123456".into()).await;
    assert_eq!(reject_code(&v), "soap:Server");
}

#[tokio::test]
async fn malformed_otp_is_refused_without_a_call() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    for bad in ["", "12", "12345a", "1234567890123", "123 456"] {
        let v = c.validate_otp(&user("alice"), &bad.into()).await;
        assert_eq!(reject_code(&v), common::codes::LOCAL_MALFORMED_OTP);
    }
    assert_eq!(sim.stats().validate_otp, 0);
}

#[tokio::test]
async fn fails_over_when_the_first_server_refuses_connections() {
    let sim = sim().await;
    let c = client(&[dead_url().await, sim.url()], "");
    let otp = sim.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept");
    assert_eq!(sim.stats().validate_otp, 1);
    // The dead server is now in back-off: the next call goes straight to the live one.
    assert!(c.any_server_up());
}

#[tokio::test]
async fn fails_over_when_the_tls_handshake_fails() {
    // An https URL pointing at a plain-HTTP server: the handshake fails, nothing was sent.
    let plain = sim().await;
    let good = sim().await;
    let tls_url = plain.url().replace("http://", "https://");
    let c = client(&[tls_url, good.url()], "");
    let otp = good.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept");
    assert_eq!(plain.stats().validate_otp, 0);
}

#[tokio::test]
async fn all_servers_down_is_unavailable_naming_each() {
    let (a, b) = (dead_url().await, dead_url().await);
    let c = client(&[a.clone(), b.clone()], "");
    let v = c.validate_otp(&user("alice"), &"123456".into()).await;
    assert_unavailable(&v, "no SxS server reachable");
    assert_unavailable(&v, &a);
    assert_unavailable(&v, &b);
    assert!(!c.any_server_up());
}

/// Each injected fault gives `Unavailable`, and the OTP, having been delivered, is never sent
/// to the second server.
#[tokio::test]
async fn injected_faults_are_unavailable_and_never_retried() {
    for (kind, needle) in [
        (FaultKind::Http500, "HTTP 500"),
        (FaultKind::Malformed, "malformed"),
        (FaultKind::Reset, "127.0.0.1"),
    ] {
        let first = sim().await;
        let second = sim().await;
        first.set_faults(Faults {
            error: Some(kind),
            calls: Some(1),
            ..Faults::default()
        });
        let c = client(&[first.url(), second.url()], "");
        let otp = first.current_otp("alice").unwrap();
        let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
        assert_unavailable(&v, needle);
        assert_eq!(second.stats().validate_otp, 0, "{kind:?} was retried");
        assert_eq!(first.stats().faults, 1);
        // The fault was for one call only.
        sim_advance_and_accept(&first, &c).await;
    }
}

async fn sim_advance_and_accept(sim: &common::sim::SimHandle, c: &common::SxsClient) {
    sim.advance_time(30);
    let otp = sim.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept", "{v:?}");
}

#[tokio::test]
async fn timeout_is_honoured_and_not_retried() {
    let first = sim().await;
    let second = sim().await;
    first.set_faults(Faults {
        latency_ms: 5_000,
        ..Faults::default()
    });
    let c = client(&[first.url(), second.url()], "timeout = \"400ms\"\n");
    let start = Instant::now();
    let v = c.validate_otp(&user("alice"), &"123456".into()).await;
    let took = start.elapsed();
    assert_unavailable(&v, "timed out");
    // Honoured: the configured 400 ms plus scheduling slack, far from the 5 s latency.
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
    assert_eq!(second.stats().validate_otp, 0);
}

#[tokio::test]
async fn latency_below_the_timeout_still_answers() {
    let sim = sim().await;
    sim.set_faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    let c = client(&[sim.url()], "");
    let otp = sim.current_otp("alice").unwrap();
    let v = c.validate_otp(&user("alice"), &otp.as_str().into()).await;
    assert_eq!(v.kind(), "accept");
}

#[tokio::test]
async fn health_check_reports_each_root() {
    let sim = sim().await;
    let dead = dead_url().await;
    let c = client(&[dead.clone(), sim.url()], "");
    let reports = c.health_check().await;
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(reports[0].root, "auth");
    assert!(!reports[0].healthy);
    assert!(reports[0].url.starts_with(&dead));
    assert!(reports[1].healthy, "{reports:?}");
    assert_eq!(reports[1].detail, "Service is alive and well.");
    assert_eq!(reports[2].root, "admin");
    assert!(reports[2].healthy, "{reports:?}");
    assert!(reports[2].url.ends_with("/SxSAdminWS/api/healthCheck"));
    sim.set_faults(Faults {
        error: Some(FaultKind::Http500),
        ..Faults::default()
    });
    let reports = c.health_check().await;
    assert!(reports.iter().all(|r| !r.healthy), "{reports:?}");
    assert!(!c.any_server_up());
}

#[tokio::test]
async fn stopped_simulator_is_unavailable() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let otp = sim.current_otp("alice").unwrap();
    assert_eq!(
        c.validate_otp(&user("alice"), &otp.as_str().into())
            .await
            .kind(),
        "accept"
    );
    sim.stop();
    tokio::task::yield_now().await;
    let v = c.validate_otp(&user("alice"), &"123456".into()).await;
    assert_eq!(v.kind(), "unavailable", "{v:?}");
}

#[tokio::test]
async fn calls_beyond_max_connections_wait_for_a_free_one() {
    let sim = sim().await;
    sim.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let c = std::sync::Arc::new(client(
        &[sim.url()],
        "max_connections = 1\ntimeout = \"1s\"\n",
    ));
    let start = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..2 {
        let c = c.clone();
        calls.push(tokio::spawn(async move {
            c.validate_otp(&user("bob"), &"000000".into()).await
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().kind(), "reject");
    }
    // One after the other: at least two latencies.
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    // A third that cannot get a connection within the timeout is unavailable, not sent.
    let c2 = std::sync::Arc::new(client(
        &[sim.url()],
        "max_connections = 1\ntimeout = \"400ms\"\n",
    ));
    let (a, b) = {
        let (x, y) = (c2.clone(), c2.clone());
        tokio::join!(
            async move { x.validate_otp(&user("bob"), &"000000".into()).await },
            async move { y.validate_otp(&user("bob"), &"000000".into()).await }
        )
    };
    let kinds = [a.kind(), b.kind()];
    assert!(kinds.contains(&"unavailable"), "{a:?} {b:?}");
    let calls_before = sim.stats().validate_otp;
    assert!(calls_before <= 4, "{calls_before}");
}
