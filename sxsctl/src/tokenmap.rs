//! `token enroll --write-map`: put `user serial` into the token map (`identity.token_map`).
//!
//! The map is read by `pam_sxs.so` at every login and by `sxs-radiusd` at start, so it must
//! never be seen half-written: the new text goes to a temporary file in the same directory,
//! which is given the old file's mode and owner, flushed to disk, checked with the very parser
//! PAM and RADIUS use, and renamed over the map; then the directory is synced. Two `sxsctl`
//! runs do not lose each other's line: the directory is locked (`flock`) while the map is read
//! and replaced.
//!
//! A user who already has a line gets it replaced in place (re-enrolling gives the user a new
//! token and SxS retires the old one); every other line, comment and blank line is kept.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::config::{IdentitySettings, SendIdentity};
use common::IdentityMapper;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Exit, Failure};

/// Mode of a token map that did not exist: it names users and serials, nothing secret.
const NEW_FILE_MODE: u32 = 0o644;

/// What happened to the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new line was appended.
    Added,
    /// The user's line was replaced; it named this serial.
    Replaced { previous: String },
    /// The user's line already named this serial; the file was not touched.
    Unchanged,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Replaced { .. } => "replaced",
            Change::Unchanged => "unchanged",
        }
    }
}

/// The outcome of [`upsert`].
#[derive(Debug, Clone)]
pub struct Update {
    pub file: PathBuf,
    /// The map line for the user, as PAM and RADIUS will read it.
    pub line: String,
    pub change: Change,
    /// Other users whose line names the same serial: stale lines (SxS gives each token to
    /// one user), left for the operator to remove.
    pub same_serial: Vec<String>,
}

/// Checks, before anything is sent to SxS, that the map can be updated: configured, its
/// directory exists, and the current file (if any) parses. Returns the file to write (a
/// symbolic link is followed, so the link stays a link).
pub fn prepare(settings: &IdentitySettings, user: &str) -> Result<PathBuf, Failure> {
    let Some(path) = settings.token_map.as_ref() else {
        return Err(Failure::usage(
            "--write-map: identity.token_map is not set in the configuration",
        ));
    };
    if user.contains('#') {
        return Err(Failure::usage(format!(
            "--write-map: user {user:?} contains '#', which starts a comment in the token map"
        )));
    }
    let target = resolve(path)?;
    let dir = parent(&target);
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "--write-map: {}: directory {} does not exist",
            target.display(),
            dir.display()
        )));
    }
    if target.exists() {
        check(settings, &target)?;
    }
    Ok(target)
}

/// Adds or replaces the line of `user` (normalised as logins are) with serial `sn`.
pub fn upsert(
    target: &Path,
    settings: &IdentitySettings,
    user: &str,
    sn: &str,
) -> Result<Update, Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(
            Exit::Local,
            format!("token map {}: {what}: {e}", target.display()),
        )
    };
    let dir = parent(target);
    let dir_file = File::open(dir).map_err(|e| fail("cannot open its directory", &e))?;
    let locked = Flock::lock(dir_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| fail("cannot lock its directory", &e))?;

    // Read under the lock: another run may have changed the map since `prepare`.
    let (old_text, old_meta) = match fs::read_to_string(target) {
        Ok(text) => {
            let meta = fs::metadata(target).map_err(|e| fail("cannot read", &e))?;
            (text, Some(meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), None),
        Err(e) => return Err(fail("cannot read", &e)),
    };
    if old_meta.is_some() {
        check(settings, target).map_err(|f| Failure::new(Exit::Local, f.message))?;
    }
    let normaliser = normaliser(settings)?;
    let (new_text, line, change) = edit(&old_text, &normaliser, user, sn);
    let update = Update {
        file: target.to_path_buf(),
        line,
        change,
        same_serial: same_serial(&old_text, &normaliser, user, sn),
    };
    if update.change == Change::Unchanged {
        return Ok(update);
    }

    let mut tmp = tempfile::Builder::new()
        .prefix(".sxsctl-tokenmap.")
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a temporary file beside it", &e))?;
    tmp.write_all(new_text.as_bytes())
        .map_err(|e| fail("cannot write the temporary file", &e))?;
    let mode = old_meta
        .as_ref()
        .map_or(NEW_FILE_MODE, |m| m.permissions().mode() & 0o7777);
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| fail("cannot set the mode of the temporary file", &e))?;
    if let Some(meta) = &old_meta {
        let now = tmp
            .as_file()
            .metadata()
            .map_err(|e| fail("cannot read the temporary file", &e))?;
        if (now.uid(), now.gid()) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid())).map_err(
                |e| {
                    fail(
                        &format!(
                            "cannot give the new file the owner {}:{} of the old one",
                            meta.uid(),
                            meta.gid()
                        ),
                        &e,
                    )
                },
            )?;
        }
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| fail("cannot flush the temporary file", &e))?;
    // The file PAM and RADIUS will read must parse with their parser.
    check(settings, tmp.path()).map_err(|f| {
        Failure::new(
            Exit::Local,
            format!(
                "the new token map would not load ({}); nothing changed",
                f.message
            ),
        )
    })?;
    tmp.persist(target)
        .map_err(|e| fail("cannot rename the temporary file over it", &e.error))?;
    locked
        .sync_all()
        .map_err(|e| fail("renamed, but cannot sync its directory", &e))?;
    drop(locked);
    Ok(update)
}

