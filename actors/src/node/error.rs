//! Why a node could not start.

use crate::cm::CmError;
use crate::iam::client::ClientError;
use crate::iam::core::CoreError;
use crate::iam::server::ServerError;
use crate::mp::MpError;
use crate::sm::SmError;

/// Why [`Node::start`](super::Node::start) failed. Each variant names the component; its message says what
/// to fix (a port in use names the address, a missing token names the module).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// IAM's actors (CA file, state file, permission store, cert modules).
    #[error("IAM: {0}")]
    Iam(#[from] CoreError),
    /// The IAM endpoints (a port in use, TLS setup).
    #[error("IAM server: {0}")]
    Server(#[from] ServerError),
    /// The registration client or the SM's IAM client of a secondary node.
    #[error("IAM client: {0}")]
    Client(#[from] ClientError),
    /// The CM (cloud address, SM controller port).
    #[error("CM: {0}")]
    Cm(#[from] CmError),
    /// The MP server or bridge (addresses, link setup).
    #[error("MP: {0}")]
    Mp(#[from] MpError),
    /// The SM.
    #[error("SM: {0}")]
    Sm(#[from] SmError),
    /// TLS set-up (e.g. the CA certificates make no usable root store).
    #[error("TLS: {0}")]
    Tls(#[from] aos_transport::tls::TlsError),
    /// A component identity could not be formed from the node's ids.
    #[error("identity: {0}")]
    Identity(#[from] aos_transport::tls::IdentityError),
    /// A cert module's PKCS#11 library does not exist or does not load.
    #[error("cert module {module}: PKCS#11 library {library}: {source}")]
    Pkcs11 {
        /// The cert module (`cert_modules[].id`).
        module: String,
        /// The library path.
        library: String,
        /// Why it cannot be used.
        source: aos_pkcs11::Error,
    },
    /// The configuration asks for a component without saying how to reach what it needs (the validator
    /// normally catches this first).
    #[error("{0}")]
    Unreachable(&'static str),
}
