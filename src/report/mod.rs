//! Reports from a run directory: summary.json (machine), summary.md (people,
//! also appended to $GITHUB_STEP_SUMMARY), index.html (one offline page) and
//! charts as SVG and PNG. Everything is rebuilt from run.json and the CSVs,
//! so `pgrehearse report RUN_DIR` needs nothing else.

pub mod charts;
mod format;
mod html;
mod markdown;
pub mod rerender;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analyze::{analyze_with, Analysis, AnalyzeOptions};
use crate::error::{exit, Error, Result};
use crate::record::RunRecord;

pub use format::text_summary;

pub const SUMMARY_JSON: &str = "summary.json";
pub const SUMMARY_MD: &str = "summary.md";
pub const INDEX_HTML: &str = "index.html";

/// How the percentiles over a span are obtained; shown in every report.
pub const PERCENTILE_NOTE: &str = "Percentiles over a span (a step, a phase, before/during/after) are reconstructed from the per-window p50/p95/p99/max in latency.csv: each window's distribution is taken as piecewise linear through those points, windows are merged weighted by their request counts, and the quantile is read off the merged distribution. Exact for one window; a merged p99 always lies between the smallest and largest window p99. Max is exact.";

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

/// summary.json: the verdict, every budget with limit / measured / step,
/// per-step facts, per-phase latency and errors, findings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// "pass" when every checked budget held, else "fail".
    pub verdict: String,
    /// Names of the breached budgets.
    pub breached: Vec<String>,
    #[serde(flatten)]
    pub analysis: Analysis,
    /// How the figures were computed, in words.
    pub notes: Vec<String>,
    /// Files of the run directory, relative to it.
    pub files: Vec<String>,
}

impl Summary {
    pub fn from_analysis(analysis: Analysis, files: Vec<String>) -> Summary {
        Summary {
            verdict: if analysis.passed() { "pass" } else { "fail" }.to_string(),
            breached: analysis.breached().map(|b| b.name.clone()).collect(),
            notes: {
                let mut n = vec![PERCENTILE_NOTE.to_string()];
                if analysis.run.lock_precision_ms > 0.0 {
                    n.push(format!(
                        "Lock grant and release times are known to ±{} ms (as measured: poll interval and clock offset).",
                        analysis.run.lock_precision_ms
                    ));
                }
                n
            },
            analysis,
            files,
        }
    }

    pub fn verdict_passed(&self) -> bool {
        self.breached.is_empty()
    }

    /// 0 when every budget held, 1 when one was breached.
    pub fn exit_code(&self) -> u8 {
        if self.verdict_passed() {
            exit::OK
        } else {
            exit::BUDGET_BREACHED
        }
    }

    /// One line for `-q`: "create-index-naive: FAIL — max_blocking_lock_ms
    /// 1199.2 ms > 500.0 ms (expand / create index); ...".
    pub fn verdict_line(&self) -> String {
        format::verdict_line(&self.analysis)
    }

    /// The plain-text summary printed at the end of a run.
    pub fn text(&self) -> String {
        text_summary(&self.analysis)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serializes") + "\n"
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
    let rec = crate::analyze::normalize(&RunRecord::read(dir)?);
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
    let md = markdown::render(&summary);
    std::fs::write(dir.join(SUMMARY_MD), &md)?;
    std::fs::write(dir.join(INDEX_HTML), html::render(&summary, dir))?;
    if let Some(path) = &opts.github_step_summary {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(md.as_bytes())?;
        f.write_all(b"\n")?;
    }
    Ok(summary)
}
