//! RADIUS over TLS, judged by radsecproxy (Debian's package): radclient → radsecproxy (UDP in,
//! TLS out) → sxs-radiusd (TLS) → the simulator. radsecproxy runs from
//! `examples/radsec/radsecproxy.conf` as shipped, with only paths and ports substituted.
//! Certificates are made by the test (rcgen) in a temporary directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::harness::*;
use crate::radclient::{radclient, Reply};

const UDP_SECRET: &str = "a-long-udp-secret";

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf certificate and key (PEM) for `names`; `expired` puts its validity in the past.
    fn leaf(&self, names: &[&str], server: bool, expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        } else {
            p.not_before = rcgen::date_time_ymd(2024, 1, 1);
            p.not_after = rcgen::date_time_ymd(2040, 1, 1);
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    write_config(&path, text);
    path
}

/// The server side: CA "clients" signs the NAS certificates, CA "server" sxs-radiusd's.
struct Pki {
    dir: tempfile::TempDir,
    clients_ca: Ca,
    server_ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let clients_ca = Ca::new("sxs test clients CA");
        let server_ca = Ca::new("sxs test server CA");
        let (cert, key) = server_ca.leaf(&["127.0.0.1", "sxs.example.org"], true, false);
        write_file(dir.path(), "server.pem", &cert);
        write_file(dir.path(), "server.key", &key);
        write_file(dir.path(), "clients-ca.pem", &clients_ca.pem);
        write_file(dir.path(), "sxs-ca.pem", &server_ca.pem);
        Pki {
            dir,
            clients_ca,
            server_ca,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `examples/radsec/sxs.toml.snippet`, pointed at this PKI and at loopback, plus `extra`
    /// keys under `[radius.tls]`.
    fn tls_section(&self, extra: &str) -> String {
        let snippet = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/radsec/sxs.toml.snippet"
        ))
        .unwrap();
        snippet
            .replace(
                "/etc/sxs/radsec/",
                &format!("{}/", self.dir.path().display()),
            )
            .replace(
                "listen = [\"0.0.0.0:2083\", \"[::]:2083\"]",
                &format!("listen = [\"127.0.0.1:0\"]\n{extra}"),
            )
            .replace("192.0.2.10", "127.0.0.1")
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A radsecproxy in the foreground, killed on drop.
struct Radsecproxy {
    child: Child,
    udp: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Radsecproxy {
    /// Runs the shipped example with the NAS certificate `cert`/`key` towards `tls`.
    fn start(pki: &Pki, tls: SocketAddr, name: &str, cert: &str, key: &str) -> Radsecproxy {
        let bin = "/usr/sbin/radsecproxy";
        assert!(
            Path::new(bin).exists(),
            "radsecproxy is missing: apt-get install radsecproxy (scripts/install-test-deps.sh)"
        );
        let dir = pki.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write_file(&dir, "nas1.pem", cert);
        write_file(&dir, "nas1.key", key);
        std::fs::copy(pki.path("sxs-ca.pem"), dir.join("sxs-ca.pem")).unwrap();
        let port = free_udp_port();
        let example = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/radsec/radsecproxy.conf"
        ))
        .unwrap();
        let conf = example
            .replace("127.0.0.1:1812", &format!("127.0.0.1:{port}"))
            .replace("/etc/radsecproxy/", &format!("{}/", dir.display()))
            .replace("host sxs.example.org", &format!("host {}", tls.ip()))
            .replace("port 2083", &format!("port {}", tls.port()))
            // Foreground, logging to stderr for the test's diagnostics.
            .replace("LogDestination x-syslog:///LOG_DAEMON\n", "");
        let conf_path = write_file(&dir, "radsecproxy.conf", &conf);
        let mut child = Command::new(bin)
            .args(["-f", "-d", "4", "-c"])
            .arg(&conf_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        Radsecproxy {
            child,
            udp: format!("127.0.0.1:{port}"),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Radsecproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn access(target: &str, user: &str, password: &str, state: Option<&str>) -> Reply {
    let state = state.map(|s| format!("State = {s}\n")).unwrap_or_default();
    radclient(
        target,
        "auth",
        UDP_SECRET,
        &format!(
            "User-Name = \"{user}\"\nUser-Password = \"{password}\"\n{state}Message-Authenticator = 0x00\n"
        ),
    )
}

fn start_radiusd(
    sim: &Sim,
    pki: &Pki,
    radius_extra: &str,
    tls_extra: &str,
) -> (Radiusd, SocketAddr) {
    let text = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
        config_text(&sim.url(), radius_extra, Some("")),
        pki.tls_section(tls_extra)
    );
    let r = Radiusd::start(&text, "127.0.0.1:0");
    let tls = r
        .stdout_after("sxs-radiusd tls listening on ")
        .parse()
        .unwrap();
    (r, tls)
}

fn metrics(r: &Radiusd) -> String {
    let url = r.stdout_after("sxs-radiusd metrics on ");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &url])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Waits (bounded) until the metrics contain `needle`.
fn wait_metric(r: &Radiusd, needle: &str) -> String {
    wait_metric_for(r, needle, 400)
}

/// Waits (bounded) until the sample `series` (name and labels) counts at least one.
fn wait_counted(r: &Radiusd, series: &str) {
    for _ in 0..400 {
        let counted = metrics(r).lines().any(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| v >= 1.0)
        });
        if counted {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{series} never counted:\n{}\n{}", metrics(r), r.logs());
}

fn wait_metric_for(r: &Radiusd, needle: &str, tries: usize) -> String {
    for _ in 0..tries {
        let m = metrics(r);
        if m.contains(needle) {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "metrics never showed {needle:?}:\n{}\n{}",
        metrics(r),
        r.logs()
    );
}

/// The first request: radsecproxy connects to sxs-radiusd on demand and may drop requests
/// until the TLS connection is up; retried (bounded). The first leg of a challenge costs no OTP.
fn first_challenge(proxy: &Radsecproxy, r: &Radiusd, user: &str) -> Reply {
    for _ in 0..20 {
        let reply = access(&proxy.udp, user, "first-factor-ok", None);
        if reply.code.is_some() {
            return reply;
        }
    }
    panic!(
        "no answer through radsecproxy:\n{}\n{}",
        proxy.log(),
        r.logs()
    );
}

#[test]
fn radclient_through_radsecproxy_accept_reject_challenge_and_status_server() {
    let sim = Sim::start();
    let pki = Pki::new();
    let (r, tls) = start_radiusd(&sim, &pki, "mode = \"challenge\"", "");
    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, false);
    let proxy = Radsecproxy::start(&pki, tls, "good", &cert, &key);

    // Challenge: Access-Challenge with a State, over TLS.
    let challenge = first_challenge(&proxy, &r, "alice");
    assert_eq!(
        challenge.code.as_deref(),
        Some("Access-Challenge"),
        "{}",
        challenge.output
    );
    let state = challenge.attr("State").expect("State in the challenge");
    assert_eq!(
        challenge.attr("Reply-Message").as_deref(),
        Some("Enter your one-time password: ")
    );
    // Accept: the follow-up with the State and the OTP.
    let otp = sim.otp("alice");
    let reply = access(&proxy.udp, "alice", &otp, Some(&state));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}",
        reply.output
    );
    // Reject: the same State again (replayed), and a wrong OTP on a fresh challenge.
    let reply = access(&proxy.udp, "alice", &otp, Some(&state));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    let challenge = access(&proxy.udp, "bob", "x", None);
    let state = challenge.attr("State").expect("State in the challenge");
    let reply = access(
        &proxy.udp,
        "bob",
        crate::radclient::wrong(&sim.otp("bob")),
        Some(&state),
    );
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        reply.output
    );
    assert_eq!(sim.handle.stats().validate_otp, 2, "one SxS call per OTP");
    assert_eq!(sim.handle.stats().accepts, 1);

    // All of it came over TLS, from the client named by its certificate.
    let m = wait_metric(
        &r,
        r#"sxs_radius_decisions_total{client="nas1",reply="reject",reason="deny"} 1"#,
    );
    assert!(
        m.contains(
            r#"sxs_radius_requests_total{client="nas1",transport="tls",code="Access-Request"} 5"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"sxs_radius_state_rejects_total{reason="replayed"} 1"#),
        "{m}"
    );
    assert!(m.contains("sxs_radius_tls_connections 1"), "{m}");
    r.wait_for_log("RADIUS/TLS connection client=\"nas1\"");

    // Status-Server: radsecproxy's RFC 5997 watchdog over the TLS connection, answered.
    let needle = r#"sxs_radius_requests_total{client="nas1",transport="tls",code="Status-Server"}"#;
    for _ in 0..1800 {
        if metrics(&r).contains(needle) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metrics(&r).contains(needle), "{}", proxy.log());
    for _ in 0..200 {
        if proxy
            .log()
            .contains("got status server response from sxs-radiusd")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        proxy
            .log()
            .contains("got status server response from sxs-radiusd"),
        "{}",
        proxy.log()
    );
    assert!(
        !r.logs().contains("Status-Server not answered"),
        "{}",
        r.logs()
    );
}

