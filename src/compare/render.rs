//! The compare directory: `<out>/<pair>/compare-<UTC stamp>/` (or
//! `<out>/<A>-vs-<B>/...` for two files of no common pair) with
//! compare.json, compare.md, index.html and the two charts. The report is
//! one view model ([`crate::report::view`]) rendered as markdown and HTML,
//! like a run's summary.

use std::path::{Path, PathBuf};

use super::table::{self, Comparison, Figures, SideRun};
use crate::analyze::fmt_bytes;
use crate::error::Result;
use crate::options::{OutputMode, SummaryFormat};
use crate::record;
use crate::report::format::opt_ms;
use crate::report::view::{
    plain, strong, Block, Cell, ChartRef, Document, Inline, Section, Table, Tone,
};
use crate::scenario::Scenario;

pub const COMPARE_JSON: &str = "compare.json";
pub const COMPARE_MD: &str = "compare.md";

/// Build the comparison from the two run directories, write the compare
/// directory, and print the verdict (or compare.json with `--json`).
/// `version`: the `--pg-version` both sides ran on, which names the
/// directory (`compare-pg17-<stamp>`) and the printed lines.
pub fn publish(
    out: &Path,
    scenarios: [&Scenario; 2],
    runs: [&SideRun; 2],
    version: Option<&str>,
    output: OutputMode,
) -> Result<(PathBuf, Comparison)> {
    let [a, b] = scenarios;
    let pair = a.pair.clone().filter(|p| b.pair.as_ref() == Some(p));
    let name = directory_name(a, b);
    let prefix = match version {
        Some(v) => format!("compare-pg{v}-"),
        None => "compare-".into(),
    };
    let dir = record::create_stamped_dir(out, &name, &prefix)?;
    let c = table::build(pair, runs, &dir);
    let json = serde_json::to_string_pretty(&c).map_err(anyhow::Error::new)?;
    std::fs::write(dir.join(COMPARE_JSON), format!("{json}\n"))?;
    let charts = super::charts::write_all(&dir, runs, &c)?;
    let doc = document(&c, &charts, version);
    let md = crate::report::markdown::render(&doc);
    std::fs::write(dir.join(COMPARE_MD), &md)?;
    // After both sides' summaries, like them: GitHub Actions' step summary
    // (QA: a CI job's summary showed both runs but not the verdict).
    if let Some(path) = crate::report::RenderOptions::default().github_step_summary {
        crate::report::append_step_summary(&path, &md)?;
    }
    std::fs::write(
        dir.join(crate::report::INDEX_HTML),
        crate::report::html::render(&doc),
    )?;
    let on = version.map_or(String::new(), |v| format!(" (PostgreSQL {v})"));
    match output.summary {
        SummaryFormat::Json => crate::printer::stdout(&format!("{json}\n"))?,
        SummaryFormat::Nothing => {}
        SummaryFormat::Verdict => crate::printer::stdout(&format!("{}\n", c.verdict.line))?,
        SummaryFormat::Text => crate::printer::stdout(&format!(
            "compare{on}: {}\ncompare report{on}: {}\n",
            c.verdict.line,
            dir.join(crate::report::INDEX_HTML).display()
        ))?,
    }
    Ok((dir, c))
}

/// The folder under `--out` a compare of `a` and `b` writes into: their
/// common pair, else `<A>-vs-<B>`.
pub fn directory_name(a: &Scenario, b: &Scenario) -> String {
    match (&a.pair, &b.pair) {
        (Some(p), Some(q)) if p == q => p.clone(),
        _ => format!("{}-vs-{}", a.name, b.name),
    }
}

