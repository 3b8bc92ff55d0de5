//! Why a scenario was refused.

/// Why a scenario cannot run. Each message names the file, the line and the key to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read the scenario: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{file}:{line}: not TOML: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key has a wrong value, is missing or unknown.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The key path (`step[2].node`).
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// The scenario cannot run on this unit (e.g. a fault on node 7 of 3).
    #[error("{file}:{line}: {key}: impossible on this unit: {message}")]
    Impossible {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The key path.
        key: String,
        /// Why.
        message: String,
    },
}
