//! aos-sim: the in-process multi-node simulator.
//!
//! - [`cloud`]: the unit CA with its signing policy and the TLS server the CM talks to.
//! - [`unit`]: a whole unit in one process (cloud, main node, secondaries; one SoftHSM token per node).
//! - [`tokens`]: the unit's SoftHSM module, its per-node tokens, token faults and inventories.
//! - [`scenario`]: TOML scenarios (a timeline of actions and faults) and their seeded fault schedule.
//! - [`run`]: runs a scenario on a unit, records what happened, evaluates the checks.
//! - [`report`]: the summary table and the self-contained HTML report.
//! - [`bench`]: provisioning and permission-check figures for units of any size.
//! - [`rng`]: the seeded random source of fault schedules.
//!
//! See `docs/sim.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod cloud;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod tokens;
pub mod unit;
