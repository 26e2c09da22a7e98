//! A real TLS peer for the SxS client's trust settings: `openssl s_server -WWW` on a free
//! loopback port, answering the health check (`GET /SxSWS/api/healthCheck`) with
//! `{"message":"ok"}`. Used by the TLS tests of `sxsctl` and by `sxs-bench client-build`;
//! needs the `openssl` command. Killed by its PID on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `openssl s_server -WWW`.
#[derive(Debug)]
pub struct TlsHealthPeer {
    child: Child,
    /// The loopback port it accepts on.
    pub port: u16,
}

impl TlsHealthPeer {
    /// Serves with `cert`/`key` (PEM), sends `chain` (intermediates, PEM) along when given,
    /// and requires a client certificate from `client_ca` when given. Files go under `dir`.
    pub fn start(
        dir: &Path,
        cert: &Path,
        key: &Path,
        chain: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> std::io::Result<TlsHealthPeer> {
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("SxSWS/api"))?;
        std::fs::write(www.join("SxSWS/api/healthCheck"), "{\"message\":\"ok\"}")?;
        let mut cmd = Command::new("openssl");
        cmd.current_dir(&www)
            .args(["s_server", "-WWW", "-accept", "127.0.0.1:0", "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key);
        if let Some(chain) = chain {
            cmd.arg("-cert_chain").arg(chain);
        }
        if let Some(ca) = client_ca {
            cmd.args(["-Verify", "1", "-verify_return_error", "-CAfile"])
                .arg(ca);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut peer = TlsHealthPeer { child, port: 0 };
        let Some(stdout) = peer.child.stdout.take() else {
            return Err(std::io::Error::other(
                "openssl s_server: no standard output",
            ));
        };
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        peer.port = loop {
            line.clear();
            if out.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other(
                    "openssl s_server exited before accepting",
                ));
            }
            if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
                match addr.rsplit(':').next().and_then(|p| p.parse().ok()) {
                    Some(port) => break port,
                    None => return Err(std::io::Error::other(format!("openssl s_server: {line}"))),
                }
            }
        };
        // Keep reading its output so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(peer)
    }
}

impl Drop for TlsHealthPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
