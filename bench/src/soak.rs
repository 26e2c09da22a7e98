//! `sxs-bench soak`: the real `sxs-radiusd` at full speed for a minute, with retransmissions
//! and malformed datagrams mixed in, checking every answer. Not part of the unit suite (it
//! takes a minute and both cores); run it from the docs (docs/benchmarks.md, "Soak").
//!
//! Asserts (exit status 1 otherwise):
//! - 0 wrong answers: the current OTP gets Access-Accept, a wrong one Access-Reject, every
//!   answer verifies (Response Authenticator, Message-Authenticator) against its request, a
//!   retransmission answered twice gets the identical bytes, a malformed datagram no answer;
//! - 0 lost valid requests (each is answered within 5 s);
//! - exactly one SxS validateOtp per distinct request (the simulator's own counter): neither
//!   a retransmission nor a malformed datagram reaches SxS;
//! - flat memory: the server's RSS (sampled from /proc every second) in the second half of
//!   the run stays within 10 % (+ 4 MiB) of its peak in the first half.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::sim::{self, SeedUser, SimOptions};
use radiusd::auth::{encode_user_password, verify_response};
use radiusd::packet::{attr, encode_request, Code};
use rand::{Rng, SeedableRng};

use std::process::{Command, Stdio};

use crate::SECRET;

/// What the run counted, per driver.
#[derive(Debug, Default)]
struct Tally {
    distinct: u64,
    retransmitted: u64,
    answers: u64,
    duplicate_answers: u64,
    wrong: u64,
    lost: u64,
    first_wrong: Option<String>,
}

impl Tally {
    fn wrong(&mut self, what: String) {
        self.wrong += 1;
        self.first_wrong.get_or_insert(what);
    }
}

/// One request outstanding under an identifier.
struct Slot {
    bytes: Vec<u8>,
    auth: [u8; 16],
    expect_accept: bool,
    sent: Instant,
    /// Retransmit once this long after the first send (None: do not).
    retransmit_after: Option<Duration>,
    retransmitted_at: Option<Instant>,
    answer: Option<Vec<u8>>,
}

impl Slot {
    /// Done: answered, and a retransmission (if any) had time to be answered too.
    fn done(&self, now: Instant) -> bool {
        self.answer.is_some()
            && match (self.retransmit_after, self.retransmitted_at) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(_), Some(t)) => now - t > Duration::from_millis(50),
            }
    }
}

