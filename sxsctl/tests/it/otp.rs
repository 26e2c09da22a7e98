use crate::harness::*;

#[test]
fn otp_check_maps_the_login_like_pam() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(&config, &["otp", "check", "CORP\\Alice", &sim.otp("alice")]);
    run.expect(0);
    assert_eq!(run.field("user"), "alice");
    assert_eq!(
        run.field("sent"),
        "UserID=alice (application profile OTP_APP, header OrganizationId)"
    );
    assert_eq!(run.field("token serial"), ALICE_SN);
    assert!(run.field("latency").ends_with(" ms"));
}

#[test]
fn wrong_otp_exits_1_with_code_and_message() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(
        &config,
        &["otp", "check", "alice", &wrong(&sim.otp("alice"))],
    );
    run.expect(1);
    assert_eq!(run.field("verdict"), "reject");
    assert_eq!(run.field("sxs code"), "2010");
    assert_eq!(run.field("sxs message"), "Wrong OTP");
    assert!(run.field("decision").starts_with("deny "), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn otp_from_standard_input() {
    let sim = Sim::start();
    let config = sim.config("");
    let input = format!("{}\n", sim.otp("alice"));
    let run = sxsctl_with_stdin(&config, &["otp", "check", "alice"], Some(&input));
    run.expect(0);
    let run = sxsctl_with_stdin(&config, &["otp", "check", "alice"], Some(""));
    run.expect(2);
    assert!(run.stderr.contains("no OTP given"), "{}", run.stderr);
}

#[test]
fn otp_check_json() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(
        &config,
        &["--json", "otp", "check", "alice", &sim.otp("alice")],
    );
    run.expect(0);
    let v = run.json();
    assert_eq!(v["verdict"], "accept");
    assert_eq!(v["sxs_token_sn"], ALICE_SN);
    assert_eq!(v["sxs_user_id"], "alice");
    assert_eq!(v["sent"]["user_id"], "alice");
    assert_eq!(v["decision"], "allow");
    sim.next_step();
    let run = sxsctl(
        &config,
        &["--json", "otp", "check", "tokenless", &sim.otp("alice")],
    );
    run.expect(1);
    let v = run.json();
    assert_eq!(v["verdict"], "reject");
    assert_eq!(v["sxs_code"], "2003");
    assert_eq!(v["decision"], "deny-unenrolled");
}

#[test]
fn malformed_otp_is_refused_without_a_call() {
    let sim = Sim::start();
    let run = sxsctl(&sim.config(""), &["otp", "check", "alice", "12ab56"]);
    run.expect(1);
    assert!(
        run.field("reason").ends_with("(not sent to SxS)"),
        "{}",
        run.stdout
    );
    assert_eq!(sim.stats().validate_otp, 0);
}

#[test]
fn user_missing_from_the_token_map_is_not_sent() {
    let sim = Sim::start();
    let map = sim.file("tokens.map");
    std::fs::write(&map, format!("alice {ALICE_SN}\n")).unwrap();
    let config = sim.config(&format!(
        "[identity]\nsend = \"token_sn\"\ntoken_map = {:?}\n",
        map.display().to_string()
    ));
    let run = sxsctl(&config, &["otp", "check", "bob", "123456"]);
    run.expect(1);
    assert!(
        run.field("verdict")
            .starts_with("not checked: no line for \"bob\""),
        "{}",
        run.stdout
    );
    assert!(
        run.field("decision").starts_with("deny-unenrolled"),
        "{}",
        run.stdout
    );
    assert_eq!(sim.stats().validate_otp, 0);
    // alice is in the map: sent by serial only.
    let run = sxsctl(
        &config,
        &["--json", "otp", "check", "alice", &sim.otp("alice")],
    );
    run.expect(0);
    let v = run.json();
    assert_eq!(v["sent"]["token_sn"], ALICE_SN);
    assert_eq!(v["sent"]["user_id"], serde_json::Value::Null);
}

#[test]
fn unavailable_exits_3_and_names_the_server() {
    let sim = Sim::start();
    let dead = dead_url();
    let run = sxsctl(
        &sim.config_for(std::slice::from_ref(&dead), None, ""),
        &["otp", "check", "alice", "123456"],
    );
    run.expect(3);
    assert_eq!(run.field("verdict"), "unavailable");
    assert!(run.field("cause").contains(&dead), "{}", run.stdout);
    assert!(
        run.field("decision").starts_with("deny-unavailable"),
        "{}",
        run.stdout
    );
    // Issue #12 defect 9: with one server there is no "next one" to try.
    assert!(
        run.stderr
            .contains("SxS server not reachable; no other server to try"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("trying the next one"),
        "{}",
        run.stderr
    );
    // With two, the first failure says the next one is tried, the last says there is none.
    let run = sxsctl(
        &sim.config_for(&[dead.clone(), dead_url()], None, ""),
        &["otp", "check", "alice", "123456"],
    );
    run.expect(3);
    assert_eq!(
        run.stderr.matches("trying the next one").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("no other server to try").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_soap_fault_shows_its_code_and_message() {
    let sim = Sim::start();
    // The simulator answers a wrong Organization ID with a SOAP fault.
    let config = sim.write_config(&format!(
        "[sxs]\nservers = [\"{}\"]\norganization_id = \"42\"\ntimeout = \"2s\"\n",
        sim.url()
    ));
    let run = sxsctl(&config, &["otp", "check", "alice", &sim.otp("alice")]);
    run.expect(1);
    assert_eq!(run.field("sxs code"), "soap:Server");
    assert_eq!(run.field("sxs message"), "Organization not found");
}

/// The required groups are reported as pam_sxs and sxs-radiusd apply them: alice is not a
/// local user, so she is in no group; the OTP is still checked (a diagnostic), with a note.
#[test]
fn otp_check_says_when_the_user_is_outside_the_required_groups() {
    let sim = Sim::start();
    let config = sim.config("[policy]\nrequired_groups = [\"root\"]\nexempt_users = [\"alice\"]\n");
    let run = sxsctl(&config, &["otp", "check", "alice", &sim.otp("alice")]);
    run.expect(0);
    assert!(
        run.field("note")
            .contains("in none of policy.required_groups"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("is exempt"),
        "the gate comes first: {}",
        run.stdout
    );
    sim.next_step();
    let run = sxsctl(
        &config,
        &["--json", "otp", "check", "alice", &sim.otp("alice")],
    );
    let v = run.json();
    assert_eq!(v["in_required_groups"], false);
    assert_eq!(v["exempt"], false);
}
