//! Errors of the SM: starting it ([`SmError`]) and starting an instance ([`RunError`]).

use aos_transport::tls::{IdentityError, TlsError};

use crate::net::LinkError;

/// Why the SM could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SmError {
    /// The TLS configuration could not be built (no CA certificate, a bad root, …).
    #[error("SM TLS configuration: {0}")]
    Tls(#[from] TlsError),
    /// The unit id cannot form an identity URI.
    #[error("SM identity: {0}")]
    Identity(#[from] IdentityError),
    /// The link configuration is invalid.
    #[error("SM link: {0}")]
    Link(#[from] LinkError),
    /// The CM address is not `host:port`.
    #[error("CM address {0:?} is not host:port; fix sm.cm_addr")]
    CmAddr(String),
}

/// Why an instance could not be started.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// This runner does not run instances of this kind (e.g. a simulated instance without a simulated
    /// runner).
    #[error("no runner for {0} instances on this node")]
    Unsupported(&'static str),
    /// The spec tries to set a variable the SM sets itself.
    #[error("the instance's environment may not set {0}; the SM sets it")]
    ReservedVariable(String),
    /// The program could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
