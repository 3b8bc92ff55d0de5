//! The state a run shares between its step and its background jobs (all on one thread).

use std::cell::{Cell, RefCell, RefMut};
use std::io::Write;
use std::time::{Duration, Instant};

use aos_actors::api::sm::InstanceSpec;
use aos_actors::iam::client::PermissionChecker;
use aos_actors::iam::permissions::InstanceIdent;

use super::record::{EventKind, NodeRecord, Record};
use super::RunOptions;
use crate::scenario::{Plan, Scenario};
use crate::unit::SimUnit;

/// A deployed service the traffic calls as.
#[derive(Debug, Clone)]
pub(super) struct Service {
    pub node: usize,
    pub ident: InstanceIdent,
    pub server: String,
    pub functions: Vec<String>,
}

/// The live progress line.
#[derive(Debug, Default)]
pub struct Progress {
    /// The step in progress (1-based) and the number of steps.
    pub step: (usize, usize),
    /// What it does.
    pub what: String,
}

pub(super) struct Ctx<'a> {
    pub unit: &'a SimUnit,
    pub scenario: &'a Scenario,
    pub options: &'a RunOptions,
    pub t0: Instant,
    record: RefCell<Record>,
    /// Nodes under a fault now.
    pub busy: RefCell<Vec<bool>>,
    /// Desired instances per node.
    pub desired: RefCell<Vec<Vec<InstanceSpec>>>,
    pub services: RefCell<Vec<Service>>,
    pub checker: RefCell<Option<PermissionChecker>>,
    /// Set when the steps are over: background loops end.
    pub done: Cell<bool>,
    pub progress: RefCell<Progress>,
    /// The main node's MP server events (refused peers).
    pub mp_events:
        RefCell<Option<tokio::sync::mpsc::UnboundedReceiver<aos_actors::mp::ServerEvent>>>,
    last_progress: Cell<Option<Instant>>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        unit: &'a SimUnit,
        scenario: &'a Scenario,
        plan: &Plan,
        options: &'a RunOptions,
    ) -> Self {
        let record = Record {
            scenario: scenario.name.clone(),
            seed: plan.seed,
            nodes: unit
                .nodes
                .iter()
                .map(|n| NodeRecord {
                    name: n.name.clone(),
                    ..NodeRecord::default()
                })
                .collect(),
            ..Record::default()
        };
        Ctx {
            unit,
            scenario,
            options,
            t0: Instant::now(),
            record: RefCell::new(record),
            busy: RefCell::new(vec![false; unit.nodes.len()]),
            desired: RefCell::new(vec![Vec::new(); unit.nodes.len()]),
            services: RefCell::new(Vec::new()),
            checker: RefCell::new(None),
            done: Cell::new(false),
            progress: RefCell::new(Progress::default()),
            mp_events: RefCell::new(None),
            last_progress: Cell::new(None),
        }
    }

    /// Seconds since the start.
    pub fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// The record, briefly (never hold it across an await).
    pub fn rec(&self) -> RefMut<'_, Record> {
        self.record.borrow_mut()
    }

    pub fn event(&self, node: Option<usize>, kind: EventKind, text: impl Into<String>) {
        let t = self.now();
        let text = text.into();
        if kind == EventKind::Error {
            tracing::warn!(t, node = ?node.map(|n| self.unit.nodes[n].name.clone()), "{text}");
        }
        self.rec().event(t, node, kind, text);
    }

    pub fn name(&self, node: usize) -> &str {
        &self.unit.nodes[node].name
    }

    /// The functional server's checker, made on first use.
    pub fn checker(&self) -> Option<PermissionChecker> {
        if self.checker.borrow().is_none() {
            match self.unit.checker() {
                Ok(c) => *self.checker.borrow_mut() = Some(c),
                Err(e) => {
                    self.event(Some(0), EventKind::Error, format!("functional server: {e}"));
                    return None;
                }
            }
        }
        self.checker.borrow().clone()
    }

    /// Redraw the progress line (at most 4 times a second).
    pub fn show_progress(&self) {
        if !self.options.progress {
            return;
        }
        let now = Instant::now();
        if self
            .last_progress
            .get()
            .is_some_and(|last| now - last < Duration::from_millis(250))
        {
            return;
        }
        self.last_progress.set(Some(now));
        let line = {
            let rec = self.record.borrow();
            let p = self.progress.borrow();
            let ready = self.unit.nodes.iter().filter(|n| n.is_ready()).count();
            let checks = rec.checks();
            let failed = rec.granted_failures.len() + rec.ungranted_accepted.len();
            let faults = self.busy.borrow().iter().filter(|b| **b).count();
            format!(
                "\r[{:>6.1}s] step {}/{} {:<28} | nodes ready {ready}/{} | checks {checks} ({failed} bad) | faults now {faults}   ",
                self.now(),
                p.step.0,
                p.step.1,
                truncate(&p.what, 28),
                self.unit.nodes.len(),
            )
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    /// End the run: the final state of every node and its token.
    pub fn finish(self) -> Record {
        super::sampler::sample(&self);
        let mut record = self.record.into_inner();
        record.duration = self.t0.elapsed().as_secs_f64();
        for (i, node) in self.unit.nodes.iter().enumerate() {
            let n = &mut record.nodes[i];
            n.state = match node.status() {
                Some((state, _)) => state.to_string().to_lowercase(),
                None => "down".to_owned(),
            };
            n.expires_in = node.status().and_then(|(_, c)| c).map(|c| {
                match c.not_after.duration_since(std::time::SystemTime::now()) {
                    Ok(d) => d.as_secs_f64(),
                    Err(e) => -e.duration().as_secs_f64(),
                }
            });
            match self.unit.token_contents(i) {
                Ok(t) => n.token = Some(t),
                Err(e) => {
                    let t = record.duration;
                    record.event(
                        t,
                        Some(i),
                        EventKind::Error,
                        format!("token inventory: {e}"),
                    );
                }
            }
        }
        if self.options.progress {
            eprintln!();
        }
        record
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
