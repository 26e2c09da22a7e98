//! The SxS client over https, judged by OpenSSL: `openssl s_server -WWW` serves the health
//! check, `sxsctl health` connects with the trust of `[sxs]` (`ca_file`, or the system CA
//! bundle read through `SSL_CERT_FILE`, or a client certificate the server requires).
//! Certificates are made by the test (rcgen) in a temporary directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use common::sim::tls_health::TlsHealthPeer as OpenSsl;

use crate::harness::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    /// A root CA, or an intermediate signed by `parent`.
    fn new(name: &str, parent: Option<&Ca>) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = match parent {
            Some(parent) => p.signed_by(&key, &parent.issuer).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A certificate and key (PEM) for `name`, valid now unless `expired`.
    fn leaf(
        &self,
        name: &str,
        purpose: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![purpose];
        let (from, to) = if expired { (2020, 2021) } else { (2024, 2040) };
        p.not_before = rcgen::date_time_ymd(from, 1, 1);
        p.not_after = rcgen::date_time_ymd(to, 1, 1);
        (
            p.signed_by(&key, &self.issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The machine's CA bundle with `extra` appended: what `SSL_CERT_FILE` points at.
    fn bundle(&self, extra: &[&Ca]) -> PathBuf {
        let mut text =
            std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        for ca in extra {
            text.push_str(&ca.pem);
        }
        self.write("bundle.pem", &text)
    }

    /// `sxsctl health` against `server` (auth root only) with `extra` in `[sxs]` and
    /// `SSL_CERT_FILE` = `bundle`.
    fn health(&self, server: &OpenSsl, host: &str, extra: &str, bundle: &Path) -> Run {
        let config = self.write(
            "sxs.toml",
            &format!(
                "[sxs]\nservers = [\"https://{host}:{}/SxSWS/\"]\norganization_id = \"1\"\ntimeout = \"5s\"\nconnect_timeout = \"2s\"\n{extra}",
                server.port
            ),
        );
        sxsctl_env(
            &config,
            &["health"],
            &[("SSL_CERT_FILE", bundle.as_os_str())],
        )
    }

    /// A server certificate for `name` from `ca`, written out, and `openssl s_server` serving it.
    fn serve(
        &self,
        ca: &Ca,
        name: &str,
        expired: bool,
        chain: Option<&Ca>,
        client_ca: Option<&Ca>,
    ) -> OpenSsl {
        let (cert, key) = ca.leaf(name, ExtendedKeyUsagePurpose::ServerAuth, expired);
        let cert = self.write("server.pem", &cert);
        let key = self.write("server.key", &key);
        let chain = chain.map(|c| self.write("chain.pem", &c.pem));
        let client_ca = client_ca.map(|c| self.write("clients-ca.pem", &c.pem));
        OpenSsl::start(
            self.dir.path(),
            &cert,
            &key,
            chain.as_deref(),
            client_ca.as_deref(),
        )
        .unwrap()
    }
}

#[track_caller]
fn up(run: &Run) {
    run.expect(0);
    assert!(run.stdout.contains("1 of 1 SxS roots up"), "{}", run.stdout);
}

#[track_caller]
fn down(run: &Run, why: &str) {
    run.expect(3);
    assert!(run.stdout.contains("DOWN"), "{}", run.stdout);
    assert!(
        run.stdout.contains(why),
        "expected {why:?}:\n{}",
        run.stdout
    );
}

#[test]
fn ca_file_alone_decides_whom_to_trust() {
    let case = Case::new();
    let ca = Ca::new("sxs test CA", None);
    let other = Ca::new("another CA", None);
    let server = case.serve(&ca, "localhost", false, None, None);
    let system = case.bundle(&[&ca]);
    let ca_file = case.write("ca.pem", &ca.pem);
    let other_file = case.write("other.pem", &other.pem);
    up(&case.health(
        &server,
        "localhost",
        &format!("ca_file = {:?}\n", ca_file),
        &system,
    ));
    // The system bundle trusts it, but ca_file replaces the bundle.
    down(
        &case.health(
            &server,
            "localhost",
            &format!("ca_file = {:?}\n", other_file),
            &system,
        ),
        "UnknownIssuer",
    );
}

#[test]
fn system_bundle_is_read_for_the_issuer_the_server_names() {
    let case = Case::new();
    let root = Ca::new("sxs test root", None);
    let intermediate = Ca::new("sxs test intermediate", Some(&root));
    let absent = Ca::new("sxs test absent", None);
    let with_root = case.bundle(&[&root]);
    // A leaf of a bundle CA, and a leaf with its intermediate sent along.
    let direct = case.serve(&root, "localhost", false, None, None);
    up(&case.health(&direct, "localhost", "", &with_root));
    drop(direct);
    let chained = case.serve(&intermediate, "localhost", false, Some(&intermediate), None);
    up(&case.health(&chained, "localhost", "", &with_root));
    drop(chained);
    // The intermediate not sent: no path to the root.
    let unchained = case.serve(&intermediate, "localhost", false, None, None);
    down(
        &case.health(&unchained, "localhost", "", &with_root),
        "UnknownIssuer",
    );
    drop(unchained);
    // A CA the bundle does not hold, a name the certificate is not for, an expired one.
    let stranger = case.serve(&absent, "localhost", false, None, None);
    down(
        &case.health(&stranger, "localhost", "", &with_root),
        "UnknownIssuer",
    );
    drop(stranger);
    let wrong_name = case.serve(&root, "sxs.example", false, None, None);
    down(
        &case.health(&wrong_name, "localhost", "", &with_root),
        "not valid for name \"localhost\"",
    );
    drop(wrong_name);
    let expired = case.serve(&root, "localhost", true, None, None);
    down(
        &case.health(&expired, "localhost", "", &with_root),
        "certificate expired",
    );
    drop(expired);
    // ... unless sxs.insecure_skip_verify says not to check (and the log says so).
    let stranger = case.serve(&absent, "localhost", false, None, None);
    let run = case.health(
        &stranger,
        "localhost",
        "insecure_skip_verify = true\n",
        &with_root,
    );
    up(&run);
    assert!(run.stderr.contains("NOT checked"), "{}", run.stderr);
}

#[test]
fn client_certificate_is_presented_when_configured() {
    let case = Case::new();
    let ca = Ca::new("sxs test CA", None);
    let clients = Ca::new("sxs test clients", None);
    let server = case.serve(&ca, "localhost", false, None, Some(&clients));
    let ca_file = case.write("ca.pem", &ca.pem);
    let (cert, key) = clients.leaf("sxs-auth", ExtendedKeyUsagePurpose::ClientAuth, false);
    let cert = case.write("client.pem", &cert);
    let key = case.write("client.key", &key);
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let system = case.bundle(&[]);
    up(&case.health(
        &server,
        "localhost",
        &format!("ca_file = {ca_file:?}\nclient_cert = {cert:?}\nclient_key = {key:?}\n"),
        &system,
    ));
    // Without it, OpenSSL ends the handshake.
    let run = case.health(
        &server,
        "localhost",
        &format!("ca_file = {ca_file:?}\n"),
        &system,
    );
    run.expect(3);
    assert!(run.stdout.contains("DOWN"), "{}", run.stdout);
}
