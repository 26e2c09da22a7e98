use std::io::Write as _;

use super::*;
use crate::fake::{accept, reject, unavailable, FakePam, Scripted};
use crate::pam::Item;

const OTP: &str = "OTP: ";

/// A config file in a temp dir; `extra` is appended.
struct Conf {
    dir: tempfile::TempDir,
}

impl Conf {
    fn new(extra: &str) -> Conf {
        let dir = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(dir.path().join("sxs.toml")).unwrap();
        write!(
            f,
            "[sxs]\nservers = [\"http://127.0.0.1:9\"]\norganization_id = \"1\"\ntimeout = \"2s\"\n{extra}"
        )
        .unwrap();
        Conf { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("sxs.toml")
    }

    fn args(&self, more: &[&str]) -> Args {
        let mut raw = vec![format!("config={}", self.path().display())];
        raw.extend(more.iter().map(|s| s.to_string()));
        Args::parse(&raw)
    }
}

fn run(pam: &mut FakePam, args: &Args, backend: &Scripted) -> PamCode {
    authenticate(pam, args, Flags::default(), backend)
}

#[test]
fn accept_is_success_and_logs_one_decision() {
    let c = Conf::new("");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("Alice@CORP").prompt(OTP, "123456");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert_eq!(b.otps(), ["123456"]);
    assert_eq!(
        b.seen.lock().unwrap()[0].0.user_id.as_deref(),
        Some("alice")
    );
    let d = pam.decisions();
    assert_eq!(d.len(), 1, "{}", pam.log_text());
    for needle in [
        "service=sshd",
        "user=Alice@CORP",
        "rhost=192.0.2.7",
        "verdict=accept",
        "decision=allow",
        "result=PAM_SUCCESS",
        "attempt=1/1",
        "latency_ms=",
    ] {
        assert!(d[0].contains(needle), "{needle} not in {}", d[0]);
    }
}

#[test]
fn wrong_otp_is_auth_err_with_the_neutral_message() {
    let c = Conf::new("");
    let b = Scripted::new([reject(codes::WRONG_OTP)]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "111111")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert!(pam.decisions()[0].contains("verdict=reject code=2010 decision=deny"));
}

#[test]
fn unknown_user_reads_exactly_what_a_wrong_otp_reads() {
    let c = Conf::new("");
    let b = Scripted::new([reject(codes::UNKNOWN_USER)]);
    let mut pam = FakePam::new("mallory")
        .prompt(OTP, "111111")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert!(pam.decisions()[0].contains("decision=deny-unenrolled"));
}

#[test]
fn unknown_user_is_reprompted_like_a_wrong_otp_without_further_calls() {
    let c = Conf::new("");
    let b = Scripted::new([reject(codes::UNKNOWN_USER)]);
    let mut pam = FakePam::new("mallory")
        .prompt(OTP, "111111")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, "222222")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&["prompts=2"]), &b), PamCode::AuthErr);
    assert_eq!(b.otps().len(), 1, "SxS already said the user has no token");
    assert_eq!(pam.decisions().len(), 2);
}

#[test]
fn unenrolled_allowed_by_policy() {
    let c = Conf::new("[policy]\nunenrolled = \"allow\"\n");
    let b = Scripted::new([reject(codes::NO_TOKEN)]);
    let mut pam = FakePam::new("carol").prompt(OTP, "111111");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert!(pam.decisions()[0].contains("decision=allow-unenrolled"));
}

#[test]
fn not_in_token_map_deny_still_prompts_and_never_calls() {
    let c = Conf::new("");
    let map = c.dir.path().join("tokens.map");
    std::fs::write(&map, "alice 2000038252\n").unwrap();
    let c2 = Conf::new(&format!(
        "[identity]\nsend = \"token_sn\"\ntoken_map = \"{}\"\n",
        map.display()
    ));
    let b = Scripted::new([]);
    let mut pam = FakePam::new("carol")
        .prompt(OTP, "123456")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c2.args(&[]), &b), PamCode::AuthErr);
    assert!(b.otps().is_empty());
    assert!(pam.decisions()[0].contains("decision=deny-unenrolled"));

    // Known users go through with their token serial.
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt(OTP, "123456");
    assert_eq!(run(&mut pam, &c2.args(&[]), &b), PamCode::Success);
    assert_eq!(
        b.seen.lock().unwrap()[0].0.token_sn.as_deref(),
        Some("2000038252")
    );
}

