//! The summary table printed at the end of a run.

use std::fmt::Write;

use super::human_secs;
use crate::run::record::{quantile, EventKind};
use crate::run::Outcome;

/// Nodes listed one by one in the table; beyond, the rest is summed up in one line.
const MAX_ROWS: usize = 40;

/// The summary of `outcome`: the seed, a table per node, faults, traffic, errors and the checks.
pub fn summary(outcome: &Outcome, link: &str) -> String {
    let r = &outcome.record;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "aos-sim: scenario {:?}, {} nodes over {link}, seed {} (replay with --seed {})",
        r.scenario,
        r.nodes.len(),
        r.seed,
        r.seed
    );
    let _ = writeln!(
        out,
        "ran {} (unit start {})\n",
        human_secs(r.duration),
        human_secs(r.startup)
    );
    let _ = writeln!(
        out,
        "{:<10} {:<15} {:<10} {:>11} {:>8} {:>10} {:>7} {:>8} {:>6}",
        "node",
        "state",
        "cert",
        "expires in",
        "renewals",
        "messages",
        "failed",
        "refused",
        "errors"
    );
    for n in r.nodes.iter().take(MAX_ROWS) {
        let serial = n.serials.last().map_or("-".to_owned(), |s| {
            format!("{}…", s.chars().take(8).collect::<String>())
        });
        let _ = writeln!(
            out,
            "{:<10} {:<15} {:<10} {:>11} {:>8} {:>10} {:>7} {:>8} {:>6}",
            n.name,
            n.state,
            serial,
            n.expires_in.map_or("-".to_owned(), human_secs),
            n.renewals,
            n.messages_ok,
            n.messages_failed,
            n.refused_peers,
            n.errors
        );
    }
    if r.nodes.len() > MAX_ROWS {
        let rest = &r.nodes[MAX_ROWS..];
        let provisioned = rest.iter().filter(|n| n.state == "provisioned").count();
        let _ = writeln!(
            out,
            "… and {} more nodes: {provisioned} provisioned, {} renewals, {} errors",
            rest.len(),
            rest.iter().map(|n| n.renewals).sum::<u32>(),
            rest.iter().map(|n| n.errors).sum::<u64>()
        );
    }
    let seeded = r.faults.iter().filter(|f| f.random).count();
    let _ = writeln!(out, "\nfaults: {} ({seeded} seeded)", r.faults.len());
    for f in &r.faults {
        let _ = writeln!(
            out,
            "  {:>7.2}s {} on {} for {}{}",
            f.start,
            f.kind,
            r.nodes[f.node].name,
            f.end
                .map_or("ever (never healed)".to_owned(), |e| human_secs(
                    e - f.start
                )),
            if f.random { " (seeded)" } else { "" }
        );
    }
    let sum = |f: fn(&crate::run::record::Second) -> u64| r.traffic.iter().map(f).sum::<u64>();
    let latencies = r.latencies();
    let ms = |q| {
        quantile(&latencies, q).map_or("-".to_owned(), |us| {
            format!("{:.1} ms", f64::from(us) / 1000.0)
        })
    };
    let _ = writeln!(
        out,
        "traffic: {} checks ({} granted ok, {} failed; {} ungranted refused, {} accepted; {} unanswered; {} not sent, instance not running), latency p50 {} p99 {}; {} messages ({} failed)",
        r.checks(),
        sum(|s| s.granted_ok),
        sum(|s| s.granted_failed),
        sum(|s| s.ungranted_refused),
        sum(|s| s.ungranted_accepted),
        sum(|s| s.unavailable),
        sum(|s| s.no_instance),
        ms(0.5),
        ms(0.99),
        sum(|s| s.messages_ok + s.messages_failed),
        sum(|s| s.messages_failed),
    );
    let errors: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Error)
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "errors: {}", errors.len());
        for e in errors.iter().take(20) {
            let node = e
                .node
                .map_or("unit".to_owned(), |n| r.nodes[n].name.clone());
            let _ = writeln!(out, "  {:>7.2}s {node}: {}", e.t, e.text);
        }
        if errors.len() > 20 {
            let _ = writeln!(out, "  … {} more in the report", errors.len() - 20);
        }
    }
    let _ = writeln!(out, "\nchecks:");
    for c in &outcome.checks {
        let _ = writeln!(
            out,
            "  {} {:<12} {} — {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.claim,
            c.detail
        );
    }
    let passed = outcome.checks.iter().filter(|c| c.passed).count();
    let _ = writeln!(
        out,
        "\nresult: {} ({passed} of {} checks passed, seed {})",
        if outcome.passed() { "PASS" } else { "FAIL" },
        outcome.checks.len(),
        r.seed
    );
    out
}
