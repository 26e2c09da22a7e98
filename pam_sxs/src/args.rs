//! Module arguments, as written after the module path in `/etc/pam.d/SERVICE`.
//!
//! Linux-PAM hands each argument over as one string; the bracket syntax
//! `[prompt=One-time code: ]` (for values with spaces) is undone by libpam before the module
//! sees it. An unknown argument or a bad value is reported (logged by the caller), never fatal:
//! the default stays in force.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

/// The default prompt.
pub const DEFAULT_PROMPT: &str = "OTP: ";
/// The default prompt when the user types password and OTP at once (`forward_pass`).
pub const DEFAULT_FORWARD_PROMPT: &str = "Password and OTP: ";
/// Default number of OTP digits split off under `forward_pass`.
pub const DEFAULT_OTP_DIGITS: usize = 6;
/// Upper bound of `prompts=N`.
pub const MAX_PROMPTS: u32 = 10;
/// Default `fail_delay=`: pam_unix's 2 s.
pub const DEFAULT_FAIL_DELAY: Duration = Duration::from_secs(2);
/// Default `deny_floor=`: the shortest time a refused attempt takes, so that an unenrolled
/// or unknown user (refused without asking SxS) cannot be told from a wrong OTP by timing.
/// The same default as the RADIUS server's `reject_delay`.
pub const DEFAULT_DENY_FLOOR: Duration = Duration::from_secs(1);
/// Upper bound of `fail_delay=` and `deny_floor=` (milliseconds).
pub const MAX_DELAY_MS: u64 = 60_000;

/// Where the OTP comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPass {
    /// Prompt (the default).
    Prompt,
    /// `try_first_pass`: use `PAM_AUTHTOK` when an earlier module set it, else prompt.
    Try,
    /// `use_first_pass`: use `PAM_AUTHTOK`; never prompt.
    Use,
}

/// The parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `config=PATH`.
    pub config: PathBuf,
    /// `prompt=TEXT`; when absent the configuration file decides, then the default.
    pub prompt: Option<String>,
    pub first_pass: FirstPass,
    /// `forward_pass`: the answer is password followed by `otp_digits` OTP digits.
    pub forward_pass: bool,
    /// `otp_digits=N` (4–10).
    pub otp_digits: usize,
    /// `prompts=N` (1–10): how many OTPs the user may type before the module gives up.
    pub prompts: u32,
    /// `methods=otp,sms,mac`: the methods of this stack line, overriding the configuration's
    /// `[pam] methods` and `[pam.service.NAME] methods`.
    pub methods: Option<common::Methods>,
    /// `debug`: more log lines (never secrets).
    pub debug: bool,
    /// `fail_delay=MS` (`nodelay` = 0): asked of libpam with `pam_fail_delay` on every call,
    /// like pam_unix; libpam waits about that long (±50 %) before returning a failure.
    pub fail_delay: Duration,
    /// `deny_floor=MS`: every refused attempt takes at least this long, whatever the reason.
    pub deny_floor: Duration,
    /// `syslog_socket=PATH`: send log lines as syslog datagrams to this socket instead of
    /// through syslog(3) and `/dev/log` (tests, containers without `/dev/log`).
    pub syslog_socket: Option<PathBuf>,
    /// Problems found while parsing, for the log.
    pub warnings: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            config: PathBuf::from(common::config::DEFAULT_PATH),
            prompt: None,
            first_pass: FirstPass::Prompt,
            forward_pass: false,
            otp_digits: DEFAULT_OTP_DIGITS,
            prompts: 1,
            methods: None,
            debug: false,
            fail_delay: DEFAULT_FAIL_DELAY,
            deny_floor: DEFAULT_DENY_FLOOR,
            syslog_socket: None,
            warnings: Vec::new(),
        }
    }
}

/// `0`–`60000` milliseconds.
fn parse_ms(v: &str) -> Option<Duration> {
    v.parse::<u64>()
        .ok()
        .filter(|&ms| ms <= MAX_DELAY_MS)
        .map(Duration::from_millis)
}

