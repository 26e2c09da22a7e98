//! Real directory and RADIUS servers for the first-factor tests: Debian's `slapd` and
//! `freeradius`, each configured in a temporary directory, on free loopback ports, stopped by
//! PID on drop. TLS certificates come from a test CA made with `openssl`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A port nobody listens on right now (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A UDP port nobody listens on right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn need(bin: &str, package: &str) {
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: apt-get install {package} (scripts/install-test-deps.sh)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 / localhost.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn make(dir: &Path) -> TestCa {
        let p = |n: &str| dir.join(n);
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=sxs test CA",
            ])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(p("server.key"))
            .arg("-out")
            .arg(p("server.csr")));
        std::fs::write(
            p("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(p("server.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("ext.cnf"))
            .arg("-out")
            .arg(p("server.pem")));
        TestCa {
            ca: p("ca.pem"),
            cert: p("server.pem"),
            key: p("server.key"),
        }
    }
}

fn wait_tcp(port: u16, child: &mut Child, what: &str) {
    for _ in 0..400 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on {port}");
}

/// The directory's people and groups. Passwords are `<uid>-pw`.
pub const BASE: &str = "dc=example,dc=org";
pub const SERVICE_DN: &str = "cn=reader,dc=example,dc=org";
pub const SERVICE_PW: &str = "reader-pw";

