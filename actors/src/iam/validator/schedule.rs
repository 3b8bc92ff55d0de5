//! When to renew: threshold share of the lifetime minus a random jitter.

use std::time::{Duration, SystemTime};

use aos_config::RenewalConfig;

use crate::iam::cert_module::CertInfo;

/// The renewal state of one cert type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalStatus {
    /// No certificate to renew.
    Idle,
    /// Renew the certificate with serial `serial` at `at`.
    Scheduled {
        /// When.
        at: SystemTime,
        /// The current certificate's serial.
        serial: String,
    },
    /// A renewal is running.
    Renewing,
    /// The renewer reported a fatal error; renewal stopped for this type.
    Failed(String),
}

/// The moment to renew `cert`: `not_before + lifetime × (threshold − jitter)`, with `jitter_fraction` in
/// `[0, 1)` scaling the configured jitter.
pub fn renew_at(cert: &CertInfo, policy: &RenewalConfig, jitter_fraction: f64) -> SystemTime {
    let lifetime = cert
        .not_after
        .duration_since(cert.not_before)
        .unwrap_or(Duration::ZERO);
    let threshold = f64::from(policy.threshold_percent) / 100.0;
    let jitter = f64::from(policy.jitter_percent) / 100.0 * jitter_fraction.clamp(0.0, 1.0);
    let share = (threshold - jitter).clamp(0.0, 1.0);
    cert.not_before + lifetime.mul_f64(share)
}

/// A uniform fraction in `[0, 1)` from the OS random generator (0 if it fails).
pub fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(days: u64) -> CertInfo {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        CertInfo {
            cert_type: "iam".into(),
            cert_url: String::new(),
            key_url: String::new(),
            serial: "01".into(),
            issuer: Vec::new(),
            not_before: start,
            not_after: start + Duration::from_secs(days * 86_400),
        }
    }

    #[test]
    fn threshold_and_jitter_bounds() {
        let policy = RenewalConfig::default();
        let c = cert(100);
        assert_eq!(
            renew_at(&c, &policy, 0.0),
            c.not_before + Duration::from_secs(80 * 86_400)
        );
        let earliest = renew_at(&c, &policy, 0.999_999);
        assert!(
            earliest >= c.not_before + Duration::from_secs(70 * 86_400) - Duration::from_secs(1)
        );
        assert!(earliest < c.not_before + Duration::from_secs(71 * 86_400));
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
