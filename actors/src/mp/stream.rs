//! One tunnel: its send credit, its inbound queue, and the pump between it and a local connection.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use aos_transport::frame::{Envelope, MessageKind};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};

use super::mux::{Mux, StreamKey};
use super::protocol::{encode_window, reset, OpenRefusal};
use crate::net::WireError;

/// What the link hands a stream's pump.
pub(crate) enum Inbound {
    /// Tunnel bytes, in order.
    Data(Bytes),
    /// The peer sends no more bytes.
    Eof,
}

/// How a tunnel ended.
#[derive(Debug)]
pub(crate) enum TunnelEnd {
    /// Both sides closed cleanly.
    Finished,
    /// The other end reset it (its connection failed, or it went away).
    PeerReset(WireError),
    /// The MP link ended.
    LinkEnded,
    /// The local connection failed; the peer was told to reset.
    Local(io::Error),
}

/// Bytes this side may still send on a stream: the peer's window minus what it has not acknowledged.
pub(crate) struct Credit {
    state: Mutex<CreditState>,
    notify: Notify,
}

#[derive(Default)]
struct CreditState {
    /// The window: the most that may be unacknowledged.
    limit: usize,
    /// What may be sent now.
    available: usize,
}

// === impl Credit ===

impl Credit {
    /// No credit until the window is known.
    pub(crate) fn new() -> Credit {
        Credit {
            state: Mutex::new(CreditState::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CreditState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peer's window is `limit` (nothing sent yet).
    pub(crate) fn set_limit(&self, limit: usize) {
        let mut state = self.lock();
        state.limit = limit;
        state.available = limit;
        drop(state);
        self.notify.notify_one();
    }

    /// The peer acknowledged `n` bytes. Fails (with the unacknowledged count) if it acknowledges more than
    /// was sent.
    pub(crate) fn grant(&self, n: usize) -> Result<(), usize> {
        let mut state = self.lock();
        let outstanding = state.limit - state.available;
        if n > outstanding {
            return Err(outstanding);
        }
        state.available += n;
        drop(state);
        self.notify.notify_one();
        Ok(())
    }

    /// Wait until something may be sent; at most `max` of it.
    async fn acquire(&self, max: usize) -> usize {
        loop {
            let available = self.lock().available;
            if available > 0 {
                return available.min(max);
            }
            // `notify_one` stores a permit when nobody waits, so a grant between the check and here is not
            // lost.
            self.notify.notified().await;
        }
    }

    /// `n` bytes were sent.
    fn consume(&self, n: usize) {
        let mut state = self.lock();
        state.available = state.available.saturating_sub(n);
    }
}

/// A stream of a [`Mux`]: pump it with a connection, or (main side, before that) accept or refuse it.
///
/// Dropping a handle whose stream has not finished resets the stream at the peer, so no tunnel is left
/// half-open when a task is cancelled.
pub(crate) struct StreamHandle {
    mux: Mux,
    key: StreamKey,
    inbound: mpsc::UnboundedReceiver<Inbound>,
    reset: oneshot::Receiver<WireError>,
    credit: Arc<Credit>,
    finished: bool,
}

/// Why one direction of a pump stopped early.
enum PumpError {
    /// The local connection failed.
    Io(io::Error),
    /// The link dropped the stream (reset or link end); the reset signal says which.
    Gone,
}

impl From<io::Error> for PumpError {
    fn from(err: io::Error) -> Self {
        PumpError::Io(err)
    }
}

// === impl StreamHandle ===

impl StreamHandle {
    pub(crate) fn new(
        mux: Mux,
        key: StreamKey,
        inbound: mpsc::UnboundedReceiver<Inbound>,
        reset: oneshot::Receiver<WireError>,
        credit: Arc<Credit>,
    ) -> StreamHandle {
        StreamHandle {
            mux,
            key,
            inbound,
            reset,
            credit,
            finished: false,
        }
    }

    /// The stream's channel and id.
    pub(crate) fn key(&self) -> StreamKey {
        self.key
    }

    /// The stream is already gone from the link (refused, reset or link ended): nothing to clean up.
    pub(crate) fn forget(&mut self) {
        self.finished = true;
    }

    /// Main side: the target is connected; tell the bridge, with our receive window.
    pub(crate) fn accept(&self) {
        self.mux.send(Envelope::new(
            self.key.0,
            self.key.1,
            MessageKind::Response,
            encode_window(self.mux.window()),
        ));
    }

    /// Main side: refuse the open with `refusal`.
    pub(crate) fn refuse(mut self, refusal: &OpenRefusal) {
        self.finished = true;
        if self.mux.remove(self.key) {
            self.mux.send(Envelope::new(
                self.key.0,
                self.key.1,
                MessageKind::Error,
                refusal.to_wire().encode(),
            ));
        }
    }

    /// Carry bytes between `io` and the peer until both sides have closed, either side fails, or the link
    /// ends. `io` is dropped (closed) on return.
    pub(crate) async fn pump<IO: AsyncRead + AsyncWrite>(mut self, io: IO) -> TunnelEnd {
        let (mut rd, mut wr) = tokio::io::split(io);
        let key = self.key;
        let (channel, id) = key;
        let mux = &self.mux;
        let credit = &self.credit;
        let inbound = &mut self.inbound;
        let chunk = mux.chunk();

        let outbound = async {
            let mut buf = BytesMut::new();
            loop {
                let allowed = credit.acquire(chunk).await;
                buf.reserve(allowed);
                let n = (&mut rd).take(allowed as u64).read_buf(&mut buf).await?;
                if n == 0 {
                    mux.send(Envelope::new(channel, id, MessageKind::Close, Bytes::new()));
                    return Ok::<(), PumpError>(());
                }
                credit.consume(n);
                mux.send(Envelope::new(
                    channel,
                    id,
                    MessageKind::Event,
                    buf.split().freeze(),
                ));
            }
        };
        let inbound = async {
            loop {
                match inbound.recv().await {
                    Some(Inbound::Data(bytes)) => {
                        wr.write_all(&bytes).await?;
                        wr.flush().await?;
                        mux.consumed(key, bytes.len());
                    }
                    Some(Inbound::Eof) => {
                        wr.shutdown().await?;
                        return Ok::<(), PumpError>(());
                    }
                    None => return Err(PumpError::Gone),
                }
            }
        };
        let pumps = async { tokio::try_join!(outbound, inbound) };
        let reset = &mut self.reset;
        let end = tokio::select! {
            biased;
            signal = &mut *reset => from_signal(signal),
            result = pumps => match result {
                Ok(_) => TunnelEnd::Finished,
                Err(PumpError::Io(err)) => TunnelEnd::Local(err),
                Err(PumpError::Gone) => from_signal(reset.await),
            },
        };
        match &end {
            TunnelEnd::Finished => {
                self.mux.remove(self.key);
                self.finished = true;
            }
            TunnelEnd::Local(err) => {
                self.reset_peer(format!("the other end's connection failed: {err}"))
            }
            TunnelEnd::PeerReset(_) | TunnelEnd::LinkEnded => self.finished = true,
        }
        end
    }

    /// Drop the stream here and tell the peer to drop it too.
    fn reset_peer(&mut self, detail: String) {
        self.finished = true;
        if self.mux.remove(self.key) {
            self.mux.send(Envelope::new(
                self.key.0,
                self.key.1,
                MessageKind::Error,
                reset(detail).encode(),
            ));
        }
    }
}

fn from_signal(signal: Result<WireError, oneshot::error::RecvError>) -> TunnelEnd {
    match signal {
        Ok(error) => TunnelEnd::PeerReset(error),
        Err(_) => TunnelEnd::LinkEnded,
    }
}

impl std::fmt::Debug for StreamHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHandle")
            .field("key", &self.key)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if !self.finished {
            self.reset_peer("the tunnel's other end went away".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credit_waits_for_grants_and_refuses_more_than_was_sent() {
        let credit = Arc::new(Credit::new());
        credit.set_limit(100);
        assert_eq!(credit.acquire(64).await, 64);
        credit.consume(64);
        assert_eq!(credit.acquire(64).await, 36);
        credit.consume(36);
        assert_eq!(credit.grant(101), Err(100), "more than is outstanding");
        let waiter = {
            let credit = credit.clone();
            tokio::spawn(async move { credit.acquire(1000).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no credit, so the sender waits");
        credit.grant(30).unwrap();
        assert_eq!(waiter.await.unwrap(), 30);
        credit.grant(70).unwrap();
        assert_eq!(credit.grant(1), Err(0));
    }
}
