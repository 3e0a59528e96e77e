//! summary.json: the analysis with its verdict, how the figures were
//! computed, and the files of the run directory.

use serde::{Deserialize, Serialize};

use super::text::{text_summary, verdict_line};
use crate::analyze::Analysis;
use crate::error::exit;

/// What a span's figures count; shown in every report.
pub const PERCENTILE_NOTE: &str = "A span's latency figures (requests, p50, p99, max, errors) are over the requests due in it (intended start; closed loop: when sent), so one that waited behind a step's lock counts in the step though it was answered after the COMMIT; its rates (ok/s, errors/s) count the requests that completed in it. Spans start and end where the migration marked them (run.json's phases and steps: a step from before its BEGIN until its COMMIT returned; during = first step start to last step end), and their figures are exact merges of latency.hdr's histograms (HdrHistogram, 3 significant digits). Recovery: how long after a step ended until the windowed p99 of every app query (scripts left out) was back within 1.5× the p99 before (at least 10 ms above it: less is noise), for 3 windows in a row.";

/// What the throughput and latency columns count; shown in every report.
pub const THROUGHPUT_NOTE: &str = "Throughput counts successful requests only (ok/s); failed requests are counted apart (errors, errors/s). The requests column counts both. Latency percentiles are over every completed request, failed ones included, as latency.csv records them.";

/// summary.json: the verdict, every budget with limit / measured / step,
/// per-step facts, per-phase latency and errors, findings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// "incomplete" when the rehearsal did not finish (run.json's
    /// `failure`: its budgets are over the part that ran, and a limit that
    /// held there says nothing of the rest); else "pass" when every checked
    /// budget held, "fail" when one was breached.
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

/// Requests a hard stop cut off, over the whole run (before, during and
/// after partition it).
pub fn unfinished(a: &Analysis) -> u64 {
    a.before.unfinished + a.during.unfinished + a.after.unfinished
}

/// What the figures make of requests a hard stop cut off, if it cut any.
fn unfinished_note(a: &Analysis) -> Option<String> {
    let n = unfinished(a);
    (n > 0).then(|| {
        format!(
            "Besides the completed requests, {n} app request(s) were unfinished ({} due during the migration): still in flight, or due and not yet sent, when the run was stopped (interrupted, or the traffic cancelled after the drain wait). They count in the latency figures of the span they were due in with their age at the stop, a lower bound of what they would have taken, and in no rate.",
            a.during.unfinished
        )
    })
}

impl Summary {
    pub fn from_analysis(analysis: Analysis, files: Vec<String>) -> Summary {
        Summary {
            verdict: if analysis.run.failure.is_some() {
                "incomplete"
            } else if analysis.passed() {
                "pass"
            } else {
                "fail"
            }
            .to_string(),
            breached: analysis.breached().map(|b| b.name.clone()).collect(),
            notes: {
                let mut n = vec![PERCENTILE_NOTE.to_string(), THROUGHPUT_NOTE.to_string()];
                if let Some(note) = unfinished_note(&analysis) {
                    n.push(note);
                }
                if analysis.run.lock_precision_ms > 0.0 {
                    n.push(format!(
                        "The server's clock maps onto the run's to ±{} ms (measured); lock grants and releases are placed from it to within about 2 ms (README, Precision of lock holds), or half the poll interval for a lock a long statement outside a transaction changed mid-way (locks.csv source poll).",
                        analysis.run.lock_precision_ms
                    ));
                }
                n
            },
            analysis,
            files,
        }
    }

    /// The rehearsal finished and every budget held.
    pub fn verdict_passed(&self) -> bool {
        self.breached.is_empty() && self.analysis.run.failure.is_none()
    }

    /// 0 when every budget held, 1 when one was breached; for a rehearsal
    /// that did not finish, the code it ended with: 130/143 interrupted, 4
    /// failed (so `pgrehearse report` of its directory gates as it did).
    pub fn exit_code(&self) -> u8 {
        match &self.analysis.run.failure {
            Some(f) => failure_exit_code(f),
            None if self.verdict_passed() => exit::OK,
            None => exit::BUDGET_BREACHED,
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

/// The exit code of a rehearsal that stopped with `failure` (run.json):
/// an interruption names its signal (`interrupted by SIGINT ...`), or the
/// library caller's stop, which counts as a SIGINT.
pub fn failure_exit_code(failure: &str) -> u8 {
    if failure.starts_with("interrupted by SIGINT")
        || failure.starts_with("interrupted by the caller's stop")
    {
        exit::SIGINT
    } else if failure.starts_with("interrupted by SIGTERM") {
        exit::SIGTERM
    } else {
        exit::REHEARSAL_FAILED
    }
}
