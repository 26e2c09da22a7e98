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
        let config = write_config(d, sim_url, "");
        let service = harness::unique("sshd-sxs-test");
        let pam = PamDir::new();
        pam.service(
            &service,
            &format!(
                "auth required {{module}} config={}\n\
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
        Command::new("sshpass")
            .args(["-P", "OTP:", "-e", "ssh", "-F", "/dev/null", "-p"])
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
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .arg(cmd)
            .env("SSHPASS", otp)
            .stdin(Stdio::null())
            .output()
            .unwrap()
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
