//! The protocol of the daemon's PAM socket (`[push] socket`, `/run/sxs/radiusd/push.sock`), shared by
//! its two ends: `sxs-radiusd` serves it, `pam_sxs.so` and `sxsctl push` ask through it with the
//! blocking [`ask`] here (no runtime, no thread: a `UnixStream` with timeouts).
//!
//! Line-delimited JSON, one request per connection, each line at most [`MAX_LINE`] bytes:
//! ```text
//! → {"op":"push","user":"alice","service":"sshd","rhost":"192.0.2.7"}
//! ← {"event":"started"}
//! ← {"event":"done","result":"accept"}
//! ```
//! `op` is `push` or `oob`; an `oob` login is answered `{"event":"challenge","challenge":"…"}`
//! where a push is answered `started`. `done.result` is one of [`Outcome`]; `code` (an SxS
//! exception code or a `local:` code) and `message` come with refusals. Nothing secret ever
//! crosses the socket: the OTP that came with an approval is validated inside the daemon.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Longest line either side sends or accepts, newline included.
pub const MAX_LINE: usize = 4096;

/// What one connection may take beyond `push.timeout` on the daemon's side: SxS's answer to
/// the push request, and the validation of the OTP that came with the callback.
pub const SERVER_MARGIN: Duration = Duration::from_secs(10);

/// How long a client waits in all for a request under `push.timeout`: the daemon's budget and
/// two seconds more, so the daemon's own answer (a timeout) arrives first.
pub fn client_deadline(push_timeout: Duration) -> Duration {
    push_timeout + SERVER_MARGIN + Duration::from_secs(2)
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A push to the user's mToken app.
    Push,
    /// An out-of-band login: a challenge the user's authenticator app answers.
    Oob,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Push => "push",
            Op::Oob => "oob",
        }
    }
}

/// The one request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub op: Op,
    /// The login name as PAM has it; the daemon maps it with `[identity]`.
    pub user: String,
    /// The PAM service (or `sxsctl`), for logs.
    #[serde(default)]
    pub service: String,
    /// The remote host, for logs.
    #[serde(default)]
    pub rhost: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Approved, and the OTP that came with the approval was validated by SxS.
    Accept,
    /// SxS said no (`code` is its exception code), or the user is not enrolled (`local:` code).
    Reject,
    /// The user denied it on the phone.
    Denied,
    /// No answer within `push.timeout`.
    Timeout,
    /// SxS could not be reached (to start the push or to validate its OTP): `failmode` decides.
    Unavailable,
    /// The daemon refused to start one: too many waiting (`push.max_pending_per_user`,
    /// `push.max_pending`), or the approval store is down.
    Refused,
    /// The request was wrong, or the daemon cannot do it (no `[http]` section): `code` says.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject => "reject",
            Outcome::Denied => "denied",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

/// A line from the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// SxS took the push: it is on the user's phone.
    Started,
    /// The out-of-band challenge to show (digits).
    Challenge { challenge: String },
    /// The end.
    Done(Done),
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Done {
    pub fn new(result: Outcome) -> Self {
        Done {
            result,
            code: None,
            message: None,
        }
    }

    pub fn with(result: Outcome, code: impl Into<String>, message: impl Into<String>) -> Self {
        Done {
            result,
            code: Some(code.into()),
            message: Some(message.into()),
        }
    }
}

/// Why [`ask`] got no `done`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// Nothing listens at the socket (the daemon is not running) or it cannot be reached.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    /// The daemon did not finish within the deadline.
    #[error("no answer from the daemon within {0:?}")]
    Timeout(Duration),
    /// The connection broke or closed before `done` (the daemon stopped or crashed).
    #[error("the daemon closed the connection before answering")]
    Closed,
    /// A line that is not this protocol.
    #[error("the daemon's answer is not understood: {0}")]
    Protocol(String),
}

