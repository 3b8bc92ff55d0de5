//! The worker arbiters links run on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Arbiter, ArbiterHandle};

/// A small set of actix arbiters (one thread and one single-threaded tokio runtime each) that run link
/// actors, so TLS, whose handshakes call the token's signer synchronously, never runs on the System
/// arbiter. Links are placed round-robin. Clones share the arbiters; they stop when the last clone is
/// dropped, and with them every link they run (their connections close).
#[derive(Clone)]
pub struct ArbiterPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    arbiters: Vec<Arbiter>,
    next: AtomicUsize,
}

/// Workers of [`ArbiterPool::default_size`].
pub const DEFAULT_POOL_SIZE: usize = 2;

// === impl ArbiterPool ===

impl ArbiterPool {
    /// `size` new arbiters (at least one). Must be called inside a running actix `System`.
    pub fn new(size: usize) -> Self {
        let arbiters = (0..size.max(1)).map(|_| Arbiter::new()).collect();
        ArbiterPool {
            inner: Arc::new(PoolInner {
                arbiters,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// A pool of [`DEFAULT_POOL_SIZE`] arbiters.
    pub fn default_size() -> Self {
        Self::new(DEFAULT_POOL_SIZE)
    }

    /// The arbiter for the next link.
    pub fn next(&self) -> ArbiterHandle {
        let arbiters = &self.inner.arbiters;
        let index = self.inner.next.fetch_add(1, Ordering::Relaxed) % arbiters.len();
        arbiters[index].handle()
    }

    /// How many arbiters the pool has.
    pub fn size(&self) -> usize {
        self.inner.arbiters.len()
    }
}

impl std::fmt::Debug for ArbiterPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArbiterPool")
            .field("size", &self.size())
            .finish()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}
