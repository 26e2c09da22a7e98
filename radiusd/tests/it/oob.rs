//! Out-of-band login: the waiting login's challenge answered by "the app" (curl) at the
//! DP4Mobile endpoint, over real HTTP, validated against the simulator; the answer checked
//! against the DP4Mobile DTD by xmllint.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::config::{Config, LoadOptions};
use common::{Identity, SxsClient, Verdict};
use radiusd::approval::{Approval, ApprovalStore, CallbackSigner, MemoryStore};
use radiusd::handler::SystemUnixClock;
use radiusd::http::Door;

use crate::harness::*;

/// The DTD of the DP4Mobile answer (PROTOCOL.md §2: retCode and message required, serverTime
/// optional).
const DTD: &str = "<!ELEMENT DP4Mobile EMPTY>\n<!ATTLIST DP4Mobile retCode CDATA #REQUIRED message CDATA #REQUIRED serverTime CDATA #IMPLIED>\n";

struct App {
    rt: tokio::runtime::Runtime,
    store: ApprovalStore,
    base: String,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn app(sim: &Sim) -> App {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cfg = Config::from_toml_str(
        &format!(
            "[sxs]\nservers = [\"{}\"]\norganization_id = \"1\"\n[http]\nlisten = [\"127.0.0.1:0\"]\nallow_plain_loopback = true\npublic_url = \"http://127.0.0.1:1\"\ncallback_key = \"0123456789abcdef-callback\"\n",
            sim.url()
        ),
        "<test>",
        LoadOptions { env_overrides: false },
    )
    .unwrap();
    let http = cfg.http.clone().unwrap();
    let client = Arc::new(SxsClient::new(&cfg.sxs).unwrap());
    let store = ApprovalStore::Memory(MemoryStore::new(3, 100));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let base = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let door = Arc::new(Door {
            verifier: Box::new(move || client.clone()),
            store: store.clone(),
            signer: CallbackSigner::new(http.callback_key.expose()),
            clock: Arc::new(SystemUnixClock),
            settings: http,
        });
        tokio::spawn(door.serve(listener, None, stop_rx));
        format!("http://{addr}")
    });
    App {
        rt,
        store,
        base,
        _stop: stop,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn alice(token_sn: Option<&str>) -> Identity {
    Identity {
        user: "alice".into(),
        token_sn: token_sn.map(str::to_string),
        user_id: Some("alice".into()),
    }
}

/// `curl` as the app: returns (HTTP status, body).
fn call(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

/// Checks `xml` against the DP4Mobile DTD with xmllint; returns its retCode.
fn dtd_valid(xml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let dtd = dir.path().join("dp4mobile.dtd");
    std::fs::write(&dtd, DTD).unwrap();
    let doc = dir.path().join("answer.xml");
    std::fs::write(&doc, xml).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--dtdvalid"])
        .arg(&dtd)
        .arg(&doc)
        .output()
        .expect("xmllint (libxml2-utils, scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "not valid against the DP4Mobile DTD: {xml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let time = xml
        .split("serverTime=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(time.ends_with('Z'), "serverTime in GMT: {time}");
    humantime::parse_rfc3339(time).unwrap();
    xml.split("retCode=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_apps_response_completes_the_waiting_login_once() {
    let sim = Sim::start();
    let a = app(&sim);
    let (challenge, waiter) =
        a.rt.block_on(radiusd::oob::start(
            &a.store,
            alice(None),
            "sshd",
            Duration::from_secs(30),
            now(),
        ))
        .unwrap();
    assert_eq!(challenge.len(), radiusd::oob::CHALLENGE_DIGITS);
    let mac = sim.handle.mac("alice", &challenge).unwrap();
    let url = format!(
        "{}/dp4mobile?serialNumber=2000038250&sequenceNumber=01&otp={mac}&challenge={challenge}&platformName=Android",
        a.base
    );
    let (status, body) = call(&[&url]);
    assert_eq!(status, "200", "{body}");
    assert_eq!(dtd_valid(&body), "0", "{body}");
    assert!(body.contains("message=\"Operation Successful\""), "{body}");
    match a.rt.block_on(waiter.wait(Duration::from_secs(5))) {
        Ok(Some(Approval::Checked(Verdict::Accept { user_id, .. }))) => {
            assert_eq!(user_id, "alice")
        }
        other => panic!("{other:?}"),
    }
    // The same response again: no login waits for it any more.
    let (_, body) = call(&[&url]);
    assert_eq!(dtd_valid(&body), "2", "{body}");
    assert_eq!(sim.handle.stats().validate_mac, 1);
}

#[test]
fn wrong_responses_other_authenticators_and_bad_input_never_accept() {
    let sim = Sim::start();
    let a = app(&sim);
    // A wrong response (POST, form body): rejected, and the waiting login fails.
    let (challenge, waiter) =
        a.rt.block_on(radiusd::oob::start(
            &a.store,
            alice(None),
            "sshd",
            Duration::from_secs(30),
            now(),
        ))
        .unwrap();
    let wrong = if sim.handle.mac("alice", &challenge).unwrap() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body) = call(&[
        "-X",
        "POST",
        "-d",
        &format!("serialNumber=2000038250&otp={wrong}&challenge={challenge}"),
        &format!("{}/dp4mobile", a.base),
    ]);
    assert_eq!(status, "200");
    assert_eq!(dtd_valid(&body), "1", "{body}");
    assert!(matches!(
        a.rt.block_on(waiter.wait(Duration::from_secs(5))),
        Ok(Some(Approval::Checked(Verdict::Reject { .. })))
    ));
    // The right response from another authenticator than the user's enrolled one.
    let (challenge, waiter) =
        a.rt.block_on(radiusd::oob::start(
            &a.store,
            alice(Some("2000038250")),
            "sshd",
            Duration::from_secs(30),
            now(),
        ))
        .unwrap();
    let mac = sim.handle.mac("alice", &challenge).unwrap();
    let (_, body) = call(&[&format!(
        "{}/dp4mobile?serialNumber=9999999999&otp={mac}&challenge={challenge}",
        a.base
    )]);
    assert_eq!(dtd_valid(&body), "1", "{body}");
    assert!(matches!(
        a.rt.block_on(waiter.wait(Duration::from_secs(5))),
        Ok(Some(Approval::Checked(Verdict::Reject { .. })))
    ));
    // Malformed fields: 400, retCode 4, nothing asked.
    for q in [
        "serialNumber=2000038250&otp=zz&challenge=12345678",
        "serialNumber=2000038250&otp=123456&challenge=12ab",
        "serialNumber=bad%20serial&otp=123456&challenge=12345678",
        "otp=123456&challenge=12345678",
    ] {
        let (status, body) = call(&[&format!("{}/dp4mobile?{q}", a.base)]);
        assert_eq!(status, "400", "{q}: {body}");
        assert_eq!(dtd_valid(&body), "4", "{body}");
    }
    // No login waiting for that challenge.
    let (_, body) = call(&[&format!(
        "{}/dp4mobile?serialNumber=2000038250&otp=123456&challenge=12345678",
        a.base
    )]);
    assert_eq!(dtd_valid(&body), "2", "{body}");
    assert_eq!(
        sim.handle.stats().validate_mac,
        1,
        "only the wrong response reached SxS"
    );
}
