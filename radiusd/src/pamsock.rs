//! The PAM door: a Unix socket (`[push] socket`, by default `/run/sxs/radiusd/push.sock`) on which
//! `pam_sxs.so` and `sxsctl push` ask the daemon to run a push (or an out-of-band login) for a
//! user and wait for its end. The protocol (line-delimited JSON) is `common::pamsock`'s.
//!
//! Only root may ask: PAM modules run as root inside sshd, sudo and su, and the peer's
//! credentials (`SO_PEERCRED`, through tokio's `peer_cred`) are checked on every connection; the
//! socket itself is created mode 0600 in a directory the daemon creates mode 0755 if missing
//! (systemd: `RuntimeDirectory=sxs/radiusd`, owned by the daemon's user; `/run/sxs` itself is
//! root's, and holds the PAM module's SMS counts). The daemon maps the user with `[identity]` and runs the method;
//! exemptions and `failmode` stay PAM's, which has the same configuration.
//!
//! Bounded: [`MAX_CONNECTIONS`] at once (more are closed at once), the request line
//! (`common::pamsock::MAX_LINE`, within [`REQUEST_TIMEOUT`]), and each connection's whole life
//! (`push.timeout` + `common::pamsock::SERVER_MARGIN`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pamsock::{Done, Event, Op, Outcome, Request, MAX_LINE, SERVER_MARGIN};
use common::{Mapping, Verdict, Verifier};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::handler::SxsHandler;
use crate::push::Ended;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client has to send its request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the door needs; shared by every connection.
pub struct PamDoor<V> {
    /// The current handler (it changes when the configuration is reloaded): its identity
    /// mapper, SxS client and push setup are used.
    pub handler: Box<dyn Fn() -> Arc<SxsHandler<V>> + Send + Sync>,
    pub path: PathBuf,
}

impl<V> std::fmt::Debug for PamDoor<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PamDoor")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Creates the socket at `path` (`push.socket`): the directory if missing (0755), a stale
/// socket of an earlier run removed, the new one mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let err =
        |what: &str, e: std::io::Error| format!("push.socket {}: {what}: {e}", path.display());
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| err("cannot create its directory", e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| err("cannot set its directory's mode", e))?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| err("cannot remove the old socket", e))?
        }
        Ok(_) => {
            return Err(format!(
                "push.socket {}: exists and is not a socket; refusing to replace it",
                path.display()
            ))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| err("cannot listen", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err("cannot set its mode", e))?;
    Ok(listener)
}

