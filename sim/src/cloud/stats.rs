//! Counters of what the CA did, for the simulator's report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A snapshot of the CA's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaStats {
    /// Certificates issued.
    pub issued: u64,
    /// CSRs refused by the policy (see `refusals` for why).
    pub refused: u64,
    /// Requests that failed inside the CA (crypto or clock errors): neither issued nor refused.
    pub failed: u64,
    /// Refusals by [`super::Refusal::label`].
    pub refusals: BTreeMap<&'static str, u64>,
}

/// The live counters; safe to bump from many threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    issued: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counters {
    pub(crate) fn issued(&self) {
        self.issued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, label: &'static str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *refusals.entry(label).or_default() += 1;
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CaStats {
        CaStats {
            issued: self.issued.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            refusals: self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_by_reason() {
        let counters = Counters::default();
        counters.issued();
        counters.refused("wrong_node");
        counters.refused("wrong_node");
        counters.refused("bad_signature");
        counters.failed();
        let stats = counters.snapshot();
        assert_eq!((stats.issued, stats.refused, stats.failed), (1, 3, 1));
        assert_eq!(stats.refusals.get("wrong_node"), Some(&2));
        assert_eq!(stats.refusals.get("bad_signature"), Some(&1));
    }
}
