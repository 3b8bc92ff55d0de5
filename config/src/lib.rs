//! aos-config: the TOML configuration of an aos-edge node.
//!
//! [`Config::load`] reads a file, checks it against the schema (unknown keys are errors) and validates ranges
//! and consistency. Every error names the file, line, column and key path:
//!
//! ```text
//! node.toml:14:1: cert_modules[2].pkcs11: two slot selectors set (slot_id, token_label); set exactly one …
//! ```
//!
//! The key reference (every key, its default and meaning) is `config/README.md`; annotated examples are
//! `config/examples/main-node.toml` and `config/examples/secondary-node.toml`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cert_module;
pub mod cm;
mod config;
pub mod duration;
mod error;
pub mod iam;
mod key_path;
mod load;
mod locate;
pub mod logging;
pub mod metrics;
pub mod mp;
pub mod node;
pub mod permissions;
pub mod pkcs11;
pub mod provisioning;
pub mod renewal;
pub mod sm;
pub mod transport;
mod validate;

#[cfg(test)]
mod test_support;

pub use cert_module::{CertModuleConfig, ExtendedKeyUsage, KeyAlgorithm};
pub use cm::CmConfig;
pub use config::{Config, DEFAULT_CERT_STORAGE};
pub use error::ConfigError;
pub use iam::IamConfig;
pub use logging::{LogFormat, LoggingConfig};
pub use metrics::MetricsConfig;
pub use mp::{MpChannels, MpConfig};
pub use node::{NodeConfig, NodeRole};
pub use permissions::{PermissionLimits, PermissionsConfig};
pub use pkcs11::{Pkcs11Params, TeeLoginType, TokenSelector, DEFAULT_TOKEN_LABEL};
pub use provisioning::ProvisioningConfig;
pub use renewal::RenewalConfig;
pub use sm::SmConfig;
pub use transport::TransportConfig;
pub use validate::ValidationIssue;
