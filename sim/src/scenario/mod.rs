//! Scenarios: what a simulated unit goes through, as a timeline of steps read from TOML (`sim/scenarios/`,
//! documented in `docs/sim.md`).
//!
//! [`Scenario::parse`] reads and checks the file's shape (every error names `file:line: key`);
//! [`Scenario::resolve`] checks it against the unit it will run on (a fault on node 7 of 3 is refused there,
//! before anything starts) and gives a [`Plan`] with node indices and the seeded fault schedule.

mod error;
mod parse;
mod plan;

use std::time::Duration;

pub use crate::unit::KeyProfile;

pub use error::ScenarioError;
pub use plan::{schedule, FaultEvent, Plan, PlannedAction, PlannedStep};

/// The scenario `aos-sim` runs without `--scenario`.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");
/// The name the default scenario's errors carry.
pub const DEFAULT_SCENARIO_NAME: &str = "sim/scenarios/default.toml";

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Where it came from (for messages).
    pub file: String,
    /// Its name.
    pub name: String,
    /// One line saying what it shows.
    pub description: String,
    /// The unit it runs on.
    pub unit: UnitSpec,
    /// The timeline.
    pub steps: Vec<Step>,
    /// Faults drawn from the seed.
    pub random_faults: Option<RandomFaults>,
    /// What must hold at the end.
    pub checks: CheckSpec,
}

/// The `[unit]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitSpec {
    /// Nodes: one main node and `nodes - 1` secondaries (`--nodes` overrides).
    pub nodes: usize,
    /// How secondaries reach the main node (`--link` overrides).
    pub link: LinkKind,
    /// Lifetime of every certificate the cloud signs; `None`: the CA's default (long).
    pub cert_lifetime: Option<Duration>,
    /// Whether the simulated cloud renews the secondaries' certificates at half their lifetime (the main
    /// node renews its own through its validator).
    pub cloud_renews: bool,
    /// The certificate modules and key algorithms of every node (`--keys` overrides).
    pub keys: KeyProfile,
}

impl Default for UnitSpec {
    fn default() -> Self {
        UnitSpec {
            nodes: 3,
            link: LinkKind::Tcp,
            cert_lifetime: None,
            cloud_renews: true,
            keys: KeyProfile::default(),
        }
    }
}

/// The link between each secondary's MP bridge and the main node's MP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Loopback TCP.
    Tcp,
    /// Unix domain sockets.
    Unix,
    /// The in-process vchan ring.
    Vchan,
}

impl std::str::FromStr for LinkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(LinkKind::Tcp),
            "unix" => Ok(LinkKind::Unix),
            "vchan" => Ok(LinkKind::Vchan),
            other => Err(format!("unknown link {other:?}: use tcp, unix or vchan")),
        }
    }
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Tcp => "tcp",
            LinkKind::Unix => "unix",
            LinkKind::Vchan => "vchan",
        })
    }
}

/// A node as a scenario names it: `0` or `"main"` is the main node, `k` or `"sec-k"` the k-th secondary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRef {
    /// By index.
    Index(usize),
    /// By name.
    Name(String),
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Index(i) => write!(f, "node {i}"),
            NodeRef::Name(n) => write!(f, "node {n:?}"),
        }
    }
}

/// Where a step came from in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// 1-based line of the step's table.
    pub line: usize,
    /// Its key path (`step[3]`).
    pub key: String,
}

/// One `[[step]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// When it starts, from the start of the run; `None`: right after the previous step.
    pub at: Option<Duration>,
    /// What it does.
    pub action: Action,
    /// Where it is in the file.
    pub origin: Origin,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Provision nodes through the cloud (the main node first); `None`: every node.
    Provision(Option<Vec<NodeRef>>),
    /// Run a service on a node with permissions on a functional server.
    Deploy(Deploy),
    /// Permission checks and forwarded messages for a while (in the background).
    Traffic(Traffic),
    /// The cloud renews the certificates of nodes (`None`: every provisioned node).
    Renew(Option<Vec<NodeRef>>),
    /// Deprovision a secondary node through the main node.
    Deprovision(NodeRef),
    /// Pause a secondary node.
    Pause(NodeRef),
    /// Resume a paused node.
    Resume(NodeRef),
    /// Do nothing for a while.
    Wait(Duration),
    /// A fault (in the background).
    Fault(Fault),
}