/// A running slapd, stopped on drop.
pub struct Slapd {
    child: Child,
    pub ldap_port: u16,
    pub ldaps_port: u16,
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Slapd {
    /// Users alice, bob (group vpn-admins), carol (group staff), "doe, jane", a `cn=reader`
    /// service account; groups as groupOfNames with `member`, and each user's group DNs also
    /// in `seeAlso` (the attribute the memberOf tests read: `memberOf` needs an overlay that
    /// slapadd bypasses).
    pub fn start() -> Slapd {
        need("/usr/sbin/slapd", "slapd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = TestCa::make(d);
        let (ldap_port, ldaps_port) = (free_port(), free_port());
        std::fs::create_dir(d.join("db")).unwrap();
        std::fs::create_dir(d.join("slapd.d")).unwrap();
        let config = format!(
            "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {d}/slapd.pid\n\
olcTLSCACertificateFile: {ca}\nolcTLSCertificateFile: {cert}\nolcTLSCertificateKeyFile: {key}\n\n\
dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\nolcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
include: file:///etc/ldap/schema/core.ldif\n\n\
include: file:///etc/ldap/schema/cosine.ldif\n\n\
include: file:///etc/ldap/schema/inetorgperson.ldif\n\n\
dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\n\n\
dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {{0}}config\nolcAccess: {{0}}to * by * none\n\n\
dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\n\
olcSuffix: {BASE}\nolcRootDN: cn=admin,{BASE}\nolcDbDirectory: {d}/db\nolcDbMaxSize: 10485760\n\
olcAccess: {{0}}to attrs=userPassword by anonymous auth by self read by * none\n\
olcAccess: {{1}}to * by users read by * none\n",
            d = d.display(),
            ca = ca.ca.display(),
            cert = ca.cert.display(),
            key = ca.key.display(),
        );
        std::fs::write(d.join("config.ldif"), config).unwrap();
        let person = |uid: &str, rdn: &str, groups: &[&str]| {
            let mut s = format!(
                "dn: uid={rdn},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {uid}-pw\n"
            );
            for g in groups {
                s.push_str(&format!("seeAlso: cn={g},ou=groups,{BASE}\n"));
            }
            s.push('\n');
            s
        };
        let group = |name: &str, members: &[&str]| {
            let mut s =
                format!("dn: cn={name},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {name}\n");
            for m in members {
                s.push_str(&format!("member: uid={m},ou=people,{BASE}\n"));
            }
            s.push('\n');
            s
        };
        let data = [
            format!("dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"),
            format!("dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n"),
            format!("dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"),
            format!("dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: {SERVICE_PW}\n\n"),
            person("alice", "alice", &["vpn-admins"]),
            person("bob", "bob", &["vpn-admins"]),
            person("carol", "carol", &["staff"]),
            person("doe, jane", "doe\\, jane", &["staff"]),
            group("vpn-admins", &["alice", "bob"]),
            group("staff", &["carol", "doe\\, jane"]),
        ]
        .concat();
        std::fs::write(d.join("data.ldif"), data).unwrap();
        run(Command::new("/usr/sbin/slapadd")
            .args(["-n", "0", "-F"])
            .arg(d.join("slapd.d"))
            .arg("-l")
            .arg(d.join("config.ldif")));
        run(Command::new("/usr/sbin/slapadd")
            .args(["-n", "1", "-F"])
            .arg(d.join("slapd.d"))
            .arg("-l")
            .arg(d.join("data.ldif")));
        let child = Slapd::spawn(d, ldap_port, ldaps_port);
        Slapd {
            child,
            ldap_port,
            ldaps_port,
            ca: ca.ca,
            _dir: dir,
        }
    }

    fn spawn(d: &Path, ldap_port: u16, ldaps_port: u16) -> Child {
        let mut child = Command::new("/usr/sbin/slapd")
            .args(["-d", "0", "-F"])
            .arg(d.join("slapd.d"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_tcp(ldap_port, &mut child, "slapd");
        wait_tcp(ldaps_port, &mut child, "slapd");
        child
    }

    /// Stops slapd (every connection to it is closed) and starts it again on the same ports
    /// with the same database.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Slapd::spawn(self._dir.path(), self.ldap_port, self.ldaps_port);
    }

    /// The local ports of this process's established TCP connections to slapd (from
    /// /proc/net/tcp): which connections our server holds open.
    pub fn connections_from(&self, pid: u32) -> Vec<u16> {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .filter_map(|l| {
                        l.to_str()?
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ports = [self.ldap_port, self.ldaps_port];
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let mut out: Vec<u16> = table
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let local = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
                let remote = u16::from_str_radix(f.get(2)?.rsplit(':').next()?, 16).ok()?;
                let established = *f.get(3)? == "01";
                let inode = *f.get(9)?;
                (established && ports.contains(&remote) && inodes.iter().any(|i| i == inode))
                    .then_some(local)
            })
            .collect();
        out.sort_unstable();
        out
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running FreeRADIUS (`freeradius -f -d DIR`), stopped on drop.
pub struct FreeRadius {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

pub const UPSTREAM_SECRET: &str = "upstream-secret-123";

impl FreeRadius {
    /// FreeRADIUS with `users` as its users file and one client (127.0.0.1,
    /// [`UPSTREAM_SECRET`], Message-Authenticator required).
    pub fn start(users: &str) -> FreeRadius {
        Self::start_with(users, "", "")
    }

    /// `extra_conf` goes at the top level, `post_auth` into the default server's post-auth
    /// section.
    pub fn start_with(users: &str, extra_conf: &str, post_auth: &str) -> FreeRadius {
        Self::start_full(users, extra_conf, "files\n    pap", post_auth)
    }

    /// Everything chosen: top-level configuration (home_server blocks…), the default server's
    /// authorize and post-auth sections.
    pub fn start_full(
        users: &str,
        extra_conf: &str,
        authorize: &str,
        post_auth: &str,
    ) -> FreeRadius {
        need("/usr/sbin/freeradius", "freeradius");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_udp_port();
        std::fs::write(d.join("users"), users).unwrap();
        std::fs::copy("/etc/freeradius/3.0/dictionary", d.join("dictionary")).unwrap();
        std::fs::write(
            d.join("clients.conf"),
            format!("client local {{\n ipaddr = 127.0.0.1\n secret = {UPSTREAM_SECRET}\n require_message_authenticator = yes\n}}\n"),
        )
        .unwrap();
        let conf = format!(
            r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
certdir = {d}
cadir = {d}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
  destination = stdout
  auth = yes
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}}
$INCLUDE clients.conf
thread pool {{
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 3
  max_requests_per_server = 0
}}
modules {{
  pap {{
    normalise = yes
  }}
  files {{
    filename = {d}/users
  }}
}}
{extra_conf}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    {authorize}
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  post-auth {{
    {post_auth}
  }}
}}
"#,
            d = d.display()
        );
        std::fs::write(d.join("radiusd.conf"), conf).unwrap();
        let mut child = Command::new("/usr/sbin/freeradius")
            .arg("-f")
            .arg("-d")
            .arg(d)
            .args(["-l", "stdout"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let me = FreeRadius {
            child,
            port,
            _dir: dir,
            log,
        };
        me.wait_ready();
        me
    }

    fn wait_ready(&self) {
        for _ in 0..400 {
            if self.log().contains("Ready to process requests") {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("freeradius did not start:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
