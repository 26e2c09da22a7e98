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
