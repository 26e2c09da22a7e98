//! The real sudo: a test user whose sudoers entry names its own PAM service
//! (`Defaults:USER pam_service=sxs-test-sudo-*`), so `/etc/pam.d/sudo` is never touched. sudo
//! is setuid, so it cannot run under bubblewrap (no_new_privs): its service file goes into
//! `/etc/pam.d` for the test and is removed in `Drop`, and the module logs through
//! `syslog_socket=` to the test's socket.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::harness::{
    self, log_sink, module_path, require, require_root, run_ok, write_config, Sim, TestUser,
};

struct Sudo {
    user: TestUser,
    pam_file: PathBuf,
    sudoers_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sudo {
    fn setup(sim: &Sim, user: TestUser) -> Sudo {
        Sudo::setup_with(sim, user, "")
    }

    /// `args` appended to the module's stack line.
    fn setup_with(sim: &Sim, user: TestUser, args: &str) -> Sudo {
        require_root();
        require("sudo", "sudo");
        require("visudo", "sudo");
        let dir = harness::tempdir();
        let config = write_config(dir.path(), &sim.url(), "");
        let service = harness::unique("sxs-test-sudo");
        let pam_file = PathBuf::from("/etc/pam.d").join(&service);
        let name = user.name.clone();
        let sudo = Sudo {
            user,
            pam_file: pam_file.clone(),
            // sudo skips included files whose name has a dot.
            sudoers_file: PathBuf::from("/etc/sudoers.d").join(harness::unique("sxs-test")),
            _dir: dir,
        };
        std::fs::write(
            &pam_file,
            format!(
                "auth required {} config={} syslog_socket={} {args}\n\
                 account required pam_permit.so\n\
                 session required pam_permit.so\n",
                module_path().display(),
                config.display(),
                log_sink().path.display()
            ),
        )
        .unwrap();
        let rules = format!(
            "Defaults:{name} pam_service={service}, !lecture, timestamp_timeout=0, passwd_tries=1, !mail_badpass\n\
             {name} ALL=(root) ALL\n"
        );
        // Checked before it goes live: a broken sudoers file would break sudo for everyone.
        let staged = sudo._dir.path().join("sudoers");
        std::fs::write(&staged, &rules).unwrap();
        run_ok(Command::new("visudo").arg("-cf").arg(&staged));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o440)
            .open(&sudo.sudoers_file)
            .unwrap();
        f.write_all(rules.as_bytes()).unwrap();
        sudo
    }

    /// `sudo -S -k id -un` as the test user, typing `otp`.
    fn run(&self, otp: &str) -> Output {
        let mut child = Command::new("sudo")
            .args(["-S", "-k", "id", "-un"])
            .uid(self.user.uid)
            .gid(self.user.gid)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{otp}").unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Sudo {
    /// `sudo -S -k -u TARGET id -un` as the test user, as a conversation.
    fn talk(&self, target: &str) -> harness::Conversation {
        let mut cmd = Command::new("sudo");
        cmd.args(["-S", "-k", "-u", target, "id", "-un"])
            .uid(self.user.uid)
            .gid(self.user.gid)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .current_dir("/");
        harness::Conversation::spawn(cmd)
    }

    fn service(&self) -> String {
        self.pam_file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Sudo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers_file);
        let _ = std::fs::remove_file(&self.pam_file);
        if !std::thread::panicking() {
            harness::assert_no_typed_secret_logged();
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn sudo_with_the_right_otp_runs_the_command() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let sudo = Sudo::setup(&sim, user);
    let out = sudo.run(&sim.otp(&sudo.user.name));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "root");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("OTP: "),
        "{}",
        text(&out)
    );
    assert_eq!(sim.stats().accepts, 1);
    let service = sudo
        .pam_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        log_sink()
            .lines()
            .iter()
            .any(|l| l.contains(&format!("({service}:auth)")) && l.contains("decision=allow")),
        "no decision line for {service}"
    );
}

#[test]
fn sudo_with_a_wrong_otp_is_refused() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let sudo = Sudo::setup(&sim, user);
    let out = sudo.run(&sim.wrong_otp(&sudo.user.name));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("root"));
    assert_eq!(sim.stats().rejects, 1);
    assert_eq!(sim.stats().accepts, 0);
}

#[test]
fn sudo_with_the_mac_over_the_shown_input_runs_the_command() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let sudo = Sudo::setup_with(&sim, user, "methods=mac debug");
    let name = sudo.user.name.clone();
    let mut t = sudo.talk("root");
    t.expect("MAC for ");
    let transcript = t.expect(": ");
    let input = harness::mac_input_in(&transcript);
    assert_eq!(input.len(), 8, "{transcript}");
    t.answer(&sim.mac(&name, &input));
    let (ok, transcript) = t.finish();
    assert!(ok, "{transcript}");
    // sudo's prompt (stderr) and the command's output (stdout) share the transcript.
    assert!(transcript.trim_end().ends_with(": root"), "{transcript}");
    // sudo authenticates with PAM_SILENT (sudoers' pam_silent, on by default): the info
    // message is not shown, which is why the prompt itself carries the MAC input.
    assert!(!transcript.contains("into the mToken app"), "{transcript}");
    assert_eq!(sim.stats().validate_mac, 1);
    assert_eq!(sim.stats().accepts, 1);
    let tag = format!("({}:auth)", sudo.service());
    let lines: Vec<String> = log_sink()
        .lines()
        .into_iter()
        .filter(|l| l.contains(&tag))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("verdict=accept")
            && l.contains(" method=mac ")
            && l.contains(&format!("user={name} "))
            && l.contains(&format!("mac_input={input}"))),
        "{lines:#?}"
    );
    // What sudo tells PAM: PAM_USER and PAM_RUSER are the invoking user (not the target
    // user, root here), no PAM_RHOST; the command is not a PAM item at all (docs/pam.md).
    assert!(
        lines.iter().any(|l| l.contains(&format!("ruser={name} "))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "start service={} user={name} rhost=- ",
            sudo.service()
        ))),
        "{lines:#?}"
    );
}

#[test]
fn sudo_with_a_mac_for_another_input_is_refused() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let sudo = Sudo::setup_with(&sim, user, "methods=mac");
    let name = sudo.user.name.clone();
    let mut t = sudo.talk("root");
    t.expect("MAC for ");
    let transcript = t.expect(": ");
    let shown = harness::mac_input_in(&transcript);
    // The MAC of another input (another challenge, or one the attacker chose).
    let other = if shown == "12345678" {
        "87654321"
    } else {
        "12345678"
    };
    t.answer(&sim.mac(&name, other));
    let (ok, transcript) = t.finish();
    assert!(!ok, "{transcript}");
    assert_eq!(sim.stats().validate_mac, 1);
    assert_eq!(sim.stats().accepts, 0);
}
