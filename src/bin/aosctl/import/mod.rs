//! `aosctl config import`: an AosCore IAM JSON configuration (REFERENCE.md's fields, keys in any case) to
//! this runtime's TOML, validated with `aos_config::Config::from_str` before it is written.
//!
//! What has no equivalent here (`identifier`, `nodeInfo.maxDmips`, `partitions`, `os`, `architecture`, keys
//! AosCore does not document) is dropped with a note on stderr; a value this runtime cannot honour (a plugin
//! other than `pkcs11module`, an unknown algorithm, a listen address that is not an IP) is an error naming
//! its key.

mod aoscore;
mod json;

use std::path::{Path, PathBuf};

use crate::cli::ImportArgs;
use crate::error::CtlError;
use crate::output;

pub use aoscore::convert;

/// Why an AosCore configuration could not be imported. Each variant names the offending key.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not JSON.
    #[error("{}:{line}:{column}: not valid JSON: {reason}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What the parser says.
        reason: String,
    },
    /// A value has the wrong JSON type.
    #[error("{key}: expected {expected}")]
    WrongType {
        /// Path of the key.
        key: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A value this runtime does not support.
    #[error("{key}: `{value}` is not supported; {supported}")]
    Unsupported {
        /// Path of the key.
        key: String,
        /// The value found.
        value: String,
        /// What is supported instead.
        supported: String,
    },
    /// A required key is absent.
    #[error("{key}: missing")]
    Missing {
        /// Path of the key.
        key: String,
    },
    /// A value is malformed.
    #[error("{key}: {reason}")]
    Invalid {
        /// Path of the key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The converted configuration does not validate (the message names the TOML key).
    #[error("the converted configuration is not valid: {0}")]
    Validation(aos_config::ConfigError),
    /// The TOML could not be produced.
    #[error("cannot write TOML: {0}")]
    Toml(String),
}

/// `aosctl config import`.
pub fn run(args: &ImportArgs) -> Result<(), CtlError> {
    let text = std::fs::read_to_string(&args.input).map_err(|e| CtlError::read(&args.input, e))?;
    let imported = convert(&text, &args.input, args.node_id.as_deref(), &args.unit_id)?;
    for note in &imported.notes {
        eprintln!("aosctl: note: {note}");
    }
    match &args.output {
        Some(path) => write_output(path, &imported.toml),
        None => output::print_text(&imported.toml),
    }
}

fn write_output(path: &Path, toml: &str) -> Result<(), CtlError> {
    if path.exists() {
        return Err(CtlError::Usage(format!(
            "{} exists; choose another -o file or remove it",
            path.display()
        )));
    }
    crate::ca::write_new(path, toml.as_bytes(), 0o644)
}