#[test]
fn certificates_from_another_ca_or_expired_are_refused_at_the_handshake() {
    let sim = Sim::start();
    let pki = Pki::new();
    let (r, tls) = start_radiusd(&sim, &pki, "", "");
    // Signed by the CA that signs the *server's* certificate: not one we accept clients from.
    let (cert, key) = pki.server_ca.leaf(&["nas1.example.org"], false, false);
    let proxy = Radsecproxy::start(&pki, tls, "other-ca", &cert, &key);
    let reply = access(&proxy.udp, "alice", &sim.otp("alice"), None);
    assert_eq!(reply.code, None, "{}", reply.output);
    wait_counted(
        &r,
        r#"sxs_radius_tls_handshake_failures_total{reason="unknown_ca"}"#,
    );
    drop(proxy);

    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, true);
    let proxy = Radsecproxy::start(&pki, tls, "expired", &cert, &key);
    let reply = access(&proxy.udp, "alice", &sim.otp("alice"), None);
    assert_eq!(reply.code, None, "{}", reply.output);
    wait_counted(
        &r,
        r#"sxs_radius_tls_handshake_failures_total{reason="expired"}"#,
    );
    drop(proxy);

    // Right CA, valid, but a name the client entry does not allow.
    let (cert, key) = pki.clients_ca.leaf(&["nas2.example.org"], false, false);
    let proxy = Radsecproxy::start(&pki, tls, "other-name", &cert, &key);
    let reply = access(&proxy.udp, "alice", &sim.otp("alice"), None);
    assert_eq!(reply.code, None, "{}", reply.output);
    wait_counted(
        &r,
        r#"sxs_radius_tls_handshake_failures_total{reason="certificate_not_matched"}"#,
    );
    assert_eq!(sim.handle.stats().validate_otp, 0, "nothing reached SxS");
    assert!(
        !metrics(&r).contains("transport=\"tls\""),
        "no packet was read"
    );
}

