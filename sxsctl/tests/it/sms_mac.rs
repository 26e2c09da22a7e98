//! `sxsctl sms send` and `sxsctl mac check` against the simulator.

use crate::harness::*;

#[test]
fn sms_send_shows_the_masked_number_only_and_the_phone_gets_a_code() {
    let sim = Sim::start();
    let config = sim.sms_config("");
    let run = sxsctl(&config, &["sms", "send", "CORP\\Alice"]);
    run.expect(0);
    assert_eq!(run.field("user"), "alice");
    assert_eq!(run.field("verdict"), "sent");
    assert_eq!(run.field("to"), "+38599*****67");
    assert!(
        run.field("limit").starts_with("3 per user per 5m"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("385991234567") && !run.stderr.contains("385991234567"));
    let code = sim.sms_code("alice").expect("the phone got an SMS");
    assert!(
        !run.stdout.contains(&code),
        "the code is the user's, not the operator's"
    );
    assert_eq!(sim.stats().send_sms, 1);

    let run = sxsctl(&config, &["--json", "sms", "send", "alice"]);
    run.expect(0);
    let v = run.json();
    assert_eq!(v["verdict"], "sent");
    assert_eq!(v["masked_mobile"], "+38599*****67");
    assert_eq!(v["sent"]["user_id"], "alice");
    assert_eq!(v["limit"]["max_per_user"], 3);
}

#[test]
fn sms_send_respects_the_per_user_limit_shared_with_pam() {
    let sim = Sim::start();
    let config = sim.sms_config("max_per_user = 1\n");
    sxsctl(&config, &["sms", "send", "alice"]).expect(0);
    let run = sxsctl(&config, &["sms", "send", "alice"]);
    run.expect(1);
    assert_eq!(run.field("verdict"), "not sent");
    assert!(
        run.field("reason").contains("too many SMS codes")
            && run.field("reason").ends_with("(not sent to SxS)"),
        "{}",
        run.stdout
    );
    let run = sxsctl(&config, &["--json", "sms", "send", "alice"]);
    run.expect(1);
    assert_eq!(run.json()["sxs_code"], "local:sms-rate-limited");
    assert_eq!(run.json()["sent_to_sxs"], false);
    assert_eq!(sim.stats().send_sms, 1, "nothing sent over the limit");
}

#[test]
fn sms_send_with_an_unusable_limit_directory_is_a_usage_error() {
    use std::os::unix::fs::PermissionsExt;
    let sim = Sim::start();
    let dir = sim.file("open-sms");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = sim.config(&format!(
        "[sms]\npam_state_dir = {:?}\n",
        dir.display().to_string()
    ));
    let run = sxsctl(&config, &["sms", "send", "alice"]);
    run.expect(2);
    assert!(
        run.stderr.contains("no SMS sent")
            && run.stderr.contains("writable by other users")
            && run.stderr.contains("sms.pam_state_dir"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.stats().send_sms, 0);
}

#[test]
fn sms_send_refusals_and_outage_have_their_exit_status() {
    let sim = Sim::start();
    // bob has an mToken but no SMS token (and no mobile).
    let run = sxsctl(&sim.sms_config(""), &["sms", "send", "bob"]);
    run.expect(1);
    assert_eq!(run.field("verdict"), "reject");
    assert_eq!(run.field("sxs code"), "2003");
    let run = sxsctl(&sim.sms_config(""), &["sms", "send", "nobody"]);
    run.expect(1);
    assert_eq!(run.field("sxs code"), "2001");

    let dir = sim.file("sms-down");
    let config = sim.config_for(
        &[dead_url()],
        None,
        &format!("[sms]\npam_state_dir = {:?}\n", dir.display().to_string()),
    );
    let run = sxsctl(&config, &["sms", "send", "alice"]);
    run.expect(3);
    assert_eq!(run.field("verdict"), "unavailable");
}

#[test]
fn mac_check_accepts_the_mac_over_the_input_once() {
    let sim = Sim::start();
    let config = sim.config("");
    let mac = sim.mac("alice", "44154810");
    let run = sxsctl(&config, &["mac", "check", "alice", "44154810", &mac]);
    run.expect(0);
    assert_eq!(run.field("verdict"), "accept");
    assert_eq!(run.field("mac input"), "44154810");
    assert_eq!(run.field("token serial"), ALICE_SN);
    // Single use: the same MAC and input again are refused.
    let run = sxsctl(
        &config,
        &["--json", "mac", "check", "alice", "44154810", &mac],
    );
    run.expect(1);
    assert_eq!(run.json()["verdict"], "reject");
    assert_eq!(run.json()["mac_input"], "44154810");
    assert_eq!(sim.stats().validate_mac, 2);
}

#[test]
fn mac_check_refuses_a_mac_for_another_input_and_reads_stdin() {
    let sim = Sim::start();
    let config = sim.config("");
    let other = sim.mac("alice", "11112222");
    let run = sxsctl_with_stdin(
        &config,
        &["mac", "check", "alice", "33334444"],
        Some(&format!("{other}\n")),
    );
    run.expect(1);
    assert_eq!(run.field("verdict"), "reject");
    let good = sim.mac("alice", "33334444");
    let run = sxsctl_with_stdin(
        &config,
        &["mac", "check", "alice", "33334444"],
        Some(&format!("{good}\n")),
    );
    run.expect(0);
    let run = sxsctl_with_stdin(&config, &["mac", "check", "alice", "33334444"], Some(""));
    run.expect(2);
    assert!(run.stderr.contains("no MAC given"), "{}", run.stderr);
}

#[test]
fn malformed_mac_or_input_is_refused_without_a_call() {
    let sim = Sim::start();
    let config = sim.config("");
    for (input, mac) in [("12 34", "123456"), ("44154810", "12ab56")] {
        let run = sxsctl(&config, &["mac", "check", "alice", input, mac]);
        run.expect(1);
        assert!(
            run.field("reason").ends_with("(not sent to SxS)"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(sim.stats().validate_mac, 0);
}