/// The text after the edit, the user's line, and what changed.
fn edit(text: &str, normaliser: &IdentityMapper, user: &str, sn: &str) -> (String, String, Change) {
    let wanted = normaliser.normalise(user);
    let mut out = String::with_capacity(text.len() + wanted.len() + sn.len() + 2);
    let mut found: Option<(String, Change)> = None;
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches(['\n', '\r']);
        let ending = &raw[body.len()..];
        let content = body.split('#').next().unwrap_or("");
        let mut fields = content.split_whitespace();
        let (Some(name), Some(old_sn)) = (fields.next(), fields.next()) else {
            out.push_str(raw);
            continue;
        };
        if found.is_some() || normaliser.normalise(name) != wanted {
            out.push_str(raw);
            continue;
        }
        if old_sn == sn {
            out.push_str(raw);
            found = Some((format!("{name} {sn}"), Change::Unchanged));
            continue;
        }
        let indent = &body[..body.len() - body.trim_start().len()];
        let comment = body.find('#').map(|i| format!(" {}", &body[i..]));
        let line = format!("{name} {sn}");
        out.push_str(&format!(
            "{indent}{line}{}{ending}",
            comment.unwrap_or_default()
        ));
        found = Some((
            line,
            Change::Replaced {
                previous: old_sn.to_string(),
            },
        ));
    }
    match found {
        Some((line, change)) => (out, line, change),
        None => {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            let line = format!("{wanted} {sn}");
            out.push_str(&line);
            out.push('\n');
            (out, line, Change::Added)
        }
    }
}

/// Users other than `user` whose line names `sn`.
fn same_serial(text: &str, normaliser: &IdentityMapper, user: &str, sn: &str) -> Vec<String> {
    let wanted = normaliser.normalise(user);
    text.lines()
        .filter_map(|l| {
            let mut fields = l.split('#').next().unwrap_or("").split_whitespace();
            match (fields.next(), fields.next()) {
                (Some(name), Some(s)) if s == sn && normaliser.normalise(name) != wanted => {
                    Some(name.to_string())
                }
                _ => None,
            }
        })
        .collect()
}

/// Loads `file` as a token map with common's parser (what PAM and RADIUS do).
fn check(settings: &IdentitySettings, file: &Path) -> Result<(), Failure> {
    let mut s = settings.clone();
    s.send = SendIdentity::TokenSn;
    s.token_map = Some(file.to_path_buf());
    IdentityMapper::new(&s).map(|_| ()).map_err(Failure::from)
}

/// A mapper that only normalises names (never reads the map).
fn normaliser(settings: &IdentitySettings) -> Result<IdentityMapper, Failure> {
    let mut s = settings.clone();
    s.send = SendIdentity::UserId;
    Ok(IdentityMapper::new(&s)?)
}

