//! Errors of the cloud server: starting it ([`ServerError`]) and driving a unit ([`DriveError`]).

use aos_actors::api::cloud::CmFailure;
use aos_actors::net::LinkError;
use aos_transport::tls::TlsError;

use crate::cloud::{CloudError, Refusal};

/// Why the cloud server could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The server certificate could not be issued.
    #[error("cloud server certificate: {0}")]
    Ca(#[from] CloudError),
    /// The server key could not be made or used.
    #[error("cloud server key: {0}")]
    Key(String),
    /// The TLS configuration could not be built.
    #[error("cloud TLS configuration: {0}")]
    Tls(#[from] TlsError),
    /// The link configuration is invalid, or the listener has no address.
    #[error("cloud listener: {0}")]
    Listen(String),
}

impl From<LinkError> for ServerError {
    fn from(e: LinkError) -> Self {
        ServerError::Listen(e.to_string())
    }
}

/// Why a cloud-driven operation (provisioning, renewal) failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// No CM is connected (or none authenticated, when that was required).
    #[error("no CM of unit {0} is connected")]
    NoCm(String),
    /// The request did not reach the CM or its answer did not come back.
    #[error("link to the CM: {0}")]
    Link(#[from] LinkError),
    /// The CM's answer could not be read or was not the answer to the request.
    #[error("CM protocol: {0}")]
    Protocol(String),
    /// The CM could not carry the request out (which node, which step, IAM's error).
    #[error("the CM failed: {0}")]
    Cm(CmFailure),
    /// The CA refused a CSR the CM sent.
    #[error("the CA refused the CSR for {cert_type} of node {node_id}: {refusal}")]
    Refused {
        /// The node.
        node_id: String,
        /// The cert type.
        cert_type: String,
        /// Why.
        refusal: Refusal,
    },
    /// The CA failed.
    #[error("the CA failed: {0}")]
    Ca(CloudError),
    /// The unit has no such node.
    #[error("the unit has no node {0:?}")]
    UnknownNode(String),
}

impl From<aos_transport::frame::FrameError> for DriveError {
    fn from(e: aos_transport::frame::FrameError) -> Self {
        DriveError::Protocol(e.to_string())
    }
}
