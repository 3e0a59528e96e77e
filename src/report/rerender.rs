//! `pgrehearse report RUN_DIR`: render every report of a run directory again
//! from its CSVs and run.json (after an upgrade, or with other budgets).

use std::path::Path;

use crate::error::{Error, Result};
use crate::options::SummaryFormat;
use crate::record::RUN_JSON;

/// Re-render `run_dir` (into `out` when given) and print its summary; the
/// exit code is the verdict's (0 pass, 1 a budget breached).
///
/// With `budgets` (`--budget`) it is a what-if, and the run directory's
/// reports — a CI job's artifact, judged by run.json's budget — are not
/// replaced: without `out` nothing is written, the verdict is printed
/// (and returned); with `out` the reports go there, and every verdict in
/// them says which limits were overridden and what the run's were.
pub fn rerender(
    run_dir: &Path,
    format: SummaryFormat,
    budgets: &[(String, f64)],
    out: Option<&Path>,
) -> Result<u8> {
    if !run_dir.exists() {
        return Err(Error::Usage(format!(
            "{}: no such directory",
            run_dir.display()
        )));
    }
    if !run_dir.join(RUN_JSON).exists() {
        return Err(Error::Usage(format!(
            "{}: not a run directory (no {RUN_JSON})",
            run_dir.display(),
        )));
    }
    refuse_lag_budget_without_replica(run_dir, budgets)?;
    let mut opts = super::RenderOptions::with_budgets(budgets.to_vec());
    opts.out = out.map(Path::to_path_buf);
    if budgets.is_empty() || out.is_some() {
        let summary = super::render(run_dir, &opts)?;
        crate::printer::summary(format, out.unwrap_or(run_dir), &summary)?;
        return Ok(summary.exit_code());
    }
    let summary = super::judge(run_dir, &opts)?;
    match format {
        SummaryFormat::Text => crate::printer::stdout(&format!(
            "{}report: not written (a what-if --budget leaves {} as the run judged it; --out DIR writes this one)\n",
            summary.text(),
            run_dir.join(super::INDEX_HTML).display()
        ))?,
        _ => crate::printer::summary(format, run_dir, &summary)?,
    }
    Ok(summary.exit_code())
}

/// `--budget max_replica_lag_ms` on a run of a server of ours that had no
/// replica could only fail: refused, exit 2, as `run` refuses it. (A url
/// server may have replicas of its own, which server.csv samples.)
fn refuse_lag_budget_without_replica(run_dir: &Path, budgets: &[(String, f64)]) -> Result<()> {
    if !budgets.iter().any(|(k, _)| k == "max_replica_lag_ms") {
        return Ok(());
    }
    let info: serde_json::Value = std::fs::read_to_string(run_dir.join(RUN_JSON))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let ours = info["backend"].as_str().is_some_and(|b| b != "url");
    if ours && info["replica"].is_null() {
        return Err(Error::Usage(format!(
            "--budget max_replica_lag_ms: {} had no replica to measure its lag on",
            run_dir.display()
        )));
    }
    Ok(())
}