/// Asks the daemon at `path` and waits, at most `deadline` in all, for its `done`; every
/// earlier event (`started`, `challenge`) is handed to `on_event` as it arrives.
pub fn ask(
    path: &Path,
    request: &Request,
    deadline: Duration,
    mut on_event: impl FnMut(&Event),
) -> Result<Done, AskError> {
    let end = Instant::now() + deadline;
    let mut stream = UnixStream::connect(path).map_err(|source| AskError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    let mut line = serde_json::to_vec(request).map_err(|e| AskError::Protocol(e.to_string()))?;
    line.push(b'\n');
    let broken = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            AskError::Timeout(deadline)
        }
        _ => AskError::Closed,
    };
    stream
        .set_write_timeout(Some(deadline.max(Duration::from_millis(1))))
        .map_err(broken)?;
    stream.write_all(&line).map_err(broken)?;
    let mut reader = BufReader::new(stream);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AskError::Timeout(deadline));
        }
        reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(broken)?;
        let mut buf = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .map_err(broken)?;
        if n == 0 {
            return Err(AskError::Closed);
        }
        if buf.last() != Some(&b'\n') {
            return Err(if n >= MAX_LINE {
                AskError::Protocol(format!("a line longer than {MAX_LINE} bytes"))
            } else {
                AskError::Closed
            });
        }
        let event: Event =
            serde_json::from_slice(&buf).map_err(|e| AskError::Protocol(e.to_string()))?;
        match event {
            Event::Done(done) => return Ok(done),
            other => on_event(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let r: Request =
            serde_json::from_str(r#"{"op":"push","user":"alice","service":"sshd","rhost":"h"}"#)
                .unwrap();
        assert_eq!((r.op, r.user.as_str()), (Op::Push, "alice"));
        assert!(serde_json::from_str::<Request>(r#"{"op":"push","user":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"fax","user":"a"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Event::Started).unwrap(),
            r#"{"event":"started"}"#
        );
        assert_eq!(
            serde_json::to_string(&Event::Done(Done::new(Outcome::Accept))).unwrap(),
            r#"{"event":"done","result":"accept"}"#
        );
        assert_eq!(
            serde_json::to_string(&Event::Done(Done::with(Outcome::Reject, "2010", "Wrong")))
                .unwrap(),
            r#"{"event":"done","result":"reject","code":"2010","message":"Wrong"}"#
        );
        let c: Event = serde_json::from_str(r#"{"event":"challenge","challenge":"1234"}"#).unwrap();
        assert_eq!(
            c,
            Event::Challenge {
                challenge: "1234".into()
            }
        );
    }

    #[test]
    fn ask_reports_absent_closed_slow_and_garbled_daemons() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let req = Request {
            op: Op::Push,
            user: "alice".into(),
            service: "t".into(),
            rhost: String::new(),
        };
        assert!(matches!(
            ask(&path, &req, Duration::from_secs(1), |_| {}),
            Err(AskError::Connect { .. })
        ));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let serve = |reply: &'static [u8], hold: Option<std::sync::mpsc::Receiver<()>>| {
            let l = listener.try_clone().unwrap();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut line = String::new();
                BufReader::new(s.try_clone().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert!(line.contains("\"op\":\"push\""), "{line}");
                s.write_all(reply).unwrap();
                // Holds the connection open, silent, until the client gave up.
                if let Some(rx) = hold {
                    let _ = rx.recv();
                }
            })
        };
        let t = serve(
            b"{\"event\":\"started\"}\n{\"event\":\"done\",\"result\":\"denied\"}\n",
            None,
        );
        let mut seen = Vec::new();
        let done = ask(&path, &req, Duration::from_secs(5), |e| {
            seen.push(e.clone())
        })
        .unwrap();
        assert_eq!((done.result, seen), (Outcome::Denied, vec![Event::Started]));
        t.join().unwrap();
        let t = serve(b"{\"event\":\"started\"}\n", None);
        assert!(matches!(
            ask(&path, &req, Duration::from_secs(5), |_| {}),
            Err(AskError::Closed)
        ));
        t.join().unwrap();
        let (release, hold) = std::sync::mpsc::channel();
        let t = serve(b"{\"event\":\"started\"}\n", Some(hold));
        assert!(matches!(
            ask(&path, &req, Duration::from_millis(100), |_| {}),
            Err(AskError::Timeout(_))
        ));
        release.send(()).unwrap();
        t.join().unwrap();
        let t = serve(b"hello\n", None);
        assert!(matches!(
            ask(&path, &req, Duration::from_secs(5), |_| {}),
            Err(AskError::Protocol(_))
        ));
        t.join().unwrap();
    }
}
