//! Provisioner errors.

use std::path::PathBuf;
use std::time::Duration;

use super::NodeState;
use crate::iam::cert_module::CertError;

/// What went wrong in a provisioning operation. Never contains the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The operation is not allowed in the node's current state.
    #[error("{operation} is not allowed while the node is {state}{hint}")]
    WrongState {
        /// The refused operation.
        operation: &'static str,
        /// The current state.
        state: NodeState,
        /// What to do instead (starts with "; " when present).
        hint: &'static str,
    },
    /// Another provisioning operation is running.
    #[error("another provisioning operation is in progress")]
    Busy,
    /// The password is wrong.
    #[error("wrong provisioning password")]
    WrongPassword,
    /// Too many wrong passwords: wait before trying again.
    #[error("too many wrong passwords; try again in {} s", retry_after.as_secs().max(1))]
    TooManyAttempts {
        /// How long to wait.
        retry_after: Duration,
    },
    /// Some modules have no certificate, so provisioning cannot finish.
    #[error("cannot finish provisioning: no certificate for {}", .0.join(", "))]
    MissingCertificates(Vec<String>),
    /// A provisioning hook failed.
    #[error("{hook} hook failed: {message}")]
    Hook {
        /// Which hook.
        hook: &'static str,
        /// What happened.
        message: String,
    },
    /// A token operation failed.
    #[error("token {token}: {source}")]
    Token {
        /// Token label.
        token: String,
        /// The PKCS#11 error.
        source: aos_pkcs11::Error,
    },
    /// A cert module failed.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The state file could not be read or written.
    #[error("state file {path}: {message}")]
    StateFile {
        /// File.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// A fault injected by a test or the simulator (see `ProvisionerOptions::crash_after`).
    #[error("simulated crash after step {0:?}")]
    SimulatedCrash(super::Step),
    /// The password could not be checked (the worker deriving it stopped); not counted as an attempt.
    #[error("could not check the provisioning password ({0}); try again")]
    PasswordCheck(String),
    /// The provisioner actor is gone.
    #[error("provisioner is not running")]
    Mailbox,
}
