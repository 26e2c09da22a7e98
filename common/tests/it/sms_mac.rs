//! SMS one-time passwords and dynamic linking (MAC) through the client, against the simulator.

use std::time::Duration;

use common::sim::{FaultKind, Faults, SimOptions};
use common::sms::MemoryLimiter;
use common::{Secret, Verdict};

use crate::harness::*;

const NOW: u64 = 1_800_000_000;

fn limiter() -> MemoryLimiter {
    MemoryLimiter::new(3, Duration::from_secs(300))
}

fn code(v: &Verdict) -> &str {
    match v {
        Verdict::Reject { code, .. } => code,
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[tokio::test]
async fn sms_is_sent_masked_validated_once_and_expires() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let sent = c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    assert_eq!(sent.verdict.kind(), "accept", "{sent:?}");
    assert_eq!(sent.masked_mobile.as_deref(), Some("+38599*****67"));
    let outbox = sim.sms_outbox("alice");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].mobile, "+385991234567");
    let sms_code = outbox[0].code.clone();
    // A wrong code counts but keeps the pending one.
    let v = c.validate_otp(&user("alice"), &"000000".into()).await;
    assert_eq!(code(&v), "2010");
    let v = c
        .validate_otp(&user("alice"), &sms_code.as_str().into())
        .await;
    match &v {
        Verdict::Accept { user_id, .. } => assert_eq!(user_id, "alice"),
        other => panic!("{other:?}"),
    }
    // Single use: the same code again is refused.
    let v = c
        .validate_otp(&user("alice"), &sms_code.as_str().into())
        .await;
    assert_eq!(v.kind(), "reject");
    // The mToken's OTP still works while an SMS code is pending.
    c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    let otp = sim.current_otp("alice").unwrap();
    assert_eq!(
        c.validate_otp(&user("alice"), &otp.as_str().into())
            .await
            .kind(),
        "accept"
    );
    // A code past its validity is refused as expired (SMS-only user).
    c.send_sms_otp(&user("sam"), &limiter(), NOW).await;
    let late = sim.sms_outbox("sam")[0].code.clone();
    sim.advance_time(301);
    let v = c.validate_otp(&user("sam"), &late.as_str().into()).await;
    assert_eq!(code(&v), "2014");
    let s = sim.stats();
    assert_eq!(s.send_sms, 3);
}

#[tokio::test]
async fn an_sms_only_user_logs_in_with_the_code() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let sent = c.send_sms_otp(&user("sam"), &limiter(), NOW).await;
    assert_eq!(sent.masked_mobile.as_deref(), Some("+38598*****33"));
    let sms_code = sim.sms_outbox("sam")[0].code.clone();
    let v = c
        .validate_otp(&user("sam"), &sms_code.as_str().into())
        .await;
    assert_eq!(
        v,
        Verdict::Accept {
            token_sn: "3000000001".into(),
            user_id: "sam".into()
        }
    );
}

