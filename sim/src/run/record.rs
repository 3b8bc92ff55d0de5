//! [`Record`]: what happened during a run — events, fault spans, traffic per second, per-node figures —
//! from which the checks, the summary and the report are made. Times are seconds from the start of the run.

use serde::Serialize;

use crate::tokens::TokenContents;

/// Everything a run recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    /// The scenario's name.
    pub scenario: String,
    /// The seed of the fault schedule.
    pub seed: u64,
    /// Per node, by index (0: main).
    pub nodes: Vec<NodeRecord>,
    /// The timeline.
    pub events: Vec<Event>,
    /// Every fault, scheduled or random.
    pub faults: Vec<FaultSpan>,
    /// Traffic per second of the run.
    pub traffic: Vec<Second>,
    /// Permission checks of granted functions that failed.
    pub granted_failures: Vec<Failure>,
    /// Permission checks of ungranted functions that were accepted.
    pub ungranted_accepted: Vec<Failure>,
    /// Forwarded messages that failed.
    pub message_failures: Vec<Failure>,
    /// Nodes the scenario deprovisioned.
    pub deprovisioned: Vec<usize>,
    /// Length of the run.
    pub duration: f64,
    /// Time to build and start the unit (before the run's clock starts).
    pub startup: f64,
}

/// One node's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeRecord {
    /// Its name.
    pub name: String,
    /// State at the end (`provisioned`, `unprovisioned`, `down`, …).
    pub state: String,
    /// Its states over time.
    pub states: Vec<(f64, String)>,
    /// Serials of its `iam` certificates in the order seen.
    pub serials: Vec<String>,
    /// Seconds until its current `iam` certificate expires, at the end.
    pub expires_in: Option<f64>,
    /// Certificate changes seen after the first.
    pub renewals: u32,
    /// Times it was seen provisioned with an expired certificate.
    pub expired_at: Vec<f64>,
    /// Messages forwarded to it that succeeded.
    pub messages_ok: u64,
    /// Messages forwarded to it that failed.
    pub messages_failed: u64,
    /// Connections it refused (MP handshakes and tunnels on the main node).
    pub refused_peers: u64,
    /// Errors of operations on it.
    pub errors: u64,
    /// Its token at the end.
    pub token: Option<TokenContents>,
}

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A step started.
    Step,
    /// A step completed.
    Done,
    /// A fault started.
    Fault,
    /// A fault healed.
    Heal,
    /// A node's certificate changed.
    Renewal,
    /// A node's state changed.
    State,
    /// Something failed.
    Error,
}

/// One entry of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When.
    pub t: f64,
    /// Which node, if one.
    pub node: Option<usize>,
    /// What kind.
    pub kind: EventKind,
    /// What happened.
    pub text: String,
}

/// A fault from start to end.
#[derive(Debug, Clone, Serialize)]
pub struct FaultSpan {
    /// Node index.
    pub node: usize,
    /// Kind name (`cut_link`, `crash`, `token_fail`).
    pub kind: String,
    /// Start.
    pub start: f64,
    /// End (`None` if it never healed).
    pub end: Option<f64>,
    /// Drawn from the seed.
    pub random: bool,
}

/// Traffic of one second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Second {
    /// Granted checks that succeeded.
    pub granted_ok: u64,
    /// Granted checks that failed.
    pub granted_failed: u64,
    /// Ungranted checks refused (as they must be).
    pub ungranted_refused: u64,
    /// Ungranted checks accepted (never allowed).
    pub ungranted_accepted: u64,
    /// Checks that got no answer or whose instance changed meanwhile.
    pub unavailable: u64,
    /// Checks not sent: the service's instance was not running (its node down, or not redeployed).
    pub no_instance: u64,
    /// Forwarded messages that succeeded.
    pub messages_ok: u64,
    /// Forwarded messages that failed.
    pub messages_failed: u64,
    /// Latency samples of answered checks, microseconds.
    pub latencies_us: Vec<u32>,
}

/// A failed request: when, which node it involved, why.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// When.
    pub t: f64,
    /// Node index it involved (the instance's node for checks).
    pub node: usize,
    /// Why.
    pub detail: String,
}

// === impl Record ===

impl Record {
    /// The traffic bucket of time `t`.
    pub fn second(&mut self, t: f64) -> &mut Second {
        let index = t.max(0.0) as usize;
        if self.traffic.len() <= index {
            self.traffic.resize_with(index + 1, Second::default);
        }
        &mut self.traffic[index]
    }

    /// Add a timeline entry.
    pub fn event(&mut self, t: f64, node: Option<usize>, kind: EventKind, text: impl Into<String>) {
        if kind == EventKind::Error {
            if let Some(n) = node.and_then(|n| self.nodes.get_mut(n)) {
                n.errors += 1;
            }
        }
        self.events.push(Event {
            t,
            node,
            kind,
            text: text.into(),
        });
    }

    /// Whether a failure at `t` involving any of `nodes` falls in a fault on one of them (or `grace`
    /// seconds after it healed).
    pub fn excused(&self, t: f64, nodes: &[usize], grace: f64) -> bool {
        self.faults.iter().any(|f| {
            nodes.contains(&f.node) && f.start <= t && t <= f.end.unwrap_or(f64::INFINITY) + grace
        })
    }

    /// All answered checks.
    pub fn checks(&self) -> u64 {
        self.traffic
            .iter()
            .map(|s| s.granted_ok + s.granted_failed + s.ungranted_refused + s.ungranted_accepted)
            .sum()
    }

    /// Every latency sample, sorted.
    pub fn latencies(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .traffic
            .iter()
            .flat_map(|s| s.latencies_us.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }
}

/// The `q` quantile (0..=1) of sorted `samples`.
pub fn quantile(samples: &[u32], q: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples.get(i).copied()
}
