//! Password + OTP: the first factor from a real `slapd` or a real FreeRADIUS, reply attributes
//! decoded by `radclient` with FreeRADIUS's own dictionary, and the simulator's counter proving
//! that a wrong password never reaches SxS.

use crate::harness::*;
use crate::peers::*;
use crate::radclient::{radclient, Reply};

fn send(r: &Radiusd, user: &str, password: &str, state: Option<&str>) -> Reply {
    let state = state.map(|s| format!("State = {s}\n")).unwrap_or_default();
    radclient(
        &r.target(),
        "auth",
        SECRET,
        &format!(
            "User-Name = \"{user}\"\nUser-Password = \"{password}\"\n{state}Message-Authenticator = 0x00\n"
        ),
    )
}

fn code(reply: &Reply) -> &str {
    reply.code.as_deref().unwrap_or("(no answer)")
}

fn all(reply: &Reply, name: &str) -> Vec<String> {
    reply
        .output
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix(&format!("{name} = "))
                .map(|v| v.trim_matches('"').to_string())
        })
        .collect()
}

fn client(name: &str, extra: &str) -> String {
    format!(
        "[[radius.clients]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\n{extra}\n"
    )
}

const REPLY_RULES: &str = r#"
[[radius.reply]]
group = "vpn-admins"
attributes = { "Class" = "admins", "Filter-Id" = "admin-acl", "Cisco-AVPair" = ["ip:addr-pool=admins", "shell:priv-lvl=15"], "Session-Timeout" = 3600 }
[[radius.reply]]
group = "staff"
attributes = { "Filter-Id" = "staff-acl" }
"#;

fn ldap_section(slapd: &Slapd, body: &str) -> String {
    format!(
        "[first_factor.ldap]\nca_file = \"{}\"\nconnect_timeout = \"1s\"\ntimeout = \"2s\"\n{body}\n",
        slapd.ca.display()
    )
}

