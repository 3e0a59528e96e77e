//! Validating `[[phase]]` and `[[phase.step]]`: live apps, sql or backfill,
//! transaction mode, timeouts, retries and expected errors.

use std::time::Duration;

use super::diag::{app_list, item_name, sql_list, Diags, Names};
use super::model::{self, S};
use super::{BackfillPlan, PhasePlan, StepAction, StepPlan};
use crate::sql;

pub(super) fn phases(
    d: &mut Diags,
    ps: &[S<model::PhaseSection>],
    all_apps: &[String],
) -> Vec<PhasePlan> {
    if ps.is_empty() {
        d.err(
            0..0,
            "phase",
            "no phases; expected at least one [[phase]] with [[phase.step]] entries",
        );
    }
    let mut names = Names::new("phase");
    let mut out = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let pp = p.get_ref();
        let name = item_name(
            d,
            &pp.name,
            p.span(),
            &format!("phase[{i}].name"),
            &mut names,
        );
        let apps = match &pp.apps {
            None => all_apps.to_vec(),
            Some(v) => {
                let list = app_list(d, v, &format!("phase[{i}].apps"));
                for (k, a) in v.get_ref().iter().enumerate() {
                    let a_name = a.get_ref().trim();
                    if !a_name.is_empty() && !all_apps.iter().any(|x| x == a_name) {
                        d.err(
                            a.span(),
                            format!("phase[{i}].apps[{k}]"),
                            format!(
                                "app `{a_name}` is not sent any query; expected one of: {}",
                                all_apps.join(", ")
                            ),
                        );
                    }
                }
                list
            }
        };
        if pp.step.is_empty() {
            d.err(
                p.span(),
                format!("phase[{i}].step"),
                "no steps; expected at least one [[phase.step]]",
            );
        }
        let mut step_names = Names::new("step");
        let steps = pp
            .step
            .iter()
            .enumerate()
            .map(|(j, s)| step(d, s, &format!("phase[{i}].step[{j}]"), &mut step_names))
            .collect();
        out.push(PhasePlan { name, apps, steps });
    }
    out
}

fn step(d: &mut Diags, s: &S<model::StepSection>, path: &str, names: &mut Names) -> StepPlan {
    let ss = s.get_ref();
    let f = |n: &str| format!("{path}.{n}");
    let name = item_name(d, &ss.name, s.span(), &f("name"), names);
    let transaction = ss.transaction.as_ref().is_none_or(|v| *v.get_ref());
    let action = match (&ss.sql, &ss.backfill) {
        (Some(_), Some(b)) => {
            d.err(
                b.span(),
                f("backfill"),
                "a step has either sql or backfill, not both; split it into two steps",
            );
            StepAction::Sql(Vec::new())
        }
        (None, None) => {
            d.err(
                s.span(),
                path,
                "has neither sql nor backfill; expected one of them",
            );
            StepAction::Sql(Vec::new())
        }
        (Some(v), None) => {
            let stmts = sql_list(d, v, &f("sql"));
            if transaction {
                if let Some(bad) = stmts.iter().find(|s| cannot_run_in_transaction(s)) {
                    let first: String = bad.chars().take(60).collect();
                    d.err(
                        v.span(),
                        f("sql"),
                        format!("`{first}` cannot run inside a transaction block; set transaction = false on this step"),
                    );
                }
            }
            StepAction::Sql(stmts)
        }
        (None, Some(b)) => StepAction::Backfill(backfill(d, b, &f("backfill"))),
    };
    let expect_error = match &ss.expect_error {
        None => Vec::new(),
        Some(_) if ss.backfill.is_some() => {
            d.err(
                ss.expect_error.as_ref().map_or(s.span(), |v| v.span()),
                f("expect_error"),
                "a backfill step cannot expect an error; put the statement that fails in a sql step",
            );
            Vec::new()
        }
        Some(v) => sqlstates(d, v, &f("expect_error")),
    };
    let retries = match &ss.retries {
        Some(v) => d.int_in(v, &f("retries"), 0, 1000).unwrap_or(0) as u32,
        None => 0,
    };
    StepPlan {
        name,
        action,
        transaction,
        lock_timeout: d.positive_duration(&ss.lock_timeout, &f("lock_timeout")),
        statement_timeout: d.positive_duration(&ss.statement_timeout, &f("statement_timeout")),
        retries,
        retry_backoff: d.duration(
            &ss.retry_backoff,
            &f("retry_backoff"),
            Duration::from_millis(100),
        ),
        pause_after: d.duration(&ss.pause_after, &f("pause_after"), Duration::ZERO),
        expect_error,
    }
}

