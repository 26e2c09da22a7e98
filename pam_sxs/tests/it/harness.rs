//! What the tests share: tool checks, the built module, the SxS simulator on a thread, the log
//! socket, temporary PAM service directories, test users, and the register of typed secrets.

use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use common::sim::{SeedUser, SimHandle, SimOptions, StatsSnapshot};

/// Fails the test with an install hint when `program` is not there.
pub fn require(program: &str, package: &str) {
    let found = if program.starts_with('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
            .unwrap_or(false)
            || ["/usr/sbin", "/sbin", "/usr/bin"]
                .iter()
                .any(|d| Path::new(d).join(program).is_file())
    };
    assert!(
        found,
        "`{program}` not found: the PAM integration tests need the `{package}` package \
         (apt-get install -y {package}); they run as root in CI, which installs it"
    );
}

/// Fails unless running as root.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the PAM integration tests must run as root (they start sshd, sudo and add users)"
    );
}

/// The module built with this test binary: `cargo test` leaves the fresh cdylib in
/// `target/<profile>/deps/` (it only copies it up to `target/<profile>/` on `cargo build`, so
/// that copy can be stale).
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe
        .parent()
        .expect("test binary under target/<profile>/deps");
    let so = deps.join("libpam_sxs.so");
    assert!(
        so.is_file(),
        "{} is missing: `cargo test -p pam_sxs` builds it",
        so.display()
    );
    so
}

/// A name unique in this run and across concurrent runs: `PREFIX-PID-N`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs a command, failing the test (with its output) when it does not succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ----- the typed secrets and the log socket -----

static TYPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers something a test types (an OTP, a password) and gives it back.
pub fn typed(secret: &str) -> String {
    TYPED.lock().unwrap().push(secret.to_string());
    secret.to_string()
}

/// Every line syslogged to the socket during the run (module lines through pam_syslog or
/// `syslog_socket=`, libpam's own, sshd's), plus lines tests add (sshd's stderr log).
pub struct LogSink {
    pub path: PathBuf,
    lines: Mutex<Vec<String>>,
    seen: Condvar,
}

/// The one sink of this test binary, started on first use.
pub fn log_sink() -> &'static LogSink {
    static SINK: OnceLock<&'static LogSink> = OnceLock::new();
    SINK.get_or_init(|| {
        remove_stale_sink_dirs();
        let dir = PathBuf::from(format!("/tmp/sxs-pam-it-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("log.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        // Processes that dropped root (sshd's session child) log too.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let sink: &'static LogSink = Box::leak(Box::new(LogSink {
            path,
            lines: Mutex::new(Vec::new()),
            seen: Condvar::new(),
        }));
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lines.lock().unwrap().push(line);
                sink.seen.notify_all();
            }
        });
        sink
    })
}

fn remove_stale_sink_dirs() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("sxs-pam-it-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

impl LogSink {
    /// Waits until every datagram sent before this call has been read (a unix datagram socket
    /// delivers in order: a marker sent now arrives after them).
    pub fn sync(&self) {
        let marker = unique("sxs-it-sync-marker");
        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to(marker.as_bytes(), &self.path).unwrap();
        let lines = self.lines.lock().unwrap();
        let (_lines, timeout) = self
            .seen
            .wait_timeout_while(lines, std::time::Duration::from_secs(10), |l| {
                !l.iter().any(|x| x == &marker)
            })
            .unwrap();
        assert!(!timeout.timed_out(), "the log socket did not answer");
    }

    /// All lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.sync();
        self.lines.lock().unwrap().clone()
    }

    /// Adds lines logged elsewhere (sshd -e writes to its stderr).
    pub fn add(&self, text: &str) {
        self.lines
            .lock()
            .unwrap()
            .extend(text.lines().map(|l| l.to_string()));
    }
}

