//! Why an IAM client or a node registration could not be set up. (Requests fail with `ApiError`.)

use aos_transport::tls::TlsError;

use crate::net::LinkError;

/// Setting up an IAM client failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    /// An address to dial is not usable.
    #[error("cannot dial `{addr}`: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required setting is missing.
    #[error("{0}")]
    Missing(&'static str),
    /// The link could not be started.
    #[error("cannot start the link: {0}")]
    Link(#[from] LinkError),
}
