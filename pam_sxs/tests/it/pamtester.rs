//! The module under libpam, driven by pamtester: every behaviour of the issue that does not
//! need sshd or sudo.

use std::path::PathBuf;

use crate::harness::{
    self, log_sink, pamtester, pamtester_ops, pamtester_sleeps, typed, write_config, PamDir, Sim,
    TestUser, AUTHINFO_UNAVAIL, AUTHTOK_RECOVERY_ERR, AUTH_ERR,
};

/// One scenario: a simulator, a config, a private `/etc/pam.d` with one service.
struct Case {
    sim: Sim,
    _dir: tempfile::TempDir,
    pam: PamDir,
    service: String,
    config: PathBuf,
}

impl Case {
    /// `extra` is appended to the config (`{service}` is the service's name); `stack` is the
    /// service file (`{module}`, `{config}`).
    fn new(users: &[&str], extra: &str, stack: &str) -> Case {
        let sim = Sim::start(users);
        let dir = harness::tempdir();
        let service = harness::unique("sxs-test");
        let config = write_config(
            dir.path(),
            &sim.url(),
            &extra.replace("{service}", &service),
        );
        let pam = PamDir::new();
        pam.service(
            &service,
            &stack.replace("{config}", &config.display().to_string()),
        );
        Case {
            sim,
            _dir: dir,
            pam,
            service,
            config,
        }
    }

    fn auth(&self, user: &str, stdin: &str) -> harness::Tested {
        pamtester(&self.pam, &self.service, user, stdin)
    }

    /// The module's log lines for this service.
    fn logged(&self) -> Vec<String> {
        let tag = format!("({}:auth)", self.service);
        log_sink()
            .lines()
            .into_iter()
            .filter(|l| l.contains(&tag))
            .collect()
    }

    fn logged_decision(&self, needle: &str) -> bool {
        self.logged()
            .iter()
            .any(|l| l.contains("decision service=") && l.contains(needle))
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            harness::assert_no_typed_secret_logged();
        }
    }
}

const PLAIN: &str = "auth required {module} config={config}\n";

#[test]
fn accepts_the_current_otp() {
    let c = Case::new(&["alice"], "", PLAIN);
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(r.stderr.contains("OTP: "), "{r:?}");
    let s = c.sim.stats();
    assert_eq!((s.validate_otp, s.accepts), (1, 1));
    // Through pam_syslog and the /dev/log bound by bubblewrap.
    assert!(
        c.logged_decision(
            "user=alice rhost=- verdict=accept code=- decision=allow result=PAM_SUCCESS"
        ),
        "{:?}",
        c.logged()
    );
}

#[test]
fn rejects_a_wrong_otp_with_the_neutral_message() {
    let c = Case::new(&["alice"], "", PLAIN);
    let r = c.auth("alice", &format!("{}\n", c.sim.wrong_otp("alice")));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert!(r.stderr.contains("Authentication failed."), "{r:?}");
    assert_eq!(c.sim.stats().rejects, 1);
    assert!(c.logged_decision("verdict=reject code=2010 decision=deny result=PAM_AUTH_ERR"));
}

#[test]
fn rejects_a_replayed_otp() {
    let c = Case::new(&["alice"], "", PLAIN);
    let otp = c.sim.otp("alice");
    assert!(c.auth("alice", &format!("{otp}\n")).ok);
    let r = c.auth("alice", &format!("{otp}\n"));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert!(c.logged_decision("code=2011 decision=deny"));
}

#[test]
fn unknown_user_reads_what_a_wrong_otp_reads() {
    let c = Case::new(&["alice"], "", PLAIN);
    let wrong = c.auth("alice", &format!("{}\n", c.sim.wrong_otp("alice")));
    let unknown = c.auth("mallory", &format!("{}\n", typed("123456")));
    assert!(unknown.failed_with(AUTH_ERR), "{unknown:?}");
    let strip = |s: &str| s.replace("alice", "USER").replace("mallory", "USER");
    assert_eq!(strip(&wrong.stderr), strip(&unknown.stderr));
    assert!(
        c.logged_decision("user=mallory rhost=- verdict=reject code=2001 decision=deny-unenrolled")
    );
}

