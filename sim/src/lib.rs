//! aos-sim: the in-process multi-node simulator.
//!
//! This crate will hold (milestone M6): the unit builder (one main node and N-1 secondaries, each with its
//! own SoftHSM token directory), the simulated cloud CA, TOML scenarios with seeded faults, and the report.
//!
//! Available now:
//! - [`cloud`]: the unit CA with its signing policy (M4), used by tests and, later, by the cloud server.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cloud;
