use crate::harness::*;

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let sim = Sim::start();
    let missing = sim.file("nope.toml");
    let run = sxsctl(&missing, &["health"]);
    run.expect(2);
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        vec![format!(
            "error: {}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )]
    );
    let run = sxsctl(&missing, &["--json", "health"]);
    run.expect(2);
    assert_eq!(run.json()["error"]["exit_code"], 2);
}

#[test]
fn a_bad_key_is_named() {
    let sim = Sim::start();
    let config = sim.config("[identity]\nsend = \"serial\"\n");
    let run = sxsctl(&config, &["health"]);
    run.expect(2);
    assert!(run.stderr.contains("key `identity.send`"), "{}", run.stderr);
}

#[test]
fn admin_commands_need_admin_url() {
    let sim = Sim::start();
    let config = sim.config_for(&[sim.url()], None, "");
    let run = sxsctl(&config, &["token", "renew", "1"]);
    run.expect(2);
    assert!(run.stderr.contains("sxs.admin_url"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let sim = Sim::start();
    let config = sim.config("");
    let run = sxsctl(&config, &["token", "enroll", "alice"]);
    run.expect(2);
    assert!(run.stderr.contains("--profile"), "{}", run.stderr);
    sxsctl(&config, &["frobnicate"]).expect(2);
    let run = sxsctl_raw(&["--help"]);
    run.expect(0);
    assert!(run.stdout.contains("Exit status:"), "{}", run.stdout);
}
