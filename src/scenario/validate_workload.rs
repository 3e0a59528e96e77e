//! Validating `[workload]`: clients, rate, timings, queries (placeholders
//! against params, app versions) and one-off scripts.

use std::time::Duration;

use super::diag::{app_list, item_name, sql_list, Diags, Names};
use super::gen_spec::{column_gen, FkTarget};
use super::model::{self, GenSpec, S};
use super::{QueryPlan, ScriptPlan, WorkloadPlan};
use crate::sql;

pub(super) fn workload(
    d: &mut Diags,
    w: Option<&model::WorkloadSection>,
    tables: &[FkTarget],
) -> WorkloadPlan {
    let Some(w) = w else {
        d.err(
            0..0,
            "workload",
            "missing; expected a [workload] section with at least one [[workload.query]]",
        );
        return WorkloadPlan::idle();
    };
    let clients = match &w.clients {
        Some(v) => d.int_in(v, "workload.clients", 1, 10_000).unwrap_or(1) as u32,
        None => 4,
    };
    let rate = w.rate.as_ref().and_then(|v| {
        let x = *v.get_ref();
        if !x.is_finite() || x <= 0.0 || x > 10_000_000.0 {
            d.err(
                v.span(),
                "workload.rate",
                format!("{x} is out of range; expected queries per second above 0 (at most 10000000), or omit rate for a closed loop"),
            );
            None
        } else {
            Some(x)
        }
    });
    let before = d.duration(&w.before, "workload.before", Duration::from_secs(2));
    let after = d.duration(&w.after, "workload.after", Duration::from_secs(2));
    let window = d
        .positive_duration(&w.window, "workload.window", "the default, 100ms")
        .and_then(|x| {
            // Every window is a row per query and app in latency.csv and
            // inflight.csv: a microsecond window is millions of them a
            // second; one longer than a minute averages a step away.
            let (lo, hi) = (Duration::from_millis(1), Duration::from_secs(60));
            if (lo..=hi).contains(&x) {
                return Some(x);
            }
            let span = w.window.as_ref().map_or(0..0, |v| v.span());
            d.err(
                span,
                "workload.window",
                format!("{x:?} is out of range; expected from 1ms to 60s (the default is 100ms)"),
            );
            None
        })
        .unwrap_or(Duration::from_millis(100));
    let query_timeout = d.pg_timeout(&w.query_timeout, "workload.query_timeout", "no limit");
    if w.query.is_empty() {
        d.err(
            super::span::table_span(d.text, "workload"),
            "workload.query",
            "no queries; expected at least one [[workload.query]] with name and sql",
        );
    }
    // App versions: every app any query names, or the single "app".
    let mut named_apps: Vec<String> = Vec::new();
    for q in &w.query {
        for a in q.get_ref().apps.iter().flat_map(|a| a.get_ref()) {
            let a = a.get_ref().trim().to_string();
            if !a.is_empty() && !named_apps.contains(&a) {
                named_apps.push(a);
            }
        }
    }
    if named_apps.is_empty() {
        named_apps.push(crate::scenario::DEFAULT_APP.to_string());
    }
    let mut names = Names::new("query");
    let mut queries = Vec::new();
    for (i, q) in w.query.iter().enumerate() {
        if let Some(q) = query(d, q, i, &mut names, &named_apps, tables) {
            queries.push(q);
        }
    }
    let mut names = Names::new("script");
    let mut scripts = Vec::new();
    for (i, s) in w.script.iter().enumerate() {
        let ss = s.get_ref();
        let f = |n: &str| format!("workload.script[{i}].{n}");
        let name = item_name(d, &ss.name, s.span(), &f("name"), &mut names);
        let at = match d.required(
            &ss.at,
            s.span(),
            &f("at"),
            "when it starts since traffic began, e.g. at = \"3s\"",
        ) {
            Some(_) => d.duration(&ss.at, &f("at"), Duration::ZERO),
            None => Duration::ZERO,
        };
        let sql = match d.required(
            &ss.sql,
            s.span(),
            &f("sql"),
            "the statements the session runs",
        ) {
            Some(v) => sql_list(d, v, &f("sql")),
            None => Vec::new(),
        };
        scripts.push(ScriptPlan { name, at, sql });
    }
    WorkloadPlan {
        clients,
        rate,
        before,
        after,
        window,
        query_timeout,
        queries,
        scripts,
    }
}

fn query(
    d: &mut Diags,
    q: &S<model::QuerySection>,
    i: usize,
    names: &mut Names,
    all_apps: &[String],
    tables: &[FkTarget],
) -> Option<QueryPlan> {
    let qq = q.get_ref();
    let f = |n: &str| format!("workload.query[{i}].{n}");
    let name = item_name(d, &qq.name, q.span(), &f("name"), names);
    let weight = match &qq.weight {
        Some(v) => d.int_in(v, &f("weight"), 1, 1_000_000).unwrap_or(1) as u32,
        None => 1,
    };
    let apps = match &qq.apps {
        None => all_apps.to_vec(),
        Some(v) => app_list(d, v, &f("apps")),
    };
    let sql_v = d.required(
        &qq.sql,
        q.span(),
        &f("sql"),
        "the query's SQL, e.g. sql = \"SELECT * FROM orders WHERE id = $1\"",
    )?;
    let sql_text = d.nonempty(sql_v, &f("sql"), "one SQL statement")?;
    let stmts = sql::split(&sql_text);
    if stmts.len() != 1 {
        d.err(
            sql_v.span(),
            f("sql"),
            format!(
                "has {} statements; expected exactly one (app queries are prepared statements)",
                stmts.len()
            ),
        );
    }
    let empty = Vec::new();
    let specs: &Vec<S<GenSpec>> = qq.params.as_ref().map_or(&empty, |p| p.get_ref());
    let mut params = Vec::new();
    for (j, spec) in specs.iter().enumerate() {
        let path = format!("{}[{j}]", f("params"));
        if let Some(g) = column_gen(d, spec, &path, tables) {
            if super::gen_shape::has_share(&g.kind) {
                d.err(
                    spec.span(),
                    format!("{path}.distinct"),
                    "a share of rows needs a table; a query parameter takes a count, e.g. distinct = 500",
                );
            }
            params.push(g);
        }
    }
    let used = sql::placeholders(&sql_text);
    let expected: Vec<u32> = (1..=specs.len() as u32).collect();
    if used != expected {
        let uses = if used.is_empty() {
            "no placeholders".to_string()
        } else {
            // The lexer saturates a number too large for u32; PostgreSQL
            // itself stops at $65535, so print what the user can act on.
            let l: Vec<String> = used
                .iter()
                .map(|&n| match n {
                    0..=65535 => format!("${n}"),
                    _ => "a $n past $65535 (PostgreSQL's limit)".to_string(),
                })
                .collect();
            format!("placeholders {}", l.join(", "))
        };
        let wanted = match specs.len() {
            0 => "no placeholders".to_string(),
            1 => "exactly $1".to_string(),
            n => format!("exactly $1..${n}, one per generator, no gaps"),
        };
        let span = qq.params.as_ref().map_or(sql_v.span(), |p| p.span());
        let field = if qq.params.is_some() {
            f("params")
        } else {
            f("sql")
        };
        d.err(
            span,
            field,
            format!(
                "the sql uses {uses} but params has {} generator(s); expected {wanted}",
                specs.len()
            ),
        );
    }
    Some(QueryPlan {
        name,
        weight,
        apps,
        sql: stmts.into_iter().next().unwrap_or(sql_text),
        params,
    })
}
