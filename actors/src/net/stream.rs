//! The byte stream under a link: anything `AsyncRead + AsyncWrite + Send + Unpin`, boxed.
//!
//! TCP is the only kind built here; Unix sockets and the vchan ring (`aos_transport::link`) plug in by
//! boxing their stream into a [`BoxedStream`] (a [`Dialer`](super::Dialer) on the dialing side,
//! [`LinkAcceptor::take`](super::LinkAcceptor::take) on the accepting side).

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream a link can run TLS over. Implemented for every `AsyncRead + AsyncWrite + Send + Unpin`.
pub trait LinkStream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> LinkStream for T {}

/// A boxed [`LinkStream`]: the one stream type of the transport actor, whatever the link kind.
pub type BoxedStream = Box<dyn LinkStream>;
