//! What a finding is: what was seen (with the numbers), where (phase / step
//! / relation), how bad, and the safe pattern to use instead. Shared by the
//! rules that make findings and the patterns that advise.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// Which rule made a finding: the name of the rule's file
/// (`blocking_lock`, `lock_queue`, ...), as summary.json spells it. The
/// registry in `findings/mod.rs` lists every kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FindingKind(Cow<'static, str>);

impl FindingKind {
    pub const fn new(name: &'static str) -> FindingKind {
        FindingKind(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SafePattern {
    pub advice: String,
    pub sql: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub title: String,
    /// What was measured, with numbers.
    pub seen: String,
    pub phase: Option<String>,
    pub step: Option<String>,
    pub relation: Option<String>,
    pub safe_pattern: SafePattern,
}

impl Finding {
    /// A finding of the whole run; place it with [`Finding::at`] and
    /// [`Finding::on`], advise with [`Finding::instead`].
    pub fn new(
        kind: FindingKind,
        severity: Severity,
        title: impl Into<String>,
        seen: impl Into<String>,
    ) -> Finding {
        Finding {
            kind,
            severity,
            title: title.into(),
            seen: seen.into(),
            phase: None,
            step: None,
            relation: None,
            safe_pattern: SafePattern::default(),
        }
    }

    /// In this phase and step (either may be unknown).
    pub fn at(mut self, phase: Option<String>, step: Option<String>) -> Finding {
        self.phase = phase;
        self.step = step;
        self
    }

    /// On this relation.
    pub fn on(mut self, relation: Option<String>) -> Finding {
        self.relation = relation;
        self
    }

    /// With this advice.
    pub fn instead(mut self, pattern: SafePattern) -> Finding {
        self.safe_pattern = pattern;
        self
    }

    /// "phase / step on relation", or what of it is known.
    pub fn location(&self) -> String {
        let mut s = match (&self.phase, &self.step) {
            (Some(p), Some(st)) => format!("{p} / {st}"),
            (Some(p), None) => p.clone(),
            (None, Some(st)) => st.clone(),
            (None, None) => "run".into(),
        };
        if let Some(r) = &self.relation {
            s.push_str(&format!(" on {r}"));
        }
        s
    }
}

/// When measured evidence becomes a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// A blocking lock held longer than this (ms) is a finding.
    pub blocking_lock_ms: f64,
    /// A step that wrote at least this much WAL (bytes) is a finding.
    pub wal_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            blocking_lock_ms: 100.0,
            wal_bytes: 16 * 1024 * 1024,
        }
    }
}

/// 25165824 → "24.0 MiB".
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
