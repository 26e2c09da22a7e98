//! `GET /metrics` scraped with curl after a known sequence of radclient requests: the counts
//! must be exact, and no user name may appear.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use crate::radclient::{auth, radclient, wrong};

fn scrape(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-D", "-", url])
        .output()
        .expect("curl (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the sample named exactly `series` (name and labels, as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Scrapes until `series` reaches `want` (decisions are counted after the answer is sent).
fn scrape_until(url: &str, series: &str, want: f64) -> String {
    for _ in 0..200 {
        let text = scrape(url);
        if value(&text, series) == Some(want) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{series} never reached {want}:\n{}", scrape(url));
}

#[test]
fn metrics_count_a_known_sequence_of_requests_exactly() {
    let sim = Sim::start();
    let r = Radiusd::start(
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            config_text(&sim.url(), "", None)
        ),
        "127.0.0.1:0",
    );
    let url = r.stdout_after("sxs-radiusd metrics on ");
    // Before any request: the families exist, the in-flight gauge is zero.
    let text = scrape(&url);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("content-type: application/openmetrics-text"),
        "{text}"
    );
    assert_eq!(value(&text, "sxs_radius_in_flight"), Some(0.0), "{text}");

    // 1 accept, 2 rejects (a replay and a wrong OTP), 1 Status-Server, 1 wrong secret,
    // 1 datagram that is not RADIUS, 1 from an address that is no client.
    let otp = sim.otp("alice");
    assert_eq!(
        auth(&r.target(), "alice", &otp).code.as_deref(),
        Some("Access-Accept")
    );
    assert_eq!(
        auth(&r.target(), "alice", &otp).code.as_deref(),
        Some("Access-Reject")
    );
    let bob = wrong(&sim.otp("bob"));
    assert_eq!(
        auth(&r.target(), "bob", bob).code.as_deref(),
        Some("Access-Reject")
    );
    let status = radclient(
        &r.target(),
        "status",
        SECRET,
        "Message-Authenticator = 0x00\n",
    );
    assert_eq!(
        status.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        status.output
    );
    let bad = radclient(
        &r.target(),
        "auth",
        "not-the-secret",
        "User-Name = \"carol\"\nUser-Password = \"123456\"\nMessage-Authenticator = 0x00\n",
    );
    assert_eq!(bad.code, None, "{}", bad.output);
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.send_to(b"not radius", r.addr).unwrap();
    let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.send_to(&[1u8; 20], r.addr).unwrap();

    let text = scrape_until(
        &url,
        r#"sxs_radius_decisions_total{client="local",reply="reject",reason="deny"}"#,
        2.0,
    );
    let server = format!("{}/", sim.url());
    let expect = [
        (
            r#"sxs_radius_requests_total{client="local",transport="udp",code="Access-Request"}"#
                .to_string(),
            4.0,
        ),
        (
            r#"sxs_radius_requests_total{client="local",transport="udp",code="Status-Server"}"#
                .into(),
            1.0,
        ),
        (
            r#"sxs_radius_decisions_total{client="local",reply="accept",reason="allow"}"#.into(),
            1.0,
        ),
        (
            r#"sxs_radius_decisions_total{client="local",reply="reject",reason="deny"}"#.into(),
            2.0,
        ),
        (
            r#"sxs_radius_dropped_total{reason="bad_authenticator"}"#.into(),
            1.0,
        ),
        (
            r#"sxs_radius_dropped_total{reason="malformed"}"#.into(),
            1.0,
        ),
        (
            r#"sxs_radius_dropped_total{reason="unknown_client"}"#.into(),
            1.0,
        ),
        (
            format!(
                r#"sxs_calls_total{{method="validateOtp",server="{server}",verdict="accept"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"sxs_calls_total{{method="validateOtp",server="{server}",verdict="reject"}}"#
            ),
            2.0,
        ),
        (
            format!(r#"sxs_call_duration_seconds_count{{method="validateOtp",server="{server}"}}"#),
            3.0,
        ),
        (format!(r#"sxs_server_up{{server="{server}"}}"#), 1.0),
        ("sxs_radius_in_flight".into(), 0.0),
        ("sxs_radius_retransmissions_answered_total".into(), 0.0),
    ];
    for (series, want) in &expect {
        assert_eq!(value(&text, series), Some(*want), "{series}\n{text}");
    }
    // Fixed reasons are listed from the start, at 0 until they happen.
    for series in [
        r#"sxs_radius_dropped_total{reason="overload"}"#,
        r#"sxs_radius_state_rejects_total{reason="expired"}"#,
        r#"sxs_radius_tls_handshake_failures_total{reason="unknown_ca"}"#,
    ] {
        assert_eq!(value(&text, series), Some(0.0), "{series}\n{text}");
    }
    // The duplicate cache holds the three answered Access-Requests.
    assert_eq!(
        value(&text, "sxs_radius_dedup_entries"),
        Some(3.0),
        "{text}"
    );
    // The simulator agrees on the number of calls.
    assert_eq!(sim.handle.stats().validate_otp, 3);
    // Process metrics are there and plausible.
    assert!(
        value(&text, "process_open_fds").is_some_and(|v| v > 3.0),
        "{text}"
    );
    assert!(
        value(&text, "process_resident_memory_bytes").is_some_and(|v| v > 1e6),
        "{text}"
    );
    assert!(
        value(&text, "process_cpu_seconds_total").is_some(),
        "{text}"
    );
    assert!(
        value(&text, "process_start_time_seconds").is_some_and(|v| v > 1.7e9),
        "{text}"
    );
    // Labels carry client names, never user names.
    for user in ["alice", "bob", "carol"] {
        assert!(!text.contains(user), "{user} in the metrics:\n{text}");
    }
    // Only GET /metrics.
    assert!(scrape(&url.replace("/metrics", "/other")).starts_with("HTTP/1.1 404"));
    // Every metric the shipped Grafana dashboard queries is exposed under that name.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/metrics/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in exprs {
        let names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sxs_") || w.starts_with("process_"));
        for name in names {
            let family = name.trim_end_matches("_bucket").trim_end_matches("_total");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "the dashboard queries {name}, which is not exposed:\n{text}"
            );
        }
    }
}

#[test]
fn metrics_are_off_unless_configured() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    assert_eq!(
        auth(&r.target(), "alice", &sim.otp("alice"))
            .code
            .as_deref(),
        Some("Access-Accept")
    );
    r.wait_for_log("reply=\"accept\"");
    assert!(!r.logs().contains("metrics"), "{}", r.logs());
}
