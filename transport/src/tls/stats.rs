//! Process-wide handshake counters, for metrics: handshakes completed, and refusals by reason (every
//! refusal passes through the one log line in `refusal.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use super::RefusalReason;

static COMPLETED: AtomicU64 = AtomicU64::new(0);
static REFUSED: [AtomicU64; RefusalReason::ALL.len()] =
    [const { AtomicU64::new(0) }; RefusalReason::ALL.len()];

/// Handshakes of this process so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// Completed through [`accept`](super::accept) or [`connect`](super::connect), both sides.
    pub completed: u64,
    /// Refused peers (either side), by reason, every reason listed (zero included).
    pub refused: Vec<(RefusalReason, u64)>,
}

/// The counters now.
pub fn handshake_stats() -> HandshakeStats {
    HandshakeStats {
        completed: COMPLETED.load(Ordering::Relaxed),
        refused: RefusalReason::ALL
            .iter()
            .zip(REFUSED.iter())
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
            .collect(),
    }
}

pub(crate) fn count_completed() {
    COMPLETED.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_refused(reason: RefusalReason) {
    if let Some(i) = RefusalReason::ALL.iter().position(|r| *r == reason) {
        REFUSED[i].fetch_add(1, Ordering::Relaxed);
    }
}
