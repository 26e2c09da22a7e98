//! Push logins through the daemon's PAM socket: the real `sxs-radiusd` (with `[http]` on
//! loopback and `[push] socket` in a temp dir), libpam through pamtester, and `sxsctl push`;
//! the test plays the phone with the simulator's `/sim/push/ID/approve|deny`, after which the
//! simulator calls the daemon's callback, as SxS would.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::harness::{
    self, free_port, log_sink, module_path, pamtester, pamtester_conversation, typed, write_config,
    Conversation, PamDir, Sim, AUTHINFO_UNAVAIL, AUTH_ERR,
};

const CALLBACK_KEY: &str = "pam-it-callback-key-0123456789";
const APPROVE: &str = "Approve the sign-in on your phone.";

/// A binary of this workspace, built beside the test binary (`cargo test --workspace` builds
/// every binary first).
pub fn workspace_bin(name: &str) -> PathBuf {
    let module = module_path();
    let bin = module
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build --workspace, or cargo test --workspace)",
        bin.display()
    );
    bin
}

/// The real `sxs-radiusd`, killed on drop (its log then joins the secret check).
pub struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The HTTP listener's base URL (callbacks, DP4Mobile).
    pub http: String,
    timeout: String,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(sim_url: &str, timeout: &str) -> Daemon {
        typed(CALLBACK_KEY);
        let dir = harness::tempdir();
        let socket = dir.path().join("run").join("push.sock");
        let port = free_port();
        let config = dir.path().join("radiusd.toml");
        std::fs::write(
            &config,
            format!(
                "[sxs]\nservers = [\"{sim_url}\"]\norganization_id = \"1\"\ntimeout = \"2s\"\n\
                 [radius]\nstate_key = \"0123456789abcdef0123456789abcdef\"\n\
                 [[radius.clients]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"a-long-test-secret\"\n\
                 [http]\nlisten = [\"127.0.0.1:{port}\"]\nallow_plain_loopback = true\n\
                 public_url = \"http://127.0.0.1:{port}\"\ncallback_key = \"{CALLBACK_KEY}\"\n\
                 [push]\ntimeout = \"{timeout}\"\nsocket = \"{}\"\n",
                socket.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut child = Command::new(workspace_bin("sxs-radiusd"))
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!("sxs-radiusd exited:\n{}", stderr.lock().unwrap());
            }
            if line.starts_with("sxs-radiusd pam socket on") {
                break;
            }
        }
        std::thread::spawn(move || for _ in out.lines() {});
        Daemon {
            child,
            _dir: dir,
            socket,
            http: format!("http://127.0.0.1:{port}"),
            timeout: timeout.into(),
            stderr,
        }
    }

    /// The `[push]` section PAM and sxsctl need to find this daemon.
    pub fn pam_config(&self) -> String {
        format!(
            "[push]\ntimeout = \"{}\"\nsocket = \"{}\"\n",
            self.timeout,
            self.socket.display()
        )
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The log once it contains `needle`, waiting for it (bounded): the daemon writes its
    /// lines from a thread of its own, so a line can arrive after the answer it describes.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "log never showed {needle:?}:\n{logs}"
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// SIGKILL: no goodbye to anyone waiting.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let logs = self.logs();
        // Without the timestamps: their microseconds are a 6-digit run that could match an
        // OTP of another test by chance.
        let untimed: Vec<&str> = logs
            .lines()
            .map(|l| match l.split_once(' ') {
                Some((time, rest)) if time.contains('T') && time.ends_with('Z') => rest,
                _ => l,
            })
            .collect();
        log_sink().add(&untimed.join("\n"));
        if !std::thread::panicking() {
            assert!(
                !logs.contains("sig="),
                "a callback signature in the log:\n{logs}"
            );
            harness::assert_no_typed_secret_logged();
        }
    }
}

/// A simulator, the daemon, and one PAM service with the module's `args`.
struct Case {
    sim: Sim,
    daemon: Daemon,
    _dir: tempfile::TempDir,
    config: PathBuf,
    pam: PamDir,
    service: String,
}