pub async fn soak(
    seconds: u64,
    in_flight: usize,
    retransmit_pct: u32,
    malformed_pct: u32,
    radiusd: Option<PathBuf>,
) -> bool {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Arc::new(
        sim::start(
            l,
            SimOptions {
                allow_replay: true,
                lockout: u32::MAX,
                seed: vec![SeedUser {
                    id: "soak".into(),
                    token_sn: Some("2000000077".into()),
                    ..SeedUser::default()
                }],
                ..SimOptions::default()
            },
        )
        .unwrap(),
    );
    let (mut child, target, dir) = spawn_radiusd(
        &sim.url(),
        &format!(
            "[radius]\nreject_delay = \"0s\"\nmax_in_flight = {}\n",
            (in_flight * 4).max(1024)
        ),
        radiusd,
    );
    let otp = Arc::new(Mutex::new(sim.current_otp("soak").unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let malformed_sent = Arc::new(AtomicU64::new(0));
    let per_socket = in_flight.clamp(1, 200);
    let mut tasks = Vec::new();
    for s in 0..in_flight.div_ceil(per_socket) {
        let window = per_socket.min(in_flight - s * per_socket);
        tasks.push(tokio::spawn(drive(
            target,
            window,
            otp.clone(),
            stop.clone(),
            retransmit_pct,
        )));
    }
    let junk = tokio::spawn(malformed(
        target,
        stop.clone(),
        malformed_pct,
        in_flight,
        malformed_sent.clone(),
    ));
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        *otp.lock().unwrap() = sim.current_otp("soak").unwrap();
        rss.push(status_kib(child.id(), "VmRSS:").unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    let mut t = Tally::default();
    for task in tasks {
        let r = task.await.unwrap();
        t.distinct += r.distinct;
        t.retransmitted += r.retransmitted;
        t.answers += r.answers;
        t.duplicate_answers += r.duplicate_answers;
        t.wrong += r.wrong;
        t.lost += r.lost;
        if t.first_wrong.is_none() {
            t.first_wrong = r.first_wrong;
        }
    }
    let junk_answers = junk.await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let sxs_calls = sim.stats().validate_otp;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let half = rss.len() / 2;
    let first_peak = rss.iter().take(half).max().copied().unwrap_or(0);
    let second_peak = rss.iter().skip(half).max().copied().unwrap_or(0);
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "soak: {elapsed:.0} s, {in_flight} in flight: {} distinct requests ({:.0} req/s), {} retransmitted ({} answered twice), {} malformed datagrams",
        t.distinct,
        t.distinct as f64 / elapsed,
        t.retransmitted,
        t.duplicate_answers,
        malformed_sent.load(Ordering::Relaxed),
    );
    println!(
        "  wrong answers {} (+{junk_answers} to malformed), lost {}, SxS validateOtp calls {sxs_calls} for {} distinct requests",
        t.wrong, t.lost, t.distinct
    );
    println!(
        "  sxs-radiusd RSS: first half peak {:.1} MiB, second half peak {:.1} MiB, at the end {:.1} MiB",
        mib(first_peak),
        mib(second_peak),
        mib(rss.last().copied().unwrap_or(0)),
    );
    let mut ok = true;
    let mut check = |cond: bool, what: String| {
        if !cond {
            println!("  FAILED: {what}");
            ok = false;
        }
    };
    check(
        t.wrong == 0 && junk_answers == 0,
        format!(
            "{} wrong answers, {junk_answers} answers to malformed datagrams (first: {})",
            t.wrong,
            t.first_wrong.unwrap_or_default()
        ),
    );
    check(t.lost == 0, format!("{} valid requests lost", t.lost));
    check(
        sxs_calls == t.distinct,
        format!(
            "{sxs_calls} SxS calls for {} distinct requests (must be equal)",
            t.distinct
        ),
    );
    check(
        second_peak <= first_peak + first_peak / 10 + 4096,
        format!(
            "memory grew: {:.1} MiB -> {:.1} MiB",
            mib(first_peak),
            mib(second_peak)
        ),
    );
    check(t.distinct > 0, "no request was answered".into());
    if ok {
        println!("  OK");
    }
    ok
}

/// One socket with up to `window` requests outstanding; identifiers are reused only once a
/// request is done (answered, and its retransmission's answer had time to arrive).
async fn drive(
    target: SocketAddr,
    window: usize,
    otp: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    retransmit_pct: u32,
) -> Tally {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(target).await.unwrap();
    let mut slots: Vec<Option<Slot>> = (0..256).map(|_| None).collect();
    // Every first answer of the last 200 000 requests: a retransmission answered from the
    // server's cache can arrive after its identifier was reused (or freed); it must then be
    // the identical bytes.
    let mut answered: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut answered_order: VecDeque<Vec<u8>> = VecDeque::new();
    let mut free: VecDeque<u8> = (0..=255u8).collect();
    let mut outstanding = 0usize;
    let mut t = Tally::default();
    let mut buf = [0u8; 4096];
    let mut rng = rand::rngs::StdRng::from_os_rng();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while !stopping && outstanding < window {
            let Some(id) = free.pop_front() else { break };
            let auth: [u8; 16] = rng.random();
            let expect_accept = rng.random_ratio(9, 10);
            let code = if expect_accept {
                otp.lock().unwrap().clone()
            } else {
                // Seven digits: well-formed (SxS is asked) but never a six-digit TOTP.
                "0000000".to_string()
            };
            let pw = encode_user_password(code.as_bytes(), &auth, SECRET.as_bytes()).unwrap();
            let bytes = encode_request(
                Code::AccessRequest,
                id,
                &auth,
                &[(attr::USER_NAME, b"soak"), (attr::USER_PASSWORD, &pw)],
                Some(SECRET.as_bytes()),
            )
            .unwrap();
            let _ = sock.send(&bytes).await;
            let retransmit_after = rng
                .random_ratio(retransmit_pct.min(100), 100)
                .then(|| Duration::from_micros(rng.random_range(0..50_000)));
            slots[usize::from(id)] = Some(Slot {
                bytes,
                auth,
                expect_accept,
                sent: Instant::now(),
                retransmit_after,
                retransmitted_at: None,
                answer: None,
            });
            outstanding += 1;
            t.distinct += 1;
        }
        if stopping && outstanding == 0 {
            return t;
        }
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(2), sock.recv(&mut buf)).await
        {
            let got = &buf[..n];
            let id = got.get(1).copied().unwrap_or(0);
            let previous = answered.contains(got);
            match slots[usize::from(id)].as_mut() {
                _ if previous => {
                    t.answers += 1;
                    t.duplicate_answers += 1;
                }
                None => t.wrong(format!(
                    "an answer for identifier {id}, which has no request (code {}, {} bytes)",
                    got.first().copied().unwrap_or(0),
                    got.len()
                )),
                Some(slot) => {
                    t.answers += 1;
                    match &slot.answer {
                        Some(first) => {
                            t.duplicate_answers += 1;
                            if first.as_slice() != got {
                                t.wrong(format!("id {id}: the retransmission got other bytes"));
                            }
                        }
                        None => match verify_response(got, &slot.auth, SECRET.as_bytes()) {
                            Err(e) => t.wrong(format!("id {id}: answer does not verify: {e}")),
                            Ok(p) => {
                                let want = if slot.expect_accept {
                                    Code::AccessAccept
                                } else {
                                    Code::AccessReject
                                };
                                if p.code() != want {
                                    t.wrong(format!("id {id}: {:?}, expected {want:?}", p.code()));
                                }
                                slot.answer = Some(got.to_vec());
                            }
                        },
                    }
                }
            }
        }
        let now = Instant::now();
        for id in 0..=255u8 {
            let Some(slot) = slots[usize::from(id)].as_mut() else {
                continue;
            };
            if let (Some(after), None) = (slot.retransmit_after, slot.retransmitted_at) {
                if now - slot.sent >= after {
                    let _ = sock.send(&slot.bytes).await;
                    slot.retransmitted_at = Some(now);
                    t.retransmitted += 1;
                }
            }
            let lost = slot.answer.is_none() && now - slot.sent > Duration::from_secs(5);
            if lost || slot.done(now) {
                if lost {
                    t.lost += 1;
                }
                if let Some(a) = slots[usize::from(id)].take().and_then(|s| s.answer) {
                    answered.insert(a.clone());
                    answered_order.push_back(a);
                    if answered_order.len() > 200_000 {
                        if let Some(old) = answered_order.pop_front() {
                            answered.remove(&old);
                        }
                    }
                }
                free.push_back(id);
                outstanding -= 1;
            }
        }
    }
}

