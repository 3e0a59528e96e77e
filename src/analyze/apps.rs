//! The app's side of a run: per app version its traffic and its errors by
//! SQLSTATE, what an error code means for a migration, and which step to
//! blame for errors that began at a given moment.

use std::collections::BTreeMap;

use super::facts::{AppFacts, SqlstateCount, StepFacts};
use super::latency;
use crate::record::RunRecord;

/// Per app version: its latency over `[start, end)` (an open end:
/// `f64::INFINITY`), and errors.csv rows within it grouped by SQLSTATE —
/// the rows whose request was *due* in it, as the latency figures' errors
/// count them, so a table's errors and their SQLSTATEs are the same
/// requests (by completion, an error due at a span's end and answered
/// just after it went to the next span's breakdown).
pub(crate) fn app_facts(rec: &RunRecord, start: f64, end: f64) -> Vec<AppFacts> {
    let in_span = |t: f64| t >= start && t < end;
    let mut apps: Vec<String> = Vec::new();
    for a in rec
        .histograms
        .segments
        .iter()
        .filter(|e| latency::in_span(e, start, end))
        .map(|e| &e.app)
        .chain(
            rec.errors
                .iter()
                .filter(|e| in_span(e.due()))
                .map(|e| &e.app),
        )
    {
        if !apps.contains(a) {
            apps.push(a.clone());
        }
    }
    apps.iter()
        .map(|app| AppFacts {
            app: app.clone(),
            latency: latency::facts(rec, start, end, Some(app)),
            errors_by_sqlstate: errors_by_sqlstate(rec, app, &in_span),
        })
        .collect()
}

/// errors.csv rows of `app` due in the span, grouped by SQLSTATE, most
/// frequent first.
fn errors_by_sqlstate(
    rec: &RunRecord,
    app: &str,
    in_span: &dyn Fn(f64) -> bool,
) -> Vec<SqlstateCount> {
    let mut by: BTreeMap<String, SqlstateCount> = BTreeMap::new();
    for e in rec
        .errors
        .iter()
        .filter(|e| e.app == app && in_span(e.due()))
    {
        let c = by
            .entry(e.sqlstate.clone())
            .or_insert_with(|| SqlstateCount {
                sqlstate: e.sqlstate.clone(),
                class: error_class(&e.sqlstate, &e.message).to_string(),
                count: 0,
                queries: Vec::new(),
                example: e.message.clone(),
            });
        c.count += 1;
        if !c.queries.contains(&e.query) {
            c.queries.push(e.query.clone());
        }
    }
    let mut v: Vec<SqlstateCount> = by.into_values().collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.sqlstate.cmp(&b.sqlstate)));
    v
}

/// The step to blame for app errors whose first one came at `first_ms`: the
/// step running, or last started, then. For a schema incompatibility of
/// `queries` (errors.csv's names) the last step before it that changed the
/// shape of a relation those queries read (run.json `queries` holds their
/// SQL; the relations a step changed are those it held in ACCESS EXCLUSIVE,
/// which every change of a table's or view's shape takes), else the last
/// step that changed the shape of any table or view (an ANALYZE or an index
/// build cannot break a query's columns; a view the app never reads cannot
/// break it either).
pub(crate) fn blame_step<'a>(
    rec: &RunRecord,
    steps: &'a [StepFacts],
    first_ms: f64,
    schema: Option<&[String]>,
) -> Option<&'a StepFacts> {
    let latest = |pred: &dyn Fn(&StepFacts) -> bool| {
        steps
            .iter()
            .filter(|s| s.start_ms <= first_ms && pred(s))
            .max_by(|x, y| x.start_ms.total_cmp(&y.start_ms))
    };
    if let Some(queries) = schema {
        let shape = |s: &StepFacts| s.sql.iter().any(|q| changes_shape(q));
        let sql: Vec<&str> = rec
            .info
            .iter()
            .flat_map(|i| i.queries.iter())
            .filter(|q| queries.contains(&q.name))
            .map(|q| q.sql.as_str())
            .collect();
        let reads_what_it_changed = |s: &StepFacts| {
            rec.locks.iter().any(|l| {
                l.phase == s.phase
                    && l.step == s.step
                    && l.mode == "AccessExclusiveLock"
                    && sql.iter().any(|q| mentions(q, &l.relation))
            })
        };
        if let Some(s) = latest(&|s| shape(s) && reads_what_it_changed(s)) {
            return Some(s);
        }
        if let Some(s) = latest(&shape) {
            return Some(s);
        }
    }
    latest(&|_| true)
}

