//! The tunnel protocol on an MP link: which frames open, feed, acknowledge, end and refuse a tunnel.
//!
//! Every frame is an `aos_transport::frame::Envelope`. A tunnel (a *stream*) is named by its channel and its
//! stream id, which travels in the envelope's correlation field:
//!
//! | kind | direction | meaning | body |
//! |---|---|---|---|
//! | `Request` | bridge → main | open stream `(channel, id)` | the bridge's receive window (`u32`) |
//! | `Response`, first | main → bridge | opened | the main side's receive window (`u32`) |
//! | `Response`, later | both | credit: the receiver's consumer took this many more bytes | `u32` |
//! | `Event` | both | tunnel bytes | the bytes |
//! | `Close` | both | the sender has no more bytes (half close, like a TCP FIN) | empty |
//! | `Error` | main → bridge before opened | refused | [`WireError`] |
//! | `Error` | both after opened | reset: drop the stream at once | [`WireError`] |
//!
//! On channel `Control` (correlation 0): `Ping` is answered with `Pong`, and `Close` ends the link (body: a
//! UTF-8 reason). See `docs/mp.md`.

use aos_transport::frame::{decode_body, encode_body, Channel, FrameError};
use bytes::Bytes;

use crate::net::{ErrorCode, WireError};

/// The channels that carry tunnels, in id order.
pub const TUNNEL_CHANNELS: [Channel; 4] = [
    Channel::IamOpen,
    Channel::IamSecure,
    Channel::CmOpen,
    Channel::CmSecure,
];

/// Whether tunnels of `channel` need an authenticated link (a bridge with its `mp` certificate).
pub fn is_secure(channel: Channel) -> bool {
    matches!(channel, Channel::IamSecure | Channel::CmSecure)
}

/// The `[mp.channels]` key of a tunnel channel (`iam_open`, …); `None` for `Control`.
pub fn channel_key(channel: Channel) -> Option<&'static str> {
    Some(match channel {
        Channel::IamOpen => "iam_open",
        Channel::IamSecure => "iam_secure",
        Channel::CmOpen => "cm_open",
        Channel::CmSecure => "cm_secure",
        _ => return None,
    })
}

/// Error codes of the MP link, sent in `Error` frames (services use 1000 and up; MP uses 1100–1199).
pub mod code {
    use crate::net::ErrorCode;

    /// A secure channel was asked for on a link whose bridge presented no certificate.
    pub const UNAUTHENTICATED: ErrorCode = ErrorCode(1100);
    /// The main node does not tunnel this channel (no target endpoint configured).
    pub const NO_TARGET: ErrorCode = ErrorCode(1101);
    /// The main node could not connect to the channel's target endpoint.
    pub const TARGET_UNREACHABLE: ErrorCode = ErrorCode(1102);
    /// The link already carries `mp.max_streams` tunnels.
    pub const TOO_MANY_STREAMS: ErrorCode = ErrorCode(1103);
    /// The other end of an open tunnel failed (I/O error on its connection).
    pub const RESET: ErrorCode = ErrorCode(1104);
}

/// Why the main node refused to open a tunnel: the typed form of the `Error` answering an open.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenRefusal {
    /// A secure channel on an anonymous link: the bridge has no `mp` certificate yet.
    #[error("channel {0:?} needs an authenticated MP link (the node's mp certificate); the link is anonymous")]
    Unauthenticated(Channel),
    /// The main node does not tunnel this channel.
    #[error("the main node does not tunnel channel {0:?} (no mp.channels entry there)")]
    NoTarget(Channel),
    /// The main node could not reach the channel's endpoint.
    #[error("the main node cannot reach the endpoint of {channel:?}: {detail}")]
    TargetUnreachable {
        /// The channel.
        channel: Channel,
        /// What the main node said.
        detail: String,
    },
    /// The link carries as many tunnels as it may.
    #[error("the MP link already carries its maximum number of tunnels (mp.max_streams)")]
    TooManyStreams,
    /// Another refusal (e.g. from a newer main node).
    #[error("the main node refused the tunnel: {0}")]
    Other(WireError),
}