impl Case {
    fn new(users: &[&str], timeout: &str, extra: &str, args: &str) -> Case {
        let sim = Sim::start(users);
        let daemon = Daemon::start(&sim.url(), timeout);
        let dir = harness::tempdir();
        let config = write_config(
            dir.path(),
            &sim.url(),
            &format!("{extra}{}", daemon.pam_config()),
        );
        let service = harness::unique("sxs-test-push");
        let pam = PamDir::new();
        pam.service(
            &service,
            &format!(
                "auth required {{module}} config={} {args}\n",
                config.display()
            ),
        );
        Case {
            sim,
            daemon,
            _dir: dir,
            config,
            pam,
            service,
        }
    }

    fn talk(&self, user: &str) -> Conversation {
        pamtester_conversation(&self.pam, &self.service, user)
    }

    /// The phone answers `action` to the push that reached `user`; the OTP that came with an
    /// approval is registered for the log check.
    fn phone(&self, user: &str, action: &str) {
        let id = self.sim.pending_push(user);
        self.sim.phone(&id, action);
        typed(&self.sim.otp(user));
    }

    fn decisions(&self) -> Vec<String> {
        let tag = format!("({}:auth)", self.service);
        log_sink()
            .lines()
            .into_iter()
            .filter(|l| l.contains(&tag) && l.contains("decision service="))
            .collect()
    }
}

#[test]
fn approved_push_logs_in_and_a_denied_one_is_refused() {
    let c = Case::new(&["alice"], "20s", "", "methods=push");
    let t = c.talk("alice");
    c.phone("alice", "approve");
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}\n{}", c.daemon.logs());
    assert!(transcript.contains(APPROVE), "{transcript}");
    let s = c.sim.stats();
    // Accepts count the push request too.
    assert_eq!(
        (s.start_push, s.validate_otp, s.accepts),
        (1, 1, 2),
        "{s:?}"
    );

    let t = c.talk("alice");
    c.phone("alice", "deny");
    let (ok, transcript) = t.finish();
    assert!(!ok && transcript.contains(AUTH_ERR), "{transcript}");
    let d = c.decisions();
    assert!(
        d.iter().any(|l| l.contains("verdict=accept")
            && l.contains(" method=push ")
            && l.contains("decision=allow")),
        "{d:#?}"
    );
    assert!(
        d.iter().any(|l| l.contains("code=local:push-denied")
            && l.contains(" method=push ")
            && l.contains("decision=deny")),
        "{d:#?}"
    );
    let logs = c.daemon.wait_for_log("result=\"denied\"");
    assert!(logs.contains("pam socket decision"), "{logs}");
}

#[test]
fn a_denied_push_falls_back_to_the_otp_prompt_when_otp_is_allowed() {
    let c = Case::new(&["bob"], "20s", "", "methods=push,otp");
    let mut t = c.talk("bob");
    c.phone("bob", "deny");
    // Push is not offered again.
    t.expect("OTP: ");
    t.answer(&c.sim.otp("bob"));
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains("not approved with the app; enter a one-time password instead"),
        "{transcript}"
    );
    let d = c.decisions();
    assert!(
        d.iter().any(|l| l.contains(" method=otp ")
            && l.contains("push=denied")
            && l.contains("decision=allow")),
        "{d:#?}"
    );
}

#[test]
fn push_timeout_refuses_and_sxs_down_follows_failmode() {
    let c = Case::new(&["carol"], "1s", "", "methods=push");
    let r = pamtester(&c.pam, &c.service, "carol", "");
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert_eq!(c.sim.stats().start_push, 1);
    let d = c.decisions();
    assert!(
        d.iter().any(|l| l.contains("code=local:push-timeout")),
        "{d:#?}"
    );
    // SxS unreachable, reported by the daemon: failmode (secure by default) decides.
    c.sim.stop_serving();
    let r = pamtester(&c.pam, &c.service, "carol", "");
    assert!(r.failed_with(AUTHINFO_UNAVAIL), "{r:?}");
    let d = c.decisions();
    assert!(
        d.iter()
            .any(|l| l.contains("verdict=unavailable") && l.contains(" method=push ")),
        "{d:#?}"
    );
}

