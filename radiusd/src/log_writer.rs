//! Where the daemon's log lines go: standard error (the journal under systemd), written by a
//! thread of its own so that a request never waits on a `write` to stderr.
//!
//! Request tasks format their line (the decision line, one per request) and queue it; the
//! writer thread takes every line queued since its last write and writes them together, so
//! under load many lines cost one `write`. Nothing is dropped: the queue holds up to
//! [`QUEUED_LINES`] lines, and when it is full a logger waits for room rather than lose a
//! line (the same back-pressure a slow stderr put on it before). [`LogGuard`] writes what is
//! queued when it is dropped, at the end of `main`, after SIGTERM's drain.

use std::io::{BufWriter, Write};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Lines the queue holds before loggers wait: ~0.5 MiB of slots (tracing-appender's default,
/// 128 000, preallocates ~4 MiB); a second of lines at full speed.
pub const QUEUED_LINES: usize = 16_384;

/// Writes the queued lines when dropped; keep it until the process ends.
#[derive(Debug)]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// A lossless non-blocking writer onto `sink` (stderr for the daemon, anything in tests).
pub fn non_blocking<W: Write + Send + 'static>(sink: W) -> (NonBlocking, LogGuard) {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("sxs-radiusd-log")
        // Lines queued while the thread writes go out together: the buffer is flushed each
        // time the queue is empty.
        .finish(BufWriter::with_capacity(64 * 1024, sink));
    (writer, LogGuard { _worker: guard })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink tests can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Many threads logging at once, far more lines than the queue holds: after the guard is
    /// dropped every line is there, whole, exactly once.
    #[test]
    fn no_line_is_lost_and_the_guard_flushes_the_rest() {
        let sink = Shared::default();
        let (writer, guard) = non_blocking(sink.clone());
        let threads = 4;
        let per_thread = QUEUED_LINES / 2;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        w.write_all(format!("line {t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        drop(writer);
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            assert!(seen.insert(line.to_string()), "{line:?} written twice");
        }
        assert_eq!(seen.len(), threads * per_thread);
        for t in 0..threads {
            for i in [0, per_thread / 2, per_thread - 1] {
                assert!(seen.contains(&format!("line {t} {i}")), "line {t} {i} lost");
            }
        }
    }
}
