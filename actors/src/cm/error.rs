//! Errors of the CM: starting it ([`CmError`]), asking the cloud ([`CloudCallError`]), and driving SMs
//! ([`SmControlError`]).

use aos_transport::frame::FrameError;
use aos_transport::tls::{IdentityError, TlsError};

use crate::api::cloud::CloudFault;
use crate::api::ApiError;
use crate::net::LinkError;

/// Why the CM could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CmError {
    /// A TLS configuration could not be built (no CA certificate, a bad root, …).
    #[error("CM TLS configuration: {0}")]
    Tls(#[from] TlsError),
    /// The unit or node id cannot form an identity URI.
    #[error("CM identity: {0}")]
    Identity(#[from] IdentityError),
    /// The link configuration is invalid.
    #[error("CM link: {0}")]
    Link(#[from] LinkError),
    /// The SM controller could not listen on its address.
    #[error("CM cannot listen for SMs on {addr}: {source}; free the port or change cm.sm_listen")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The cloud address is not `host:port`.
    #[error("cloud address {0:?} is not host:port; fix cm.cloud_addr")]
    CloudAddr(String),
}

/// Why a request from the CM to the cloud failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CloudCallError {
    /// The cloud answered with a refusal or failure (a CA refusal carries the CA's label).
    #[error("{0}")]
    Cloud(CloudFault),
    /// The request did not reach the cloud, or its answer did not come back (not connected, timeout, link
    /// dropped).
    #[error("cloud link: {0}")]
    Link(LinkError),
    /// The cloud's answer could not be read, or was not the answer to this request.
    #[error("cloud protocol: {0}")]
    Protocol(String),
}

impl CloudCallError {
    /// The CA's refusal label (e.g. `wrong_node`) when the cloud refused a CSR.
    pub fn refusal_label(&self) -> Option<&str> {
        match self {
            CloudCallError::Cloud(CloudFault::Refused { label, .. }) => Some(label),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (link trouble, an unavailable cloud, a CM not yet
    /// authenticated) rather than never (a refusal, an unknown node, a malformed request).
    pub fn is_retryable(&self) -> bool {
        match self {
            CloudCallError::Link(_) | CloudCallError::Protocol(_) => true,
            CloudCallError::Cloud(fault) => matches!(
                fault,
                CloudFault::Unavailable(_) | CloudFault::Unauthorized(_)
            ),
        }
    }
}

impl From<FrameError> for CloudCallError {
    fn from(e: FrameError) -> Self {
        CloudCallError::Protocol(e.to_string())
    }
}

/// Why the SM controller could not drive an SM.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SmControlError {
    /// No SM of this node is connected (its desired instances are kept and sent when it connects).
    #[error("no SM of node {0:?} is connected; its desired instances are sent when it connects")]
    NotConnected(String),
    /// The request did not reach the SM or its answer did not come back.
    #[error("SM link: {0}")]
    Link(LinkError),
    /// The SM answered with an error.
    #[error("SM refused: {0}")]
    Sm(ApiError),
    /// The SM's answer could not be read.
    #[error("SM protocol: {0}")]
    Protocol(String),
    /// The controller has stopped.
    #[error("the SM controller has stopped")]
    Stopped,
}

impl From<FrameError> for SmControlError {
    fn from(e: FrameError) -> Self {
        SmControlError::Protocol(e.to_string())
    }
}