/// `openssl s_client` with the NAS certificate: a real TLS peer the test can make slow.
/// `extra`: more options (`-no_ign_eof` to end at the end of standard input).
fn s_client(pki: &Pki, tls: SocketAddr, cert: &str, key: &str, extra: &[&str]) -> Child {
    let dir = pki.dir.path().join("s_client");
    std::fs::create_dir_all(&dir).unwrap();
    let c = write_file(&dir, "c.pem", cert);
    let k = write_file(&dir, "c.key", key);
    Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &tls.to_string()])
        .args(extra)
        .arg("-cert")
        .arg(&c)
        .arg("-key")
        .arg(&k)
        .arg("-CAfile")
        .arg(pki.path("sxs-ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded, 30 s) for a child to exit.
fn wait_exit(child: &mut Child) -> bool {
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn idle_slow_and_excess_connections_cannot_hold_resources() {
    let sim = Sim::start();
    let pki = Pki::new();
    let (r, tls) = start_radiusd(
        &sim,
        &pki,
        "",
        "max_connections = 2\nhandshake_timeout = \"1s\"\nidle_timeout = \"1s\"\nread_timeout = \"1s\"",
    );
    // Two connections that never start a handshake take both slots; a third is closed at once.
    let mut silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(tls).unwrap()).collect();
    wait_metric(&r, "sxs_radius_tls_connections 0");
    let mut third = TcpStream::connect(tls).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        third.read(&mut buf).unwrap_or(0),
        0,
        "third connection closed"
    );
    wait_metric(
        &r,
        r#"sxs_radius_tls_handshake_failures_total{reason="too_many_connections"} 1"#,
    );
    // The silent ones are closed by the handshake timeout, freeing the slots.
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "silent connection closed");
    }
    wait_metric(
        &r,
        r#"sxs_radius_tls_handshake_failures_total{reason="timeout"} 2"#,
    );

    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, false);
    // Handshake, then nothing: closed when idle.
    let mut idle = s_client(&pki, tls, &cert, &key, &[]);
    assert!(wait_exit(&mut idle), "idle TLS connection still open");
    r.wait_for_log("idle (radius.tls.idle_timeout)");
    // Handshake, then a packet one byte at a time, slower than read_timeout allows.
    let mut slow = s_client(&pki, tls, &cert, &key, &[]);
    let mut stdin = slow.stdin.take().unwrap();
    r.wait_for_log("RADIUS/TLS connection client=\"nas1\"");
    for b in [1u8, 7, 0, 20, 0, 0, 0, 0] {
        if stdin.write_all(&[b]).and_then(|_| stdin.flush()).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(400));
        if slow.try_wait().unwrap().is_some() {
            break;
        }
    }
    assert!(wait_exit(&mut slow), "slow TLS connection still open");
    r.wait_for_log("packet too slow (radius.tls.read_timeout)");
    wait_metric(&r, "sxs_radius_tls_connections 0");
    assert_eq!(sim.handle.stats().validate_otp, 0);
}

