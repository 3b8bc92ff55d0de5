//! The shared-memory part of the vchan ring: the header layout, the memory that holds it (heap or a mapped
//! `/dev/shm` file) and the single-producer/single-consumer byte copies. All `unsafe` of the ring is here.
//!
//! # Layout
//! ```text
//! offset 0      header (4096 bytes): magic, layout version, log2 ring size, connection state,
//!               owner pids and start times, per ring {head, tail, producer_closed, consumer_closed},
//!               per side a doorbell {seq (futex word), sleeping}; every hot word on its own cache line
//! offset 4096   ring 0 data (ring_size bytes): side 0 (server) → side 1 (client)
//! 4096 + size   ring 1 data (ring_size bytes): side 1 (client) → side 0 (server)
//! ```
//! `head` and `tail` are free-running `u64` byte counters: the producer owns `head`, the consumer `tail`;
//! bytes `[tail, head)` are readable, `[head, tail + size)` writable, and a position maps to offset
//! `pos & (size - 1)`.
//!
//! # Soundness
//! - The memory is page aligned, at least `HEADER_SIZE + 2 × ring_size` long (checked against the file
//!   length before use) and lives as long as every [`Shared`] handle (`Arc`).
//! - The header holds only atomics, for which all-zero bytes and every other bit pattern are valid values,
//!   so a `&Header` into the region is valid however the peer writes it.
//! - Data bytes are plain memory. Within this process each ring has exactly one [`Producer`] and one
//!   [`Consumer`] (claimed once per side). The producer only writes `[head, tail + size)`, then publishes
//!   with a release store of `head`; the consumer only reads `[tail, head)` after an acquire load of `head`,
//!   then frees with a release store of `tail`. The two byte ranges never overlap.
//! - Counters read from the peer are never trusted: each side keeps its own counter privately, a peer
//!   counter more than `size` bytes away is reported as [`VchanError::Corrupted`], and every offset is
//!   masked, so no value in shared memory can make us touch memory outside the region.
//! - A peer *process* that breaks the protocol can still change bytes while we copy them (we then deliver
//!   garbage, which the frame codec or TLS refuses) or shrink the file (SIGBUS). The file is mode 0600 and
//!   unlinked once a client has connected, so only a process of the same user that mapped it before can do
//!   that, and such a process could ptrace us anyway.
#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::File;
use std::mem::size_of;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use rustix::thread::futex;
use tokio::io::ReadBuf;

use super::VchanError;

/// "AOSVCHN" plus a NUL, little-endian: the first word of a vchan file.
pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"AOSVCHN\0");
/// Version of the shared layout described in the module documentation.
pub(super) const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header in front of the rings.
pub(super) const HEADER_SIZE: usize = 4096;
/// Largest ring: 1 GiB per direction.
pub(super) const MAX_RING_LOG2: u32 = 30;

/// Connection states in `Header::state`.
pub(super) mod state {
    /// The server created the file and waits for a client.
    pub const LISTENING: u32 = 1;
    /// A client won the race for the file and is filling in its pid.
    pub const CLAIMED: u32 = 2;
    /// Both sides are there.
    pub const CONNECTED: u32 = 3;
}

/// Side 0 is the server (creator), side 1 the client. Side `s` produces into ring `s` and consumes ring
/// `1 - s`.
pub(super) const SERVER: usize = 0;
/// The client side.
pub(super) const CLIENT: usize = 1;

/// One cache line, so that words written by different sides never share one.
#[repr(C, align(64))]
pub(super) struct Line<T>(pub T);

/// Control words of one ring.
#[repr(C)]
pub(super) struct RingCtl {
    /// Bytes ever written (producer's counter).
    pub head: Line<AtomicU64>,
    /// Bytes ever read (consumer's counter).
    pub tail: Line<AtomicU64>,
    /// Non-zero once the producer wrote its last byte (shutdown or drop).
    pub producer_closed: Line<AtomicU32>,
    /// Non-zero once the consumer will read no more (drop).
    pub consumer_closed: Line<AtomicU32>,
}

/// A side's doorbell: the peer bumps `seq` and futex-wakes it when `sleeping` says the side's waiter
/// thread is (about to be) blocked on it.
#[repr(C)]
pub(super) struct Bell {
    /// Futex word.
    pub seq: AtomicU32,
    /// 1 while the side's waiter thread may sleep on `seq`.
    pub sleeping: AtomicU32,
}

/// The shared header at offset 0.
#[repr(C)]
pub(super) struct Header {
    /// [`MAGIC`], written last by the creator.
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// log2 of the ring size.
    pub ring_log2: AtomicU32,
    /// One of [`state`].
    pub state: AtomicU32,
    reserved: AtomicU32,
    /// Process id of each side (0 = not there yet).
    pub pid: [AtomicU32; 2],
    /// Start time of each side's process (clock ticks since boot, from `/proc/<pid>/stat`; 0 = unknown).
    pub start_time: [AtomicU64; 2],
    /// The two rings.
    pub rings: [RingCtl; 2],
    /// The two doorbells.
    pub bells: [Line<Bell>; 2],
}