#[test]
fn prompts_three_allows_two_wrong_otps() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} prompts=3\n",
    );
    let stdin = format!(
        "{}\n{}\n{}\n",
        c.sim.wrong_otp("alice"),
        typed("000000"),
        c.sim.otp("alice")
    );
    let r = c.auth("alice", &stdin);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.stderr.matches("OTP: ").count(), 3, "{r:?}");
    let s = c.sim.stats();
    assert_eq!((s.rejects, s.accepts), (2, 1));
}

#[test]
fn use_first_pass_takes_the_token_an_earlier_module_read() {
    let c = Case::new(
        &["alice"],
        "",
        "auth optional pam_unix.so nodelay\nauth required {module} config={config} use_first_pass\n",
    );
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(
        r.stderr.contains("Password: ") && !r.stderr.contains("OTP: "),
        "{r:?}"
    );
    assert_eq!(c.sim.stats().accepts, 1);
}

#[test]
fn use_first_pass_without_a_token_fails_without_prompting() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} use_first_pass\n",
    );
    let r = c.auth("alice", "");
    assert!(r.failed_with(AUTHTOK_RECOVERY_ERR), "{r:?}");
    assert!(!r.stderr.contains("OTP: "));
    assert_eq!(c.sim.stats().validate_otp, 0);
}

#[test]
fn try_first_pass_uses_the_token_or_prompts() {
    let c = Case::new(
        &["alice"],
        "",
        "auth optional pam_unix.so nodelay\nauth required {module} config={config} try_first_pass\n",
    );
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(!r.stderr.contains("OTP: "), "{r:?}");

    // Alone in the stack there is no token: it prompts.
    let alone = PamDir::new();
    alone.service(
        "alone",
        &format!(
            "auth required {{module}} config={} try_first_pass\n",
            c.config.display()
        ),
    );
    c.sim.next_step();
    let r = pamtester(
        &alone,
        "alone",
        "alice",
        &format!("{}\n", c.sim.otp("alice")),
    );
    assert!(r.ok, "{r:?}");
    assert!(r.stderr.contains("OTP: "), "{r:?}");
}

#[test]
fn forward_pass_hands_the_password_to_pam_unix() {
    let password = typed(&format!("Sxs-Pw-{}", std::process::id()));
    let user = TestUser::add(Some(&password));
    let c = Case::new(
        &[&user.name],
        "",
        "auth requisite {module} config={config} forward_pass\nauth required pam_unix.so use_first_pass nodelay\n",
    );
    let u = user.name.as_str();
    let r = c.auth(u, &format!("{password}{}\n", c.sim.otp(u)));
    assert!(r.ok, "{r:?}");
    assert!(r.stderr.contains("Password and OTP: "), "{r:?}");
    assert!(
        !r.stderr.contains("Password: "),
        "pam_unix must not prompt: {r:?}"
    );

    // Right OTP, wrong password: pam_unix refuses what was forwarded.
    c.sim.next_step();
    let wrong_pw = typed("Not-The-Password");
    let r = c.auth(u, &format!("{wrong_pw}{}\n", c.sim.otp(u)));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert_eq!(c.sim.stats().accepts, 2);

    // Right password, wrong OTP: stops at pam_sxs.
    let r = c.auth(u, &format!("{password}{}\n", c.sim.wrong_otp(u)));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert_eq!(c.sim.stats().rejects, 1);
}

/// `policy.required_groups`: root is in group root; alice is not a local user, so she is in
/// none. She is prompted like anyone (the prompt does not tell membership), her right OTP never
/// reaches SxS, and she is refused, even when exempt: the gate comes before exemptions.
#[test]
fn a_user_outside_the_required_groups_is_prompted_and_refused_without_sxs() {
    let extra = "[policy]\nrequired_groups = [\"root\"]\nexempt_users = [\"alice\"]\n";
    let c = Case::new(
        &["root", "alice"],
        extra,
        "auth required {module} config={config}
",
    );
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert!(r.stderr.contains("OTP"), "prompted: {r:?}");
    assert!(
        c.logged_decision("code=local:not-in-required-group"),
        "{:?}",
        c.logged()
    );
    assert_eq!(c.sim.stats().validate_otp, 0, "alice reached SxS");
    let r = c.auth("root", &format!("{}\n", c.sim.otp("root")));
    assert!(r.ok, "{r:?}");
    assert_eq!(c.sim.stats().validate_otp, 1);
}

