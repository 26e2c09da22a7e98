use crate::harness::*;

#[test]
fn health_ok_lists_both_roots_with_latency() {
    let sim = Sim::start();
    let run = sxsctl(&sim.config(""), &["health"]);
    run.expect(0);
    assert!(
        run.stdout.contains("/SxSWS/api/healthCheck"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("/SxSAdminWS/api/healthCheck"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(" ms "), "{}", run.stdout);
    assert!(run.stdout.contains("2 of 2 SxS roots up"), "{}", run.stdout);
    assert_eq!(sim.stats().health, 2);
}

#[test]
fn health_down_exits_3() {
    let sim = Sim::start();
    let dead = dead_url();
    let run = sxsctl(
        &sim.config_for(std::slice::from_ref(&dead), Some(&dead), ""),
        &["health"],
    );
    run.expect(3);
    assert!(run.stdout.contains("DOWN"), "{}", run.stdout);
    assert!(run.stdout.contains(&dead), "{}", run.stdout);
    assert!(
        run.stdout.contains("2 of 2 SxS roots DOWN"),
        "{}",
        run.stdout
    );
}

#[test]
fn health_json_names_the_root_that_is_down() {
    let sim = Sim::start();
    let dead = dead_url();
    let config = sim.config_for(&[sim.url(), dead.clone()], Some(&sim.url()), "");
    let run = sxsctl(&config, &["--json", "health"]);
    run.expect(3);
    let v = run.json();
    assert_eq!(v["healthy"], false);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    let down: Vec<_> = checks.iter().filter(|c| c["healthy"] == false).collect();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0]["root"], "auth");
    assert!(down[0]["url"].as_str().unwrap().starts_with(&dead));
    assert!(!down[0]["detail"].as_str().unwrap().is_empty());
    assert!(checks[0]["latency_ms"].as_f64().is_some());
}

#[test]
fn health_without_admin_url_checks_auth_only() {
    let sim = Sim::start();
    let run = sxsctl(&sim.config_for(&[sim.url()], None, ""), &["health"]);
    run.expect(0);
    assert!(
        run.stdout.contains("not configured (sxs.admin_url)"),
        "{}",
        run.stdout
    );
    let run = sxsctl(
        &sim.config_for(&[sim.url()], None, ""),
        &["--json", "health"],
    );
    assert_eq!(run.json()["admin_configured"], false);
}