/// A `deploy` step.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    /// The node that runs it.
    pub node: NodeRef,
    /// The service (item id).
    pub service: String,
    /// The functional server its permissions are for.
    pub server: String,
    /// Function → permission (e.g. `get = "r"`).
    pub grant: Vec<(String, String)>,
}

/// A `traffic` step.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// How long.
    pub duration: Duration,
    /// Permission checks per second across the unit (granted and ungranted functions alternate).
    pub checks_per_sec: u32,
    /// Requests per second the main node forwards to its secondaries.
    pub messages_per_sec: u32,
}

/// A fault: what, where, how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// Which node.
    pub node: NodeRef,
    /// How long until it heals.
    pub duration: Duration,
}

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The secondary's MP link is cut (existing connections dropped, new ones refused).
    CutLink,
    /// The node stops (all its actors), then starts again from its files and token.
    Crash,
    /// The node's token refuses every operation (its user PIN changes under it), then comes back.
    TokenFail,
}

impl FaultKind {
    /// The name scenarios use.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::CutLink => "cut_link",
            FaultKind::Crash => "crash",
            FaultKind::TokenFail => "token_fail",
        }
    }

    /// From a scenario name.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        [FaultKind::CutLink, FaultKind::Crash, FaultKind::TokenFail]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// The `[random_faults]` table: faults at random times on random secondaries, drawn from the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFaults {
    /// Mean faults per minute.
    pub per_minute: f64,
    /// Which kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// Window start (from the start of the run).
    pub from: Duration,
    /// Window end.
    pub until: Duration,
    /// How long each fault lasts.
    pub duration: Duration,
    /// Whether the main node may be hit too (default: secondaries only).
    pub include_main: bool,
    /// Where the table is.
    pub origin: Origin,
}

/// The `[checks]` table: which checks run at the end (all by default).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Every node provisioned (except those the scenario deprovisions).
    pub provisioned: bool,
    /// Zero failed permission checks for granted functions.
    pub granted: bool,
    /// Zero accepted permission checks for ungranted functions.
    pub ungranted: bool,
    /// Every certificate renewed before it expired.
    pub renewal: bool,
    /// No orphan objects on any token at the end.
    pub orphans: bool,
    /// How long after a fault on a node failures that involve it are excused.
    pub grace: Duration,
}

impl Default for CheckSpec {
    fn default() -> Self {
        CheckSpec {
            provisioned: true,
            granted: true,
            ungranted: true,
            renewal: true,
            orphans: true,
            grace: Duration::from_secs(3),
        }
    }
}

impl Scenario {
    /// Parse `text` (named `file` in errors).
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        parse::parse(file, text)
    }

    /// Read and parse the file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: file.clone(),
            source,
        })?;
        Scenario::parse(&file, &text)
    }

    /// The default scenario.
    pub fn default_scenario() -> Scenario {
        match Scenario::parse(DEFAULT_SCENARIO_NAME, DEFAULT_SCENARIO) {
            Ok(s) => s,
            // The file is compiled in and a test parses it; this arm cannot run.
            Err(err) => unreachable!("the built-in scenario is broken: {err}"),
        }
    }

    /// Check the scenario against its unit and draw the random faults from `seed`.
    pub fn resolve(&self, seed: u64) -> Result<Plan, ScenarioError> {
        plan::resolve(self, seed)
    }
}

/// The name of node `index` (`main`, `sec-1`, …).
pub fn node_name(index: usize) -> String {
    if index == 0 {
        "main".to_owned()
    } else {
        format!("sec-{index}")
    }
}

#[cfg(test)]
mod tests;
