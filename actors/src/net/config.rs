//! Settings of one link.

use std::time::Duration;

use aos_config::TransportConfig;
use aos_transport::frame::{FrameCodec, FrameError};

/// Default of [`LinkConfig::max_queued_bytes`]: 16 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 << 20;

/// Default time a request waits for its answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a link frames, times out and reconnects. Build it from the node's `[transport]` table with
/// `LinkConfig::from(&TransportConfig)` and adjust the fields the table does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Largest frame accepted or sent, in bytes after the length prefix (`transport.max_frame_size`).
    pub max_frame_size: usize,
    /// Time limit of dialing plus the TLS handshake and its acceptance marker (`transport.handshake_timeout`).
    pub handshake_timeout: Duration,
    /// Time a request waits for its answer unless the request sets its own.
    pub request_timeout: Duration,
    /// First reconnect pause of a dialing link (`transport.reconnect_backoff_initial`).
    pub reconnect_backoff_initial: Duration,
    /// Largest reconnect pause (`transport.reconnect_backoff_max`).
    pub reconnect_backoff_max: Duration,
    /// Send a ping this often and drop the connection when nothing at all arrived for two intervals.
    /// `None` (the default) relies on TCP and the link kind to notice a dead peer.
    pub keepalive: Option<Duration>,
    /// Most bytes waiting to be written on one connection. Beyond it local sends fail with
    /// [`LinkError::Backlogged`](super::LinkError::Backlogged), and a peer that sends a request while its
    /// answers pile up unread is disconnected ([`DisconnectReason::PeerNotReading`](super::DisconnectReason)).
    pub max_queued_bytes: usize,
}

// === impl LinkConfig ===

impl LinkConfig {
    /// The frame codec for this configuration; fails when `max_frame_size` is out of range.
    pub fn codec(&self) -> Result<FrameCodec, FrameError> {
        FrameCodec::new(self.max_frame_size)
    }
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig::from(&TransportConfig::default())
    }
}

impl From<&TransportConfig> for LinkConfig {
    fn from(config: &TransportConfig) -> Self {
        LinkConfig {
            max_frame_size: config.max_frame_size as usize,
            handshake_timeout: config.handshake_timeout,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reconnect_backoff_initial: config.reconnect_backoff_initial,
            reconnect_backoff_max: config.reconnect_backoff_max,
            keepalive: None,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_transport_table_and_bad_frame_sizes_are_refused() {
        let table = TransportConfig::default();
        let config = LinkConfig::default();
        assert_eq!(config.max_frame_size, table.max_frame_size as usize);
        assert_eq!(config.handshake_timeout, table.handshake_timeout);
        assert_eq!(config.reconnect_backoff_max, table.reconnect_backoff_max);
        assert_eq!(
            config.codec().unwrap().max_frame_size(),
            config.max_frame_size
        );
        let zero = LinkConfig {
            max_frame_size: 0,
            ..config
        };
        assert!(matches!(
            zero.codec(),
            Err(FrameError::InvalidMaxFrameSize { .. })
        ));
    }
}
