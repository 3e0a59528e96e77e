//! The catalog side of seeding: what a freshly created table looks like,
//! which generator fills which column (and as which type), and moving serial
//! sequences past the seeded keys.

use std::collections::HashMap;

use bytes::Bytes;
use tokio_postgres::Client;

use super::copy::ColumnEncoder;
use super::db_error;
use crate::error::{Error, Result, ScenarioError};
use crate::pg::quote_ident;
use crate::scenario::gen::PgType;
use crate::scenario::{Gen, Scenario, TablePlan};

/// What the catalog says about a table (freshly created, or created by the
/// setup migrations).
pub(super) struct TableInfo {
    pub(super) oid: u32,
    pub(super) qualified: String,
    /// A plain table created in the current transaction: COPY FREEZE works.
    pub(super) freezable: bool,
    pub(super) columns: Vec<ColumnInfo>,
    /// A BEFORE INSERT row trigger may fill any column: NOT NULL columns
    /// without a generator are not refused then.
    pub(super) fills_on_insert: bool,
    /// The table's rules by name — constraints and unique indexes — with
    /// the columns each covers: a row the server refuses names only the
    /// rule (`positive`, `t_pkey`), and the seeder locates it at a column.
    pub(super) rules: Vec<(String, Vec<String>)>,
}

/// One column of a table, as the seeder needs it.
pub(super) struct ColumnInfo {
    pub(super) name: String,
    /// The type generators write (None: not writable by us).
    pub(super) ty: Option<PgType>,
    /// format_type(): what messages show.
    pub(super) type_name: String,
    /// GENERATED ALWAYS AS (...) STORED: Postgres computes it.
    pub(super) generated: bool,
    pub(super) not_null: bool,
    /// A DEFAULT or an identity: a row without a value for it still gets one.
    pub(super) has_default: bool,
    /// The seeded table its single-column foreign key references.
    pub(super) references: Option<String>,
}

pub(super) async fn describe(
    client: &Client,
    scenario: &Scenario,
    index: usize,
) -> Result<TableInfo> {
    let table: &TablePlan = &scenario.tables[index];
    let ctx = |e| db_error(e, &format!("table {}: catalog lookup", table.name));
    // The name as one identifier first: `Order Items` is not valid SQL
    // unquoted (to_regclass raises rather than returning NULL); then as
    // SQL (`public.orders`, or `Orders` folding to orders).
    let row = client
        .query_opt(
            "SELECT c.oid, c.oid::regclass::text, c.relkind::text, \
                    c.xmin::text = (txid_current() % 4294967296)::text \
             FROM pg_class c \
             WHERE c.oid = coalesce(to_regclass(quote_ident($1)), to_regclass($1))",
            &[&table.name],
        )
        .await
        .map_err(ctx)?;
    let Some(row) = row else {
        let after = match table.create {
            Some(_) => "after running its create SQL",
            None => {
                "after the setup migrations (a [[table]] without create names a table they create)"
            }
        };
        return Err(bad_table(
            scenario,
            index,
            "name",
            format!("table {:?} does not exist {after}", table.name),
        ));
    };
    let oid: u32 = row.get(0);
    let relkind: String = row.get(2);
    let created_here: bool = row.get(3);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod), \
                    t.typtype::text, t.typname::text, t.typbasetype, a.attgenerated::text <> '', \
                    a.attnotnull, a.atthasdef OR a.attidentity::text <> '' \
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
        columns.push(ColumnInfo {
            name: r.get(0),
            ty,
            type_name: r.get(2),
            generated: r.get(6),
            not_null: r.get(7),
            has_default: r.get(8),
            references: None,
        });
    }
    let fills_on_insert: bool = client
        .query_one(
            // tgtype bits: 1 row, 2 before, 4 insert.
            "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal \
                 AND tgtype & 7 = 7 AND tgenabled <> 'D')",
            &[&oid],
        )
        .await
        .map_err(ctx)?
        .get(0);
    let rules = client
        .query(
            // Constraints (CHECK, UNIQUE, PRIMARY KEY, FOREIGN KEY,
            // EXCLUDE) and unique indexes made without one; columns in
            // the rule's own order.
            "SELECT c.conname::text, ARRAY(SELECT a.attname::text FROM unnest(c.conkey)                  WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = c.conrelid                  AND a.attnum = k.n ORDER BY k.o)              FROM pg_constraint c WHERE c.conrelid = $1              UNION ALL              SELECT (SELECT relname::text FROM pg_class WHERE oid = i.indexrelid), ARRAY(SELECT a.attname::text                  FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n                  ORDER BY k.o)              FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique                  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            &[&oid],
        )
        .await
        .map_err(ctx)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(TableInfo {
        oid,
        qualified: row.get(1),
        freezable: relkind == "r" && created_here,
        columns,
        fills_on_insert,
        rules,
    })
}

