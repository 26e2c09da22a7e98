//! From parsed arguments to an exit status: load the configuration, build the SxS client and a
//! runtime, run one command.

use std::future::Future;

use common::config::{Config, LoadOptions};
use common::SxsClient;

use crate::cli::{Cli, Command, MacCommand, OtpCommand, SmsCommand, TokenCommand, UserCommand};
use crate::error::{Exit, Failure};
use crate::output::Out;
use crate::{health, mac, man, otp, push, sms, token, user};

/// What every SxS command needs.
#[derive(Debug)]
pub struct Ctx {
    pub cfg: Config,
    pub client: SxsClient,
    rt: tokio::runtime::Runtime,
}

impl Ctx {
    fn new(cli: &Cli) -> Result<Self, Failure> {
        // sxsctl is run by the operator, so SXS_SECTION__KEY overrides are allowed.
        let cfg = Config::load(&cli.config, LoadOptions::default())?;
        let client = SxsClient::new(&cfg.sxs)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new(Exit::Local, format!("cannot start the runtime: {e}")))?;
        Ok(Self { cfg, client, rt })
    }

    /// Runs one SxS call to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }
}

/// Runs the command; `Ok` carries the exit status of a command that reported its own outcome
/// (a down root, a rejected OTP), `Err` a failure for `main` to print.
pub fn run(cli: Cli) -> Result<Exit, Failure> {
    let mut out = Out::new(cli.json);
    if let Command::GenerateMan { dir } = &cli.command {
        return man::write_to(dir, &mut out);
    }
    let ctx = Ctx::new(&cli)?;
    match cli.command {
        Command::Health => health::run(&ctx, &mut out),
        Command::User(UserCommand::Create(args)) => user::create(&ctx, &mut out, &args),
        Command::Token(TokenCommand::Enroll(args)) => token::enroll(&ctx, &mut out, &args),
        Command::Token(TokenCommand::Renew(args)) => token::renew(&ctx, &mut out, &args),
        Command::Otp(OtpCommand::Check(args)) => otp::check(&ctx, &mut out, args),
        Command::Sms(SmsCommand::Send(args)) => sms::send(&ctx, &mut out, &args),
        Command::Mac(MacCommand::Check(args)) => mac::check(&ctx, &mut out, args),
        Command::Push(args) => push::run(&ctx, &mut out, &args),
        Command::GenerateMan { .. } => Ok(Exit::Success),
    }
}
