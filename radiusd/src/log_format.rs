//! The fields of a log line, written as `tracing_subscriber`'s default formatter writes them,
//! with less work for the common case: the per-decision line is written once per request.
//!
//! `tracing_subscriber`'s `DefaultFields` writes every field through `core::fmt` (a string
//! field as `{:?}`, escaping it one character at a time, even when nothing needs escaping)
//! and paints each field name with a no-op style. [`FastFields`] writes what needs no
//! escaping directly: a string of printable ASCII without `"` or `\` between quotes, integers
//! and booleans as digits, a message of printable ASCII as it is. Everything else (control
//! characters, non-ASCII text, `r#` names, `log.` metadata, errors, coloured output on a
//! terminal) goes to `DefaultFields`' own visitor, so the text of a line is the same byte for
//! byte (the tests compare both on every kind of field and value).

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The field formatter of the daemon's log lines; see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastFields;

impl<'a> MakeVisitor<Writer<'a>> for FastFields {
    type Visitor = FastVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        FastVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields; see [`FastFields`].
#[derive(Debug)]
pub struct FastVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

/// Whether `{:?}` of `s` is `s` between quotes: printable ASCII without `"` or `\`.
fn debug_is_verbatim(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// Whether a message is written as it is: printable ASCII (the default formatter escapes
/// control characters and DEL in messages).
fn message_is_verbatim(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// A message's text, when it fits a small stack buffer (the usual, literal message).
struct Small {
    buf: [u8; 128],
    len: usize,
}

impl Small {
    fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.buf.get(..self.len)?).ok()
    }
}

impl Write for Small {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl FastVisitor<'_> {
    /// Whether this field may take the direct path (else the default visitor writes it).
    fn direct(&self, name: &str) -> bool {
        self.result.is_ok()
            && !self.writer.has_ansi_escapes()
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// The separator before a field, then `name=` (the message has no name).
    fn start(&mut self, name: &str) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.writer.write_str(name)?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    /// The default visitor writes this field, continuing the line where it stands.
    fn fallback(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        // It skips `log.` metadata (the fields `tracing-log` adds to a `log` record) without
        // writing anything; anything else it wrote.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    fn write_plain(&mut self, field: &Field, text: &str) {
        self.result = self
            .start(field.name())
            .and_then(|()| self.writer.write_str(text));
    }
}

impl Visit for FastVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if !self.direct(name) {
            return self.fallback(field, |v| v.record_str(field, value));
        }
        if name == "message" {
            if !message_is_verbatim(value) {
                return self.fallback(field, |v| v.record_str(field, value));
            }
            self.result = self.start(name).and_then(|()| self.writer.write_str(value));
            return;
        }
        if !debug_is_verbatim(value) {
            return self.fallback(field, |v| v.record_str(field, value));
        }
        self.result = self.start(name).and_then(|()| {
            self.writer.write_char('"')?;
            self.writer.write_str(value)?;
            self.writer.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.direct(field.name()) {
            return self.fallback(field, |v| v.record_u64(field, value));
        }
        self.write_plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.direct(field.name()) {
            return self.fallback(field, |v| v.record_i64(field, value));
        }
        self.write_plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.direct(field.name()) {
            return self.fallback(field, |v| v.record_bool(field, value));
        }
        self.write_plain(field, if value { "true" } else { "false" });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fallback(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if !self.direct(name) {
            return self.fallback(field, |v| v.record_debug(field, value));
        }
        if name == "message" {
            // A message is a `format_args!`: its text decides how it is written.
            let mut small = Small {
                buf: [0; 128],
                len: 0,
            };
            let text = match write!(small, "{value:?}") {
                Ok(()) => small.as_str().filter(|t| message_is_verbatim(t)),
                Err(_) => None,
            };
            let Some(text) = text else {
                return self.fallback(field, |v| v.record_debug(field, value));
            };
            self.result = self.start(name).and_then(|()| self.writer.write_str(text));
            return;
        }
        self.result = self
            .start(name)
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for FastVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for FastVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("inner \"cause\"")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer\x1b[31m")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Every kind of field and value this daemon logs, and the awkward ones.
    fn events() {
        let strings = [
            "",
            "alice",
            "bench user 01",
            "with \"quotes\"",
            "back\\slash",
            "it's",
            "tab\there",
            "new\nline",
            "esc\x1b[31mred",
            "del\x7f",
            "c1\u{85}next",
            "žluťoučký",
            "emoji 🙂",
            "zero\u{200b}width",
            "combining e\u{301}",
            "nul\0",
        ];
        for s in strings {
            tracing::info!(user = s, client = "c", "radius decision");
            tracing::info!(value = s, "{s}");
            tracing::warn!("{}", s);
            tracing::info!(r#type = s, "raw name");
            tracing::info!(%s, ?s, "display and debug");
        }
        let peer: std::net::SocketAddr = "127.0.0.1:1812".parse().unwrap();
        tracing::info!(
            client = "nas",
            %peer,
            id = 7u8,
            n = u64::MAX,
            m = i64::MIN,
            z = 0u64,
            ok = true,
            no = false,
            sxs_ms = Some(12u64),
            none = None::<u64>,
            f = 1.5f64,
            "many fields"
        );
        let error = Outer(Inner);
        tracing::warn!(
            error = &error as &(dyn std::error::Error + 'static),
            "an error with a source"
        );
        tracing::warn!(error = %error, "an error displayed");
        tracing::info!(a = 1u64, "a message that is long enough not to fit the small buffer of one hundred and twenty-eight bytes used for messages, surely");
        tracing::info!(a = 1u64, "");
        tracing::info!("message only");
        tracing::info!(only = "fields");
        tracing::info!(log.target = "skipped", after = 1u64);
        tracing::info!(log.target = "skipped", "message after metadata");
        tracing::info!(message = "explicit message field", after = 1u64);
        tracing::info!(message = "explicit\u{1b} message", after = 1u64);
        let span = tracing::info_span!("span", user = "in span", n = 3u64, q = "a\"b");
        let _e = span.enter();
        tracing::info!(inner = "x", "in a span");
    }

    fn render(fast: bool, ansi: bool) -> String {
        let sink = Sink::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(ansi)
            .without_time();
        if fast {
            let s = builder.fmt_fields(FastFields).finish();
            tracing::subscriber::with_default(s, events);
        } else {
            let s = builder.fmt_fields(DefaultFields::new()).finish();
            tracing::subscriber::with_default(s, events);
        }
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn lines_are_the_default_formatters_byte_for_byte() {
        for ansi in [false, true] {
            let default = render(false, ansi);
            let fast = render(true, ansi);
            assert!(default.lines().count() > 80, "{default}");
            for (d, f) in default.lines().zip(fast.lines()) {
                assert_eq!(d, f, "ansi {ansi}");
            }
            assert_eq!(default, fast, "ansi {ansi}");
        }
    }

    #[test]
    fn the_decision_line_reads_as_before() {
        let text = render(true, false);
        assert!(
            text.contains(
                r#"INFO radiusd::log_format::tests: radius decision user="alice" client="c""#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"user="with \"quotes\"" client="c""#),
            "{text}"
        );
        assert!(text.contains(r#"user="esc\u{1b}[31mred""#), "{text}");
        assert!(
            text.contains(
                "many fields client=\"nas\" peer=127.0.0.1:1812 id=7 n=18446744073709551615 \
                 m=-9223372036854775808 z=0 ok=true no=false sxs_ms=12 f=1.5"
            ),
            "{text}"
        );
    }
}
