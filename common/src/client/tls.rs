//! What the SxS client trusts over `https`: the rustls configuration built from `[sxs]`.
//!
//! Without `sxs.ca_file` the system's CA bundle is the trust store. Parsing its ~150
//! certificates costs about 2 ms, and the PAM module builds a client per authentication, so
//! the bundle is not parsed up front: at the handshake, [`SystemRoots`] reads it and keeps
//! only the certificates whose subject is the issuer of a certificate the server presented.
//! webpki only ever uses a trust anchor whose subject equals the issuer of a certificate on
//! the path it builds, and every certificate of that path is one the server presented, so
//! the anchors left out could never have been used: the verification (path, signatures,
//! validity, name constraints, host name) is exactly the one of the whole bundle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::SxsSettings;
use crate::error::{Error, Result};

/// The rustls configuration of the SxS client: TLS 1.2 and 1.3 with ring, HTTP/1.1 by ALPN,
/// the server checked against `sxs.ca_file` (or the system bundle, lazily), the client
/// certificate of `sxs.client_cert`/`sxs.client_key` when set.
pub(crate) fn client_config(settings: &SxsSettings) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| Error::HttpClient(format!("TLS versions: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.insecure_skip_verify {
        Arc::new(SystemRoots::accept_any(provider))
    } else if let Some(ca) = &settings.ca_file {
        let pem = std::fs::read(ca).map_err(|source| Error::ReadFile {
            file: ca.clone(),
            key: "sxs.ca_file".into(),
            source,
        })?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| Error::HttpClient(format!("sxs.ca_file {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::HttpClient(format!("sxs.ca_file {}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(Error::HttpClient(format!(
                "sxs.ca_file {}: no PEM certificate in the file",
                ca.display()
            )));
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::HttpClient(format!("sxs.ca_file {}: {e}", ca.display())))?
    } else {
        Arc::new(SystemRoots::new(system_bundle()?, provider))
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => {
            let (chain, key_der) = client_identity(cert, key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                Error::HttpClient(format!(
                    "sxs.client_cert/sxs.client_key ({}, {}): {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate chain of `sxs.client_cert` and the key of `sxs.client_key` (the key's
/// bytes wiped once rustls holds its own copy).
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let bad = |what: String| {
        Error::HttpClient(format!(
            "sxs.client_cert/sxs.client_key ({}, {}): {what}",
            cert.display(),
            key.display()
        ))
    };
    let cert_pem = std::fs::read(cert).map_err(|source| Error::ReadFile {
        file: cert.to_path_buf(),
        key: "sxs.client_cert".into(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the certificate: {e}")))?;
    if chain.is_empty() {
        return Err(bad("no PEM certificate in sxs.client_cert".into()));
    }
    let key_pem =
        zeroize::Zeroizing::new(std::fs::read(key).map_err(|source| Error::ReadFile {
            file: key.to_path_buf(),
            key: "sxs.client_key".into(),
            source,
        })?);
    // The parser's error names the PEM problem, never the key's bytes.
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad(format!("no usable private key in sxs.client_key: {e}")))?;
    Ok((chain, key_der))
}

/// The system's CA bundle file (`SSL_CERT_FILE`, else the distribution's:
/// `/etc/ssl/certs/ca-certificates.crt` on Debian, what `update-ca-certificates` writes).
fn system_bundle() -> Result<PathBuf> {
    openssl_probe::probe().cert_file.ok_or_else(|| {
        Error::HttpClient(
            "an https SxS server and no sxs.ca_file, but no system CA bundle found (SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt, ...): set sxs.ca_file".into(),
        )
    })
}

/// At most this many issuer sets are remembered (one per chain SxS servers present).
const REMEMBERED_CHAINS: usize = 16;

/// The system CA bundle as trust store, read at the handshake for the issuers the server's
/// chain names (see the module comment). What a chain needs is remembered for the life of
/// the client, as a bundle parsed up front would be.
pub(crate) struct SystemRoots {
    /// `None`: `sxs.insecure_skip_verify`, any certificate is taken (the handshake's
    /// signature is still checked against it: the peer holds the key of what it presented).
    bundle: Option<PathBuf>,
    provider: Arc<CryptoProvider>,
    /// Issuer names of a presented chain → the verifier holding the bundle's matching CAs.
    known: Mutex<HashMap<Vec<Vec<u8>>, Arc<WebPkiServerVerifier>>>,
}

impl std::fmt::Debug for SystemRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemRoots")
            .field("bundle", &self.bundle)
            .finish_non_exhaustive()
    }
}

impl SystemRoots {
    pub(crate) fn new(bundle: PathBuf, provider: Arc<CryptoProvider>) -> Self {
        Self {
            bundle: Some(bundle),
            provider,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// No trust store: `sxs.insecure_skip_verify = true`.
    fn accept_any(provider: Arc<CryptoProvider>) -> Self {
        Self {
            bundle: None,
            provider,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The verifier for a chain whose certificates name `issuers`; `None` when the bundle
    /// holds no CA of those names (webpki would answer "unknown issuer").
    fn verifier_for(
        &self,
        bundle: &Path,
        issuers: Vec<Vec<u8>>,
    ) -> std::result::Result<Option<Arc<WebPkiServerVerifier>>, rustls::Error> {
        let mut known = match self.known.lock() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(v) = known.get(&issuers) {
            return Ok(Some(v.clone()));
        }
        let roots = Self::roots_named(bundle, &issuers)?;
        if roots.is_empty() {
            return Ok(None);
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("system CA bundle: {e}")))?;
        if known.len() >= REMEMBERED_CHAINS {
            known.clear();
        }
        known.insert(issuers, verifier.clone());
        Ok(Some(verifier))
    }

    /// The bundle's CA certificates whose subject is one of `issuers`. Only those are parsed:
    /// a certificate that does not contain a wanted name anywhere cannot have it as subject.
    fn roots_named(
        bundle: &Path,
        issuers: &[Vec<u8>],
    ) -> std::result::Result<RootCertStore, rustls::Error> {
        let pem = std::fs::read(bundle).map_err(|e| {
            rustls::Error::General(format!(
                "system CA bundle {} (sxs.ca_file not set): {e}",
                bundle.display()
            ))
        })?;
        let finders: Vec<_> = issuers
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| memchr::memmem::Finder::new(i.as_slice()))
            .collect();
        let mut roots = RootCertStore::empty();
        for der in pem_certificates(&pem) {
            if !finders.iter().any(|f| f.find(&der).is_some()) {
                continue;
            }
            let cert = CertificateDer::from(der);
            let Ok(anchor) = webpki::anchor_from_trusted_cert(&cert) else {
                continue;
            };
            if issuers
                .iter()
                .any(|i| i.as_slice() == anchor.subject.as_ref())
            {
                roots.roots.push(anchor.to_owned());
            }
        }
        Ok(roots)
    }
}

/// The DER of every `CERTIFICATE` block of a PEM bundle. A block that does not decode is
/// skipped: it cannot be a trust anchor. One base64 pass per block: rustls' PEM reader, line
/// by line, made the lookup two to three times as slow over the whole bundle, and every PAM
/// authentication without `ca_file` pays it.
fn pem_certificates(pem: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let base64 = {
        let mut spec = data_encoding::Specification::new();
        spec.symbols
            .push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
        spec.padding = Some('=');
        spec.ignore.push_str(" \t\r\n");
        spec.encoding().ok()
    };
    let mut rest = pem;
    std::iter::from_fn(move || loop {
        let start = memchr::memmem::find(rest, BEGIN)? + BEGIN.len();
        let len = memchr::memmem::find(rest.get(start..)?, END)?;
        let body = rest.get(start..start + len)?;
        rest = rest.get(start + len + END.len()..)?;
        if let Some(der) = base64.as_ref().and_then(|b| b.decode(body).ok()) {
            return Some(der);
        }
    })
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(bundle) = &self.bundle else {
            return Ok(ServerCertVerified::assertion());
        };
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let mut issuers = vec![leaf.issuer().to_vec()];
        // An intermediate that does not parse is left to webpki, which refuses it when it
        // tries the path through it.
        for der in intermediates {
            if let Ok(cert) = webpki::EndEntityCert::try_from(der) {
                issuers.push(cert.issuer().to_vec());
            }
        }
        issuers.sort();
        issuers.dedup();
        match self.verifier_for(bundle, issuers)? {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
