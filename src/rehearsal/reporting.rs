//! Stage 5, report: render every report of the run directory
//! (`crate::report`), print the summary, and decide the rehearsal's exit.

use super::recording::Recorded;
use crate::error::{Error, Result};
use crate::options::RunOptions;
use crate::signals::Signals;

/// Render and print; Ok carries the verdict's exit code (0 pass, 1 a budget
/// breached), a rehearsal that stopped early is an error.
pub fn report(rec: &Recorded, opts: &RunOptions, signals: &Signals) -> Result<u8> {
    let summary = crate::report::render(
        &rec.dir,
        &crate::report::RenderOptions::with_budgets(opts.budgets.clone()),
    )
    .map_err(|e| Error::Rehearsal {
        message: format!("the report could not be rendered: {e}"),
        report_dir: Some(rec.dir.clone()),
    })?;
    crate::printer::summary(opts.output.summary, &rec.dir, &summary)?;
    if rec.interrupted {
        return Err(signals.error());
    }
    if let Some(f) = &rec.failure {
        return Err(Error::Rehearsal {
            message: f.clone(),
            report_dir: Some(rec.dir.clone()),
        });
    }
    Ok(summary.exit_code())
}
