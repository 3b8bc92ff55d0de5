//! Reconnect pauses: exponential, capped, with jitter.

use std::time::Duration;

/// The pause before each reconnection attempt of a dialing link.
///
/// Attempt `n` (counting from 0) has a ceiling of `min(initial × 2ⁿ, max)`; the pause is drawn uniformly from
/// the upper half of it, `[ceiling / 2, ceiling]` ("equal jitter"), so links that dropped together spread
/// out, yet no pause is shorter than half its ceiling nor longer than `max`. A successful connection resets
/// the sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

// === impl Backoff ===

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (raised to `initial` if smaller), seeded from the OS.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let mut seed = [0u8; 8];
        // A failed seed only makes the jitter predictable; it cannot make pauses wrong.
        let _ = getrandom::fill(&mut seed);
        Self::with_seed(initial, max, u64::from_le_bytes(seed))
    }

    /// The same with a fixed jitter seed (tests, simulations).
    pub fn with_seed(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// The ceiling of the next pause, without jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next pause; each call moves one attempt on.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = (ceiling - half).as_nanos() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.next_random() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Start again from `initial` (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for spreading reconnects.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_double_within_jitter_and_stop_at_the_cap() {
        let mut b = Backoff::with_seed(100 * MS, 1000 * MS, 7);
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for (n, ceiling) in ceilings.into_iter().enumerate() {
            let ceiling = ceiling * MS;
            assert_eq!(b.ceiling(), ceiling, "attempt {n}");
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {n}: {d:?}");
        }
        assert_eq!(b.attempts(), 7);
        for _ in 0..100 {
            assert!(b.next_delay() <= 1000 * MS);
        }
        b.reset();
        assert_eq!(b.ceiling(), 100 * MS);
    }

    #[test]
    fn jitter_spreads_pauses_and_seeds_differ() {
        let draws = |seed| {
            let mut b = Backoff::with_seed(MS, MS * 1000, seed);
            for _ in 0..20 {
                b.next_delay();
            }
            (0..50).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        let a = draws(1);
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 40, "jitter barely varies: {a:?}");
        assert_ne!(a, draws(2));
        assert_eq!(a, draws(1), "a seed fixes the sequence");
    }

    #[test]
    fn huge_attempt_counts_and_a_max_below_initial_do_not_overflow() {
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::from_millis(10), 3);
        assert_eq!(b.ceiling(), Duration::from_secs(1), "max raised to initial");
        b.attempt = u32::MAX;
        assert!(b.next_delay() <= Duration::from_secs(1));
        let mut zero = Backoff::with_seed(Duration::ZERO, Duration::ZERO, 3);
        assert_eq!(zero.next_delay(), Duration::ZERO);
    }
}
