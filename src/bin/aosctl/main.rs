//! `aosctl`: the operator CLI of aos-edge. See `docs/aosctl.md` for every command and flag.
//!
//! Offline commands (`ca`, `config import`, `check`) run directly; the ones that talk to a node run in an
//! actix system, whose worker arbiter carries the TLS link to the node's IAM endpoint.
#![forbid(unsafe_code)]

mod ca;
mod certs;
mod check;
mod cli;
mod error;
mod import;
mod lifecycle;
mod nodes;
mod output;
mod password;
mod permissions;
mod provision;
mod session;

use clap::Parser;

use crate::cli::{
    CaCommand, CertsCommand, Cli, Command, ConfigCommand, NodesCommand, PermissionsCommand,
};
use crate::error::{CtlError, EXIT_OK};
use crate::lifecycle::Change;

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(()) => EXIT_OK,
        Err(err) => {
            eprintln!("aosctl: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<(), CtlError> {
    let json = cli.json;
    match cli.command {
        Command::Ca(CaCommand::Init(args)) => ca::init(&args, json),
        Command::Ca(CaCommand::Issue(args)) => ca::issue(&args, json),
        Command::Check(args) => check::run(&args, json),
        Command::Config(ConfigCommand::Import(args)) => import::run(&args),
        remote => actix_rt::System::new().block_on(run_remote(remote, json)),
    }
}

async fn run_remote(command: Command, json: bool) -> Result<(), CtlError> {
    match command {
        Command::Provision(args) => provision::run(&args, json).await,
        Command::Deprovision(args) => lifecycle::deprovision(&args, json).await,
        Command::Pause(args) => lifecycle::pause_or_resume(&args, Change::Pause, json).await,
        Command::Resume(args) => lifecycle::pause_or_resume(&args, Change::Resume, json).await,
        Command::Nodes(NodesCommand::List(args)) => nodes::list(&args, json).await,
        Command::Certs(CertsCommand::List(args)) => certs::list(&args, json).await,
        Command::Certs(CertsCommand::Renew(args)) => certs::renew(&args, json).await,
        Command::Permissions(PermissionsCommand::Check(args)) => {
            permissions::check(&args, json).await
        }
        Command::Ca(_) | Command::Check(_) | Command::Config(_) => {
            Err(CtlError::Usage("not a remote command".to_owned()))
        }
    }
}
