//! What a run shows a person: the summary table printed at the end ([`summary`]) and the self-contained
//! HTML report ([`html`]: one file, inline CSS and SVG, no scripts).

pub mod html;
pub mod summary;
mod svg;

/// A duration in seconds for people: `850 ms`, `12.3 s`, `4.2 min`, `36.5 h`, `365 d`.
pub(crate) fn human_secs(s: f64) -> String {
    let a = s.abs();
    let sign = if s < 0.0 { "-" } else { "" };
    if a < 1.0 {
        format!("{sign}{:.0} ms", a * 1000.0)
    } else if a < 120.0 {
        format!("{sign}{a:.1} s")
    } else if a < 7200.0 {
        format!("{sign}{:.1} min", a / 60.0)
    } else if a < 3.0 * 86400.0 {
        format!("{sign}{:.1} h", a / 3600.0)
    } else {
        format!("{sign}{:.0} d", a / 86400.0)
    }
}
