//! Findings from measured evidence, not static rules: each says what was
//! seen (with the numbers), where (phase / step / relation), and the safe
//! pattern to use instead.
//!
//! One kind of finding, one file: the file says in its first lines what it
//! reads, when it fires and what it advises, declares its `KIND` and `RULE`,
//! holds the check, and in `mod examples` pairs a record it fires on
//! (`fires()`) with one it must not fire on (`quiet()`), as eugene pairs
//! bad.sql with good.sql. Adding a finding is a new file here and one line
//! in the registry below; a test runs every registered rule on both of its
//! examples.

mod access_exclusive;
mod finding;
pub mod patterns;
mod rule;

pub use finding::{fmt_bytes, Finding, FindingKind, SafePattern, Severity, Thresholds};
pub use rule::Rule;

use rule::{Check, Evidence, StepEvidence};

use super::facts::{AppFacts, StepFacts};
use crate::record::RunRecord;

/// Declares each rule's module and lists its `RULE` in [`RULES`].
macro_rules! registry {
    ($($rule:ident),* $(,)?) => {
        $(pub mod $rule;)*
        /// Every finding rule. Within a severity, findings are listed step
        /// by step in the order the steps ran, and within a step in this
        /// order; the run-wide rules come last.
        pub const RULES: &[&Rule] = &[$(&$rule::RULE),*];
        /// Each rule's examples: (kind, a record it fires on, one it must
        /// not fire on). A rule without `mod examples` does not compile.
        #[cfg(test)]
        pub(crate) const EXAMPLES: &[(FindingKind, fn() -> RunRecord, fn() -> RunRecord)] =
            &[$(($rule::KIND, $rule::examples::fires, $rule::examples::quiet)),*];
    };
}

registry! {
    blocking_lock,
    rewrite_under_access_exclusive,
    scan_under_access_exclusive,
    lock_queue,
    row_lock_waits,
    pool_exhausted,
    no_lock_timeout,
    wal_volume,
    app_errors,
    invalid_index,
    unattached_index,
    overloaded_baseline,
    edited_migration,
}

/// Run every rule over the analysed run; most severe first.
pub(crate) fn find(
    rec: &RunRecord,
    steps: &[StepFacts],
    apps: &[AppFacts],
    wait_steps: &[Option<usize>],
    th: &Thresholds,
) -> Vec<Finding> {
    let ev = Evidence {
        rec,
        steps,
        apps,
        wait_steps,
        th,
    };
    let mut out: Vec<Finding> = Vec::new();
    for idx in 0..steps.len() {
        let st = StepEvidence::of(&ev, idx);
        for rule in RULES {
            if let Check::Step(check) = rule.check {
                out.extend(check(&st, &ev));
            }
        }
    }
    for rule in RULES {
        if let Check::Run(check) = rule.check {
            out.extend(check(&ev));
        }
    }
    // The batches go by the table's key where the run read it; a table the
    // run read without a one-column key gets a placeholder, not `id`.
    if let Some(keys) = rec.info.as_ref().map(|i| &i.primary_keys) {
        for f in out.iter_mut().filter(|_| !keys.is_empty()) {
            let Some(rel) = f.relation.as_deref() else {
                continue;
            };
            let key = keys
                .get(crate::locks::unmarked(rel))
                .map_or("key_col", String::as_str);
            f.safe_pattern.sql = patterns::batched_by(&f.safe_pattern.sql, key);
        }
    }
    // ATTACH PARTITION's CHECK names the parent's partition key where the
    // run read it.
    if let Some(info) = rec.info.as_ref().filter(|i| !i.partition_keys.is_empty()) {
        let known = patterns::Partitioning {
            keys: &info.partition_keys,
            defaults: &info.default_partitions,
        };
        for f in out.iter_mut() {
            patterns::with_partitioning(&mut f.safe_pattern, known);
        }
    }
    // Most severe first; within a severity, in the order found (stable).
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}
