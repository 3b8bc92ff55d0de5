//! The writing half of a connection: a task that encodes queued frames and writes them in batches. Also the
//! writer of the MP link's multiplexer (`crate::mp`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aos_transport::frame::{Channel, Envelope, FrameCodec, MessageKind};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Encoder;

use super::LinkError;

/// Stop adding frames to a batch once it holds this many body bytes. Every flush ends a TLS record early
/// (frames are not record-aligned), so a short record and a short TCP segment go out per batch: with
/// 256 KiB batches of 64 KiB frames that cost 14% of the link's throughput, with 1 MiB batches it is
/// amortised (`cargo bench -p aos-actors --bench transport`, section a). Bodies of [`ZERO_COPY_BODY`] or
/// more are not copied, so a batch of big frames costs no memory beyond the frames themselves.
pub(crate) const BATCH_BYTES: usize = 1024 * 1024;
/// Stop adding frames to a batch once this many bytes were copied into its buffer (small frames and the
/// heads of big ones): the most a connection's write buffer grows to.
pub(crate) const BATCH_COPY_BYTES: usize = 256 * 1024;
/// Bodies at least this long are not copied into the batch buffer: the stream gets them as their own slice
/// of a vectored write (TLS copies them once, into its records, as it would any write).
pub(crate) const ZERO_COPY_BODY: usize = 8 * 1024;

/// Written-and-flushed confirmation of one frame.
pub(crate) type Written = oneshot::Sender<Result<(), LinkError>>;

/// What the writer task is asked to do.
pub(crate) enum Outgoing {
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

/// The queue into a connection's writer task, with a count of the body bytes waiting in it.
#[derive(Clone)]
pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
}

/// The writer's end of an [`Outbox`].
pub(crate) struct Queue {
    queue: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
}

/// An outbox and the queue it feeds.
pub(crate) fn outbox() -> (Outbox, Queue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            queue: tx,
            queued: queued.clone(),
        },
        Queue { queue: rx, queued },
    )
}

// === impl Outbox ===

impl Outbox {
    /// Queue `item`; gives it back if the writer is gone.
    pub(crate) fn send(&self, item: Outgoing) -> Result<(), Outgoing> {
        let size = item.size();
        self.queued.fetch_add(size, Ordering::Relaxed);
        self.queue.send(item).map_err(|err| {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            err.0
        })
    }

    /// Bytes queued and not yet taken by the writer.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

// === impl Queue ===

impl Queue {
    async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.queue.recv().await?;
        self.queued.fetch_sub(item.size(), Ordering::Relaxed);
        Some(item)
    }

    fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.queue.try_recv().ok()?;
        self.queued.fetch_sub(item.size(), Ordering::Relaxed);
        Some(item)
    }
}

// === impl Outgoing ===

impl Outgoing {
    /// A frame nobody waits on.
    pub(crate) fn frame(envelope: Envelope) -> Self {
        Outgoing::Frame {
            envelope,
            written: None,
        }
    }

    /// What this item counts against the queue limit: its body plus a frame header's worth.
    fn size(&self) -> usize {
        match self {
            Outgoing::Frame { envelope, .. } => envelope.body.len() + 32,
            Outgoing::Close(reason) => reason.len() + 32,
        }
    }
}

/// Write frames from `queue` to `io` until the queue closes (then shut down cleanly), a `Close` is
/// written, or the stream fails (the error is returned).
///
/// Each wake-up drains what is queued, up to [`BATCH_BYTES`] of bodies or [`BATCH_COPY_BYTES`] copied
/// into the batch buffer (small frames whole, large ones only their heads: their bodies go out as their own
/// slices of a vectored write), writes the batch and flushes (DESIGN.md pitfall 8: a frame is never left in
/// the TLS buffer while the writer waits for more).
pub(crate) async fn run<W: AsyncWrite + Unpin>(
    mut io: W,
    mut queue: Queue,
    mut codec: FrameCodec,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut segments: Vec<Bytes> = Vec::new();
    let mut batch_len = 0;
    // Bytes of this batch already split off `buf` into `segments`.
    let mut copied = 0;
    let mut confirmations: Vec<Written> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut close = None;
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame { envelope, written } => {
                    let encoded = if envelope.body.len() >= ZERO_COPY_BODY {
                        codec.encode_head(&envelope, &mut buf).map(|()| {
                            copied += buf.len();
                            segments.push(buf.split().freeze());
                            segments.push(envelope.body.clone());
                        })
                    } else {
                        codec.encode(&envelope, &mut buf)
                    };
                    match encoded {
                        Ok(()) => {
                            batch_len += envelope.body.len();
                            confirmations.extend(written);
                        }
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
            if batch_len < BATCH_BYTES && buf.len() + copied < BATCH_COPY_BYTES {
                next = queue.try_recv();
            }
        }
        if !buf.is_empty() {
            segments.push(buf.split().freeze());
        }
        if !segments.is_empty() {
            write_all_vectored(&mut io, &mut segments).await?;
            io.flush().await?;
            batch_len = 0;
            copied = 0;
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

/// Write every segment (in order), using vectored writes; empties `segments`.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    segments: &mut Vec<Bytes>,
) -> io::Result<()> {
    let mut first = 0;
    while first < segments.len() {
        let slices: Vec<io::IoSlice<'_>> = segments[first..]
            .iter()
            .map(|b| io::IoSlice::new(b))
            .collect();
        let mut written = io.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let head = &mut segments[first];
            if written >= head.len() {
                written -= head.len();
                first += 1;
            } else {
                let _ = head.split_to(written);
                written = 0;
            }
        }
    }
    segments.clear();
    Ok(())
}
