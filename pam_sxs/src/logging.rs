//! Log plumbing: the text of a log line, `common`'s `tracing` events gathered during one call,
//! and syslog datagrams for `syslog_socket=`.
//!
//! The module never installs a global `tracing` subscriber (the host process owns its
//! globals): it scopes a small collector to the call with `tracing::subscriber::with_default`
//! and forwards what it gathered to syslog through the PAM handle afterwards. Only events from
//! `common` are gathered, so a library's debug output (which could include a request body)
//! can never reach the log.
#![forbid(unsafe_code)]

use std::fmt::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::pam::Level;

/// syslog facility `LOG_AUTHPRIV`.
pub const LOG_AUTHPRIV: i32 = 10 << 3;
/// Longest piece of user-controlled text put in a log line.
const MAX_FIELD: usize = 128;

/// Makes user-controlled text (user name, rhost, argument names) safe for a log line: control
/// characters become `?`, and the length is bounded.
pub fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_FIELD)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_FIELD {
        out.push('…');
    }
    out
}

/// A field value for `key=value` log lines: sanitized, quoted when it has spaces, `-` when
/// empty.
pub fn field(text: &str) -> String {
    let s = sanitize(text);
    if s.is_empty() {
        "-".into()
    } else if s.contains([' ', '"', '=']) {
        format!("{s:?}")
    } else {
        s
    }
}

/// Sends one line as an RFC 3164 syslog datagram (facility authpriv) to `socket`. Errors are
/// swallowed: logging never changes an authentication result.
pub fn send_datagram(socket: &Path, level: Level, tag: &str, line: &str) {
    let pri = LOG_AUTHPRIV | level.syslog_priority();
    let msg = format!("<{pri}>pam_sxs[{}]: {tag} {line}", std::process::id());
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.send_to(msg.as_bytes(), socket);
    }
}

/// Events gathered from `common` during one call.
pub type Gathered = Arc<Mutex<Vec<(Level, String)>>>;

/// A `tracing` subscriber that gathers `common`'s events up to `max` verbosity.
#[derive(Debug)]
pub struct Collector {
    max: tracing::Level,
    events: Gathered,
}

impl Collector {
    /// Gathers warnings and errors, or everything down to debug when `debug` is set.
    pub fn new(debug: bool) -> (Self, Gathered) {
        let events = Gathered::default();
        let max = if debug {
            tracing::Level::DEBUG
        } else {
            tracing::Level::WARN
        };
        (
            Self {
                max,
                events: events.clone(),
            },
            events,
        )
    }
}

/// Runs `f` with `common`'s events gathered into `collector`.
pub fn with_collector<T>(collector: Collector, f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(collector, f)
}

/// Takes the gathered events out.
pub fn drain(events: &Gathered) -> Vec<(Level, String)> {
    match events.lock() {
        Ok(mut v) => std::mem::take(&mut *v),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    }
}

fn level_of(l: &tracing::Level) -> Level {
    match *l {
        tracing::Level::ERROR => Level::Err,
        tracing::Level::WARN => Level::Warning,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

struct LineVisitor(String);

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), self::field(value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(
                self.0,
                " {}={}",
                field.name(),
                self::field(&format!("{value:?}"))
            );
        }
    }
}

impl Subscriber for Collector {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Decided per event: other dispatchers in the host process must not be affected.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= &self.max
            && (metadata.target() == "common" || metadata.target().starts_with("common::"))
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut v = LineVisitor(String::new());
        event.record(&mut v);
        let line = format!("{}: {}", event.metadata().target(), sanitize(&v.0));
        let level = level_of(event.metadata().level());
        match self.events.lock() {
            Ok(mut e) => e.push((level, line)),
            Err(p) => p.into_inner().push((level, line)),
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_and_field() {
        assert_eq!(sanitize("al\nice\x1b"), "al?ice?");
        assert_eq!(field(""), "-");
        assert_eq!(field("a b"), "\"a b\"");
        assert_eq!(field("alice"), "alice");
        assert!(sanitize(&"x".repeat(500)).chars().count() <= MAX_FIELD + 1);
    }

    #[test]
    fn gathers_only_common_events() {
        let (c, events) = Collector::new(false);
        with_collector(c, || {
            tracing::warn!(target: "common::client", server = "http://x", "not reachable");
            tracing::warn!(target: "hyper::proto", "body bytes 123456");
            tracing::info!(target: "common::client", "too verbose without debug");
        });
        let got = drain(&events);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, Level::Warning);
        assert_eq!(got[0].1, "common::client: not reachable server=http://x");
    }

    #[test]
    fn datagram_reaches_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        send_datagram(&path, Level::Notice, "(svc:auth)", "hello");
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("<85>pam_sxs["), "{text}");
        assert!(text.ends_with("(svc:auth) hello"), "{text}");
    }
}
