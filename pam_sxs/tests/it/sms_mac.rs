//! SMS one-time passwords and dynamic linking (MAC) under libpam, driven through pamtester one
//! prompt at a time: the SMS code is read from the simulator's outbox (the phone) once the
//! module has sent it; the MAC is computed by the simulator (the app) over the input the
//! module showed.

use crate::harness::{
    self, log_sink, mac_input_in, pamtester_conversation, write_config, Conversation, PamDir, Sim,
    AUTHINFO_UNAVAIL, AUTH_ERR,
};

const OTP_OR_SMS: &str = "OTP (or press Enter for a code by SMS): ";
const SMS_CODE: &str = "SMS code: ";

/// A simulator, a config (SMS limit state in the temp dir) and one PAM service.
struct Case {
    sim: Sim,
    dir: tempfile::TempDir,
    pam: PamDir,
    service: String,
}

impl Case {
    /// `extra` is appended to the config; `args` to the module's stack line.
    fn new(sim: Sim, extra: &str, args: &str) -> Case {
        let dir = harness::tempdir();
        let config = write_config(
            dir.path(),
            &sim.url(),
            &format!(
                "[sms]\npam_state_dir = \"{}\"\n{extra}",
                dir.path().join("sms").display()
            ),
        );
        let service = harness::unique("sxs-test-sms");
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
            dir,
            pam,
            service,
        }
    }

    fn talk(&self, user: &str) -> Conversation {
        pamtester_conversation(&self.pam, &self.service, user)
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

impl Drop for Case {
    fn drop(&mut self) {
        let _ = &self.dir;
        if !std::thread::panicking() {
            harness::assert_no_typed_secret_logged();
        }
    }
}

#[test]
fn enter_sends_an_sms_and_its_code_logs_in_once() {
    let c = Case::new(Sim::start_sms(&["alice"]), "", "methods=otp,sms");
    let mut t = c.talk("alice");
    t.expect(OTP_OR_SMS);
    t.answer("");
    t.expect(SMS_CODE);
    let code = c.sim.sms_code("alice");
    t.answer(&code);
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains("A code was sent to +38599*****00."),
        "{transcript}"
    );
    assert_eq!(c.sim.stats().send_sms, 1);
    let d = c.decisions();
    assert!(
        d.iter().any(|l| l.contains("verdict=accept")
            && l.contains(" method=sms ")
            && l.contains("sms_to=+38599*****00")),
        "{d:#?}"
    );

    // The same code again: a new SMS is asked for, and the old code is refused.
    let mut t = c.talk("alice");
    t.expect(OTP_OR_SMS);
    t.answer("sms");
    t.expect(SMS_CODE);
    t.answer(&code);
    let (ok, transcript) = t.finish();
    assert!(!ok && transcript.contains(AUTH_ERR), "{transcript}");
    assert_eq!(c.sim.sms_count("alice"), 2);
    // Accepts count sends too: two sends, one code.
    assert_eq!(c.sim.stats().accepts, 3);
}

