//! A simulator on port 0, configuration files for it, and a way to run `sxsctl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::sim::{self, SeedUser, SimHandle, SimOptions, StatsSnapshot};

pub const ALICE_SN: &str = "2000038252";

/// A running simulator and a directory for configuration and token-map files.
pub struct Sim {
    // Dropped first: stops the server while the runtime still runs.
    handle: SimHandle,
    rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

impl Sim {
    /// Seeded with `alice` (active token ALICE_SN), `bob` (active token) and `tokenless`.
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sim::start(
                listener,
                SimOptions {
                    seed: seed(),
                    ..SimOptions::default()
                },
            )
            .unwrap()
        });
        Self {
            handle,
            rt,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        self.handle.url()
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.handle.stats()
    }

    /// The current OTP of `user`'s token, as the phone shows it.
    pub fn otp(&self, user: &str) -> String {
        self.handle.current_otp(user).unwrap()
    }

    /// The code of the last SMS sent to `user` (what the phone shows).
    pub fn sms_code(&self, user: &str) -> Option<String> {
        self.handle.sms_outbox(user).pop().map(|m| m.code)
    }

    /// The MAC `user`'s app shows for `input`.
    pub fn mac(&self, user: &str, input: &str) -> String {
        self.handle.mac(user, input).unwrap()
    }

    /// A configuration whose SMS limit counts in a fresh directory of this test, plus `extra`.
    pub fn sms_config(&self, extra: &str) -> PathBuf {
        let dir = self.file(&format!("sms-{}", unique()));
        self.config(&format!(
            "[sms]\npam_state_dir = {:?}\n{extra}",
            dir.display().to_string()
        ))
    }

    /// Moves the simulator's clock on by one OTP step (a fresh OTP without sleeping).
    pub fn next_step(&self) {
        self.handle.advance_time(30);
    }

    /// The phone's activation with the two codes: `POST /sim/activate`.
    pub fn activate(&self, client_id: &str, activation_code: &str) -> (u16, serde_json::Value) {
        let url = format!("{}/sim/activate", self.url());
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({
                    "client_id": client_id,
                    "activation_code": activation_code,
                }))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap())
        })
    }

    /// A configuration with this simulator as the only server and admin root, plus `extra`
    /// TOML (whole sections).
    pub fn config(&self, extra: &str) -> PathBuf {
        self.config_for(&[self.url()], Some(&self.url()), extra)
    }

    /// A configuration with the given servers and admin root.
    pub fn config_for(&self, servers: &[String], admin: Option<&str>, extra: &str) -> PathBuf {
        let list = servers
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let admin = admin
            .map(|a| format!("admin_url = \"{a}/SxSAdminWS\"\n"))
            .unwrap_or_default();
        self.write_config(&format!(
            "[sxs]\nservers = [{list}]\n{admin}organization_id = \"1\"\ntimeout = \"2s\"\nconnect_timeout = \"500ms\"\n{extra}"
        ))
    }

    /// Writes `text` to a new file in the test directory.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let path = self.file(&format!("sxs-{}.toml", unique()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A path in the test directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn seed() -> Vec<SeedUser> {
    vec![
        SeedUser {
            id: "alice".into(),
            token_sn: Some(ALICE_SN.into()),
            secret: Some("JBSWY3DPEHPK3PXP".into()),
            mobile: Some("+385991234567".into()),
            sms: Some(true),
            // Explicit: an assigned one can collide with the serial `token enroll` gets next
            // (simulator: both come from one counter, the SMS serial is not reserved).
            sms_token_sn: Some("2000038299".into()),
            ..SeedUser::default()
        },
        SeedUser {
            id: "bob".into(),
            token_sn: Some("2000038253".into()),
            ..SeedUser::default()
        },
        SeedUser {
            id: "tokenless".into(),
            ..SeedUser::default()
        },
    ]
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A loopback URL nothing listens on.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// What one run of `sxsctl` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Standard output as the one JSON object of `--json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The value of a `key   value` line of human output.
    pub fn field(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .filter(|rest| rest.starts_with("  "))
                    .map(|rest| rest.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no line {key:?} in:\n{}", self.stdout))
    }

    /// Asserts the exit status, showing both streams when it is wrong.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        // Never a panic or a backtrace, whatever happened.
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "{}", self.stderr);
        self
    }
}

/// Runs `sxsctl --config CONFIG ARGS…`.
pub fn sxsctl(config: &Path, args: &[&str]) -> Run {
    sxsctl_with_stdin(config, args, None)
}

/// As [`sxsctl`], with `input` on standard input (otherwise standard input is empty).
pub fn sxsctl_with_stdin(config: &Path, args: &[&str], input: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sxsctl"));
    cmd.arg("--config").arg(config).args(args);
    run(cmd, input)
}

/// As [`sxsctl`], with `env` added to its environment.
pub fn sxsctl_env(config: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sxsctl"));
    cmd.arg("--config").arg(config).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(cmd, None)
}

/// Runs `sxsctl ARGS…` as given (no --config added).
pub fn sxsctl_raw(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sxsctl"));
    cmd.args(args);
    run(cmd, None)
}

fn run(mut cmd: Command, input: Option<&str>) -> Run {
    // The test's own environment must not reconfigure the binary.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("SXS_") || k == "SXSCTL_CONFIG" || k == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `user create ID` with valid fields; asserts success.
pub fn create_user(config: &Path, id: &str) {
    sxsctl(
        config,
        &[
            "user",
            "create",
            id,
            "--email",
            &format!("{id}@example.com"),
            "--mobile",
            "+385991234567",
        ],
    )
    .expect(0);
}

/// `token enroll ID` (plus `extra` flags); returns (serial, client ID, activation code) from
/// the JSON output.
pub fn enroll(
    config: &Path,
    id: &str,
    extra: &[&str],
) -> (String, String, String, serde_json::Value) {
    let mut args = vec![
        "--json",
        "token",
        "enroll",
        id,
        "--profile",
        "1393",
        "--service",
        "6",
    ];
    args.extend_from_slice(extra);
    let run = sxsctl(config, &args);
    run.expect(0);
    let v = run.json();
    (
        v["token_sn"].as_str().unwrap().to_string(),
        v["client_id"].as_str().unwrap().to_string(),
        v["activation_code"].as_str().unwrap().to_string(),
        v,
    )
}

/// A six-digit OTP that is not `otp`.
pub fn wrong(otp: &str) -> String {
    let n: u32 = otp.parse().unwrap();
    format!("{:06}", (n + 500_000) % 1_000_000)
}