/// Does `sql` name `relation` (as locks.csv names it: maybe schema-qualified,
/// quoted, marked `(new)` or `(dropped)`) as a whole identifier, in any case?
fn mentions(sql: &str, relation: &str) -> bool {
    let bare = relation.split(" (").next().unwrap_or(relation);
    let name = bare.rsplit('.').next().unwrap_or(bare).trim_matches('"');
    if name.is_empty() {
        return false;
    }
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    sql.split(|c: char| !ident(c))
        .any(|word| word.eq_ignore_ascii_case(name))
}

/// Does the statement change what queries see (columns, tables, views, types)?
fn changes_shape(sql: &str) -> bool {
    let up: String = sql
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let alter_table = up.starts_with("ALTER TABLE")
        && [
            "ADD COLUMN",
            "DROP COLUMN",
            "RENAME",
            "TYPE",
            "ADD ",
            "DROP ",
        ]
        .iter()
        .any(|k| up.contains(k))
        && !up.contains("VALIDATE CONSTRAINT");
    alter_table
        || [
            "DROP TABLE",
            "DROP VIEW",
            "ALTER VIEW",
            "CREATE OR REPLACE VIEW",
            "DROP TYPE",
            "ALTER TYPE",
            "DROP FUNCTION",
            "CREATE OR REPLACE FUNCTION",
        ]
        .iter()
        .any(|k| up.starts_with(k))
}

/// The class of app errors that break an app version rather than slow it.
pub const SCHEMA_INCOMPATIBILITY: &str = "schema incompatibility";

/// What an app error means for a migration, from its SQLSTATE and message:
/// "cached plan must not change result type" (0A000) is a prepared
/// statement broken by a schema change, so a schema incompatibility.
pub fn error_class(code: &str, message: &str) -> &'static str {
    if code == "0A000" && message.contains("cached plan") {
        return SCHEMA_INCOMPATIBILITY;
    }
    sqlstate_class(code)
}

/// What an app error's SQLSTATE means for a migration.
pub fn sqlstate_class(code: &str) -> &'static str {
    match code {
        "42703" | "42P01" | "42883" | "42704" | "42P10" | "42804" => SCHEMA_INCOMPATIBILITY,
        "55P03" => "lock timeout",
        "57014" => "statement timeout",
        "40P01" => "deadlock",
        "40001" => "serialization failure",
        "23505" | "23503" | "23502" | "23514" => "constraint violation",
        "08006" | "08003" | "57P01" => "connection lost",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_prepared_statement_is_a_schema_incompatibility() {
        assert_eq!(
            error_class("0A000", "cached plan must not change result type"),
            SCHEMA_INCOMPATIBILITY
        );
        assert_eq!(error_class("0A000", "feature not supported"), "other");
        assert_eq!(
            error_class("42703", "column does not exist"),
            SCHEMA_INCOMPATIBILITY
        );
    }

    #[test]
    fn only_shape_changes_break_queries() {
        assert!(changes_shape("ALTER TABLE orders RENAME COLUMN a TO b"));
        assert!(changes_shape("alter  table orders\n add column x int"));
        assert!(!changes_shape("ALTER TABLE orders VALIDATE CONSTRAINT c"));
        assert!(!changes_shape("CREATE INDEX i ON orders (c)"));
        assert!(!changes_shape("ANALYZE orders"));
    }
}
