//! Cert modules: one per configured certificate type, each owning its objects (one label) on a token.
//!
//! `ApplyCert` writes nothing unless the chain verifies to the unit CA (signatures with rustls-webpki), the
//! leaf is inside its validity window, its public key equals one of the module's pending keys, and it carries
//! every extended key usage the module requires. The current certificate of a type is the one with the
//! latest `not_after`.

mod actor;
mod csr;
mod error;
mod info;
mod module;
mod verify;

pub use actor::{
    ApplyCert, CertModuleActor, Clear, CreateKey, CreateSelfSigned, GetCert, GetTokenKey,
    ListCerts, PendingKeys, Release, Validate,
};
pub use csr::{build_csr, NodeIdentity};
pub use error::{CertError, ChainError};
pub use info::CertInfo;
pub use module::{object_url, Applied, CertModule, Validation, MAX_PENDING_KEYS, SELF_SIGNED_DAYS};
pub use verify::TrustRoots;

#[cfg(test)]
mod tests;
