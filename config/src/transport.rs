//! `[transport]`: framing, TLS and reconnection of the node's links.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Smallest allowed `max_frame_size`.
pub const MIN_FRAME_SIZE: u32 = 1024;
/// Largest allowed `max_frame_size`.
pub const MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// The `[transport]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// Largest frame body accepted or sent, in bytes (1 KiB..=16 MiB). A larger frame closes the connection.
    pub max_frame_size: u32,
    /// Time limit of a TLS handshake, including the first round trip.
    #[serde(with = "crate::duration::serde_str")]
    pub handshake_timeout: Duration,
    /// First pause before reconnecting a dropped link; doubled after each failure.
    #[serde(with = "crate::duration::serde_str")]
    pub reconnect_backoff_initial: Duration,
    /// Upper bound of the reconnect pause.
    #[serde(with = "crate::duration::serde_str")]
    pub reconnect_backoff_max: Duration,
    /// Also accept TLS 1.2 (TLS 1.3 only when false).
    pub allow_tls12: bool,
    /// Allow TLS session resumption (tickets / session ids).
    pub session_resumption: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_frame_size: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            reconnect_backoff_initial: Duration::from_secs(1),
            reconnect_backoff_max: Duration::from_secs(30),
            allow_tls12: false,
            session_resumption: false,
        }
    }
}
