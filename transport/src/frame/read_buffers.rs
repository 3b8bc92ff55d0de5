//! Read buffers that are reused once the frames cut from them are dropped.
//!
//! The decoder hands each frame on as `Bytes` cut out of the read buffer without a copy, so the buffer stays
//! shared until the receiver drops the frame. When a large frame then needs more room than the buffer has,
//! letting the buffer grow would allocate fresh memory for almost every large frame; glibc gives such blocks
//! back to the kernel when they are freed, and the next allocation faults the pages in again. Instead the
//! decoder switches to a big buffer of its own: one of its spares whose frames have all been dropped
//! (`BytesMut::try_reclaim` succeeds only then), or a new one. At most [`MAX_BUFFERS`] are kept; a buffer
//! that is not kept is freed once its frames are dropped. Only the bytes of the incomplete frame move
//! across. A connection that never carries a frame of [`SWITCH_MIN`] bytes or more never gets one; once it
//! has, every frame that does not fit switches buffers rather than growing the read buffer.

use bytes::BytesMut;

/// Frames at least this long make the decoder switch to its big buffers rather than grow the read buffer.
pub const SWITCH_MIN: usize = 16 * 1024;
/// Capacity of each big buffer.
pub const BUFFER_CAPACITY: usize = 512 * 1024;
/// Most big buffers kept per connection (the one in use included).
pub const MAX_BUFFERS: usize = 4;

/// A connection's spare big buffers.
#[derive(Default)]
pub(crate) struct ReadBuffers {
    spares: Vec<BytesMut>,
    /// Start address of the big buffer the decoder reads into, if it reads into one of ours: the read
    /// buffer can also be one `BytesMut` grew on its own (tokio-util reserves a byte before each read).
    current: Option<usize>,
    /// Big buffers allocated so far (for tests and diagnostics).
    allocated: usize,
}

impl ReadBuffers {
    /// Whether a frame of `total` bytes (prefix included) that does not fit in `src` should move to a big
    /// buffer instead of growing `src`: a large frame, or any frame once the connection uses big buffers.
    pub(crate) fn should_switch(&self, src: &BytesMut, total: usize) -> bool {
        total <= BUFFER_CAPACITY
            && src.capacity() < total
            && (total >= SWITCH_MIN || self.current.is_some())
    }

    /// Replace `src` by a big buffer holding the same bytes, keeping `src`'s allocation as a spare when it is
    /// one of ours.
    pub(crate) fn switch(&mut self, src: &mut BytesMut) {
        let reclaimable = self
            .spares
            .iter_mut()
            .position(|b| b.try_reclaim(BUFFER_CAPACITY));
        let mut next = match reclaimable {
            Some(i) => self.spares.swap_remove(i),
            None => {
                // Every spare still holds live frames (or there are none yet).
                self.allocated += 1;
                BytesMut::with_capacity(BUFFER_CAPACITY)
            }
        };
        next.extend_from_slice(src);
        let start = next.as_ptr() as usize;
        let mut old = std::mem::replace(src, next);
        let ours = self
            .current
            .is_some_and(|at| (at..=at + BUFFER_CAPACITY).contains(&(old.as_ptr() as usize)));
        old.clear();
        if ours && self.spares.len() + 1 < MAX_BUFFERS {
            self.spares.push(old);
        }
        self.current = Some(start);
    }

    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.allocated
    }
}

impl std::fmt::Debug for ReadBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBuffers")
            .field("spares", &self.spares.len())
            .field("in_use", &self.current.is_some())
            .field("allocated", &self.allocated)
            .finish()
    }
}
