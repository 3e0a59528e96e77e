//! Validating the raw model into a [`Scenario`] plan. Every problem is
//! recorded with its span; validation carries on with defaults so one run
//! reports them all.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::diag::Diags;
use super::gen_spec::{column_gen, estimated_row_bytes, scalar_text, FkTarget};
use super::model::{self, GenSpec, SqlText, S};
use super::{
    BackfillPlan, Budget, ColumnPlan, PhasePlan, PostgresPlan, QueryPlan, Scenario, ScriptPlan,
    StepAction, StepPlan, TablePlan, Variant, WorkloadPlan,
};
use crate::sql;

/// More rows than this in one table is a typo, not a rehearsal.
pub const MAX_ROWS: u64 = 10_000_000_000;
/// A generated table estimated larger than this (heap only) cannot be seeded
/// on any machine a rehearsal runs on.
pub const MAX_TABLE_BYTES: u64 = 1 << 40;

/// Command-line row overrides, already checked.
pub struct RowOverrides {
    pub rows: Option<u64>,
    pub scale: Option<f64>,
}

pub fn validate(
    d: &mut Diags,
    f: &model::ScenarioFile,
    path: &Path,
    hash: String,
    ov: &RowOverrides,
) -> Scenario {
    let whole = 0..0;
    let name = match d.required(
        &f.name,
        whole.clone(),
        "name",
        "a scenario name, e.g. name = \"create-index-naive\"",
    ) {
        Some(v) => d.nonempty(v, "name", "a scenario name").unwrap_or_default(),
        None => String::new(),
    };
    let description = f
        .description
        .as_ref()
        .map(|v| v.get_ref().trim().to_string());
    let pair = f
        .pair
        .as_ref()
        .and_then(|v| d.nonempty(v, "pair", "the name naive/safe files share"));
    let variant = f.variant.as_ref().and_then(|v| match v.get_ref().as_str() {
        "naive" => Some(Variant::Naive),
        "safe" => Some(Variant::Safe),
        other => {
            d.err(
                v.span(),
                "variant",
                format!("unknown variant `{other}`; expected \"naive\" or \"safe\""),
            );
            None
        }
    });
    let postgres = postgres(d, f.postgres.as_ref());
    let tables = tables(d, &f.table, ov);
    let seed_sql = f
        .seed_sql
        .as_ref()
        .map(|v| sql_list(d, v, "seed_sql"))
        .unwrap_or_default();
    if f.table.is_empty() && seed_sql.is_empty() {
        d.err(
            whole.clone(),
            "table",
            "no tables; expected at least one [[table]] (or seed_sql)",
        );
    }
    let targets: Vec<FkTarget> = tables
        .iter()
        .map(|(t, line)| FkTarget {
            name: t.name.clone(),
            rows: t.rows,
            line: *line,
            usable: true,
        })
        .collect();
    let workload = workload(d, f.workload.as_ref(), &targets);
    let phases = phases(d, &f.phase, &workload.apps());
    let budget = f
        .budget
        .as_ref()
        .map(|b| budget(d, b.get_ref()))
        .unwrap_or_default();
    Scenario {
        path: path.to_path_buf(),
        name,
        description,
        pair,
        variant,
        hash,
        postgres,
        tables: tables.into_iter().map(|(t, _)| t).collect(),
        seed_sql,
        workload,
        phases,
        budget,
    }
}

