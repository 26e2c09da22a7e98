//! Nothing logged during the PAM test run shows an OTP or a password that was typed.
//!
//! Every test's `Drop` checks all lines logged so far against all secrets typed so far, so the
//! test that finishes last has checked the whole run. This test also proves the capture is not
//! empty: the module's lines arrive, from both log paths (pam_syslog through `/dev/log`, and
//! `syslog_socket=`).

use crate::harness::{self, log_sink, pamtester, typed, write_config, PamDir, Sim};

#[test]
fn no_typed_otp_or_password_in_any_log_line() {
    let sim = Sim::start(&["alice"]);
    let dir = harness::tempdir();
    let config = write_config(dir.path(), &sim.url(), "");
    let pam = PamDir::new();
    let syslog = harness::unique("sxs-test-log");
    let socket = harness::unique("sxs-test-sock");
    pam.service(
        &syslog,
        &format!(
            "auth required {{module}} config={} debug forward_pass\n",
            config.display()
        ),
    );
    pam.service(
        &socket,
        &format!(
            "auth required {{module}} config={} debug prompts=2 syslog_socket={}\n",
            config.display(),
            log_sink().path.display()
        ),
    );
    let password = typed("hunter2-sxs-secret");
    let r = pamtester(
        &pam,
        &syslog,
        "alice",
        &format!("{password}{}\n", sim.otp("alice")),
    );
    assert!(r.ok, "{r:?}");
    sim.next_step();
    let r = pamtester(
        &pam,
        &socket,
        "alice",
        &format!("{}\n{}\n", sim.wrong_otp("alice"), sim.otp("alice")),
    );
    assert!(r.ok, "{r:?}");

    let lines = log_sink().lines();
    for service in [&syslog, &socket] {
        let tag = format!("({service}:auth)");
        let mine: Vec<_> = lines.iter().filter(|l| l.contains(&tag)).collect();
        assert!(
            mine.iter().any(|l| l.contains("decision service=")),
            "no decision line from {service}: {lines:#?}"
        );
    }
    harness::assert_no_typed_secret_logged();
}

#[test]
fn the_leak_detector_finds_a_leak() {
    assert!(harness::line_shows("otp=123456 x", "123456"));
    assert!(harness::line_shows("code 123456", "123456"));
    assert!(!harness::line_shows("pamtester[123456]: x", "123456"));
    assert!(!harness::line_shows("port 1234567", "123456"));
    assert!(harness::line_shows(
        "pw=hunter2-sxs-secret!",
        "hunter2-sxs-secret"
    ));
}

/// SMS and MAC logins with `debug`: the SMS code, the MAC and the full mobile number (all
/// registered as typed: `Sim::start_sms`, `sms_code`, `mac`) appear in no log line, while the
/// masked number and the MAC input (not secrets) do.
#[test]
fn no_sms_code_mac_or_full_mobile_in_any_log_line() {
    let sim = Sim::start_sms(&["alice"]);
    let dir = harness::tempdir();
    let config = write_config(
        dir.path(),
        &sim.url(),
        &format!(
            "[sms]\npam_state_dir = \"{}\"\n",
            dir.path().join("sms").display()
        ),
    );
    let pam = PamDir::new();
    let service = harness::unique("sxs-test-log-sms");
    pam.service(
        &service,
        &format!(
            "auth required {{module}} config={} debug methods=otp,sms,mac\n",
            config.display()
        ),
    );
    let prompt = "OTP (or press Enter for a code by SMS, or type mac to sign with the app): ";
    let mut t = harness::pamtester_conversation(&pam, &service, "alice");
    t.expect(prompt);
    t.answer("");
    t.expect("SMS code: ");
    t.answer(&sim.sms_code("alice"));
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");

    let mut t = harness::pamtester_conversation(&pam, &service, "alice");
    t.expect(prompt);
    t.answer("mac");
    t.expect("MAC for ");
    let input = harness::mac_input_in(&t.expect(": "));
    t.answer(&sim.mac("alice", &input));
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");

    let tag = format!("({service}:auth)");
    let mine: Vec<String> = log_sink()
        .lines()
        .into_iter()
        .filter(|l| l.contains(&tag))
        .collect();
    assert!(
        mine.iter().any(|l| l.contains("sms_to=+38599*****00")),
        "{mine:#?}"
    );
    assert!(
        mine.iter()
            .any(|l| l.contains(&format!("mac_input={input}"))),
        "{mine:#?}"
    );
    harness::assert_no_typed_secret_logged();
}
