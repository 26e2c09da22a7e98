//! PUSH approval through the real server: radclient's request is held until the simulator's
//! "phone" approves or denies, SxS calls our HTTP callback, and the OTP it carries is validated.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::radclient::{radclient_opts, Reply};

pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The daemon's PAM socket for this test (never the shared /run/sxs/radiusd/push.sock).
fn pam_socket(port: u16) -> String {
    std::env::temp_dir()
        .join(format!("sxs-radiusd-it-{}-{port}", std::process::id()))
        .join("push.sock")
        .display()
        .to_string()
}

fn push_config(sim: &Sim, port: u16, timeout: &str) -> String {
    config_text(&sim.url(), "methods = [\"otp\", \"push\"]\n", None)
        + &format!(
            "[http]\nlisten = [\"127.0.0.1:{port}\"]\nallow_plain_loopback = true\npublic_url = \"http://127.0.0.1:{port}\"\ncallback_key = \"0123456789abcdef-callback\"\n[push]\ntimeout = \"{timeout}\"\nsocket = \"{}\"\n",
            pam_socket(port)
        )
}

pub(crate) fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

/// Starts a push login in the background; returns its pending push id and the join handle.
pub(crate) fn push_login(
    r: &Radiusd,
    sim: &Sim,
    user: &str,
) -> (String, std::thread::JoinHandle<Reply>) {
    push_login_with(r, sim, user, "push")
}