fn postgres(d: &mut Diags, p: Option<&S<model::PostgresSection>>) -> PostgresPlan {
    let Some(p) = p else {
        return PostgresPlan::default();
    };
    let p = p.get_ref();
    let version = p.version.as_ref().and_then(|v| match v.get_ref() {
        toml::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        toml::Value::Integer(i) if (9..=99).contains(i) => Some(i.to_string()),
        other => {
            d.err(
                v.span(),
                "postgres.version",
                format!("`{other}` is not a Postgres major version; expected e.g. \"17\""),
            );
            None
        }
    });
    let image = p.image.as_ref().and_then(|v| {
        d.nonempty(
            v,
            "postgres.image",
            "a container image, e.g. \"postgres:17\"",
        )
    });
    let mut settings = Vec::new();
    if let Some(s) = &p.settings {
        for (k, v) in &s.get_ref().0 {
            let field = format!("postgres.settings.{}", k.get_ref());
            if !k
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                || k.get_ref().is_empty()
            {
                d.err(
                    k.span(),
                    &field,
                    "is not a Postgres setting name; expected letters, digits, `_` and `.`",
                );
                continue;
            }
            let value = match v.get_ref() {
                toml::Value::Boolean(b) => Some(if *b {
                    "on".to_string()
                } else {
                    "off".to_string()
                }),
                _ => scalar_text(d, v, &field),
            };
            if let Some(value) = value {
                settings.push((k.get_ref().clone(), value));
            }
        }
    }
    PostgresPlan {
        version,
        image,
        settings,
    }
}

/// Remember the first span of each name; report later duplicates.
struct Names {
    kind: &'static str,
    seen: HashMap<String, Range<usize>>,
}

impl Names {
    fn new(kind: &'static str) -> Self {
        Names {
            kind,
            seen: HashMap::new(),
        }
    }

    fn add(&mut self, d: &mut Diags, name: &S<String>, field: &str) {
        let n = name.get_ref().trim().to_string();
        if let Some(first) = self.seen.get(&n) {
            let line = d.line_of(first.clone());
            d.err(
                name.span(),
                field,
                format!(
                    "duplicate {} name `{n}` (first defined on line {line}); names must be unique",
                    self.kind
                ),
            );
        } else {
            self.seen.insert(n, name.span());
        }
    }
}

/// Required, non-empty, unique name of an item.
fn item_name(
    d: &mut Diags,
    v: &Option<S<String>>,
    section: Range<usize>,
    field: &str,
    names: &mut Names,
) -> String {
    match d.required(v, section, field, &format!("a {} name", names.kind)) {
        Some(v) => {
            let n = d.nonempty(v, field, &format!("a {} name", names.kind));
            if n.is_some() {
                names.add(d, v, field);
            }
            n.unwrap_or_default()
        }
        None => String::new(),
    }
}

/// Rows after --rows / --scale: exact integers, at least 1 where the file
/// asked for rows. `--rows N` gives the largest table N rows and scales the
/// others by the same ratio.
pub fn scale_rows(raw: &[u64], ov: &RowOverrides) -> Vec<u64> {
    let mut rows = raw.to_vec();
    if let Some(n) = ov.rows {
        let max = rows.iter().copied().max().unwrap_or(0);
        if max > 0 {
            for r in rows.iter_mut().filter(|r| **r > 0) {
                let v = (u128::from(*r) * u128::from(n) + u128::from(max) / 2) / u128::from(max);
                *r = u64::try_from(v).unwrap_or(u64::MAX).max(1);
            }
        }
    }
    if let Some(f) = ov.scale {
        for r in rows.iter_mut().filter(|r| **r > 0) {
            let v = (*r as f64 * f).round();
            *r = if v >= u64::MAX as f64 {
                u64::MAX
            } else {
                (v as u64).max(1)
            };
        }
    }
    rows
}