#[test]
fn not_in_token_map_allow_succeeds_without_a_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("tokens.map");
    std::fs::write(&map, "alice 2000038252\n").unwrap();
    let c = Conf::new(&format!(
        "[identity]\nsend = \"token_sn\"\ntoken_map = \"{}\"\n[policy]\nunenrolled = \"allow\"\n",
        map.display()
    ));
    let b = Scripted::new([]);
    let mut pam = FakePam::new("carol");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert!(pam.decisions()[0].contains("code=not-in-token-map decision=allow-unenrolled"));
}

#[test]
fn prompts_n_reprompts_after_wrong_otps() {
    let c = Conf::new("");
    let b = Scripted::new([
        reject(codes::WRONG_OTP),
        reject(codes::OTP_REPLAYED),
        accept(),
    ]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "111111")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, "222222")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, "333333");
    assert_eq!(run(&mut pam, &c.args(&["prompts=3"]), &b), PamCode::Success);
    assert_eq!(b.otps(), ["111111", "222222", "333333"]);
    let d = pam.decisions();
    assert_eq!(d.len(), 3);
    assert!(d[2].contains("attempt=3/3"));
}

#[test]
fn prompts_n_gives_up_after_n() {
    let c = Conf::new("");
    let b = Scripted::new([reject(codes::WRONG_OTP), reject(codes::WRONG_OTP)]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "111111")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, "222222")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&["prompts=2"]), &b), PamCode::AuthErr);
}

#[test]
fn malformed_otp_is_refused_without_a_call() {
    let c = Conf::new("");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "12ab56")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, "123456");
    assert_eq!(run(&mut pam, &c.args(&["prompts=2"]), &b), PamCode::Success);
    assert_eq!(b.otps(), ["123456"]);
    assert!(pam.decisions()[0].contains("code=local:malformed-otp"));
}

#[test]
fn unavailable_secure_is_authinfo_unavail() {
    let c = Conf::new("[policy]\nfailmode = \"secure\"\n");
    let b = Scripted::new([unavailable()]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "123456")
        .message(Style::Error, UNAVAILABLE_MESSAGE);
    assert_eq!(
        run(&mut pam, &c.args(&["prompts=3"]), &b),
        PamCode::AuthInfoUnavail,
        "no re-prompt when SxS is down"
    );
    assert!(pam.decisions()[0].contains("decision=deny-unavailable"));
    assert!(pam.decisions()[0].contains("cause=\"connect refused\""));
}

#[test]
fn unavailable_safe_lets_in_with_a_warning() {
    let c = Conf::new("[policy]\nfailmode = \"safe\"\n");
    let b = Scripted::new([unavailable()]);
    let mut pam = FakePam::new("alice").prompt(OTP, "123456");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    let (level, line) = pam
        .logs
        .iter()
        .find(|(_, l)| l.starts_with("decision "))
        .unwrap()
        .clone();
    assert_eq!(level, Level::Warning);
    assert!(line.contains("decision=allow-failopen"));
    assert!(line.contains("WITHOUT a checked OTP"));
}

#[test]
fn per_service_overrides_failmode_and_prompt() {
    let c = Conf::new(
        "[policy]\nfailmode = \"secure\"\n[pam]\nprompt = \"Code: \"\n[pam.service.sudo]\nfailmode = \"safe\"\nprompt = \"OTP for sudo: \"\n",
    );
    let b = Scripted::new([unavailable()]);
    let mut pam = FakePam::new("alice")
        .service("sudo")
        .prompt("OTP for sudo: ", "123456");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);

    let b = Scripted::new([unavailable()]);
    let mut pam = FakePam::new("alice")
        .service("sshd")
        .prompt("Code: ", "123456")
        .message(Style::Error, UNAVAILABLE_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthInfoUnavail);

    // The module argument wins over the file.
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice")
        .service("sudo")
        .prompt("Arg: ", "123456");
    assert_eq!(
        run(&mut pam, &c.args(&["prompt=Arg: "]), &b),
        PamCode::Success
    );
}

#[test]
fn exempt_user_is_ignored_without_prompt_or_call() {
    let c = Conf::new("[policy]\nexempt_users = [\"breakglass\"]\nexempt_groups = [\"root\"]\n");
    for user in ["breakglass", "root"] {
        let b = Scripted::new([]);
        let mut pam = FakePam::new(user);
        assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Ignore);
        assert!(pam.decisions()[0].contains("decision=exempt result=PAM_IGNORE"));
    }
}

#[test]
fn config_missing_is_authinfo_unavail_and_names_the_file() {
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice");
    let args = Args::parse(&["config=/nonexistent/sxs.toml"]);
    assert_eq!(run(&mut pam, &args, &b), PamCode::AuthInfoUnavail);
    let logs = pam.log_text();
    assert!(logs.contains("Err configuration unusable"), "{logs}");
    assert!(logs.contains("/nonexistent/sxs.toml"), "{logs}");
}

