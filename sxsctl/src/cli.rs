//! The command line, as clap sees it. `sxsctl --help`, the man page and docs/sxsctl.md all come
//! from here; keep the doc comments in the operator's words.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::error::exit_status_help;

/// The operator's command line for ASEE SxS: health, users, token enrolment, test OTP.
#[derive(Debug, Parser)]
#[command(
    name = "sxsctl",
    version,
    about = "The operator's command line for ASEE SxS: health, users, token enrolment, test OTP",
    long_about = "The operator's command line for ASEE SxS: health checks, user administration, \
                  mobile-token enrolment and OTP checks.\n\n\
                  sxsctl reads the same configuration file as pam_sxs.so and sxs-radiusd and \
                  talks to SxS through the same client: the same servers, TLS settings, \
                  Organization ID header, application profile and identity mapping. \
                  Administrative commands (user, token) need sxs.admin_url.",
    after_long_help = exit_status_help(),
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Configuration file, the one pam_sxs.so and sxs-radiusd read. SXS_SECTION__KEY
    /// environment variables override its keys.
    #[arg(
        short,
        long,
        global = true,
        value_name = "FILE",
        env = "SXSCTL_CONFIG",
        default_value = common::config::DEFAULT_PATH
    )]
    pub config: PathBuf,

    /// Machine-readable output: one JSON object on standard output, errors included.
    #[arg(long, global = true)]
    pub json: bool,

    /// Show the client's log on standard error (-v: info, -vv: debug). Never shows an OTP.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check SxS health: the auth root of every server and the admin root, with latency.
    ///
    /// GET {root}/api/healthCheck on the authentication root (sxs.health_path) of every
    /// server in sxs.servers and on the admin root (sxs.admin_url, when set). Exits 3 if any
    /// of them is down.
    Health,

    /// SxS users (createOrUpdateSxsUser).
    #[command(subcommand)]
    User(UserCommand),

    /// Mobile tokens: enrolment and new activation codes.
    #[command(subcommand)]
    Token(TokenCommand),

    /// Check a one-time password exactly as PAM and RADIUS would.
    #[command(subcommand)]
    Otp(OtpCommand),

    /// SMS one-time passwords: send one to a user's registered mobile.
    #[command(subcommand)]
    Sms(SmsCommand),

    /// Dynamic linking: check a MAC the user's app computed over a MAC input.
    #[command(subcommand)]
    Mac(MacCommand),

    /// Push: ask the user to approve a sign-in on the phone, through sxs-radiusd.
    ///
    /// Starts one push for USER through the daemon's PAM socket (push.socket, by default
    /// /run/sxs/radiusd/push.sock; root only), exactly as pam_sxs.so does with methods = ["push"], and
    /// waits up to push.timeout for the user to approve or deny it on the phone. The daemon
    /// (sxs-radiusd with an [http] section) maps the user, asks SxS to push, receives SxS's
    /// callback and validates the OTP that came with an approval. Prints what happened: accept
    /// (exit 0), reject, denied, timeout or refused (exit 1), SxS unavailable or the daemon not
    /// running (exit 3).
    Push(PushArgs),

    /// Write the man page sxsctl.1 into DIR (for packaging; the committed copy is
    /// docs/man/sxsctl.1).
    #[command(hide = true)]
    GenerateMan {
        /// Directory to write sxsctl.1 into.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user at SxS, or update it (createOrUpdateSxsUser).
    ///
    /// The input is checked before anything is sent: USER without spaces or control
    /// characters, the mobile number in E.164 form (+385991234567), the e-mail address
    /// shaped like one. Every field is sent: on an existing user, a field left out
    /// (first name, last name, address) is overwritten with an empty value.
    Create(UserCreate),
}

#[derive(Debug, Args)]
pub struct UserCreate {
    /// The SxS user id: the login name as PAM and RADIUS send it (after identity.strip_realm
    /// and identity.lowercase).
    #[arg(value_name = "USER")]
    pub user: String,

    /// E-mail address.
    #[arg(long, value_name = "ADDRESS")]
    pub email: String,

    /// Mobile number in E.164 form, e.g. +385991234567.
    #[arg(long, value_name = "E164")]
    pub mobile: String,

    /// First name.
    #[arg(long, value_name = "NAME")]
    pub first_name: Option<String>,

    /// Last name.
    #[arg(long, value_name = "NAME")]
    pub last_name: Option<String>,

    /// Postal address.
    #[arg(long, value_name = "TEXT")]
    pub address: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Give USER a new mobile token and print its activation codes.
    ///
    /// Three SxS calls: mtmRedistributeToken (a new token for USER: its serial),
    /// mtmRenewActivationCode with generateNew=true, and mtmGetActivationCode with
    /// formatId=1. Of the 16-digit activation string, digits 1-8 are the client ID and
    /// digits 9-16 the activation code: the user types both into the app and chooses a PIN.
    /// After 3 wrong attempts the code is dead: run `sxsctl token renew SERIAL`.
    Enroll(TokenEnroll),