#[test]
fn no_daemon_refuses_or_falls_back_to_the_otp_prompt() {
    let c = Case::new(&["dave"], "20s", "", "methods=push");
    let mut daemon = Daemon::start(&c.sim.url(), "20s");
    daemon.kill();
    // The module's config names a socket nobody listens on.
    let dir = harness::tempdir();
    let config = write_config(dir.path(), &c.sim.url(), &daemon.pam_config());
    c.pam.service(
        &c.service,
        &format!(
            "auth required {{module}} config={} methods=push\n",
            config.display()
        ),
    );
    let r = pamtester(&c.pam, &c.service, "dave", "");
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    let fallback = harness::unique("sxs-test-push-fb");
    c.pam.service(
        &fallback,
        &format!(
            "auth required {{module}} config={} methods=push,otp\n",
            config.display()
        ),
    );
    let mut t = pamtester_conversation(&c.pam, &fallback, "dave");
    t.expect("OTP");
    t.answer(&c.sim.otp("dave"));
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");
    assert_eq!(c.sim.stats().start_push, 0);
    let lines = log_sink().lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("code=local:daemon-unavailable") && l.contains(" method=push ")),
        "no refusal for the absent daemon"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("push=no-daemon") && l.contains("decision=allow")),
        "no OTP fallback"
    );
}

#[test]
fn the_daemon_killed_while_a_login_waits_is_answered_without_waiting_for_the_timeout() {
    // A timeout far beyond the test: the answer must come from the broken connection.
    let mut c = Case::new(&["erin"], "600s", "", "methods=push");
    let t = c.talk("erin");
    c.sim.pending_push("erin");
    c.daemon.kill();
    let (ok, transcript) = t.finish();
    assert!(!ok && transcript.contains(AUTH_ERR), "{transcript}");
    let d = c.decisions();
    assert!(
        d.iter()
            .any(|l| l.contains("code=local:daemon-unavailable") && l.contains(" method=push ")),
        "{d:#?}"
    );
}

#[test]
fn sxsctl_push_and_only_root_may_use_the_socket() {
    let c = Case::new(&["frank"], "20s", "", "methods=push");
    let sxsctl = workspace_bin("sxsctl");
    let run = {
        let (sxsctl, config) = (sxsctl.clone(), c.config.clone());
        std::thread::spawn(move || {
            Command::new(sxsctl)
                .arg("--config")
                .arg(config)
                .args(["--json", "push", "frank"])
                .output()
                .unwrap()
        })
    };
    c.phone("frank", "approve");
    let out = run.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{out:?}");
    assert!(stdout.contains("\"result\": \"accept\""), "{stdout}");

    // Another user: the socket (mode 0600) does not let it connect.
    let as_nobody = || {
        Command::new(&sxsctl)
            .arg("--config")
            .arg(&c.config)
            .args(["push", "frank"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    // Even with the socket opened up, the daemon checks the peer's credentials.
    std::fs::set_permissions(&c.daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(
        c.daemon.socket.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = as_nobody();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only root may use this socket"),
        "{out:?}"
    );
    c.daemon.wait_for_log("refused a peer that is not root");
    assert_eq!(c.sim.stats().start_push, 1);
}

#[test]
fn an_out_of_band_login_shows_the_challenge_and_the_apps_answer_completes_it() {
    let c = Case::new(&["grace"], "20s", "", "methods=oob");
    let mut t = c.talk("grace");
    let transcript = t.expect("Sign in with your authenticator app: scan the code or enter ");
    let _ = transcript;
    let transcript = t.expect(".");
    let shown = transcript
        .rsplit("scan the code or enter ")
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let challenge: String = shown.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(challenge.len(), 8, "{transcript}");
    // The app answers at the daemon's DP4Mobile endpoint with its response to the challenge.
    let response = c.sim.mac("grace", &challenge);
    let out = harness::run_ok(Command::new("curl").args([
        "-fsS",
        &format!(
            "{}/dp4mobile?serialNumber=2000038200&sequenceNumber=01&otp={response}&challenge={challenge}",
            c.daemon.http
        ),
    ]));
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains("retCode=\"0\""), "{answer}");
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}\n{}", c.daemon.logs());
    // The QR code, in Unicode half blocks.
    assert!(
        transcript.contains('\u{2580}') || transcript.contains('\u{2584}'),
        "{transcript}"
    );
    let d = c.decisions();
    assert!(
        d.iter().any(|l| l.contains(" method=oob ")
            && l.contains("decision=allow")
            && l.contains(&format!("challenge={challenge}"))),
        "{d:#?}"
    );
}
