//! The envelope every frame carries, and its channel and message-kind ids.

use bytes::Bytes;

use super::FrameError;

/// The protocol version this build writes and the only one it accepts.
pub const PROTOCOL_VERSION: u16 = 1;

/// One message on a link: routing header plus opaque body bytes.
///
/// The body is usually an API value encoded with [`encode_body`](super::encode_body); the codec treats it as
/// bytes. It is a [`Bytes`]: decoding slices it out of the frame buffer without copying, and one body can be
/// sent on many links without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Protocol version ([`PROTOCOL_VERSION`] for every frame this build writes).
    pub version: u16,
    /// Logical channel multiplexed over the link.
    pub channel: Channel,
    /// Correlation id: a response or error carries the id of its request; events and keepalives use 0.
    pub correlation: u64,
    /// What the message is.
    pub kind: MessageKind,
    /// The payload.
    pub body: Bytes,
}

impl Envelope {
    /// An envelope of the current [`PROTOCOL_VERSION`].
    pub fn new(
        channel: Channel,
        correlation: u64,
        kind: MessageKind,
        body: impl Into<Bytes>,
    ) -> Self {
        Envelope {
            version: PROTOCOL_VERSION,
            channel,
            correlation,
            kind,
            body: body.into(),
        }
    }
}

/// A logical channel on a link, as AosCore's message-proxy ports 1–4 plus a link-control channel.
///
/// On the wire a channel is one byte. Ids 5–255 are reserved for later channels; a frame naming an id this
/// build does not know fails with [`FrameError::UnknownChannel`] (the peer speaks a newer protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum Channel {
    /// Link control: keepalives ([`MessageKind::Ping`]/[`MessageKind::Pong`]) and [`MessageKind::Close`].
    Control = 0,
    /// IAM public API (AosCore MP port 1).
    IamOpen = 1,
    /// IAM protected API (AosCore MP port 2).
    IamSecure = 2,
    /// CM open channel, also clock sync for nodes without RTC (AosCore MP port 3).
    CmOpen = 3,
    /// CM secure channel (AosCore MP port 4).
    CmSecure = 4,
}

impl Channel {
    /// Every channel this build knows, in id order.
    pub const ALL: [Channel; 5] = [
        Channel::Control,
        Channel::IamOpen,
        Channel::IamSecure,
        Channel::CmOpen,
        Channel::CmSecure,
    ];

    /// The wire id of this channel.
    pub fn id(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for Channel {
    type Error = FrameError;

    fn try_from(id: u8) -> Result<Self, FrameError> {
        Channel::ALL
            .into_iter()
            .find(|c| c.id() == id)
            .ok_or(FrameError::UnknownChannel(id))
    }
}

/// What a message is. One byte on the wire; unknown ids fail with [`FrameError::UnknownKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum MessageKind {
    /// A request; the peer answers with a `Response` or an `Error` carrying the same correlation id.
    Request = 0,
    /// The successful answer to the request with the same correlation id.
    Response = 1,
    /// A one-way notification (subscriptions, state changes); correlation id 0 or a subscription id.
    Event = 2,
    /// The failed answer to the request with the same correlation id; the body says why.
    Error = 3,
    /// Keepalive probe; the peer answers `Pong` with the same correlation id.
    Ping = 4,
    /// Keepalive answer.
    Pong = 5,
    /// The sender is about to close the link (body: optional reason, UTF-8); no answer expected.
    Close = 6,
}

impl MessageKind {
    /// Every message kind this build knows, in id order.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Request,
        MessageKind::Response,
        MessageKind::Event,
        MessageKind::Error,
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::Close,
    ];

    /// The wire id of this kind.
    pub fn id(self) -> u8 {
        self as u8
    }
}

impl TryFrom<u8> for MessageKind {
    type Error = FrameError;

    fn try_from(id: u8) -> Result<Self, FrameError> {
        MessageKind::ALL
            .into_iter()
            .find(|k| k.id() == id)
            .ok_or(FrameError::UnknownKind(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_round_trip_and_unknown_ids_are_typed_errors() {
        for c in Channel::ALL {
            assert_eq!(Channel::try_from(c.id()).unwrap(), c);
        }
        assert_eq!(Channel::IamOpen.id(), 1);
        assert_eq!(Channel::CmSecure.id(), 4);
        for id in 5..=u8::MAX {
            assert!(matches!(Channel::try_from(id), Err(FrameError::UnknownChannel(x)) if x == id));
        }
    }

    #[test]
    fn kind_ids_round_trip_and_unknown_ids_are_typed_errors() {
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::try_from(k.id()).unwrap(), k);
        }
        for id in 7..=u8::MAX {
            assert!(
                matches!(MessageKind::try_from(id), Err(FrameError::UnknownKind(x)) if x == id)
            );
        }
    }
}
