//! Reports from a run directory: summary.json (machine), summary.md (people,
//! also appended to $GITHUB_STEP_SUMMARY), index.html (one offline page) and
//! charts as SVG and PNG. Everything is rebuilt from run.json and the CSVs,
//! so `pgrehearse report RUN_DIR` needs nothing else.

//!
//! Each report is built once as a [`view::Document`] (`run_view` for a
//! run's summary) and formatted by `markdown` and `html`, which know
//! nothing of runs.

pub mod charts;
pub(crate) mod format;
pub(crate) mod html;
pub(crate) mod markdown;
pub mod rerender;
mod run_view;
mod summary;
mod text;
pub mod view;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analyze::{analyze_with, AnalyzeOptions};
use crate::error::{Error, Result};
use crate::record::RunRecord;

pub use summary::{Summary, PERCENTILE_NOTE, THROUGHPUT_NOTE};
pub(crate) use text::plural;
pub use text::text_summary;

pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_MD: &str = "summary.md";
pub const INDEX_HTML: &str = "index.html";

#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// `--budget key=value` overrides and finding thresholds.
    pub analyze: AnalyzeOptions,
    /// Draw the charts (SVG + PNG). Off is only useful for fast tests.
    pub charts: bool,
    /// Append summary.md here (GitHub Actions' step summary). The default
    /// takes it from $GITHUB_STEP_SUMMARY.
    pub github_step_summary: Option<PathBuf>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            analyze: AnalyzeOptions::default(),
            charts: true,
            github_step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

impl RenderOptions {
    /// Defaults (charts on, $GITHUB_STEP_SUMMARY honoured) with `--budget`
    /// overrides from [`crate::analyze::parse_budget_override`].
    pub fn with_budgets(budgets: Vec<(String, f64)>) -> RenderOptions {
        let mut o = RenderOptions::default();
        o.analyze.budget_overrides = budgets;
        o
    }
}

/// Read the run directory, analyze it and write summary.json, summary.md,
/// index.html and the charts into it. Appends summary.md to the GitHub step
/// summary when one is configured.
pub fn render(dir: &Path, opts: &RenderOptions) -> Result<Summary> {
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a run directory",
            dir.display()
        )));
    }
    // A file of it that does not parse (truncated, edited by hand) is a bad
    // directory handed to us (exit 2), named with its line by the reader.
    let read = RunRecord::read(dir).map_err(|e| {
        Error::Usage(format!(
            "{}: not a readable run directory: {e}",
            dir.display()
        ))
    })?;
    let rec = crate::analyze::normalize(&read);
    if rec.info.is_none() && rec.statements.is_empty() && rec.latency.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no run.json and no CSVs: not a run directory",
            dir.display()
        )));
    }
    let analysis = analyze_with(&rec, &opts.analyze).map_err(Error::Usage)?;
    if opts.charts {
        charts::write_all(dir, &rec, &analysis)?;
    }
    // Listed before writing so the summary names itself and its siblings.
    let mut files: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for f in [SUMMARY_JSON, SUMMARY_MD, INDEX_HTML] {
        if !files.iter().any(|x| x == f) {
            files.push(f.to_string());
        }
    }
    files.sort();
    let summary = Summary::from_analysis(analysis, files);

    std::fs::write(dir.join(SUMMARY_JSON), summary.to_json())?;
    let doc = run_view::document(&summary);
    let md = markdown::render(&doc);
    std::fs::write(dir.join(SUMMARY_MD), &md)?;
    std::fs::write(dir.join(INDEX_HTML), html::render(&doc))?;
    if let Some(path) = &opts.github_step_summary {
        append_step_summary(path, &md)?;
    }
    Ok(summary)
}

/// Append `md` to GitHub Actions' step summary file at `path`.
pub fn append_step_summary(path: &Path, md: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(md.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}