#[test]
fn exempt_user_is_ignored_so_the_rest_of_the_stack_decides() {
    let extra = "[policy]\nexempt_users = [\"breakglass\"]\n";
    // The stack of examples/pam.d/sshd (key + OTP).
    let c = Case::new(
        &["alice"],
        extra,
        "auth required {module} config={config}\nauth optional pam_permit.so\n",
    );
    let r = c.auth("breakglass", "");
    assert!(r.ok, "{r:?}");
    assert!(!r.stderr.contains("OTP: "), "{r:?}");
    // Everyone else still needs the OTP in that stack.
    let r = c.auth("alice", &format!("{}\n", c.sim.wrong_otp("alice")));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert!(c.logged_decision(
        "user=breakglass rhost=- verdict=none code=- decision=exempt result=PAM_IGNORE"
    ));

    // PAM_IGNORE is not PAM_SUCCESS: alone, or before pam_deny as `sufficient`, it lets no one in.
    for (name, stack) in [
        ("only", "auth required {module} config={config}\n"),
        (
            "sufficient",
            "auth sufficient {module} config={config}\nauth required pam_deny.so\n",
        ),
    ] {
        c.pam.service(
            name,
            &stack.replace("{config}", &c.config.display().to_string()),
        );
        let r = pamtester(&c.pam, name, "breakglass", "");
        assert!(!r.ok, "{name}: {r:?}");
    }
    assert_eq!(c.sim.stats().validate_otp, 1, "only alice's");
}

#[test]
fn unenrolled_user_follows_policy() {
    let deny = Case::new(&["alice"], "", PLAIN);
    let r = deny.auth("carol", &format!("{}\n", typed("123456")));
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert!(r.stderr.contains("OTP: "), "asked like anyone else: {r:?}");

    let allow = Case::new(&["alice"], "[policy]\nunenrolled = \"allow\"\n", PLAIN);
    let r = allow.auth("carol", &format!("{}\n", typed("123456")));
    assert!(r.ok, "{r:?}");
    assert!(allow
        .logged_decision("user=carol rhost=- verdict=reject code=2001 decision=allow-unenrolled"));
}

#[test]
fn unenrolled_by_token_map_is_allowed_without_a_prompt() {
    let dir = harness::tempdir();
    let map = dir.path().join("tokens.map");
    std::fs::write(&map, "alice 2000038200\n").unwrap();
    let c = Case::new(
        &["alice"],
        &format!(
            "[identity]\nsend = \"token_sn\"\ntoken_map = \"{}\"\n[policy]\nunenrolled = \"allow\"\n",
            map.display()
        ),
        PLAIN,
    );
    let r = c.auth("carol", "");
    assert!(r.ok, "{r:?}");
    assert!(!r.stderr.contains("OTP: "));
    // Enrolled users still need their OTP, sent by token serial.
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert_eq!(c.sim.stats().accepts, 1);
}

#[test]
fn failmode_secure_refuses_when_sxs_is_down() {
    let c = Case::new(&["alice"], "[policy]\nfailmode = \"secure\"\n", PLAIN);
    c.sim.stop_serving();
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.failed_with(AUTHINFO_UNAVAIL), "{r:?}");
    assert!(c.logged_decision(
        "verdict=unavailable code=- decision=deny-unavailable result=PAM_AUTHINFO_UNAVAIL"
    ));
}

#[test]
fn failmode_safe_lets_in_with_a_warning_when_sxs_is_down() {
    let c = Case::new(&["alice"], "[policy]\nfailmode = \"safe\"\n", PLAIN);
    c.sim.stop_serving();
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    let warn = c
        .logged()
        .into_iter()
        .find(|l| l.contains("decision=allow-failopen"))
        .expect("a fail-open decision line");
    // <84> = authpriv.warning
    assert!(warn.starts_with("<84>"), "{warn}");
    assert!(warn.contains("WITHOUT a checked OTP"), "{warn}");
}