/// LDAPS, a DN template, groups from an attribute of the entry; `challenge`.
#[test]
fn ldap_password_then_otp_by_challenge_with_group_reply_attributes() {
    let slapd = Slapd::start();
    let sim = Sim::start();
    let cfg = format!(
        "{}{}",
        config_text(
            &sim.url(),
            REPLY_RULES,
            Some(&client("vpn1", "first_factor = \"ldap\"\npassword_otp = \"challenge\"")),
        ),
        ldap_section(
            &slapd,
            &format!(
                "urls = [\"ldaps://127.0.0.1:{}\"]\nbind_dn = \"uid={{user}},ou=people,{BASE}\"\ngroup_attribute = \"seeAlso\"",
                slapd.ldaps_port
            )
        )
    );
    let r = Radiusd::start(&cfg, "127.0.0.1:0");

    // Right password: a challenge, and still no SxS call.
    let first = send(&r, "alice", "alice-pw", None);
    assert_eq!(
        code(&first),
        "Access-Challenge",
        "{}\n{}",
        first.output,
        r.logs()
    );
    let state = first.attr("State").unwrap();
    assert_eq!(sim.handle.stats().validate_otp, 0);
    // Right OTP: Accept with the group's attributes, as FreeRADIUS's dictionary decodes them.
    let accept = send(&r, "alice", &sim.otp("alice"), Some(&state));
    assert_eq!(
        code(&accept),
        "Access-Accept",
        "{}\n{}",
        accept.output,
        r.logs()
    );
    assert_eq!(
        accept.attr("Class").as_deref(),
        Some("0x61646d696e73"),
        "{}",
        accept.output
    );
    assert_eq!(accept.attr("Filter-Id").as_deref(), Some("admin-acl"));
    assert_eq!(accept.attr("Session-Timeout").as_deref(), Some("3600"));
    assert_eq!(
        all(&accept, "Cisco-AVPair"),
        ["ip:addr-pool=admins", "shell:priv-lvl=15"],
        "{}",
        accept.output
    );
    assert_eq!(sim.handle.stats().validate_otp, 1);

    // The State of a challenge is spent; and a State issued without a first factor (by the
    // plain OTP challenge) is refused here.
    sim.handle.advance_time(30);
    let again = send(&r, "alice", &sim.otp("alice"), Some(&state));
    assert_eq!(code(&again), "Access-Reject");
    let signer = radiusd::state::StateSigner::new(STATE_KEY.as_bytes()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let otp_only = signer
        .issue(
            radiusd::state::Context::OTP,
            b"alice",
            b"vpn1",
            now,
            std::time::Duration::from_secs(60),
            &mut rand::rng(),
        )
        .unwrap();
    let hex: String = otp_only.iter().map(|b| format!("{b:02x}")).collect();
    let skipped = send(&r, "alice", &sim.otp("alice"), Some(&format!("0x{hex}")));
    assert_eq!(
        code(&skipped),
        "Access-Reject",
        "a State without the password passed"
    );
    let calls = sim.handle.stats().validate_otp;

    // Wrong password: Reject, and SxS is never asked.
    let wrong = send(&r, "alice", "not-her-password", None);
    assert_eq!(code(&wrong), "Access-Reject");
    // An empty-looking password (only NULs after decoding) is not an anonymous bind.
    let anon = send(&r, "alice", "", None);
    assert_ne!(code(&anon), "Access-Challenge", "{}", anon.output);
    assert_ne!(code(&anon), "Access-Accept");
    // Injection attempts in the user name: no entry matches, nothing reaches SxS.
    for user in [
        "*",
        "alice)(uid=*",
        ")(",
        "\\00",
        "alice,ou=people",
        "*)(objectClass=*",
    ] {
        let reply = send(&r, user, "alice-pw", None);
        assert_eq!(
            code(&reply),
            "Access-Reject",
            "user {user:?}: {}",
            reply.output
        );
    }
    assert_eq!(
        sim.handle.stats().validate_otp,
        calls,
        "a wrong password reached SxS"
    );

    // A user name with a comma binds (escaped by RFC 4514), and a wrong password does not.
    let jane = send(&r, "doe, jane", "doe, jane-pw", None);
    assert_eq!(
        code(&jane),
        "Access-Challenge",
        "{}\n{}",
        jane.output,
        r.logs()
    );
    let jane = send(&r, "doe, jane", "wrong", None);
    assert_eq!(code(&jane), "Access-Reject");

    // Right password, wrong OTP: Reject.
    let first = send(&r, "bob", "bob-pw", None);
    let state = first.attr("State").unwrap();
    let otp = sim.otp("bob");
    let bad = if otp == "000000" { "111111" } else { "000000" };
    let reply = send(&r, "bob", bad, Some(&state));
    assert_eq!(code(&reply), "Access-Reject");
    r.wait_for_log("first-factor-reject");
}

/// StartTLS, search-then-bind with a service account, a group search, URL failover; the
/// `append` and `separator` forms; a directory that is down is a Reject even with
/// failmode = "safe".
#[test]
fn ldap_search_bind_starttls_append_separator_and_directory_down() {
    let slapd = Slapd::start();
    let sim = Sim::start();
    let dead = free_port();
    let ldap = ldap_section(
        &slapd,
        &format!(
            "urls = [\"ldap://127.0.0.1:{dead}\", \"ldap://127.0.0.1:{}\"]\nstarttls = true\n\
             search_base = \"ou=people,{BASE}\"\nsearch_filter = \"(&(objectClass=inetOrgPerson)(uid={{user}}))\"\n\
             service_dn = \"{SERVICE_DN}\"\nservice_password = \"{SERVICE_PW}\"\n\
             group_search_base = \"ou=groups,{BASE}\"\ngroup_search_filter = \"(member={{dn}})\"",
            slapd.ldap_port
        ),
    );
    let start = |form: &str| {
        Radiusd::start(
            &format!(
                "{}{ldap}",
                config_text(
                    &sim.url(),
                    REPLY_RULES,
                    Some(&client("vpn1", &format!("first_factor = \"ldap\"\n{form}"))),
                )
            ),
            "127.0.0.1:0",
        )
    };

    let append = start("password_otp = \"append\"\notp_digits = 6");
    let reply = send(
        &append,
        "carol",
        &format!("carol-pw{}", sim.otp("carol")),
        None,
    );
    assert_eq!(
        code(&reply),
        "Access-Accept",
        "{}\n{}",
        reply.output,
        append.logs()
    );
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("staff-acl"));
    assert!(reply.attr("Class").is_none(), "carol is not in vpn-admins");
    let calls = sim.handle.stats().validate_otp;
    sim.handle.advance_time(30);
    let reply = send(
        &append,
        "carol",
        &format!("wrong-pw{}", sim.otp("carol")),
        None,
    );
    assert_eq!(code(&reply), "Access-Reject");
    let reply = send(&append, "*", &format!("carol-pw{}", sim.otp("carol")), None);
    assert_eq!(code(&reply), "Access-Reject");
    assert_eq!(
        sim.handle.stats().validate_otp,
        calls,
        "a wrong password reached SxS"
    );
    let reply = send(&append, "carol", "carol-pw000000", None);
    assert_eq!(code(&reply), "Access-Reject", "right password, wrong OTP");
    drop(append);

    let sep = start("password_otp = \"separator\"\notp_separator = \",\"");
    sim.handle.advance_time(30);
    let reply = send(
        &sep,
        "alice",
        &format!("alice-pw,{}", sim.otp("alice")),
        None,
    );
    assert_eq!(
        code(&reply),
        "Access-Accept",
        "{}\n{}",
        reply.output,
        sep.logs()
    );
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("admin-acl"));
    let calls = sim.handle.stats().validate_otp;
    sim.handle.advance_time(30);
    let reply = send(&sep, "alice", &format!("bob-pw,{}", sim.otp("alice")), None);
    assert_eq!(code(&reply), "Access-Reject");
    let reply = send(&sep, "alice", "alice-pw", None);
    assert_eq!(code(&reply), "Access-Reject", "no separator");
    assert_eq!(sim.handle.stats().validate_otp, calls);
    drop(sep);

    // The directory down (every URL closed): Reject even with failmode = "safe".
    drop(slapd);
    let down = Radiusd::start(
        &format!(
            "{}[first_factor.ldap]\nurls = [\"ldap://127.0.0.1:{dead}\"]\nconnect_timeout = \"500ms\"\nbind_dn = \"uid={{user}},{BASE}\"\n",
            config_text(
                &sim.url(),
                "",
                Some(&client("vpn1", "first_factor = \"ldap\"\npassword_otp = \"append\"")),
            )
            .replace("[radius]", "[policy]\nfailmode = \"safe\"\n[radius]")
        ),
        "127.0.0.1:0",
    );
    let reply = send(
        &down,
        "alice",
        &format!("alice-pw{}", sim.otp("alice")),
        None,
    );
    assert_eq!(code(&reply), "Access-Reject", "{}", down.logs());
    down.wait_for_log("first-factor-unavailable");
    assert_eq!(sim.handle.stats().validate_otp, calls);
}

