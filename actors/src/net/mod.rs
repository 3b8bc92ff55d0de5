//! The transport actor: one TLS connection per [`LinkActor`], carrying requests and events on the four
//! multiplexed channels (IAM open/secure, CM open/secure) plus control.
//!
//! - A link **dials** ([`LinkActor::dial`] with a [`Dialer`], e.g. [`TcpDialer`]) and reconnects with capped
//!   exponential [`Backoff`] and jitter, or is **accepted** ([`LinkAcceptor`], [`serve_tcp`]) and ends with its
//!   connection. Any byte stream plugs in as a [`BoxedStream`].
//! - TLS is `aos_transport::tls::{connect, accept}` (handshake timeout, acceptance marker); frames are
//!   `aos_transport::frame::FrameCodec` envelopes.
//! - [`Request`]s carry correlation ids, many in flight, each with a timeout ([`LinkError::Timeout`]; a late
//!   answer is dropped). The peer's requests go to the [`Incoming`] handler of their channel, which answers
//!   a body or a [`WireError`]; [`Event`]s go to the channel's subscribers.
//! - State changes ([`LinkState`]: connecting, connected with the peer's identity, disconnected with a
//!   [`DisconnectReason`]) go to subscribers; when a connection drops every in-flight request fails at once
//!   with [`LinkError::Disconnected`].
//! - An invalid frame ends that connection with the typed frame error logged; other links are unaffected.
//! - Links run on the worker arbiters of an [`ArbiterPool`], never on the System arbiter: rustls calls the
//!   token's signer synchronously during handshakes.
//!
//! See `docs/transport-actor.md` for the decisions behind it.

mod acceptor;
mod backoff;
mod config;
mod dialer;
mod error;
mod handle;
mod handlers;
mod inbound;
mod link;
mod messages;
mod pool;
mod reader;
mod routes;
mod state;
mod stream;
mod wire_error;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

pub use acceptor::{serve_link, serve_tcp, LinkAcceptor};
pub use backoff::Backoff;
pub use config::{LinkConfig, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_REQUEST_TIMEOUT};
pub use dialer::{CredentialGate, DialFuture, Dialer, LinkDialer, ReadyFuture, TcpDialer};
pub use error::{DisconnectReason, LinkError};
pub use handle::Link;
pub use link::{ClientTls, LinkActor};
pub use messages::{
    Close, Event, GetStatus, Incoming, LinkStatus, Publish, Request, SetHandler, SubscribeEvents,
    SubscribeState,
};
pub use pool::{ArbiterPool, DEFAULT_POOL_SIZE};
pub use routes::Routes;
pub use state::{LinkState, StateChanged};
pub use stream::{BoxedStream, LinkStream};
pub use wire_error::{ErrorCode, WireError, MAX_WIRE_MESSAGE};