#[test]
fn sighup_reloads_the_server_certificate() {
    let sim = Sim::start();
    let pki = Pki::new();
    let (r, tls) = start_radiusd(&sim, &pki, "", "");
    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, false);
    let served = |pki: &Pki| {
        let mut c = s_client(pki, tls, &cert, &key, &["-no_ign_eof"]);
        drop(c.stdin.take());
        let out = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
    };
    let before = served(&pki);
    assert!(before.contains("CN = 127.0.0.1"), "{before}");
    // A renewed certificate with another name, in place; then SIGHUP.
    let (renewed, renewed_key) =
        pki.server_ca
            .leaf(&["sxs-renewed.example.org", "127.0.0.1"], true, false);
    write_file(pki.dir.path(), "server.pem", &renewed);
    write_file(pki.dir.path(), "server.key", &renewed_key);
    r.signal("HUP");
    r.wait_for_log("configuration reloaded");
    let after = served(&pki);
    assert!(after.contains("CN = sxs-renewed.example.org"), "{after}");
    // A broken certificate file is refused and the running one kept.
    write_file(pki.dir.path(), "server.pem", "not a certificate\n");
    r.signal("HUP");
    r.wait_for_log("reload failed");
    assert!(r.logs().contains("radius.tls.cert_file"), "{}", r.logs());
    let kept = served(&pki);
    assert!(kept.contains("CN = sxs-renewed.example.org"), "{kept}");
}

#[test]
fn only_tls_1_2_and_1_3_are_spoken() {
    let sim = Sim::start();
    let pki = Pki::new();
    let (r, tls) = start_radiusd(&sim, &pki, "", "");
    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, false);
    for (version, log) in [("-tls1_2", "TLSv1_2"), ("-tls1_3", "TLSv1_3")] {
        let mut c = s_client(&pki, tls, &cert, &key, &["-no_ign_eof", version]);
        drop(c.stdin.take());
        c.wait_with_output().unwrap();
        r.wait_for_log(&format!("version=Some({log})"));
    }
    let mut c = s_client(&pki, tls, &cert, &key, &["-no_ign_eof", "-tls1_1"]);
    drop(c.stdin.take());
    c.wait_with_output().unwrap();
    wait_metric(
        &r,
        r#"sxs_radius_tls_handshake_failures_total{reason="protocol"} 1"#,
    );
    assert!(!r.logs().contains("TLSv1_1"), "{}", r.logs());
}

#[test]
fn requests_on_one_connection_are_answered_as_they_are_ready() {
    let sim = Sim::start();
    let pki = Pki::new();
    let (r, tls) = start_radiusd(&sim, &pki, "", "");
    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, false);
    let proxy = Radsecproxy::start(&pki, tls, "order", &cert, &key);
    // Bring the TLS connection up (a wrong OTP for dave; retried until radsecproxy is ready).
    let warm = (0..20)
        .map(|_| access(&proxy.udp, "dave", "000000", None))
        .find(|reply| reply.code.is_some())
        .expect("no answer through radsecproxy");
    assert_eq!(
        warm.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        warm.output
    );
    let calls = sim.handle.stats().validate_otp;
    // alice's validateOtp is held 1.5 s at SxS (sxs.timeout is 2 s); bob's, sent while it waits, is not.
    sim.handle.set_faults(common::sim::Faults {
        latency_ms: 1500,
        error: None,
        calls: Some(1),
    });
    let otp = sim.otp("alice");
    let udp = proxy.udp.clone();
    let slow = std::thread::spawn(move || radclient_opts_long(&udp, "alice", &otp));
    for _ in 0..200 {
        if sim.handle.stats().validate_otp > calls {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let fast = access(
        &proxy.udp,
        "bob",
        crate::radclient::wrong(&sim.otp("bob")),
        None,
    );
    assert_eq!(
        fast.code.as_deref(),
        Some("Access-Reject"),
        "{}",
        fast.output
    );
    let slow = slow.join().unwrap();
    assert_eq!(
        slow.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}\n{}",
        slow.output,
        r.logs(),
        proxy.log()
    );
    // bob's answer went back over the connection before alice's, and there was one connection.
    let log = proxy.log();
    let bob = log
        .find("Access-Reject for user bob")
        .expect("bob answered");
    let alice = log
        .find("Access-Accept for user alice")
        .expect("alice answered");
    assert!(bob < alice, "{log}");
    r.wait_for_log("RADIUS/TLS connection client=");
    assert_eq!(
        r.logs().matches("RADIUS/TLS connection client=").count(),
        1,
        "{}",
        r.logs()
    );
}

