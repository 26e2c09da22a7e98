//! Upstream RADIUS first factor (`[first_factor.radius]`): the password goes as PAP to an
//! existing RADIUS server (FreeRADIUS, NPS) with that server's own shared secret.
//!
//! Every request carries a Message-Authenticator and every answer must carry a correct one
//! (plus a correct Response Authenticator and the request's Identifier), or it is ignored as if
//! it never came. Debian 12's FreeRADIUS 3.2.1 sends none unless its post-auth adds one, so
//! `require_message_authenticator = false` exists for servers that cannot. Servers are tried in order, each for `timeout`; only silence moves on to the
//! next one, an answer (Accept or Reject) is final. The packet codec is the server's own
//! ([`crate::packet`], [`crate::auth`]).

use std::net::SocketAddr;
use std::time::Duration;

use common::config::UpstreamRadiusSettings;
use common::Secret;
use tokio::net::UdpSocket;

use super::{Check, FirstFactor};
use crate::auth;
use crate::packet::{attr, encode_request, Code, AUTHENTICATOR_LEN, MAX_PACKET_LEN};
use crate::reply::PassThrough;

/// The upstream RADIUS backend.
#[derive(Debug)]
pub struct UpstreamRadius {
    settings: UpstreamRadiusSettings,
    pass: PassThrough,
}

enum Answer {
    Accept(crate::packet::Packet),
    Reject,
    Challenge,
}

impl UpstreamRadius {
    pub fn new(settings: &UpstreamRadiusSettings, pass: PassThrough) -> Self {
        Self {
            settings: settings.clone(),
            pass,
        }
    }

    async fn ask(&self, server: &str, user: &str, password: &Secret) -> Result<Answer, String> {
        let addr: SocketAddr = tokio::net::lookup_host(server)
            .await
            .map_err(|e| format!("cannot resolve: {e}"))?
            .next()
            .ok_or("no address")?;
        let bind: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
        socket.connect(addr).await.map_err(|e| e.to_string())?;
        let secret = self.settings.secret.expose();
        let authenticator: [u8; AUTHENTICATOR_LEN] = rand::random();
        let identifier: u8 = rand::random();
        let hidden = auth::encode_user_password(password.expose(), &authenticator, secret)
            .map_err(|e| e.to_string())?;
        let request = encode_request(
            Code::AccessRequest,
            identifier,
            &authenticator,
            &[
                (attr::USER_NAME, user.as_bytes()),
                (attr::USER_PASSWORD, &hidden),
                (
                    attr::NAS_IDENTIFIER,
                    self.settings.nas_identifier.as_bytes(),
                ),
            ],
            Some(secret),
        )
        .map_err(|e| e.to_string())?;
        socket.send(&request).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; MAX_PACKET_LEN];
        let deadline = tokio::time::Instant::now() + self.settings.timeout;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("no answer within {:?}", self.settings.timeout)),
            };
            let data = buf.get(..n).unwrap_or(&[]);
            if data.get(1) != Some(&identifier) {
                continue;
            }
            // The Response Authenticator always; the Message-Authenticator when present, and its
            // absence is refused unless `require_message_authenticator = false`.
            let has_ma = crate::packet::Packet::parse_response(data)
                .is_ok_and(|p| p.has_message_authenticator());
            let checked = if has_ma {
                auth::verify_response(data, &authenticator, secret)
            } else if self.settings.require_message_authenticator {
                tracing::warn!(server,
                    "upstream RADIUS answer ignored: it has no Message-Authenticator (FreeRADIUS before 3.2.5 adds one only when told to: \
                     `update reply {{ Message-Authenticator := 0x00 }}` in post-auth and Post-Auth-Type REJECT; \
                     or set first_factor.radius.require_message_authenticator = false)");
                continue;
            } else {
                auth::verify_response_authenticator(data, &authenticator, secret)
            };
            let packet = match checked {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(server, error = %e,
                        "upstream RADIUS answer ignored: it does not verify with first_factor.radius.secret");
                    continue;
                }
            };
            return Ok(match packet.code() {
                Code::AccessAccept => Answer::Accept(packet),
                Code::AccessChallenge => Answer::Challenge,
                _ => Answer::Reject,
            });
        }
    }
}

impl FirstFactor for UpstreamRadius {
    async fn check(&self, user: &str, password: &Secret) -> Check {
        if password.is_empty() {
            return Check::Fail {
                reason: "empty password".into(),
            };
        }
        let mut causes = Vec::new();
        for server in &self.settings.servers {
            match self.ask(server, user, password).await {
                Ok(Answer::Accept(packet)) => {
                    let received: Vec<(u8, &[u8])> = packet
                        .attributes()
                        .map(|a| (a.attr_type, a.value))
                        .collect();
                    let attributes = self.pass.select(&received);
                    return Check::Pass {
                        groups: Vec::new(),
                        attributes,
                    };
                }
                Ok(Answer::Reject) => {
                    return Check::Fail {
                        reason: format!("upstream {server} rejected the password"),
                    }
                }
                Ok(Answer::Challenge) => {
                    return Check::Fail {
                        reason: format!(
                            "upstream {server} answered Access-Challenge, which a first factor cannot relay"
                        ),
                    }
                }
                Err(cause) => {
                    tracing::warn!(server, cause, "upstream RADIUS server did not answer; trying the next");
                    causes.push(format!("{server}: {cause}"));
                }
            }
        }
        Check::Unavailable {
            cause: format!("no upstream RADIUS server answered: {}", causes.join("; ")),
        }
    }
}

/// Timeout per server, for the handler's own bound.
pub fn budget(settings: &UpstreamRadiusSettings) -> Duration {
    settings
        .timeout
        .saturating_mul(u32::try_from(settings.servers.len()).unwrap_or(u32::MAX))
}
