//! `pgrehearse report RUN_DIR`: render every report of a run directory again
//! from its CSVs and run.json (after an upgrade, or with other budgets).

use std::path::Path;

use crate::error::{Error, Result};
use crate::options::SummaryFormat;
use crate::record::RUN_JSON;

/// Re-render `run_dir` with `budgets` overrides and print its summary; the
/// exit code is the verdict's (0 pass, 1 a budget breached).
pub fn rerender(run_dir: &Path, format: SummaryFormat, budgets: &[(String, f64)]) -> Result<u8> {
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
    let summary = super::render(
        run_dir,
        &super::RenderOptions::with_budgets(budgets.to_vec()),
    )?;
    crate::printer::summary(format, run_dir, &summary)?;
    Ok(summary.exit_code())
}
