//! What pgrehearse prints for people and scripts: a rehearsal's summary on
//! stdout (text, a verdict line or summary.json), errors on stderr, and the
//! recap of a batch (`run a.toml b.toml`). Logs for `-v` go through
//! `tracing` instead.

use std::path::{Path, PathBuf};

/// `eprintln!` that cannot panic: with stderr closed (`pgrehearse run ...
/// 2>&1 | head -1`), `eprintln!` panics on the broken pipe, and a rehearsal
/// stopped there leaves its scratch database or cluster behind (QA: exit
/// 101). What it says is lost then; the run goes on to its teardown.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use crate::error::{Error, Result};
use crate::options::SummaryFormat;
use crate::report::Summary;

/// The summary of one run directory on stdout.
pub fn summary(format: SummaryFormat, run_dir: &Path, summary: &Summary) -> Result<()> {
    let text = match format {
        SummaryFormat::Json => {
            serde_json::to_string_pretty(summary).map_err(anyhow::Error::new)? + "\n"
        }
        SummaryFormat::Verdict => summary.verdict_line() + "\n",
        SummaryFormat::Nothing => String::new(),
        SummaryFormat::Text => format!(
            "{}\nreport: {}\n",
            summary.text(),
            run_dir.join(crate::report::INDEX_HTML).display()
        ),
    };
    stdout(&text)
}

/// Write to stdout. A reader that went away (`pgrehearse report DIR | head`)
/// is not an error: the run itself is done and its files are written.
pub fn stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// An error on stderr, and where its partial report is when one was written.
pub fn error(e: &Error, run_dir: Option<&Path>) {
    crate::say!("pgrehearse: {e}");
    let dir = match e {
        Error::Rehearsal {
            report_dir: Some(d),
            ..
        } => Some(d.as_path()),
        _ => run_dir,
    };
    if let Some(d) = dir {
        crate::say!("pgrehearse: partial report in {}", d.display());
    }
}

/// How one scenario of a batch ended.
#[derive(Debug)]
pub struct BatchLine {
    pub scenario: String,
    /// `None` when the scenario was not rehearsed (a signal stopped the batch).
    pub code: Option<u8>,
    /// "pass", "budget breached", the error, or "not run".
    pub outcome: String,
    pub run_dir: Option<PathBuf>,
}

/// The recap of a batch on stderr: one line per rehearsal (a scenario, or
/// a scenario on one of several versions), and the exit code.
pub fn batch(lines: &[BatchLine], code: u8) {
    let width = lines.iter().map(|l| l.scenario.len()).max().unwrap_or(0);
    let n = lines.len();
    crate::say!(
        "pgrehearse: {n} rehearsal{}, exit code {code} (the worst of them)",
        if n == 1 { "" } else { "s" }
    );
    for l in lines {
        let code = l
            .code
            .map(|c| format!("exit {c:<3}"))
            .unwrap_or_else(|| "-       ".into());
        let dir = l
            .run_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "(no run directory)".into());
        // The error may span lines (scenario problems): its first says enough.
        let outcome = l.outcome.lines().next().unwrap_or_default();
        crate::say!("  {:<width$}  {code}  {dir}  {outcome}", l.scenario);
    }
}
