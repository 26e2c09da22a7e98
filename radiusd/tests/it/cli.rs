//! The command line: `--check-config` and `--demo`, as the README uses them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::radclient::radclient;

fn check_config(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sxs.toml");
    write_config(&path, text);
    let out = Command::new(env!("CARGO_BIN_EXE_sxs-radiusd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_config_reports_and_sets_the_exit_code() {
    let sim = Sim::start();
    let (code, out) = check_config(&config_text(&sim.url(), "", None));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is valid"), "{out}");
    assert!(out.contains("client local: 127.0.0.1/32"), "{out}");
    assert!(out.contains("ok   auth root"), "{out}");
    // SxS down: the file is fine, the report says DOWN, exit 1.
    let url = sim.url();
    sim.handle.stop();
    let (code, out) = check_config(&config_text(&url, "", None));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DOWN auth root"), "{out}");
    // A bad key: exit 1 with the key and the file named.
    let (code, out) = check_config(&config_text(&url, "mode = \"chalenge\"", None));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: ") && out.contains("`radius.mode`") && out.contains("sxs.toml"),
        "{out}"
    );
}

/// The README's first command works as printed: the demo's own instructions give an Accept.
#[test]
fn demo_prints_instructions_that_work() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sxs-radiusd"))
        .args(["--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    let addr = loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("demo ended early:\n{text}");
        }
        text.push_str(&line);
        if let Some(a) = line.trim().strip_prefix("sxs-radiusd listening on ") {
            break a.to_string();
        }
    };
    let sim_url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("SxS simulator:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("simulator URL printed")
        .to_string();
    assert!(
        text.contains("testing123") && text.contains("radtest demo"),
        "{text}"
    );
    assert!(
        text.contains(&format!("curl -s {sim_url}/sim/otp/demo")),
        "{text}"
    );
    let otp = Command::new("curl")
        .args(["-s", &format!("{sim_url}/sim/otp/demo")])
        .output()
        .unwrap();
    let otp = String::from_utf8_lossy(&otp.stdout).trim().to_string();
    assert_eq!(otp.len(), 6, "{otp:?}");
    let radtest = Command::new("radtest")
        .args(["demo", &otp, &addr, "0", "testing123"])
        .output()
        .unwrap();
    let r = String::from_utf8_lossy(&radtest.stdout);
    assert!(r.contains("Received Access-Accept"), "{r}");
    // The SMS and MAC recipes, run as printed (with the port the OS picked). They were
    // printed before the "listening on" line.
    let all = text.clone();
    for heading in ["SMS:", "MAC (dynamic linking):", "PUSH:"] {
        let script: Vec<String> = all
            .split(heading)
            .nth(1)
            .unwrap_or_else(|| panic!("no {heading} section:\n{all}"))
            .split("\n\n")
            .next()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("  "))
            .map(|l| l.replace("127.0.0.1:0 ", &format!("{addr} ")))
            .collect();
        assert!(script.len() >= 3, "{heading} {script:?}");
        let run = Command::new("bash")
            .args(["-c", &script.join("\n")])
            .output()
            .unwrap();
        let r = String::from_utf8_lossy(&run.stdout);
        assert!(
            r.contains("Received Access-Accept"),
            "{heading} recipe did not get an Accept:\n{}\n{r}\n{}",
            script.join("\n"),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn over_max_in_flight_is_dropped_not_queued() {
    let sim = Sim::start();
    sim.handle.set_faults(common::sim::Faults {
        latency_ms: 1_500,
        ..Default::default()
    });
    let r = Radiusd::start(
        &config_text(&sim.url(), "max_in_flight = 1", None),
        "127.0.0.1:0",
    );
    let target = r.target();
    let t = target.clone();
    let first = std::thread::spawn(move || {
        radclient(
            &t,
            "auth",
            SECRET,
            "User-Name = \"alice\"\nUser-Password = \"000000\"\nMessage-Authenticator = 0x00\n",
        )
    });
    for _ in 0..200 {
        if sim.handle.stats().validate_otp == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = crate::radclient::radclient_opts(
        &target,
        "auth",
        SECRET,
        "User-Name = \"bob\"\nUser-Password = \"000000\"\nMessage-Authenticator = 0x00\n",
        &["-t", "0.5", "-r", "1"],
    );
    assert_eq!(second.code, None, "{}", second.output);
    assert_eq!(first.join().unwrap().code.as_deref(), Some("Access-Reject"));
    assert_eq!(sim.handle.stats().validate_otp, 1);
    r.wait_for_log("max_in_flight reached");
}

#[test]
fn limit_proxy_state_drops_proxy_state_without_message_authenticator() {
    let sim = Sim::start();
    let clients = format!(
        "[[radius.clients]]\nname = \"proxy\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nrequire_message_authenticator = false\nlimit_proxy_state = true\n"
    );
    let r = Radiusd::start(&config_text(&sim.url(), "", Some(&clients)), "127.0.0.1:0");
    let otp = sim.otp("alice");
    let reply = radclient(
        &r.target(),
        "auth",
        SECRET,
        &format!("User-Name = \"alice\"\nUser-Password = \"{otp}\"\nProxy-State = 0x01\n"),
    );
    assert_eq!(reply.code, None, "{}", reply.output);
    // With Message-Authenticator it goes through, Proxy-State echoed.
    let reply = radclient(
        &r.target(),
        "auth",
        SECRET,
        &format!("User-Name = \"alice\"\nUser-Password = \"{otp}\"\nProxy-State = 0x01\nMessage-Authenticator = 0x00\n"),
    );
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    assert_eq!(
        reply.attr("Proxy-State").as_deref(),
        Some("0x01"),
        "{}",
        reply.output
    );
    // Without Proxy-State, a client that does not require it may omit Message-Authenticator.
    sim.handle.advance_time(30);
    let reply = radclient(
        &r.target(),
        "auth",
        SECRET,
        &format!(
            "User-Name = \"alice\"\nUser-Password = \"{}\"\n",
            sim.otp("alice")
        ),
    );
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
}

/// `--check-config` resolves `[[radius.reply]]` against the dictionary (a typo is an error
/// naming the key) and advises on Message-Authenticator for peers that send none.
#[test]
fn check_config_resolves_reply_attributes_and_advises_on_message_authenticator() {
    let sim = Sim::start();
    let rules = |name: &str| {
        format!("[[radius.reply]]\ngroup = \"vpn-admins\"\nattributes = {{ \"{name}\" = 3600, \"Cisco-AVPair\" = \"ip:addr-pool=admins\" }}\n")
    };
    let (code, out) = check_config(&config_text(&sim.url(), &rules("Session-Timeout"), None));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reply attributes: 1 group rule(s)"), "{out}");
    assert!(
        out.contains(
            "pam_radius_auth 2.0 (Debian 12), radsecproxy and openvpn-auth-radius send none"
        ),
        "{out}"
    );
    assert!(out.contains("Message-Authenticator = 0x00"), "{out}");
    let (code, out) = check_config(&config_text(&sim.url(), &rules("Sesion-Timeout"), None));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`radius.reply[0].attributes.Sesion-Timeout`")
            && out.contains("unknown attribute"),
        "{out}"
    );
    let (code, out) = check_config(&config_text(
        &sim.url(),
        "[[radius.reply]]\ngroup = \"g\"\nattributes = { \"Framed-IP-Address\" = \"10.0.0.300\" }\n",
        None,
    ));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`radius.reply[0].attributes.Framed-IP-Address`")
            && out.contains("not an IPv4 address"),
        "{out}"
    );
}

/// The start-up line saying how many SxS calls may be in flight, from `sxs-radiusd` run by
/// `cmd` on the configuration `path` (killed once it is seen).
fn max_connections_line(mut cmd: Command, path: &std::path::Path) -> String {
    let mut child = cmd
        .arg("--config")
        .arg(path)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let found = line.contains("SxS calls in flight at most");
        seen.push(line);
        if found {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen.join("\n")
}

/// `sxs.max_connections = "auto"` (the default) is half the open-files limit the daemon runs
/// with, after it raised its soft limit to the hard one: started under `prlimit` with 600 as
/// hard limit and 100 as soft, it picks 300. A number is taken as written.
#[test]
fn auto_max_connections_follows_the_open_files_limit() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sxs.toml");
    write_config(&path, &config_text(&sim.url(), "", None));
    let mut prlimit = Command::new("prlimit");
    prlimit
        .arg("--nofile=100:600")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_sxs-radiusd"));
    let out = max_connections_line(prlimit, &path);
    let line = out.lines().last().unwrap_or_default();
    assert!(
        line.contains("sxs_max_connections=300") && line.contains("configured=Auto"),
        "{out}"
    );
    write_config(
        &path,
        &config_text(&sim.url(), "", None).replace(
            "timeout = \"2s\"\n",
            "timeout = \"2s\"\nmax_connections = 7\n",
        ),
    );
    let out = max_connections_line(Command::new(env!("CARGO_BIN_EXE_sxs-radiusd")), &path);
    let line = out.lines().last().unwrap_or_default();
    assert!(
        line.contains("sxs_max_connections=7") && line.contains("configured=Fixed(7)"),
        "{out}"
    );
}
