//! summary.json: the analysis with its verdict, how the figures were
//! computed, and the files of the run directory.

use serde::{Deserialize, Serialize};

use super::text::{text_summary, verdict_line};
use crate::analyze::Analysis;
use crate::error::exit;

/// How the percentiles over a span are obtained; shown in every report.
pub const PERCENTILE_NOTE: &str = "Percentiles over a span (a step, a phase, before/during/after) are reconstructed from the per-window p50/p95/p99/max in latency.csv: each window's distribution is taken as piecewise linear through those points, windows are merged weighted by their request counts, and the quantile is read off the merged distribution. Exact for one window; a merged p99 always lies between the smallest and largest window p99. Max is exact.";

/// What the throughput and latency columns count; shown in every report.
pub const THROUGHPUT_NOTE: &str = "Throughput counts successful requests only (ok/s); failed requests are counted apart (errors, errors/s). The requests column counts both. Latency percentiles are over every completed request, failed ones included, as latency.csv records them.";

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
                let mut n = vec![PERCENTILE_NOTE.to_string(), THROUGHPUT_NOTE.to_string()];
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
        verdict_line(&self.analysis)
    }

    /// The plain-text summary printed at the end of a run.
    pub fn text(&self) -> String {
        text_summary(&self.analysis)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serializes") + "\n"
    }
}
