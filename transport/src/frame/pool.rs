//! A per-connection pool of buffers for large received frames.
//!
//! A received frame is handed on as `Bytes`. Sliced out of the read buffer, it would keep that buffer shared
//! until the receiver drops it, so the next read allocates a fresh buffer. With frames of tens of KiB that
//! is one large allocation and free per message, and glibc answers each free at the top of its arena by
//! returning the pages to the kernel, which the next allocation faults back in. A large frame is therefore
//! copied into a buffer taken from this pool; the read buffer stays unshared and is reused, and the frame's
//! buffer comes back to the pool when the last `Bytes` of it is dropped.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Frames at least this long are copied into pooled buffers; smaller ones are sliced from the read buffer.
pub const POOLED_FRAME_MIN: usize = 16 * 1024;
/// At most this many idle buffers are kept per connection.
const MAX_IDLE: usize = 16;
/// Buffers larger than this are not kept (a rare huge frame must not pin its memory).
const MAX_KEPT_CAPACITY: usize = 256 * 1024;

/// Idle buffers of one connection's decoder.
#[derive(Debug, Default)]
pub(crate) struct FramePool {
    idle: Mutex<Vec<Vec<u8>>>,
}

/// A pooled buffer holding one frame; returns to its pool when dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<FramePool>,
}

impl FramePool {
    /// `frame` copied into a pooled buffer, as `Bytes` that give the buffer back when the last clone drops.
    pub(crate) fn copy(self: &Arc<Self>, frame: &[u8]) -> Bytes {
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut buf = reused.unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        Bytes::from_owner(Pooled {
            buf,
            pool: self.clone(),
        })
    }

    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.buf.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_clone_drops_and_are_reused() {
        let pool = Arc::new(FramePool::default());
        let a = pool.copy(&[1u8; 20_000]);
        let slice = a.slice(10..20);
        drop(a);
        assert_eq!(pool.idle(), 0, "a slice still holds the buffer");
        assert_eq!(&slice[..], &[1u8; 10]);
        drop(slice);
        assert_eq!(pool.idle(), 1);
        let b = pool.copy(&[2u8; 30_000]);
        assert_eq!(pool.idle(), 0, "the idle buffer was taken");
        assert_eq!(b.len(), 30_000);
        assert!(
            b.iter().all(|x| *x == 2),
            "no stale bytes of the last frame"
        );
    }

    #[test]
    fn idle_buffers_are_bounded_in_number_and_size() {
        let pool = Arc::new(FramePool::default());
        let held: Vec<Bytes> = (0..MAX_IDLE + 4).map(|_| pool.copy(&[0u8; 1024])).collect();
        drop(held);
        assert_eq!(pool.idle(), MAX_IDLE);
        let pool = Arc::new(FramePool::default());
        drop(pool.copy(&vec![0u8; MAX_KEPT_CAPACITY + 1]));
        assert_eq!(pool.idle(), 0, "a huge buffer is not kept");
    }
}