const _: () = assert!(size_of::<Header>() <= HEADER_SIZE);

/// Total bytes of a region with rings of `2^ring_log2` bytes.
pub(super) fn region_len(ring_log2: u32) -> usize {
    HEADER_SIZE + 2 * (1usize << ring_log2)
}

enum Memory {
    Heap { ptr: NonNull<u8>, layout: Layout },
    Mapped(MmapRaw),
}

/// A region holding one vchan: header plus two rings.
pub(super) struct Shared {
    memory: Memory,
    /// Ring size fixed when the region was set up; never re-read from shared memory.
    ring_size: usize,
    /// Whether each side's producer/consumer pair was handed out in this process.
    claimed: [AtomicBool; 2],
}

// SAFETY: the region is plain memory (heap allocation or shared mapping) that is only reached through
// atomics in the header and through the producer/consumer protocol described in the module documentation,
// which is sound from any thread. Neither `NonNull` nor `MmapRaw` is tied to a thread.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`; every `&self` method either reads atomics or is guarded by the per-side claim.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Memory::Heap { ptr, layout } = self.memory {
            // SAFETY: `ptr` came from `alloc_zeroed(layout)` in `Shared::heap` and is freed only here, once.
            unsafe { dealloc(ptr.as_ptr(), layout) };
        }
    }
}

impl Shared {
    /// An in-process region on the heap, ready for both sides.
    pub(super) fn heap(ring_log2: u32) -> Result<Arc<Shared>, VchanError> {
        let len = region_len(ring_log2);
        let layout =
            Layout::from_size_align(len, HEADER_SIZE).map_err(|_| VchanError::InvalidRingSize {
                requested: 1usize << ring_log2,
            })?;
        // SAFETY: `layout` has a non-zero size (at least HEADER_SIZE).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(VchanError::OutOfMemory { bytes: len })?;
        let shared = Shared {
            memory: Memory::Heap { ptr, layout },
            ring_size: 1 << ring_log2,
            claimed: [AtomicBool::new(false), AtomicBool::new(false)],
        };
        for pid in &shared.header().pid {
            pid.store(std::process::id(), Ordering::Relaxed);
        }
        shared.init_header(ring_log2, state::CONNECTED);
        Ok(Arc::new(shared))
    }

    /// Maps a new server file (already `region_len(ring_log2)` bytes long and zeroed) and writes its header,
    /// magic last, in state LISTENING.
    pub(super) fn create_in(
        file: &File,
        ring_log2: u32,
        pid: u32,
        start_time: u64,
    ) -> std::io::Result<Arc<Shared>> {
        let map = MmapOptions::new()
            .len(region_len(ring_log2))
            .map_raw(file)?;
        let shared = Shared {
            memory: Memory::Mapped(map),
            ring_size: 1 << ring_log2,
            claimed: [AtomicBool::new(false), AtomicBool::new(false)],
        };
        let h = shared.header();
        h.pid[SERVER].store(pid, Ordering::Relaxed);
        h.start_time[SERVER].store(start_time, Ordering::Relaxed);
        shared.init_header(ring_log2, state::LISTENING);
        Ok(Arc::new(shared))
    }

    /// Maps an existing file of `file_len` bytes made by a server, and checks its header.
    pub(super) fn open_in(file: &File, file_len: u64) -> Result<Arc<Shared>, OpenProblem> {
        let len = usize::try_from(file_len).map_err(|_| OpenProblem::Size(file_len))?;
        if len < HEADER_SIZE {
            return Err(OpenProblem::Size(file_len));
        }
        let map = MmapOptions::new()
            .len(len)
            .map_raw(file)
            .map_err(OpenProblem::Map)?;
        // Check the header through a temporary handle whose ring size is not trusted yet.
        let mut shared = Shared {
            memory: Memory::Mapped(map),
            ring_size: 0,
            claimed: [AtomicBool::new(false), AtomicBool::new(false)],
        };
        let h = shared.header();
        if h.magic.load(Ordering::Acquire) != MAGIC {
            return Err(OpenProblem::Magic);
        }
        let version = h.version.load(Ordering::Relaxed);
        if version != LAYOUT_VERSION {
            return Err(OpenProblem::Version(version));
        }
        let ring_log2 = h.ring_log2.load(Ordering::Relaxed);
        if ring_log2 > MAX_RING_LOG2 || region_len(ring_log2) != len {
            return Err(OpenProblem::Size(file_len));
        }
        shared.ring_size = 1 << ring_log2;
        Ok(Arc::new(shared))
    }