const MA_POST_AUTH: &str = "update reply {\n      Message-Authenticator := 0x00\n    }\n    Post-Auth-Type REJECT {\n      update reply {\n        Message-Authenticator := 0x00\n      }\n    }";

const UPSTREAM_USERS: &str = "alice Cleartext-Password := \"alice-upstream\"\n\tFilter-Id = \"from-upstream\", Reply-Message = \"not passed\"\n\
     bob Cleartext-Password := \"bob-upstream\"\n";

fn upstream_config(
    sim: &Sim,
    upstream: &FreeRadius,
    first: &str,
    secret: &str,
    extra: &str,
) -> String {
    format!(
        "{}[first_factor.radius]\nservers = [\"{first}\", \"{}\"]\nsecret = \"{secret}\"\ntimeout = \"600ms\"\npass_attributes = [\"Filter-Id\"]\n{extra}",
        config_text(
            &sim.url(),
            "",
            Some(&client("vpn1", "first_factor = \"radius\"\npassword_otp = \"separator\"")),
        ),
        upstream.addr()
    )
}

/// The password checked by a real FreeRADIUS told to sign its answers: PAP with
/// Message-Authenticator, failover from a dead server, chosen reply attributes passed through;
/// answers that do not verify with our secret are never taken.
#[test]
fn upstream_freeradius_first_factor_with_pass_through() {
    let upstream = FreeRadius::start_with(UPSTREAM_USERS, "", MA_POST_AUTH);
    let sim = Sim::start();
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let r = Radiusd::start(
        &upstream_config(&sim, &upstream, &dead, UPSTREAM_SECRET, ""),
        "127.0.0.1:0",
    );
    let reply = send(
        &r,
        "alice",
        &format!("alice-upstream,{}", sim.otp("alice")),
        None,
    );
    assert_eq!(
        code(&reply),
        "Access-Accept",
        "{}\n{}\n{}",
        reply.output,
        r.logs(),
        upstream.log()
    );
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("from-upstream"));
    assert!(
        !reply.output.contains("not passed"),
        "only the chosen attributes pass: {}",
        reply.output
    );
    let calls = sim.handle.stats().validate_otp;
    sim.handle.advance_time(30);
    let reply = send(&r, "alice", &format!("wrong,{}", sim.otp("alice")), None);
    assert_eq!(code(&reply), "Access-Reject");
    r.wait_for_log("first-factor-reject");
    assert_eq!(
        sim.handle.stats().validate_otp,
        calls,
        "a wrong password reached SxS"
    );
    let reply = send(
        &r,
        "bob",
        &format!("bob-upstream,{}", sim.otp("alice")),
        None,
    );
    assert_eq!(
        code(&reply),
        "Access-Reject",
        "right password, wrong OTP (alice's)"
    );
    assert_eq!(sim.handle.stats().validate_otp, calls + 1);
    drop(r);

    // Our requests signed with another secret: FreeRADIUS drops them (its client requires a
    // Message-Authenticator), so the upstream is unavailable, which is a Reject.
    let r = Radiusd::start(
        &upstream_config(&sim, &upstream, &dead, "not-the-upstream-secret", ""),
        "127.0.0.1:0",
    );
    sim.handle.advance_time(30);
    let reply = send(
        &r,
        "alice",
        &format!("alice-upstream,{}", sim.otp("alice")),
        None,
    );
    assert_eq!(code(&reply), "Access-Reject", "{}", r.logs());
    r.wait_for_log("first-factor-unavailable");
    assert_eq!(sim.handle.stats().validate_otp, calls + 1);
}

