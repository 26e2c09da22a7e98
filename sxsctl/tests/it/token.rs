use crate::harness::*;

/// The proof: enrol, activate with the two codes `token enroll` printed, then
/// `otp check` accepts the simulator's current OTP.
#[test]
fn enroll_activate_then_otp_check_accepts() {
    let sim = Sim::start();
    let config = sim.config("");
    create_user(&config, "carol");
    let run = sxsctl(
        &config,
        &[
            "token",
            "enroll",
            "carol",
            "--profile",
            "1393",
            "--service",
            "6",
        ],
    );
    run.expect(0);
    let client_id = run.field("client ID");
    let activation_code = run.field("activation code");
    assert_eq!(client_id.len(), 8, "{}", run.stdout);
    assert_eq!(activation_code.len(), 8, "{}", run.stdout);
    assert!(run.stdout.contains(&format!(
        "client ID {client_id} and activation code {activation_code}"
    )));
    let sn = run.stdout.split_whitespace().nth(1).unwrap().to_string();
    assert!(sn.bytes().all(|b| b.is_ascii_digit()), "{}", run.stdout);

    // Enrolled but not activated: never validates.
    let run = sxsctl(&config, &["otp", "check", "carol", &sim.otp("carol")]);
    run.expect(1);
    assert_eq!(run.field("sxs code"), "2013");

    let (status, body) = sim.activate(&client_id, &activation_code);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_sn"], sn.as_str());

    let otp = sim.otp("carol");
    let run = sxsctl(&config, &["otp", "check", "carol", &otp]);
    run.expect(0);
    assert_eq!(run.field("verdict"), "accept");
    assert_eq!(run.field("token serial"), sn);
    assert!(run.field("decision").starts_with("allow"), "{}", run.stdout);
    // Single use, as at SxS.
    let run = sxsctl(&config, &["otp", "check", "carol", &otp]);
    run.expect(1);
    assert_eq!(run.field("sxs code"), "2011");
}

#[test]
fn enroll_json_and_qr() {
    let sim = Sim::start();
    let config = sim.config("");
    let (sn, client_id, code, v) = enroll(&config, "alice", &[]);
    assert_ne!(sn, ALICE_SN, "a new token");
    assert_eq!(v["user"], "alice");
    assert!(v["message_for_user"].as_str().unwrap().contains(&code));
    assert_eq!(v["token_map"], serde_json::Value::Null);
    assert_eq!(client_id.len() + code.len(), 16);

    let run = sxsctl(
        &config,
        &[
            "token",
            "enroll",
            "alice",
            "--profile",
            "1393",
            "--service",
            "6",
            "--qr",
        ],
    );
    run.expect(0);
    assert!(
        run.stdout.contains('█') || run.stdout.contains('▀'),
        "{}",
        run.stdout
    );
    let run = sxsctl(
        &config,
        &[
            "token",
            "enroll",
            "alice",
            "--profile",
            "1393",
            "--service",
            "6",
            "--qr=light",
        ],
    );
    run.expect(0);
    assert!(
        run.stdout.contains('▄') || run.stdout.contains('▀'),
        "{}",
        run.stdout
    );
}

#[test]
fn enroll_unknown_user_shows_the_sxs_exception() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(
        &config,
        &[
            "token",
            "enroll",
            "nobody",
            "--profile",
            "1393",
            "--service",
            "6",
        ],
    );
    run.expect(1);
    assert_eq!(
        run.stderr.trim_end(),
        "error: SxS mtmRedistributeToken failed: SxS 2001: Unknown user"
    );
    assert!(run.stdout.is_empty());
    let run = sxsctl(
        &config,
        &[
            "--json",
            "token",
            "enroll",
            "nobody",
            "--profile",
            "1393",
            "--service",
            "6",
        ],
    );
    run.expect(1);
    let v = run.json();
    assert_eq!(v["error"]["exit_code"], 1);
    assert_eq!(v["error"]["operation"], "mtmRedistributeToken");
    assert_eq!(v["error"]["sxs_code"], "2001");
    assert_eq!(v["error"]["sxs_message"], "Unknown user");
}