/// Malformed datagrams from a socket of their own (the same configured client address):
/// random bytes, and valid requests with one byte changed (caught by the packet checks or
/// the Message-Authenticator). Returns how many answers came back: must be 0.
async fn malformed(
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    pct: u32,
    in_flight: usize,
    sent: Arc<AtomicU64>,
) -> u64 {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(target).await.unwrap();
    let mut rng = rand::rngs::StdRng::from_os_rng();
    let mut answers = 0u64;
    let mut buf = [0u8; 4096];
    // Roughly `pct` % of the valid traffic: a burst every millisecond.
    let burst = (in_flight as u64 * u64::from(pct)).div_ceil(100).max(1);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..burst {
            let pkt = if rng.random_bool(0.5) {
                let len = rng.random_range(0..120);
                (0..len).map(|_| rng.random::<u8>()).collect::<Vec<u8>>()
            } else {
                let auth: [u8; 16] = rng.random();
                let pw = encode_user_password(b"123456", &auth, SECRET.as_bytes()).unwrap();
                let mut p = encode_request(
                    Code::AccessRequest,
                    rng.random(),
                    &auth,
                    &[(attr::USER_NAME, b"soak"), (attr::USER_PASSWORD, &pw)],
                    Some(SECRET.as_bytes()),
                )
                .unwrap();
                let i = rng.random_range(0..p.len());
                p[i] ^= rng.random_range(1..=255u8);
                p
            };
            let _ = sock.send(&pkt).await;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), sock.recv(&mut buf)).await
        {
            answers += 1;
        }
    }
    // Late answers.
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await
    {
        answers += 1;
    }
    answers
}

/// A `/proc/PID/status` figure in KiB (`VmRSS:` current, `VmHWM:` peak).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Runs the real `sxs-radiusd` (`bin`, default: next to this binary) against `sim_url`, with
/// one client for 127.0.0.1 and `extra` (TOML sections) in its config. Gives the child, where
/// it listens, and its temporary directory.
fn spawn_radiusd(
    sim_url: &str,
    extra: &str,
    bin: Option<PathBuf>,
) -> (std::process::Child, SocketAddr, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "sxs-soak-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[sxs]\nservers = [\"{sim_url}\"]\norganization_id = \"1\"\ntimeout = \"10s\"\n{extra}\n[[radius.clients]]\nname = \"bench\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n",
    );
    let (child, target) = crate::launch_radiusd(
        bin,
        &dir.join("sxs.toml"),
        &text,
        |bin: &std::path::Path| Command::new(bin),
        "error",
        Stdio::inherit(),
    );
    (child, target, dir)
}
