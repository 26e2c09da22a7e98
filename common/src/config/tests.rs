use super::*;
use crate::method::Methods;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

const MIN: &str = r#"
[sxs]
servers = ["http://127.0.0.1:8442"]
organization_id = "1"
"#;

fn no_env() -> LoadOptions {
    LoadOptions {
        env_overrides: false,
    }
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn err_of(text: &str) -> String {
    Config::from_toml_str(text, "test.toml", no_env())
        .unwrap_err()
        .to_string()
}

#[test]
fn minimal_file_gets_defaults() {
    let c = Config::from_toml_str(MIN, "test.toml", no_env()).unwrap();
    assert_eq!(c.sxs.auth_path, "/SxSWS/SxS5Authentication");
    assert_eq!(c.sxs.organization_header, "OrganizationId");
    assert_eq!(c.sxs.application_profile, "OTP_APP");
    assert_eq!(c.sxs.timeout, Duration::from_secs(5));
    assert_eq!(c.sxs.connect_timeout, Duration::from_secs(2));
    assert_eq!(c.policy.failmode, FailMode::Secure);
    assert_eq!(c.policy.unenrolled, Unenrolled::Deny);
    assert_eq!(c.identity.send, SendIdentity::UserId);
    assert!(c.identity.strip_realm && c.identity.lowercase);
    assert!(c.radius.is_none());
    assert_eq!(c.sxs.max_connections, ConnectionLimit::Auto);
}

#[test]
fn max_connections_is_a_count_or_auto() {
    let with = |v: &str| format!("{MIN}max_connections = {v}\n");
    let c = Config::from_toml_str(&with("64"), "test.toml", no_env()).unwrap();
    assert_eq!(c.sxs.max_connections, ConnectionLimit::Fixed(64));
    let c = Config::from_toml_str(&with("\"auto\""), "test.toml", no_env()).unwrap();
    assert_eq!(c.sxs.max_connections, ConnectionLimit::Auto);
    for bad in ["0", "\"many\"", "-3"] {
        let e = err_of(&with(bad));
        assert!(
            e.contains("sxs.max_connections") && e.contains("test.toml"),
            "{bad}: {e}"
        );
    }
}

/// The shipped example parses, with its file paths pointed at a scratch directory.
#[test]
fn shipped_example_parses() {
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sxs.toml"))
            .unwrap();
    let text = example.replace("/etc/sxs/", &format!("{}/", dir.path().display()));
    write(dir.path(), "vpn1.secret", "a-long-shared-secret\n", 0o600);
    write(
        dir.path(),
        "state.key",
        "0123456789abcdef0123456789abcdef",
        0o600,
    );
    write(dir.path(), "tokens.map", "alice 2000038252\n", 0o644);
    write(
        dir.path(),
        "callback.key",
        "0123456789abcdef0123456789abcdef",
        0o600,
    );
    write(
        dir.path(),
        "http.key",
        "not read when the config is loaded",
        0o600,
    );
    write(dir.path(), "ldap.secret", "service-password\n", 0o600);
    write(dir.path(), "upstream.secret", "upstream-secret\n", 0o600);
    write(dir.path(), "ldap-ca.pem", "(a CA certificate)\n", 0o644);
    let path = write(dir.path(), "sxs.toml", &text, 0o640);
    let c = Config::load(&path, no_env()).unwrap();
    assert_eq!(c.sxs.servers.len(), 2);
    let r = c.radius.unwrap();
    assert_eq!(r.clients[0].secret.expose(), b"a-long-shared-secret");
    assert!(r.clients[0].require_message_authenticator);
    assert_eq!(r.listen.len(), 2);
    assert_eq!(r.reject_delay, Duration::from_secs(1));
    assert_eq!(
        c.pam.prompt_for("sudo"),
        Some("OTP for sudo (or press Enter for a code by SMS): ")
    );
    assert_eq!(c.pam.methods_for("sudo").to_string(), "otp,sms");
    let gw = &r.clients[1];
    assert_eq!(
        (gw.first_factor, &gw.password_otp),
        (FirstFactorKind::Ldap, &PasswordOtp::Challenge)
    );
    assert_eq!(r.reply.len(), 2);
    assert_eq!(
        r.reply[0].attributes.len(),
        5,
        "a list sends the attribute twice"
    );
    let ldap = c.first_factor.ldap.as_ref().unwrap();
    assert_eq!(ldap.groups, LdapGroups::Attribute("memberOf".into()));
    assert!(
        matches!(&ldap.bind, LdapBind::Search { service_password, .. } if service_password.expose() == b"service-password")
    );
    let up = c.first_factor.radius.as_ref().unwrap();
    assert_eq!(up.secret.expose(), b"upstream-secret");
    assert!(up.require_message_authenticator);
    let h = c.http.unwrap();
    assert_eq!(h.public_url.as_str(), "https://auth.example.com:8443/");
    assert_eq!(c.push.timeout, Duration::from_secs(25));
    // No [pam] prompt: pam_sxs's default, which names the methods allowed.
    assert_eq!(c.pam.prompt_for("sshd"), None);
    assert_eq!(
        c.pam.failmode_for("sshd", FailMode::Safe),
        FailMode::Safe,
        "no [pam] failmode: the caller's default"
    );
}

#[test]
fn unknown_keys_are_named() {
    let e = err_of(&format!("{MIN}\ntimeoutt = \"1s\"\n"));
    assert!(e.contains("test.toml") && e.contains("timeoutt"), "{e}");
    let e = err_of(&format!("{MIN}\n[polcy]\nfailmode = \"safe\"\n"));
    assert!(e.contains("polcy"), "{e}");
}

#[test]
fn bad_values_name_key_and_file() {
    for (text, key, what) in [
        (MIN.replace("\"1\"", "\"1\"\ntimeout = \"5 parsecs\""), "sxs.timeout", "duration"),
        (MIN.replace("http://127.0.0.1:8442", "ftp://x"), "sxs.servers[0]", "http"),
        (MIN.replace("servers = [\"http://127.0.0.1:8442\"]", "servers = []"), "sxs.servers", "at least one"),
        (format!("{MIN}[policy]\nfailmode = \"open\"\n"), "policy.failmode", "secure"),
        (format!("{MIN}[policy]\nunenrolled = \"maybe\"\n"), "policy.unenrolled", "deny"),
        (format!("{MIN}[identity]\nsend = \"token_sn\"\n"), "identity.token_map", "required"),
        (format!("{MIN}[radius]\nmode = \"challenge\"\n"), "radius.state_key_file", "required"),
        (format!("{MIN}[radius]\nstate_key = \"short\"\n"), "radius.state_key", "16 bytes"),
        (format!("{MIN}[radius]\nlisten = [\"1812\"]\n"), "radius.listen[0]", "address"),
        (format!("{MIN}[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.300\"\nsecret = \"0123456789\"\n"), "radius.clients[0].address", "CIDR"),
        (format!("{MIN}[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"12345678\"\n"), "radius.clients[0].secret", "more than 8"),
        (format!("{MIN}[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\n"), "radius.clients[0].secret_file", "needs"),
        (format!("{MIN}[pam.service.sudo]\nfailmode = \"x\"\n"), "pam.service.sudo.failmode", "secure"),
        (format!("{MIN}[radius]\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\nfirst_factor = \"kerberos\"\n"), "radius.clients[0].first_factor", "ldap"),
        (format!("{MIN}[radius]\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\nfirst_factor = \"ldap\"\n"), "radius.clients[0].first_factor", "[first_factor.ldap]"),
        (format!("{MIN}[radius]\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\npassword_otp = \"append\"\n"), "radius.clients[0].password_otp", "only meaningful"),
        (format!("{MIN}[radius]\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\nfirst_factor = \"radius\"\n[first_factor.radius]\nservers = [\"10.0.0.5:1812\"]\nsecret = \"s3cret-upstream\"\n"), "radius.state_key_file", "challenge"),
        (format!("{MIN}[radius]\nstate_key = \"0123456789abcdef\"\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\nfirst_factor = \"radius\"\npassword_otp = \"append\"\notp_digits = 2\n[first_factor.radius]\nservers = [\"10.0.0.5:1812\"]\nsecret = \"s3cret-upstream\"\n"), "radius.clients[0].otp_digits", "4 to 10"),
        (format!("{MIN}[radius]\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.1\"\nsecret = \"0123456789\"\n[[radius.clients]]\nname = \"a\"\naddress = \"10.0.0.2\"\nsecret = \"0123456789\"\n"), "radius.clients[1].name", "used twice"),
        (format!("{MIN}[first_factor.radius]\nservers = [\"10.0.0.5\"]\nsecret = \"s3cret-upstream\"\n"), "first_factor.radius.servers[0]", "host:port"),
        (format!("{MIN}[first_factor.radius]\nservers = [\"10.0.0.5:1812\"]\n"), "first_factor.radius.secret_file", "required"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"http://x\"]\nbind_dn = \"uid={{user}}\"\n"), "first_factor.ldap.urls[0]", "ldaps://"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldaps://x\"]\nstarttls = true\nbind_dn = \"uid={{user}}\"\n"), "first_factor.ldap.starttls", "already TLS"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldap://x\"]\n"), "first_factor.ldap.bind_dn", "search_filter"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldap://x\"]\nbind_dn = \"uid=fixed\"\n"), "first_factor.ldap.bind_dn", "{user}"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldap://x\"]\nsearch_filter = \"(uid={{user}})\"\nsearch_base = \"dc=x\"\n"), "first_factor.ldap.service_dn", "required"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldap://x\"]\nbind_dn = \"uid={{user}}\"\nca_file = \"/nonexistent.pem\"\n"), "first_factor.ldap.ca_file", "not a readable file"),
        (format!("{MIN}[radius]\n[[radius.reply]]\ngroup = \"\"\nattributes = {{ \"Class\" = \"x\" }}\n"), "radius.reply[0].group", "empty"),
        (format!("{MIN}[policy]\nrequired_groups = [\"vpn\", \" vpn\"]\n"), "policy.required_groups[1]", "spaces"),
        (format!("{MIN}[policy]\nrequired_groups = [\"\"]\n"), "policy.required_groups[0]", "empty"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldap://x\"]\nbind_dn = \"uid={{user}}\"\npool_size = 5000\n"), "first_factor.ldap.pool_size", "1024"),
        (format!("{MIN}[first_factor.ldap]\nurls = [\"ldap://x\"]\nbind_dn = \"uid={{user}}\"\npool_idle_timeout = \"soon\"\n"), "first_factor.ldap.pool_idle_timeout", "duration"),
    ] {
        let e = err_of(&text);
        assert!(e.starts_with("test.toml: key `"), "{e}");
        assert!(e.contains(&format!("`{key}`")), "want key {key}: {e}");
        assert!(e.contains(what), "want {what:?}: {e}");
    }
}

#[test]
fn type_errors_and_missing_keys_name_the_key() {
    let e = err_of("[sxs]\nservers = [\"http://a\"]\n");
    assert!(e.contains("organization_id"), "{e}");
    let e = err_of(&MIN.replace(
        "organization_id = \"1\"",
        "organization_id = \"1\"\ninsecure_skip_verify = \"perhaps\"",
    ));
    assert!(e.contains("insecure_skip_verify"), "{e}");
    let e = err_of("this is not toml");
    assert!(e.starts_with("test.toml:"), "{e}");
}

#[test]
fn missing_file_names_it() {
    let e = Config::load(Path::new("/nonexistent/sxs.toml"), no_env())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/sxs.toml") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn secret_files_readable_by_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "c.secret", "a-long-shared-secret", 0o644);
    let text = format!(
        "{MIN}[[radius.clients]]\nname = \"c\"\naddress = \"127.0.0.1\"\nsecret_file = \"{}\"\n",
        secret.display()
    );
    let e = err_of(&text);
    assert!(e.contains("readable by other users"), "{e}");
    assert!(
        e.contains(&format!("chmod o-rwx {}", secret.display())),
        "{e}"
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
    let c = Config::from_toml_str(&text, "test.toml", no_env()).unwrap();
    assert_eq!(
        c.radius.unwrap().clients[0].secret.expose(),
        b"a-long-shared-secret"
    );
    // A file far larger than any secret (a log or a device named by mistake) is refused,
    // naming the key, without being read whole; the largest allowed one is read.
    std::fs::write(&secret, vec![b'x'; MAX_SECRET_FILE + 1]).unwrap();
    let e = err_of(&text);
    assert!(
        e.contains("radius.clients[0].secret_file") && e.contains("larger than 65536 bytes"),
        "{e}"
    );
    std::fs::write(&secret, vec![b'x'; MAX_SECRET_FILE]).unwrap();
    let c = Config::from_toml_str(&text, "test.toml", no_env()).unwrap();
    assert_eq!(c.radius.unwrap().clients[0].secret.len(), MAX_SECRET_FILE);
}

#[test]
fn inline_secret_makes_the_config_a_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MIN}[[radius.clients]]\nname = \"c\"\naddress = \"127.0.0.1\"\nsecret = \"a-long-shared-secret\"\n"
    );
    let path = write(dir.path(), "sxs.toml", &text, 0o644);
    let e = Config::load(&path, no_env()).unwrap_err().to_string();
    assert!(
        e.contains("radius.clients[0].secret") && e.contains("chmod"),
        "{e}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    Config::load(&path, no_env()).unwrap();
    // Without secrets a world-readable config is fine.
    let plain = write(dir.path(), "plain.toml", MIN, 0o644);
    Config::load(&plain, no_env()).unwrap();
    // World-writable never is.
    let ww = write(dir.path(), "ww.toml", MIN, 0o666);
    let e = Config::load(&ww, no_env()).unwrap_err().to_string();
    assert!(e.contains("writable by other users"), "{e}");
}

#[test]
fn secrets_never_print() {
    let text = format!(
        "{MIN}[radius]\nstate_key = \"0123456789abcdef-key\"\n[[radius.clients]]\nname = \"c\"\naddress = \"::1\"\nsecret = \"a-long-shared-secret\"\n"
    );
    let c = Config::from_toml_str(&text, "test.toml", no_env()).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("a-long-shared-secret"), "{debug}");
    assert!(!debug.contains("0123456789abcdef-key"), "{debug}");
}