/// Whether `line` shows `secret`. An all-digit secret counts only as a whole run of digits
/// that is not a `[pid]`, so a port or a pid that happens to contain it is not a leak; any
/// other secret counts as a substring.
pub fn line_shows(line: &str, secret: &str) -> bool {
    if !secret.bytes().all(|b| b.is_ascii_digit()) {
        return line.contains(secret);
    }
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let pid = start > 0 && b[start - 1] == b'[' && b.get(i) == Some(&b']');
            if !pid && &line[start..i] == secret {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

/// Asserts that no line logged so far shows anything typed so far.
pub fn assert_no_typed_secret_logged() {
    let lines = log_sink().lines();
    let typed: HashSet<String> = TYPED.lock().unwrap().iter().cloned().collect();
    for line in &lines {
        for secret in &typed {
            assert!(
                !line_shows(line, secret),
                "a typed secret reached the log: {line:?}"
            );
        }
    }
}

// ----- the simulator -----

/// The SxS simulator on its own thread.
pub struct Sim {
    handle: Option<SimHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    /// Starts a simulator where each of `users` has a token.
    pub fn start(users: &[&str]) -> Sim {
        Sim::start_seed(
            users
                .iter()
                .enumerate()
                .map(|(i, u)| SeedUser {
                    id: u.to_string(),
                    token_sn: Some(format!("20000382{i:02}")),
                    ..Default::default()
                })
                .collect(),
        )
    }

    /// Starts a simulator where each of `users` has a token and an SMS token, the mobile
    /// `+3859912345NN` (registered as a secret: it must never be logged in full).
    pub fn start_sms(users: &[&str]) -> Sim {
        Sim::start_seed(
            users
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let mobile = format!("+3859912345{i:02}");
                    typed(&mobile);
                    typed(&mobile[1..]);
                    SeedUser {
                        id: u.to_string(),
                        token_sn: Some(format!("20000382{i:02}")),
                        mobile: Some(mobile),
                        sms: Some(true),
                        ..Default::default()
                    }
                })
                .collect(),
        )
    }

    /// Starts a simulator with `seed`.
    pub fn start_seed(seed: Vec<SeedUser>) -> Sim {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let handle = common::sim::start(
                    listener,
                    SimOptions {
                        seed,
                        ..Default::default()
                    },
                )
                .unwrap();
                tx.send(handle).unwrap();
                let _ = stop_rx.await;
            });
        });
        Sim {
            handle: Some(rx.recv().unwrap()),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn h(&self) -> &SimHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.h().url()
    }

    /// The user's current OTP, registered as typed.
    pub fn otp(&self, user: &str) -> String {
        typed(&self.h().current_otp(user).expect("a seeded user"))
    }

    /// An OTP that is wrong now (the current one with its first digit changed), registered.
    pub fn wrong_otp(&self, user: &str) -> String {
        let good = self.h().current_otp(user).expect("a seeded user");
        let mut b = good.into_bytes();
        b[0] = b'0' + (b[0] - b'0' + 5) % 10;
        typed(&String::from_utf8(b).unwrap())
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.h().stats()
    }

    /// The code of the last SMS sent to `user` (what the phone shows), registered as typed.
    pub fn sms_code(&self, user: &str) -> String {
        let last = self.h().sms_outbox(user).pop().expect("an SMS was sent");
        typed(&last.code)
    }

    /// How many SMS were sent to `user`.
    pub fn sms_count(&self, user: &str) -> usize {
        self.h().sms_outbox(user).len()
    }

    /// The MAC `user`'s app computes over `input`, registered as typed.
    pub fn mac(&self, user: &str, input: &str) -> String {
        typed(
            &self
                .h()
                .mac(user, input)
                .expect("a user with a token, an 8-digit input"),
        )
    }

    /// Moves to the next 30 s step, so the user has a fresh OTP.
    pub fn next_step(&self) {
        self.h().advance_time(30);
    }

    /// Waits (bounded) for the push the daemon asked SxS for to reach `user`'s phone: its id.
    pub fn pending_push(&self, user: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            if let Some(p) = self.h().pending_pushes(user).first() {
                return p.id.clone();
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "no push reached {user}'s phone"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Plays the phone: `approve` or `deny` push `id` (`POST /sim/push/ID/ACTION`), after which
    /// the simulator calls the daemon's callback. Gives the simulator's answer.
    pub fn phone(&self, id: &str, action: &str) -> String {
        require("curl", "curl");
        let out = run_ok(Command::new("curl").args([
            "-fsS",
            "-X",
            "POST",
            &format!("{}/sim/push/{id}/{action}", self.url()),
        ]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops answering (connections are refused from now on).
    pub fn stop_serving(&self) {
        self.h().stop();
    }
}

impl Drop for Sim {
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

// ----- files -----

/// A temporary directory other users can traverse (sshd's and sudo's children).
pub fn tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("sxs-pam-it")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Writes `sxs.toml` for `sim_url` into `dir`, `extra` appended; gives its path.
pub fn write_config(dir: &Path, sim_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("sxs.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        "[sxs]\nservers = [\"{sim_url}\"]\norganization_id = \"1\"\ntimeout = \"2s\"\n{extra}"
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// A private `/etc/pam.d` for bubblewrap.
pub struct PamDir {
    pub dir: tempfile::TempDir,
}

impl PamDir {
    pub fn new() -> PamDir {
        let dir = tempdir();
        PamDir { dir }
    }

    /// Writes service `name`; `{module}` in `lines` is replaced by the module's path.
    pub fn service(&self, name: &str, lines: &str) {
        let text = lines.replace("{module}", &module_path().display().to_string());
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The bubblewrap prefix: the whole system, with our `/etc/pam.d` and `/dev/log`.
pub fn bwrap(pam_dir: &Path) -> Command {
    require("bwrap", "bubblewrap");
    let mut c = Command::new("bwrap");
    c.args(["--bind", "/", "/", "--dev", "/dev"])
        .arg("--bind")
        .arg(pam_dir)
        .arg("/etc/pam.d")
        .arg("--bind")
        .arg(&log_sink().path)
        .arg("/dev/log")
        .arg("--die-with-parent");
    c
}

/// What pamtester said.
#[derive(Debug)]
pub struct Tested {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Tested {
    /// pamtester prints `pam_strerror` of the failure.
    pub fn failed_with(&self, text: &str) -> bool {
        !self.ok && self.stderr.contains(text)
    }
}

pub const AUTH_ERR: &str = "Authentication failure";
pub const AUTHINFO_UNAVAIL: &str = "Authentication service cannot retrieve authentication info";
pub const AUTHTOK_RECOVERY_ERR: &str = "Authentication information cannot be recovered";

/// `pamtester SERVICE USER authenticate` under bubblewrap and strace, which records every sleep
/// of the process: libpam's `pam_fail_delay` wait (a `select` on no descriptors) and the
/// module's own (`clock_nanosleep`), seen from outside. Gives the sleeps' lengths in order.
pub fn pamtester_sleeps(
    pam_dir: &PamDir,
    service: &str,
    user: &str,
    stdin: &str,
) -> (Tested, Vec<std::time::Duration>) {
    require_root();
    require("pamtester", "pamtester");
    require("strace", "strace");
    let dir = tempdir();
    let trace = dir.path().join("trace");
    let mut child = bwrap(pam_dir.path())
        .arg("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=nanosleep,clock_nanosleep,select,pselect6",
            "-o",
        ])
        .arg(&trace)
        .args(["pamtester", "-v", service, user, "authenticate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let sleeps = text
        .lines()
        .filter(|l| l.contains("nanosleep(") || l.contains("select6(0, NULL, NULL, NULL,"))
        .filter_map(|l| {
            let num = |key: &str| -> Option<u64> {
                let rest = &l[l.find(key)? + key.len()..];
                rest[..rest.find(|c: char| !c.is_ascii_digit())?]
                    .parse()
                    .ok()
            };
            Some(std::time::Duration::new(
                num("tv_sec=")?,
                u32::try_from(num("tv_nsec=")?).ok()?,
            ))
        })
        .collect();
    (
        Tested {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        sleeps,
    )
}

/// `pamtester SERVICE USER authenticate` under bubblewrap, `stdin` as the user's typing.
pub fn pamtester(pam_dir: &PamDir, service: &str, user: &str, stdin: &str) -> Tested {
    pamtester_ops(pam_dir, service, user, &["authenticate"], stdin)
}

/// `pamtester SERVICE USER OPS...` under bubblewrap.
pub fn pamtester_ops(
    pam_dir: &PamDir,
    service: &str,
    user: &str,
    ops: &[&str],
    stdin: &str,
) -> Tested {
    require_root();
    require("pamtester", "pamtester");
    let mut child = bwrap(pam_dir.path())
        .args(["pamtester", "-v", service, user])
        .args(ops)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Tested {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ----- users -----

/// useradd/userdel take a lock file and fail when run concurrently: one at a time.
static USERDB: Mutex<()> = Mutex::new(());

/// A local user, removed in `Drop`.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// A user with `/bin/sh`, no home, and `password` (locked when `None`).
    pub fn add(password: Option<&str>) -> TestUser {
        require_root();
        require("useradd", "passwd");
        let name = unique("sxsit");
        {
            let _g = USERDB.lock().unwrap_or_else(|p| p.into_inner());
            run_ok(Command::new("useradd").args([
                "-M",
                "-U",
                "-s",
                "/bin/sh",
                "-d",
                "/nonexistent",
                &name,
            ]));
            if let Some(pw) = password {
                let mut child = Command::new("chpasswd")
                    .stdin(Stdio::piped())
                    .spawn()
                    .unwrap();
                writeln!(child.stdin.take().unwrap(), "{name}:{pw}").unwrap();
                assert!(child.wait().unwrap().success(), "chpasswd failed");
            }
        }
        let u = nix::unistd::User::from_name(&name)
            .unwrap()
            .expect("the user just added");
        TestUser {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _g = USERDB.lock().unwrap_or_else(|p| p.into_inner());
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A free TCP port on loopback (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ----- a conversation driven step by step -----

/// A program whose prompts are answered one at a time, each answer computed from what it
/// printed so far (the SMS code exists only once the module sent it; the MAC input is shown in
/// the conversation). Standard output and error are read into one transcript.
pub struct Conversation {
    child: std::process::Child,
    transcript: std::sync::Arc<Mutex<String>>,
    seen: usize,
}

impl Conversation {
    pub fn spawn(mut cmd: Command) -> Conversation {
        use std::io::Read as _;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let transcript = std::sync::Arc::new(Mutex::new(String::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for mut r in [out, err] {
            let t = transcript.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    t.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Conversation {
            child,
            transcript,
            seen: 0,
        }
    }

    /// Waits (bounded) until `prompt` appears after the previous one; gives the transcript.
    pub fn expect(&mut self, prompt: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            {
                let t = self.transcript.lock().unwrap();
                if let Some(at) = t[self.seen..].find(prompt) {
                    self.seen += at + prompt.len();
                    return t.clone();
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers finish, then look once more.
                std::thread::sleep(std::time::Duration::from_millis(100));
                let t = self.transcript.lock().unwrap();
                assert!(
                    t[self.seen..].contains(prompt),
                    "exited ({status}) before prompting {prompt:?}:\n{t}"
                );
                continue;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {prompt:?} after 20 s:\n{}",
                self.transcript.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Types one line.
    pub fn answer(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes standard input and waits: whether it succeeded, and the whole transcript.
    pub fn finish(mut self) -> (bool, String) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let t = self.transcript.lock().unwrap().clone();
        (status.success(), t)
    }
}

/// The 8 digits after `MAC for ` in a transcript (the last such prompt), without the space.
pub fn mac_input_in(transcript: &str) -> String {
    let at = transcript.rfind("MAC for ").expect("a MAC prompt") + "MAC for ".len();
    transcript[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ' ')
        .filter(char::is_ascii_digit)
        .collect()
}

/// `pamtester SERVICE USER authenticate` under bubblewrap, as a [`Conversation`] (standard
/// output unbuffered, so PAM_TEXT_INFO lines arrive as they are shown).
pub fn pamtester_conversation(pam_dir: &PamDir, service: &str, user: &str) -> Conversation {
    require_root();
    require("pamtester", "pamtester");
    require("stdbuf", "coreutils");
    let mut cmd = bwrap(pam_dir.path());
    cmd.args([
        "stdbuf",
        "-o0",
        "-e0",
        "pamtester",
        "-v",
        service,
        user,
        "authenticate",
    ]);
    Conversation::spawn(cmd)
}