#[tokio::test]
async fn sms_refusals_are_clear_and_the_rate_limit_stops_before_sxs() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let l = limiter();
    for _ in 0..3 {
        assert_eq!(
            c.send_sms_otp(&user("sam"), &l, NOW).await.verdict.kind(),
            "accept"
        );
    }
    let fourth = c.send_sms_otp(&user("sam"), &l, NOW + 10).await;
    assert_eq!(code(&fourth.verdict), "local:sms-rate-limited");
    assert!(fourth.verdict.to_string().contains("try again in 290 s"));
    assert_eq!(
        sim.stats().send_sms,
        3,
        "the limited send never reached SxS"
    );
    // Unknown user, a user without an SMS token, a user without a mobile number.
    let v = c.send_sms_otp(&user("nobody"), &l, NOW).await.verdict;
    assert_eq!(code(&v), "2001");
    let v = c.send_sms_otp(&user("bob"), &l, NOW).await.verdict;
    assert_eq!(code(&v), "2003");
    c.create_or_update_user(&common::soap::SxsUser {
        user_id: "alice".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let v = c.send_sms_otp(&user("alice"), &l, NOW).await.verdict;
    assert_eq!(code(&v), "2005");
}

#[tokio::test]
async fn sms_is_never_sent_twice_by_failover() {
    let first = sim().await;
    let second = sim().await;
    let c = client(&[first.url(), second.url()], "");
    // Delivered, then the connection reset: the second server is not asked.
    first.set_faults(Faults {
        error: Some(FaultKind::Reset),
        calls: Some(1),
        ..Faults::default()
    });
    let sent = c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    assert_eq!(sent.verdict.kind(), "unavailable", "{sent:?}");
    assert_eq!(first.stats().send_sms, 1);
    assert_eq!(second.stats().send_sms, 0);
    // Not delivered (nothing listens): the next server is tried.
    let dead = dead_url().await;
    let c = client(&[dead, second.url()], "");
    let sent = c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    assert_eq!(sent.verdict.kind(), "accept");
    assert_eq!(second.stats().send_sms, 1);
    // Every server down: unavailable, nothing sent.
    let c = client(&[dead_url().await], "");
    let sent = c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    assert!(matches!(sent.verdict, Verdict::Unavailable { .. }));
}

#[tokio::test]
async fn mac_is_validated_once_and_bound_to_its_input() {
    let sim = sim().await;
    let c = client(&[sim.url()], "");
    let secret = common::totp::decode_base32(ALICE_SECRET).unwrap();
    let mac = sim.mac("alice", "48213907").unwrap();
    // The simulator's MAC is RFC 6287 OCRA over the token secret, computed independently here.
    assert_eq!(
        Some(mac.clone()),
        common::totp::ocra_qn08(&secret, "48213907")
    );
    let secret_mac = Secret::from(mac.as_str());
    // A MAC computed for another input is refused.
    let v = c
        .validate_mac(&user("alice"), "11112222", &secret_mac)
        .await;
    assert_eq!(code(&v), "2010");
    let v = c
        .validate_mac(&user("alice"), "48213907", &secret_mac)
        .await;
    assert_eq!(
        v,
        Verdict::Accept {
            token_sn: ALICE_SN.into(),
            user_id: "alice".into()
        }
    );
    let v = c
        .validate_mac(&user("alice"), "48213907", &secret_mac)
        .await;
    assert_eq!(code(&v), "2011", "replayed");
    // Refused locally, without a call: malformed MAC or input.
    let before = sim.stats().validate_mac;
    let v = c.validate_mac(&user("alice"), "", &secret_mac).await;
    assert_eq!(code(&v), "local:malformed-mac-input");
    let v = c.validate_mac(&user("alice"), "1 2", &secret_mac).await;
    assert_eq!(code(&v), "local:malformed-mac-input");
    let v = c
        .validate_mac(&user("alice"), "12345678", &"12ab".into())
        .await;
    assert_eq!(code(&v), "local:malformed-otp");
    assert_eq!(sim.stats().validate_mac, before);
    // A user without an mToken.
    let v = c
        .validate_mac(&user("sam"), "12345678", &"123456".into())
        .await;
    assert_eq!(code(&v), "2003");
}

#[tokio::test]
async fn method_names_are_configurable_on_both_sides() {
    let names = "[sxs.methods.send_sms]\npath = \"/SxSWS/SmsService\"\nrequest = \"sendOtpBySms\"\nsoap_action = \"urn:sendOtpBySms\"\nmobile_element = \"msisdn\"\n[sxs.methods.validate_mac]\nrequest = \"checkMac\"\nmac_element = \"signature\"\ninput_element = \"challenge\"\n";
    let cfg = config(&["http://127.0.0.1:1".to_string()], names);
    let sim = sim_with(SimOptions {
        seed: seed(),
        methods: cfg.sxs.methods.clone(),
        ..SimOptions::default()
    })
    .await;
    let c = client(&[sim.url()], names);
    let sent = c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    assert_eq!(sent.masked_mobile.as_deref(), Some("+38599*****67"));
    let mac = sim.mac("alice", "777").unwrap();
    let v = c
        .validate_mac(&user("alice"), "777", &mac.as_str().into())
        .await;
    assert_eq!(v.kind(), "accept", "{v:?}");
    // A simulator with the default names does not understand them: never an accept.
    let plain = sim_with(SimOptions {
        seed: seed(),
        ..SimOptions::default()
    })
    .await;
    let c = client(&[plain.url()], names);
    let sent = c.send_sms_otp(&user("alice"), &limiter(), NOW).await;
    assert_ne!(sent.verdict.kind(), "accept", "{sent:?}");
}

#[tokio::test]
async fn an_assigned_sms_serial_is_never_given_to_an_enrolled_token() {
    let sim = sim_with(SimOptions {
        seed: vec![common::sim::SeedUser {
            id: "erin".into(),
            mobile: Some("+385911111111".into()),
            sms: Some(true),
            ..Default::default()
        }],
        ..SimOptions::default()
    })
    .await;
    let c = client(&[sim.url()], "");
    c.send_sms_otp(&user("erin"), &limiter(), NOW).await;
    let code = sim.sms_outbox("erin")[0].code.clone();
    let sms_sn = match c.validate_otp(&user("erin"), &code.as_str().into()).await {
        Verdict::Accept { token_sn, .. } => token_sn,
        other => panic!("{other:?}"),
    };
    let enrolled = c.redistribute_token("erin", 1393, 6).await.unwrap();
    assert_ne!(enrolled, sms_sn);
}

#[test]
fn envelopes_carry_the_configured_names() {
    let cfg = config(
        &["http://127.0.0.1:1".to_string()],
        "[sxs.methods.validate_mac]\nrequest = \"checkMac\"\nnamespace = \"urn:x\"\n",
    );
    let m = &cfg.sxs.methods;
    let e = common::soap::validate_mac_request(
        &m.validate_mac,
        &"123456".into(),
        "4821 3907",
        Some("2000038252"),
        None,
    );
    assert!(e.contains("xmlns:aut=\"urn:x\""), "{}", e.as_str());
    assert!(e.contains("<aut:checkMac>"));
    assert!(e.contains("<mac>123456</mac>"));
    assert!(e.contains("<macInput>4821 3907</macInput>"));
    assert!(e.contains("<TokenSN>2000038252</TokenSN>"));
    let e = common::soap::send_sms_request(&m.send_sms, None, Some("alice"));
    assert!(e.contains("<aut:sendSmsOtpRequest>"), "{e}");
    assert!(e.contains("<UserID>alice</UserID>"));
    assert!(e.contains("http://authentication.ws.sxs.logos.hr"));
}
