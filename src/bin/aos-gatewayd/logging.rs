//! Log set-up: `tracing-subscriber` with an env filter (`AOS_LOG`, else `logging.filter`) and text or JSON
//! lines on stderr. `cryptoki=off` is part of the default filter: cryptoki reports every mechanism it does
//! not know at start.

use std::io::IsTerminal;

use aos_config::{LogFormat, LoggingConfig};
use tracing_subscriber::EnvFilter;

/// The environment variable that overrides `logging.filter`.
pub const FILTER_ENV: &str = "AOS_LOG";

/// Install the global subscriber. A broken filter is reported and the default one used.
pub fn init(config: &LoggingConfig, format: LogFormat) {
    let directives = std::env::var(FILTER_ENV).unwrap_or_else(|_| config.filter.clone());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|err| {
        eprintln!("aos-gatewayd: log filter {directives:?} is invalid ({err}); using the default");
        EnvFilter::new(aos_config::logging::DEFAULT_FILTER)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(err) = installed {
        eprintln!("aos-gatewayd: cannot install the logger: {err}");
    }
}