// === impl OpenRefusal ===

impl OpenRefusal {
    /// The refusal an `Error` frame answering an open of `channel` carries.
    pub fn from_wire(channel: Channel, error: WireError) -> OpenRefusal {
        match error.code {
            code::UNAUTHENTICATED => OpenRefusal::Unauthenticated(channel),
            code::NO_TARGET => OpenRefusal::NoTarget(channel),
            code::TARGET_UNREACHABLE => OpenRefusal::TargetUnreachable {
                channel,
                detail: error.message,
            },
            code::TOO_MANY_STREAMS => OpenRefusal::TooManyStreams,
            _ => OpenRefusal::Other(error),
        }
    }

    /// The `Error` frame body that says this.
    pub fn to_wire(&self) -> WireError {
        let code = match self {
            OpenRefusal::Unauthenticated(_) => code::UNAUTHENTICATED,
            OpenRefusal::NoTarget(_) => code::NO_TARGET,
            OpenRefusal::TargetUnreachable { detail, .. } => {
                return WireError::new(code::TARGET_UNREACHABLE, detail.clone())
            }
            OpenRefusal::TooManyStreams => code::TOO_MANY_STREAMS,
            OpenRefusal::Other(error) => return error.clone(),
        };
        WireError::new(code, self.to_string())
    }
}

/// Largest encoding of a window body (a `u32` varint takes at most 5 bytes).
const WINDOW_BODY_MAX: usize = 8;

/// The body of an open, opened or credit frame.
pub(crate) fn encode_window(bytes: u32) -> Bytes {
    // A u32 always encodes; the empty fallback would be refused by the peer as malformed.
    Bytes::from(encode_body(&bytes, WINDOW_BODY_MAX).unwrap_or_default())
}

/// The byte count in an open, opened or credit frame.
pub(crate) fn decode_window(body: &[u8]) -> Result<u32, FrameError> {
    decode_body::<u32>(body, WINDOW_BODY_MAX)
}

/// The `Error` body resetting a stream because of `detail`.
pub(crate) fn reset(detail: impl Into<String>) -> WireError {
    WireError::new(code::RESET, detail)
}

/// Whether `code` is one of the MP link's own.
pub fn is_mp_code(code: ErrorCode) -> bool {
    (1100..1200).contains(&code.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip_and_garbage_is_refused() {
        for n in [0, 1, 250, 251, 65_536, u32::MAX] {
            assert_eq!(decode_window(&encode_window(n)).unwrap(), n);
        }
        assert!(decode_window(&[]).is_err());
        assert!(decode_window(&[0xFF; 9]).is_err(), "longer than any u32");
        assert!(decode_window(&[1, 2]).is_err(), "trailing bytes");
    }

    #[test]
    fn refusals_cross_the_wire_typed() {
        let channel = Channel::CmSecure;
        for refusal in [
            OpenRefusal::Unauthenticated(channel),
            OpenRefusal::NoTarget(channel),
            OpenRefusal::TargetUnreachable {
                channel,
                detail: "connection refused".into(),
            },
            OpenRefusal::TooManyStreams,
            OpenRefusal::Other(WireError::new(ErrorCode(4242), "newer")),
        ] {
            let wire = WireError::decode(&refusal.to_wire().encode());
            assert_eq!(OpenRefusal::from_wire(channel, wire), refusal);
        }
        assert!(is_mp_code(code::RESET) && !is_mp_code(ErrorCode::INTERNAL));
    }

    #[test]
    fn only_the_secure_channels_need_authentication() {
        let secure: Vec<_> = TUNNEL_CHANNELS
            .into_iter()
            .filter(|c| is_secure(*c))
            .collect();
        assert_eq!(secure, [Channel::IamSecure, Channel::CmSecure]);
        assert_eq!(channel_key(Channel::CmOpen), Some("cm_open"));
        assert_eq!(channel_key(Channel::Control), None);
    }
}