/// What Debian 12's FreeRADIUS taught us: without being told, it answers with no
/// Message-Authenticator. Such answers are ignored by default (the log says why and what to
/// set), and accepted on the Response Authenticator alone with
/// `require_message_authenticator = false`.
#[test]
fn upstream_without_message_authenticator_is_refused_unless_allowed() {
    let upstream = FreeRadius::start(UPSTREAM_USERS);
    let sim = Sim::start();
    let r = Radiusd::start(
        &upstream_config(&sim, &upstream, &upstream.addr(), UPSTREAM_SECRET, ""),
        "127.0.0.1:0",
    );
    let reply = send(
        &r,
        "alice",
        &format!("alice-upstream,{}", sim.otp("alice")),
        None,
    );
    assert_eq!(code(&reply), "Access-Reject", "{}", r.logs());
    r.wait_for_log("it has no Message-Authenticator");
    assert_eq!(sim.handle.stats().validate_otp, 0);
    drop(r);
    let r = Radiusd::start(
        &upstream_config(
            &sim,
            &upstream,
            &upstream.addr(),
            UPSTREAM_SECRET,
            "require_message_authenticator = false\n",
        ),
        "127.0.0.1:0",
    );
    let reply = send(
        &r,
        "alice",
        &format!("alice-upstream,{}", sim.otp("alice")),
        None,
    );
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("from-upstream"));
}

