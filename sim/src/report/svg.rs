//! Small SVG builders for the report: a line chart and the node timeline. Plain strings, no scripts.

use std::fmt::Write;

use crate::run::record::{EventKind, Record};

/// Escape text for HTML and SVG.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One series of a line chart.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<f64>,
}

const W: f64 = 960.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 20.0;

/// A line chart of per-second series, with a legend and axes.
pub(crate) fn line_chart(title: &str, unit: &str, series: &[Series<'_>], height: f64) -> String {
    let n = series
        .iter()
        .map(|s| s.points.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let (top, bottom) = (28.0, 28.0);
    let plot_h = height - top - bottom;
    let plot_w = W - LEFT - RIGHT;
    let x = |i: usize| LEFT + plot_w * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + plot_h * (1.0 - v / max);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {W} {height}" width="100%" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="16" class="title">{}</text>"#,
        esc(title)
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{} {}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            fmt_num(v),
            esc(unit)
        );
    }
    let step = (n / 10).max(1);
    for i in (0..n).step_by(step) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{i}s</text>"#,
            x(i),
            height - 8.0
        );
    }
    for (k, series) in series.iter().enumerate() {
        let mut d = String::new();
        for (i, v) in series.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(i),
                y(*v)
            );
        }
        let _ = write!(
            s,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.8"/>"#,
            series.color
        );
        let lx = LEFT + 260.0 + 150.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="7" width="10" height="10" fill="{}"/><text x="{:.1}" y="16" class="axis">{}</text>"#,
            series.color,
            lx + 14.0,
            esc(series.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Colour of a node state.
fn state_color(state: &str) -> &'static str {
    match state {
        "provisioned" => "#3a9d5d",
        "paused" => "#4f7fd9",
        "unprovisioned" => "#c9c9c9",
        "down" => "#d9534f",
        _ => "#e8b93a",
    }
}

/// Colour of a fault kind.
fn fault_color(kind: &str) -> &'static str {
    match kind {
        "cut_link" => "#ff7f0e",
        "crash" => "#8b0000",
        _ => "#9467bd",
    }
}

/// Nodes drawn at most in the timeline.
pub(crate) const MAX_TIMELINE_ROWS: usize = 60;

/// One row per node: its states as coloured bars, faults over them, renewals as marks; steps as lines.
pub(crate) fn timeline(r: &Record) -> String {
    let rows = r.nodes.len().min(MAX_TIMELINE_ROWS);
    let row_h = 22.0;
    let top = 30.0;
    let height = top + row_h * rows as f64 + 30.0;
    let end = r.duration.max(1.0);
    let plot_w = W - LEFT - RIGHT;
    let x = |t: f64| LEFT + plot_w * (t / end).clamp(0.0, 1.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {W} {height:.0}" width="100%" role="img" aria-label="timeline">"#
    );
    let _ = write!(
        s,
        r#"<text x="{LEFT}" y="16" class="title">Nodes over time: states, faults (hatched) and renewals (◆)</text>"#
    );
    s.push_str(r#"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="rgba(0,0,0,0.35)"/></pattern></defs>"#);
    for e in r.events.iter().filter(|e| e.kind == EventKind::Step) {
        let xx = x(e.t);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#888" stroke-dasharray="2,3"><title>{:.2}s {}</title></line>"##,
            top - 6.0,
            top + row_h * rows as f64,
            e.t,
            esc(&e.text)
        );
    }
    for (i, n) in r.nodes.iter().take(rows).enumerate() {
        let y = top + row_h * i as f64;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 14.0,
            esc(&n.name)
        );
        for (k, (t, state)) in n.states.iter().enumerate() {
            let t_end = n.states.get(k + 1).map_or(end, |(t, _)| *t);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {state} from {t:.2}s to {t_end:.2}s</title></rect>"#,
                x(*t),
                y + 3.0,
                (x(t_end) - x(*t)).max(0.5),
                row_h - 6.0,
                state_color(state),
                esc(&n.name)
            );
        }
        for f in r.faults.iter().filter(|f| f.node == i) {
            let f_end = f.end.unwrap_or(end);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="url(#hatch)" stroke="{}" stroke-width="2"><title>{} {:.2}s–{f_end:.2}s{}</title></rect>"#,
                x(f.start),
                y + 1.0,
                (x(f_end) - x(f.start)).max(1.0),
                row_h - 2.0,
                fault_color(&f.kind),
                esc(&f.kind),
                f.start,
                if f.random { " (seeded)" } else { "" }
            );
        }
        for e in r.events.iter().filter(|e| {
            e.node == Some(i) && matches!(e.kind, EventKind::Renewal | EventKind::Error)
        }) {
            let (mark, color) = if e.kind == EventKind::Renewal {
                ("◆", "#1f4e9c")
            } else {
                ("✖", "#d00")
            };
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="{color}" font-size="12" text-anchor="middle">{mark}<title>{:.2}s {}</title></text>"#,
                x(e.t),
                y + 15.0,
                e.t,
                esc(&e.text)
            );
        }
    }
    for k in 0..=10 {
        let t = end * f64::from(k) / 10.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{t:.0}s</text>"#,
            x(t),
            height - 10.0
        );
    }
    s.push_str("</svg>");
    s
}