#[test]
fn config_invalid_is_authinfo_unavail_and_names_the_key() {
    let c = Conf::new("[policy]\nfailmode = \"maybe\"\n");
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthInfoUnavail);
    let logs = pam.log_text();
    assert!(logs.contains("policy.failmode"), "{logs}");
    assert!(logs.contains(&c.path().display().to_string()), "{logs}");
}

#[test]
fn config_world_writable_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let c = Conf::new("");
    std::fs::set_permissions(c.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthInfoUnavail);
    assert!(pam.log_text().contains("writable by other users"));
}

#[test]
fn client_build_failure_is_authinfo_unavail_before_any_prompt() {
    let c = Conf::new("");
    let mut b = Scripted::new([]);
    b.fail_build = true;
    let mut pam = FakePam::new("alice");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthInfoUnavail);
    assert!(pam.log_text().contains("SxS client unusable"));
}

#[test]
fn use_first_pass_takes_authtok_and_never_prompts() {
    let c = Conf::new("");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").with_authtok("654321");
    assert_eq!(
        run(&mut pam, &c.args(&["use_first_pass"]), &b),
        PamCode::Success
    );
    assert_eq!(b.otps(), ["654321"]);

    // A wrong one is not followed by a prompt, whatever prompts= says.
    let b = Scripted::new([reject(codes::WRONG_OTP)]);
    let mut pam = FakePam::new("alice")
        .with_authtok("654321")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(
        run(&mut pam, &c.args(&["use_first_pass", "prompts=3"]), &b),
        PamCode::AuthErr
    );
}

#[test]
fn use_first_pass_without_authtok_fails_without_prompt() {
    let c = Conf::new("");
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice");
    assert_eq!(
        run(&mut pam, &c.args(&["use_first_pass"]), &b),
        PamCode::AuthtokRecoveryErr
    );
    assert!(pam.log_text().contains("use_first_pass"));
}

#[test]
fn try_first_pass_uses_authtok_or_prompts() {
    let c = Conf::new("");
    // Present and OTP-shaped: used.
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").with_authtok("654321");
    assert_eq!(
        run(&mut pam, &c.args(&["try_first_pass"]), &b),
        PamCode::Success
    );
    assert_eq!(b.otps(), ["654321"]);
    // Absent: prompt.
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt(OTP, "123456");
    assert_eq!(
        run(&mut pam, &c.args(&["try_first_pass"]), &b),
        PamCode::Success
    );
    // A password from an earlier module is not sent to SxS: prompt instead.
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice")
        .with_authtok("hunter2!")
        .prompt(OTP, "123456");
    assert_eq!(
        run(&mut pam, &c.args(&["try_first_pass"]), &b),
        PamCode::Success
    );
    assert_eq!(b.otps(), ["123456"]);
    // Present but wrong, with prompts=2: the second attempt prompts.
    let b = Scripted::new([reject(codes::WRONG_OTP), accept()]);
    let mut pam = FakePam::new("alice")
        .with_authtok("654321")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, "123456");
    assert_eq!(
        run(&mut pam, &c.args(&["try_first_pass", "prompts=2"]), &b),
        PamCode::Success
    );
}

#[test]
fn forward_pass_splits_and_forwards_the_password() {
    let c = Conf::new("");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt("Password and OTP: ", "s3cret pass!123456");
    assert_eq!(
        run(&mut pam, &c.args(&["forward_pass"]), &b),
        PamCode::Success
    );
    assert_eq!(b.otps(), ["123456"]);
    assert_eq!(pam.set_authtok_calls, ["s3cret pass!"]);
    pam.typed.push("s3cret pass!".into());

    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt("PW+OTP: ", "pw12345678");
    assert_eq!(
        run(
            &mut pam,
            &c.args(&["forward_pass", "otp_digits=8", "prompt=PW+OTP: "]),
            &b
        ),
        PamCode::Success
    );
    assert_eq!(b.otps(), ["12345678"]);
    assert_eq!(pam.set_authtok_calls, ["pw"]);
}

#[test]
fn forward_pass_without_otp_digits_is_refused_and_forwards_nothing() {
    let c = Conf::new("");
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice")
        .prompt("Password and OTP: ", "onlyapassword")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(
        run(&mut pam, &c.args(&["forward_pass"]), &b),
        PamCode::AuthErr
    );
    assert!(pam.set_authtok_calls.is_empty());
}

