//! The simulated cloud: a unit CA that signs node CSRs under a policy (see `docs/cloud.md`).
//!
//! [`CloudCa`] holds a root (ECDSA P-384 by default) and, by default, an intermediate that signs node
//! certificates. [`CloudCa::sign`] signs a [`SignRequest`] only when the CSR's signature verifies and its one
//! `urn:aos:<unit>:<node>:<role>` URI SAN names this unit, the requesting node and the requested cert type;
//! everything else is a typed [`Refusal`]. Time comes from an injected [`aos_actors::clock::Clock`], so tests
//! and the simulator can issue certificates that live for seconds and watch them expire.
//!
//! The TLS server that exposes the CA to nodes ([`server::CloudServer`]) wraps a shared `Arc<CloudCa>` (it is
//! `Send + Sync` and signs through `&self`) and drives provisioning and renewal of the unit through its CM.

mod ca;
mod csr;
mod error;
mod options;
mod policy;
mod request;
pub mod server;
mod stats;
mod store;

pub use ca::{CloudCa, SERIAL_LEN};
pub use csr::{KeyKind, ParsedCsr, MIN_RSA_BITS};
pub use error::{CloudError, Refusal, StoreError};
pub use options::{CaKeyAlgorithm, CaOptions};
pub use policy::{Admitted, CaPolicy, DAY};
pub use request::{IssuedChain, SignRequest};
pub use stats::CaStats;
pub use store::{
    INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE, ROOT_CERT_FILE, ROOT_KEY_FILE, UNIT_ID_FILE,
};

#[cfg(test)]
mod tests;