/// The only test that sets `SXS_` variables (tests share the process environment).
#[test]
fn environment_overrides_apply_only_when_allowed() {
    std::env::set_var("SXS_SXS__TIMEOUT", "750ms");
    std::env::set_var("SXS_SXS__SERVERS", "http://a:1,http://b:2");
    let with = Config::from_toml_str(MIN, "test.toml", LoadOptions::default());
    let without = Config::from_toml_str(MIN, "test.toml", no_env());
    // A variable that is not SECTION__KEY shaped is not ours.
    std::env::set_var("SXS_BIN_DIR", "/opt/bin");
    let unrelated = Config::from_toml_str(MIN, "test.toml", LoadOptions::default());
    std::env::set_var("SXS_SXS__TIMEOUTT", "1s");
    let typo = Config::from_toml_str(MIN, "test.toml", LoadOptions::default());
    std::env::remove_var("SXS_BIN_DIR");
    std::env::remove_var("SXS_SXS__TIMEOUT");
    std::env::remove_var("SXS_SXS__SERVERS");
    std::env::remove_var("SXS_SXS__TIMEOUTT");
    let with = with.unwrap();
    assert_eq!(with.sxs.timeout, Duration::from_millis(750));
    assert_eq!(with.sxs.servers.len(), 2);
    assert_eq!(without.unwrap().sxs.timeout, Duration::from_secs(5));
    let e = typo.unwrap_err().to_string();
    assert!(e.contains("timeoutt"), "{e}");
    assert_eq!(unrelated.unwrap().sxs.timeout, Duration::from_millis(750));
}