#[test]
fn forward_pass_with_first_pass_reads_authtok() {
    let c = Conf::new("");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").with_authtok("pw!654321");
    assert_eq!(
        run(&mut pam, &c.args(&["forward_pass", "use_first_pass"]), &b),
        PamCode::Success
    );
    assert_eq!(pam.set_authtok_calls, ["pw!"]);
    assert_eq!(b.otps(), ["654321"]);
}

#[test]
fn split_forward_edges() {
    let s = |t: &str| Secret::from(t);
    let (p, o) = split_forward(&s("123456"), 6).unwrap();
    assert!(p.is_empty());
    assert_eq!(o.expose(), b"123456");
    assert!(split_forward(&s("12345"), 6).is_none());
    assert!(split_forward(&s("pw12345x"), 6).is_none());
    let (p, o) = split_forward(&s("päss123456"), 6).unwrap();
    assert_eq!(p.expose_str(), Some("päss"));
    assert_eq!(o.expose(), b"123456");
}

#[test]
fn invalid_user_name_is_denied_after_the_prompt() {
    let c = Conf::new("");
    let b = Scripted::new([]);
    let mut pam = FakePam::new("bad\nname")
        .prompt(OTP, "123456")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert!(pam.decisions()[0].contains("user=bad?name"));
    assert!(pam.decisions()[0].contains("code=local:invalid-user"));
}

#[test]
fn pam_errors_are_returned() {
    let c = Conf::new("");
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice");
    pam.user = Err(PamCode::ConvErr);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::ConvErr);

    let mut pam = FakePam::new("alice").prompt_fails(OTP, PamCode::ConvErr);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::ConvErr);
}

#[test]
fn silent_shows_nothing() {
    let c = Conf::new("");
    let b = Scripted::new([reject(codes::WRONG_OTP)]);
    let mut pam = FakePam::new("alice").prompt(OTP, "111111");
    let code = authenticate(&mut pam, &c.args(&[]), Flags::from_raw(0x8000), &b);
    assert_eq!(code, PamCode::AuthErr);
}

#[test]
fn argument_warnings_are_logged() {
    let c = Conf::new("");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt(OTP, "123456");
    assert_eq!(
        run(&mut pam, &c.args(&["frobnicate"]), &b),
        PamCode::Success
    );
    assert!(pam
        .logs
        .iter()
        .any(|(l, s)| *l == Level::Warning && s.contains("unknown argument \"frobnicate\"")));
}

#[test]
fn every_decision_has_its_code() {
    assert_eq!(result_of(Decision::Allow), PamCode::Success);
    assert_eq!(result_of(Decision::AllowFailOpen), PamCode::Success);
    assert_eq!(result_of(Decision::AllowUnenrolled), PamCode::Success);
    assert_eq!(result_of(Decision::Deny), PamCode::AuthErr);
    assert_eq!(result_of(Decision::DenyUnenrolled), PamCode::AuthErr);
    assert_eq!(
        result_of(Decision::DenyUnavailable),
        PamCode::AuthInfoUnavail
    );
}

// ----- the real client on a runtime made for the call, against the simulator -----