impl Args {
    /// Parses the arguments libpam passed (already split, already unbracketed).
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Args {
        let mut args = Args::default();
        let mut otp_digits_given = false;
        for arg in raw {
            let arg = arg.as_ref();
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            match (name, value) {
                ("config", Some(v)) if v.starts_with('/') => args.config = PathBuf::from(v),
                ("config", _) => args.warn(format!(
                    "argument config= needs an absolute path; using {}",
                    args.config.display()
                )),
                ("prompt", Some(v)) if !v.is_empty() => args.prompt = Some(v.to_string()),
                ("prompt", _) => args.warn("argument prompt= needs a text; ignored".into()),
                ("use_first_pass", None) => args.first_pass = FirstPass::Use,
                ("try_first_pass", None) => {
                    if args.first_pass != FirstPass::Use {
                        args.first_pass = FirstPass::Try;
                    }
                }
                ("forward_pass", None) => args.forward_pass = true,
                ("otp_digits", Some(v)) => match v.parse::<usize>() {
                    Ok(n) if (4..=10).contains(&n) => {
                        args.otp_digits = n;
                        otp_digits_given = true;
                    }
                    _ => args.warn(format!(
                        "argument otp_digits= must be a number from 4 to 10; using {DEFAULT_OTP_DIGITS}"
                    )),
                },
                ("prompts", Some(v)) => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_PROMPTS).contains(&n) => args.prompts = n,
                    _ => args.warn(format!(
                        "argument prompts= must be a number from 1 to {MAX_PROMPTS}; using 1"
                    )),
                },
                ("methods", Some(v)) => {
                    let list: Vec<&str> = v.split(',').map(str::trim).collect();
                    match common::Methods::parse(&list) {
                        Ok(m) => args.methods = Some(m),
                        Err(e) => args.warn(format!(
                            "argument methods= {}; the configuration's methods apply",
                            crate::logging::sanitize(&e)
                        )),
                    }
                }
                ("debug", None) => args.debug = true,
                ("nodelay", None) => args.fail_delay = Duration::ZERO,
                ("fail_delay", Some(v)) => match parse_ms(v) {
                    Some(d) => args.fail_delay = d,
                    None => args.warn(format!(
                        "argument fail_delay= must be milliseconds from 0 to {MAX_DELAY_MS}; using {}",
                        DEFAULT_FAIL_DELAY.as_millis()
                    )),
                },
                ("deny_floor", Some(v)) => match parse_ms(v) {
                    Some(d) => args.deny_floor = d,
                    None => args.warn(format!(
                        "argument deny_floor= must be milliseconds from 0 to {MAX_DELAY_MS}; using {}",
                        DEFAULT_DENY_FLOOR.as_millis()
                    )),
                },
                ("syslog_socket", Some(v)) if v.starts_with('/') => {
                    args.syslog_socket = Some(PathBuf::from(v))
                }
                ("syslog_socket", _) => {
                    args.warn("argument syslog_socket= needs an absolute path; ignored".into())
                }
                // Only the name: a value typed in the wrong place could be a secret.
                (other, _) => args.warn(format!(
                    "unknown argument {:?} ignored",
                    crate::logging::sanitize(other)
                )),
            }
        }
        if otp_digits_given && !args.forward_pass {
            args.warn("argument otp_digits= has no effect without forward_pass".into());
        }
        args
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// The prompt to show: the argument, else the configuration's, else the default.
    pub fn prompt_text<'a>(&'a self, from_config: Option<&'a str>) -> &'a str {
        self.prompt
            .as_deref()
            .or(from_config)
            .unwrap_or(if self.forward_pass {
                DEFAULT_FORWARD_PROMPT
            } else {
                DEFAULT_PROMPT
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let a = Args::parse::<&str>(&[]);
        assert_eq!(a, Args::default());
        assert_eq!(a.config, PathBuf::from("/etc/sxs/sxs.toml"));
        assert_eq!(a.prompt_text(None), "OTP: ");
        assert_eq!(a.prompts, 1);
        assert_eq!(a.first_pass, FirstPass::Prompt);
    }

    #[test]
    fn every_argument() {
        let a = Args::parse(&[
            "config=/tmp/x.toml",
            "prompt=One-time code: ",
            "try_first_pass",
            "forward_pass",
            "otp_digits=8",
            "prompts=3",
            "methods=otp,sms",
            "debug",
            "syslog_socket=/run/log.sock",
        ]);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert_eq!(a.config, PathBuf::from("/tmp/x.toml"));
        assert_eq!(a.prompt.as_deref(), Some("One-time code: "));
        assert_eq!(a.first_pass, FirstPass::Try);
        assert!(a.forward_pass && a.debug);
        assert_eq!(a.otp_digits, 8);
        assert_eq!(a.prompts, 3);
        assert_eq!(
            a.methods.as_ref().map(|m| m.to_string()).as_deref(),
            Some("otp,sms")
        );
        assert_eq!(a.syslog_socket, Some(PathBuf::from("/run/log.sock")));
    }

    #[test]
    fn fail_delay_and_deny_floor() {
        let a = Args::parse::<&str>(&[]);
        assert_eq!(
            (a.fail_delay, a.deny_floor),
            (Duration::from_secs(2), Duration::from_secs(1))
        );
        let a = Args::parse(&["fail_delay=3500", "deny_floor=250"]);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert_eq!(
            (a.fail_delay, a.deny_floor),
            (Duration::from_millis(3500), Duration::from_millis(250))
        );
        assert_eq!(Args::parse(&["nodelay"]).fail_delay, Duration::ZERO);
        for bad in [
            "fail_delay=2s",
            "fail_delay=60001",
            "deny_floor=-1",
            "deny_floor=",
        ] {
            let a = Args::parse(&[bad]);
            assert_eq!(a.warnings.len(), 1, "{bad}");
            assert!(
                a.warnings[0].contains("milliseconds from 0 to 60000"),
                "{bad}"
            );
            assert_eq!(
                (a.fail_delay, a.deny_floor),
                (DEFAULT_FAIL_DELAY, DEFAULT_DENY_FLOOR)
            );
        }
    }

    #[test]
    fn use_first_pass_wins_over_try() {
        for order in [
            ["use_first_pass", "try_first_pass"],
            ["try_first_pass", "use_first_pass"],
        ] {
            assert_eq!(Args::parse(&order).first_pass, FirstPass::Use);
        }
    }

    #[test]
    fn prompt_precedence() {
        let a = Args::parse(&["prompt=Arg: "]);
        assert_eq!(a.prompt_text(Some("Config: ")), "Arg: ");
        let a = Args::parse::<&str>(&[]);
        assert_eq!(a.prompt_text(Some("Config: ")), "Config: ");
        let a = Args::parse(&["forward_pass"]);
        assert_eq!(a.prompt_text(None), DEFAULT_FORWARD_PROMPT);
    }

    #[test]
    fn bad_values_keep_defaults_and_warn() {
        let a = Args::parse(&[
            "otp_digits=3",
            "prompts=0",
            "prompts=x",
            "config=relative.toml",
            "prompt=",
            "frobnicate=hunter2",
            "syslog_socket=rel",
            "methods=otp,fax",
            "methods=",
        ]);
        assert_eq!(a.otp_digits, DEFAULT_OTP_DIGITS);
        assert_eq!(a.prompts, 1);
        assert_eq!(a.config, PathBuf::from("/etc/sxs/sxs.toml"));
        assert_eq!(a.prompt, None);
        assert_eq!(a.syslog_socket, None);
        assert_eq!(a.methods, None);
        assert_eq!(a.warnings.len(), 9, "{:?}", a.warnings);
        assert!(
            a.warnings
                .iter()
                .any(|w| w.contains("methods=") && w.contains("\"fax\"")),
            "{:?}",
            a.warnings
        );
        assert!(a.warnings.iter().any(|w| w.contains("\"frobnicate\"")));
        assert!(
            !a.warnings.iter().any(|w| w.contains("hunter2")),
            "the value of an unknown argument is never logged"
        );
        assert!(Args::parse(&["prompts=11"]).warnings[0].contains("1 to 10"));
    }

    #[test]
    fn otp_digits_alone_is_reported() {
        let a = Args::parse(&["otp_digits=8"]);
        assert!(!a.forward_pass);
        assert!(a.warnings[0].contains("without forward_pass"));
    }

    #[test]
    fn flags_with_values_are_unknown() {
        let a = Args::parse(&["debug=1", "use_first_pass=yes"]);
        assert!(!a.debug);
        assert_eq!(a.first_pass, FirstPass::Prompt);
        assert_eq!(a.warnings.len(), 2);
    }
}
