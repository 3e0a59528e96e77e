//! `pgrehearse compare A.toml B.toml`: two forms of a change (usually the
//! naive and the safe file of a pair) rehearsed on the same server, on the
//! same data and under the same traffic, then put side by side.
//!
//! In the order data flows: `pair.rs` finds a pair's files, `comparable.rs`
//! refuses two scenarios that differ in anything but the migration and the
//! budget, this file rehearses both (through `crate::rehearsal`, one run
//! directory each), `table.rs` reads the two run directories back into the
//! side-by-side and its verdict, `render.rs` writes compare.md,
//! compare.json and index.html, `charts.rs` the two charts. With
//! `--pg-version`, all of that once per version (both sides of a version on
//! one server of it), and `versions.rs` puts the verdicts side by side.
//!
//! Identical data: both rehearsals use the same `--seed`, and the
//! generators are deterministic given the seed, so both databases get the
//! same rows; the workload's parameters come from the same seed, so both
//! get the same traffic schedule. Both sides clone one template of the
//! data on their server (`DataPlan::Template`): seeded once.

pub mod charts;
pub mod comparable;
pub mod pair;
pub mod render;
pub mod table;
pub mod versions;

use std::path::PathBuf;

use crate::error::{exit, Error, Result};
use crate::options::{RunOptions, SummaryFormat};
use crate::printer;
use crate::rehearsal::{self, DataPlan, Server, ServerNeeds};
use crate::scenario::Scenario;
use crate::signals::Signals;
use table::SideRun;

/// Refuse two scenarios that cannot be compared, saying what differs.
pub fn check_comparable(a: &Scenario, b: &Scenario) -> Result<()> {
    let diffs = comparable::differences(a, b);
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} and {} are not comparable: only the migration ([[phase]]) and the budget may differ\n{}",
        a.path.display(),
        b.path.display(),
        diffs
            .iter()
            .map(|d| format!("  - {d}"))
            .collect::<Vec<_>>()
            .join("\n")
    )))
}

/// Rehearse `a` then `b` on one server, write the compare directory, print
/// the verdict; with `--pg-version`, that once per version (each version
/// checked against the machine before anything runs: exit 3 naming what
/// is missing), then the verdicts side by side (`versions.rs`). Returns
/// the worst (numerically largest) of the runs' exit codes, or a compare
/// directory's failure.
pub async fn compare(a: &Scenario, b: &Scenario, opts: &RunOptions) -> u8 {
    let signals = Signals::install();
    if opts.versions.is_empty() {
        return compare_on([a, b], opts, None, &signals).await.exit_code;
    }
    let variations = match crate::matrix::variations(a, opts).await {
        Ok(v) => v,
        Err(e) => {
            printer::error(&e, None);
            return e.exit_code();
        }
    };
    let mut each = opts.clone();
    each.versions.clear();
    if opts.output.summary == SummaryFormat::Json {
        // versions.json is printed instead, once.
        each.output.summary = SummaryFormat::Nothing;
    }
    let mut columns = Vec::new();
    for v in &variations {
        if signals.received() {
            columns.push(versions::Column {
                label: v.label.clone(),
                exit_code: signals.error().exit_code(),
                outcome: format!("not run ({})", signals.name()),
                compare_dir: None,
                comparison: None,
            });
            continue;
        }
        each.server = v.server.clone();
        let once = compare_on([a, b], &each, Some(&v.label), &signals).await;
        columns.push(versions::Column {
            label: v.label.clone(),
            ..once
        });
    }
    let mut code = columns.iter().map(|c| c.exit_code).fold(exit::OK, u8::max);
    if let Err(e) = versions::publish(&opts.out, [a, b], &columns, opts.output) {
        printer::error(&e, None);
        code = code.max(e.exit_code());
    }
    if signals.received() {
        code = code.max(signals.error().exit_code());
    }
    code
}

