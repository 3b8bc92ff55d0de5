//! The end-of-run checks, evaluated on a [`Record`]: each is a pure function of what was recorded, so a
//! test can break its condition on purpose.

use serde::Serialize;

use super::record::Record;
use crate::scenario::CheckSpec;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Its name (`provisioned`, `granted`, `ungranted`, `renewal`, `orphans`).
    pub name: &'static str,
    /// What it asserts.
    pub claim: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it, or what broke it (node and time).
    pub detail: String,
}

/// Evaluate the checks `spec` enables.
pub fn evaluate(record: &Record, spec: &CheckSpec) -> Vec<CheckResult> {
    let grace = spec.grace.as_secs_f64();
    let mut out = Vec::new();
    if spec.provisioned {
        out.push(provisioned(record));
    }
    if spec.granted {
        out.push(granted(record, grace));
    }
    if spec.ungranted {
        out.push(ungranted(record));
    }
    if spec.renewal {
        out.push(renewal(record, grace));
    }
    if spec.orphans {
        out.push(orphans(record));
    }
    out
}

fn result(
    name: &'static str,
    claim: &'static str,
    problems: Vec<String>,
    ok: String,
) -> CheckResult {
    let passed = problems.is_empty();
    let detail = if passed {
        ok
    } else {
        let shown: Vec<_> = problems.iter().take(5).cloned().collect();
        let more = problems.len().saturating_sub(5);
        let mut d = shown.join("; ");
        if more > 0 {
            d.push_str(&format!("; and {more} more"));
        }
        d
    };
    CheckResult {
        name,
        claim,
        passed,
        detail,
    }
}

/// Every node the scenario did not deprovision ends provisioned (or paused).
pub fn provisioned(record: &Record) -> CheckResult {
    let problems = record
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !record.deprovisioned.contains(i))
        .filter(|(_, n)| n.state != "provisioned" && n.state != "paused")
        .map(|(_, n)| format!("{} ends {}", n.name, n.state))
        .collect();
    let kept = record.nodes.len() - record.deprovisioned.len();
    result(
        "provisioned",
        "every node provisioned",
        problems,
        format!("{kept} of {kept} nodes provisioned at the end"),
    )
}

/// No permission check of a granted function failed, outside faults on the nodes it involves.
pub fn granted(record: &Record, grace: f64) -> CheckResult {
    let mut excused = 0;
    let mut problems = Vec::new();
    for f in &record.granted_failures {
        if record.excused(f.t, &[0, f.node], grace) {
            excused += 1;
        } else {
            problems.push(format!(
                "{:.2}s: {}: {}",
                f.t,
                node(record, f.node),
                f.detail
            ));
        }
    }
    let total: u64 = record
        .traffic
        .iter()
        .map(|s| s.granted_ok + s.granted_failed)
        .sum();
    result(
        "granted",
        "zero failed permission checks for granted functions",
        problems,
        format!("{total} granted checks, 0 failed outside faults ({excused} during faults)"),
    )
}

/// No permission check of an ungranted function was accepted.
pub fn ungranted(record: &Record) -> CheckResult {
    let problems = record
        .ungranted_accepted
        .iter()
        .map(|f| format!("{:.2}s: {}: {}", f.t, node(record, f.node), f.detail))
        .collect();
    let refused: u64 = record.traffic.iter().map(|s| s.ungranted_refused).sum();
    result(
        "ungranted",
        "zero accepted permission checks for ungranted functions",
        problems,
        format!("{refused} ungranted checks, all refused"),
    )
}

/// No node ran provisioned on an expired certificate (outside faults on it or on the main node, through
/// which the cloud renews).
pub fn renewal(record: &Record, grace: f64) -> CheckResult {
    let mut problems = Vec::new();
    for (i, n) in record.nodes.iter().enumerate() {
        let bad: Vec<f64> = n
            .expired_at
            .iter()
            .copied()
            .filter(|t| !record.excused(*t, &[0, i], grace))
            .collect();
        if let Some(first) = bad.first() {
            problems.push(format!(
                "{}: certificate expired at {first:.2}s, not renewed",
                n.name
            ));
        }
    }
    let renewals: u32 = record.nodes.iter().map(|n| n.renewals).sum();
    result(
        "renewal",
        "renewals happened before expiry",
        problems,
        format!("{renewals} renewals, no certificate expired in use"),
    )
}

/// No token holds a key without its certificate (or the reverse), and a deprovisioned node's token holds
/// nothing.
pub fn orphans(record: &Record) -> CheckResult {
    let mut problems = Vec::new();
    for (i, n) in record.nodes.iter().enumerate() {
        match &n.token {
            None => problems.push(format!("{}: token not inspected", n.name)),
            Some(t) if record.deprovisioned.contains(&i) && t.total() > 0 => {
                problems.push(format!(
                    "{}: deprovisioned, yet its token holds {} object sets",
                    n.name,
                    t.total()
                ))
            }
            Some(t) if !t.leftovers.is_empty() => {
                let list: Vec<_> = t
                    .leftovers
                    .iter()
                    .map(|(l, c)| format!("{c} under {l}"))
                    .collect();
                problems.push(format!("{}: orphan objects: {}", n.name, list.join(", ")));
            }
            Some(_) => {}
        }
    }
    result(
        "orphans",
        "no orphan objects at the end",
        problems,
        format!("{} tokens clean", record.nodes.len()),
    )
}

fn node(record: &Record, index: usize) -> &str {
    record.nodes.get(index).map_or("?", |n| n.name.as_str())
}

#[cfg(test)]
mod tests;
