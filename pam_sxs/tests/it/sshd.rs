//! The real OpenSSH server: sshd started from a symlink named `sshd-sxs-test-*` (OpenSSH takes
//! its PAM service name from its program name), on a loopback port, keyboard-interactive only,
//! under bubblewrap with a private `/etc/pam.d`; the real ssh client answers the `OTP:` prompt
//! through sshpass.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    self, bwrap, free_port, log_sink, require, require_root, run_ok, write_config, PamDir, Sim,
    TestUser,
};

struct Sshd {
    child: Child,
    port: u16,
    service: String,
    dir: tempfile::TempDir,
    _pam: PamDir,
}

impl Sshd {
    fn start(user: &str, sim_url: &str) -> Sshd {
        Sshd::start_with(user, sim_url, "", "")
    }

    /// `extra` appended to the config, `args` to the module's stack line.
    fn start_with(user: &str, sim_url: &str, extra: &str, args: &str) -> Sshd {
        require_root();
        require("/usr/sbin/sshd", "openssh-server");
        require("ssh-keygen", "openssh-client");
        let dir = harness::tempdir();
        let d = dir.path();
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(d.join("hostkey")),
        );
        let config = write_config(
            d,
            sim_url,
            &format!(
                "[sms]\npam_state_dir = \"{}\"\n{extra}",
                d.join("sms").display()
            ),
        );
        let service = harness::unique("sshd-sxs-test");
        let pam = PamDir::new();
        pam.service(
            &service,
            &format!(
                "auth required {{module}} config={} {args}\n\
                 account required pam_permit.so\n\
                 session required pam_permit.so\n\
                 password required pam_deny.so\n",
                config.display()
            ),
        );
        let program = d.join(&service);
        std::os::unix::fs::symlink("/usr/sbin/sshd", &program).unwrap();
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {hostkey}\n\
                 PidFile none\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication no\n\
                 PubkeyAuthentication no\n\
                 AuthenticationMethods keyboard-interactive\n\
                 PermitRootLogin no\n\
                 AllowUsers {user}\n\
                 StrictModes no\n\
                 PrintMotd no\n\
                 LogLevel VERBOSE\n",
                hostkey = d.join("hostkey").display()
            ),
        )
        .unwrap();
        // The privilege-separation directory sshd insists on.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = File::create(d.join("sshd.log")).unwrap();
        let child = bwrap(pam.path())
            .args(["--unshare-pid", "--proc", "/proc"])
            .arg(&program)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut sshd = Sshd {
            child,
            port,
            service,
            dir,
            _pam: pam,
        };
        sshd.wait_listening();
        sshd
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}) before listening:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd is not listening on port {} after 10 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ssh USER@127.0.0.1 CMD`, answering the `OTP:` prompt with `otp`.
    fn ssh(&self, user: &str, otp: &str, cmd: &str) -> Output {
        require("ssh", "openssh-client");
        require("sshpass", "sshpass");
        let mut c = Command::new("sshpass");
        c.args(["-P", "OTP:", "-e", "ssh"]);
        self.ssh_args(&mut c, &["-o", "NumberOfPasswordPrompts=1"], user, cmd);
        c.env("SSHPASS", otp).output().unwrap()
    }

    /// `ssh USER@127.0.0.1 CMD` answering every keyboard-interactive prompt through
    /// `SSH_ASKPASS=askpass` (called with the prompt as its argument).
    fn ssh_askpass(&self, user: &str, askpass: &std::path::Path, cmd: &str) -> Output {
        let mut c = Command::new("ssh");
        self.ssh_args(&mut c, &[], user, cmd);
        c.env("SSH_ASKPASS", askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .output()
            .unwrap()
    }

    /// ssh's arguments: keyboard-interactive only, no host key check, `extra` options, this
    /// sshd, then the remote command.
    fn ssh_args(&self, c: &mut Command, extra: &[&str], user: &str, cmd: &str) {
        require("ssh", "openssh-client");
        c.args(["-F", "/dev/null", "-p"])
            .arg(self.port.to_string())
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "PreferredAuthentications=keyboard-interactive",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .arg(cmd)
            .stdin(Stdio::null());
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // sshd's own log (stderr) is part of what is checked for typed secrets.
        log_sink().add(&self.log());
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
fn ssh_login_with_the_right_otp_runs_a_command() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let sshd = Sshd::start(&user.name, &sim.url());
    let out = sshd.ssh(&user.name, &sim.otp(&user.name), "echo sxs-ok-$(id -un)");
    assert!(
        out.status.success(),
        "{}\nsshd:\n{}",
        text(&out),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sxs-ok-{}", user.name)
    );
    assert_eq!(sim.stats().accepts, 1);
    let tag = format!("({}:auth)", sshd.service);
    assert!(
        log_sink().lines().iter().any(|l| l.contains(&tag)
            && l.contains("rhost=127.0.0.1")
            && l.contains("decision=allow")),
        "no decision line for {tag}"
    );
}

#[test]
fn ssh_login_with_a_wrong_otp_is_refused() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let sshd = Sshd::start(&user.name, &sim.url());
    let out = sshd.ssh(&user.name, &sim.wrong_otp(&user.name), "echo sxs-ok");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sxs-ok"));
    assert!(sim.stats().rejects >= 1, "{}", sshd.log());
    assert_eq!(sim.stats().accepts, 0);
}

/// The user's side of an SMS login: Enter at the first prompt, then the code from the phone
/// (the simulator's outbox, `GET /sim/sms/USER`), as an askpass program that also appends
/// every prompt it is shown to `dir/prompts`.
fn sms_askpass(dir: &std::path::Path, sim_url: &str, user: &str) -> PathBuf {
    require("curl", "curl");
    let path = dir.join("askpass");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$1\" >> {prompts}\n\
             case \"$1\" in\n\
             *'press Enter for a code by SMS'*) echo ;;\n\
             *'SMS code:'*) curl -fsS {sim_url}/sim/sms/{user} | sed -n 's/.*\"code\":\"\\([0-9]*\\)\".*/\\1/p' ;;\n\
             *) echo \"unexpected prompt: $1\" >&2; exit 1 ;;\n\
             esac\n",
            prompts = dir.join("prompts").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

#[test]
fn ssh_login_answering_the_sms_prompt_with_the_code_from_the_phone() {
    let user = TestUser::add(None);
    let sim = Sim::start_sms(&[&user.name]);
    let sshd = Sshd::start_with(&user.name, &sim.url(), "", "methods=otp,sms");
    let dir = harness::tempdir();
    let askpass = sms_askpass(dir.path(), &sim.url(), &user.name);
    let out = sshd.ssh_askpass(&user.name, &askpass, "echo sxs-sms-ok-$(id -un)");
    // Registered for the log check once it exists.
    let code = sim.sms_code(&user.name);
    assert!(
        out.status.success(),
        "{}\nsshd:\n{}",
        text(&out),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sxs-sms-ok-{}", user.name)
    );
    // sshd puts the module's PAM_TEXT_INFO in front of the next prompt.
    let prompts = std::fs::read_to_string(dir.path().join("prompts")).unwrap();
    assert!(
        prompts.contains("OTP (or press Enter for a code by SMS): ")
            && prompts.contains("A code was sent to +38599*****00.\nSMS code: "),
        "{prompts}"
    );
    let s = sim.stats();
    assert_eq!((s.send_sms, s.validate_otp, s.accepts), (1, 1, 2), "{s:?}");
    assert_eq!(code.len(), 6);
    let tag = format!("({}:auth)", sshd.service);
    assert!(
        log_sink().lines().iter().any(|l| l.contains(&tag)
            && l.contains("verdict=accept")
            && l.contains(" method=sms ")
            && l.contains("decision=allow")),
        "no SMS decision line for {tag}"
    );
}

/// An askpass that must never be asked: a push login has no prompt to answer.
fn no_prompt_askpass(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("askpass");
    std::fs::write(
        &path,
        "#!/bin/sh\necho \"unexpected prompt: $1\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// The real sshd with `methods=push`: the login waits while the test, as the phone, approves
/// (the command runs) or denies (the login is refused) the push the daemon asked SxS for.
#[test]
fn ssh_login_approved_and_denied_by_push() {
    let user = TestUser::add(None);
    let sim = Sim::start(&[&user.name]);
    let daemon = crate::push::Daemon::start(&sim.url(), "20s");
    let sshd = Sshd::start_with(&user.name, &sim.url(), &daemon.pam_config(), "methods=push");
    let dir = harness::tempdir();
    let askpass = no_prompt_askpass(dir.path());
    for (action, ok) in [("approve", true), ("deny", false)] {
        let login = std::thread::scope(|s| {
            let login = s.spawn(|| {
                // One keyboard-interactive round: a refused login is not tried again.
                let mut c = Command::new("ssh");
                sshd.ssh_args(
                    &mut c,
                    &["-o", "NumberOfPasswordPrompts=1"],
                    &user.name,
                    "echo sxs-push-ok-$(id -un)",
                );
                c.env("SSH_ASKPASS", &askpass)
                    .env("SSH_ASKPASS_REQUIRE", "force")
                    .output()
                    .unwrap()
            });
            let id = sim.pending_push(&user.name);
            sim.phone(&id, action);
            login.join().unwrap()
        });
        harness::typed(&sim.otp(&user.name));
        assert_eq!(
            login.status.success(),
            ok,
            "{action}: {}\nsshd:\n{}\ndaemon:\n{}",
            text(&login),
            sshd.log(),
            daemon.logs()
        );
        let stdout = String::from_utf8_lossy(&login.stdout);
        assert_eq!(
            stdout.trim() == format!("sxs-push-ok-{}", user.name),
            ok,
            "{action}: {stdout}"
        );
    }
    let s = sim.stats();
    assert_eq!((s.start_push, s.validate_otp), (2, 1), "{s:?}");
    let tag = format!("({}:auth)", sshd.service);
    let lines = log_sink().lines();
    assert!(
        lines.iter().any(|l| l.contains(&tag)
            && l.contains(" method=push ")
            && l.contains("rhost=127.0.0.1")
            && l.contains("decision=allow")),
        "no push decision line for {tag}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&tag) && l.contains("code=local:push-denied")),
        "no denied push line for {tag}"
    );
}