/// One Access-Request with patience for a slow SxS (no retransmission).
fn radclient_opts_long(target: &str, user: &str, otp: &str) -> Reply {
    crate::radclient::radclient_opts(
        target,
        "auth",
        UDP_SECRET,
        &format!(
            "User-Name = \"{user}\"\nUser-Password = \"{otp}\"\nMessage-Authenticator = 0x00\n"
        ),
        &["-t", "20", "-r", "1"],
    )
}

#[test]
fn check_config_reads_the_tls_files_and_says_what_is_wrong() {
    let sim = Sim::start();
    let pki = Pki::new();
    let text = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:9812\"\n{}",
        config_text(&sim.url(), "", Some("")),
        pki.tls_section("")
    );
    let path = write_file(pki.dir.path(), "sxs.toml", &text);
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_sxs-radiusd"))
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (ok, out) = check();
    assert!(ok, "{out}");
    assert!(out.contains("radius.tls: listen 127.0.0.1:0"), "{out}");
    assert!(out.contains("client certificates required"), "{out}");
    assert!(
        out.contains("tls client nas1: 127.0.0.1/32 certificate nas1.example.org"),
        "{out}"
    );
    assert!(
        out.contains("metrics: http://127.0.0.1:9812/metrics"),
        "{out}"
    );
    // A CA file that holds no certificate: named, and the check fails.
    write_file(pki.dir.path(), "clients-ca.pem", "nothing here\n");
    let (ok, out) = check();
    assert!(!ok, "{out}");
    assert!(out.contains("radius.tls.ca_file"), "{out}");
    assert!(out.contains("clients-ca.pem"), "{out}");
}

/// A `[[radius.tls.clients]]` entry with a first factor: password + OTP (`append`) from a NAS
/// behind radsecproxy, the password checked by a real slapd before SxS is asked, the group's
/// reply attributes in the Accept that comes back over TLS.
#[test]
fn a_tls_client_with_an_ldap_first_factor() {
    use crate::peers::{Slapd, BASE};
    let slapd = Slapd::start();
    let sim = Sim::start();
    let pki = Pki::new();
    let text = format!(
        "{}\n[[radius.reply]]\ngroup = \"vpn-admins\"\nattributes = {{ \"Filter-Id\" = \"admin-acl\" }}\n{}\
         first_factor = \"ldap\"\npassword_otp = \"append\"\n\
         [first_factor.ldap]\nca_file = \"{}\"\nurls = [\"ldaps://127.0.0.1:{}\"]\n\
         bind_dn = \"uid={{user}},ou=people,{BASE}\"\ngroup_attribute = \"seeAlso\"\n",
        config_text(&sim.url(), "", Some("")),
        pki.tls_section(""),
        slapd.ca.display(),
        slapd.ldaps_port,
    );
    let r = Radiusd::start(&text, "127.0.0.1:0");
    let tls: SocketAddr = r
        .stdout_after("sxs-radiusd tls listening on ")
        .parse()
        .unwrap();
    let (cert, key) = pki.clients_ca.leaf(&["nas1.example.org"], false, false);
    let proxy = Radsecproxy::start(&pki, tls, "ff", &cert, &key);

    // The first request may be dropped while radsecproxy connects: retried (bounded). A wrong
    // password is a Reject that never reaches SxS.
    let mut reply = None;
    for _ in 0..20 {
        let r = access(&proxy.udp, "alice", "not-her-password123456", None);
        if r.code.is_some() {
            reply = Some(r);
            break;
        }
    }
    let reply = reply.unwrap_or_else(|| panic!("no answer:\n{}\n{}", proxy.log(), r.logs()));
    assert_eq!(reply.code.as_deref(), Some("Access-Reject"), "{}", r.logs());
    r.wait_for_log("first-factor-reject");
    assert_eq!(sim.handle.stats().validate_otp, 0);

    let reply = access(
        &proxy.udp,
        "alice",
        &format!("alice-pw{}", sim.otp("alice")),
        None,
    );
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}",
        reply.output,
        r.logs()
    );
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("admin-acl"));
    assert_eq!(sim.handle.stats().validate_otp, 1);
}
