//! The peer for `sxs-bench peer`: FreeRADIUS 3.2 with `rlm_rest` doing what `sxs-radiusd`
//! does (post a `validateOtp` SOAP envelope to SxS, accept only an answer with a `<tokenSN>`),
//! in a private copy of the packaged configuration, run as a child process.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where the packaged configuration lives (Debian `freeradius-config`).
const PACKAGED: &str = "/etc/freeradius/3.0";

/// A private FreeRADIUS configuration directory and the address it will listen on.
pub struct PeerConfig {
    pub dir: PathBuf,
    pub listen: SocketAddr,
}

/// Copies the packaged configuration into `dir` and points it at `sim_url`: one virtual
/// server on a free loopback port, one client (`secret`, Message-Authenticator required),
/// the `rest` module posting the envelope, running as the invoking user.
pub fn configure(dir: &Path, sim_url: &str, secret: &str) -> PeerConfig {
    let status = Command::new("cp")
        .arg("-a")
        .arg(PACKAGED)
        .arg(dir)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cannot copy {PACKAGED} (apt-get install freeradius freeradius-rest)"
    );
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    // radiusd.conf as packaged, but no user switch (the private copy is ours) and a private
    // run_dir; logging goes to stdout (discarded).
    let conf = std::fs::read_to_string(dir.join("radiusd.conf")).unwrap();
    let conf: String = conf
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("user =") || t.starts_with("group =") {
                format!("#{l}")
            } else if t.starts_with("run_dir =") {
                format!("run_dir = {}", run.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("radiusd.conf"), conf).unwrap();
    std::fs::write(
        dir.join("clients.conf"),
        format!(
            "client bench {{\n\tipaddr = 127.0.0.1\n\tsecret = {secret}\n\trequire_message_authenticator = yes\n}}\n"
        ),
    )
    .unwrap();
    for entry in std::fs::read_dir(dir.join("sites-enabled")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(
        dir.join("sites-enabled/sxs"),
        format!(
            r#"server sxs {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = {port}
	}}
	authorize {{
		update control {{
			&REST-HTTP-Header += "OrganizationId: 1"
			&Auth-Type := rest
		}}
	}}
	authenticate {{
		Auth-Type rest {{
			rest
			if (&reply:REST-HTTP-Body && (&reply:REST-HTTP-Body =~ /<tokenSN>/)) {{
				ok
			}}
			else {{
				reject
			}}
		}}
	}}
}}
"#
        ),
    )
    .unwrap();
    // EAP needs an `Auth-Type EAP` the private site does not have; nothing else is touched.
    std::fs::remove_file(dir.join("mods-enabled/eap")).unwrap();
    // The envelope sxs-radiusd sends, with the user and the OTP left to FreeRADIUS's xlat.
    let envelope = common::soap::validate_otp_request(
        &common::Secret::from("%{User-Password}"),
        None,
        Some("%{User-Name}"),
        "OTP_APP",
    );
    // One line: `data` sends `\n` as the two characters, not as a newline.
    let data = envelope
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "");
    // The packaged module's pool and tls stanzas, our endpoint and body.
    let _ = std::fs::remove_file(dir.join("mods-enabled/rest"));
    std::fs::write(
        dir.join("mods-enabled/rest"),
        format!(
            r#"rest {{
	tls {{
	}}
	connect_uri = "{}"
	authenticate {{
		uri = "${{..connect_uri}}/SxSWS/SxS5Authentication"
		method = 'post'
		body = 'xml'
		data = "{data}"
		force_to = 'plain'
		tls = ${{..tls}}
	}}
	pool {{
		start = ${{thread[pool].start_servers}}
		min = ${{thread[pool].min_spare_servers}}
		max = ${{thread[pool].max_servers}}
		spare = ${{thread[pool].max_spare_servers}}
		uses = 0
		retry_delay = 30
		lifetime = 0
		idle_timeout = 60
	}}
}}
"#,
            sim_url.trim_end_matches('/')
        ),
    )
    .unwrap();
    PeerConfig {
        dir: dir.to_path_buf(),
        listen,
    }
}

/// Starts `freeradius -f` on the configuration through `command` (the binary, possibly behind
/// `taskset`); the caller waits for it to answer.
pub fn spawn(mut command: Command, cfg: &PeerConfig) -> Child {
    command
        .arg("-f")
        .arg("-d")
        .arg(&cfg.dir)
        .arg("-l")
        .arg("stdout")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}
