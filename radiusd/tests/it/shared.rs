//! Several instances sharing Redis (`[shared] redis_url`): a real `redis-server` (Debian's
//! package) on a free loopback port, two real `sxs-radiusd` processes, the simulator's phone
//! calling the *other* instance back, and radclient judging the answer.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Identity, Method, Secret, Verdict};
use radiusd::approval::{Approval, ApprovalStore, ClaimError, CreateError, Pending, RedisStore};

use crate::harness::*;
use crate::push::{curl, free_port, phone, push_login};
use crate::radclient::{auth, radclient, Reply};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A throw-away `redis-server`: loopback, a free port, a temp dir, nothing saved; killed (by
/// PID) on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> RedisServer {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "redis-server is missing: apt-get install redis-server (scripts/install-test-deps.sh)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = RedisServer {
            child: Some(child),
            port,
            dir,
        };
        for _ in 0..400 {
            if server.ping() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on port {port} never answered PING");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }

    /// Every command Redis receives from now on, written to a file (redis-cli MONITOR).
    fn monitor(&self) -> Monitor {
        let path = self.dir.path().join("monitor.log");
        let child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "monitor"])
            .stdout(std::fs::File::create(&path).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = Monitor { child, path };
        // MONITOR prints OK once it is on.
        for _ in 0..200 {
            if m.text().contains("OK") {
                return m;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-cli monitor did not start");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Monitor {
    child: Child,
    path: std::path::PathBuf,
}

impl Monitor {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Instance config: HTTP on `listen_port`, callbacks sent to `public_port` (another instance's
/// listener, to make SxS call the other one), the shared Redis.
fn shared_config(
    sim: &Sim,
    redis_url: &str,
    listen_port: u16,
    public_port: u16,
    timeout: &str,
    radius_extra: &str,
) -> String {
    config_text(
        &sim.url(),
        &format!("methods = [\"otp\", \"push\"]\n{radius_extra}"),
        None,
    ) + &format!(
        "[http]\nlisten = [\"127.0.0.1:{listen_port}\"]\nallow_plain_loopback = true\n\
         public_url = \"http://127.0.0.1:{public_port}\"\ncallback_key = \"0123456789abcdef-callback\"\n\
         [push]\ntimeout = \"{timeout}\"\n[shared]\nredis_url = \"{redis_url}\"\n"
    )
}

fn code(reply: &Reply) -> &str {
    reply.code.as_deref().unwrap_or("no answer")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn pending(id: &str, user: &str, expires_at: u64) -> Pending {
    Pending {
        id: id.into(),
        method: Method::Push,
        identity: Identity {
            user: user.into(),
            token_sn: Some("2000038250".into()),
            user_id: Some(user.into()),
        },
        origin: "nas".into(),
        expires_at,
    }
}

/// The store itself, two connections standing for two instances: claimed exactly once by
/// either, completion on one wakes the waiter on the other (also when it was announced before
/// the waiter looked), limits counted across both, timeouts and expiry, State single use.
#[test]
fn the_store_completes_once_across_instances_and_keeps_limits() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = Secret::from(redis.url());
        let a = ApprovalStore::Redis(RedisStore::connect(&url, 2, 3).await.unwrap());
        let b = ApprovalStore::Redis(RedisStore::connect(&url, 2, 3).await.unwrap());
        let t = now();
        let ok = Approval::Checked(Verdict::Accept {
            token_sn: "2000038250".into(),
            user_id: "alice".into(),
        });

        // Completed on B before A waits: the result is not lost.
        let w = a.create(pending("p1", "alice", t + 30), t).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            b.create(pending("p1", "bob", t + 30), t).await.unwrap_err(),
            CreateError::Exists,
            "an id waiting on A is taken on B too"
        );
        assert_eq!(b.claim("nope", t).await, Err(ClaimError::Unknown));
        assert_eq!(b.claim("p1", t).await, Ok(pending("p1", "alice", t + 30)));
        assert_eq!(a.claim("p1", t).await, Err(ClaimError::AlreadyCompleted));
        assert_eq!(b.claim("p1", t).await, Err(ClaimError::AlreadyCompleted));
        b.finish("p1", ok.clone()).await.unwrap();
        assert_eq!(w.wait(Duration::from_secs(10)).await, Ok(Some(ok.clone())));
        assert!(a.is_empty());
        assert_eq!(
            b.claim("p1", t).await,
            Err(ClaimError::Unknown),
            "forgotten"
        );

        // Completed on B while A waits: woken by the subscription.
        let w = a.create(pending("p2", "bob", t + 30), t).await.unwrap();
        let waiting = tokio::spawn(w.wait(Duration::from_secs(20)));
        b.claim("p2", t).await.unwrap();
        b.finish("p2", Approval::Denied).await.unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(Some(Approval::Denied)));

        // Limits count both instances' entries.
        let _c1 = a.create(pending("l1", "carol", t + 30), t).await.unwrap();
        let _c2 = b.create(pending("l2", "carol", t + 30), t).await.unwrap();
        assert!(matches!(
            a.create(pending("l3", "carol", t + 30), t).await,
            Err(CreateError::UserLimit { limit: 2, .. })
        ));
        let _d = b.create(pending("l4", "dave", t + 30), t).await.unwrap();
        assert!(matches!(
            a.create(pending("l5", "erin", t + 30), t).await,
            Err(CreateError::Full { limit: 3 })
        ));
        // Entries past their expiry no longer count (l1, l2, l4 expire at t + 30).
        let _e = a
            .create(pending("l6", "erin", t + 200), t + 100)
            .await
            .unwrap();
        let _f = b
            .create(pending("l7", "frank", t + 200), t + 100)
            .await
            .unwrap();

        // A waiter that times out forgets its entry: a late callback finds nothing.
        let w = b
            .create(pending("t1", "gina", t + 300), t + 100)
            .await
            .unwrap();
        assert_eq!(w.wait(Duration::from_millis(50)).await, Ok(None));
        assert_eq!(a.claim("t1", t + 100).await, Err(ClaimError::Unknown));

        // Claimed after its expiry (still in Redis for its last second): refused as expired.
        let _w = a
            .create(pending("e1", "hank", t + 101), t + 100)
            .await
            .unwrap();
        assert_eq!(b.claim("e1", t + 105).await, Err(ClaimError::Expired));
        drop((_c1, _c2, _d));

        // A challenge State's nonce is redeemed once across instances.
        let (ApprovalStore::Redis(ra), ApprovalStore::Redis(rb)) = (&a, &b) else {
            unreachable!()
        };
        assert_eq!(ra.redeem_state(&[7; 16], t + 60, t).await, Ok(true));
        assert_eq!(rb.redeem_state(&[7; 16], t + 60, t).await, Ok(false));
        assert_eq!(ra.redeem_state(&[7; 16], t + 60, t).await, Ok(false));
        assert_eq!(rb.redeem_state(&[8; 16], t + 60, t).await, Ok(true));
        assert!(format!("{ra:?}").contains("127.0.0.1"));
    });
}

