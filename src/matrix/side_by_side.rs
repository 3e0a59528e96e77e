//! The cells of one scenario side by side: a column per variation (a
//! PostgreSQL version), the key figures of each step in rows, and links to
//! every run directory. Written as `<axis>.md` and `<axis>.json` into
//! `<out>/<scenario>/<axis>-<UTC stamp>/`, beside the run directories.
//!
//! The figures come from each run directory alone (run.json and the CSVs,
//! through `crate::analyze`), like every other report. `<axis>.md` is also
//! appended to `$GITHUB_STEP_SUMMARY` when that is set.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analyze::{self, Analysis, StepFacts};
use crate::error::Result;
use crate::options::{OutputMode, SummaryFormat};
use crate::record::{self, RunRecord};
use crate::scenario::Scenario;

/// How one cell of the matrix ended, as the loop saw it.
#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    pub exit_code: u8,
    /// "pass", "budget breached", or the error.
    pub outcome: String,
    /// Its run directory, if one was written.
    pub run_dir: Option<PathBuf>,
}

/// What `<axis>.json` holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SideBySide {
    pub scenario: String,
    /// What varies from column to column: "versions".
    pub axis: String,
    pub columns: Vec<ColumnFacts>,
    /// Every step of any column, in the order they ran.
    pub steps: Vec<StepRow>,
}

/// One column: how the cell ended and its run-wide figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ColumnFacts {
    pub label: String,
    pub exit_code: u8,
    pub outcome: String,
    /// The run directory, relative to this directory (`../<stamp>`).
    pub run_dir: Option<String>,
    /// As the server reported it ("17.6"); empty without a run directory.
    pub postgres_version: String,
    pub backend: String,
    /// First statement start to last statement end.
    pub migration_ms: Option<f64>,
    /// App p99 while the migration ran.
    pub p99_during_ms: Option<f64>,
    /// App errors over the whole run.
    pub errors: u64,
}

/// One step, its figures in each column (`None`: the step did not run there).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRow {
    pub phase: String,
    pub step: String,
    pub cells: Vec<Option<StepFigures>>,
}

/// The figures a reviewer compares across columns.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepFigures {
    pub outcome: String,
    pub duration_ms: f64,
    /// The longest hold of a lock that blocks app reads or writes.
    pub longest_blocking_hold_ms: Option<f64>,
    /// The longest lock wait of an app query this step caused.
    pub worst_app_wait_ms: Option<f64>,
    /// App p99 while the step ran.
    pub p99_ms: Option<f64>,
    /// App errors while the step ran.
    pub errors: u64,
    /// The replica's peak replay lag from the step's start until the next
    /// step; None without a replica.
    pub replica_lag_peak_ms: Option<f64>,
}

impl StepFigures {
    fn of(s: &StepFacts) -> StepFigures {
        StepFigures {
            outcome: s.outcome.clone(),
            duration_ms: s.duration_ms,
            longest_blocking_hold_ms: s.longest_blocking_lock.as_ref().and_then(|l| l.held_ms),
            worst_app_wait_ms: s.worst_app_wait.as_ref().map(|w| w.wait_ms),
            p99_ms: s.latency.p99_ms,
            errors: s.latency.errors,
            replica_lag_peak_ms: s.replica_lag.and_then(|l| l.peak_ms),
        }
    }
}

/// The side-by-side of `columns`, from their run directories.
pub fn build(scenario: &str, axis: &str, columns: &[Column]) -> SideBySide {
    let analyses: Vec<Option<Analysis>> = columns
        .iter()
        .map(|c| {
            let rec = RunRecord::read(c.run_dir.as_ref()?).ok()?;
            Some(analyze::analyze(&rec))
        })
        .collect();
    let mut steps: Vec<StepRow> = Vec::new();
    for (i, a) in analyses.iter().enumerate() {
        for s in a.iter().flat_map(|a| &a.steps) {
            let row = match steps
                .iter_mut()
                .position(|r| r.phase == s.phase && r.step == s.step)
            {
                Some(at) => &mut steps[at],
                None => {
                    steps.push(StepRow {
                        phase: s.phase.clone(),
                        step: s.step.clone(),
                        cells: vec![None; columns.len()],
                    });
                    steps.last_mut().expect("just pushed")
                }
            };
            row.cells[i] = Some(StepFigures::of(s));
        }
    }
    SideBySide {
        scenario: scenario.to_string(),
        axis: axis.to_string(),
        columns: columns
            .iter()
            .zip(&analyses)
            .map(|(c, a)| column_facts(c, a.as_ref()))
            .collect(),
        steps,
    }
}