#[test]
fn per_service_config_overrides_failmode_and_prompt() {
    let c = Case::new(
        &["alice"],
        "[policy]\nfailmode = \"secure\"\n[pam.service.{service}]\nfailmode = \"safe\"\nprompt = \"Code for {service}: \"\n",
        PLAIN,
    );
    c.sim.stop_serving();
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(
        r.stderr.contains(&format!("Code for {}: ", c.service)),
        "{r:?}"
    );
}

#[test]
fn bracketed_prompt_argument_keeps_its_spaces() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} [prompt=One-time code: ]\n",
    );
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(r.stderr.contains("One-time code: "), "{r:?}");
}

#[test]
fn missing_config_is_authinfo_unavail_and_logged() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config=/nonexistent/sxs-test.toml\n",
    );
    let r = c.auth("alice", "");
    assert!(r.failed_with(AUTHINFO_UNAVAIL), "{r:?}");
    assert!(!r.stderr.contains("OTP: "));
    assert!(
        c.logged().iter().any(|l| l.starts_with("<83>")
            && l.contains("configuration unusable")
            && l.contains("/nonexistent/sxs-test.toml")),
        "{:?}",
        c.logged()
    );
}

#[test]
fn invalid_config_is_authinfo_unavail_and_names_the_key() {
    let c = Case::new(&["alice"], "[policy]\nfailmode = \"maybe\"\n", PLAIN);
    let r = c.auth("alice", "");
    assert!(r.failed_with(AUTHINFO_UNAVAIL), "{r:?}");
    assert!(
        c.logged()
            .iter()
            .any(|l| l.contains("policy.failmode") && l.contains("sxs.toml")),
        "{:?}",
        c.logged()
    );
}

#[test]
fn unknown_argument_is_logged_not_fatal() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} frobnicate=1\n",
    );
    let r = c.auth("alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(
        c.logged()
            .iter()
            .any(|l| l.contains("unknown argument \"frobnicate\"")),
        "{:?}",
        c.logged()
    );
}

#[test]
fn other_hooks_succeed_or_ignore() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config}\n\
         account required {module}\naccount required pam_permit.so\n\
         session required {module}\nsession required pam_permit.so\n",
    );
    let r = pamtester_ops(
        &c.pam,
        &c.service,
        "alice",
        &[
            "authenticate",
            "setcred",
            "acct_mgmt",
            "open_session",
            "close_session",
        ],
        &format!("{}\n", c.sim.otp("alice")),
    );
    assert!(r.ok, "{r:?}");
    assert!(
        r.stdout.contains("session has successfully been closed"),
        "{r:?}"
    );
}

/// The shipped `examples/pam.d/{sshd,sudo}` files, as written (only the module's path and
/// `config=` added), with Debian's real `common-*` files copied beside them.
fn example_service(c: &Case, name: &str) -> String {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/pam.d")
            .join(name),
    )
    .unwrap();
    for common in [
        "common-auth",
        "common-account",
        "common-session",
        "common-session-noninteractive",
        "common-password",
    ] {
        let from = PathBuf::from("/etc/pam.d").join(common);
        assert!(
            from.is_file(),
            "{} is missing (package libpam-runtime)",
            from.display()
        );
        std::fs::copy(&from, c.pam.path().join(common)).unwrap();
    }
    let service = format!("{}-{name}", c.service);
    c.pam.service(
        &service,
        &text.replace(
            "pam_sxs.so",
            &format!("{{module}} config={}", c.config.display()),
        ),
    );
    service
}

#[test]
fn example_sshd_stack_asks_only_for_the_otp() {
    let c = Case::new(
        &["alice"],
        "[policy]\nexempt_users = [\"breakglass\"]\n",
        PLAIN,
    );
    let svc = example_service(&c, "sshd");
    let r = pamtester(&c.pam, &svc, "alice", &format!("{}\n", c.sim.otp("alice")));
    assert!(r.ok, "{r:?}");
    assert!(!r.stderr.contains("Password"), "{r:?}");
    let r = pamtester(
        &c.pam,
        &svc,
        "alice",
        &format!("{}\n", c.sim.wrong_otp("alice")),
    );
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    let r = pamtester(&c.pam, &svc, "breakglass", "");
    assert!(r.ok, "exempt users pass: {r:?}");
}

