//! The RADIUS client table: which source addresses may talk to us, with which secret.

use std::net::IpAddr;
use std::sync::Arc;

use common::config::RadiusClient;

use crate::auth::PreparedSecret;

/// A configured client as the server uses it: its settings, its shared secret prepared for
/// HMAC once per (re)load rather than twice per request, and its metrics label. Requests in
/// flight share it.
#[derive(Debug)]
pub struct Client {
    pub config: RadiusClient,
    pub secret: PreparedSecret,
    /// The name as the metrics label it is (shared, not copied per request), and the
    /// client's counters once found.
    pub metrics: crate::metrics::ClientMetrics,
}

impl Client {
    pub fn new(config: RadiusClient) -> Arc<Self> {
        Arc::new(Self {
            secret: PreparedSecret::new(&config.secret),
            metrics: crate::metrics::ClientMetrics::new(&config.name),
            config,
        })
    }
}

/// Clients by network; the most specific network wins.
#[derive(Debug, Clone, Default)]
pub struct ClientTable {
    /// Sorted by prefix length, longest first.
    clients: Vec<Arc<Client>>,
}

impl ClientTable {
    pub fn new(clients: &[RadiusClient]) -> Self {
        let mut clients: Vec<Arc<Client>> = clients.iter().cloned().map(Client::new).collect();
        clients.sort_by_key(|c| std::cmp::Reverse(c.config.network.prefix_len()));
        Self { clients }
    }

    /// The client for a source address (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn lookup(&self, ip: IpAddr) -> Option<&Arc<Client>> {
        let ip = ip.to_canonical();
        self.clients.iter().find(|c| c.config.network.contains(&ip))
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::Secret;

    fn client(name: &str, net: &str) -> RadiusClient {
        RadiusClient {
            name: name.into(),
            network: net.parse().unwrap(),
            secret: Secret::from("0123456789"),
            require_message_authenticator: true,
            limit_proxy_state: false,
            methods: common::Methods::otp_only(),
            first_factor: Default::default(),
            password_otp: common::config::PasswordOtp::Challenge,
        }
    }

    #[test]
    fn most_specific_network_wins() {
        let t = ClientTable::new(&[
            client("wide", "10.0.0.0/8"),
            client("narrow", "10.1.2.3/32"),
            client("v6", "fd00::/64"),
        ]);
        assert_eq!(
            t.lookup("10.1.2.3".parse().unwrap()).unwrap().config.name,
            "narrow"
        );
        assert_eq!(
            t.lookup("10.9.9.9".parse().unwrap()).unwrap().config.name,
            "wide"
        );
        assert_eq!(
            t.lookup("::ffff:10.1.2.3".parse().unwrap())
                .unwrap()
                .config
                .name,
            "narrow"
        );
        assert_eq!(
            t.lookup("fd00::5".parse().unwrap()).unwrap().config.name,
            "v6"
        );
        assert!(t.lookup("192.0.2.1".parse().unwrap()).is_none());
        assert!(t.lookup("fd01::5".parse().unwrap()).is_none());
    }
}
