//! `sxs.max_connections`: how many SxS calls (each on its own HTTP connection) may be in flight.
//!
//! The default, `"auto"`, is sized from the process's open-files limit when the client is
//! built, so a daemon whose limit was raised (systemd `LimitNOFILE`, `sxs-radiusd` raises its
//! soft limit to the hard one) reaches the machine's rate with SxS's real latency, while
//! [`AUTO_CAP`] still bounds the sockets opened towards SxS.

use serde::Deserialize;

/// The most connections `"auto"` ever picks: protection for SxS and for our memory.
pub const AUTO_CAP: usize = 4096;

/// `sxs.max_connections` as validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    /// Half the open-files limit (the other half stays for clients, RADIUS/TLS, HTTP and
    /// files), at most [`AUTO_CAP`], at least 1.
    Auto,
    /// Exactly this many, as the operator wrote.
    Fixed(usize),
}

/// The key as written: a positive integer or `"auto"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawConnectionLimit {
    Count(i64),
    Word(String),
}

impl RawConnectionLimit {
    /// `Err` says what was wrong with the value.
    pub(super) fn validate(self) -> Result<ConnectionLimit, &'static str> {
        match self {
            RawConnectionLimit::Count(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .map(ConnectionLimit::Fixed)
                .ok_or("must be at least 1 (or \"auto\")"),
            RawConnectionLimit::Word(w) if w == "auto" => Ok(ConnectionLimit::Auto),
            RawConnectionLimit::Word(_) => Err("must be a positive integer or \"auto\""),
        }
    }
}

impl ConnectionLimit {
    /// The number for a process whose soft open-files limit is `open_files`.
    pub fn for_open_files(self, open_files: u64) -> usize {
        match self {
            ConnectionLimit::Fixed(n) => n,
            ConnectionLimit::Auto => {
                let half = usize::try_from(open_files / 2).unwrap_or(usize::MAX);
                half.clamp(1, AUTO_CAP)
            }
        }
    }

    /// The number for this process, as its open-files limit stands now (1024 assumed when it
    /// cannot be read).
    pub fn resolve(self) -> usize {
        let open_files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _hard)| soft);
        self.for_open_files(open_files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_half_the_open_files_within_bounds() {
        assert_eq!(ConnectionLimit::Auto.for_open_files(1024), 512);
        assert_eq!(ConnectionLimit::Auto.for_open_files(65536), AUTO_CAP);
        assert_eq!(ConnectionLimit::Auto.for_open_files(524_288), AUTO_CAP);
        assert_eq!(ConnectionLimit::Auto.for_open_files(5000), 2500);
        assert_eq!(ConnectionLimit::Auto.for_open_files(1), 1);
        assert_eq!(ConnectionLimit::Auto.for_open_files(u64::MAX), AUTO_CAP);
        assert_eq!(ConnectionLimit::Fixed(7).for_open_files(1024), 7);
    }

    #[test]
    fn auto_follows_the_process_limit() {
        let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .unwrap_or((1024, 1024));
        assert_eq!(
            ConnectionLimit::Auto.resolve(),
            ConnectionLimit::Auto.for_open_files(soft)
        );
    }
}
