//! Why an aosctl command failed, and the exit code that says so.

use std::path::PathBuf;
use std::time::Duration;

use aos_actors::api::{ApiError, ErrorCode};

use crate::import::ImportError;

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code of a command whose operation failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a usage error (as clap's own).
pub const EXIT_USAGE: i32 = 2;

/// A failed command. The message names what to fix; no variant carries a secret.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The flags do not make sense together (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's contents are not what was expected (PEM, a password, a secret).
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The CA directory could not be written or read.
    #[error("CA in {}: {source}", dir.display())]
    CaStore {
        /// The CA directory.
        dir: PathBuf,
        /// Why.
        source: aos_sim::cloud::StoreError,
    },
    /// The CA refused or failed to sign, or could not be created.
    #[error("CA: {0}")]
    Ca(#[from] aos_sim::cloud::CloudError),
    /// The TLS client could not be set up.
    #[error("{0}")]
    Client(#[from] aos_actors::iam::client::ClientError),
    /// No connection to the node within the timeout.
    #[error("timed out after {}s connecting to {addr}: {detail}", timeout.as_secs_f32())]
    Unreachable {
        /// The address dialled.
        addr: String,
        /// How long aosctl waited.
        timeout: Duration,
        /// What the link last saw (refused, handshake failure, …).
        detail: String,
    },
    /// The node refused the provisioning password.
    #[error("wrong provisioning password for node `{node}`: {message}")]
    WrongPassword {
        /// The node.
        node: String,
        /// The node's message (it may say when to retry).
        message: String,
    },
    /// The node refused the request for the caller's identity.
    #[error(
        "{op} on node `{node}` is not allowed for this caller: {message}; once a node is provisioned, use the \
         protected endpoint with --cert/--key of a `cm` or `iam` certificate (aosctl ca issue)"
    )]
    Unauthorized {
        /// The operation.
        op: String,
        /// The node.
        node: String,
        /// The node's message.
        message: String,
    },
    /// A request failed on the node.
    #[error("{op} on node `{node}` failed: {source}")]
    Api {
        /// The operation (e.g. `StartProvisioning`).
        op: String,
        /// The node.
        node: String,
        /// The node's typed error.
        source: ApiError,
    },
    /// The node answered with a message of the wrong kind.
    #[error("{op} on node `{node}`: unexpected answer {answer}")]
    Unexpected {
        /// The operation.
        op: String,
        /// The node.
        node: String,
        /// What came back.
        answer: String,
    },
    /// The node configuration does not load.
    #[error("{0}")]
    Config(#[from] aos_config::ConfigError),
    /// An AosCore JSON configuration could not be imported.
    #[error("{0}")]
    Import(#[from] ImportError),
    /// Output could not be produced.
    #[error("cannot write the output: {0}")]
    Output(String),
    /// At least one diagnostic failed (the table says which).
    #[error("{failed} check(s) failed")]
    ChecksFailed {
        /// How many.
        failed: usize,
    },
}

// === impl CtlError ===

impl CtlError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }

    /// The error of request `op` for `node`: a wrong password is reported as such.
    pub fn api(op: &str, node: &str, source: ApiError) -> CtlError {
        match source.code {
            ErrorCode::WrongPassword | ErrorCode::TooManyAttempts => CtlError::WrongPassword {
                node: node.to_owned(),
                message: source.message,
            },
            ErrorCode::Unauthorized => CtlError::Unauthorized {
                op: op.to_owned(),
                node: node.to_owned(),
                message: source.message,
            },
            _ => CtlError::Api {
                op: op.to_owned(),
                node: node.to_owned(),
                source,
            },
        }
    }

    /// A read error for `path`.
    pub fn read(path: impl Into<PathBuf>, source: std::io::Error) -> CtlError {
        CtlError::Read {
            path: path.into(),
            source,
        }
    }

    /// A malformed file.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> CtlError {
        CtlError::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passwords_are_named_and_usage_errors_exit_2() {
        let wrong = CtlError::api(
            "StartProvisioning",
            "main",
            ApiError::new(ErrorCode::WrongPassword, "the password does not match"),
        );
        assert!(matches!(wrong, CtlError::WrongPassword { .. }));
        assert!(wrong
            .to_string()
            .contains("wrong provisioning password for node `main`"));
        assert_eq!(wrong.exit_code(), EXIT_FAILED);
        let other = CtlError::api("GetCertTypes", "n", ApiError::new(ErrorCode::Busy, "busy"));
        assert!(matches!(other, CtlError::Api { .. }));
        let refused = CtlError::api(
            "GetCertTypes",
            "n",
            ApiError::new(ErrorCode::Unauthorized, "an anonymous caller may not"),
        );
        assert!(refused.to_string().contains("--cert/--key"), "{refused}");
        assert_eq!(CtlError::Usage("x".into()).exit_code(), EXIT_USAGE);
    }
}
