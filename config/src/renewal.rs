//! `[renewal]`: when certificates are renewed and how often they are checked.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[renewal]` table. A certificate is due for renewal once `threshold_percent` of its lifetime has
/// passed, moved earlier by a random part of up to `jitter_percent` of its lifetime (so a fleet does not renew
/// at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalConfig {
    /// Share of the lifetime (1..=99 %) after which a certificate is renewed.
    pub threshold_percent: u8,
    /// Largest random advance of the renewal time, in % of the lifetime (0..=50).
    pub jitter_percent: u8,
    /// Pause before retrying a failed renewal.
    #[serde(with = "crate::duration::serde_str")]
    pub retry_interval: Duration,
    /// Period of the certificate validation pass (cleanup of invalid certificates and orphan keys).
    #[serde(with = "crate::duration::serde_str")]
    pub validation_interval: Duration,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        Self {
            threshold_percent: 80,
            jitter_percent: 10,
            retry_interval: Duration::from_secs(60),
            validation_interval: Duration::from_secs(24 * 3600),
        }
    }
}
