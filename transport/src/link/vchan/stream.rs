//! [`VchanStream`]: one side of a vchan ring as a tokio byte stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::shared::{state, Consumer, Producer, Shared};
use super::signal::{Change, Side, Signal};
use super::VchanError;

/// One side of a vchan ring: reads the peer's ring, writes its own.
///
/// - A write copies as much as fits and returns at once; a full ring makes the writer wait (backpressure).
/// - `poll_shutdown` ends this side's data: the peer reads what is left, then end of stream. Reading goes
///   on until the peer shuts down too.
/// - Dropping the stream closes both directions: the peer's reader gets end of stream after draining, the
///   peer's writer gets `BrokenPipe`.
/// - If the peer process dies without closing, reads (after draining) and blocked writes fail with
///   `ConnectionAborted` once the waiter thread notices (within the configured liveness interval).
///
/// Errors are `std::io::Error`s whose inner error is a [`VchanError`].
pub struct VchanStream {
    producer: Producer,
    consumer: Consumer,
    signal: Signal,
    shared: std::sync::Arc<Shared>,
    me: usize,
    write_shut: bool,
}

impl std::fmt::Debug for VchanStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VchanStream")
            .field("side", &self.me)
            .field("ring_size", &self.shared.ring_size())
            .field("peer_pid", &self.peer_pid())
            .finish_non_exhaustive()
    }
}

impl VchanStream {
    /// Builds side `me` of `shared`; `None` if that side was already taken in this process.
    pub(super) fn new(
        shared: std::sync::Arc<Shared>,
        me: usize,
        signal: Signal,
    ) -> Option<VchanStream> {
        let (producer, consumer) = shared.claim_side(me)?;
        Some(VchanStream {
            producer,
            consumer,
            signal,
            shared,
            me,
            write_shut: false,
        })
    }

    /// Ring size of each direction, in bytes.
    pub fn ring_size(&self) -> usize {
        self.shared.ring_size()
    }

    /// Process id of the peer (our own pid for in-process rings), once it is connected.
    pub fn peer_pid(&self) -> Option<u32> {
        let pid = self.shared.header().pid[1 - self.me].load(std::sync::atomic::Ordering::Acquire);
        (pid != 0).then_some(pid)
    }

    /// Ready once a client has connected to this (server) side.
    pub(super) fn poll_connected(&self, cx: &mut Context<'_>) -> Poll<()> {
        let connected = || {
            self.shared
                .header()
                .state
                .load(std::sync::atomic::Ordering::Acquire)
                == state::CONNECTED
        };
        if connected() {
            return Poll::Ready(());
        }
        self.signal.wait(|s: &Side| &s.connect, cx.waker());
        if connected() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn peer_died(&self) -> io::Error {
        let pid = self.peer_pid().unwrap_or(0);
        VchanError::PeerDied { pid }.into()
    }
}

impl AsyncRead for VchanStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut armed = false;
        loop {
            // The closed flag is read before the ring, so bytes written before the close are never lost.
            let closed = this.consumer.producer_closed();
            match this.consumer.read_into(buf) {
                Ok(0) => {}
                Ok(_) => {
                    this.signal.notify_peer(Change::Space);
                    return Poll::Ready(Ok(()));
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            if closed {
                return Poll::Ready(Ok(()));
            }
            if this.signal.peer_dead() {
                return Poll::Ready(Err(this.peer_died()));
            }
            if armed {
                return Poll::Pending;
            }
            this.signal.wait(|s: &Side| &s.read, cx.waker());
            armed = true;
        }
    }
}

impl AsyncWrite for VchanStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_shut {
            return Poll::Ready(Err(VchanError::WriteAfterShutdown.into()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut armed = false;
        loop {
            if this.producer.consumer_closed() {
                return Poll::Ready(Err(VchanError::PeerClosed.into()));
            }
            match this.producer.write(data) {
                Ok(0) => {}
                Ok(n) => {
                    this.signal.notify_peer(Change::Data);
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            if this.signal.peer_dead() {
                return Poll::Ready(Err(this.peer_died()));
            }
            if armed {
                return Poll::Pending;
            }
            this.signal.wait(|s: &Side| &s.write, cx.waker());
            armed = true;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the peer's view as soon as `poll_write` returns.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_shut {
            this.write_shut = true;
            this.producer.close();
            this.signal.notify_peer(Change::Closed);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for VchanStream {
    fn drop(&mut self) {
        self.producer.close();
        self.consumer.close();
        self.signal.notify_peer(Change::Closed);
    }
}
