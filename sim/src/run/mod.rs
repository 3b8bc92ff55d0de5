//! Running a scenario: build the unit, play the timeline (steps in order; traffic, faults and the
//! sampler in the background), then stop everything and evaluate the checks.
//!
//! Everything runs on the actix system's thread: the background jobs are futures polled alongside the
//! step in progress, so a step and the faults around it interleave as they would on a device.

pub mod checks;
mod context;
pub mod record;
mod sampler;
mod steps;
mod traffic;

use std::time::{Duration, Instant};

use serde::Serialize;

pub use checks::CheckResult;
pub use context::Progress;
pub use record::Record;

use crate::scenario::{Plan, Scenario};
use crate::unit::{SimUnit, UnitError, UnitOptions};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Nodes provisioned at once after the main node.
    pub parallel: usize,
    /// Print a live progress line to stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            parallel: 32,
            progress: false,
        }
    }
}

/// What a run gives.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// What happened.
    pub record: Record,
    /// The checks.
    pub checks: Vec<CheckResult>,
}

impl Outcome {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// Build the unit `scenario` asks for, run `plan` on it, stop it, and check. Must run inside an actix
/// system. Only a unit that cannot be built is an error; failures during the run are in the record.
pub async fn run(
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
) -> Result<Outcome, UnitError> {
    let started = Instant::now();
    let unit = SimUnit::start(UnitOptions {
        nodes: plan.nodes,
        link: scenario.unit.link,
        cert_lifetime: scenario.unit.cert_lifetime,
        keys: scenario.unit.keys,
        ..UnitOptions::default()
    })
    .await?;
    let startup = started.elapsed();
    let outcome = run_on(&unit, scenario, plan, options, startup).await;
    unit.stop().await;
    Ok(outcome)
}

/// Run `plan` on a started `unit`.
pub async fn run_on(
    unit: &SimUnit,
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    startup: Duration,
) -> Outcome {
    let ctx = context::Ctx::new(unit, scenario, plan, options);
    ctx.rec().startup = startup.as_secs_f64();
    steps::play(&ctx, plan).await;
    let record = ctx.finish();
    let checks = checks::evaluate(&record, &scenario.checks);
    Outcome { record, checks }
}

#[cfg(test)]
mod tests;