/// The simulator on a thread of its own, with a current-thread runtime (one thread, constant).
struct SimThread {
    handle: Option<common::sim::SimHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimThread {
    fn start(user: &str) -> SimThread {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let user = user.to_string();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let handle = common::sim::start(
                    listener,
                    common::sim::SimOptions {
                        seed: vec![common::sim::SeedUser {
                            id: user,
                            token_sn: Some("2000038252".into()),
                            secret: Some("JBSWY3DPEHPK3PXP".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                )
                .unwrap();
                tx.send(handle).unwrap();
                // Serve until told to stop.
                let _ = stop_rx.await;
            });
        });
        let handle = rx.recv().unwrap();
        SimThread {
            handle: Some(handle),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn sim(&self) -> &common::sim::SimHandle {
        self.handle.as_ref().unwrap()
    }
}

impl Drop for SimThread {
    fn drop(&mut self) {
        drop(self.handle.take());
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Threads tokio made (worker or blocking pool), by their default name. Other tests run on
/// threads of their own, so the whole count of the process would not be stable.
fn tokio_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio-runtime"))
        .count()
}

/// The tests that use the real client run one at a time, so their thread counts are their own.
static REAL_CLIENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn real_call_leaves_no_thread(host: &str) {
    let _serial = REAL_CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    let sim = SimThread::start("alice");
    let port = sim.sim().addr.port();
    let c = Conf::new("");
    std::fs::write(
        c.path(),
        format!("[sxs]\nservers = [\"http://{host}:{port}\"]\norganization_id = \"1\"\ntimeout = \"2s\"\n"),
    )
    .unwrap();
    let otp = sim.sim().current_otp("alice").unwrap();
    let before = tokio_threads();
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "000000")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(OTP, &otp);
    let code = authenticate(
        &mut pam,
        &c.args(&["prompts=2"]),
        Flags::default(),
        &SxsBackend,
    );
    assert_eq!(code, PamCode::Success, "{}", pam.log_text());
    assert_eq!(tokio_threads(), before, "the call left a thread behind");
    let stats = sim.sim().stats();
    assert_eq!((stats.accepts, stats.rejects), (1, 1));
}

#[test]
fn real_client_by_ip_leaves_no_thread() {
    real_call_leaves_no_thread("127.0.0.1");
}

#[test]
fn real_client_by_name_leaves_no_thread() {
    // A host name goes through the resolver on tokio's blocking pool.
    real_call_leaves_no_thread("localhost");
}

#[test]
fn real_client_unreachable_follows_failmode() {
    let _serial = REAL_CLIENT.lock().unwrap_or_else(|p| p.into_inner());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    for (mode, want) in [
        ("secure", PamCode::AuthInfoUnavail),
        ("safe", PamCode::Success),
    ] {
        let c = Conf::new("");
        std::fs::write(
            c.path(),
            format!("[sxs]\nservers = [\"http://127.0.0.1:{port}\"]\norganization_id = \"1\"\n[policy]\nfailmode = \"{mode}\"\n"),
        )
        .unwrap();
        let mut pam = FakePam::new("alice").prompt(OTP, "123456");
        if want != PamCode::Success {
            pam = pam.message(Style::Error, UNAVAILABLE_MESSAGE);
        }
        let code = authenticate(&mut pam, &c.args(&[]), Flags::default(), &SxsBackend);
        assert_eq!(code, want, "{}", pam.log_text());
        // common's own warning about the unreachable server reached the log.
        assert!(
            pam.log_text().contains("common::client"),
            "{}",
            pam.log_text()
        );
    }
}

#[test]
fn a_fail_delay_is_requested_at_the_start_like_pam_unix() {
    let c = Conf::new("");
    for (more, want) in [
        (&[][..], vec![Duration::from_secs(2)]),
        (&["fail_delay=500"][..], vec![Duration::from_millis(500)]),
        (&["nodelay"][..], vec![]),
        (&["fail_delay=0"][..], vec![]),
    ] {
        let b = Scripted::new([accept()]);
        let mut pam = FakePam::new("alice").prompt(OTP, "123456");
        assert_eq!(run(&mut pam, &c.args(more), &b), PamCode::Success);
        assert_eq!(pam.fail_delays, want, "{more:?}");
    }
}

/// Issue #12 defect 8: an unenrolled user is refused without an SxS call; a wrong OTP costs a
/// round trip. Both are padded to the same floor, so timing does not tell who is enrolled.
#[test]
fn every_refusal_is_padded_to_the_deny_floor_and_an_accept_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("tokens.map");
    std::fs::write(&map, "alice 2000038252\n").unwrap();
    let c = Conf::new(&format!(
        "[identity]\nsend = \"token_sn\"\ntoken_map = \"{}\"\n",
        map.display()
    ));
    let floor = Duration::from_secs(1);
    let mut pauses = Vec::new();
    for (user, verdicts) in [("alice", vec![reject(codes::WRONG_OTP)]), ("carol", vec![])] {
        let b = Scripted::new(verdicts);
        let mut pam = FakePam::new(user)
            .prompt(OTP, "123456")
            .message(Style::Error, DENIED_MESSAGE);
        assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
        assert_eq!(pam.pauses.len(), 1, "{user}");
        assert!(
            pam.pauses[0] > Duration::ZERO && pam.pauses[0] <= floor,
            "{user}"
        );
        pauses.push(pam.pauses[0]);
    }
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt(OTP, "123456");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert!(pam.pauses.is_empty());
    // deny_floor=0 turns it off.
    let b = Scripted::new([]);
    let mut pam = FakePam::new("carol")
        .prompt(OTP, "123456")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(
        run(&mut pam, &c.args(&["deny_floor=0"]), &b),
        PamCode::AuthErr
    );
    assert!(pam.pauses.is_empty());
}

// ----- SMS and MAC -----

const OTP_OR_SMS: &str = "OTP (or press Enter for a code by SMS): ";
const MASKED: &str = "+38599*****67";

/// A config allowing `methods` for every service, the SMS limit's state in a temp dir.
fn methods_conf(methods: &str, extra: &str) -> (Conf, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let c = Conf::new(&format!(
        "[pam]\nmethods = {methods}\n[sms]\npam_state_dir = \"{}\"\n{extra}",
        state.path().join("sms").display()
    ));
    (c, state)
}

fn sent() -> String {
    sms::sent_message(Some(MASKED))
}

#[test]
fn empty_answer_sends_an_sms_and_checks_the_code() {
    let (c, _s) = methods_conf("[\"otp\", \"sms\"]", "");
    let b = Scripted::new([accept()]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP_OR_SMS, "")
        .message(Style::Info, &sent())
        .prompt(sms::CODE_PROMPT, "482913");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert_eq!(b.calls(), ["send", "sms"]);
    assert_eq!(b.otps(), ["482913"]);
    let d = pam.decisions();
    assert_eq!(d.len(), 1, "{}", pam.log_text());
    assert!(
        d[0].contains("verdict=accept")
            && d[0].contains(" method=sms ")
            && d[0].contains("sms_to=+38599*****67"),
        "{}",
        d[0]
    );
}

#[test]
fn typing_sms_asks_for_one_too_and_an_otp_still_works() {
    let (c, _s) = methods_conf("[\"otp\", \"sms\"]", "");
    let b = Scripted::new([accept()]).with_sends([Ok(None)]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP_OR_SMS, "SMS")
        .message(Style::Info, "A code was sent to your registered mobile.")
        .prompt(sms::CODE_PROMPT, "482913");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);

    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt(OTP_OR_SMS, "123456");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert_eq!(b.calls(), ["otp"]);
    assert!(pam.decisions()[0].contains("method=otp"));
}

#[test]
fn the_methods_argument_overrides_the_configuration() {
    let (c, _s) = methods_conf("[\"otp\"]", "");
    let b = Scripted::new([accept()]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP_OR_SMS, "")
        .message(Style::Info, &sent())
        .prompt(sms::CODE_PROMPT, "482913");
    assert_eq!(
        run(&mut pam, &c.args(&["methods=otp,sms"]), &b),
        PamCode::Success
    );
    // Without the argument, otp only: an empty answer is a malformed OTP, nothing is sent.
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice")
        .prompt(OTP, "")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert!(b.calls().is_empty());
}

#[test]
fn sms_only_sends_without_asking_first() {
    let (c, _s) = methods_conf("[\"sms\"]", "");
    let b = Scripted::new([accept()]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice")
        .message(Style::Info, &sent())
        .prompt(sms::CODE_PROMPT, "482913");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert_eq!(b.calls(), ["send", "sms"]);
}

#[test]
fn a_wrong_sms_code_is_asked_again_without_a_second_sms() {
    let (c, _s) = methods_conf("[\"sms\"]", "");
    let b = Scripted::new([reject(codes::WRONG_OTP), accept()]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice")
        .message(Style::Info, &sent())
        .prompt(sms::CODE_PROMPT, "111111")
        .message(Style::Error, DENIED_MESSAGE)
        .prompt(sms::CODE_PROMPT, "482913");
    assert_eq!(run(&mut pam, &c.args(&["prompts=2"]), &b), PamCode::Success);
    assert_eq!(b.calls(), ["send", "sms", "sms"]);
    assert_eq!(pam.decisions().len(), 2);
}

#[test]
fn a_malformed_sms_code_is_refused_without_a_call() {
    let (c, _s) = methods_conf("[\"sms\"]", "");
    let b = Scripted::new([]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice")
        .message(Style::Info, &sent())
        .prompt(sms::CODE_PROMPT, "")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert_eq!(b.calls(), ["send"]);
    assert!(pam.decisions()[0].contains("code=local:malformed-otp"));
}

#[test]
fn the_sms_limit_holds_across_authentications_and_ends_the_attempts() {
    let state = tempfile::tempdir().unwrap();
    let c2 = Conf::new(&format!(
        "[pam]\nmethods = [\"sms\"]\n[sms]\nmax_per_user = 1\npam_state_dir = \"{}\"\n",
        state.path().join("sms").display()
    ));
    let b = Scripted::new([accept()]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice")
        .message(Style::Info, &sent())
        .prompt(sms::CODE_PROMPT, "482913");
    assert_eq!(run(&mut pam, &c2.args(&[]), &b), PamCode::Success);

    // A new authentication (a new PAM process) finds the limit reached: no send, one message,
    // no further attempt.
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice").message(Style::Error, sms::LIMITED_MESSAGE);
    assert_eq!(
        run(&mut pam, &c2.args(&["prompts=3"]), &b),
        PamCode::AuthErr
    );
    assert_eq!(b.calls(), ["send"], "the limiter refused before any send");
    let d = pam.decisions();
    assert_eq!(d.len(), 1);
    assert!(
        d[0].contains("verdict=reject code=local:sms-rate-limited decision=deny")
            && d[0].contains(" method=sms ")
    );
}

#[test]
fn sxs_down_while_sending_follows_failmode() {
    let (c, _s) = methods_conf("[\"sms\"]", "[policy]\nfailmode = \"secure\"\n");
    let b = Scripted::new([]).with_sends([Err(unavailable())]);
    let mut pam = FakePam::new("alice").message(Style::Error, UNAVAILABLE_MESSAGE);
    assert_eq!(
        run(&mut pam, &c.args(&["prompts=3"]), &b),
        PamCode::AuthInfoUnavail
    );
    assert_eq!(b.calls(), ["send"], "never a second send");
    assert!(
        pam.decisions()[0].contains("verdict=unavailable")
            && pam.decisions()[0].contains(" method=sms ")
    );

    let (c, _s) = methods_conf("[\"sms\"]", "[policy]\nfailmode = \"safe\"\n");
    let b = Scripted::new([]).with_sends([Err(unavailable())]);
    let mut pam = FakePam::new("alice");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert!(pam.decisions()[0].contains("decision=allow-failopen"));
}

#[test]
fn an_unusable_limit_directory_is_a_refusal_even_in_safe_mode() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = Conf::new(&format!(
        "[pam]\nmethods = [\"sms\"]\n[sms]\npam_state_dir = \"{}\"\n[policy]\nfailmode = \"safe\"\n",
        state.path().display()
    ));
    let b = Scripted::new([]);
    let mut pam = FakePam::new("alice").message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert!(pam.decisions()[0].contains("code=local:sms-limit-state decision=deny"));
    assert!(pam.log_text().contains("writable by other users"));
}

#[test]
fn sms_refusals_deny_even_when_unenrolled_users_are_allowed() {
    let (c, _s) = methods_conf("[\"otp\", \"sms\"]", "[policy]\nunenrolled = \"allow\"\n");
    for code in [codes::NO_TOKEN, codes::NO_MOBILE] {
        let b = Scripted::new([]).with_sends([Err(reject(code))]);
        let mut pam = FakePam::new("alice")
            .prompt(OTP_OR_SMS, "")
            .message(Style::Error, DENIED_MESSAGE);
        assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
        assert!(
            pam.decisions()[0].contains(&format!("code={code} decision=deny ")),
            "{}",
            pam.decisions()[0]
        );
    }
}

#[test]
fn silent_sms_shows_no_message_but_still_prompts() {
    let (c, _s) = methods_conf("[\"sms\"]", "");
    let b = Scripted::new([accept()]).with_sends([Ok(Some(MASKED))]);
    let mut pam = FakePam::new("alice").prompt(sms::CODE_PROMPT, "482913");
    let flags = Flags { silent: true };
    assert_eq!(
        authenticate(&mut pam, &c.args(&[]), flags, &b),
        PamCode::Success
    );
}

fn sudo_binding() -> Binding {
    Binding {
        user: "alice".into(),
        service: "sudo".into(),
        rhost: "192.0.2.7".into(),
        ruser: "alice".into(),
        tty: "/dev/pts/3".into(),
    }
}

#[test]
fn mac_shows_an_input_bound_to_the_login_and_checks_the_mac() {
    let c = Conf::new("[pam.service.sudo]\nmethods = [\"mac\"]\n");
    let b = Scripted::new([accept()]);
    let input = mac_input::derive(&sudo_binding(), b.now, &b.nonce);
    let shown = group_digits(&input);
    let mut pam = FakePam::new("alice")
        .service("sudo")
        .item(Item::RUser, "alice")
        .item(Item::Tty, "/dev/pts/3")
        .mac_prompt(&shown, "87654321");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert_eq!(b.calls(), [format!("mac:{input}")]);
    assert_eq!(b.otps(), ["87654321"]);
    let d = pam.decisions();
    assert!(
        d[0].contains("verdict=accept")
            && d[0].contains(" method=mac ")
            && d[0].contains(&format!("mac_input={input}")),
        "{}",
        d[0]
    );
}

#[test]
fn every_mac_attempt_gets_a_fresh_input() {
    let c = Conf::new("[pam]\nmethods = [\"mac\"]\n");
    let b = Scripted::new([reject(codes::WRONG_OTP), accept()]);
    let first = mac_input::derive(
        &Binding {
            service: "sshd".into(),
            ruser: String::new(),
            tty: String::new(),
            ..sudo_binding()
        },
        b.now,
        &b.nonce,
    );
    let shown = group_digits(&first);
    // The fake's nonce is constant, so the scripted inputs are equal here; the real nonce is
    // fresh per attempt (Backend::nonce is called once per MAC prompt).
    let mut pam = FakePam::new("alice")
        .mac_prompt(&shown, "11111111")
        .message(Style::Error, DENIED_MESSAGE)
        .mac_prompt(&shown, "22222222");
    assert_eq!(run(&mut pam, &c.args(&["prompts=2"]), &b), PamCode::Success);
    assert_eq!(b.calls().len(), 2);
}

#[test]
fn typing_mac_at_the_otp_prompt_starts_dynamic_linking() {
    let c = Conf::new("[pam]\nmethods = [\"otp\", \"sms\", \"mac\"]\n");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt(
        "OTP (or press Enter for a code by SMS, or type mac to sign with the app): ",
        "mac",
    );
    let input = mac_input::derive(
        &Binding {
            service: "sshd".into(),
            ruser: String::new(),
            tty: String::new(),
            ..sudo_binding()
        },
        b.now,
        &b.nonce,
    );
    let shown = group_digits(&input);
    pam = pam.mac_prompt(&shown, "87654321");
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::Success);
    assert_eq!(b.calls(), [format!("mac:{input}")]);
}

#[test]
fn unenrolled_users_see_the_same_mac_prompt_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("tokens.map");
    std::fs::write(&map, "alice 2000038252\n").unwrap();
    let c = Conf::new(&format!(
        "[identity]\nsend = \"token_sn\"\ntoken_map = \"{}\"\n[pam]\nmethods = [\"mac\"]\n",
        map.display()
    ));
    let b = Scripted::new([]);
    let input = mac_input::derive(
        &Binding {
            user: "carol".into(),
            service: "sshd".into(),
            ruser: String::new(),
            tty: String::new(),
            ..sudo_binding()
        },
        b.now,
        &b.nonce,
    );
    let shown = group_digits(&input);
    let mut pam = FakePam::new("carol")
        .mac_prompt(&shown, "87654321")
        .message(Style::Error, DENIED_MESSAGE);
    assert_eq!(run(&mut pam, &c.args(&[]), &b), PamCode::AuthErr);
    assert!(b.calls().is_empty());
    assert!(
        pam.decisions()[0].contains("verdict=reject code=local:unenrolled")
            && pam.decisions()[0].contains(" method=mac ")
    );
}

#[test]
fn use_first_pass_and_forward_pass_reduce_methods_to_otp() {
    let (c, _s) = methods_conf("[\"sms\", \"mac\"]", "");
    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").with_authtok("654321");
    assert_eq!(
        run(&mut pam, &c.args(&["use_first_pass"]), &b),
        PamCode::Success
    );
    assert_eq!(b.calls(), ["otp"]);
    assert!(pam
        .log_text()
        .contains("methods sms,mac reduced to otp: use_first_pass"));

    let b = Scripted::new([accept()]);
    let mut pam = FakePam::new("alice").prompt("Password and OTP: ", "pw123456");
    assert_eq!(
        run(&mut pam, &c.args(&["forward_pass"]), &b),
        PamCode::Success
    );
    assert!(pam.log_text().contains("reduced to otp: forward_pass"));
}

#[test]
fn default_prompts_say_how_to_ask() {
    let m = |s: &[&str]| Methods::parse(s).unwrap();
    assert_eq!(default_prompt(&m(&["otp"])), "OTP: ");
    assert_eq!(default_prompt(&m(&["otp", "sms"])), OTP_OR_SMS);
    assert!(default_prompt(&m(&["otp", "mac"])).contains("type mac"));
    assert_eq!(
        default_prompt(&m(&["otp", "push"])),
        "OTP (or type push to approve on your phone): "
    );
    assert_eq!(
        default_prompt(&m(&["otp", "sms", "oob"])),
        "OTP (or press Enter for a code by SMS, or type oob to sign in with the app): "
    );
}

#[test]
fn the_oob_message_shows_the_digits_and_a_qr_code() {
    let text = oob_message("12345678");
    assert!(
        text.starts_with(
            "Sign in with your authenticator app: scan the code or enter 1234 5678.\n"
        ),
        "{text}"
    );
    assert!(
        text.lines().count() > 10,
        "a QR code below the digits: {text}"
    );
    assert!(
        text.contains('\u{2588}') || text.contains('\u{2580}'),
        "{text}"
    );
}
