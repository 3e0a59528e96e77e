//! The catalog side of seeding: what a freshly created table looks like,
//! which generator fills which column (and as which type), and moving serial
//! sequences past the seeded keys.

use tokio_postgres::Client;

use super::copy::ColumnEncoder;
use super::db_error;
use crate::error::{Error, Result, ScenarioError};
use crate::pg::quote_ident;
use crate::scenario::gen::PgType;
use crate::scenario::{Scenario, TablePlan};

/// What the catalog says about a freshly created table.
pub(super) struct TableInfo {
    pub(super) qualified: String,
    /// A plain table created in the current transaction: COPY FREEZE works.
    pub(super) freezable: bool,
    /// name, resolved type (None = not writable by us), format_type, generated.
    pub(super) columns: Vec<(String, Option<PgType>, String, bool)>,
}

pub(super) async fn describe(
    client: &Client,
    scenario: &Scenario,
    index: usize,
) -> Result<TableInfo> {
    let table: &TablePlan = &scenario.tables[index];
    let ctx = |e| db_error(e, &format!("table {}: catalog lookup", table.name));
    let row = client
        .query_opt(
            "SELECT c.oid, c.oid::regclass::text, c.relkind::text, \
                    c.xmin::text = (txid_current() % 4294967296)::text \
             FROM pg_class c \
             WHERE c.oid = coalesce(to_regclass($1), to_regclass(quote_ident($1)))",
            &[&table.name],
        )
        .await
        .map_err(ctx)?;
    let Some(row) = row else {
        return Err(bad_table(
            scenario,
            index,
            "name",
            format!(
                "table {:?} does not exist after running its create SQL",
                table.name
            ),
        ));
    };
    let oid: u32 = row.get(0);
    let relkind: String = row.get(2);
    let created_here: bool = row.get(3);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod), \
                    t.typtype::text, t.typname::text, t.typbasetype, a.attgenerated::text <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(ctx)?;
    let mut columns = Vec::with_capacity(rows.len());
    for r in rows {
        let (mut typtype, mut typname, mut typid, mut base): (String, String, u32, u32) =
            (r.get(3), r.get(4), r.get(1), r.get(5));
        // A domain is written as its base type; follow nested domains.
        for _ in 0..16 {
            if typtype != "d" {
                break;
            }
            typid = base;
            let b = client
                .query_one(
                    "SELECT typtype::text, typname::text, typbasetype FROM pg_type WHERE oid = $1",
                    &[&typid],
                )
                .await
                .map_err(ctx)?;
            (typtype, typname, base) = (b.get(0), b.get(1), b.get(2));
        }
        let ty = if typtype == "e" || typname == "citext" {
            Some(PgType::Text)
        } else {
            PgType::from_oid(typid)
        };
        columns.push((r.get(0), ty, r.get(2), r.get(6)));
    }
    Ok(TableInfo {
        qualified: row.get(1),
        freezable: relkind == "r" && created_here,
        columns,
    })
}

/// Pair each scenario column with its table column, in scenario order.
pub(super) fn bind_columns(
    scenario: &Scenario,
    index: usize,
    info: &TableInfo,
) -> Result<Vec<ColumnEncoder>> {
    let table = &scenario.tables[index];
    let mut out = Vec::with_capacity(table.columns.len());
    let mut problems = Vec::new();
    for (stream, col) in table.columns.iter().enumerate() {
        let field = format!("table[{index}].columns.{}", col.name);
        let found = info.columns.iter().find(|c| c.0 == col.name).or_else(|| {
            let lower = col.name.to_lowercase();
            let mut m = info.columns.iter().filter(|c| c.0 == lower);
            m.next().filter(|_| m.next().is_none())
        });
        let Some((name, ty, type_name, generated)) = found else {
            let have: Vec<&str> = info.columns.iter().map(|c| c.0.as_str()).collect();
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "table {} has no column {:?} (it has: {})",
                    table.name,
                    col.name,
                    have.join(", ")
                ),
            ));
            continue;
        };
        if *generated {
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "{}.{name} is a generated column: Postgres computes it, drop its generator",
                    table.name
                ),
            ));
            continue;
        }
        let Some(ty) = ty else {
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "{}.{name} has type {type_name}, which generators cannot fill; \
                     use int/bigint, real/double precision, numeric, text/varchar/char, \
                     an enum, boolean, timestamp[tz], date, uuid, json or jsonb — or fill it \
                     with seed_sql / after_seed",
                    table.name
                ),
            ));
            continue;
        };
        match ColumnEncoder::new(name.clone(), stream, col.gen.sampler(), *ty) {
            Ok(enc) => out.push(enc),
            Err(e) => problems.push(problem(
                scenario,
                &field,
                format!("{}.{name} ({type_name}): {e}", table.name),
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Scenario(problems))
    }
}

/// A scenario problem found only against the live schema: no source position.
fn problem(scenario: &Scenario, field: &str, message: String) -> ScenarioError {
    ScenarioError {
        file: scenario.path.clone(),
        line: 0,
        column: 0,
        field: field.to_string(),
        message,
    }
}

fn bad_table(scenario: &Scenario, index: usize, field: &str, message: String) -> Error {
    Error::Scenario(vec![problem(
        scenario,
        &format!("table[{index}].{field}"),
        message,
    )])
}

/// serial / identity columns we filled: move their sequences past the data so
/// the workload's INSERTs do not collide with seeded keys.
pub(super) async fn sync_sequences(
    client: &Client,
    table: &str,
    encoders: &[ColumnEncoder],
) -> Result<()> {
    for e in encoders {
        let seq: Option<String> = client
            .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&table, &e.name])
            .await
            .map_err(|err| db_error(err, &format!("{table}: sequence lookup")))?
            .get(0);
        if let Some(seq) = seq {
            let sql = format!(
                "SELECT setval($1::text::regclass, m) FROM (SELECT max({})::bigint AS m FROM {table}) s \
                 WHERE m IS NOT NULL",
                quote_ident(&e.name)
            );
            client
                .execute(&sql, &[&seq])
                .await
                .map_err(|err| db_error(err, &format!("{table}: setval of {seq}")))?;
        }
    }
    Ok(())
}
