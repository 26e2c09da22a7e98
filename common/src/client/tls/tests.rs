//! The lazy system trust store against the whole bundle parsed up front: same chains, same
//! answers (accept, or the same refusal), on a copy of the machine's bundle with test CAs in it.

use std::io::Write;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

/// A CA named `name`: self-signed, or signed by `parent` (an intermediate).
fn ca(name: &str, parent: Option<&Ca>) -> Ca {
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
        der: cert.der().clone(),
        issuer: Issuer::new(p, key),
    }
}

/// A server certificate for `name` signed by `ca`; `expired` puts its validity in the past.
fn leaf(ca: &Ca, name: &str, expired: bool) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (from, to) = if expired {
        ((2020, 1, 1), (2021, 1, 1))
    } else {
        ((2024, 1, 1), (2040, 1, 1))
    };
    p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    p.signed_by(&key, &ca.issuer).unwrap().der().clone()
}

fn pem(der: &CertificateDer<'_>) -> String {
    let b64 = data_encoding::BASE64.encode(der.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn lazy_system_roots_answer_exactly_as_the_whole_bundle() {
    let root = ca("sxs test root", None);
    let intermediate = ca("sxs test intermediate", Some(&root));
    let direct = ca("sxs test direct", None);
    // Same name as `direct`, another key, also in the bundle: both are candidates for that
    // issuer name, and only the one whose key signed may vouch.
    let twin = ca("sxs test direct", None);
    // Same name as a bundle CA, not in the bundle: its certificates must fail the signature.
    let impostor = ca("sxs test root", None);
    let absent = ca("sxs test absent", None);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca-certificates.crt");
    let mut f = std::fs::File::create(&bundle).unwrap();
    // The machine's bundle (when there is one), so the lookup runs among real CAs.
    if let Ok(system) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
        f.write_all(&system).unwrap();
    }
    for c in [&root, &direct, &twin] {
        f.write_all(pem(&c.der).as_bytes()).unwrap();
    }
    drop(f);

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let lazy = SystemRoots::new(bundle.clone(), provider.clone());
    let mut all = RootCertStore::empty();
    let pem_bytes = std::fs::read(&bundle).unwrap();
    let (added, _) = all
        .add_parsable_certificates(CertificateDer::pem_slice_iter(&pem_bytes).map(Result::unwrap));
    assert!(added >= 3);
    let whole = WebPkiServerVerifier::builder_with_provider(Arc::new(all), provider)
        .build()
        .unwrap();

    let host = ServerName::try_from("sxs.example").unwrap();
    let other_host = ServerName::try_from("other.example").unwrap();
    let cases: Vec<(
        &str,
        CertificateDer<'static>,
        Vec<CertificateDer<'static>>,
        &ServerName<'_>,
        bool,
    )> = vec![
        (
            "leaf of a bundle CA",
            leaf(&direct, "sxs.example", false),
            vec![],
            &host,
            true,
        ),
        (
            "leaf + intermediate, root in the bundle",
            leaf(&intermediate, "sxs.example", false),
            vec![intermediate.der.clone()],
            &host,
            true,
        ),
        (
            "leaf of the intermediate, intermediate not sent",
            leaf(&intermediate, "sxs.example", false),
            vec![],
            &host,
            false,
        ),
        (
            "leaf of a CA not in the bundle",
            leaf(&absent, "sxs.example", false),
            vec![],
            &host,
            false,
        ),
        (
            "leaf of a second bundle CA of the same name",
            leaf(&twin, "sxs.example", false),
            vec![],
            &host,
            true,
        ),
        (
            "leaf of an impostor named as a bundle CA",
            leaf(&impostor, "sxs.example", false),
            vec![],
            &host,
            false,
        ),
        (
            "another host's certificate",
            leaf(&direct, "sxs.example", false),
            vec![],
            &other_host,
            false,
        ),
        (
            "expired leaf",
            leaf(&direct, "sxs.example", true),
            vec![],
            &host,
            false,
        ),
        (
            "a CA certificate as leaf",
            root.der.clone(),
            vec![],
            &host,
            false,
        ),
        (
            "garbage",
            CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
            vec![],
            &host,
            false,
        ),
    ];
    let now = UnixTime::now();
    for (name, ee, chain, server, accepted) in &cases {
        let mine = lazy.verify_server_cert(ee, chain, server, &[], now);
        let theirs = whole.verify_server_cert(ee, chain, server, &[], now);
        assert_eq!(mine.is_ok(), *accepted, "{name}: {mine:?}");
        assert_eq!(
            theirs.is_ok(),
            *accepted,
            "{name}: whole bundle: {theirs:?}"
        );
        // The same refusal, not just a refusal.
        assert_eq!(format!("{mine:?}"), format!("{theirs:?}"), "{name}");
    }
}

#[test]
fn the_bundle_reader_finds_what_rustls_finds() {
    let root = ca("sxs test root", None);
    let mut text = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    // CRLF line ends and a block that is not base64 (skipped by both).
    text.extend_from_slice(pem(&root.der).replace('\n', "\r\n").as_bytes());
    text.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    let mine: Vec<Vec<u8>> = pem_certificates(&text).collect();
    let theirs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&text)
        .filter_map(|c| c.ok().map(|c| c.as_ref().to_vec()))
        .collect();
    assert_eq!(mine.last(), Some(&root.der.as_ref().to_vec()));
    assert_eq!(mine, theirs);
}