#[test]
fn example_sudo_stack_asks_for_password_then_otp() {
    let password = typed(&format!("Sxs-Sudo-Pw-{}", std::process::id()));
    let user = TestUser::add(Some(&password));
    let u = user.name.as_str();
    let c = Case::new(&[u], "", PLAIN);
    let svc = example_service(&c, "sudo");
    let r = pamtester(&c.pam, &svc, u, &format!("{password}\n{}\n", c.sim.otp(u)));
    assert!(r.ok, "{r:?}");
    let password_at = r.stderr.find("Password: ").expect("pam_unix prompts");
    let otp_at = r.stderr.find("OTP: ").expect("pam_sxs prompts");
    assert!(password_at < otp_at, "{r:?}");
    // Right password, wrong OTP.
    let r = pamtester(
        &c.pam,
        &svc,
        u,
        &format!("{password}\n{}\n", c.sim.wrong_otp(u)),
    );
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
}

/// Issue #12 defect 7: a failure delay is asked of libpam (pam_fail_delay, 2 s by default like
/// pam_unix). Seen from outside with strace: libpam itself sleeps its randomised 1–3 s before
/// returning the failure; with `nodelay`, or on success, it does not.
#[test]
fn libpam_delays_a_failure_as_the_module_asked() {
    let long = |sleeps: &[std::time::Duration]| {
        sleeps
            .iter()
            .filter(|d| d.as_secs() >= 1)
            .copied()
            .collect::<Vec<_>>()
    };
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} deny_floor=0\n",
    );
    let (r, sleeps) = pamtester_sleeps(
        &c.pam,
        &c.service,
        "alice",
        &format!("{}\n", c.sim.wrong_otp("alice")),
    );
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    let l = long(&sleeps);
    assert_eq!(l.len(), 1, "libpam's fail delay: {sleeps:?}");
    assert!(l[0].as_secs_f64() < 3.0, "{sleeps:?}");
    let (r, sleeps) = pamtester_sleeps(
        &c.pam,
        &c.service,
        "alice",
        &format!("{}\n", c.sim.otp("alice")),
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(long(&sleeps), vec![], "no delay on success");

    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} deny_floor=0 nodelay\n",
    );
    let (r, sleeps) = pamtester_sleeps(
        &c.pam,
        &c.service,
        "alice",
        &format!("{}\n", c.sim.wrong_otp("alice")),
    );
    assert!(r.failed_with(AUTH_ERR), "{r:?}");
    assert_eq!(long(&sleeps), vec![], "nodelay");
}

/// Issue #12 defect 8: an unenrolled user (refused without asking SxS) and a wrong OTP both
/// wait out the deny floor in the module, seen with strace; the SxS call count shows which of
/// them asked SxS.
#[test]
fn unenrolled_and_wrong_otp_both_wait_out_the_deny_floor() {
    let c = Case::new(
        &["alice"],
        "",
        "auth required {module} config={config} nodelay deny_floor=700\n",
    );
    let floor = std::time::Duration::from_millis(700);
    for (user, otp, calls) in [
        ("alice", c.sim.wrong_otp("alice"), 1),
        ("mallory", typed("123456"), 2),
    ] {
        let (r, sleeps) = pamtester_sleeps(&c.pam, &c.service, user, &format!("{otp}\n"));
        assert!(r.failed_with(AUTH_ERR), "{r:?}");
        // The pause is the floor less the time the attempt took, so just under it.
        let paused: Vec<_> = sleeps
            .iter()
            .filter(|d| **d > floor / 2 && **d <= floor)
            .collect();
        assert_eq!(paused.len(), 1, "{user}: {sleeps:?}");
        assert_eq!(c.sim.stats().validate_otp, calls, "{user}");
    }
}
