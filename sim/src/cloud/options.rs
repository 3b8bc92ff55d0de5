//! How a cloud CA is made: [`CaOptions`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aos_actors::clock::{Clock, SystemClock};

use super::policy::{CaPolicy, DAY};

/// Key algorithm of the CA's own keys (root and intermediate).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaKeyAlgorithm {
    /// ECDSA on P-384 with SHA-384 (the default, as AosCore's `ecc`).
    #[default]
    EcdsaP384,
    /// ECDSA on P-256 with SHA-256.
    EcdsaP256,
}

impl CaKeyAlgorithm {
    pub(crate) fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CaKeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            CaKeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }
}

/// How a new CA is made, and the policy and clock it starts with.
#[derive(Clone)]
pub struct CaOptions {
    /// Key algorithm of the root and the intermediate. Default: ECDSA P-384.
    pub key_algorithm: CaKeyAlgorithm,
    /// Whether node certificates are signed by an intermediate below the root (default) or by the root.
    pub intermediate: bool,
    /// Validity of the CA certificates, from the creation time (minus the policy's backdate).
    /// Default: 10 years.
    pub validity: Duration,
    /// The signing policy.
    pub policy: CaPolicy,
    /// The clock used for every validity window. Default: the system clock.
    pub clock: Arc<dyn Clock>,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            key_algorithm: CaKeyAlgorithm::default(),
            intermediate: true,
            validity: 3652 * DAY,
            policy: CaPolicy::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for CaOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaOptions")
            .field("key_algorithm", &self.key_algorithm)
            .field("intermediate", &self.intermediate)
            .field("validity", &self.validity)
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .finish()
    }
}
