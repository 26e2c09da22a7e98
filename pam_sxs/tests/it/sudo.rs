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
                "auth required {} config={} syslog_socket={}\n\
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
