//! Errors of link operations, and why a connection ended.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use aos_transport::frame::{Channel, FrameError};
use aos_transport::tls::HandshakeError;

use super::WireError;

/// A request, publish or other operation on a link failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No connection is up right now (the link is connecting or waiting to reconnect); nothing was sent.
    #[error("the link is not connected; retry once it reports Connected")]
    NotConnected,
    /// The connection dropped while the request was in flight; the peer may or may not have handled it.
    #[error("the connection dropped before the answer came ({0})")]
    Disconnected(DisconnectReason),
    /// No answer came within the request's timeout; a late answer is dropped.
    #[error("no answer on channel {channel:?} within {after:?}")]
    Timeout {
        /// The request's channel.
        channel: Channel,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The peer answered with an error.
    #[error("the peer refused the request: {0}")]
    Remote(WireError),
    /// The body does not fit in one frame.
    #[error("body of {len} bytes exceeds the {max} bytes a frame can carry (raise transport.max_frame_size on both peers)")]
    TooLarge {
        /// Body size.
        len: usize,
        /// Largest body a frame carries under this link's `max_frame_size`.
        max: usize,
    },
    /// Too much is waiting to be written on this connection (the peer does not read, or reads slower than
    /// we send); nothing was queued. Retry later, or await sends instead of firing them.
    #[error("{queued} bytes are waiting to be written to the peer (limit {limit}); it is not keeping up")]
    Backlogged {
        /// Bytes queued.
        queued: usize,
        /// The link's `max_queued_bytes`.
        limit: usize,
    },
    /// The control channel carries pings and closes only; requests and events use the others.
    #[error("channel Control is reserved for link control; use an IAM or CM channel")]
    ReservedChannel,
    /// The connection ended before the event was written (see the link's state for why).
    #[error("the connection ended before the event was sent")]
    Unsent,
    /// The link actor has stopped (closed, or its arbiter went away).
    #[error("the link actor has stopped")]
    Stopped,
    /// The link configuration is invalid.
    #[error("invalid link configuration: {0}")]
    InvalidConfig(#[source] FrameError),
}

impl From<actix::MailboxError> for LinkError {
    fn from(_: actix::MailboxError) -> Self {
        LinkError::Stopped
    }
}

/// Why a connection ended (or could not be made). Cheap to clone: every in-flight request gets a copy.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum DisconnectReason {
    /// The byte stream could not be opened (refused, unreachable, dial timeout).
    #[error("dial failed: {0}")]
    Dial(Arc<io::Error>),
    /// The TLS handshake failed or was refused.
    #[error("TLS handshake failed: {0}")]
    Handshake(Arc<HandshakeError>),
    /// The peer sent bytes that are not valid frames; the connection was closed so the stream cannot desync.
    #[error("the peer sent an invalid frame: {0}")]
    Frame(Arc<FrameError>),
    /// Reading or writing the connection failed.
    #[error("link I/O failed: {0}")]
    Io(Arc<io::Error>),
    /// The peer closed the stream without saying why (crash, restart, network cut).
    #[error("the peer closed the connection")]
    PeerClosed,
    /// The peer announced it was closing.
    #[error("the peer closed the link: {0}")]
    PeerClose(String),
    /// The peer kept sending requests while more than `max_queued_bytes` of our answers waited unread.
    #[error("the peer does not read its answers ({0} bytes queued)")]
    PeerNotReading(usize),
    /// Nothing arrived for two keepalive intervals.
    #[error("no traffic from the peer for {0:?} (keepalive)")]
    KeepaliveTimeout(Duration),
    /// We closed the link.
    #[error("the link was closed locally")]
    Closed,
}

impl DisconnectReason {
    /// The reason for a failed read or decode: I/O errors stay I/O errors, anything else is a frame error.
    pub(super) fn from_frame_error(err: FrameError) -> Self {
        match err {
            FrameError::Io(io) => DisconnectReason::Io(Arc::new(io)),
            other => DisconnectReason::Frame(Arc::new(other)),
        }
    }
}
