//! A matrix of rehearsals: every scenario × every variation of how it is
//! rehearsed, one run directory per cell, and the cells of a scenario side
//! by side when it has several.
//!
//! Today the variations are PostgreSQL versions (`--pg-version`,
//! `versions.rs`): a [`Variation`] is a label and the server to rehearse
//! on. `run` rehearses each scenario once per variation here; `sweep` and
//! `compare` take the variations ([`variations`]) and run their own loop on
//! each one's server (a sweep's versions are a dimension of its fits; a
//! compare per version, its verdicts side by side in the compare module).
//! The side-by-side table (`side_by_side.rs`) reads only run directories.

pub mod side_by_side;
pub mod versions;

use crate::error::exit;
use crate::options::{RunOptions, ServerOptions, SummaryFormat};
use crate::printer::{self, BatchLine};
use crate::rehearsal::{self, Outcome};
use crate::scenario::Scenario;
use crate::signals::Signals;

use side_by_side::Column;

/// One way of rehearsing a scenario: a column of the side-by-side table.
#[derive(Debug, Clone, PartialEq)]
pub struct Variation {
    /// The column's heading ("15"); empty when a scenario has only one way.
    pub label: String,
    /// The server this variation is rehearsed on.
    pub server: ServerOptions,
}

/// A scenario and the ways it is rehearsed, in order.
pub struct Row<'a> {
    pub scenario: &'a Scenario,
    /// What varies between the variations ("versions"), which names the
    /// side-by-side files.
    pub axis: &'static str,
    pub variations: Vec<Variation>,
}

/// The batch as asked: without `--pg-version`, each scenario once, as the
/// command line says; with it, once per version, each version checked
/// against the machine first. Every problem of every scenario is reported
/// before anything runs.
pub async fn plan<'a>(scenarios: &'a [Scenario], opts: &RunOptions) -> crate::Result<Vec<Row<'a>>> {
    if opts.versions.is_empty() {
        let once = Variation {
            label: String::new(),
            server: opts.server.clone(),
        };
        return Ok(scenarios
            .iter()
            .map(|scenario| Row {
                scenario,
                axis: "runs",
                variations: vec![once.clone()],
            })
            .collect());
    }
    let available = crate::backend::available::Available::look().await;
    let mut rows = Vec::new();
    for scenario in scenarios {
        let variations = versions::variations(&opts.versions, &opts.server, scenario, &available)?;
        rows.push(Row {
            scenario,
            axis: "versions",
            variations,
        });
    }
    Ok(rows)
}

/// The ways `scenario` is rehearsed by a command that runs it several times
/// on one server per way (`sweep`, `compare`): once on the server the
/// command line says (label empty), or once per `--pg-version`, each checked
/// against the machine first (exit 3 naming what is missing and why).
pub async fn variations(scenario: &Scenario, opts: &RunOptions) -> crate::Result<Vec<Variation>> {
    let mut rows = plan(std::slice::from_ref(scenario), opts).await?;
    Ok(rows.remove(0).variations)
}

/// `pgrehearse run`: every cell in turn, each on a server of its own. A
/// failed cell does not stop the others; a signal stops the batch. Returns
/// the worst exit code (numerically the largest: 143 > 130 > 4 > 3 > 2 > 1
/// > 0). Errors are printed as they happen.
pub async fn rehearse_all(scenarios: &[Scenario], opts: &RunOptions) -> u8 {
    if opts.versions.is_empty() {
        // One way each: servers shared by the scenarios that can share one,
        // and each data set seeded once (`rehearsal` module docs).
        return rehearsal::rehearse_batch(scenarios, opts).await;
    }
    scenarios.iter().for_each(rehearsal::warn_edited);
    let signals = Signals::install();
    let rows = match plan(scenarios, opts).await {
        Ok(rows) => rows,
        Err(e) => {
            printer::error(&e, None);
            return e.exit_code();
        }
    };
    let mut code = exit::OK;
    let mut lines = Vec::new();
    for row in &rows {
        let columns = rehearse_row(row, opts, &signals, &mut lines).await;
        code = columns.iter().map(|c| c.exit_code).fold(code, u8::max);
        if columns.len() > 1 {
            if let Err(e) =
                side_by_side::publish(&opts.out, row.scenario, row.axis, &columns, opts.output)
            {
                printer::error(&e, None);
                code = code.max(e.exit_code());
            }
        }
    }
    if signals.received() {
        code = code.max(signals.error().exit_code());
    }
    if lines.len() > 1 {
        printer::batch(&lines, code);
    }
    code
}

/// Every variation of one scenario; a recap line per cell.
async fn rehearse_row(
    row: &Row<'_>,
    opts: &RunOptions,
    signals: &Signals,
    lines: &mut Vec<BatchLine>,
) -> Vec<Column> {
    let several = row.variations.len() > 1;
    let mut columns = Vec::new();
    for v in &row.variations {
        let name = match v.label.is_empty() {
            true => row.scenario.name.clone(),
            false => format!("{} @ {}", row.scenario.name, v.label),
        };
        if signals.received() {
            lines.push(BatchLine {
                scenario: name,
                code: None,
                outcome: format!("not run ({})", signals.name()),
                run_dir: None,
            });
            continue;
        }
        let mut cell = opts.clone();
        cell.server = v.server.clone();
        if several && opts.output.summary == SummaryFormat::Json {
            // The side-by-side JSON is printed instead, once.
            cell.output.summary = SummaryFormat::Nothing;
        }
        let outcome: Outcome = rehearsal::rehearse_one(row.scenario, &cell, signals).await;
        if let Err(e) = &outcome.result {
            printer::error(e, outcome.run_dir.as_deref());
        }
        lines.push(BatchLine {
            scenario: name,
            code: Some(outcome.exit_code()),
            outcome: outcome.describe(),
            run_dir: outcome.run_dir.clone(),
        });
        columns.push(Column {
            label: v.label.clone(),
            exit_code: outcome.exit_code(),
            outcome: outcome.describe(),
            run_dir: outcome.run_dir,
        });
    }
    columns
}