#[test]
fn syntax_errors_do_not_quote_secret_lines() {
    let text = format!(
        "{MIN}[[radius.clients]]\nname = \"c\"\naddress = \"127.0.0.1\"\nsecret = \"hunter2-is-my-secret\n"
    );
    let e = err_of(&text);
    assert!(!e.contains("hunter2"), "{e}");
    assert!(e.contains("line 8"), "{e}");
    let e = err_of("[sxs]\nservers = [\"http://a\"\norganization_id = \"1\"\n");
    assert!(
        e.contains("organization_id = "),
        "non-secret lines are still quoted: {e}"
    );
}

#[test]
fn methods_triggers_and_sms_limits() {
    let c = Config::from_toml_str(MIN, "test.toml", no_env()).unwrap();
    assert_eq!(c.sxs.methods.send_sms.request, "sendSmsOtpRequest");
    assert_eq!(c.sxs.methods.validate_mac.path, "/SxSWS/SxS5Authentication");
    assert_eq!(c.sms.max_per_user, 3);
    assert_eq!(c.sms.window, Duration::from_secs(300));
    assert_eq!(c.pam.methods_for("sshd"), Methods::otp_only());
    let text = format!(
        "{MIN}[pam]\nmethods = [\"otp\", \"sms\"]\n[pam.service.sudo]\nmethods = [\"mac\"]\n[radius]\nstate_key = \"0123456789abcdef0123\"\nmethods = [\"otp\", \"sms\"]\n[[radius.clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"a-long-shared-secret\"\nmethods = [\"mac\"]\n[[radius.clients]]\nname = \"wifi\"\naddress = \"10.0.0.2\"\nsecret = \"a-long-shared-secret\"\n"
    );
    let c = Config::from_toml_str(&text, "test.toml", no_env()).unwrap();
    assert_eq!(c.pam.methods_for("sshd").to_string(), "otp,sms");
    assert_eq!(c.pam.methods_for("sudo").to_string(), "mac");
    let r = c.radius.unwrap();
    assert_eq!(r.clients[0].methods.to_string(), "mac");
    assert_eq!(r.clients[1].methods.to_string(), "otp,sms");
    assert_eq!(
        (r.sms_trigger.as_str(), r.mac_trigger.as_str()),
        ("sms", "mac")
    );

    let e = err_of(&format!(
        "{MIN}[pam.service.sshd]\nmethods = [\"otp\", \"fax\"]\n"
    ));
    assert!(
        e.contains("pam.service.sshd.methods") && e.contains("unknown method \"fax\""),
        "{e}"
    );
    let e = err_of(&format!("{MIN}[radius]\nmethods = [\"sms\"]\n"));
    assert!(
        e.contains("radius.state_key_file") && e.contains("\"sms\""),
        "{e}"
    );
    let e = err_of(&format!(
        "{MIN}[radius]\nsms_trigger = \"123\"\nstate_key = \"0123456789abcdef0123\"\n"
    ));
    assert!(
        e.contains("radius.sms_trigger") && e.contains("no digits"),
        "{e}"
    );
    let e = err_of(&format!("{MIN}[sxs.methods.send_sms]\nrequest = \"a b\"\n"));
    assert!(e.contains("sxs.methods.send_sms.request"), "{e}");
    let e = err_of(&format!(
        "{MIN}[sxs.methods.validate_mac]\npath = \"relative\"\n"
    ));
    assert!(e.contains("sxs.methods.validate_mac.path"), "{e}");
    let e = err_of(&format!("{MIN}[sms]\nwindow = \"soon\"\n"));
    assert!(e.contains("sms.window"), "{e}");
    let e = err_of(&format!("{MIN}[sms]\npam_state_dir = \"run/sxs\"\n"));
    assert!(e.contains("sms.pam_state_dir"), "{e}");
}

