//! Errors of link setup.

use super::vchan::VchanError;
use super::LinkAddr;

/// Why a link could not be set up. Errors on an established link are `std::io::Error`s from the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The address string is not a link address.
    #[error("invalid link address {input:?}: {reason}")]
    InvalidAddr {
        /// The string given.
        input: String,
        /// What was expected.
        reason: String,
    },
    /// Dialling failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: LinkAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: LinkAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Accepting a connection failed.
    #[error("cannot accept on {addr}: {source}")]
    Accept {
        /// The listener's address.
        addr: LinkAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A vchan ring could not be set up.
    #[error(transparent)]
    Vchan(#[from] VchanError),
    /// The Xen backend failed or is not compiled in.
    #[error("xen vchan link {addr}: {reason}")]
    Xen {
        /// The address.
        addr: LinkAddr,
        /// What went wrong (e.g. "built without the `xen` feature", "libxenvchan_server_init failed").
        reason: String,
    },
}
