//! Validating the raw model into a [`Scenario`] plan. Every problem is
//! recorded with its span; validation carries on with defaults so one run
//! reports them all.

use std::path::Path;

use super::diag::{item_name, sql_list, Diags, Names};
use super::gen_spec::{column_gen, estimated_row_bytes, FkTarget};
use super::gen_value::scalar_text;
use super::model::{self, S};
use super::validate_migrations::{migrations, Migrations};
use super::validate_phases::phases;
use super::validate_size::size;
use super::validate_workload::workload;
use super::{Budget, ColumnPlan, PostgresPlan, Scenario, TablePlan, Variant};
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

/// Command-line settings validation takes into account.
pub struct CommandLine<'a> {
    pub rows: RowOverrides,
    /// `--since-git REV`: rehearse the migrations added since REV.
    pub since_git: Option<&'a str>,
}

pub fn validate(
    d: &mut Diags,
    f: &model::ScenarioFile,
    path: &Path,
    hash: String,
    cli: &CommandLine,
) -> Scenario {
    let ov = &cli.rows;
    let whole = 0..0;
    let name = match d.required(
        &f.name,
        whole.clone(),
        "name",
        "a scenario name, e.g. name = \"create-index-naive\"",
    ) {
        Some(v) => d.name(v, "name", "a scenario name").unwrap_or_default(),
        None => String::new(),
    };
    let description = f
        .description
        .as_ref()
        .map(|v| v.get_ref().trim().to_string());
    let pair = f
        .pair
        .as_ref()
        .and_then(|v| d.name(v, "pair", "the name naive/safe files share"));
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
    let migrations = migrations(d, f.migrations.as_ref(), path, cli.since_git);
    let tables = tables(d, &f.table, ov, &migrations);
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
        .map(|(t, line, rows_valid)| FkTarget {
            name: t.name.clone(),
            rows: if *rows_valid { t.rows } else { 1 },
            line: *line,
            usable: true,
        })
        .collect();
    let mut workload = workload(d, f.workload.as_ref(), &targets);
    let mut tables: Vec<TablePlan> = tables.into_iter().map(|(t, _, _)| t).collect();
    let query_specs = f.workload.as_ref().map_or(&[][..], |w| &w.query[..]);
    super::gen_link::link(d, &mut tables, &f.table, &mut workload.queries, query_specs);
    // Where `last = 0` is written: the error for a scenario it leaves
    // without a step points there.
    let last_span = f
        .migrations
        .as_ref()
        .and_then(|m| m.rehearse.as_ref())
        .and_then(|r| r.get_ref().last.as_ref())
        .map(|l| l.span());
    let server_lock_timeout = postgres
        .settings
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("lock_timeout") && timeout_on(v));
    let mut phases = phases(
        d,
        &f.phase,
        &workload.apps(),
        path,
        &migrations,
        last_span,
        server_lock_timeout,
    );
    if let Some(m) = migrations.plan() {
        if m.rehearse.is_empty() && matches!(m.selection, crate::migrations::Selection::SinceGit(_))
        {
            // Nothing new since the revision: nothing to rehearse, inline
            // steps included (they rehearse the pending change).
            phases.clear();
        }
    }
    let budget = f.budget.as_ref().map(|b| budget(d, b)).unwrap_or_default();
    Scenario {
        path: path.to_path_buf(),
        name,
        description,
        pair,
        variant,
        hash,
        postgres,
        tables,
        seed_sql,
        workload,
        phases,
        budget,
        migrations: match migrations {
            Migrations::Loaded(m) => Some(m),
            _ => None,
        },
    }
}

