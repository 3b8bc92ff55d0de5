//! aos-sim: the in-process multi-node simulator.
//!
//! This crate will hold (milestone M6): the unit builder (one main node and N-1 secondaries, each with its
//! own SoftHSM token directory), the simulated cloud CA, TOML scenarios with seeded faults, and the report.
#![forbid(unsafe_code)]
