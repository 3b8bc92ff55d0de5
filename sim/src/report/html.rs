//! The HTML report: one self-contained file (inline CSS and SVG, no scripts, nothing fetched).

use std::fmt::Write;

use super::human_secs;
use super::svg::{esc, line_chart, timeline, Series, MAX_TIMELINE_ROWS};
use crate::run::record::{quantile, EventKind};
use crate::run::Outcome;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #e4e4e4;padding:3px 8px;text-align:left;font-variant-numeric:tabular-nums}\
.pass{color:#1d7a3a;font-weight:600}.fail{color:#c0392b;font-weight:600}.muted{color:#777}\
svg .title{font-size:13px;font-weight:600}svg .axis{font-size:11px;fill:#555}\
.legend span{display:inline-block;width:11px;height:11px;margin:0 4px 0 14px;vertical-align:-1px}";

/// The report of `outcome` as one HTML document.
pub fn report(outcome: &Outcome, link: &str) -> String {
    let r = &outcome.record;
    let mut h = String::new();
    let verdict = if outcome.passed() {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>aos-sim: {}</title><style>{STYLE}</style></head><body>",
        esc(&r.scenario)
    );
    let _ = write!(
        h,
        "<h1>aos-sim — scenario <code>{}</code>: <span class=\"{}\">{}</span></h1>\
         <p>{} nodes over {}, seed <code>{}</code> (replay with <code>--seed {}</code>), ran {} after a unit start of {}.</p>",
        esc(&r.scenario),
        verdict.0,
        verdict.1,
        r.nodes.len(),
        esc(link),
        r.seed,
        r.seed,
        human_secs(r.duration),
        human_secs(r.startup)
    );
    h.push_str(
        "<h2>Checks</h2><table><tr><th></th><th>check</th><th>claim</th><th>detail</th></tr>",
    );
    for c in &outcome.checks {
        let (class, word) = if c.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        let _ = write!(
            h,
            "<tr><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.name,
            esc(c.claim),
            esc(&c.detail)
        );
    }
    h.push_str("</table><h2>Timeline</h2>");
    h.push_str("<p class=\"legend\"><span style=\"background:#3a9d5d\"></span>provisioned<span style=\"background:#e8b93a\"></span>provisioning<span style=\"background:#c9c9c9\"></span>unprovisioned<span style=\"background:#4f7fd9\"></span>paused<span style=\"background:#d9534f\"></span>down\
                <span style=\"border:2px solid #ff7f0e\"></span>link cut<span style=\"border:2px solid #8b0000\"></span>crash<span style=\"border:2px solid #9467bd\"></span>token failure</p>");
    h.push_str(&timeline(r));
    if r.nodes.len() > MAX_TIMELINE_ROWS {
        let _ = write!(
            h,
            "<p class=\"muted\">The first {MAX_TIMELINE_ROWS} of {} nodes are drawn.</p>",
            r.nodes.len()
        );
    }
    h.push_str("<h2>Traffic</h2>");
    let per = |f: fn(&crate::run::record::Second) -> u64| {
        r.traffic.iter().map(|s| f(s) as f64).collect::<Vec<_>>()
    };
    h.push_str(&line_chart(
        "Requests per second",
        "/s",
        &[
            Series {
                name: "granted checks ok",
                color: "#3a9d5d",
                points: per(|s| s.granted_ok),
            },
            Series {
                name: "ungranted refused",
                color: "#4f7fd9",
                points: per(|s| s.ungranted_refused),
            },
            Series {
                name: "messages ok",
                color: "#8c8c8c",
                points: per(|s| s.messages_ok),
            },
            Series {
                name: "failed or unanswered",
                color: "#d9534f",
                points: per(|s| {
                    s.granted_failed + s.ungranted_accepted + s.unavailable + s.messages_failed
                }),
            },
        ],
        240.0,
    ));
    let lat = |q: f64| {
        r.traffic
            .iter()
            .map(|s| {
                let mut v = s.latencies_us.clone();
                v.sort_unstable();
                quantile(&v, q).map_or(0.0, |us| f64::from(us) / 1000.0)
            })
            .collect::<Vec<_>>()
    };
    h.push_str(&line_chart(
        "Permission check latency",
        "ms",
        &[
            Series {
                name: "p50",
                color: "#1f77b4",
                points: lat(0.5),
            },
            Series {
                name: "p99",
                color: "#ff7f0e",
                points: lat(0.99),
            },
        ],
        200.0,
    ));
    h.push_str("<h2>Nodes</h2><table><tr><th>node</th><th>state</th><th>certificate</th><th>expires in</th><th>renewals</th><th>messages</th><th>failed</th><th>refused peers</th><th>errors</th><th>token at the end</th></tr>");
    for n in &r.nodes {
        let token = n.token.as_ref().map_or("not inspected".to_owned(), |t| {
            let complete: Vec<_> = t.complete.iter().map(|(l, c)| format!("{l}×{c}")).collect();
            let left: Vec<_> = t
                .leftovers
                .iter()
                .map(|(l, c)| format!("{l}×{c}"))
                .collect();
            if left.is_empty() {
                if complete.is_empty() {
                    "empty".to_owned()
                } else {
                    complete.join(" ")
                }
            } else {
                format!("{} — orphans: {}", complete.join(" "), left.join(" "))
            }
        });
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&n.name),
            esc(&n.state),
            n.serials.last().map_or("-".to_owned(), |s| esc(&s.chars().take(16).collect::<String>())),
            n.expires_in.map_or("-".to_owned(), human_secs),
            n.renewals,
            n.messages_ok,
            n.messages_failed,
            n.refused_peers,
            n.errors,
            esc(&token)
        );
    }
    h.push_str("</table><h2>Events</h2><table><tr><th>time</th><th>node</th><th>what</th></tr>");
    let shown = r
        .events
        .iter()
        .filter(|e| e.kind != EventKind::State || r.nodes.len() <= 20);
    for e in shown.take(2000) {
        let node = e.node.map_or(String::new(), |n| r.nodes[n].name.clone());
        let class = if e.kind == EventKind::Error {
            " class=\"fail\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr{class}><td>{:.2}s</td><td>{}</td><td>{}</td></tr>",
            e.t,
            esc(&node),
            esc(&e.text)
        );
    }
    h.push_str("</table><p class=\"muted\">Written by aos-sim. Everything above came from real nodes: PKCS#11 keys on SoftHSM, rustls handshakes, real links.</p></body></html>\n");
    h
}
