//! The recipes in docs/radiusd.md ("What real peers taught us"), run as written against the
//! real peers: FreeRADIUS proxying to sxs-radiusd, and pam_radius_auth on a Linux host.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::peers::*;
use crate::radclient::radclient;

fn example(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

/// examples/vpn/freeradius-proxy/: FreeRADIUS's `home_server` pointing at sxs-radiusd. A NAS
/// (radclient) asks FreeRADIUS; FreeRADIUS proxies; sxs-radiusd asks SxS. FreeRADIUS signs
/// what it proxies, so sxs-radiusd keeps requiring a Message-Authenticator.
#[test]
fn freeradius_proxies_to_sxs_radiusd_with_the_example_home_server() {
    let sim = Sim::start();
    let proxy_secret = "freeradius-to-sxs-secret";
    let r = Radiusd::start(
        &config_text(
            &sim.url(),
            "",
            Some(&format!(
                "[[radius.clients]]\nname = \"freeradius\"\naddress = \"127.0.0.1\"\nsecret = \"{proxy_secret}\"\n"
            )),
        ),
        "127.0.0.1:0",
    );
    let proxy = example("examples/vpn/freeradius-proxy/proxy.conf")
        .replace("port = 1812", &format!("port = {}", r.addr.port()))
        .replace("CHANGE-ME-sxs-shared-secret", proxy_secret);
    let authorize = example("examples/vpn/freeradius-proxy/authorize.conf");
    let fr = FreeRadius::start_full(
        "",
        &format!("proxy_requests = yes\n{proxy}"),
        &authorize,
        "",
    );
    let ask = |otp: &str| {
        radclient(
            &fr.addr(),
            "auth",
            UPSTREAM_SECRET,
            &format!(
                "User-Name = \"alice\"\nUser-Password = \"{otp}\"\nMessage-Authenticator = 0x00\n"
            ),
        )
    };
    let reply = ask(&sim.otp("alice"));
    assert_eq!(
        reply.code.as_deref(),
        Some("Access-Accept"),
        "{}\n{}\n{}",
        reply.output,
        r.logs(),
        fr.log()
    );
    let reply = ask("000000");
    assert_eq!(reply.code.as_deref(), Some("Access-Reject"), "{}", fr.log());
    assert_eq!(sim.handle.stats().validate_otp, 2);
    assert!(
        !r.logs().contains("it has no Message-Authenticator"),
        "{}",
        r.logs()
    );
}

fn pamtester(pam_dir: &Path, service: &str, user: &str, typed: &str) -> (bool, String) {
    for (bin, pkg) in [
        ("/usr/bin/pamtester", "pamtester"),
        ("/usr/bin/bwrap", "bubblewrap"),
        (
            "/lib/x86_64-linux-gnu/security/pam_radius_auth.so",
            "libpam-radius-auth",
        ),
    ] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: apt-get install {pkg} (scripts/install-test-deps.sh)"
        );
    }
    // A private /etc/pam.d (bubblewrap), so the machine's own login paths are never touched.
    let mut child = Command::new("bwrap")
        .args(["--bind", "/", "/", "--dev", "/dev", "--die-with-parent"])
        .arg("--bind")
        .arg(pam_dir)
        .arg("/etc/pam.d")
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
        .write_all(typed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// examples/vpn/pam_radius_auth/: a Linux host asking sxs-radiusd through pam_radius_auth 2.0
/// (Debian 12), which sends no Message-Authenticator.
#[test]
fn pam_radius_auth_on_a_linux_host_as_the_recipe_says() {
    let sim = Sim::start();
    let strict = Radiusd::start(
        &config_text(&sim.url(), "mode = \"challenge\"", None),
        "127.0.0.1:0",
    );
    let dir = tempfile::tempdir().unwrap();
    let pam_dir = dir.path().join("pam.d");
    std::fs::create_dir(&pam_dir).unwrap();
    let conf = dir.path().join("pam_radius_auth.conf");
    let write_conf = |r: &Radiusd| {
        let text = example("examples/vpn/pam_radius_auth/pam_radius_auth.conf")
            .replace("127.0.0.1:1812", &format!("127.0.0.1:{}", r.addr.port()))
            .replace("CHANGE-ME-sxs-shared-secret", SECRET);
        write_config(&conf, &text);
    };
    let service = |name: &str, lines: &str| {
        std::fs::write(
            pam_dir.join(name),
            lines.replace("/etc/pam_radius_auth.conf", &conf.display().to_string()),
        )
        .unwrap();
    };
    let safe = example("examples/vpn/pam_radius_auth/pam.d-sxs-radius");
    service("sxs-radius-safe", &safe);
    // The line this recipe warns about: `sufficient`, then a module that lets people in.
    service(
        "sxs-radius-sufficient",
        "auth sufficient pam_radius_auth.so conf=/etc/pam_radius_auth.conf\nauth required pam_permit.so\naccount required pam_permit.so\n",
    );

    // Default sxs-radiusd client: pam_radius_auth's requests are dropped, and the log says why.
    write_conf(&strict);
    let (ok, out) = pamtester(&pam_dir, "sxs-radius-safe", "alice", "x\n");
    assert!(!ok, "{out}");
    strict.wait_for_log("it has no Message-Authenticator and this client requires one");
    // With `sufficient`, the silent drop falls through to the next module: in without an OTP.
    let (ok, out) = pamtester(&pam_dir, "sxs-radius-sufficient", "alice", "x\n");
    assert!(
        ok,
        "pam_permit after a dropped `sufficient` lets the user in: {out}"
    );
    assert_eq!(sim.handle.stats().validate_otp, 0);
    drop(strict);

    // As the recipe says: this client without Message-Authenticator, on a trusted network.
    let r = Radiusd::start(
        &config_text(
            &sim.url(),
            "mode = \"challenge\"",
            Some(&format!(
                "[[radius.clients]]\nname = \"linux-host\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nrequire_message_authenticator = false\n"
            )),
        ),
        "127.0.0.1:0",
    );
    write_conf(&r);
    let (ok, out) = pamtester(
        &pam_dir,
        "sxs-radius-safe",
        "alice",
        &format!("anything\n{}\n", sim.otp("alice")),
    );
    assert!(ok, "{out}\n{}", r.logs());
    // The challenge prompt ends in ": ", so what the user types is not glued to it.
    assert!(out.contains("Enter your one-time password: "), "{out}");
    sim.handle.advance_time(30);
    let (ok, out) = pamtester(&pam_dir, "sxs-radius-safe", "alice", "anything\n000000\n");
    assert!(!ok, "{out}");
    assert_eq!(sim.handle.stats().validate_otp, 2);
}
