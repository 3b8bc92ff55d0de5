//! Why a unit could not be built or an operation on it failed.

use std::path::{Path, PathBuf};

use aos_actors::node::NodeError;

use crate::cloud::server::ServerError;
use crate::cloud::CloudError;
use crate::tokens::TokenStoreError;

/// Why a [`SimUnit`](super::SimUnit) could not start, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// A unit needs at least its main node.
    #[error("a unit needs at least one node")]
    NoNodes,
    /// A file or socket of the unit.
    #[error("{path}: {source}")]
    Io {
        /// What.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The SoftHSM store.
    #[error(transparent)]
    Tokens(#[from] TokenStoreError),
    /// The cloud CA.
    #[error("cloud CA: {0}")]
    Ca(#[from] CloudError),
    /// The cloud server.
    #[error("cloud server: {0}")]
    Cloud(#[from] ServerError),
    /// TLS roots.
    #[error("TLS: {0}")]
    Tls(#[from] aos_transport::tls::TlsError),
    /// A node did not start.
    #[error("node {node}: {source}")]
    Node {
        /// Which.
        node: String,
        /// Why.
        source: Box<NodeError>,
    },
    /// The MP link or its proxy.
    #[error("MP link: {0}")]
    Link(String),
    /// An operation on a running unit failed (the message names the node and what failed).
    #[error("{node}: {message}")]
    Op {
        /// Which node.
        node: String,
        /// What failed.
        message: String,
    },
}

impl UnitError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> UnitError {
        UnitError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn node(node: &str, source: NodeError) -> UnitError {
        UnitError::Node {
            node: node.to_owned(),
            source: Box::new(source),
        }
    }

    pub(crate) fn op(node: &str, message: impl std::fmt::Display) -> UnitError {
        UnitError::Op {
            node: node.to_owned(),
            message: message.to_string(),
        }
    }
}