/// The binary payload of each `constant` column whose type the generators
/// cannot write themselves (arrays, inet, interval, ...): the server converts
/// the text with the type's own input function, once per column.
pub(super) async fn server_constants(
    client: &Client,
    scenario: &Scenario,
    index: usize,
    info: &TableInfo,
) -> Result<HashMap<String, Bytes>> {
    let table = &scenario.tables[index];
    let mut out = HashMap::new();
    for col in &table.columns {
        let Gen::Constant { value } = &col.gen.kind else {
            continue;
        };
        if col.gen.null_fraction > 0.0 {
            continue;
        }
        let Some(ColumnInfo {
            name,
            ty: None,
            type_name,
            generated: false,
            ..
        }) = find_column(info, &col.name)
        else {
            continue;
        };
        let sql = format!("SELECT $1::text::{type_name}");
        match client.query_one(&sql, &[value]).await {
            Ok(row) => {
                let RawValue(payload) = row.get(0);
                out.insert(name.clone(), Bytes::from(payload));
            }
            Err(e) if e.as_db_error().is_some() => {
                return Err(bad_table(
                    scenario,
                    index,
                    &format!("columns.{}", col.name),
                    format!(
                        "{}.{name}: the constant {value:?} is not a {type_name}: {}",
                        table.name,
                        crate::pg::error_text(&e)
                    ),
                ))
            }
            Err(e) => {
                return Err(db_error(
                    e,
                    &format!("table {}: constant of {name}", table.name),
                ))
            }
        }
    }
    Ok(out)
}

/// A value of any type, as the server's binary bytes.
struct RawValue(Vec<u8>);

impl<'a> postgres_types::FromSql<'a> for RawValue {
    fn from_sql(
        _: &postgres_types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }

    fn accepts(_: &postgres_types::Type) -> bool {
        true
    }
}

/// Pair each scenario column with its table column, in scenario order;
/// `constants` are the payloads [`server_constants`] converted; `seed` the
/// run's, which a column copying a parent's (`fk` with `column`) computes
/// the parent's values with.
pub(super) fn bind_columns(
    scenario: &Scenario,
    index: usize,
    info: &TableInfo,
    constants: &HashMap<String, Bytes>,
    seed: u64,
) -> Result<Vec<ColumnEncoder>> {
    let table = &scenario.tables[index];
    let mut out = Vec::with_capacity(table.columns.len());
    let mut problems = Vec::new();
    for (stream, col) in table.columns.iter().enumerate() {
        let field = format!("table[{index}].columns.{}", col.name);
        let Some(found) = find_column(info, &col.name) else {
            let have: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
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
        let ColumnInfo {
            name,
            ty,
            type_name,
            ..
        } = found;
        // `id` and `ID` (an unquoted identifier folds to lower case) are
        // one column: COPY refuses to be given it twice.
        if let Some(other) = table.columns[..stream]
            .iter()
            .find(|o| find_column(info, &o.name).is_some_and(|c| c.name == *name))
        {
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "{}.{name} already has a generator, under `{}`: give each column one",
                    table.name, other.name
                ),
            ));
            continue;
        }
        if found.generated {
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
            if let Some(payload) = constants.get(name) {
                out.push(ColumnEncoder::fixed(
                    name.clone(),
                    stream,
                    col.gen.sampler().seeded(seed),
                    payload,
                ));
                continue;
            }
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "{}.{name} has type {type_name}, which generators cannot fill; \
                     use int/bigint, real/double precision, numeric, text/varchar/char, \
                     an enum, boolean, timestamp[tz], date, uuid, json or jsonb — or give it \
                     a constant, or fill it with seed_sql / after_seed",
                    table.name
                ),
            ));
            continue;
        };
        let enc = ColumnEncoder::new(name.clone(), stream, col.gen.sampler().seeded(seed), *ty);
        match enc.and_then(|enc| enc.check().map(|()| enc)) {
            Ok(enc) => out.push(enc),
            Err(e) => problems.push(problem(
                scenario,
                &field,
                format!("{}.{name} ({type_name}): {e}", table.name),
            )),
        }
    }
    if table.rows > 0 && !info.fills_on_insert {
        problems.extend(unfilled(scenario, index, info));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Scenario(problems))
    }
}

