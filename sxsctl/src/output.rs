//! Standard output: aligned `key  value` lines for people, one JSON object for scripts.
//!
//! Writes go through `writeln!` and return errors (a closed pipe is an error, never a panic).

use std::fmt::Display;
use std::io::{self, Write};
use std::time::Duration;

/// Width of the key column in human output.
const KEY_WIDTH: usize = 19;

/// Where a command writes its result.
#[derive(Debug)]
pub struct Out {
    json: bool,
    w: io::Stdout,
}

impl Out {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            w: io::stdout(),
        }
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }

    /// One line of text.
    pub fn line(&mut self, text: impl Display) -> io::Result<()> {
        writeln!(self.w, "{text}")
    }

    /// An empty line.
    pub fn blank(&mut self) -> io::Result<()> {
        writeln!(self.w)
    }

    /// `key              value`, at least two spaces apart.
    pub fn field(&mut self, key: &str, value: impl Display) -> io::Result<()> {
        let width = KEY_WIDTH.max(key.len() + 2);
        writeln!(self.w, "{key:<width$}{value}")
    }

    /// The one JSON object of `--json`.
    pub fn emit(&mut self, value: &serde_json::Value) -> io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
        writeln!(self.w, "{text}")?;
        self.w.flush()
    }
}

/// A latency in milliseconds with one decimal, for people and JSON alike.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// `12.3 ms`.
pub fn latency(d: Duration) -> String {
    format!("{:.1} ms", millis(d))
}

/// A warning on standard error (both output modes).
pub fn warn(text: impl Display) {
    let _ = writeln!(io::stderr(), "warning: {text}");
}

/// The `error: …` line of a command that reports its own partial failure.
pub fn error(text: impl Display) {
    let _ = writeln!(io::stderr(), "error: {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_rounds_to_a_tenth() {
        assert_eq!(millis(Duration::from_micros(1234)), 1.2);
        assert_eq!(latency(Duration::from_micros(15_060)), "15.1 ms");
    }
}
