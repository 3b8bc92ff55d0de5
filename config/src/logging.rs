//! `[logging]`: log filter and format.

use serde::{Deserialize, Serialize};

/// Default log filter: `info`, with cryptoki's start-up noise about unknown mechanisms silenced.
pub const DEFAULT_FILTER: &str = "info,cryptoki=off";

/// Output format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `[logging]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `tracing` env-filter directives, e.g. `"info,aos_pkcs11=debug"`.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            filter: DEFAULT_FILTER.to_owned(),
            format: LogFormat::Text,
        }
    }
}
