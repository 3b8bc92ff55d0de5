//! `[[cert_modules]]`: one entry per certificate type (`iam`, `sm`, `online`, …) and the token that holds it.

use serde::{Deserialize, Serialize};

use crate::Pkcs11Params;

/// Longest cert module id (AosCore's limit on cert type names).
pub const MAX_ID_LEN: usize = 16;
/// Most certificates (with their keys) a module keeps.
pub const MAX_ITEMS_LIMIT: u32 = 5;
/// Most DNS alternative names a module puts into its CSRs.
pub const MAX_ALTERNATIVE_NAMES: usize = 4;
/// Default of `max_items`.
pub const DEFAULT_MAX_ITEMS: u32 = 2;

/// Key algorithm of a cert module. Keys are generated inside the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-384 (`ecc`, as in AosCore).
    #[serde(rename = "ecc")]
    EccP384,
    /// ECDSA on NIST P-256 (`ecc-p256`): faster on software tokens.
    #[serde(rename = "ecc-p256")]
    EccP256,
    /// RSA-2048 (`rsa`, as in AosCore).
    #[serde(rename = "rsa")]
    Rsa2048,
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::EccP384 => "ECDSA P-384",
            KeyAlgorithm::EccP256 => "ECDSA P-256",
            KeyAlgorithm::Rsa2048 => "RSA-2048",
        })
    }
}

/// Extended key usage put into a module's CSRs and checked on applied certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExtendedKeyUsage {
    /// TLS client authentication (`client_auth`; AosCore spelling `clientAuth` accepted).
    #[serde(rename = "client_auth", alias = "clientAuth")]
    ClientAuth,
    /// TLS server authentication (`server_auth`; AosCore spelling `serverAuth` accepted).
    #[serde(rename = "server_auth", alias = "serverAuth")]
    ServerAuth,
}

/// One `[[cert_modules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertModuleConfig {
    /// Cert type name (`iam`, `online`, …), 1 to 16 characters of `[A-Za-z0-9_-]`; unique; also the label of
    /// the module's objects on the token.
    pub id: String,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// How many certificates (and keys) to keep; applying one more evicts the earliest-expiring. 1 to 5, and at
    /// least 2 unless `self_signed` (so renewal can overlap).
    #[serde(default = "default_max_items")]
    pub max_items: u32,
    /// Extended key usages requested in CSRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extended_key_usage: Vec<ExtendedKeyUsage>,
    /// DNS subject alternative names requested in CSRs (at most 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternative_names: Vec<String>,
    /// Keep the module configured but do not load it.
    #[serde(default)]
    pub disabled: bool,
    /// Do not validate this module's certificates periodically (no cleanup, no renewal scheduling).
    #[serde(default)]
    pub skip_validation: bool,
    /// The node creates this certificate itself at provisioning (e.g. `diskencryption`); no CA involved.
    #[serde(default)]
    pub self_signed: bool,
    /// The PKCS#11 token holding the keys and certificates.
    pub pkcs11: Pkcs11Params,
}

// === impl CertModuleConfig ===

impl CertModuleConfig {
    /// A module with the given id, algorithm and token, and defaults elsewhere.
    pub fn new(id: impl Into<String>, algorithm: KeyAlgorithm, pkcs11: Pkcs11Params) -> Self {
        Self {
            id: id.into(),
            algorithm,
            max_items: DEFAULT_MAX_ITEMS,
            extended_key_usage: Vec::new(),
            alternative_names: Vec::new(),
            disabled: false,
            skip_validation: false,
            self_signed: false,
            pkcs11,
        }
    }
}

fn default_max_items() -> u32 {
    DEFAULT_MAX_ITEMS
}
