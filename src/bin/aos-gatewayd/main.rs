//! `aos-gatewayd`: the aos-edge node daemon. One process per node; see `docs/gatewayd.md`.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM / SIGINT) or a valid `--check-config`; 1 when the node
//! cannot start or stops on an error; 2 for a missing or broken configuration or bad flags.
#![forbid(unsafe_code)]

mod args;
mod http;
mod logging;
mod metrics;
mod run;

use std::process::ExitCode;

use aos_config::Config;
use clap::Parser;

use crate::args::Args;

/// Exit code of a configuration or usage error (clap uses it too).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("aos-gatewayd: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.check_config {
        println!(
            "{}: ok: node {:?} of unit {:?}, {} node, {} cert module(s)",
            args.config.display(),
            config.node.id,
            config.node.unit_id,
            if config.node.is_main() {
                "main"
            } else {
                "secondary"
            },
            config.enabled_cert_modules().count(),
        );
        return ExitCode::SUCCESS;
    }
    let format = args.log_format.map_or(config.logging.format, Into::into);
    logging::init(&config.logging, format);
    let metrics = args.metrics.or(config.metrics.listen);
    run::run(config, metrics)
}
