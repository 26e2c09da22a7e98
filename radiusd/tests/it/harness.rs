//! Runs the simulator in-process and the real `sxs-radiusd` binary on a port-0 socket.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sim::{self, SeedUser, SimHandle, SimOptions};

pub const SECRET: &str = "a-long-test-secret";
pub const STATE_KEY: &str = "0123456789abcdef0123456789abcdef";
pub const ALICE_MOBILE: &str = "+385991234567";

/// A simulator on its own runtime thread, so the test body can be synchronous.
pub struct Sim {
    pub handle: SimHandle,
    _rt: tokio::runtime::Runtime,
}

impl Sim {
    pub fn start() -> Sim {
        Self::start_users(&["alice", "bob", "carol", "dave"])
    }

    /// A simulator knowing `users`, each with a token.
    pub fn start_users(users: &[&str]) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sim::start(
                l,
                SimOptions {
                    seed: users
                        .iter()
                        .enumerate()
                        .map(|(i, id)| SeedUser {
                            id: (*id).into(),
                            token_sn: Some(format!("200003825{i}")),
                            // alice also holds an SMS token.
                            mobile: (*id == "alice").then(|| ALICE_MOBILE.into()),
                            sms: Some(*id == "alice"),
                            ..SeedUser::default()
                        })
                        .collect(),
                    ..SimOptions::default()
                },
            )
            .unwrap()
        });
        Sim { handle, _rt: rt }
    }

    pub fn otp(&self, user: &str) -> String {
        self.handle.current_otp(user).unwrap()
    }

    pub fn url(&self) -> String {
        self.handle.url()
    }
}

/// A running `sxs-radiusd`, killed on drop.
pub struct Radiusd {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Standard output after the first line.
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A config with one client for 127.0.0.1 and ::1 (unless `clients` replaces it).
pub fn config_text(sxs_url: &str, radius_extra: &str, clients: Option<&str>) -> String {
    let clients = clients.map(str::to_string).unwrap_or_else(|| {
        format!(
            "[[radius.clients]]\nname = \"local\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n\
             [[radius.clients]]\nname = \"local6\"\naddress = \"::1\"\nsecret = \"{SECRET}\"\n"
        )
    });
    format!(
        "[sxs]\nservers = [\"{sxs_url}\"]\norganization_id = \"1\"\ntimeout = \"2s\"\nconnect_timeout = \"500ms\"\n\
         [radius]\nreject_delay = \"0s\"\nstate_key = \"{STATE_KEY}\"\n{radius_extra}\n{clients}"
    )
}

impl Radiusd {
    pub fn start(config: &str, listen: &str) -> Radiusd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sxs.toml");
        write_config(&path, config);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sxs-radiusd"))
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg(listen)
            .env("RUST_LOG", "info,radiusd=debug")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("sxs-radiusd listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sxs-radiusd did not start: {line:?}\n{}",
                stderr.lock().unwrap()
            );
        };
        let addr = addr.parse().unwrap();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let sink = stdout.clone();
            std::thread::spawn(move || {
                for line in out.lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        Radiusd {
            child,
            addr,
            _dir: dir,
            config: path,
            stderr,
            stdout,
        }
    }

    /// `host:port` for radclient.
    pub fn target(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }

    /// What follows `prefix` on the first line of standard output that starts with it
    /// (`"sxs-radiusd metrics on "`), waiting for it (bounded).
    pub fn stdout_after(&self, prefix: &str) -> String {
        for _ in 0..200 {
            if let Some(rest) = self
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
            {
                return rest.to_string();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("sxs-radiusd never printed {prefix:?}:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the log to contain `needle` (bounded), for events the test cannot observe
    /// otherwise (a reload finishing).
    pub fn wait_for_log(&self, needle: &str) {
        for _ in 0..200 {
            if self.logs().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("log never showed {needle:?}:\n{}", self.logs());
    }
}

impl Drop for Radiusd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write_config(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