    fn init_header(&self, ring_log2: u32, initial_state: u32) {
        let h = self.header();
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.ring_log2.store(ring_log2, Ordering::Relaxed);
        h.state.store(initial_state, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
    }

    fn base(&self) -> *mut u8 {
        match &self.memory {
            Memory::Heap { ptr, .. } => ptr.as_ptr(),
            Memory::Mapped(map) => map.as_mut_ptr(),
        }
    }

    /// The header.
    pub(super) fn header(&self) -> &Header {
        // SAFETY: the region starts page aligned (heap layout align 4096, or mmap) and is at least
        // HEADER_SIZE >= size_of::<Header>() bytes long (checked before any `Shared` exists). `Header` is
        // made of atomics only, valid for any bit pattern and meant for shared mutation. The reference
        // lives no longer than `&self`, which keeps the memory alive.
        unsafe { &*(self.base() as *const Header) }
    }

    /// Ring size in bytes (a power of two).
    pub(super) fn ring_size(&self) -> usize {
        self.ring_size
    }

    /// Start of ring `ring`'s data bytes.
    fn ring_data(&self, ring: usize) -> *mut u8 {
        debug_assert!(ring < 2);
        // SAFETY: the region is HEADER_SIZE + 2 × ring_size bytes long, so both ring starts are inside it.
        unsafe { self.base().add(HEADER_SIZE + (ring & 1) * self.ring_size) }
    }

    /// Hands out side `side`'s producer (of ring `side`) and consumer (of ring `1 - side`); `None` if that
    /// side was already handed out in this process.
    pub(super) fn claim_side(self: &Arc<Self>, side: usize) -> Option<(Producer, Consumer)> {
        let side = side & 1;
        if self.claimed[side].swap(true, Ordering::AcqRel) {
            return None;
        }
        let out = side;
        let inc = 1 - side;
        let h = self.header();
        Some((
            Producer {
                shared: Arc::clone(self),
                ring: out,
                head: h.rings[out].head.0.load(Ordering::Acquire),
            },
            Consumer {
                shared: Arc::clone(self),
                ring: inc,
                tail: h.rings[inc].tail.0.load(Ordering::Acquire),
            },
        ))
    }

    /// Whether ring `ring` holds unread bytes (or inconsistent counters, which the reader reports).
    pub(super) fn readable(&self, ring: usize) -> bool {
        let c = &self.header().rings[ring & 1];
        c.head.0.load(Ordering::Acquire) != c.tail.0.load(Ordering::Acquire)
    }

    /// Whether ring `ring` has room for at least one byte (or inconsistent counters).
    pub(super) fn writable(&self, ring: usize) -> bool {
        let c = &self.header().rings[ring & 1];
        let used = c
            .head
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(c.tail.0.load(Ordering::Acquire));
        used != self.ring_size as u64
    }

    /// Whether ring `ring`'s producer wrote its last byte.
    pub(super) fn producer_closed(&self, ring: usize) -> bool {
        self.header().rings[ring & 1]
            .producer_closed
            .0
            .load(Ordering::Acquire)
            != 0
    }

    /// Whether ring `ring`'s consumer stopped reading.
    pub(super) fn consumer_closed(&self, ring: usize) -> bool {
        self.header().rings[ring & 1]
            .consumer_closed
            .0
            .load(Ordering::Acquire)
            != 0
    }

    /// Rings side `side`'s doorbell if its waiter thread sleeps (or is about to).
    ///
    /// The caller has published its change (head, tail, a flag) before; the fence orders that store before
    /// the `sleeping` load, pairing with the fence in the waiter between its `sleeping` store and its
    /// condition checks, so either the waiter sees the change or we see it sleeping.
    pub(super) fn ring_bell(&self, side: usize) {
        fence(Ordering::SeqCst);
        let bell = &self.header().bells[side & 1].0;
        if bell.sleeping.load(Ordering::SeqCst) != 0 && bell.sleeping.swap(0, Ordering::SeqCst) != 0
        {
            bell.seq.fetch_add(1, Ordering::SeqCst);
            // A failed wake (it cannot fail for a valid address) only delays the peer until its timeout.
            let _ = futex::wake(&bell.seq, futex::Flags::empty(), 1);
        }
    }

    /// Wakes side `side`'s own waiter thread unconditionally (used to stop it).
    pub(super) fn ring_own_bell(&self, side: usize) {
        let bell = &self.header().bells[side & 1].0;
        bell.seq.fetch_add(1, Ordering::SeqCst);
        let _ = futex::wake(&bell.seq, futex::Flags::empty(), u32::MAX);
    }
}

/// Why an existing file is not a usable vchan (mapped to a [`VchanError`] with the path by the caller).
#[derive(Debug)]
pub(super) enum OpenProblem {
    /// Length not `HEADER_SIZE + 2 × 2^n`.
    Size(u64),
    /// Wrong magic.
    Magic,
    /// Other layout version.
    Version(u32),
    /// mmap failed.
    Map(std::io::Error),
}

/// The writing end of one ring; exactly one per ring in this process.
pub(super) struct Producer {
    shared: Arc<Shared>,
    ring: usize,
    /// Our own copy of `head`; the shared one is only published.
    head: u64,
}

impl Producer {
    /// Copies as much of `data` as fits into the ring and publishes it; `Ok(0)` when the ring is full.
    pub(super) fn write(&mut self, data: &[u8]) -> Result<usize, VchanError> {
        let size = self.shared.ring_size;
        let ctl = &self.shared.header().rings[self.ring];
        let tail = ctl.tail.0.load(Ordering::Acquire);
        let used = self.head.wrapping_sub(tail);
        if used > size as u64 {
            return Err(VchanError::Corrupted {
                detail: format!(
                    "ring {}: tail {tail} is {used} bytes behind head {}",
                    self.ring, self.head
                ),
            });
        }
        let n = data.len().min(size - used as usize);
        if n == 0 {
            return Ok(0);
        }
        let offset = (self.head as usize) & (size - 1);
        let first = n.min(size - offset);
        let ring = self.shared.ring_data(self.ring);
        // SAFETY: `offset < size` and `first <= size - offset`, so `[offset, offset + first)` and
        // `[0, n - first)` (with `n <= size`) lie inside this ring's `size` bytes. They are free space
        // (`n <= size - used`), which the consumer does not read until we publish `head` below, and no other
        // producer of this ring exists in this process. `data` is a separate Rust slice of at least `n`
        // bytes, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), ring.add(offset), first);
            std::ptr::copy_nonoverlapping(data.as_ptr().add(first), ring, n - first);
        }
        self.head = self.head.wrapping_add(n as u64);
        ctl.head.0.store(self.head, Ordering::Release);
        Ok(n)
    }