    /// Generate a new activation code for a token and print it.
    ///
    /// For a token whose code died after 3 wrong attempts, or was lost: mtmRenewActivationCode
    /// with generateNew=true, then mtmGetActivationCode. The previous code stops working.
    Renew(TokenRenew),
}

#[derive(Debug, Args)]
pub struct TokenEnroll {
    /// The SxS user id (create it first with `sxsctl user create`).
    #[arg(value_name = "USER")]
    pub user: String,

    /// Token profile id (tokenProfileId), e.g. 1393: ask your SxS administrator.
    #[arg(long, value_name = "ID")]
    pub profile: u32,

    /// Service id (serviceIds), e.g. 6: ask your SxS administrator.
    #[arg(long, value_name = "ID")]
    pub service: u32,

    /// Also print a terminal QR code of the 16 activation digits (client ID then activation
    /// code), drawn for a dark (default) or light terminal background.
    #[arg(
        long,
        value_name = "BACKGROUND",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "dark"
    )]
    pub qr: Option<QrTheme>,

    /// Add (or replace) the line `USER SERIAL` in the token map (identity.token_map),
    /// atomically, keeping every other line and comment. The map is checked before SxS is
    /// called.
    #[arg(long)]
    pub write_map: bool,
}

#[derive(Debug, Args)]
pub struct TokenRenew {
    /// The token serial number (decimal), as printed by `sxsctl token enroll`.
    #[arg(value_name = "SERIAL")]
    pub serial: String,

    /// Also print a terminal QR code of the 16 activation digits (client ID then activation
    /// code), drawn for a dark (default) or light terminal background.
    #[arg(
        long,
        value_name = "BACKGROUND",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "dark"
    )]
    pub qr: Option<QrTheme>,
}

/// The terminal background the QR code is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QrTheme {
    Dark,
    Light,
}

#[derive(Debug, Subcommand)]
pub enum OtpCommand {
    /// Validate an OTP for USER exactly as PAM and RADIUS would, and show SxS's answer.
    ///
    /// The login name is mapped by the [identity] rules (realm stripped, lower-cased, token
    /// serial from the token map when identity.send says so) and sent with validateOtp, the
    /// configured application profile and Organization ID header. Prints the verdict, the
    /// SxS exception code and message, the latency, and what the [policy] would decide. The
    /// OTP is used up: SxS accepts each one once. Without OTP, it is asked for on the terminal
    /// without echo, or read as one line from standard input when that is not a terminal.
    Check(OtpCheck),
}

#[derive(Debug, Args)]
pub struct OtpCheck {
    /// The login name, as typed at the SSH, sudo or VPN prompt.
    #[arg(value_name = "USER")]
    pub user: String,

    /// The one-time password. Better left out: a command-line argument is visible to other
    /// local users in the process list.
    #[arg(value_name = "OTP")]
    pub otp: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SmsCommand {
    /// Have SxS send an SMS one-time password to USER's registered mobile, as pam_sxs.so does.
    ///
    /// The login name is mapped by the [identity] rules and sent with the SMS call of
    /// [sxs.methods.send_sms]. Prints where the code went, masked (+38599*****67): the full
    /// number is never shown. The send counts towards the per-user limit (sms.max_per_user per
    /// sms.window) in the same files pam_sxs.so uses (sms.pam_state_dir, root only), so an
    /// operator cannot exceed what a user may get; over the limit nothing is sent (exit 1).
    /// The user then types the code at the SSH or sudo prompt; it is single use.
    Send(SmsSend),
}

#[derive(Debug, Args)]
pub struct SmsSend {
    /// The login name, as typed at the SSH, sudo or VPN prompt.
    #[arg(value_name = "USER")]
    pub user: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The login name, as typed at the SSH, sudo or VPN prompt.
    #[arg(value_name = "USER")]
    pub user: String,
}

#[derive(Debug, Subcommand)]
pub enum MacCommand {
    /// Validate a MAC for USER over INPUT exactly as pam_sxs.so and sxs-radiusd would.
    ///
    /// The login name is mapped by the [identity] rules and sent with the MAC call of
    /// [sxs.methods.validate_mac]. INPUT is the MAC input the user typed into the mToken app
    /// (pam_sxs.so shows 8 digits); the MAC is what the app showed. Prints the verdict, the SxS
    /// exception code and message, the latency and what the [policy] would decide. A MAC is
    /// single use. Without MAC, it is asked for on the terminal without echo, or read as one
    /// line from standard input when that is not a terminal.
    Check(MacCheck),
}

#[derive(Debug, Args)]
pub struct MacCheck {
    /// The login name, as typed at the SSH, sudo or VPN prompt.
    #[arg(value_name = "USER")]
    pub user: String,

    /// The MAC input (what the user typed into the app), e.g. 44154810.
    #[arg(value_name = "INPUT")]
    pub input: String,

    /// The MAC the app showed. Better left out: a command-line argument is visible to other
    /// local users in the process list.
    #[arg(value_name = "MAC")]
    pub mac: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["sxsctl", "otp", "check", "alice", "--json", "-c", "/x"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.config, PathBuf::from("/x"));
    }
}
