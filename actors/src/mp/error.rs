//! Errors of the MP link: opening tunnels, starting the server or the bridge, and why a link ended.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use aos_transport::frame::{Channel, FrameError};
use aos_transport::tls::{HandshakeError, TlsError};

use super::protocol::OpenRefusal;

/// Opening a tunnel, or starting an MP server or bridge, failed.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum MpError {
    /// The bridge has no link to the main node right now; nothing was sent.
    #[error("the MP link to the main node is down; retry once the bridge reports Connected")]
    NotConnected,
    /// A secure channel was asked for while the node has no `mp` certificate (not provisioned), so its MP
    /// link is anonymous and carries the open channels only.
    #[error("channel {0:?} needs the node's mp certificate; the node is not provisioned, so its MP link carries only the open channels")]
    NotAuthenticated(Channel),
    /// `Control` carries no tunnels.
    #[error("channel {0:?} carries no tunnels; use IamOpen, IamSecure, CmOpen or CmSecure")]
    NotATunnelChannel(Channel),
    /// The main node refused the tunnel.
    #[error("tunnel refused: {0}")]
    Refused(OpenRefusal),
    /// The main node did not answer the open in time (the stream is dropped on both sides).
    #[error("the main node did not answer the tunnel open within {0:?}")]
    OpenTimeout(Duration),
    /// The link ended while the tunnel was being opened.
    #[error("the MP link ended: {0}")]
    LinkEnded(LinkEnd),
    /// An address could not be bound (a local listener of the bridge, or the server's listen address).
    #[error("cannot listen: {0}")]
    Bind(Arc<aos_transport::link::LinkError>),
    /// A configured address is not a link address.
    #[error("mp.{key}: {source}")]
    InvalidAddr {
        /// The `[mp]` key, e.g. `channels.iam_open`.
        key: String,
        /// Why it does not parse.
        source: Arc<aos_transport::link::LinkError>,
    },
    /// The frame size is out of range.
    #[error("invalid MP link settings: {0}")]
    InvalidSettings(Arc<FrameError>),
    /// The TLS configuration could not be built.
    #[error("cannot build the MP link's TLS configuration: {0}")]
    Tls(Arc<TlsError>),
    /// The worker arbiter running the server or bridge went away before it started.
    #[error("the MP worker arbiter stopped")]
    Stopped,
}

/// Why an MP link ended. Every tunnel on it ends with it (its local connection is closed).
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkEnd {
    /// The peer closed the connection (end of stream between frames).
    #[error("the peer closed the link")]
    PeerClosed,
    /// The peer sent a `Close` with this reason.
    #[error("the peer closed the link: {0}")]
    PeerClose(String),
    /// A frame from the peer did not decode.
    #[error("undecodable frame from the peer: {0}")]
    Frame(Arc<FrameError>),
    /// A well-formed frame broke the tunnel protocol (e.g. more bytes than the window allows).
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// Reading or writing the link failed.
    #[error("link I/O error: {0}")]
    Io(Arc<io::Error>),
    /// The peer sends requests (pings, opens) but does not read our answers.
    #[error("the peer does not read: {0} bytes wait to be written to it")]
    PeerNotReading(usize),
    /// Closed on this side, for this reason.
    #[error("closed: {0}")]
    Closed(String),
}

/// Why a bridge's link is down (the `reason` of [`BridgeState::Disconnected`](super::BridgeState)).
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum BridgeDown {
    /// The main node's address could not be dialled (or not within the handshake timeout).
    #[error("cannot reach the main node: {0}")]
    Dial(Arc<io::Error>),
    /// The TLS handshake failed or was refused (by either side).
    #[error("TLS handshake with the main node failed: {0}")]
    Handshake(Arc<HandshakeError>),
    /// The established link ended.
    #[error("{0}")]
    Link(LinkEnd),
    /// The node's `mp` certificate changed: the bridge closed the link to handshake again with it.
    #[error("the node's mp certificate changed; reconnecting with a new handshake")]
    CredentialsChanged,
}

impl From<aos_transport::link::LinkError> for MpError {
    fn from(err: aos_transport::link::LinkError) -> Self {
        MpError::Bind(Arc::new(err))
    }
}

impl From<TlsError> for MpError {
    fn from(err: TlsError) -> Self {
        MpError::Tls(Arc::new(err))
    }
}
