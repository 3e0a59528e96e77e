//! `pgrehearse compare A.toml B.toml`: two forms of a change (usually the
//! naive and the safe file of a pair) rehearsed on the same server, on the
//! same data and under the same traffic, then put side by side.
//!
//! In the order data flows: `pair.rs` finds a pair's files, `comparable.rs`
//! refuses two scenarios that differ in anything but the migration and the
//! budget, this file rehearses both (through `crate::rehearsal`, one run
//! directory each), `table.rs` reads the two run directories back into the
//! side-by-side and its verdict, `render.rs` writes compare.md,
//! compare.json and index.html, `charts.rs` the two charts.
//!
//! Identical data: both rehearsals use the same `--seed`, and the
//! generators are deterministic given the seed, so both databases get the
//! same rows; the workload's parameters come from the same seed, so both
//! get the same traffic schedule. Each rehearsal runs in a database of its
//! own on one server ([`databases`]); once template databases land, B's
//! database is a clone of A's seeded template instead (one call there).

pub mod charts;
pub mod comparable;
pub mod pair;
pub mod render;
pub mod table;

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
/// the verdict. Returns the worse (numerically larger) of the two runs'
/// exit codes, or the compare directory's failure.
pub async fn compare(a: &Scenario, b: &Scenario, opts: &RunOptions) -> u8 {
    let signals = Signals::install();
    let runs = rehearse_both([a, b], opts, &signals).await;
    let mut code = runs.iter().map(|r| r.exit_code).fold(exit::OK, u8::max);
    if runs.len() < 2 {
        return code;
    }
    match render::publish(&opts.out, [a, b], [&runs[0], &runs[1]], opts.output) {
        Ok(_) => {}
        Err(e) => {
            printer::error(&e, None);
            code = code.max(e.exit_code());
        }
    }
    code
}

/// Both rehearsals, each printing its own summary as `run` does (none with
/// `--json`: compare.json is printed instead). A side that did not run
/// (provisioning failed, a signal) still gets a [`SideRun`], without a run
/// directory.
async fn rehearse_both(
    sides: [&Scenario; 2],
    opts: &RunOptions,
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
        eprintln!(
            "pgrehearse: compare {} vs {} — provisioning Postgres ({:?} backend)",
            sides[0].name, sides[1].name, opts.server.backend
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