/// The table's column `name`: as written, or folded to lower case as an
/// unquoted identifier is, when that names exactly one.
pub(super) fn find_column<'a>(info: &'a TableInfo, name: &str) -> Option<&'a ColumnInfo> {
    info.columns.iter().find(|c| c.name == name).or_else(|| {
        let lower = name.to_lowercase();
        let mut m = info.columns.iter().filter(|c| c.name == lower);
        m.next().filter(|_| m.next().is_none())
    })
}

/// NOT NULL columns without a default that no generator fills: every row
/// would fail. Located at the `[[table]]`, with a generator to add.
fn unfilled(scenario: &Scenario, index: usize, info: &TableInfo) -> Vec<ScenarioError> {
    let table = &scenario.tables[index];
    info.columns
        .iter()
        .filter(|c| c.not_null && !c.has_default && !c.generated)
        .filter(|c| {
            !table
                .columns
                .iter()
                .any(|g| find_column(info, &g.name).is_some_and(|f| f.name == c.name))
        })
        .map(|c| {
            problem(
                scenario,
                &format!("table[{index}]"),
                format!(
                    "{}.{} ({}) is NOT NULL without a default, and no generator fills it: every \
                     row would fail; add one under [table.columns], e.g. {} = {}",
                    table.name,
                    c.name,
                    c.type_name,
                    crate::pg::quote_ident(&c.name),
                    match &c.references {
                        // Only integer keys get it unasked: `fk` writes the
                        // keys 1..=rows, which a `sequence` key of the
                        // parent holds as text too.
                        Some(t) => format!(
                            r#"{{ gen = "fk", table = "{t}" }} (a foreign key of {t}: it draws 1..=rows, the keys {t}'s `sequence` writes)"#
                        ),
                        None => example_generator(c.ty).to_string(),
                    }
                ),
            )
        })
        .collect()
}

/// A generator that fits a column of this type, for a message.
fn example_generator(ty: Option<PgType>) -> &'static str {
    match ty {
        Some(PgType::Int2 | PgType::Int4 | PgType::Int8) => {
            r#"{ gen = "int", min = 1, max = 1000 }"#
        }
        Some(PgType::Float4 | PgType::Float8 | PgType::Numeric) => {
            r#"{ gen = "float", min = 0, max = 100 }"#
        }
        Some(PgType::Bool) => r#"{ gen = "bool" }"#,
        Some(PgType::Timestamptz | PgType::Timestamp | PgType::Date) => {
            r#"{ gen = "timestamp", from = "2024-01-01", to = "2026-01-01" }"#
        }
        Some(PgType::Uuid) => r#"{ gen = "uuid" }"#,
        Some(PgType::Json | PgType::Jsonb) => r#"{ gen = "json" }"#,
        Some(PgType::Text) | None => r#"{ gen = "text" }"#,
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

/// Integer columns we filled that draw from a sequence — serial and identity
/// columns, and any whose DEFAULT calls nextval() on one, which may be shared
/// with other tables —: move each sequence past the data, never back (a
/// table seeded earlier may have moved it further), so the workload's
/// INSERTs do not collide with seeded keys.
pub(super) async fn sync_sequences(
    client: &Client,
    table: &str,
    encoders: &[ColumnEncoder],
) -> Result<()> {
    let drawn: Vec<(String, String)> = client
        .query(
            "SELECT a.attname::text, s.seq FROM pg_attribute a CROSS JOIN LATERAL ( \
               SELECT pg_get_serial_sequence($1, a.attname) AS seq \
               UNION \
               SELECT d.refobjid::regclass::text FROM pg_attrdef ad \
                 JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
                   AND d.refclassid = 'pg_class'::regclass \
                 JOIN pg_class c ON c.oid = d.refobjid AND c.relkind = 'S' \
               WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum) s \
             WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
               AND s.seq IS NOT NULL \
               AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype)",
            &[&table],
        )
        .await
        .map_err(|err| db_error(err, &format!("{table}: sequence lookup")))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (column, seq) in drawn {
        if !encoders.iter().any(|e| e.name == column) {
            continue;
        }
        let sql = format!(
            "SELECT setval($1::text::regclass, \
               greatest(m, coalesce(pg_sequence_last_value($1::text::regclass), m))) \
             FROM (SELECT max({})::bigint AS m FROM {table}) s WHERE m IS NOT NULL",
            quote_ident(&column)
        );
        client
            .execute(&sql, &[&seq])
            .await
            .map_err(|err| db_error(err, &format!("{table}: setval of {seq}")))?;
    }
    Ok(())
}
