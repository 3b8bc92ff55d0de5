//! aos-edge: hardware-backed identity, mutual TLS and secret-based access for the nodes of an edge unit.
//!
//! The root package holds the binaries (`aos-gatewayd`, `aosctl`, `aos-sim`, added by later milestones) and
//! the integration tests that cross crates. The functionality lives in the member crates, re-exported here.
#![forbid(unsafe_code)]

pub use aos_actors as actors;
pub use aos_config as config;
pub use aos_pkcs11 as pkcs11;
pub use aos_sim as sim;
pub use aos_transport as transport;
