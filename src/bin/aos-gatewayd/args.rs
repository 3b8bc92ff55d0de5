//! Command-line flags of `aos-gatewayd`.

use std::net::SocketAddr;
use std::path::PathBuf;

use aos_config::LogFormat;
use clap::{Parser, ValueEnum};

/// The aos-edge node daemon: runs one node's components (IAM, and per its configuration the node
/// controller, CM, SM, MP server or bridge) until SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "aos-gatewayd", version, about, long_about = None)]
pub struct Args {
    /// The node's TOML configuration (reference: config/README.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,

    /// Validate the configuration, print a one-line summary and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub check_config: bool,

    /// Log line format; overrides `logging.format`.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<Format>,

    /// Serve `/metrics` and `/ready` here; overrides `metrics.listen`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<Format> for LogFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        }
    }
}