fn column_facts(c: &Column, a: Option<&Analysis>) -> ColumnFacts {
    ColumnFacts {
        label: c.label.clone(),
        exit_code: c.exit_code,
        outcome: c.outcome.lines().next().unwrap_or_default().to_string(),
        run_dir: c
            .run_dir
            .as_ref()
            .and_then(|d| d.file_name())
            .map(|n| format!("../{}", n.to_string_lossy())),
        // "17.6 (Debian 17.6-1)" → "17.6"
        postgres_version: a
            .and_then(|a| a.run.postgres_version.split_whitespace().next())
            .unwrap_or_default()
            .to_string(),
        backend: a.map(|a| a.run.backend.clone()).unwrap_or_default(),
        migration_ms: a.and_then(|a| a.migration).map(|m| m.duration_ms),
        p99_during_ms: a.and_then(|a| a.during.p99_ms),
        errors: a.map(|a| a.app_errors()).unwrap_or(0),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.1} ms"))
}

/// `<axis>.md`: the columns' run-wide figures, then a table per step.
pub fn markdown(t: &SideBySide) -> String {
    let mut o = String::new();
    let heads: Vec<&str> = t.columns.iter().map(|c| c.label.as_str()).collect();
    let _ = writeln!(o, "# {} — {} side by side\n", t.scenario, t.axis);
    let header = |o: &mut String, first: &str| {
        let _ = writeln!(o, "| {first} | {} |", heads.join(" | "));
        let _ = writeln!(o, "|---|{}", "---|".repeat(heads.len()));
    };
    let row = |o: &mut String, name: &str, cells: Vec<String>| {
        let _ = writeln!(o, "| {name} | {} |", cells.join(" | "));
    };
    header(&mut o, "");
    let col = |f: &dyn Fn(&ColumnFacts) -> String| t.columns.iter().map(f).collect::<Vec<_>>();
    row(
        &mut o,
        "server",
        col(&|c| format!("{} ({})", c.postgres_version, c.backend)),
    );
    row(
        &mut o,
        "outcome",
        col(&|c| format!("{} (exit {})", c.outcome, c.exit_code)),
    );
    row(
        &mut o,
        "run directory",
        col(&|c| match &c.run_dir {
            Some(d) => format!("[{d}]({d}/index.html)"),
            None => "–".into(),
        }),
    );
    row(&mut o, "migration", col(&|c| ms(c.migration_ms)));
    row(
        &mut o,
        "app p99 during the migration",
        col(&|c| ms(c.p99_during_ms)),
    );
    row(&mut o, "app errors", col(&|c| c.errors.to_string()));
    for s in &t.steps {
        let _ = writeln!(o, "\n## {} / {}\n", s.phase, s.step);
        header(&mut o, "figure");
        let cell = |f: &dyn Fn(&StepFigures) -> String| {
            s.cells
                .iter()
                .map(|c| c.as_ref().map_or("not run".to_string(), f))
                .collect::<Vec<_>>()
        };
        row(&mut o, "outcome", cell(&|f| f.outcome.clone()));
        row(&mut o, "duration", cell(&|f| ms(Some(f.duration_ms))));
        row(
            &mut o,
            "longest blocking lock hold",
            cell(&|f| ms(f.longest_blocking_hold_ms)),
        );
        row(&mut o, "worst app wait", cell(&|f| ms(f.worst_app_wait_ms)));
        row(&mut o, "app p99 while it ran", cell(&|f| ms(f.p99_ms)));
        row(
            &mut o,
            "app errors while it ran",
            cell(&|f| f.errors.to_string()),
        );
        if s.cells
            .iter()
            .flatten()
            .any(|f| f.replica_lag_peak_ms.is_some())
        {
            row(
                &mut o,
                "replica lag peak",
                cell(&|f| ms(f.replica_lag_peak_ms)),
            );
        }
    }
    o
}

/// Build, write `<axis>.md` / `<axis>.json`, and say where (or print the
/// JSON with `--json`). Returns the directory.
pub fn publish(
    out: &Path,
    scenario: &Scenario,
    axis: &str,
    columns: &[Column],
    output: OutputMode,
) -> Result<PathBuf> {
    let t = build(&scenario.name, axis, columns);
    let dir = record::create_stamped_dir(out, &scenario.name, &format!("{axis}-"))?;
    let json = serde_json::to_string_pretty(&t).map_err(anyhow::Error::new)?;
    std::fs::write(dir.join(format!("{axis}.json")), format!("{json}\n"))?;
    let md = markdown(&t);
    std::fs::write(dir.join(format!("{axis}.md")), &md)?;
    // After each run's summary.md, like them: GitHub Actions' step summary.
    if let Some(path) = crate::report::RenderOptions::default().github_step_summary {
        crate::report::append_step_summary(&path, &md)?;
    }
    match output.summary {
        SummaryFormat::Json => crate::printer::stdout(&format!("{json}\n"))?,
        _ if output.chatter => crate::printer::stdout(&format!(
            "{}: {axis} side by side: {}\n",
            scenario.name,
            dir.join(format!("{axis}.md")).display()
        ))?,
        _ => {}
    }
    Ok(dir)
}
