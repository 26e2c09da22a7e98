//! The behaviour the issue lists, judged by FreeRADIUS's radclient.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sim::Faults;

use crate::harness::*;

/// What radclient saw.
#[derive(Debug)]
pub struct Reply {
    pub code: Option<String>,
    pub output: String,
}

impl Reply {
    pub fn attr(&self, name: &str) -> Option<String> {
        self.output.lines().find_map(|l| {
            let l = l.trim();
            l.strip_prefix(&format!("{name} = "))
                .map(|v| v.trim_matches('"').to_string())
        })
    }
}

fn radclient_bin() -> &'static str {
    let path = "/usr/bin/radclient";
    assert!(
        std::path::Path::new(path).exists(),
        "radclient is missing: apt-get install freeradius-utils (scripts/install-test-deps.sh)"
    );
    path
}

/// Sends `attrs` (radclient syntax, one per line) and returns the reply.
pub fn radclient(target: &str, command: &str, secret: &str, attrs: &str) -> Reply {
    radclient_opts(target, command, secret, attrs, &["-t", "2", "-r", "1"])
}

pub fn radclient_opts(
    target: &str,
    command: &str,
    secret: &str,
    attrs: &str,
    opts: &[&str],
) -> Reply {
    let mut child = Command::new(radclient_bin())
        .arg("-x")
        .args(opts)
        .args(if target.starts_with('[') {
            vec!["-6"]
        } else {
            vec![]
        })
        .arg(target)
        .arg(command)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attrs.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = output.lines().find_map(|l| {
        l.strip_prefix("Received ")
            .and_then(|r| r.split(" Id ").next())
            .map(str::to_string)
    });
    Reply { code, output }
}

pub fn auth(target: &str, user: &str, password: &str) -> Reply {
    radclient(
        target,
        "auth",
        SECRET,
        &format!("User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"),
    )
}

pub fn wrong(otp: &str) -> &'static str {
    if otp == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[test]
fn accept_with_the_current_otp_and_reject_a_wrong_or_replayed_one() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let otp = sim.otp("alice");
    let reply = auth(&r.target(), "alice", &otp);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    let reply = auth(&r.target(), "alice", &otp);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    assert_eq!(
        reply.attr("Reply-Message").as_deref(),
        Some("Authentication failed")
    );
    let reply = auth(&r.target(), "bob", wrong(&sim.otp("bob")));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    // The log has the decision and never the OTP.
    r.wait_for_log("reply=\"accept\"");
    let logs = r.logs();
    assert!(!logs.contains(&otp), "the OTP reached the log:\n{logs}");
}

#[test]
fn radtest_works_as_the_readme_says() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let out = Command::new("radtest")
        .args(["alice", &sim.otp("alice"), &r.target(), "0", SECRET])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Received Access-Accept"), "{text}");
}

#[test]
fn unknown_client_gets_no_answer() {
    let sim = Sim::start();
    let clients = format!(
        "[[radius.clients]]\nname = \"far\"\naddress = \"192.0.2.0/24\"\nsecret = \"{SECRET}\"\n"
    );
    let r = Radiusd::start(&config_text(&sim.url(), "", Some(&clients)), "127.0.0.1:0");
    let reply = auth(&r.target(), "alice", &sim.otp("alice"));
    assert_eq!(reply.code, None, "{}", reply.output);
    assert!(reply.output.contains("No reply"), "{}", reply.output);
    assert_eq!(sim.handle.stats().validate_otp, 0);
    r.wait_for_log("not a configured client");
}

#[test]
fn wrong_secret_never_accepts() {
    let sim = Sim::start();
    // With Message-Authenticator (required): dropped.
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let otp = sim.otp("alice");
    let reply = radclient(
        &r.target(),
        "auth",
        "not-the-secret",
        &format!(
            "User-Name = \"alice\"\nUser-Password = \"{otp}\"\nMessage-Authenticator = 0x00\n"
        ),
    );
    assert_eq!(reply.code, None, "{}", reply.output);
    // Without it, on a client that does not require it: the password decodes to garbage.
    let clients = format!(
        "[[radius.clients]]\nname = \"legacy\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nrequire_message_authenticator = false\n"
    );
    let r2 = Radiusd::start(&config_text(&sim.url(), "", Some(&clients)), "127.0.0.1:0");
    let reply = radclient(
        &r2.target(),
        "auth",
        "not-the-secret",
        &format!("User-Name = \"alice\"\nUser-Password = \"{otp}\"\n"),
    );
    assert_ne!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    assert_eq!(sim.handle.stats().accepts, 0);
    // The OTP was never used: it still works with the right secret.
    let reply = auth(&r.target(), "alice", &otp);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
}