/// One compare on one server (of `version`, when given): both rehearsals,
/// the compare directory. Its column of the versions side by side.
async fn compare_on(
    sides: [&Scenario; 2],
    opts: &RunOptions,
    version: Option<&str>,
    signals: &Signals,
) -> versions::Column {
    let runs = rehearse_both(sides, opts, version, signals).await;
    let mut column = versions::Column {
        label: version.unwrap_or_default().to_string(),
        exit_code: runs.iter().map(|r| r.exit_code).fold(exit::OK, u8::max),
        outcome: match runs.iter().find(|r| r.run_dir.is_none()) {
            Some(r) => format!("{}: {}", r.scenario, r.outcome),
            None => "compared".into(),
        },
        compare_dir: None,
        comparison: None,
    };
    if runs.len() < 2 {
        return column;
    }
    match render::publish(&opts.out, sides, [&runs[0], &runs[1]], version, opts.output) {
        Ok((dir, c)) => {
            column.compare_dir = Some(dir);
            column.comparison = Some(c);
        }
        Err(e) => {
            printer::error(&e, None);
            column.exit_code = column.exit_code.max(e.exit_code());
        }
    }
    column
}

/// Both rehearsals, each printing its own summary as `run` does (none with
/// `--json`: compare.json is printed instead). A side that did not run
/// (provisioning failed, a signal) still gets a [`SideRun`], without a run
/// directory.
async fn rehearse_both(
    sides: [&Scenario; 2],
    opts: &RunOptions,
    version: Option<&str>,
    signals: &Signals,
) -> Vec<SideRun> {
    let mut each = opts.clone();
    if opts.output.summary == SummaryFormat::Json {
        each.output.summary = SummaryFormat::Nothing;
    }
    let not_run = |s: &Scenario, e: &Error| SideRun {
        scenario: s.name.clone(),
        exit_code: e.exit_code(),
        outcome: e.to_string(),
        run_dir: None,
    };
    if opts.output.chatter {
        crate::say!(
            "pgrehearse: compare {} vs {} — provisioning PostgreSQL{} ({:?} backend)",
            sides[0].name,
            sides[1].name,
            version.map_or(String::new(), |v| format!(" {v}")),
            opts.server.backend
        );
    }
    let mut needs = ServerNeeds::of(sides[0]);
    needs.sessions = needs.sessions.max(ServerNeeds::of(sides[1]).sessions);
    let server = match Server::provision(&opts.server, &needs, signals).await {
        Ok(s) => s,
        Err(e) => {
            printer::error(&e, None);
            return sides.iter().map(|s| not_run(s, &e)).collect();
        }
    };
    let mut runs = Vec::new();
    for s in sides {
        if signals.received() {
            runs.push(not_run(s, &signals.error()));
            continue;
        }
        // Both sides clone one template: the same rows, seeded once.
        let outcome = rehearsal::rehearse_on(&server, s, DataPlan::Template, &each, signals).await;
        if let Err(e) = &outcome.result {
            printer::error(e, outcome.run_dir.as_deref());
        }
        runs.push(SideRun {
            scenario: s.name.clone(),
            exit_code: outcome.exit_code(),
            outcome: outcome.describe(),
            run_dir: outcome.run_dir,
        });
    }
    server.teardown().await;
    runs
}

/// The scenario files `compare` was given: two paths, or a pair's two
/// files found in `dir`.
pub fn files(paths: &[PathBuf], pair: Option<&str>, dir: &std::path::Path) -> Result<[PathBuf; 2]> {
    match (paths, pair) {
        ([a, b], None) => Ok([a.clone(), b.clone()]),
        ([], Some(p)) => {
            let (naive, safe) = pair::find(dir, p)?;
            Ok([naive, safe])
        }
        (_, Some(_)) => Err(Error::Usage(
            "compare: give two scenario files or --pair NAME, not both".into(),
        )),
        _ => Err(Error::Usage(format!(
            "compare: expected two scenario files (A.toml B.toml) or --pair NAME, got {} file(s)",
            paths.len()
        ))),
    }
}
