//! Errors of loading a configuration. Every error names the file; parse and validation errors also name the
//! line, the column and the key: `node.toml:14:1: cert_modules[2].pkcs11: two slot selectors set …`.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML, or does not fit the schema (unknown key, wrong type, unknown value, bad duration).
    #[error("{}", Located { file, line: *line, column: *column, key: key.as_deref(), message })]
    Parse {
        /// The file (or origin name given to [`crate::Config::from_str`]).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Key path (`cert_modules[0].pkcs11.slotid`) when the error is at a key or value.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The TOML fits the schema but a value is not acceptable (range, consistency between keys).
    #[error("{}", Located { file, line: *line, column: *column, key: Some(key), message })]
    Invalid {
        /// The file (or origin name given to [`crate::Config::from_str`]).
        file: String,
        /// 1-based line of the key, or of the closest enclosing table when the key is missing.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// Key path, e.g. `cert_modules[2].pkcs11`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

// === impl ConfigError ===

impl ConfigError {
    /// The 1-based line the error points at, if it points into the file.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { line, .. } | ConfigError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The key path the error is about, if known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

/// `file:line:column: key: message`.
struct Located<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    key: Option<&'a str>,
    message: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(key) = self.key.filter(|k| !k.is_empty()) {
            write!(f, "{key}: ")?;
        }
        f.write_str(self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_column_key_message() {
        let err = ConfigError::Invalid {
            file: "node.toml".into(),
            line: 14,
            column: 1,
            key: "cert_modules[2].pkcs11".into(),
            message: "two slot selectors set".into(),
        };
        assert_eq!(
            err.to_string(),
            "node.toml:14:1: cert_modules[2].pkcs11: two slot selectors set"
        );
        let err = ConfigError::Parse {
            file: "n.toml".into(),
            line: 3,
            column: 7,
            key: None,
            message: "expected `=`".into(),
        };
        assert_eq!(err.to_string(), "n.toml:3:7: expected `=`");
        assert_eq!(err.line(), Some(3));
    }

    #[test]
    fn io_error_names_the_path() {
        let err = ConfigError::Io {
            path: "/etc/aos/node.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(err.to_string().starts_with("/etc/aos/node.toml: "), "{err}");
        assert_eq!(err.line(), None);
    }
}
