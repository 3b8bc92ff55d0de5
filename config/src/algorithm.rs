//! Key algorithms a cert module can generate.

use serde::{Deserialize, Serialize};

/// The key pair algorithm of a cert module (`algorithm = "ecc" | "ecc-p256" | "rsa"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-384 (`"ecc"`, AosCore's meaning of ecc).
    #[serde(rename = "ecc")]
    EccP384,
    /// ECDSA on NIST P-256 (`"ecc-p256"`).
    #[serde(rename = "ecc-p256")]
    EccP256,
    /// RSA with a 2048-bit modulus (`"rsa"`).
    #[serde(rename = "rsa")]
    Rsa2048,
}

impl KeyAlgorithm {
    /// The config spelling of the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EccP384 => "ecc",
            KeyAlgorithm::EccP256 => "ecc-p256",
            KeyAlgorithm::Rsa2048 => "rsa",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