#[test]
fn missing_message_authenticator_on_a_requiring_client_is_dropped() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let reply = radclient(
        &r.target(),
        "auth",
        SECRET,
        &format!(
            "User-Name = \"alice\"\nUser-Password = \"{}\"\n",
            sim.otp("alice")
        ),
    );
    assert_eq!(reply.code, None, "{}", reply.output);
    assert_eq!(sim.handle.stats().validate_otp, 0);
    // The log names the real cause (absent, not wrong) and what to do.
    r.wait_for_log("it has no Message-Authenticator and this client requires one");
    assert!(!r.logs().contains("shared secrets differ"), "{}", r.logs());
}

#[test]
fn challenge_round_trip_forged_and_expired_state() {
    let sim = Sim::start();
    let r = Radiusd::start(
        &config_text(
            &sim.url(),
            "mode = \"challenge\"\nchallenge_prompt = \"Code from your phone\"",
            None,
        ),
        "127.0.0.1:0",
    );
    let first = auth(&r.target(), "alice", "any-first-factor");
    assert_eq!(
        first.code.as_deref(),
        Some("Access-Challenge"),
        "{}",
        first.output
    );
    assert_eq!(
        first.attr("Reply-Message").as_deref(),
        Some("Code from your phone")
    );
    let state = first.attr("State").expect("State in the challenge");
    assert_eq!(sim.handle.stats().validate_otp, 0);
    let with_state = |user: &str, otp: &str, state: &str| {
        radclient(
            &r.target(),
            "auth",
            SECRET,
            &format!("User-Name = \"{user}\"\nUser-Password = \"{otp}\"\nState = {state}\nMessage-Authenticator = 0x00\n"),
        )
    };
    // Another user cannot use alice's State.
    let reply = with_state("bob", &sim.otp("bob"), &state);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    let reply = with_state("alice", &sim.otp("alice"), &state);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    // Replayed State.
    sim.handle.advance_time(30);
    let reply = with_state("alice", &sim.otp("alice"), &state);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    // Forged: one byte changed.
    let mut forged = state.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let reply = with_state("carol", &sim.otp("carol"), &forged);
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    // Expired: signed with the right key, for the right user and client, but in the past.
    let signer = radiusd::state::StateSigner::new(STATE_KEY.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let state_at = |issued: u64| {
        let state = signer
            .issue(
                radiusd::state::Context::OTP,
                b"dave",
                b"local",
                issued,
                Duration::from_secs(120),
                &mut rand::rng(),
            )
            .unwrap();
        let hex: String = state.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}")
    };
    let reply = with_state("dave", &sim.otp("dave"), &state_at(now - 3600));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    // The same construction, fresh, is accepted: the test's State is the server's format.
    let reply = with_state("dave", &sim.otp("dave"), &state_at(now));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    // Only alice's and dave's valid States reached SxS; the others were refused before it.
    assert_eq!(sim.handle.stats().validate_otp, 2);
}

#[test]
fn challenge_state_from_one_instance_is_accepted_by_another() {
    let sim = Sim::start();
    let text = config_text(&sim.url(), "mode = \"challenge\"", None);
    let a = Radiusd::start(&text, "127.0.0.1:0");
    let b = Radiusd::start(&text, "127.0.0.1:0");
    let first = auth(&a.target(), "alice", "x");
    let state = first.attr("State").expect("State");
    let reply = radclient(
        &b.target(),
        "auth",
        SECRET,
        &format!("User-Name = \"alice\"\nUser-Password = \"{}\"\nState = {state}\nMessage-Authenticator = 0x00\n", sim.otp("alice")),
    );
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
}

#[test]
fn retransmissions_while_in_flight_cause_one_sxs_call() {
    let sim = Sim::start();
    sim.handle.set_faults(Faults {
        latency_ms: 1_200,
        calls: Some(1),
        ..Faults::default()
    });
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    // radclient resends the same packet every 0.4 s while no answer comes.
    let reply = radclient_opts(
        &r.target(),
        "auth",
        SECRET,
        &format!(
            "User-Name = \"alice\"\nUser-Password = \"{}\"\nMessage-Authenticator = 0x00\n",
            sim.otp("alice")
        ),
        &["-t", "0.4", "-r", "6"],
    );
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    assert_eq!(sim.handle.stats().validate_otp, 1);
}

#[test]
fn status_server_answers_only_while_sxs_is_reachable() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let status = || {
        radclient(
            &r.target(),
            "status",
            SECRET,
            "Message-Authenticator = 0x00\n",
        )
    };
    let reply = status();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    // Without Message-Authenticator: dropped (RFC 5997 requires it).
    let reply = radclient(&r.target(), "status", SECRET, "NAS-Identifier = \"x\"\n");
    assert_eq!(reply.code, None, "{}", reply.output);
    sim.handle.stop();
    // A request finds SxS gone; from then on Status-Server is not answered.
    let reply = auth(&r.target(), "alice", "123456");
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    let reply = status();
    assert_eq!(reply.code, None, "{}", reply.output);
}

