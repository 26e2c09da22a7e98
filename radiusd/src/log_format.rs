//! The fields of a log line, written as `tracing_subscriber`'s default formatter writes them,
//! with less work for the common case: the per-decision line is written once per request.
//!
//! [`FastTime`] writes the timestamp as `tracing_subscriber`'s `SystemTime` timer does, with
//! the date and time of day formatted once per second per thread.
//!
//! `tracing_subscriber`'s `DefaultFields` writes every field through `core::fmt` (a string
//! field as `{:?}`, escaping it one character at a time, even when nothing needs escaping)
//! and paints each field name with a no-op style. [`FastFields`] writes what needs no
//! escaping directly: a string of printable ASCII without `"` or `\` between quotes, integers
//! and booleans as digits, a message of printable ASCII as it is. Everything else (control
//! characters, non-ASCII text, `r#` names, `log.` metadata, errors, coloured output on a
//! terminal) goes to `DefaultFields`' own visitor, so the text of a line is the same byte for
//! byte (the tests compare both on every kind of field and value).

use std::cell::Cell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{
    DefaultVisitor, Format, FormatEvent, FormatFields, Full, Writer,
};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// The timer of the daemon's log lines: `2026-11-23T21:45:48.123456Z`, UTC, as
/// `tracing_subscriber::fmt::time::SystemTime` writes it.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastTime;

/// The last second whose `YYYY-MM-DDTHH:MM:SS.` was written on this thread.
const NO_SECOND: u64 = u64::MAX;

thread_local! {
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((NO_SECOND, [0; 20])) };
}

/// The last second of year 9999: later times (and times before 1970) are left to the
/// default timer, which writes them its own way.
const LAST_SECOND: u64 = 253_402_300_799;

/// The proleptic Gregorian date of a day counted from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix second up to [`LAST_SECOND`].
fn second_prefix(secs: u64) -> [u8; 20] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            if let Some(b) = out.get_mut(i) {
                *b = b'0' + (value % 10) as u8;
            }
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3_600);
    put(14, 2, in_day / 60 % 60);
    put(17, 2, in_day % 60);
    out
}

impl FormatTime for FastTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let since = SystemTime::now().duration_since(UNIX_EPOCH);
        let Some(since) = since.ok().filter(|d| d.as_secs() <= LAST_SECOND) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since.as_secs();
        let prefix = SECOND.with(|cell| {
            let (cached, prefix) = cell.get();
            if cached == secs {
                return prefix;
            }
            let prefix = second_prefix(secs);
            cell.set((secs, prefix));
            prefix
        });
        let mut micros = itoa::Buffer::new();
        let micros = micros.format(since.subsec_micros());
        w.write_str(std::str::from_utf8(&prefix).map_err(|_| fmt::Error)?)?;
        w.write_str("000000".get(micros.len()..).unwrap_or_default())?;
        w.write_str(micros)?;
        w.write_char('Z')
    }
}

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

/// The event formatter of the daemon's log lines: `tracing_subscriber`'s default (`Full`)
/// format, with the timestamp, level and target of a plain event (no terminal colours, no
/// span, no `log` record) written directly rather than through `core::fmt`. Every other event
/// goes to the default formatter itself.
#[derive(Debug)]
pub struct FastFormat<T> {
    timer: Option<T>,
    full: Format<Full, T>,
}

impl<T: FormatTime + Clone> FastFormat<T> {
    /// Lines with this timer's timestamps.
    pub fn new(timer: T) -> Self {
        Self {
            full: Format::default().with_timer(timer.clone()),
            timer: Some(timer),
        }
    }
}

impl FastFormat<()> {
    /// Lines without timestamps.
    pub fn without_time() -> Self {
        Self {
            timer: None,
            full: Format::default().without_time(),
        }
    }
}

