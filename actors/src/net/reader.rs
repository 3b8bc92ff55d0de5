//! The reading half of a connection, as a stream of decoded frames tagged with their connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use aos_transport::frame::{Envelope, FrameCodec, FrameError};
use futures_util::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

/// One thing read from connection number `generation`.
pub(super) struct Inbound {
    /// Which connection of the link it came from (stale ones are ignored).
    pub(super) generation: u64,
    /// What was read.
    pub(super) event: InboundEvent,
}

/// A frame, or the end of the connection's reading side.
pub(super) enum InboundEvent {
    /// A well-formed frame.
    Frame(Envelope),
    /// Undecodable input or a read error; nothing more is read from this connection.
    Failed(FrameError),
    /// The peer closed the stream between frames.
    Eof,
}

/// Frames of one connection; ends right after reporting `Failed` or `Eof`.
pub(super) struct Reader<R> {
    generation: u64,
    frames: FramedRead<R, FrameCodec>,
    done: bool,
}

// === impl Reader ===

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(super) fn new(generation: u64, io: R, codec: FrameCodec) -> Self {
        Reader {
            generation,
            frames: FramedRead::with_capacity(io, codec, 16 * 1024),
            done: false,
        }
    }
}

impl<R: AsyncRead + Unpin> Stream for Reader<R> {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        if self.done {
            return Poll::Ready(None);
        }
        let event = match Pin::new(&mut self.frames).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(envelope))) => InboundEvent::Frame(envelope),
            Poll::Ready(Some(Err(err))) => InboundEvent::Failed(err),
            Poll::Ready(None) => InboundEvent::Eof,
        };
        if !matches!(event, InboundEvent::Frame(_)) {
            self.done = true;
        }
        Poll::Ready(Some(Inbound {
            generation: self.generation,
            event,
        }))
    }
}