#[test]
fn ipv6_listen() {
    let sim = Sim::start();
    let r = Radiusd::start(&config_text(&sim.url(), "", None), "[::1]:0");
    assert!(r.addr.is_ipv6());
    let reply = auth(&r.target(), "alice", &sim.otp("alice"));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    r.wait_for_log("client=\"local6\"");
}

#[test]
fn sxs_down_rejects_under_secure_and_accepts_under_safe() {
    let sim = Sim::start();
    let url = sim.url();
    sim.handle.stop();
    let secure = Radiusd::start(&config_text(&url, "", None), "127.0.0.1:0");
    let reply = auth(&secure.target(), "alice", "123456");
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    secure.wait_for_log("deny-unavailable");
    let text = config_text(&url, "", None).replacen(
        "[radius]",
        "[policy]\nfailmode = \"safe\"\n[radius]",
        1,
    );
    let safe = Radiusd::start(&text, "127.0.0.1:0");
    let reply = auth(&safe.target(), "alice", "123456");
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    safe.wait_for_log("WITHOUT a second factor");
}

#[test]
fn sighup_adds_a_client_without_restart() {
    let sim = Sim::start();
    let far = format!(
        "[[radius.clients]]\nname = \"far\"\naddress = \"192.0.2.0/24\"\nsecret = \"{SECRET}\"\n"
    );
    let r = Radiusd::start(&config_text(&sim.url(), "", Some(&far)), "127.0.0.1:0");
    let pid = r.child.id();
    assert_eq!(auth(&r.target(), "alice", &sim.otp("alice")).code, None);
    write_config(&r.config, &config_text(&sim.url(), "", None));
    r.signal("HUP");
    r.wait_for_log("configuration reloaded");
    let reply = auth(&r.target(), "alice", &sim.otp("alice"));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    assert_eq!(r.child.id(), pid);
    // A broken file keeps the running configuration.
    write_config(&r.config, "[sxs]\nservers = []\n");
    r.signal("HUP");
    r.wait_for_log("reload failed");
    sim.handle.advance_time(30);
    let reply = auth(&r.target(), "alice", &sim.otp("alice"));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
}

#[test]
fn reject_is_delayed_without_holding_up_other_requests() {
    let sim = Sim::start();
    let text =
        config_text(&sim.url(), "", None).replace("reject_delay = \"0s\"", "reject_delay = \"1s\"");
    let r = Radiusd::start(&text, "127.0.0.1:0");
    let target = r.target();
    let t = target.clone();
    let start = Instant::now();
    let slow = std::thread::spawn(move || {
        let reply = auth(&t, "bob", "000001");
        (reply, start.elapsed())
    });
    let reply = auth(&target, "alice", &sim.otp("alice"));
    let accept_took = start.elapsed();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    let (reply, reject_took) = slow.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    assert!(
        reject_took >= Duration::from_secs(1),
        "reject after {reject_took:?}"
    );
    assert!(
        accept_took < reject_took,
        "accept {accept_took:?} waited for the reject {reject_took:?}"
    );
}

#[test]
fn sigterm_answers_requests_in_flight_before_exiting() {
    let sim = Sim::start();
    sim.handle.set_faults(Faults {
        latency_ms: 800,
        calls: Some(1),
        ..Faults::default()
    });
    let mut r = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let target = r.target();
    let otp = sim.otp("alice");
    let pending = std::thread::spawn(move || auth(&target, "alice", &otp));
    // Wait until the request reached SxS, then ask the server to stop.
    for _ in 0..200 {
        if sim.handle.stats().validate_otp == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    r.signal("TERM");
    let reply = pending.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    let status = r.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    r.wait_for_log("stopped");
}

#[test]
fn accounting_is_answered_only_when_enabled_and_authentic() {
    let sim = Sim::start();
    let acct = "Acct-Status-Type = Start\nAcct-Session-Id = \"s1\"\nUser-Name = \"alice\"\n";
    let off = Radiusd::start(&config_text(&sim.url(), "", None), "127.0.0.1:0");
    let reply = radclient(&off.target(), "acct", SECRET, acct);
    assert_eq!(reply.code, None, "{}", reply.output);
    let on = Radiusd::start(
        &config_text(&sim.url(), "accounting = true", None),
        "127.0.0.1:0",
    );
    let reply = radclient(&on.target(), "acct", SECRET, acct);
    assert_eq!(
        reply.code.as_deref(),
        Some("Accounting-Response"),
        "{}",
        reply.output
    );
    let reply = radclient(&on.target(), "acct", "not-the-secret", acct);
    assert_eq!(reply.code, None, "{}", reply.output);
    on.wait_for_log("Accounting-Request dropped");
    assert_eq!(sim.handle.stats().validate_otp, 0);
}
