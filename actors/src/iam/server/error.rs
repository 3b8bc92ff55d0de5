//! Why an IAM server (or the tracker of this node's TLS identity) could not start.

use std::io;
use std::net::SocketAddr;

use aos_transport::tls::{IdentityError, TlsError};

use crate::net::LinkError;

/// Starting an IAM endpoint failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The node or unit id cannot appear in a certificate identity.
    #[error("the node identity is not usable in a certificate: {0}")]
    Identity(#[from] IdentityError),
    /// The provisioning certificate or a TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] TlsError),
    /// `cert_storage` names no enabled cert module.
    #[error(
        "cert_storage `{0}` is not an enabled cert module; IAM cannot serve its own certificate"
    )]
    UnknownCertStorage(String),
    /// An actor the server needs is not running.
    #[error("{0} is not running")]
    Mailbox(&'static str),
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source} (is another IAM running, or the port taken?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The link configuration is invalid.
    #[error("invalid link configuration: {0}")]
    Link(#[from] LinkError),
}