/// What compare.md and index.html say.
fn document(c: &Comparison, charts: &[String], version: Option<&str>) -> Document {
    let [a, b] = &c.sides;
    let tone = if c.verdict.better.is_some() {
        Tone::Pass
    } else {
        Tone::Neutral
    };
    let mut lead = vec![Block::Banner(tone, vec![strong(c.verdict.line.clone())])];
    let mut links = Vec::new();
    for (label, s) in [("A", a), ("B", b)] {
        if let Some(d) = &s.run_dir {
            links.push((
                format!("{label}: {} run directory", s.scenario),
                format!("{d}/index.html"),
            ));
        }
    }
    lead.push(Block::Links(links));
    let mut total = Section::new("total", "The whole migration");
    let mut sides = Table::new(&["", "A", "B"]);
    let variant = |s: &table::Side| s.variant.clone().unwrap_or_else(|| "–".into());
    let outcome = |s: &table::Side| format!("{} (exit {})", s.outcome, s.exit_code);
    sides.row(vec![
        "scenario".into(),
        a.scenario.clone().into(),
        b.scenario.clone().into(),
    ]);
    sides.row(vec!["variant".into(), variant(a).into(), variant(b).into()]);
    sides.row(vec!["outcome".into(), outcome(a).into(), outcome(b).into()]);
    total.blocks.push(Block::Table(sides));
    total.blocks.push(Block::Table(figures_table([
        a.total.as_ref(),
        b.total.as_ref(),
    ])));
    let mut sections = vec![total];
    let mut steps = Section::new("steps", "Step by step");
    for s in &c.steps {
        steps.blocks.push(Block::Paragraph(vec![strong(format!(
            "{} / {}",
            s.phase, s.step
        ))]));
        steps.blocks.push(Block::Table(figures_table([
            s.cells[0].as_ref(),
            s.cells[1].as_ref(),
        ])));
    }
    sections.push(steps);
    let mut pics = Section::new("charts", "Charts");
    for (name, caption) in [
        (
            "latency",
            "App p99 per window of A and B, overlaid, aligned on the first step's start (t = 0)",
        ),
        (
            "locks",
            "Each blocking-lock hold of A and B (locks that block app reads or writes), longest first",
        ),
    ] {
        if charts.iter().any(|f| f == &format!("{name}.svg")) {
            pics.blocks.push(Block::Chart(ChartRef {
                name: name.into(),
                caption: caption.into(),
            }));
        }
    }
    sections.push(pics);
    let on = version.map_or(String::new(), |v| format!(" on PostgreSQL {v}"));
    Document {
        title: format!("pgrehearse compare: {} vs {}{on}", a.scenario, b.scenario),
        lead,
        sections,
        notes: vec![
            plain(
                "Both rehearsals ran on one server, on the same data (same seed) and the same \
                 traffic schedule; each in a database of its own.",
            ),
            vec![
                Inline::Plain("The verdict takes the first figure that differs materially, in this order: app errors, longest blocking hold, worst app wait, app p99 during the migration (a difference under ".into()),
                Inline::Code(format!("{} ms", table::MATERIAL_MS)),
                Inline::Plain(format!(" or under {}× is noise).", table::MATERIAL_RATIO)),
            ],
        ],
    }
}

/// Figures as rows, A and B as columns; "no such step" where a side has no
/// such step.
fn figures_table(cells: [Option<&Figures>; 2]) -> Table {
    let mut t = Table::new(&["figure", "A>", "B>"]);
    type Show = fn(&Figures) -> String;
    let rows: [(&str, Show); 8] = [
        ("strongest lock", |f| {
            f.strongest_lock.clone().unwrap_or_else(|| "–".into())
        }),
        ("longest blocking hold", |f| match &f.blocking_lock {
            Some(l) => format!("{} ({l})", opt_ms(f.longest_blocking_hold_ms)),
            None => "none".into(),
        }),
        ("worst app wait", |f| opt_ms(f.worst_app_wait_ms)),
        ("app p99", |f| opt_ms(f.p99_ms)),
        ("app errors by version", |f| {
            if f.errors_by_app.is_empty() {
                return f.errors.to_string();
            }
            f.errors_by_app
                .iter()
                .map(|e| format!("{}: {}", e.app, e.errors))
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ("duration", |f| opt_ms(Some(f.duration_ms))),
        ("rewrite", |f| match f.rewrote {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "unknown".into(),
        }),
        ("WAL", |f| f.wal_bytes.map_or("unknown".into(), fmt_bytes)),
    ];
    for (name, show) in rows {
        let side = |c: Option<&Figures>| Cell::from(c.map_or("no such step".to_string(), show));
        t.row(vec![name.into(), side(cells[0]), side(cells[1])]);
    }
    t
}