impl<V: Verifier + 'static> PamDoor<V> {
    /// Serves `listener` until `shutdown` fires, then removes the socket file.
    pub async fn serve(
        self: Arc<Self>,
        listener: UnixListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "pam socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(
                    limit = MAX_CONNECTIONS,
                    "pam socket: too many connections, one closed"
                );
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.connection(stream).await;
                drop(permit);
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }

    async fn connection(&self, stream: UnixStream) {
        let uid = match stream.peer_cred() {
            Ok(c) => c.uid(),
            Err(e) => {
                tracing::warn!(error = %e, "pam socket: cannot read the peer's credentials");
                return;
            }
        };
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let handler = (self.handler)();
        let budget = handler.push.as_ref().map(|p| p.timeout).unwrap_or_default() + SERVER_MARGIN;
        let _ = tokio::time::timeout(
            budget,
            self.exchange(&handler, uid, &mut reader, &mut write),
        )
        .await;
    }

    async fn exchange(
        &self,
        handler: &SxsHandler<V>,
        uid: u32,
        reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
        write: &mut tokio::net::unix::OwnedWriteHalf,
    ) {
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            (&mut *reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line),
        )
        .await;
        let request: Request = match read {
            Ok(Ok(_)) if line.last() == Some(&b'\n') => match serde_json::from_slice(&line) {
                Ok(r) => r,
                Err(e) => {
                    let done = Done::with(
                        Outcome::Error,
                        "local:bad-request",
                        format!("expected {{\"op\":\"push\"|\"oob\",\"user\":\"…\"}}: {e}"),
                    );
                    return send(write, &Event::Done(done)).await;
                }
            },
            _ => {
                let done = Done::with(
                    Outcome::Error,
                    "local:bad-request",
                    format!(
                        "one JSON line of at most {MAX_LINE} bytes within {}s is expected",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                );
                return send(write, &Event::Done(done)).await;
            }
        };
        if uid != 0 {
            // Refused after its line was read: closing on unread data would reset the
            // connection and lose this answer.
            tracing::warn!(uid, "pam socket: refused a peer that is not root");
            let done = Done::with(
                Outcome::Error,
                "local:not-root",
                "only root may use this socket",
            );
            return send(write, &Event::Done(done)).await;
        }
        let t0 = Instant::now();
        let done = self.run(handler, &request, reader, write).await;
        let Some(done) = done else {
            tracing::info!(
                user = request.user,
                service = request.service,
                method = request.op.as_str(),
                "pam socket: the client went away; its login is abandoned"
            );
            return;
        };
        tracing::info!(
            user = request.user,
            service = request.service,
            rhost = request.rhost,
            method = request.op.as_str(),
            result = done.result.as_str(),
            code = done.code.as_deref().unwrap_or(""),
            latency_ms = t0.elapsed().as_millis() as u64,
            "pam socket decision"
        );
        send(write, &Event::Done(done)).await;
    }

    /// Runs the request; `None` when the client went away while it waited.
    async fn run(
        &self,
        handler: &SxsHandler<V>,
        request: &Request,
        reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
        write: &mut tokio::net::unix::OwnedWriteHalf,
    ) -> Option<Done> {
        let identity = match handler.mapper.map(&request.user) {
            Mapping::Known(id) => id,
            Mapping::NotInTokenMap { .. } => {
                return Some(Done::with(
                    Outcome::Reject,
                    "local:unenrolled",
                    "the user is not in the token map",
                ))
            }
            Mapping::Invalid { reason } => {
                return Some(Done::with(Outcome::Reject, "local:invalid-user", reason))
            }
        };
        match request.op {
            Op::Oob => {
                let Some(setup) = &handler.push else {
                    return Some(not_configured());
                };
                let origin = format!("pam:{}", request.service);
                let now = handler.clock.now_unix();
                let ended =
                    match crate::oob::start(&setup.store, identity, &origin, setup.timeout, now)
                        .await
                    {
                        Ok((challenge, waiter)) => {
                            send(write, &Event::Challenge { challenge }).await;
                            let mut probe = [0u8; 1];
                            tokio::select! {
                                got = waiter.wait(setup.timeout) => crate::push::ended_of(got),
                                _ = reader.read(&mut probe) => return None,
                            }
                        }
                        Err(e) => Ended::Refused(e),
                    };
                Some(done_of(ended))
            }
            Op::Push => {
                let Some(setup) = &handler.push else {
                    return Some(not_configured());
                };
                let origin = format!("pam:{}", request.service);
                let now = handler.clock.now_unix();
                let ended = match crate::push::start(
                    setup,
                    handler.verifier.as_ref(),
                    &identity,
                    &origin,
                    now,
                )
                .await
                {
                    Ok(started) => {
                        send(write, &Event::Started).await;
                        let mut probe = [0u8; 1];
                        tokio::select! {
                            ended = started.wait() => ended,
                            // The client sends nothing more: a read that ends means it left.
                            _ = reader.read(&mut probe) => return None,
                        }
                    }
                    Err(ended) => ended,
                };
                Some(done_of(ended))
            }
        }
    }
}

fn not_configured() -> Done {
    Done::with(
        Outcome::Error,
        "local:push-not-configured",
        "the daemon has no [http] section: nothing can call back",
    )
}

/// The protocol's answer for how a push (or an out-of-band login) ended.
pub fn done_of(ended: Ended) -> Done {
    match ended {
        Ended::Refused(e) => Done::with(Outcome::Refused, "local:push-refused", e.to_string()),
        Ended::StoreFailed(e) => {
            Done::with(Outcome::Refused, "local:store-unavailable", e.to_string())
        }
        Ended::NotStarted(v) | Ended::Checked(v) => match v {
            Verdict::Accept { .. } => Done::new(Outcome::Accept),
            Verdict::Reject { code, message } => Done::with(Outcome::Reject, code, message),
            Verdict::Unavailable { cause } => {
                Done::with(Outcome::Unavailable, "local:sxs-unavailable", cause)
            }
        },
        Ended::Denied => Done::new(Outcome::Denied),
        Ended::Timeout => Done::new(Outcome::Timeout),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, event: &Event) {
    if let Ok(mut line) = serde_json::to_vec(event) {
        line.push(b'\n');
        // A client that went away does not change what happened.
        let _ = write.write_all(&line).await;
    }
}
