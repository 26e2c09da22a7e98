use crate::harness::*;

#[test]
fn user_create_sends_the_user() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(
        &config,
        &[
            "user",
            "create",
            "carol",
            "--email",
            "carol@example.com",
            "--mobile",
            "+385991234567",
            "--first-name",
            "Carol",
            "--last-name",
            "Horvat",
            "--address",
            "Ilica 1, Zagreb",
        ],
    );
    run.expect(0);
    assert!(
        run.stdout.contains("SxS user carol created or updated"),
        "{}",
        run.stdout
    );
    assert_eq!(run.field("e-mail"), "carol@example.com");
    assert_eq!(sim.stats().admin, 1);
    // SxS knows carol now: a token can be enrolled for her.
    enroll(&config, "carol", &[]);
}

#[test]
fn user_create_json() {
    let sim = Sim::start();
    let run = sxsctl(
        &sim.config(""),
        &[
            "--json",
            "user",
            "create",
            "dave",
            "--email",
            "dave@example.com",
            "--mobile",
            "+12025550123",
        ],
    );
    run.expect(0);
    let v = run.json();
    assert_eq!(v["user_id"], "dave");
    assert_eq!(v["mobile"], "+12025550123");
    assert!(v["latency_ms"].as_f64().is_some());
}

#[test]
fn invalid_mobile_or_email_sends_nothing() {
    let sim = Sim::start();
    let config = sim.config("");
    for (email, mobile, field) in [
        ("carol@example.com", "0991234567", "--mobile"),
        ("carol@example.com", "+385 99 123 4567", "--mobile"),
        ("carol.example.com", "+385991234567", "--email"),
        ("carol@localhost", "+385991234567", "--email"),
    ] {
        let run = sxsctl(
            &config,
            &[
                "user", "create", "carol", "--email", email, "--mobile", mobile,
            ],
        );
        run.expect(2);
        assert!(
            run.stderr.starts_with(&format!("error: invalid {field}:")),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.matches("error:").count(), 1, "{}", run.stderr);
    }
    let run = sxsctl(
        &config,
        &[
            "user",
            "create",
            "car ol",
            "--email",
            "c@example.com",
            "--mobile",
            "+385991234567",
        ],
    );
    run.expect(2);
    assert!(run.stderr.contains("invalid USER"), "{}", run.stderr);
    assert_eq!(sim.stats().admin, 0, "nothing may reach SxS");
}

#[test]
fn user_create_warns_when_logins_would_not_match() {
    let sim = Sim::start();
    let run = sxsctl(
        &sim.config(""),
        &[
            "user",
            "create",
            "Carol",
            "--email",
            "c@example.com",
            "--mobile",
            "+385991234567",
        ],
    );
    run.expect(0);
    assert!(
        run.stderr
            .contains("warning: PAM and RADIUS send the user id \"carol\""),
        "{}",
        run.stderr
    );
}

#[test]
fn user_create_when_sxs_is_down_names_the_server() {
    let sim = Sim::start();
    let dead = dead_url();
    let run = sxsctl(
        &sim.config_for(std::slice::from_ref(&dead), Some(&dead), ""),
        &[
            "user",
            "create",
            "carol",
            "--email",
            "c@example.com",
            "--mobile",
            "+385991234567",
        ],
    );
    run.expect(3);
    assert!(
        run.stderr
            .starts_with("error: SxS createOrUpdateSxsUser failed: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&dead), "{}", run.stderr);
}