/// Follows a symbolic link so the rename replaces the file, not the link.
fn resolve(path: &Path) -> Result<PathBuf, Failure> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).map_err(|e| {
            Failure::usage(format!(
                "--write-map: {} is a symbolic link that cannot be followed: {e}",
                path.display()
            ))
        }),
        Ok(m) if !m.is_file() => Err(Failure::usage(format!(
            "--write-map: {} is not a regular file",
            path.display()
        ))),
        _ => Ok(path.to_path_buf()),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(map: &Path) -> IdentitySettings {
        IdentitySettings {
            send: SendIdentity::TokenSn,
            token_map: Some(map.to_path_buf()),
            strip_realm: true,
            lowercase: true,
        }
    }

    fn edit_text(text: &str, user: &str, sn: &str) -> (String, String, Change) {
        let n = normaliser(&settings(Path::new("/x"))).unwrap();
        edit(text, &n, user, sn)
    }

    #[test]
    fn appends_and_keeps_comments() {
        let (t, line, c) = edit_text("# map\nbob 1 # laptop\n", "alice", "42");
        assert_eq!(t, "# map\nbob 1 # laptop\nalice 42\n");
        assert_eq!(line, "alice 42");
        assert_eq!(c, Change::Added);
        let (t, _, _) = edit_text("bob 1", "alice", "42");
        assert_eq!(t, "bob 1\nalice 42\n");
        let (t, _, _) = edit_text("", "Alice@CORP", "42");
        assert_eq!(t, "alice 42\n");
    }

    #[test]
    fn replaces_in_place() {
        let (t, line, c) = edit_text("# map\n  Alice 7 # old phone\r\nbob 1\n", "alice", "42");
        assert_eq!(t, "# map\n  Alice 42 # old phone\r\nbob 1\n");
        assert_eq!(line, "Alice 42");
        assert_eq!(
            c,
            Change::Replaced {
                previous: "7".into()
            }
        );
        let (t, _, c) = edit_text("alice 42\n", "alice", "42");
        assert_eq!(t, "alice 42\n");
        assert_eq!(c, Change::Unchanged);
        // A commented-out line is not the user's line.
        let (t, _, c) = edit_text("# alice 7\n", "alice", "42");
        assert_eq!(t, "# alice 7\nalice 42\n");
        assert_eq!(c, Change::Added);
    }

    #[test]
    fn upsert_writes_atomically_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("tokens.map");
        fs::write(&map, "# users\nbob 1\n").unwrap();
        fs::set_permissions(&map, fs::Permissions::from_mode(0o640)).unwrap();
        let s = settings(&map);
        let target = prepare(&s, "alice").unwrap();
        let u = upsert(&target, &s, "alice", "42").unwrap();
        assert_eq!(u.change, Change::Added);
        assert_eq!(
            fs::read_to_string(&map).unwrap(),
            "# users\nbob 1\nalice 42\n"
        );
        assert_eq!(
            fs::metadata(&map).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let u = upsert(&target, &s, "alice", "43").unwrap();
        assert_eq!(
            u.change,
            Change::Replaced {
                previous: "42".into()
            }
        );
        // A stale line with the same serial is reported, not touched.
        fs::write(&map, "bob 44\n").unwrap();
        let u = upsert(&target, &s, "alice", "44").unwrap();
        assert_eq!(u.same_serial, vec!["bob".to_string()]);
        assert_eq!(fs::read_to_string(&map).unwrap(), "bob 44\nalice 44\n");
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("tokens.map")]);
    }

    #[test]
    fn upsert_follows_a_symlink_and_creates_a_missing_map() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.map");
        let link = dir.path().join("tokens.map");
        fs::write(&real, "bob 1\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let s = settings(&link);
        let target = prepare(&s, "alice").unwrap();
        upsert(&target, &s, "alice", "42").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "bob 1\nalice 42\n");

        let fresh = dir.path().join("new.map");
        let s = settings(&fresh);
        let target = prepare(&s, "alice").unwrap();
        upsert(&target, &s, "alice", "42").unwrap();
        assert_eq!(fs::read_to_string(&fresh).unwrap(), "alice 42\n");
        assert_eq!(
            fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            NEW_FILE_MODE
        );
    }

    #[test]
    fn a_broken_map_is_refused_before_anything_happens() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("tokens.map");
        fs::write(&map, "bob 1\nbob 2\n").unwrap();
        let e = prepare(&settings(&map), "alice").unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains(":2:"), "{}", e.message);
        let e = prepare(&settings(&dir.path().join("no/such/dir/map")), "alice").unwrap_err();
        assert!(e.message.contains("does not exist"), "{}", e.message);
        let mut s = settings(&map);
        s.token_map = None;
        assert!(prepare(&s, "alice").is_err());
        assert!(prepare(&settings(&map), "a#b").is_err());
    }
}
