//! App errors of one class (schema incompatibility, lock timeout, ...) for
//! one app version, charged to the step that caused them.
//!
//! - **Reads** errors.csv by app version and SQLSTATE class, the phases of
//!   run.json, and the steps' spans and statements.
//! - **Fires when** an app version got errors of a class; the step blamed is
//!   the one running (or last started) at the first error, for a schema
//!   incompatibility the last step that changed a table's shape; critical for
//!   a schema incompatibility.
//! - **Advises** for a broken prepared statement (0A000 cached plan), named
//!   columns and re-prepare on error; for a schema incompatibility,
//!   expand/contract; otherwise the safe form of the blamed step's statement.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::patterns;
use super::rule::{distinct, Evidence, Rule};
use crate::analyze::apps::{blame_step, SCHEMA_INCOMPATIBILITY};
use crate::analyze::facts::{AppFacts, SqlstateCount, StepFacts};

pub const KIND: FindingKind = FindingKind::new("app_errors");

pub const RULE: Rule = Rule::run(KIND, check);

fn check(ev: &Evidence<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for app in ev.apps {
        let classes = distinct(app.errors_by_sqlstate.iter().map(|c| c.class.clone()));
        for class in classes {
            out.push(one_class(ev, app, &class));
        }
    }
    out
}