/// `expect_error`: one SQLSTATE or a non-empty list of them, each five
/// digits or upper-case letters ("57014" query_canceled, which a
/// statement_timeout raises; "23505" unique_violation; "55P03" lock_not_available).
fn sqlstates(d: &mut Diags, v: &S<toml::Value>, field: &str) -> Vec<String> {
    const EXPECTED: &str = "expected a SQLSTATE such as \"57014\" (statement_timeout) or \"23505\" (unique_violation), or a list of them";
    let items: Vec<&toml::Value> = match v.get_ref() {
        toml::Value::String(_) => vec![v.get_ref()],
        toml::Value::Array(a) if !a.is_empty() => a.iter().collect(),
        toml::Value::Array(_) => {
            d.err(v.span(), field, format!("is an empty list; {EXPECTED}"));
            return Vec::new();
        }
        other => {
            d.err(
                v.span(),
                field,
                format!("is a {}; {EXPECTED}", other.type_str()),
            );
            return Vec::new();
        }
    };
    let mut codes = Vec::new();
    for item in items {
        let code = item.as_str().map(|c| c.trim().to_ascii_uppercase());
        match code {
            Some(c) if c.len() == 5 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                if !codes.contains(&c) {
                    codes.push(c);
                }
            }
            _ => d.err(
                v.span(),
                field,
                format!("{item} is not a SQLSTATE (five digits or letters); {EXPECTED}"),
            ),
        }
    }
    codes
}

/// Statements Postgres refuses inside BEGIN ... COMMIT.
fn cannot_run_in_transaction(stmt: &str) -> bool {
    let words: Vec<String> = sql::tokens(stmt)
        .into_iter()
        .filter(|t| t.kind == sql::TokenKind::Word)
        .map(|t| stmt[t.start..t.end].to_ascii_lowercase())
        .collect();
    match words.first().map(String::as_str) {
        Some("vacuum") => true,
        Some("create" | "drop" | "reindex" | "alter") => {
            words.iter().any(|w| w == "concurrently")
                || (words.len() >= 2 && matches!(words[1].as_str(), "database" | "tablespace"))
        }
        _ => false,
    }
}

fn backfill(d: &mut Diags, b: &S<model::BackfillSection>, path: &str) -> BackfillPlan {
    let bb = b.get_ref();
    let f = |n: &str| format!("{path}.{n}");
    let text = |d: &mut Diags, v: &Option<S<String>>, n: &str, what: &str| match d.required(
        v,
        b.span(),
        &f(n),
        what,
    ) {
        Some(v) => d.nonempty(v, &f(n), what).unwrap_or_default(),
        None => String::new(),
    };
    let table = text(
        d,
        &bb.table,
        "table",
        "the table to update, e.g. table = \"orders\"",
    );
    let key = text(
        d,
        &bb.key,
        "key",
        "an integer key column to batch by, e.g. key = \"id\"",
    );
    let set = text(
        d,
        &bb.set,
        "set",
        "the SET clause, e.g. set = \"total_v2 = total\"",
    );
    let where_clause = bb
        .where_clause
        .as_ref()
        .and_then(|v| d.nonempty(v, &f("where"), "a condition, or omit it"));
    let batch = match &bb.batch {
        Some(v) => d.int_in(v, &f("batch"), 1, 10_000_000).unwrap_or(1000) as u64,
        None => 1000,
    };
    BackfillPlan {
        table,
        key,
        batch,
        pause: d.duration(&bb.pause, &f("pause"), Duration::ZERO),
        set,
        where_clause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_that_need_autocommit() {
        assert!(cannot_run_in_transaction(
            "CREATE INDEX CONCURRENTLY i ON t (a)"
        ));
        assert!(cannot_run_in_transaction(
            "create unique index concurrently i on t (a)"
        ));
        assert!(cannot_run_in_transaction("VACUUM t"));
        assert!(!cannot_run_in_transaction("CREATE INDEX i ON t (a)"));
        assert!(!cannot_run_in_transaction("SELECT 'concurrently'"));
    }
}