fn tables(
    d: &mut Diags,
    ts: &[S<model::TableSection>],
    ov: &RowOverrides,
) -> Vec<(TablePlan, usize)> {
    let mut names = Names::new("table");
    let overridden = ov.rows.is_some() || ov.scale.is_some();
    // Pass 1: names and row counts, so foreign keys can see scaled rows.
    let mut raw_rows = Vec::new();
    let mut table_names = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let tt = t.get_ref();
        let field = format!("table[{i}].name");
        table_names.push(item_name(d, &tt.name, t.span(), &field, &mut names));
        let rows = match &tt.rows {
            None => 0,
            Some(r) => {
                let x = *r.get_ref();
                let f = format!("table[{i}].rows");
                if x < 0 {
                    d.err(
                        r.span(),
                        f,
                        format!("{x} is negative; expected a row count of at least 1"),
                    );
                    0
                } else if x == 0 {
                    d.err(
                        r.span(),
                        f,
                        "is 0; expected at least 1 (omit rows for a table created empty)",
                    );
                    0
                } else if x as u64 > MAX_ROWS {
                    d.err(
                        r.span(),
                        f,
                        format!("{x} rows is absurd; expected at most {MAX_ROWS}"),
                    );
                    0
                } else {
                    x as u64
                }
            }
        };
        raw_rows.push(rows);
    }
    let rows = scale_rows(&raw_rows, ov);
    let mut out = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let tt = t.get_ref();
        let line = d.line_of(t.span());
        let rows_field = format!("table[{i}].rows");
        if overridden && rows[i] > MAX_ROWS {
            let span = tt.rows.as_ref().map_or(t.span(), |r| r.span());
            d.err(
                span,
                &rows_field,
                format!(
                    "{} rows after --rows/--scale is absurd; expected at most {MAX_ROWS}",
                    rows[i]
                ),
            );
        }
        let create = match d.required(
            &tt.create,
            t.span(),
            &format!("table[{i}].create"),
            "the CREATE TABLE statement",
        ) {
            Some(v) => d
                .nonempty(
                    v,
                    &format!("table[{i}].create"),
                    "the CREATE TABLE statement",
                )
                .unwrap_or_default(),
            None => String::new(),
        };
        let after_seed = tt
            .after_seed
            .as_ref()
            .map(|v| sql_list(d, v, &format!("table[{i}].after_seed")))
            .unwrap_or_default();
        let targets: Vec<FkTarget> = table_names
            .iter()
            .enumerate()
            .map(|(j, n)| FkTarget {
                name: n.clone(),
                rows: rows[j],
                line: d.line_of(ts[j].span()),
                usable: j < i,
            })
            .collect();
        let mut columns = Vec::new();
        if let Some(cols) = &tt.columns {
            for (k, spec) in &cols.get_ref().0 {
                let path = format!("table[{i}].columns.{}", k.get_ref());
                if let Some(gen) = column_gen(d, spec, &path, &targets) {
                    columns.push(ColumnPlan {
                        name: k.get_ref().clone(),
                        gen,
                    });
                }
            }
        }
        if rows[i] > 0 && rows[i] <= MAX_ROWS {
            let bytes = u128::from(estimated_row_bytes(&columns)) * u128::from(rows[i]);
            if bytes > u128::from(MAX_TABLE_BYTES) {
                let span = tt.rows.as_ref().map_or(t.span(), |r| r.span());
                d.err(
                    span,
                    &rows_field,
                    format!(
                        "{} rows of this table come to about {} GiB, beyond any disk a rehearsal can use (limit {} GiB); use fewer rows",
                        rows[i],
                        bytes >> 30,
                        MAX_TABLE_BYTES >> 30
                    ),
                );
            }
        }
        out.push((
            TablePlan {
                name: table_names[i].clone(),
                rows: rows[i],
                create,
                after_seed,
                columns,
            },
            line,
        ));
    }
    out
}

/// SQL text (a string or a list of strings) split into statements.
fn sql_list(d: &mut Diags, v: &S<SqlText>, field: &str) -> Vec<String> {
    let out: Vec<String> = match v.get_ref() {
        SqlText::One(s) => sql::split(s),
        SqlText::Many(list) => list.iter().flat_map(|s| sql::split(s.get_ref())).collect(),
    };
    if out.is_empty() {
        d.err(
            v.span(),
            field,
            "has no SQL statements; expected at least one",
        );
    }
    out
}