/// The issue's scenario: the push starts on A, SxS calls B back, the login on A completes with
/// Access-Accept; the same callback replayed to A (and B) is refused and changes nothing; what
/// went to Redis holds no OTP and no callback signature.
#[test]
fn push_started_on_a_completes_through_b_and_a_replay_is_refused() {
    let sim = Sim::start();
    let redis = RedisServer::start();
    let monitor = redis.monitor();
    let (pa, pb) = (free_port(), free_port());
    let a = Radiusd::start(
        &shared_config(&sim, &redis.url(), pa, pb, "20s", ""),
        "127.0.0.1:0",
    );
    let b = Radiusd::start(
        &shared_config(&sim, &redis.url(), pb, pb, "20s", ""),
        "127.0.0.1:0",
    );
    let (id, login) = push_login(&a, &sim, "alice");
    let record = sim.handle.pending_pushes("alice").remove(0);
    assert!(
        record
            .callback
            .starts_with(&format!("http://127.0.0.1:{pb}/push/callback/")),
        "the callback goes to B: {}",
        record.callback
    );
    let answered = phone(&sim, &id, "approve", "");
    assert!(answered.contains("[200]"), "{answered}");
    let reply = login.join().unwrap();
    assert_eq!(
        code(&reply),
        "Access-Accept",
        "{}\n{}",
        reply.output,
        a.logs()
    );
    b.wait_for_log("push callback");
    assert!(
        b.logs().contains("user=\"alice\""),
        "B completed it:\n{}",
        b.logs()
    );
    assert!(!a.logs().contains("push callback"), "{}", a.logs());

    // The same callback replayed, to A and to B: refused before SxS is asked.
    let validated = sim.handle.stats().validate_otp;
    let otp = sim.otp("alice");
    for port in [pa, pb] {
        let url = record
            .callback
            .replace(&format!("127.0.0.1:{pb}/"), &format!("127.0.0.1:{port}/"));
        let (body, status) = curl(&[
            "-X",
            "POST",
            &url,
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!("{{\"result\": \"approved\", \"otp\": \"{otp}\"}}"),
        ]);
        assert!(
            status == "404" || status == "409",
            "replay to {port}: {status} {body}"
        );
    }
    assert_eq!(sim.handle.stats().validate_otp, validated);
    assert_eq!(sim.handle.stats().start_push, 1);

    // Nothing secret reached Redis: no OTP, no callback signature, no field named otp.
    let sent = monitor.text();
    assert!(sent.contains("sxs:approval:"), "{sent}");
    let sig = record.callback.split("sig=").nth(1).unwrap();
    for secret in [otp.as_str(), sig, "otp\\\"", "0123456789abcdef-callback"] {
        assert!(!sent.contains(secret), "{secret:?} sent to Redis:\n{sent}");
    }
    for logs in [a.logs(), b.logs()] {
        assert!(!logs.contains("sig="), "{logs}");
    }
}