#[test]
fn sms_only_sends_without_asking_and_the_limit_holds_across_logins() {
    let c = Case::new(
        Sim::start_sms(&["alice"]),
        "max_per_user = 2\n",
        "methods=sms prompts=3",
    );
    for _ in 0..2 {
        let mut t = c.talk("alice");
        t.expect(SMS_CODE);
        let code = c.sim.sms_code("alice");
        t.answer(&code);
        let (ok, transcript) = t.finish();
        assert!(ok, "{transcript}");
    }
    // The third within the window: refused before any SMS, at once (no further attempts).
    let t = c.talk("alice");
    let (ok, transcript) = t.finish();
    assert!(!ok && transcript.contains(AUTH_ERR), "{transcript}");
    assert!(
        transcript.contains("Too many SMS codes were requested."),
        "{transcript}"
    );
    assert!(!transcript.contains(SMS_CODE), "{transcript}");
    assert_eq!(c.sim.stats().send_sms, 2);
    assert!(c
        .decisions()
        .iter()
        .any(|l| l.contains("code=local:sms-rate-limited decision=deny")));
    // The limit's state: one root-only file per user, named by a hash.
    let files: Vec<_> = std::fs::read_dir(c.dir.path().join("sms"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(!files[0].contains("alice"));
}

#[test]
fn a_user_without_an_sms_token_or_unknown_is_refused_without_an_sms() {
    // bob has an mToken and no mobile; mallory is unknown to SxS.
    let c = Case::new(Sim::start(&["bob"]), "", "methods=otp,sms");
    for user in ["bob", "mallory"] {
        let mut t = c.talk(user);
        t.expect(OTP_OR_SMS);
        t.answer("");
        let (ok, transcript) = t.finish();
        assert!(!ok && transcript.contains(AUTH_ERR), "{transcript}");
        assert!(!transcript.contains("A code was sent"), "{transcript}");
        assert!(!transcript.contains(SMS_CODE), "{transcript}");
    }
    let s = c.sim.stats();
    assert_eq!((s.send_sms, s.accepts, s.rejects), (2, 0, 2));
    let d = c.decisions();
    assert!(
        d.iter().any(|l| l.contains("user=bob")
            && l.contains("verdict=reject code=2003")
            && l.contains(" method=sms ")),
        "{d:#?}"
    );
    assert!(
        d.iter().any(|l| l.contains("user=mallory")
            && l.contains("verdict=reject code=2001")
            && l.contains(" method=sms ")),
        "{d:#?}"
    );
}

#[test]
fn sxs_down_while_sending_follows_failmode_and_never_resends() {
    let sim = Sim::start_sms(&["alice"]);
    sim.stop_serving();
    let c = Case::new(sim, "", "methods=sms prompts=3");
    let (ok, transcript) = c.talk("alice").finish();
    assert!(!ok && transcript.contains(AUTHINFO_UNAVAIL), "{transcript}");
    assert!(
        c.decisions()
            .iter()
            .any(|l| l.contains("verdict=unavailable")
                && l.contains(" method=sms ")
                && l.contains("deny-unavailable")),
        "{:#?}",
        c.decisions()
    );

    let sim = Sim::start_sms(&["alice"]);
    sim.stop_serving();
    let c = Case::new(sim, "[policy]\nfailmode = \"safe\"\n", "methods=sms");
    let (ok, transcript) = c.talk("alice").finish();
    assert!(ok, "{transcript}");
    assert!(c
        .decisions()
        .iter()
        .any(|l| l.contains("decision=allow-failopen")));
}

#[test]
fn mac_shown_in_the_conversation_is_checked_and_a_mac_for_another_input_is_refused() {
    let c = Case::new(Sim::start(&["alice"]), "[pam]\nmethods = [\"mac\"]\n", "");
    let mut t = c.talk("alice");
    t.expect("MAC for ");
    let transcript = t.expect(": ");
    let input = mac_input_in(&transcript);
    assert_eq!(input.len(), 8, "{transcript}");
    let mac = c.sim.mac("alice", &input);
    t.answer(&mac);
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains(&format!(
            "Type {} {} into the mToken app",
            &input[..4],
            &input[4..]
        )),
        "{transcript}"
    );
    assert!(c.decisions().iter().any(|l| l.contains("verdict=accept")
        && l.contains(" method=mac ")
        && l.contains(&format!("mac_input={input}"))));

    // The next login shows a new input: the old MAC is refused.
    let mut t = c.talk("alice");
    t.expect("MAC for ");
    let transcript = t.expect(": ");
    let next = mac_input_in(&transcript);
    assert_ne!(next, input);
    t.answer(&mac);
    let (ok, transcript) = t.finish();
    assert!(!ok && transcript.contains(AUTH_ERR), "{transcript}");
    assert_eq!(c.sim.stats().validate_mac, 2);
    assert_eq!(c.sim.stats().accepts, 1);
}
