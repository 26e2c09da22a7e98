//! sxsctl(1), rendered from the clap definitions: one page with every command.
//!
//! `sxsctl generate-man DIR` writes `DIR/sxsctl.1`; the copy in `docs/man/sxsctl.1` is kept
//! current by a test that fails when it differs from what this renders.

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::error::{Exit, Failure, EXIT_STATUS};
use crate::output::Out;

/// Writes `dir/sxsctl.1`.
pub fn write_to(dir: &Path, out: &mut Out) -> Result<Exit, Failure> {
    let page = render().map_err(|e| Failure::new(Exit::Local, format!("cannot render: {e}")))?;
    let file = dir.join("sxsctl.1");
    std::fs::write(&file, page)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", file.display())))?;
    if out.json() {
        out.emit(&serde_json::json!({ "file": file }))?;
    } else {
        out.line(format_args!("wrote {}", file.display()))?;
    }
    Ok(Exit::Success)
}

/// The whole page.
pub fn render() -> io::Result<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = Man::new(cmd.clone()).manual("sxs-auth");
    let mut page = String::new();
    // The first piece keeps roff's preamble (apostrophe handling); the others drop theirs.
    page.push_str(&piece(|w| man.render_title(w), false)?);
    page.push_str(&strip_preamble(&piece(
        |w| man.render_name_section(w),
        false,
    )?));
    for render in [
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ] {
        page.push_str(&strip_preamble(&piece(|w| render(&man, w), false)?));
    }
    page.push_str(&commands_section(&cmd)?);
    page.push_str(&strip_preamble(&extra_sections().render()));
    page.push_str(&strip_preamble(&piece(
        |w| man.render_version_section(w),
        false,
    )?));
    Ok(page)
}

/// COMMANDS: for every leaf command, its synopsis, description and arguments, rendered by
/// clap_mangen and demoted from sections (`.SH`) to one subsection (`.SS`).
fn commands_section(cmd: &clap::Command) -> io::Result<String> {
    let mut text = String::from(".SH COMMANDS\n");
    for leaf in leaves(cmd) {
        let name = leaf.get_bin_name().unwrap_or(leaf.get_name()).to_string();
        let leaf = hide_inherited(leaf);
        let man = Man::new(leaf);
        text.push_str(&format!(".SS \"{name}\"\n"));
        for render in [
            Man::render_synopsis_section,
            Man::render_description_section,
            Man::render_options_section,
        ] {
            text.push_str(&strip_preamble(&piece(|w| render(&man, w), true)?));
            text.push_str(".PP\n");
        }
    }
    Ok(text)
}

/// Leaf commands in definition order, hidden ones left out.
fn leaves(cmd: &clap::Command) -> Vec<clap::Command> {
    let mut found = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.has_subcommands() {
            found.extend(leaves(sub));
        } else {
            found.push(sub.clone());
        }
    }
    found
}

/// Hides what every command has (the global options, --help, --version): OPTIONS lists them
/// once.
fn hide_inherited(mut cmd: clap::Command) -> clap::Command {
    let inherited: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() || matches!(a.get_id().as_str(), "help" | "version"))
        .map(|a| a.get_id().to_string())
        .collect();
    for id in inherited {
        cmd = cmd.mut_arg(id, |a| a.hide(true));
    }
    cmd
}

/// EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES, SEE ALSO.
fn extra_sections() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (exit, meaning) in EXIT_STATUS {
        r.control("TP", []);
        r.text([bold(exit.code().to_string())]);
        r.text([roman(*meaning)]);
    }

    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", []);
    r.text([bold("SXSCTL_CONFIG")]);
    r.text([roman("The configuration file, when --config is not given.")]);
    r.control("TP", []);
    r.text([bold("SXS_"), italic("SECTION"), bold("__"), italic("KEY")]);
    r.text([roman(
        "Overrides a key of the configuration file, e.g. SXS_SXS__TIMEOUT=3s; lists are \
         comma-separated (SXS_SXS__SERVERS=https://a:442,https://b:442).",
    )]);
    r.control("TP", []);
    r.text([bold("RUST_LOG")]);
    r.text([roman(
        "Log filter for standard error (tracing-subscriber syntax); overrides -v.",
    )]);

    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([italic(common::config::DEFAULT_PATH)]);
    r.text([roman(
        "The configuration shared with pam_sxs.so and sxs-radiusd; every key is documented \
         in the shipped example.",
    )]);
    r.control("TP", []);
    r.text([italic("identity.token_map")]);
    r.text([roman(
        "Lines of `user serial`; # starts a comment. Read by otp check; written by token \
         enroll --write-map (atomically, under a lock on its directory; a user's existing \
         line is replaced in place, every other line and comment kept).",
    )]);

    r.control("SH", ["EXAMPLES"]);
    for (what, command) in [
        ("Is SxS up?", "sxsctl health"),
        (
            "Create a user, enrol a token, add it to the token map:",
            "sxsctl user create alice --email alice@example.com --mobile +385991234567",
        ),
        (
            "",
            "sxsctl token enroll alice --profile 1393 --service 6 --qr --write-map",
        ),
        (
            "The activation code died after 3 wrong attempts:",
            "sxsctl token renew 2000100000",
        ),
        (
            "The first thing support asks a user to run (the OTP is asked for without echo):",
            "sxsctl otp check alice",
        ),
        ("For a script:", "sxsctl --json health"),
    ] {
        if !what.is_empty() {
            r.control("PP", []);
            r.text([roman(what)]);
        }
        r.control("IP", []);
        r.text([bold(command)]);
    }

    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "pam_sxs(8), sxs-radiusd(8), and docs/sxsctl.md in the sxs-auth sources.",
    )]);
    r
}

/// One rendered piece; with `demote`, its `.SH` lines are dropped (the caller supplies the
/// heading).
fn piece(
    render: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
    demote: bool,
) -> io::Result<String> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8(buf).map_err(io::Error::other)?;
    if !demote {
        return Ok(text);
    }
    Ok(text
        .lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// roff's preamble, which every render repeats.
fn strip_preamble(text: &str) -> String {
    let preamble = Roff::new().render();
    text.strip_prefix(preamble.as_str())
        .unwrap_or(text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_every_command_and_exit_status() {
        let page = render().unwrap();
        assert_eq!(page.matches(".ie \\n(.g").count(), 1, "one preamble");
        for needle in [
            ".TH sxsctl 1",
            ".SS \"sxsctl health\"",
            ".SS \"sxsctl user create\"",
            ".SS \"sxsctl token enroll\"",
            ".SS \"sxsctl token renew\"",
            ".SS \"sxsctl otp check\"",
            ".SH \"EXIT STATUS\"",
            "generateNew=true",
        ] {
            assert!(page.contains(needle), "missing {needle:?}");
        }
        assert!(!page.contains("generate\\-man"));
    }
}