fn one_class(ev: &Evidence<'_>, app: &AppFacts, class: &str) -> Finding {
    let codes: Vec<&SqlstateCount> = app
        .errors_by_sqlstate
        .iter()
        .filter(|c| c.class == class)
        .collect();
    let n: u64 = codes.iter().map(|c| c.count).sum();
    let times: Vec<f64> = ev
        .rec
        .errors
        .iter()
        .filter(|e| e.app == app.app && codes.iter().any(|c| c.sqlstate == e.sqlstate))
        .map(|e| e.t_ms)
        .collect();
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // The step that was running, or had last started, when the first error
    // came: a lock timeout falls inside the step, a schema error right after
    // the step that changed the schema.
    let schema = class == SCHEMA_INCOMPATIBILITY;
    let failing: Vec<String> = codes.iter().flat_map(|c| c.queries.clone()).collect();
    let step = blame_step(ev.rec, ev.steps, first, schema.then_some(&failing[..]));
    let phase = ev
        .rec
        .info
        .iter()
        .flat_map(|i| i.phases.iter())
        .find(|p| first >= p.start_ms && first < p.end_ms)
        .map(|p| p.name.clone());
    let code_list = codes
        .iter()
        .map(|c| {
            format!(
                "{}× {} in {} (\"{}\")",
                c.count,
                c.sqlstate,
                c.queries.join(", "),
                c.example
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let when = step
        .map(|s| {
            if first <= s.end_ms {
                format!("; the first while {} ran", s.label())
            } else {
                format!(
                    "; the first {:.1} ms after {} finished",
                    first - s.end_ms,
                    s.label()
                )
            }
        })
        .unwrap_or_default();
    let severity = if schema {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let seen = format!(
        "app {} got {n} {class} error(s) between {first:.1} and {last:.1} ms: {code_list}{when}",
        app.app
    );
    let relation =
        step.and_then(|s| s.longest_blocking_lock.as_ref().map(|l| l.relation.clone()));
    Finding::new(
        KIND,
        severity,
        format!("App {}: {n} error(s), {class}", app.app),
        seen,
    )
    .at(
        step.map(|s| s.phase.clone()).or(phase),
        step.map(|s| s.step.clone()),
    )
    .on(relation)
    .instead(advice(&codes, schema, step))
}

fn advice(codes: &[&SqlstateCount], schema: bool, step: Option<&StepFacts>) -> SafePattern {
    if codes.iter().any(|c| c.sqlstate == "0A000") {
        return SafePattern {
            advice: "A schema change invalidated the app's prepared statements (\"cached plan must not change result type\"): a statement's result type changed under it — a SELECT * or RETURNING * when a column is added or dropped, or any statement that reads a column whose type changed. Name the columns the app reads instead of *; change a column's type by expand/contract (a new column, backfilled, the app switched to it, the old one dropped), not in place; and make the app (or its pool) re-prepare and retry on 0A000. Ship that app version before the migration.".into(),
            sql: "-- instead of\nSELECT * FROM t WHERE id = $1;\n-- name the columns it reads\nSELECT id, col_a, col_b FROM t WHERE id = $1;\n-- a column whose type changes: a new one beside it (expand/contract)\nALTER TABLE t ADD COLUMN col_b_new new_type;\n-- backfill in batches, switch the app to col_b_new, then:\nALTER TABLE t DROP COLUMN col_b;".into(),
        };
    }
    // A table the app reads no longer there (renamed, moved): a view under
    // the old name keeps the old app working until it is gone.
    if codes.iter().any(|c| c.sqlstate == "42P01") {
        return SafePattern {
            advice: "Expand/contract for a table: rename it and leave a view under the old name in the same transaction (a simple view is updatable: the old app's reads and writes go through), ship the app that uses the new name, and drop the view once no live version reads the old one.".into(),
            sql: "BEGIN;\nALTER TABLE old_name RENAME TO new_name;\nCREATE VIEW old_name AS SELECT * FROM new_name;\nCOMMIT;\n-- after the old app is gone:\nDROP VIEW old_name;".into(),
        };
    }
    if schema {
        return SafePattern {
            advice: "Expand/contract: every schema change must stay readable by every app version that is still live. Add new columns and tables first (expand), ship the app version that uses them, and drop or rename only once no live version reads the old names (contract). A rename is add + keep in sync + drop.".into(),
            sql: "-- expand (old and new app both work):\nALTER TABLE t ADD COLUMN new_name type;\n-- backfill, keep in sync with a trigger, deploy the new app\n-- contract (after the old app is gone):\nALTER TABLE t DROP COLUMN old_name;".into(),
        };
    }
    match step {
        Some(s) => {
            let rel = s
                .longest_blocking_lock
                .as_ref()
                .map(|l| l.relation.as_str())
                .unwrap_or("t");
            patterns::for_statement(s.sql.first().map(String::as_str).unwrap_or(""), rel)
        }
        None => patterns::lock_timeout("-- the migration statement"),
    }
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::testkit::{broken_prepared_statements, error, one_statement};
    use crate::analyze::{analyze, Severity};
    use crate::record::RunRecord;

    /// App v1 reads a column the step dropped: two 42703 errors.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = quiet();
        r.errors.push(error(1500.0, "v1", "42703"));
        r.errors.push(error(1600.0, "v1", "42703"));
        r
    }

    /// The same step, no app errors.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let sql = "ALTER TABLE orders DROP COLUMN note";
        one_statement("drop", sql, 1000.0, 1010.0)
    }

    #[test]
    fn a_schema_incompatibility_is_reported_per_app_version() {
        let a = analyze(&fires());
        let f: Vec<_> = a.findings.iter().filter(|f| f.kind == KIND).collect();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(
            f[0].title
                .contains("App v1: 2 error(s), schema incompatibility"),
            "{}",
            f[0].title
        );
        assert!(f[0].seen.contains("42703"), "{}", f[0].seen);
        assert_eq!(f[0].phase.as_deref(), Some("p"));
        assert!(f[0].safe_pattern.advice.contains("Expand/contract"));
    }

    /// A renamed table (42P01): a view under the old name, not column
    /// advice on a placeholder table (QA).
    #[test]
    fn a_table_gone_from_under_the_app_is_advised_a_view() {
        let mut r = one_statement("rename", "ALTER TABLE orders RENAME TO purchases", 1000.0, 1010.0);
        r.errors.push(error(1500.0, "v1", "42P01"));
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("errors");
        assert!(f.safe_pattern.sql.contains("CREATE VIEW old_name AS SELECT * FROM new_name"), "{}", f.safe_pattern.sql);
    }

    /// The column change, then a view the app never reads replaced just
    /// before the app's first error: the error is the column change's.
    #[test]
    fn a_schema_error_is_charged_to_the_step_that_changed_what_the_query_reads() {
        use crate::analyze::testkit::{lock, lock_on, stmt};
        use crate::record::QueryInfo;
        let mut r = fires();
        r.statements.push(stmt(
            "view",
            "CREATE OR REPLACE VIEW daily_totals AS SELECT 1 AS n",
            1400.0,
            1410.0,
        ));
        r.locks
            .push(lock("drop", "AccessExclusiveLock", 1000.0, 1000.0, 1010.0));
        r.locks.push(lock_on(
            "daily_totals",
            "view",
            "AccessExclusiveLock",
            1400.0,
            1410.0,
        ));
        let step_of = |r: &RunRecord| {
            analyze(r)
                .findings
                .into_iter()
                .find(|f| f.kind == KIND)
                .and_then(|f| f.step)
        };
        // Without the workload's SQL (a run.json from before it was
        // recorded): the last step that changed any shape.
        assert_eq!(step_of(&r).as_deref(), Some("view"));
        r.info.as_mut().unwrap().queries = vec![QueryInfo {
            name: "read_order".into(),
            sql: "SELECT id, note FROM Orders WHERE id = $1".into(),
        }];
        assert_eq!(step_of(&r).as_deref(), Some("drop"));
        // A query that reads the view is the view's.
        r.info.as_mut().unwrap().queries[0].sql = "SELECT n FROM public.daily_totals".into();
        assert_eq!(step_of(&r).as_deref(), Some("view"));
    }

    #[test]
    fn a_broken_prepared_select_star_is_charged_to_the_schema_change() {
        let a = analyze(&broken_prepared_statements());
        let of = |app: &str| {
            a.findings
                .iter()
                .find(|f| f.kind == KIND && f.title.contains(app))
                .expect(app)
        };
        // v2's first error falls in the later ANALYZE step.
        assert_eq!(of("v2").step.as_deref(), Some("col"));
        let f = of("v1");
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.title.contains("schema incompatibility"), "{}", f.title);
        // Charged to the step that changed the schema, not where most
        // errors fell.
        assert_eq!(f.step.as_deref(), Some("col"));
        let when = "the first 10.0 ms after p / col finished";
        assert!(f.seen.contains(when), "{}", f.seen);
        let advice = &f.safe_pattern.advice;
        assert!(advice.contains("re-prepare"), "{advice}");
    }
}