/// `first_factor = "none"`: the groups for reply attributes are the system's (NSS), as for
/// exemptions. root is in group root on every Linux system; the other user is not a local one.
#[test]
fn reply_attributes_from_system_groups_without_a_first_factor() {
    let sim = Sim::start_users(&["root", "sxs-not-a-local-user"]);
    let r = Radiusd::start(
        &config_text(
            &sim.url(),
            "[[radius.reply]]\ngroup = \"root\"\nattributes = { \"Filter-Id\" = \"root-acl\" }\n",
            None,
        ),
        "127.0.0.1:0",
    );
    let reply = send(&r, "root", &sim.otp("root"), None);
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("root-acl"));
    let reply = send(
        &r,
        "sxs-not-a-local-user",
        &sim.otp("sxs-not-a-local-user"),
        None,
    );
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    assert!(reply.attr("Filter-Id").is_none(), "{}", reply.output);
}

/// `policy.required_groups` without a first factor: the system's groups (NSS). A user in none
/// is refused before SxS is asked, exempt or not; in challenge mode the first answer is a
/// challenge like anyone's (it does not tell membership) and the follow-up is refused.
#[test]
fn required_system_groups_gate_before_sxs() {
    let sim = Sim::start_users(&["root", "sxs-not-a-local-user"]);
    let policy =
        "[policy]\nrequired_groups = [\"root\"]\nexempt_users = [\"sxs-not-a-local-user\"]\n";
    let r = Radiusd::start(&config_text(&sim.url(), policy, None), "127.0.0.1:0");
    let reply = send(&r, "root", &sim.otp("root"), None);
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    assert_eq!(sim.handle.stats().validate_otp, 1);
    let outsider = "sxs-not-a-local-user";
    let reply = send(&r, outsider, &sim.otp(outsider), None);
    assert_eq!(code(&reply), "Access-Reject", "{}", r.logs());
    r.wait_for_log("not-in-required-group");
    assert_eq!(
        sim.handle.stats().validate_otp,
        1,
        "the outsider reached SxS"
    );
    drop(r);

    let r = Radiusd::start(
        &config_text(&sim.url(), &format!("mode = \"challenge\"\n{policy}"), None),
        "127.0.0.1:0",
    );
    let first = send(&r, outsider, "x", None);
    assert_eq!(code(&first), "Access-Challenge", "{}", r.logs());
    let state = first.attr("State").unwrap();
    let reply = send(&r, outsider, &sim.otp(outsider), Some(&state));
    assert_eq!(code(&reply), "Access-Reject", "{}", r.logs());
    assert_eq!(
        sim.handle.stats().validate_otp,
        1,
        "the outsider reached SxS"
    );
    let first = send(&r, "root", "x", None);
    let state = first.attr("State").unwrap();
    sim.handle.advance_time(30);
    let reply = send(&r, "root", &sim.otp("root"), Some(&state));
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
}

