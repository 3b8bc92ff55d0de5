//! Messages a link actor handles, and the messages it sends to handlers and subscribers.

use bytes::Bytes;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use actix::{Message, Recipient};
use aos_transport::frame::Channel;
use aos_transport::tls::PeerIdentity;

use super::{LinkError, LinkState, StateChanged, WireError};

/// Send a request on `channel` and wait for the peer's answer (the response body).
///
/// Fails fast with [`LinkError::NotConnected`] when no connection is up, with [`LinkError::Disconnected`]
/// when the connection drops before the answer, with [`LinkError::Timeout`] after `timeout` (or the link's
/// `request_timeout`), and with [`LinkError::Remote`] when the peer answers with an error.
#[derive(Debug, Message)]
#[rtype(result = "Result<Bytes, LinkError>")]
pub struct Request {
    /// The channel (not `Control`).
    pub channel: Channel,
    /// The request body (typically `aos_transport::frame::encode_body` of an API type).
    pub body: Bytes,
    /// This request's timeout instead of the link's `request_timeout`.
    pub timeout: Option<Duration>,
}

/// Send a one-way event on `channel`. Answered once the frame has been written and flushed to the link, so
/// awaiting it paces the sender to the link; nothing says whether the peer had a subscriber.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LinkError>")]
pub struct Publish {
    /// The channel (not `Control`).
    pub channel: Channel,
    /// The event body.
    pub body: Bytes,
}

/// A request from the peer, for the handler registered on its channel. The handler answers with the
/// response body or a [`WireError`]; it may answer later (return an actix `ResponseFuture`), the link keeps
/// serving other requests meanwhile.
#[derive(Debug, Message)]
#[rtype(result = "Result<Bytes, WireError>")]
pub struct Incoming {
    /// The channel it came on.
    pub channel: Channel,
    /// The request body.
    pub body: Bytes,
    /// The peer's verified identity (authorize on it).
    pub peer: Option<Arc<PeerIdentity>>,
}

/// A one-way event from the peer, for the subscribers of its channel.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Event {
    /// The channel it came on.
    pub channel: Channel,
    /// The event body.
    pub body: Bytes,
    /// The peer's verified identity.
    pub peer: Option<Arc<PeerIdentity>>,
}

/// Register (or with `None` remove) the handler of requests on `channel`. Requests on a channel without a
/// handler are answered with [`ErrorCode::NO_HANDLER`](super::ErrorCode::NO_HANDLER).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LinkError>")]
pub struct SetHandler {
    /// The channel (not `Control`).
    pub channel: Channel,
    /// The handler.
    pub handler: Option<Recipient<Incoming>>,
}

/// Add a subscriber of the peer's events on `channel`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), LinkError>")]
pub struct SubscribeEvents {
    /// The channel (not `Control`).
    pub channel: Channel,
    /// The subscriber.
    pub subscriber: Recipient<Event>,
}

/// Add a subscriber of state changes; it is sent the current state at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscribeState(pub Recipient<StateChanged>);

/// Close the link: tell the peer why, flush, shut the stream down and stop the actor (a dialing link does
/// not reconnect). In-flight requests fail with `Disconnected(Closed)`. Answered when the stream is shut
/// down (or after a second if the peer does not read).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close {
    /// Sent to the peer in the `Close` frame.
    pub reason: String,
}

/// Ask a link how it stands.
#[derive(Debug, Message)]
#[rtype(result = "LinkStatus")]
pub struct GetStatus;

/// What [`GetStatus`] answers.
#[derive(Debug, Clone)]
pub struct LinkStatus {
    /// The current state.
    pub state: LinkState,
    /// Requests waiting for an answer.
    pub in_flight: usize,
    /// Where the link connects or was accepted from.
    pub remote: Arc<str>,
    /// The thread of the arbiter the link runs on (never the System arbiter's).
    pub thread: ThreadId,
}