#[test]
fn write_map_then_otp_check_in_token_sn_mode() {
    let sim = Sim::start();
    let map = sim.file("tokens.map");
    std::fs::write(
        &map,
        format!("# who has which token\nalice {ALICE_SN} # laptop\n"),
    )
    .unwrap();
    let config = sim.config(&format!(
        "[identity]\nsend = \"token_sn\"\ntoken_map = {:?}\n",
        map.display().to_string()
    ));
    create_user(&config, "carol");
    let (sn, client_id, code, v) = enroll(&config, "carol", &["--write-map"]);
    assert_eq!(v["token_map"]["change"], "added");
    assert_eq!(v["token_map"]["line"], format!("carol {sn}"));
    assert_eq!(
        std::fs::read_to_string(&map).unwrap(),
        format!("# who has which token\nalice {ALICE_SN} # laptop\ncarol {sn}\n")
    );
    let leftovers: Vec<_> = std::fs::read_dir(sim.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".sxsctl"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    assert_eq!(sim.activate(&client_id, &code).0, 200);
    let run = sxsctl(&config, &["otp", "check", "Carol@CORP", &sim.otp("carol")]);
    run.expect(0);
    assert!(
        run.field("sent").starts_with(&format!("TokenSN={sn} ")),
        "{}",
        run.stdout
    );

    // Re-enrolling replaces the user's line in place.
    let (sn2, _, _, v) = enroll(&config, "carol", &["--write-map"]);
    assert_eq!(v["token_map"]["change"], "replaced");
    assert_eq!(v["token_map"]["previous_serial"], sn.as_str());
    assert_eq!(
        std::fs::read_to_string(&map).unwrap(),
        format!("# who has which token\nalice {ALICE_SN} # laptop\ncarol {sn2}\n")
    );

    // Human output says what happened to the map.
    let run = sxsctl(
        &config,
        &[
            "token",
            "enroll",
            "alice",
            "--profile",
            "1393",
            "--service",
            "6",
            "--write-map",
        ],
    );
    run.expect(0);
    assert!(
        run.stdout.contains(&format!(
            "Token map {}: replaced serial {ALICE_SN}",
            map.display()
        )),
        "{}",
        run.stdout
    );
    assert!(std::fs::read_to_string(&map)
        .unwrap()
        .contains(" # laptop\n"));
}

#[test]
fn write_map_problems_stop_before_sxs_is_called() {
    let sim = Sim::start();
    let map = sim.file("broken.map");
    std::fs::write(&map, "alice 1\nbob\n").unwrap();
    let broken = sim.config(&format!(
        "[identity]\ntoken_map = {:?}\n",
        map.display().to_string()
    ));
    let run = sxsctl(
        &broken,
        &[
            "token",
            "enroll",
            "alice",
            "--profile",
            "1393",
            "--service",
            "6",
            "--write-map",
        ],
    );
    run.expect(2);
    assert!(
        run.stderr.contains(&format!("{}:2:", map.display())),
        "{}",
        run.stderr
    );

    let unset = sim.config("");
    let run = sxsctl(
        &unset,
        &[
            "token",
            "enroll",
            "alice",
            "--profile",
            "1393",
            "--service",
            "6",
            "--write-map",
        ],
    );
    run.expect(2);
    assert!(
        run.stderr.contains("identity.token_map is not set"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.stats().admin, 0, "nothing may reach SxS");
}

#[test]
fn renew_after_three_wrong_activations() {
    let sim = Sim::start();
    let config = sim.config("");
    create_user(&config, "dave");
    let (sn, client_id, code, _) = enroll(&config, "dave", &[]);
    let wrong_code = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..3 {
        let (status, body) = sim.activate(&client_id, wrong_code);
        assert_eq!((status, body["code"].as_str()), (403, Some("3001")));
    }
    let (status, body) = sim.activate(&client_id, &code);
    assert_eq!((status, body["code"].as_str()), (403, Some("3002")));

    let run = sxsctl(&config, &["token", "renew", &sn]);
    run.expect(0);
    assert!(run
        .stdout
        .starts_with(&format!("New activation code for token {sn}")));
    let (new_id, new_code) = (run.field("client ID"), run.field("activation code"));
    assert_eq!(sim.activate(&new_id, &new_code).0, 200);
    let run = sxsctl(&config, &["otp", "check", "dave", &sim.otp("dave")]);
    run.expect(0);

    let run = sxsctl(&config, &["--json", "token", "renew", &sn]);
    run.expect(0);
    assert_eq!(run.json()["token_sn"], sn.as_str());
}

#[test]
fn renew_errors() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(&config, &["token", "renew", "999"]);
    run.expect(1);
    assert_eq!(
        run.stderr.trim_end(),
        "error: SxS mtmRenewActivationCode failed: SxS 2002: Unknown token"
    );
    let run = sxsctl(&config, &["token", "renew", "20000-38252"]);
    run.expect(2);
    assert!(run.stderr.contains("invalid SERIAL"), "{}", run.stderr);
    assert_eq!(sim.stats().admin, 1);
}
