//! [`Plan`]: a scenario checked against its unit, with node indices and the seeded fault schedule.

use std::time::Duration;

use super::{node_name, Action, FaultKind, NodeRef, Origin, Scenario, ScenarioError, Traffic};
use crate::rng::SimRng;

/// A scenario ready to run on a unit of `nodes` nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Number of nodes (index 0 is the main node).
    pub nodes: usize,
    /// The timeline, with node indices.
    pub steps: Vec<PlannedStep>,
    /// Faults drawn from the seed, by start time.
    pub random_faults: Vec<FaultEvent>,
    /// The seed they were drawn from.
    pub seed: u64,
}

/// One step with resolved nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// Earliest start (from the start of the run).
    pub at: Option<Duration>,
    /// What it does.
    pub action: PlannedAction,
    /// Where it is in the file.
    pub origin: Origin,
}

/// [`Action`] with node indices.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedAction {
    /// Provision these nodes (sorted, the main node first when present).
    Provision(Vec<usize>),
    /// Deploy a service.
    Deploy {
        /// Node index.
        node: usize,
        /// Item id.
        service: String,
        /// Functional server.
        server: String,
        /// Function → permission.
        grant: Vec<(String, String)>,
    },
    /// Traffic in the background.
    Traffic(Traffic),
    /// Cloud renewal of these nodes.
    Renew(Vec<usize>),
    /// Deprovision a secondary.
    Deprovision(usize),
    /// Pause a secondary.
    Pause(usize),
    /// Resume a secondary.
    Resume(usize),
    /// Sleep.
    Wait(Duration),
    /// A fault in the background.
    Fault(FaultEvent),
}

/// A fault on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultEvent {
    /// Start, from the start of the run (for scheduled faults; a step's fault starts with its step).
    pub at: Duration,
    /// Node index.
    pub node: usize,
    /// What.
    pub kind: FaultKind,
    /// How long.
    pub duration: Duration,
}

impl std::fmt::Display for FaultEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>7.2}s {} on {} for {:.1}s",
            self.at.as_secs_f64(),
            self.kind.name(),
            node_name(self.node),
            self.duration.as_secs_f64()
        )
    }
}

pub(super) fn resolve(scenario: &Scenario, seed: u64) -> Result<Plan, ScenarioError> {
    let nodes = scenario.unit.nodes;
    let impossible = |origin: &Origin, key: &str, message: String| ScenarioError::Impossible {
        file: scenario.file.clone(),
        line: origin.line,
        key: format!("{}.{key}", origin.key),
        message,
    };
    let index = |origin: &Origin, key: &str, node: &NodeRef| -> Result<usize, ScenarioError> {
        let found = match node {
            NodeRef::Index(i) => Some(*i).filter(|i| *i < nodes),
            NodeRef::Name(n) => (0..nodes).find(|i| node_name(*i) == *n),
        };
        found.ok_or_else(|| {
            impossible(
                origin,
                key,
                format!(
                    "{node} is not in this unit of {nodes} node{} (main, sec-1 … sec-{})",
                    if nodes == 1 { "" } else { "s" },
                    nodes - 1
                ),
            )
        })
    };
    let secondary = |origin: &Origin, key: &str, node: &NodeRef, what: &str| {
        let i = index(origin, key, node)?;
        if i == 0 {
            return Err(impossible(
                origin,
                key,
                format!("{what} applies to secondary nodes only, not the main node"),
            ));
        }
        Ok(i)
    };
    let list =
        |origin: &Origin, list: &Option<Vec<NodeRef>>| -> Result<Vec<usize>, ScenarioError> {
            let mut out = match list {
                None => (0..nodes).collect(),
                Some(refs) => refs
                    .iter()
                    .map(|r| index(origin, "nodes", r))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            out.sort_unstable();
            out.dedup();
            Ok(out)
        };
    let mut steps = Vec::with_capacity(scenario.steps.len());
    for step in &scenario.steps {
        let o = &step.origin;
        let action = match &step.action {
            Action::Provision(nodes) => PlannedAction::Provision(list(o, nodes)?),
            Action::Renew(nodes) => PlannedAction::Renew(list(o, nodes)?),
            Action::Deploy(d) => PlannedAction::Deploy {
                node: index(o, "node", &d.node)?,
                service: d.service.clone(),
                server: d.server.clone(),
                grant: d.grant.clone(),
            },
            Action::Traffic(t) => PlannedAction::Traffic(t.clone()),
            Action::Deprovision(n) => {
                PlannedAction::Deprovision(secondary(o, "node", n, "deprovision")?)
            }
            Action::Pause(n) => PlannedAction::Pause(secondary(o, "node", n, "pause")?),
            Action::Resume(n) => PlannedAction::Resume(secondary(o, "node", n, "resume")?),
            Action::Wait(d) => PlannedAction::Wait(*d),
            Action::Fault(f) => {
                let node = if f.kind == FaultKind::CutLink {
                    secondary(
                        o,
                        "node",
                        &f.node,
                        "cut_link (the link of a secondary to the main node)",
                    )?
                } else {
                    index(o, "node", &f.node)?
                };
                PlannedAction::Fault(FaultEvent {
                    at: step.at.unwrap_or_default(),
                    node,
                    kind: f.kind,
                    duration: f.duration,
                })
            }
        };
        steps.push(PlannedStep {
            at: step.at,
            action,
            origin: o.clone(),
        });
    }
    let random_faults = match &scenario.random_faults {
        None => Vec::new(),
        Some(r) => {
            let candidates: Vec<usize> = (usize::from(!r.include_main)..nodes).collect();
            if candidates.is_empty() {
                return Err(impossible(
                    &r.origin,
                    "include_main",
                    "random faults hit secondaries, and this unit has none (add nodes or set include_main)"
                        .to_owned(),
                ));
            }
            schedule(
                seed,
                r.per_minute,
                &r.kinds,
                r.from,
                r.until,
                r.duration,
                &candidates,
            )
        }
    };
    Ok(Plan {
        nodes,
        steps,
        random_faults,
        seed,
    })
}

/// Faults at exponential gaps (mean 60 s / `per_minute`) in `[from, until)`, each on a random candidate
/// with a random kind (a link cut only on a secondary). One seed, one schedule.
pub fn schedule(
    seed: u64,
    per_minute: f64,
    kinds: &[FaultKind],
    from: Duration,
    until: Duration,
    duration: Duration,
    candidates: &[usize],
) -> Vec<FaultEvent> {
    let mut rng = SimRng::new(seed);
    let mean = 60.0 / per_minute;
    let mut t = from.as_secs_f64() + rng.exponential(mean);
    let mut out = Vec::new();
    while t < until.as_secs_f64() && !candidates.is_empty() && !kinds.is_empty() {
        let node = candidates[rng.below(candidates.len() as u64) as usize];
        let mut kind = kinds[rng.below(kinds.len() as u64) as usize];
        if kind == FaultKind::CutLink && node == 0 {
            kind = kinds
                .iter()
                .copied()
                .find(|k| *k != FaultKind::CutLink)
                .unwrap_or(FaultKind::Crash);
        }
        out.push(FaultEvent {
            at: Duration::from_secs_f64(t),
            node,
            kind,
            duration,
        });
        t += rng.exponential(mean);
    }
    out
}