impl<S, N, T> FormatEvent<S, N> for FastFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if writer.has_ansi_escapes()
            || meta.fields().iter().any(|f| f.name().starts_with("log."))
            || ctx.event_scope().is_some()
        {
            return self.full.format_event(ctx, writer, event);
        }
        if let Some(timer) = &self.timer {
            // As the default formatter: a failing clock is written as such, not an error.
            if timer.format_time(&mut writer).is_err() {
                writer.write_str("<unknown time>")?;
            }
            writer.write_str(" ")?;
        }
        writer.write_str(match *meta.level() {
            Level::TRACE => "TRACE ",
            Level::DEBUG => "DEBUG ",
            Level::INFO => " INFO ",
            Level::WARN => " WARN ",
            Level::ERROR => "ERROR ",
        })?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_str("\n")
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
        tracing::trace!(level = "trace", "every level");
        tracing::debug!(level = "debug", "every level");
        tracing::error!(level = "error", "every level");
        tracing::info!(target: "custom::target", x = 1u64, "another target");
        tracing::warn!(target: "", "an empty target");
        let span = tracing::info_span!("span", user = "in span", n = 3u64, q = "a\"b");
        let _e = span.enter();
        tracing::info!(inner = "x", "in a span");
    }

    fn render(fast: bool, ansi: bool) -> String {
        let sink = Sink::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(sink.clone())
            .with_ansi(ansi)
            .with_max_level(tracing::Level::TRACE)
            .without_time();
        if fast {
            let s = builder
                .event_format(FastFormat::without_time())
                .fmt_fields(FastFields)
                .finish();
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

    /// A timer that writes a fixed text, or fails.
    #[derive(Debug, Clone, Copy)]
    struct Fixed(bool);
    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("T0")?;
            if self.0 {
                Ok(())
            } else {
                Err(fmt::Error)
            }
        }
    }

    #[test]
    fn timestamps_are_placed_as_the_default_formatter_places_them() {
        for timer in [Fixed(true), Fixed(false)] {
            for ansi in [false, true] {
                let line = |fast: bool| {
                    let sink = Sink::default();
                    let builder = tracing_subscriber::fmt()
                        .with_writer(sink.clone())
                        .with_ansi(ansi)
                        .fmt_fields(FastFields);
                    let log = || {
                        tracing::info!(user = "u", "radius decision");
                        tracing::info!(target: "t", "plain");
                    };
                    if fast {
                        let s = builder.event_format(FastFormat::new(timer)).finish();
                        tracing::subscriber::with_default(s, log);
                    } else {
                        let s = builder.with_timer(timer).finish();
                        tracing::subscriber::with_default(s, log);
                    }
                    let bytes = sink.0.lock().unwrap().clone();
                    String::from_utf8(bytes).unwrap()
                };
                let (default, fast) = (line(false), line(true));
                assert_eq!(default.lines().count(), 2, "{default}");
                assert_eq!(default, fast, "{timer:?} ansi {ansi}");
            }
        }
    }

    #[test]
    fn seconds_are_written_as_dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (951_868_799, "2000-02-29T23:59:59."),
            (1_709_251_199, "2024-02-29T23:59:59."),
            (1_795_466_748, "2026-11-23T20:45:48."),
            (4_107_542_400, "2100-03-01T00:00:00."),
            (LAST_SECOND, "9999-12-31T23:59:59."),
        ] {
            assert_eq!(&second_prefix(secs), text.as_bytes(), "{secs}");
        }
    }

    /// The timestamp is the default timer's, to the second (both read the clock), with six
    /// digits of microseconds, on a first call and on calls within the same second.
    #[test]
    fn timestamps_read_as_the_default_timers() {
        let format = |timer: &dyn FormatTime| {
            let mut s = String::new();
            timer.format_time(&mut Writer::new(&mut s)).unwrap();
            s
        };
        let mut compared = 0;
        while compared < 3 {
            let before = format(&tracing_subscriber::fmt::time::SystemTime);
            let ours = format(&FastTime);
            let again = format(&FastTime);
            let after = format(&tracing_subscriber::fmt::time::SystemTime);
            if before[..19] != after[..19] {
                continue; // a second ended in between
            }
            for t in [&ours, &again] {
                assert_eq!(t[..20], before[..20], "{t} {before}");
                assert_eq!(t.len(), before.len(), "{t} {before}");
                assert!(t[20..26].bytes().all(|b| b.is_ascii_digit()), "{t}");
                assert!(t.ends_with('Z'), "{t}");
            }
            compared += 1;
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