/// The challenge State's single use is shared: issued by A, redeemed on B once, then refused
/// on A (before SxS is asked) although the State is still valid and the OTP is fresh.
#[test]
fn a_challenge_state_is_redeemed_once_across_instances() {
    let sim = Sim::start();
    let redis = RedisServer::start();
    let (pa, pb) = (free_port(), free_port());
    let extra = "mode = \"challenge\"\n";
    let a = Radiusd::start(
        &shared_config(&sim, &redis.url(), pa, pa, "20s", extra),
        "127.0.0.1:0",
    );
    let b = Radiusd::start(
        &shared_config(&sim, &redis.url(), pb, pb, "20s", extra),
        "127.0.0.1:0",
    );
    let first = auth(&a.target(), "alice", "x");
    assert_eq!(code(&first), "Access-Challenge", "{}", first.output);
    let state = first.attr("State").expect("State");
    let with_state = |r: &Radiusd, otp: &str| {
        radclient(
            &r.target(),
            "auth",
            SECRET,
            &format!("User-Name = \"alice\"\nUser-Password = \"{otp}\"\nState = {state}\nMessage-Authenticator = 0x00\n"),
        )
    };
    let reply = with_state(&b, &sim.otp("alice"));
    assert_eq!(code(&reply), "Access-Accept", "{}", reply.output);
    // A fresh OTP, so only the State can be the reason for the refusal.
    sim.handle.advance_time(30);
    let validated = sim.handle.stats().validate_otp;
    let reply = with_state(&a, &sim.otp("alice"));
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    a.wait_for_log("State has already been used");
    assert_eq!(sim.handle.stats().validate_otp, validated);
}

/// Redis killed while a login waits: the login is refused at once (well inside radclient's
/// 15 s, while the push timeout is 60 s) with a clear log line; later logins are refused too
/// (a push cannot be registered, a State cannot be marked used), never accepted.
#[test]
fn redis_killed_while_a_login_waits_rejects_with_a_clear_log_line() {
    let sim = Sim::start();
    let mut redis = RedisServer::start();
    let pa = free_port();
    let a = Radiusd::start(
        &shared_config(&sim, &redis.url(), pa, pa, "60s", ""),
        "127.0.0.1:0",
    );
    let (_id, login) = push_login(&a, &sim, "alice");
    redis.kill();
    let reply = login.join().unwrap();
    assert_eq!(
        code(&reply),
        "Access-Reject",
        "{}\n{}",
        reply.output,
        a.logs()
    );
    a.wait_for_log("the approval store failed while the login waited");
    a.wait_for_log("decision=\"push-store-unavailable\"");
    // With Redis gone: a new push is refused, and a State cannot be redeemed.
    let reply = crate::radclient::radclient_opts(
        &a.target(),
        "auth",
        SECRET,
        "User-Name = \"bob\"\nUser-Password = \"push\"\nMessage-Authenticator = 0x00\n",
        &["-t", "15", "-r", "1"],
    );
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
    a.wait_for_log("push refused");
    assert_eq!(
        sim.handle.stats().start_push,
        1,
        "no push without the store"
    );
}

