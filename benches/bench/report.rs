//! The figures of a section and their table: each figure keeps its samples and is shown as
//! median, min and max, next to the text of its baseline and target columns; `section_md`
//! writes a section as Markdown padded to read as a table on the console too. Measures
//! nothing itself.

use std::fmt::Write as _;

/// One figure: its samples, and text for the baseline and target columns.
pub struct Row {
    label: String,
    unit: &'static str,
    samples: Vec<f64>,
    pub vs: String,
    pub target: String,
}

/// One case's figures and notes: a numbered section of BENCH.md.
pub struct Section {
    pub title: &'static str,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Section {
    /// Add a figure; its baseline and target columns start empty.
    pub fn row(
        &mut self,
        label: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
    ) -> &mut Row {
        let (label, vs, target) = (label.into(), String::new(), String::new());
        self.rows.push(Row {
            label,
            unit,
            samples,
            vs,
            target,
        });
        self.rows.last_mut().expect("just pushed")
    }
    /// Add a line under the table.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// The largest of `v` (a rate's best run; NaN when empty).
pub fn best_run(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// The median of `v` (the upper one of an even count; NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A figure with as many decimals as its size calls for.
pub fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 1000.0 => format!("{v:.0}"),
        a if a >= 100.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// A target column: its text, and whether this run met it.
pub fn target(text: &str, met: bool) -> String {
    format!("{text}: {}", if met { "met" } else { "not yet" })
}

/// A section as Markdown, padded so that it also reads as a table on the console.
pub fn section_md(n: usize, s: &Section) -> String {
    let mut md = format!("## {n}. {}\n\n", s.title);
    if !s.rows.is_empty() {
        md.push_str("| case | median | min | max | unit | vs baseline | target |\n");
        md.push_str("|---|---:|---:|---:|---|---|---|\n");
    }
    for r in &s.rows {
        let min = num(r.samples.iter().copied().fold(f64::INFINITY, f64::min));
        let max = num(r.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        let (med, label, unit) = (num(median(&r.samples)), &r.label, r.unit);
        let _ = writeln!(
            md,
            "| {label:<38} | {med:>8} | {min:>8} | {max:>8} | {unit:<6} | {} | {} |",
            r.vs, r.target
        );
    }
    md.push('\n');
    for note in &s.notes {
        let _ = writeln!(md, "- {note}");
    }
    md
}
