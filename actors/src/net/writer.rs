//! The writing half of a connection: a task that encodes queued frames and writes them in batches.

use std::io;

use aos_transport::frame::{Channel, Envelope, FrameCodec, MessageKind};
use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Encoder;

use super::LinkError;

/// Stop adding frames to a batch once it holds this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// Written-and-flushed confirmation of one frame.
pub(super) type Written = oneshot::Sender<Result<(), LinkError>>;

/// What the writer task is asked to do.
pub(super) enum Outgoing {
    /// Write this frame; confirm on `written` once flushed.
    Frame {
        /// The frame.
        envelope: Envelope,
        /// Who wants to know it left.
        written: Option<Written>,
    },
    /// Write a `Close` frame with this reason, flush, shut the stream down and stop.
    Close(String),
}

/// The queue into a connection's writer task.
pub(super) type Outbox = mpsc::UnboundedSender<Outgoing>;

// === impl Outgoing ===

impl Outgoing {
    /// A frame nobody waits on.
    pub(super) fn frame(envelope: Envelope) -> Self {
        Outgoing::Frame {
            envelope,
            written: None,
        }
    }
}

/// Write frames from `queue` to `io` until the queue closes (then shut down cleanly), a `Close` is
/// written, or the stream fails (the error is returned).
///
/// Each wake-up drains what is queued, up to [`BATCH_BYTES`], encodes it into one buffer, writes it and
/// flushes (DESIGN.md pitfall 8: a frame is never left in the TLS buffer while the writer waits for more).
pub(super) async fn run<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    mut codec: FrameCodec,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut confirmations: Vec<Written> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut close = None;
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame { envelope, written } => {
                    match codec.encode(&envelope, &mut buf) {
                        Ok(()) => confirmations.extend(written),
                        Err(err) => {
                            // Bodies are checked against the frame size before they are queued, so this
                            // only happens if that check and the codec disagree; fail that frame alone.
                            tracing::error!(error = %err, "frame not sent: cannot encode it");
                            if let Some(written) = written {
                                let _ = written.send(Err(LinkError::TooLarge {
                                    len: envelope.body.len(),
                                    max: codec.max_body_size(),
                                }));
                            }
                        }
                    }
                }
                Outgoing::Close(reason) => {
                    close = Some(reason);
                    break;
                }
            }
            if buf.len() < BATCH_BYTES {
                next = queue.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            io.write_all(&buf).await?;
            io.flush().await?;
            buf.clear();
            for written in confirmations.drain(..) {
                let _ = written.send(Ok(()));
            }
        }
        if let Some(reason) = close {
            let envelope =
                Envelope::new(Channel::Control, 0, MessageKind::Close, reason.into_bytes());
            if codec.encode(&envelope, &mut buf).is_ok() {
                io.write_all(&buf).await?;
                io.flush().await?;
            }
            return io.shutdown().await;
        }
    }
    io.shutdown().await
}