fn workload(
    d: &mut Diags,
    w: Option<&S<model::WorkloadSection>>,
    tables: &[FkTarget],
) -> WorkloadPlan {
    let Some(ws) = w else {
        d.err(
            0..0,
            "workload",
            "missing; expected a [workload] section with at least one [[workload.query]]",
        );
        return WorkloadPlan {
            clients: 1,
            rate: None,
            before: Duration::ZERO,
            after: Duration::ZERO,
            window: Duration::from_millis(100),
            query_timeout: None,
            queries: Vec::new(),
            scripts: Vec::new(),
        };
    };
    let w = ws.get_ref();
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
        .positive_duration(&w.window, "workload.window")
        .unwrap_or(Duration::from_millis(100));
    let query_timeout = d.positive_duration(&w.query_timeout, "workload.query_timeout");
    if w.query.is_empty() {
        d.err(
            ws.span(),
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
        named_apps.push("app".to_string());
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
        if let Some(g) = column_gen(d, spec, &format!("{}[{j}]", f("params")), tables) {
            params.push(g);
        }
    }
    let used = sql::placeholders(&sql_text);
    let expected: Vec<u32> = (1..=specs.len() as u32).collect();
    if used != expected {
        let list = |v: &[u32]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|n| format!("${n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
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
                "the sql uses placeholders {} but params has {} generator(s); expected $1..${} each used once per generator, no gaps",
                list(&used),
                specs.len(),
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

fn app_list(d: &mut Diags, v: &S<Vec<S<String>>>, field: &str) -> Vec<String> {
    if v.get_ref().is_empty() {
        d.err(
            v.span(),
            field,
            "is empty; expected at least one app version, or omit it for all",
        );
    }
    let mut out: Vec<String> = Vec::new();
    for (k, a) in v.get_ref().iter().enumerate() {
        if let Some(a) = d.nonempty(a, &format!("{field}[{k}]"), "an app version name") {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

fn phases(d: &mut Diags, ps: &[S<model::PhaseSection>], all_apps: &[String]) -> Vec<PhasePlan> {
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
    }
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

fn budget(d: &mut Diags, b: &model::BudgetSection) -> Budget {
    let mut ms = |v: &Option<S<f64>>, n: &str| {
        v.as_ref()
            .and_then(|v| d.float_in(v, &format!("budget.{n}"), 0.0, 1e12))
    };
    let max_blocking_lock_ms = ms(&b.max_blocking_lock_ms, "max_blocking_lock_ms");
    let max_app_wait_ms = ms(&b.max_app_wait_ms, "max_app_wait_ms");
    let p99_ms = ms(&b.p99_ms, "p99_ms");
    let max_duration_ms = ms(&b.max_duration_ms, "max_duration_ms");
    Budget {
        max_blocking_lock_ms,
        max_app_wait_ms,
        p99_ms,
        max_errors: b
            .max_errors
            .as_ref()
            .and_then(|v| d.int_in(v, "budget.max_errors", 0, i64::MAX))
            .map(|x| x as u64),
        max_error_rate: b
            .max_error_rate
            .as_ref()
            .and_then(|v| d.float_in(v, "budget.max_error_rate", 0.0, 1.0)),
        max_duration_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_override_scales_largest_to_n() {
        let ov = RowOverrides {
            rows: Some(1000),
            scale: None,
        };
        assert_eq!(
            scale_rows(&[200_000, 50_000, 3, 0], &ov),
            vec![1000, 250, 1, 0]
        );
        let ov = RowOverrides {
            rows: None,
            scale: Some(0.5),
        };
        assert_eq!(scale_rows(&[200_001, 1, 0], &ov), vec![100_001, 1, 0]);
        let ov = RowOverrides {
            rows: Some(u64::MAX),
            scale: Some(1e30),
        };
        assert_eq!(scale_rows(&[5, 10], &ov), vec![u64::MAX, u64::MAX]);
    }

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