fn push_login_with(
    r: &Radiusd,
    sim: &Sim,
    user: &str,
    password: &str,
) -> (String, std::thread::JoinHandle<Reply>) {
    let target = r.target();
    let u = user.to_string();
    let password = password.to_string();
    let login = std::thread::spawn(move || {
        radclient_opts(
            &target,
            "auth",
            SECRET,
            &format!(
                "User-Name = \"{u}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n"
            ),
            &["-t", "15", "-r", "1"],
        )
    });
    let started = Instant::now();
    loop {
        if let Some(p) = sim.handle.pending_pushes(user).first() {
            return (p.id.clone(), login);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no push reached the phone:\n{}",
            r.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn phone(sim: &Sim, id: &str, action: &str, query: &str) -> String {
    let (body, code) = curl(&[
        "-X",
        "POST",
        &format!("{}/sim/push/{id}/{action}{query}", sim.url()),
    ]);
    assert_eq!(code, "200", "{body}");
    body
}

#[test]
fn approved_push_accepts_denied_rejects_and_callbacks_complete_once() {
    let sim = Sim::start();
    let port = free_port();
    let r = Radiusd::start(&push_config(&sim, port, "10s"), "127.0.0.1:0");
    // Approved: the held request is answered Accept.
    let (id, login) = push_login(&r, &sim, "alice");
    // A forged location (altered signature) and another push's id change nothing.
    let forged = phone(&sim, &id, "approve", "?bad_signature=true");
    assert!(forged.contains("[403]"), "{forged}");
    let answered = phone(&sim, &id, "approve", "?times=2");
    // The replay is refused: 409 while the login is still being answered, 404 once done.
    assert!(
        answered.contains("[200,409]") || answered.contains("[200,404]"),
        "second callback must be refused: {answered}"
    );
    let reply = login.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    // Denied.
    let (id, login) = push_login(&r, &sim, "bob");
    phone(&sim, &id, "deny", "");
    let reply = login.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    let stats = sim.handle.stats();
    assert_eq!(stats.start_push, 2);
    r.wait_for_log("decision=\"push-denied\"");
    let logs = r.logs();
    assert!(logs.contains("method=\"push\""), "{logs}");
    assert!(
        !logs.contains("sig="),
        "callback signature in the log:\n{logs}"
    );
    let (health, code) = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert_eq!(code, "200", "{health}");
    let (_, code) = curl(&[
        "-X",
        "POST",
        &format!("http://127.0.0.1:{port}/push/callback/00?sig=00"),
        "-d",
        "{}",
    ]);
    assert_eq!(code, "403");
}

#[test]
fn push_times_out_and_a_late_callback_finds_nothing() {
    let sim = Sim::start();
    let port = free_port();
    let r = Radiusd::start(&push_config(&sim, port, "1s"), "127.0.0.1:0");
    let (id, login) = push_login(&r, &sim, "carol");
    let reply = login.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    let late = phone(&sim, &id, "approve", "");
    assert!(late.contains("[404]"), "{late}");
    r.wait_for_log("decision=\"push-timeout\"");
    // SxS down when starting: failmode secure refuses, without waiting.
    sim.handle.set_faults(common::sim::Faults {
        error: Some(common::sim::FaultKind::Http500),
        calls: Some(1),
        ..Default::default()
    });
    let reply = crate::radclient::auth(&r.target(), "dave", "push");
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
}

/// The same over HTTPS: the listener serves TLS with the configured certificate, SxS's callback
/// (the simulator) completes the login through it, and plain HTTP on it fails.
#[test]
fn push_callback_over_https() {
    let sim = Sim::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("http.pem"), dir.path().join("http.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = config_text(&sim.url(), "methods = [\"push\"]\n", None)
        + &format!(
            "[http]\nlisten = [\"127.0.0.1:{port}\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\npublic_url = \"https://127.0.0.1:{port}\"\ncallback_key = \"0123456789abcdef-callback\"\n[push]\nsocket = \"{}\"\n",
            cert.display(),
            key.display(),
            pam_socket(port)
        );
    let r = Radiusd::start(&text, "127.0.0.1:0");
    let (body, code) = curl(&[
        "--cacert",
        &cert.display().to_string(),
        &format!("https://127.0.0.1:{port}/healthz"),
    ]);
    assert_eq!(code, "200", "{body}");
    let (_, code) = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert_ne!(
        code, "200",
        "plain HTTP must not be served on a TLS listener"
    );
    // A push-only client: any first request starts the push.
    let (id, login) = push_login_with(&r, &sim, "alice", "anything");
    let answered = phone(&sim, &id, "approve", "");
    assert!(answered.contains("[200]"), "{answered}");
    let reply = login.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
}

/// The NAS retransmits a held request: the in-flight entry absorbs it and no second push is
/// started. A callback carrying another push's id (with this push's signature) changes
/// nothing: each location is signed for its own id.
#[test]
fn retransmissions_start_no_second_push_and_another_pushs_id_is_refused() {
    let sim = Sim::start();
    let port = free_port();
    let r = Radiusd::start(&push_config(&sim, port, "20s"), "127.0.0.1:0");
    let target = r.target();
    let retrying = std::thread::spawn(move || {
        radclient_opts(
            &target,
            "auth",
            SECRET,
            "User-Name = \"alice\"\nUser-Password = \"push\"\nMessage-Authenticator = 0x00\n",
            &["-t", "1", "-r", "10"],
        )
    });
    let started = Instant::now();
    let alice = loop {
        if let Some(p) = sim.handle.pending_pushes("alice").first() {
            break p.id.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", r.logs());
        std::thread::sleep(Duration::from_millis(20));
    };
    r.wait_for_log("retransmission of a request in flight dropped");
    let (bob, bob_login) = push_login(&r, &sim, "bob");
    // Alice's signature on bob's id: refused; bob's login is untouched.
    let crossed = phone(&sim, &alice, "approve", &format!("?other_id={bob}"));
    assert!(crossed.contains("[403]"), "{crossed}");
    phone(&sim, &bob, "deny", "");
    let reply = bob_login.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    // Alice's own approval still completes her held (and retransmitted) request, once.
    let answered = phone(&sim, &alice, "approve", "");
    assert!(answered.contains("[200]"), "{answered}");
    let reply = retrying.join().unwrap();
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    assert_eq!(
        sim.handle.stats().start_push,
        2,
        "one push per distinct request"
    );
}
