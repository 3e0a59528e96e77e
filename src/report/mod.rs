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
pub use text::{text_summary, verdict_line};

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
    /// Write the reports here (created) rather than into the run
    /// directory (`report --out`).
    pub out: Option<PathBuf>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            analyze: AnalyzeOptions::default(),
            charts: true,
            github_step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            out: None,
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
/// index.html and the charts into it (into `opts.out` when set). Appends
/// summary.md to the GitHub step summary when one is configured.
pub fn render(dir: &Path, opts: &RenderOptions) -> Result<Summary> {
    let (rec, analysis) = read_and_analyze(dir, opts)?;
    let target = opts.out.as_deref().unwrap_or(dir);
    std::fs::create_dir_all(target)
        .map_err(|e| Error::Usage(format!("--out {}: cannot create it: {e}", target.display())))?;
    if opts.charts {
        charts::write_all(target, &rec, &analysis)?;
    }
    // Listed before writing so the summary names itself and its siblings.
    let summary = Summary::from_analysis(analysis, listing(target)?);

    std::fs::write(target.join(SUMMARY_JSON), summary.to_json())?;
    let doc = run_view::document(&summary);
    let md = markdown::render(&doc);
    std::fs::write(target.join(SUMMARY_MD), &md)?;
    std::fs::write(target.join(INDEX_HTML), html::render(&doc))?;
    if let Some(path) = &opts.github_step_summary {
        append_step_summary(path, &md)?;
    }
    Ok(summary)
}

/// The run directory's summary without writing a file: what `report
/// --budget` prints when it leaves the run's reports as they are.
pub fn judge(dir: &Path, opts: &RenderOptions) -> Result<Summary> {
    let (_, analysis) = read_and_analyze(dir, opts)?;
    Ok(Summary::from_analysis(analysis, listing(dir)?))
}

/// The files of `dir` and the summaries written beside them, sorted.
fn listing(dir: &Path) -> Result<Vec<String>> {
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
    Ok(files)
}

/// Read, check and analyze a run directory.
fn read_and_analyze(
    dir: &Path,
    opts: &RenderOptions,
) -> Result<(RunRecord, crate::analyze::Analysis)> {
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
    Ok((rec, analysis))
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