#[test]
fn radius_tls_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(dir.path(), "server.key", "k", 0o600);
    let tls = |extra: &str, clients: &str| {
        format!(
            "{MIN}[radius]\nlisten = []\n[radius.tls]\ncert_file = \"/c.pem\"\nkey_file = {key:?}\nca_file = \"/ca.pem\"\n{extra}\n{clients}"
        )
    };
    let nas = "[[radius.tls.clients]]\nname = \"nas1\"\naddress = \"10.0.0.0/24\"\ncertificate = \"*.Example.org\"\n";
    let c = Config::from_toml_str(&tls("", nas), "test.toml", no_env()).unwrap();
    let r = c.radius.unwrap();
    assert!(r.listen.is_empty(), "UDP off, TLS on");
    let t = r.tls.unwrap();
    assert_eq!(t.listen.len(), 2);
    assert!(t.require_client_cert);
    assert_eq!(t.idle_timeout, Duration::from_secs(120));
    assert_eq!(t.max_buffered_bytes, 256 * 1024);
    assert_eq!(
        t.clients[0].client.secret.expose(),
        b"radsec",
        "RFC 6614 default"
    );
    assert_eq!(t.clients[0].certificate.as_deref(), Some("*.example.org"));
    assert!(t.clients[0].client.require_message_authenticator);
    assert!(c.metrics.is_none(), "metrics off by default");
    let c = Config::from_toml_str(
        &format!("{MIN}[metrics]\nlisten = \"127.0.0.1:9812\"\n"),
        "test.toml",
        no_env(),
    )
    .unwrap();
    assert_eq!(c.metrics.unwrap().listen.port(), 9812);

    // A TLS client takes a first factor like a UDP one, and names are unique across both.
    let ldap = "[first_factor.ldap]\nurls = [\"ldaps://x\"]\nbind_dn = \"uid={user}\"\n";
    let with_ff = format!("{nas}first_factor = \"ldap\"\npassword_otp = \"append\"\n{ldap}");
    let c = Config::from_toml_str(&tls("", &with_ff), "test.toml", no_env()).unwrap();
    let r = c.radius.unwrap();
    let t = &r.tls.as_ref().unwrap().clients[0].client;
    assert_eq!(
        (t.first_factor, &t.password_otp),
        (FirstFactorKind::Ldap, &PasswordOtp::Append { digits: 6 })
    );
    assert_eq!(r.all_clients().count(), 1);
    let e = err_of(&tls("", &format!("{nas}first_factor = \"ldap\"\n")));
    assert!(
        e.contains("`radius.tls.clients[0].first_factor`") && e.contains("[first_factor.ldap]"),
        "{e}"
    );
    let udp_too = format!(
        "{}\n[[radius.clients]]\nname = \"nas1\"\naddress = \"10.0.1.1\"\nsecret = \"0123456789\"\n",
        tls("", nas)
    );
    let e = err_of(&udp_too);
    assert!(
        e.contains("`radius.tls.clients[0].name`") && e.contains("used twice"),
        "{e}"
    );

    let no_pattern = "[[radius.tls.clients]]\nname = \"nas1\"\naddress = \"10.0.0.1\"\n";
    for (text, k, what) in [
        (
            tls("", no_pattern),
            "radius.tls.clients[0].certificate",
            "pattern",
        ),
        (
            tls("idle_timeout = \"0s\"", nas),
            "radius.tls.idle_timeout",
            "greater than zero",
        ),
        (
            tls("max_buffered_bytes = 100", nas),
            "radius.tls.max_buffered_bytes",
            "4096",
        ),
        (
            tls("max_connections = 0", nas),
            "radius.tls.max_connections",
            "at least 1",
        ),
        (
            tls("listen = [\"2083\"]", nas),
            "radius.tls.listen[0]",
            "address",
        ),
        (
            tls("", &nas.replace("10.0.0.0/24", "nowhere")),
            "radius.tls.clients[0].address",
            "CIDR",
        ),
        (
            tls("", nas).replace("ca_file = \"/ca.pem\"\n", ""),
            "radius.tls.ca_file",
            "require_client_cert",
        ),
        (
            format!("{MIN}[metrics]\nlisten = \"9812\"\n"),
            "metrics.listen",
            "127.0.0.1:9812",
        ),
        (
            format!("{MIN}[radius]\nlisten = []\n"),
            "radius.listen",
            "at least one",
        ),
    ] {
        let e = err_of(&text);
        assert!(e.contains(&format!("`{k}`")), "want key {k}: {e}");
        assert!(e.contains(what), "want {what:?}: {e}");
    }
    // Without client certificates, a client may go by address alone.
    let open =
        tls("require_client_cert = false", no_pattern).replace("ca_file = \"/ca.pem\"\n", "");
    let c = Config::from_toml_str(&open, "test.toml", no_env()).unwrap();
    assert_eq!(c.radius.unwrap().tls.unwrap().clients[0].certificate, None);
    // A key file other users can read is refused, naming it.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = err_of(&tls("", nas));
    assert!(e.contains("radius.tls.key_file"), "{e}");
}

#[test]
fn credentials_in_an_sxs_url_are_refused() {
    for (key, text) in [
        (
            "sxs.servers",
            "[sxs]\nservers = [\"https://u:secret@sxs.example/SxSWS\"]\norganization_id = \"1\"\n",
        ),
        (
            "sxs.admin_url",
            "[sxs]\nservers = [\"https://sxs.example/SxSWS\"]\nadmin_url = \"https://admin@sxs.example/\"\norganization_id = \"1\"\n",
        ),
    ] {
        let e = err_of(text);
        assert!(
            e.contains(key) && e.contains("test.toml") && e.contains("user name or password"),
            "{e}"
        );
        assert!(!e.contains("secret"), "the password is not repeated: {e}");
    }
}