/// `policy.required_groups` with the groups LDAP reports: carol (staff) has the right password
/// but is in none, so she is refused before SxS. The directory connection is kept and reused
/// from one login to the next (one TCP+TLS connection for several logins), and a kept
/// connection that slapd closed (a restart) costs a new connection, not a Reject.
#[test]
fn ldap_required_groups_and_kept_connections() {
    let mut slapd = Slapd::start();
    let sim = Sim::start();
    let cfg = format!(
        "{}{}",
        config_text(
            &sim.url(),
            &format!("{REPLY_RULES}[policy]\nrequired_groups = [\"vpn-admins\"]\n"),
            Some(&client("vpn1", "first_factor = \"ldap\"\npassword_otp = \"separator\"")),
        ),
        ldap_section(
            &slapd,
            &format!(
                "urls = [\"ldaps://127.0.0.1:{}\"]\nbind_dn = \"uid={{user}},ou=people,{BASE}\"\ngroup_attribute = \"seeAlso\"",
                slapd.ldaps_port
            )
        )
    );
    let r = Radiusd::start(&cfg, "127.0.0.1:0");
    let pid = r.child.id();

    let reply = send(&r, "carol", &format!("carol-pw,{}", sim.otp("carol")), None);
    assert_eq!(code(&reply), "Access-Reject", "{}", r.logs());
    r.wait_for_log("not-in-required-group");
    assert_eq!(sim.handle.stats().validate_otp, 0, "carol reached SxS");

    let reply = send(&r, "alice", &format!("alice-pw,{}", sim.otp("alice")), None);
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    assert_eq!(reply.attr("Filter-Id").as_deref(), Some("admin-acl"));
    let held = slapd.connections_from(pid);
    assert_eq!(held.len(), 1, "one kept connection: {held:?}");
    for user in ["bob", "alice"] {
        sim.handle.advance_time(30);
        let reply = send(&r, user, &format!("{user}-pw,{}", sim.otp(user)), None);
        assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    }
    assert_eq!(
        slapd.connections_from(pid),
        held,
        "the same connection served every login"
    );
    assert_eq!(sim.handle.stats().validate_otp, 3);

    slapd.restart();
    sim.handle.advance_time(30);
    let reply = send(&r, "alice", &format!("alice-pw,{}", sim.otp("alice")), None);
    assert_eq!(code(&reply), "Access-Accept", "{}", r.logs());
    let now_held = slapd.connections_from(pid);
    assert_eq!(now_held.len(), 1, "{now_held:?}");
    assert_ne!(now_held, held, "a new connection after the restart");
}

/// Upstream pass-through attributes are known only once the upstream answered, so their size
/// is checked then, before SxS is asked: an Accept that could not be sent (14 Filter-Ids of
/// 250 octets plus the Proxy-States the request asks back) is a Reject that spends no OTP;
/// the same login without the Proxy-States fits and is accepted with every attribute.
#[test]
fn upstream_attributes_that_would_not_fit_are_refused_before_sxs() {
    let values: Vec<String> = (0..14)
        .map(|i| format!("{i:02}{}", "f".repeat(248)))
        .collect();
    let reply_items = values
        .iter()
        .map(|v| format!("Filter-Id += \"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let users = format!("big Cleartext-Password := \"big-upstream\"\n\t{reply_items}\n");
    let upstream = FreeRadius::start_with(&users, "", MA_POST_AUTH);
    let sim = Sim::start_users(&["big"]);
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let r = Radiusd::start(
        &upstream_config(&sim, &upstream, &dead, UPSTREAM_SECRET, ""),
        "127.0.0.1:0",
    );
    let proxy_states: String = (0..4)
        .map(|i| format!("Proxy-State = 0x{}\n", format!("{i:02x}").repeat(250)))
        .collect();
    let reply = radclient(
        &r.target(),
        "auth",
        SECRET,
        &format!(
            "User-Name = \"big\"\nUser-Password = \"big-upstream,{}\"\n{proxy_states}Message-Authenticator = 0x00\n",
            sim.otp("big")
        ),
    );
    assert_eq!(
        code(&reply),
        "Access-Reject",
        "{}\n{}",
        reply.output,
        r.logs()
    );
    r.wait_for_log("reply-too-large");
    assert_eq!(sim.handle.stats().validate_otp, 0, "the OTP was spent");

    let reply = send(&r, "big", &format!("big-upstream,{}", sim.otp("big")), None);
    assert_eq!(
        code(&reply),
        "Access-Accept",
        "{}\n{}\n{}",
        reply.output,
        r.logs(),
        upstream.log()
    );
    assert_eq!(all(&reply, "Filter-Id"), values);
    assert_eq!(sim.handle.stats().validate_otp, 1);
}