fn postgres(d: &mut Diags, p: Option<&model::PostgresSection>) -> PostgresPlan {
    let Some(p) = p else {
        return PostgresPlan::default();
    };
    let supported = crate::backend::available::SUPPORTED;
    let major = |s: &str| s.split('.').next().and_then(|m| m.parse::<u32>().ok());
    let version = p.version.as_ref().and_then(|v| match v.get_ref() {
        // As --pg-version: a server is picked by its major version.
        toml::Value::String(s) if s.trim().contains('.') && major(s.trim()).is_some() => {
            d.err(
                v.span(),
                "postgres.version",
                format!(
                    "`{}` is a minor version; give its major, \"{}\"",
                    s.trim(),
                    major(s.trim()).unwrap_or_default()
                ),
            );
            None
        }
        toml::Value::String(s) if major(s.trim()).is_some_and(|m| supported.contains(&m)) => {
            Some(s.trim().to_string())
        }
        toml::Value::Integer(i) if supported.contains(&(*i as u32)) => Some(i.to_string()),
        toml::Value::String(s) if major(s.trim()).is_some() => {
            d.err(
                v.span(),
                "postgres.version",
                format!(
                    "PostgreSQL {} is not one pgrehearse rehearses on; expected a major version \
                     from {} to {}",
                    s.trim(),
                    supported.start(),
                    supported.end()
                ),
            );
            None
        }
        other => {
            d.err(
                v.span(),
                "postgres.version",
                format!(
                    "`{other}` is not a Postgres major version pgrehearse rehearses on; \
                     expected one from {} to {}, e.g. \"17\"",
                    supported.start(),
                    supported.end()
                ),
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
        for (k, v) in &s.0 {
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
        size: p.size.as_ref().and_then(|s| size(d, s)),
        replica: p.replica.as_ref().is_some_and(|r| *r.get_ref()),
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

/// Names and row counts of every table, read before any table is validated:
/// a foreign key may point at any earlier table and must see its scaled rows.
struct TableHeads {
    names: Vec<String>,
    /// After --rows / --scale.
    rows: Vec<u64>,
    /// False where the file's row count was rejected: that error is reported
    /// once, not again by every foreign key into the table.
    rows_valid: Vec<bool>,
}

/// The table plans, each with its line and whether its row count was valid.
fn tables(
    d: &mut Diags,
    ts: &[S<model::TableSection>],
    ov: &RowOverrides,
    migrations: &Migrations,
) -> Vec<(TablePlan, usize, bool)> {
    let heads = table_heads(d, ts, ov);
    let overridden = ov.rows.is_some() || ov.scale.is_some();
    (0..ts.len())
        .map(|i| {
            let plan = table(d, ts, i, &heads, overridden, migrations.present());
            (plan, d.line_of(ts[i].span()), heads.rows_valid[i])
        })
        .collect()
}

fn table_heads(d: &mut Diags, ts: &[S<model::TableSection>], ov: &RowOverrides) -> TableHeads {
    let mut names = Names::new("table");
    let mut heads = TableHeads {
        names: Vec::new(),
        rows: Vec::new(),
        rows_valid: Vec::new(),
    };
    let mut raw_rows = Vec::new();
    for (i, t) in ts.iter().enumerate() {
        let tt = t.get_ref();
        let field = format!("table[{i}].name");
        heads
            .names
            .push(item_name(d, &tt.name, t.span(), &field, &mut names));
        let rows = tt
            .rows
            .as_ref()
            .map_or(0, |r| row_count(d, r, &format!("table[{i}].rows")));
        heads.rows_valid.push(rows > 0 || tt.rows.is_none());
        raw_rows.push(rows);
    }
    heads.rows = scale_rows(&raw_rows, ov);
    heads
}

/// A table's `rows` as written: 0 (after an error) unless in 1..=MAX_ROWS.
fn row_count(d: &mut Diags, r: &S<i64>, field: &str) -> u64 {
    let x = *r.get_ref();
    if x < 0 {
        d.err(
            r.span(),
            field,
            format!("{x} is negative; expected a row count of at least 1"),
        );
        0
    } else if x == 0 {
        d.err(
            r.span(),
            field,
            "is 0; expected at least 1 (omit rows for a table created empty)",
        );
        0
    } else if x as u64 > MAX_ROWS {
        d.err(
            r.span(),
            field,
            format!("{x} rows is absurd; expected at most {MAX_ROWS}"),
        );
        0
    } else {
        x as u64
    }
}

/// Table `i`: its CREATE statement, after_seed and column generators.
/// With `[migrations]` (`schema_from_files`), `create` is optional: the
/// table is one the setup migrations create, seeded in foreign-key order.
fn table(
    d: &mut Diags,
    ts: &[S<model::TableSection>],
    i: usize,
    heads: &TableHeads,
    overridden: bool,
    schema_from_files: bool,
) -> TablePlan {
    let t = &ts[i];
    let tt = t.get_ref();
    let name = &heads.names[i];
    let rows = heads.rows[i];
    let rows_field = format!("table[{i}].rows");
    let rows_span = tt.rows.as_ref().map_or(t.span(), |r| r.span());
    if overridden && rows > MAX_ROWS {
        d.err(
            rows_span.clone(),
            &rows_field,
            format!("{rows} rows after --rows/--scale is absurd; expected at most {MAX_ROWS}"),
        );
    }
    let create_field = format!("table[{i}].create");
    const CREATE: &str =
        "the CREATE TABLE statement (or a [migrations] section that creates the table)";
    let create = match (&tt.create, schema_from_files) {
        (None, true) => None,
        _ => Some(
            match d.required(&tt.create, t.span(), &create_field, CREATE) {
                Some(v) => d.nonempty(v, &create_field, CREATE).unwrap_or_default(),
                None => String::new(),
            },
        ),
    };
    let after_seed = tt
        .after_seed
        .as_ref()
        .map(|v| sql_list(d, v, &format!("table[{i}].after_seed")))
        .unwrap_or_default();
    let targets: Vec<FkTarget> = heads
        .names
        .iter()
        .enumerate()
        .map(|(j, n)| FkTarget {
            name: n.clone(),
            rows: if heads.rows_valid[j] {
                heads.rows[j]
            } else {
                1
            },
            line: d.line_of(ts[j].span()),
            // With the schema from migrations, seeding follows its foreign
            // keys, not the file's order.
            usable: j < i || (schema_from_files && j != i),
        })
        .collect();
    let create_sql = create.as_deref().unwrap_or("");
    let idents = identifiers(create_sql);
    if let (Some(c), false) = (&tt.create, create_sql.is_empty() || name.is_empty()) {
        if !mentions(&idents, name) {
            d.err(
                c.span(),
                &create_field,
                format!("does not mention table `{name}`; expected CREATE TABLE {name} (...)"),
            );
        }
    }
    let mut columns = columns(d, tt, i, create_sql, &idents, name, &targets);
    super::gen_shape::resolve_shares(&mut columns, rows);
    if rows > 0 && rows <= MAX_ROWS {
        let bytes = u128::from(estimated_row_bytes(&columns)) * u128::from(rows);
        if bytes > u128::from(MAX_TABLE_BYTES) {
            d.err(
                rows_span,
                &rows_field,
                format!(
                    "{rows} rows of this table come to about {} GiB, beyond any disk a rehearsal can use (limit {} GiB); use fewer rows",
                    bytes >> 30,
                    MAX_TABLE_BYTES >> 30
                ),
            );
        }
    }
    TablePlan {
        name: name.clone(),
        rows,
        create,
        after_seed,
        columns,
    }
}

/// The column generators of table `i`. Generated columns are loaded right
/// after CREATE, so they must be in it, unless the table takes its columns
/// from elsewhere.
fn columns(
    d: &mut Diags,
    tt: &model::TableSection,
    i: usize,
    create: &str,
    idents: &[String],
    table: &str,
    targets: &[FkTarget],
) -> Vec<ColumnPlan> {
    let Some(cols) = &tt.columns else {
        return Vec::new();
    };
    let check_names = !create.is_empty() && !columns_from_elsewhere(create);
    let mut columns = Vec::new();
    for (k, spec) in &cols.0 {
        let path = format!("table[{i}].columns.{}", k.get_ref());
        if check_names && !mentions(idents, k.get_ref()) {
            d.err(
                k.span(),
                &path,
                format!(
                    "column `{}` is not in the CREATE TABLE statement of `{table}`",
                    k.get_ref()
                ),
            );
            continue;
        }
        if let Some(gen) = column_gen(d, spec, &path, targets) {
            columns.push(ColumnPlan {
                name: k.get_ref().clone(),
                gen,
            });
        }
    }
    columns
}

/// The identifiers (lowercased words and quoted names) of a statement.
fn identifiers(stmt: &str) -> Vec<String> {
    sql::tokens(stmt)
        .into_iter()
        .filter_map(|t| {
            let text = &stmt[t.start..t.end];
            match t.kind {
                sql::TokenKind::Word => Some(text.to_lowercase()),
                sql::TokenKind::QuotedIdent => Some(
                    text.trim_start_matches('"')
                        .trim_end_matches('"')
                        .replace("\"\"", "\""),
                ),
                _ => None,
            }
        })
        .collect()
}

/// CREATE TABLE ... AS / PARTITION OF / OF type / INHERITS / (LIKE ...):
/// the column list is not (all) spelled out in the statement.
fn columns_from_elsewhere(create: &str) -> bool {
    let mut depth = 0usize;
    for t in sql::tokens(create) {
        match t.kind {
            sql::TokenKind::OpenParen => depth += 1,
            sql::TokenKind::CloseParen => depth = depth.saturating_sub(1),
            sql::TokenKind::Word => {
                let w = create[t.start..t.end].to_ascii_lowercase();
                if w == "like" || (depth == 0 && matches!(w.as_str(), "as" | "of" | "inherits")) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Whether `name` (possibly schema-qualified) is among the identifiers.
fn mentions(idents: &[String], name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
    idents
        .iter()
        .any(|i| i == last || *i == last.to_lowercase())
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
    let max_recovery_ms = ms(&b.max_recovery_ms, "max_recovery_ms");
    let max_replica_lag_ms = ms(&b.max_replica_lag_ms, "max_replica_lag_ms");
    Budget {
        max_blocking_lock_ms,
        max_app_wait_ms,
        p99_ms,
        max_errors: b
            .max_errors
            .as_ref()
            .and_then(|v| d.int_in(v, "budget.max_errors", 0, i64::MAX))
            .map(|x| x as u64),
        max_error_rate: b.max_error_rate.as_ref().and_then(|v| error_rate(d, v)),
        max_duration_ms,
        max_invalid_indexes: b
            .max_invalid_indexes
            .as_ref()
            .and_then(|v| d.int_in(v, "budget.max_invalid_indexes", 0, 1000))
            .map(|x| x as u64),
        max_recovery_ms,
        max_replica_lag_ms,
    }
}

/// `max_error_rate`: a ratio in 0..=1, or a percentage such as "1%", as
/// `--budget max_error_rate=1%` takes it.
fn error_rate(d: &mut Diags, v: &S<toml::Value>) -> Option<f64> {
    const FIELD: &str = "budget.max_error_rate";
    let ratio = match v.get_ref() {
        toml::Value::Float(x) => Some(*x),
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::String(s) => s
            .trim()
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .map(|p| p / 100.0),
        _ => None,
    };
    match ratio {
        Some(r) if r.is_finite() && (0.0..=1.0).contains(&r) => Some(r),
        _ => {
            d.err(
                v.span(),
                FIELD,
                format!(
                    "`{}` is not an error rate; expected a ratio in 0..=1 (0.01) or a percentage (\"1%\")",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

/// Whether a server setting's value turns a timeout on: its number (before
/// a unit, "100ms", "2s") is above zero. "0", "0s", "00" turn it off, as
/// does a value with no number, which the server would refuse anyway.
fn timeout_on(value: &str) -> bool {
    let v = value.trim();
    let number: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-' || *c == '+')
        .collect();
    number.parse::<f64>().is_ok_and(|x| x > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_timeout_in_any_unit_is_off() {
        for off in ["0", "0s", "0ms", "00", " 0 ", "false", "banana", "-1"] {
            assert!(!timeout_on(off), "{off}");
        }
        for on in ["1", "100ms", "2s", "0.5s", "1min"] {
            assert!(timeout_on(on), "{on}");
        }
    }

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
    fn tables_whose_columns_come_from_elsewhere() {
        assert!(!columns_from_elsewhere(
            "CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY, v int)"
        ));
        assert!(columns_from_elsewhere("CREATE TABLE t AS SELECT 1 AS id"));
        assert!(columns_from_elsewhere(
            "CREATE TABLE t PARTITION OF p FOR VALUES IN (1)"
        ));
        assert!(columns_from_elsewhere(
            "CREATE TABLE t (LIKE u INCLUDING ALL)"
        ));
        assert!(columns_from_elsewhere(
            "CREATE TABLE t (x int) INHERITS (u)"
        ));
    }
}