/// Redis unreachable at start: the daemon refuses to start and `--check-config` says so,
/// naming the key, without printing the URL's password.
#[test]
fn redis_down_at_start_is_a_clear_error() {
    let sim = Sim::start();
    let closed = free_port();
    let text = shared_config(
        &sim,
        &format!("redis://:hunter2-redis-pw@127.0.0.1:{closed}/0"),
        free_port(),
        free_port(),
        "20s",
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sxs.toml");
    write_config(&path, &text);
    let bin = env!("CARGO_BIN_EXE_sxs-radiusd");
    let run = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(!run.status.success(), "{err}");
    assert!(err.contains("shared.redis_url"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    let check_config = || {
        let check = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&check.stdout).to_string();
        (check.status.code(), out)
    };
    let (status, out) = check_config();
    assert_eq!(status, Some(1), "{out}");
    assert!(out.contains("shared DOWN key `shared.redis_url`"), "{out}");
    for text in [&err, &out] {
        assert!(!text.contains("hunter2-redis-pw"), "password shown: {text}");
    }
    // Reachable: --check-config says ok.
    let redis = RedisServer::start();
    write_config(
        &path,
        &shared_config(&sim, &redis.url(), free_port(), free_port(), "20s", ""),
    );
    let (status, out) = check_config();
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("shared ok"), "{out}");
}

/// Password then OTP by challenge (`password_otp = "challenge"`, LDAP first factor): the
/// password reaches instance A, the OTP instance B, and B's Accept carries the groups' reply
/// attributes A found — kept in Redis under the State, taken once, nothing secret in it.
#[test]
fn a_password_on_a_and_the_otp_on_b_get_the_groups_attributes() {
    use crate::peers::{Slapd, BASE};
    let slapd = Slapd::start();
    let sim = Sim::start();
    let redis = RedisServer::start();
    let section = format!(
        "[[radius.reply]]\ngroup = \"vpn-admins\"\nattributes = {{ \"Filter-Id\" = \"admin-acl\" }}\n\
         [[radius.clients]]\nname = \"vpn1\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n\
         first_factor = \"ldap\"\npassword_otp = \"challenge\"\n\
         [first_factor.ldap]\nca_file = \"{}\"\nurls = [\"ldaps://127.0.0.1:{}\"]\n\
         bind_dn = \"uid={{user}},ou=people,{BASE}\"\ngroup_attribute = \"seeAlso\"\n\
         [shared]\nredis_url = \"{}\"\n",
        slapd.ca.display(),
        slapd.ldaps_port,
        redis.url()
    );
    let text = config_text(&sim.url(), "", Some("")) + &section;
    let a = Radiusd::start(&text, "127.0.0.1:0");
    let b = Radiusd::start(&text, "127.0.0.1:0");
    let monitor = redis.monitor();
    let first = auth(&a.target(), "alice", "alice-pw");
    assert_eq!(
        code(&first),
        "Access-Challenge",
        "{}\n{}",
        first.output,
        a.logs()
    );
    let state = first.attr("State").expect("State");
    let follow = |r: &Radiusd, otp: &str| {
        radclient(
            &r.target(),
            "auth",
            SECRET,
            &format!("User-Name = \"alice\"\nUser-Password = \"{otp}\"\nState = {state}\nMessage-Authenticator = 0x00\n"),
        )
    };
    let reply = follow(&b, &sim.otp("alice"));
    assert_eq!(
        code(&reply),
        "Access-Accept",
        "{}\n{}",
        reply.output,
        b.logs()
    );
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("admin-acl"));
    let seen = monitor.text();
    assert!(seen.contains("\"sxs:passed:"), "{seen}");
    assert!(
        !seen.contains("alice-pw") && !seen.contains(&sim.otp("alice")),
        "a secret reached Redis: {seen}"
    );
    // Taken once: the same State again is refused (and would find nothing kept).
    sim.handle.advance_time(30);
    let reply = follow(&a, &sim.otp("alice"));
    assert_eq!(code(&reply), "Access-Reject", "{}", reply.output);
}
