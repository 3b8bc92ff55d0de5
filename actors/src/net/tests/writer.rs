//! The writer task's batches: how many frames go out per write-and-flush, and that every byte arrives.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aos_transport::frame::{Channel, Envelope, FrameCodec, MessageKind};
use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio::sync::oneshot;
use tokio_util::codec::Decoder;

use crate::net::writer::{self, Outgoing, BATCH_BYTES, BATCH_COPY_BYTES, ZERO_COPY_BODY};

/// Records what is written, cut into the batches the flushes mark.
#[derive(Clone, Default)]
struct Recorder {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Default)]
struct Recorded {
    pending: Vec<u8>,
    batches: Vec<Vec<u8>>,
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut recorded = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        recorded.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut recorded = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !recorded.pending.is_empty() {
            let batch = std::mem::take(&mut recorded.pending);
            recorded.batches.push(batch);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Queue one event frame per entry of `sizes` (body byte `i` of frame `n` is `n + i`), then run the writer
/// until the queue closes; the batches written, and the confirmations.
async fn write(
    sizes: &[usize],
) -> (
    Vec<Vec<u8>>,
    Vec<oneshot::Receiver<Result<(), crate::net::LinkError>>>,
) {
    let (outbox, queue) = writer::outbox();
    let mut confirmations = Vec::new();
    for (n, size) in sizes.iter().enumerate() {
        let body: Vec<u8> = (0..*size).map(|i| (n + i) as u8).collect();
        let (written, confirmed) = oneshot::channel();
        confirmations.push(confirmed);
        let queued = outbox.send(Outgoing::Frame {
            envelope: Envelope::new(Channel::CmOpen, n as u64, MessageKind::Event, body),
            written: Some(written),
        });
        assert!(queued.is_ok());
    }
    drop(outbox);
    let recorder = Recorder::default();
    let codec = FrameCodec::new(1 << 20).unwrap();
    writer::run(recorder.clone(), queue, codec).await.unwrap();
    let batches = std::mem::take(&mut recorder.inner.lock().unwrap().batches);
    (batches, confirmations)
}

/// One flushed batch, decoded.
#[derive(Debug)]
struct Batch {
    frames: usize,
    /// Bytes the writer copied into its buffer for this batch: whole small frames, heads of large ones.
    copied: usize,
}

/// Decode every frame of `batches` and check them against what [`write`] queued.
fn check_frames(batches: &[Vec<u8>], sizes: &[usize]) -> Vec<Batch> {
    let mut codec = FrameCodec::new(1 << 20).unwrap();
    let mut decoded = Vec::new();
    let mut next = 0;
    for batch in batches {
        let mut buf = BytesMut::from(&batch[..]);
        let (mut frames, mut copied) = (0, 0);
        loop {
            let before = buf.len();
            let Some(envelope) = codec.decode(&mut buf).unwrap() else {
                break;
            };
            let frame_len = before - buf.len();
            assert_eq!(envelope.correlation, next as u64);
            assert_eq!(envelope.body.len(), sizes[next]);
            assert!(envelope
                .body
                .iter()
                .enumerate()
                .all(|(i, b)| *b == (next + i) as u8));
            copied += if envelope.body.len() >= ZERO_COPY_BODY {
                frame_len - envelope.body.len()
            } else {
                frame_len
            };
            next += 1;
            frames += 1;
        }
        assert!(buf.is_empty(), "a batch ends on a frame boundary");
        decoded.push(Batch { frames, copied });
    }
    assert_eq!(next, sizes.len(), "every frame was written once");
    decoded
}

async fn all_confirmed(confirmations: Vec<oneshot::Receiver<Result<(), crate::net::LinkError>>>) {
    for confirmed in confirmations {
        assert!(matches!(confirmed.await, Ok(Ok(()))));
    }
}

#[tokio::test]
async fn big_frames_go_out_a_mebibyte_per_flush() {
    let sizes = vec![64 * 1024; 20];
    let (batches, confirmations) = write(&sizes).await;
    let per_batch: Vec<usize> = check_frames(&batches, &sizes)
        .iter()
        .map(|b| b.frames)
        .collect();
    // 16 bodies of 64 KiB reach BATCH_BYTES: one flush for them, one for the 4 left.
    assert_eq!(BATCH_BYTES / (64 * 1024), 16);
    assert_eq!(per_batch, vec![16, 4]);
    all_confirmed(confirmations).await;
}

#[tokio::test]
async fn small_frames_are_copied_a_bounded_amount_per_flush() {
    let size = 1024;
    let sizes = vec![size; 1000];
    let (batches, confirmations) = write(&sizes).await;
    let decoded = check_frames(&batches, &sizes);
    assert!(decoded.len() > 1, "{decoded:?}");
    for batch in &batches {
        // The writer stops once the copied bytes reach the limit, so a batch exceeds it by one frame at most.
        assert!(
            batch.len() < BATCH_COPY_BYTES + size + 64,
            "{}",
            batch.len()
        );
    }
    for batch in &batches[..batches.len() - 1] {
        assert!(batch.len() >= BATCH_COPY_BYTES, "{}", batch.len());
    }
    all_confirmed(confirmations).await;
}

#[tokio::test]
async fn copies_between_large_frames_count_against_the_copy_limit() {
    // Small frames that are copied, each followed by a large one that is not: the batch buffer is split
    // at every large frame, so only a running count of what was split off keeps the copies bounded. The
    // bodies alone would let a batch run to 1 MiB, about 480 KiB of it copied.
    let small = ZERO_COPY_BODY - 1024;
    let sizes: Vec<usize> = (0..200)
        .map(|n| if n % 2 == 0 { small } else { ZERO_COPY_BODY })
        .collect();
    let (batches, confirmations) = write(&sizes).await;
    let decoded = check_frames(&batches, &sizes);
    assert!(decoded.len() > 1, "{decoded:?}");
    for batch in &decoded {
        assert!(batch.copied < BATCH_COPY_BYTES + small + 64, "{decoded:?}");
    }
    all_confirmed(confirmations).await;
}
