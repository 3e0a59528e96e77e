//! `compare --pg-version 15,17`: the verdict of each version's compare side
//! by side, so a reviewer sees whether the safe form is the safe form on
//! every version they run. Written as `versions.md` and `versions.json` into
//! `<out>/<pair>/compare-versions-<UTC stamp>/`, beside the compare
//! directories it links; built from each version's comparison (itself read
//! from the run directories) and each side's run.json.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::table::{fmt_ms, Comparison, Figures, Verdict};
use crate::error::Result;
use crate::options::{OutputMode, SummaryFormat};
use crate::record;
use crate::scenario::Scenario;

/// How one version's compare ended, as the command saw it.
#[derive(Debug, Clone)]
pub struct Column {
    /// The version ("17").
    pub label: String,
    /// The worse of its two runs' exit codes (or its compare directory's).
    pub exit_code: u8,
    /// "compared", or why a side has no run directory.
    pub outcome: String,
    pub compare_dir: Option<PathBuf>,
    pub comparison: Option<Comparison>,
}

/// What versions.json holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Versions {
    pub pair: Option<String>,
    /// A's and B's scenario names.
    pub sides: [String; 2],
    /// Every version gave a verdict and all of them name the same side.
    pub agree: bool,
    /// One line for people.
    pub line: String,
    pub columns: Vec<VersionFacts>,
}

/// One version: how its compare ended, its verdict and each side's figures
/// over the whole migration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionFacts {
    pub label: String,
    /// As A's server reported it ("17.6"); empty without a run directory.
    pub postgres_version: String,
    pub exit_code: u8,
    pub outcome: String,
    /// The compare directory, relative to this one (`../compare-pg17-...`).
    pub compare_dir: Option<String>,
    pub verdict: Option<Verdict>,
    /// A's and B's figures over the whole migration (null: no run).
    pub totals: [Option<Figures>; 2],
}