    /// Marks the end of this ring's data (readers get EOF once they drained it).
    pub(super) fn close(&self) {
        self.shared.header().rings[self.ring]
            .producer_closed
            .0
            .store(1, Ordering::SeqCst);
    }

    /// Whether the consumer of this ring stopped reading.
    pub(super) fn consumer_closed(&self) -> bool {
        self.shared.consumer_closed(self.ring)
    }
}

/// The reading end of one ring; exactly one per ring in this process.
pub(super) struct Consumer {
    shared: Arc<Shared>,
    ring: usize,
    /// Our own copy of `tail`.
    tail: u64,
}

impl Consumer {
    /// Moves as many readable bytes as fit into `buf` and frees them in the ring; `Ok(0)` when empty.
    pub(super) fn read_into(&mut self, buf: &mut ReadBuf<'_>) -> Result<usize, VchanError> {
        let size = self.shared.ring_size;
        let ctl = &self.shared.header().rings[self.ring];
        let head = ctl.head.0.load(Ordering::Acquire);
        let avail = head.wrapping_sub(self.tail);
        if avail > size as u64 {
            return Err(VchanError::Corrupted {
                detail: format!(
                    "ring {}: head {head} is {avail} bytes ahead of tail {}",
                    self.ring, self.tail
                ),
            });
        }
        let n = buf.remaining().min(avail as usize);
        if n == 0 {
            return Ok(0);
        }
        let offset = (self.tail as usize) & (size - 1);
        let first = n.min(size - offset);
        let ring = self.shared.ring_data(self.ring);
        // SAFETY: as in `Producer::write`, both source ranges lie inside this ring, and they are readable
        // bytes (`n <= avail`) that the producer published with the release store we acquired above and
        // does not touch again until we publish `tail`. the unfilled part of `buf` has `remaining >= n` bytes
        // of caller memory, never part of the region, and we only write to it (no de-initialisation); writing
        // initialises it, so `assume_init(n)` holds.
        unsafe {
            let dst = buf.unfilled_mut().as_mut_ptr().cast::<u8>();
            std::ptr::copy_nonoverlapping(ring.add(offset), dst, first);
            std::ptr::copy_nonoverlapping(ring, dst.add(first), n - first);
            buf.assume_init(n);
        }
        buf.advance(n);
        self.tail = self.tail.wrapping_add(n as u64);
        ctl.tail.0.store(self.tail, Ordering::Release);
        Ok(n)
    }

    /// Marks that this side reads no more (the producer's writes fail from now on).
    pub(super) fn close(&self) {
        self.shared.header().rings[self.ring]
            .consumer_closed
            .0
            .store(1, Ordering::SeqCst);
    }

    /// Whether the producer of this ring wrote its last byte.
    pub(super) fn producer_closed(&self) -> bool {
        self.shared.producer_closed(self.ring)
    }
}