/// The side by side of `columns`.
pub fn build(sides: [&Scenario; 2], columns: &[Column]) -> Versions {
    let facts: Vec<VersionFacts> = columns.iter().map(version_facts).collect();
    let winners: Vec<Option<&String>> = facts
        .iter()
        .map(|f| f.verdict.as_ref().and_then(|v| v.better.as_ref()))
        .collect();
    let labels = facts
        .iter()
        .map(|f| f.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let agree = !winners.is_empty() && winners.iter().all(|w| w.is_some() && *w == winners[0]);
    let per_version = if facts.len() == 1 {
        "the verdict"
    } else {
        "the verdict is not the same on every version"
    };
    let line = match winners.first() {
        Some(Some(w)) if agree && facts.len() == 1 => format!("{w} did less harm ({labels})"),
        Some(Some(w)) if agree => format!("{w} did less harm on every version ({labels})"),
        _ => format!(
            "{per_version}: {}",
            facts
                .iter()
                .map(|f| {
                    let verdict = match f.verdict.as_ref().map(|v| &v.better) {
                        Some(Some(w)) => format!("{w} did less harm"),
                        Some(None) => "no material difference".into(),
                        None => f.outcome.clone(),
                    };
                    format!("{}: {verdict}", f.label)
                })
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    Versions {
        pair: sides[0]
            .pair
            .clone()
            .filter(|p| sides[1].pair.as_ref() == Some(p)),
        sides: [sides[0].name.clone(), sides[1].name.clone()],
        agree,
        line,
        columns: facts,
    }
}

fn version_facts(c: &Column) -> VersionFacts {
    let comparison = c.comparison.as_ref();
    let postgres_version = c
        .compare_dir
        .as_ref()
        .zip(comparison.and_then(|x| x.sides[0].run_dir.as_ref()))
        .and_then(|(dir, run)| server_version(&dir.join(run)))
        .unwrap_or_default();
    VersionFacts {
        label: c.label.clone(),
        postgres_version,
        exit_code: c.exit_code,
        outcome: c.outcome.clone(),
        compare_dir: c
            .compare_dir
            .as_ref()
            .and_then(|d| d.file_name())
            .map(|n| format!("../{}", n.to_string_lossy())),
        verdict: comparison.map(|x| x.verdict.clone()),
        totals: match comparison {
            Some(x) => [x.sides[0].total.clone(), x.sides[1].total.clone()],
            None => [None, None],
        },
    }
}

/// run.json's `postgres_version`, its first word ("17.6").
fn server_version(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join(record::RUN_JSON)).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["postgres_version"]
        .as_str()?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// versions.md: the line, then a table with a column per version.
pub fn markdown(v: &Versions) -> String {
    let mut o = String::new();
    let [a, b] = &v.sides;
    let _ = writeln!(o, "# compare {a} (A) vs {b} (B) — versions side by side\n");
    let _ = writeln!(o, "**{}**\n", v.line);
    let heads: Vec<&str> = v.columns.iter().map(|c| c.label.as_str()).collect();
    let _ = writeln!(o, "| | {} |", heads.join(" | "));
    let _ = writeln!(o, "|---|{}", "---|".repeat(heads.len()));
    let mut row = |name: &str, cell: &dyn Fn(&VersionFacts) -> String| {
        let cells: Vec<String> = v.columns.iter().map(cell).collect();
        let _ = writeln!(o, "| {name} | {} |", cells.join(" | "));
    };
    row("server", &|c| dash(&c.postgres_version));
    row("exit code", &|c| c.exit_code.to_string());
    row("verdict", &|c| match &c.verdict {
        Some(v) => v.line.replace('|', "\\|"),
        None => c.outcome.replace('|', "\\|"),
    });
    row("compare report", &|c| match &c.compare_dir {
        Some(d) => format!("[{d}]({d}/index.html)"),
        None => "–".into(),
    });
    type Show = fn(&Figures) -> String;
    let figures: [(&str, Show); 5] = [
        ("longest blocking hold", |f| {
            f.longest_blocking_hold_ms
                .map_or("none".to_string(), fmt_ms)
        }),
        ("worst app wait", |f| {
            f.worst_app_wait_ms.map_or("none".to_string(), fmt_ms)
        }),
        ("app p99 during", |f| {
            f.p99_ms.map_or("–".to_string(), fmt_ms)
        }),
        ("app errors", |f| f.errors.to_string()),
        ("migration duration", |f| fmt_ms(f.duration_ms)),
    ];
    for (name, show) in figures {
        for (i, side) in ["A", "B"].iter().enumerate() {
            row(&format!("{side}: {name}"), &|c| {
                c.totals[i].as_ref().map_or("–".to_string(), show)
            });
        }
    }
    o
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "–".into()
    } else {
        s.to_string()
    }
}

/// Build, write versions.md / versions.json, and print the line (or the
/// JSON with `--json`). Returns the directory.
pub fn publish(
    out: &Path,
    sides: [&Scenario; 2],
    columns: &[Column],
    output: OutputMode,
) -> Result<PathBuf> {
    let v = build(sides, columns);
    let name = super::render::directory_name(sides[0], sides[1]);
    let dir = record::create_stamped_dir(out, &name, "compare-versions-")?;
    let json = serde_json::to_string_pretty(&v).map_err(anyhow::Error::new)?;
    std::fs::write(dir.join("versions.json"), format!("{json}\n"))?;
    std::fs::write(dir.join("versions.md"), markdown(&v))?;
    match output.summary {
        SummaryFormat::Json => crate::printer::stdout(&format!("{json}\n"))?,
        SummaryFormat::Nothing => {}
        SummaryFormat::Verdict => crate::printer::stdout(&format!("{}\n", v.line))?,
        SummaryFormat::Text => crate::printer::stdout(&format!(
            "compare across versions: {}\ncompare across versions report: {}\n",
            v.line,
            dir.join("versions.md").display()
        ))?,
    }
    Ok(dir)
}
