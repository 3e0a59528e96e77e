//! Reading the schema from the system catalogs: tables and their partitions,
//! columns, constraints, indexes, and the user-defined types the columns
//! use. Catalog queries only; names come back quoted by the server
//! (`quote_ident`, `format_type`, `pg_get_*def`) so they paste into SQL as is.

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::{Client, Row};

use super::model::{BaseType, Column, Constraint, Index, Partition, Table, TypeDef, TypeKind};
use super::session::read_error;
use crate::error::Result;

/// First oid of objects not built into PostgreSQL (FirstNormalObjectId).
const FIRST_USER_OID: u32 = 16384;

const TABLE_COLUMNS: &str = "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
        c.reltuples::float8, c.relpages::int8, c.relpersistence = 'u', \
        coalesce(c.reloptions, '{}')::text[], \
        CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
        ARRAY(SELECT quote_ident(p.relname) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
              WHERE i.inhrelid = c.oid ORDER BY i.inhseqno), \
        quote_ident(c.relname), quote_ident(n.nspname) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition";

fn table_of(r: &Row) -> Table {
    let relkind: String = r.get(3);
    Table {
        oid: r.get(0),
        schema: r.get(1),
        name: r.get(2),
        kind: relkind.chars().next().unwrap_or('r'),
        reltuples: r.get(4),
        relpages: r.get(5),
        unlogged: r.get(6),
        options: r.get(7),
        partition_key: r.get(8),
        inherits: r.get(9),
        sql_name: r.get(10),
        sql_schema: r.get(11),
        ..Table::default()
    }
}

/// The plain and partitioned tables of `schema` (partitions are read with
/// their parent), by name.
pub async fn schema_tables(client: &Client, schema: &str) -> Result<Vec<Table>> {
    let sql = format!("{TABLE_COLUMNS} AND n.nspname = $1 ORDER BY c.relname");
    let rows = client
        .query(&sql, &[&schema])
        .await
        .map_err(|e| read_error(e, "the tables"))?;
    Ok(rows.iter().map(table_of).collect())
}

/// Tables by oid (foreign-key parents in another schema).
pub async fn tables_by_oid(client: &Client, oids: &[u32]) -> Result<Vec<Table>> {
    let sql = format!("{TABLE_COLUMNS} AND c.oid = ANY($1) ORDER BY c.relname");
    let rows = client
        .query(&sql, &[&oids])
        .await
        .map_err(|e| read_error(e, "the tables foreign keys reference"))?;
    Ok(rows.iter().map(table_of).collect())
}

/// (child, parent) of every foreign key of `oids`.
pub async fn fk_edges(client: &Client, oids: &[u32]) -> Result<Vec<(u32, u32)>> {
    let rows = client
        .query(
            "SELECT conrelid, confrelid FROM pg_constraint \
             WHERE contype = 'f' AND conparentid = 0 AND conrelid = ANY($1) \
             ORDER BY conrelid, confrelid",
            &[&oids],
        )
        .await
        .map_err(|e| read_error(e, "the foreign keys"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The names of every relation in `schema` (tables, views, sequences, ...).
pub async fn relation_names(client: &Client, schema: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(|e| read_error(e, "the relations"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Columns, constraints, indexes and partitions of every table.
pub async fn fill(client: &Client, tables: &mut [Table]) -> Result<()> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let mut columns = columns(client, &oids).await?;
    let mut constraints = constraints(client, &oids).await?;
    let mut indexes = indexes(client, &oids).await?;
    for t in tables.iter_mut() {
        t.columns = columns.remove(&t.oid).unwrap_or_default();
        t.constraints = constraints.remove(&t.oid).unwrap_or_default();
        t.indexes = indexes.remove(&t.oid).unwrap_or_default();
        if t.kind == 'p' {
            partitions(client, t).await?;
        }
    }
    Ok(())
}

async fn columns(client: &Client, oids: &[u32]) -> Result<HashMap<u32, Vec<Column>>> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attnum, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    a.atttypid, a.atttypmod, a.attnotnull, pg_get_expr(d.adbin, d.adrelid), \
                    a.attidentity::text, a.attgenerated::text, \
                    pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) IS NOT NULL, \
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation \
                         THEN quote_ident(co.collname) END, \
                    quote_ident(a.attname) \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| read_error(e, "the columns"))?;
    let mut out: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in rows {
        let default: Option<String> = r.get(7);
        let identity: String = r.get(8);
        let generated: String = r.get(9);
        let owned_sequence: bool = r.get(10);
        let identity = identity.chars().next();
        let is_generated = !generated.is_empty();
        let serial = identity.is_none()
            && owned_sequence
            && default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("));
        let typmod: i32 = r.get(5);
        out.entry(r.get(0)).or_default().push(Column {
            num: r.get(1),
            name: r.get(2),
            type_sql: r.get(3),
            type_oid: r.get(4),
            base: BaseType {
                typmod,
                ..BaseType::default()
            },
            not_null: r.get(6),
            generated: if is_generated { default.clone() } else { None },
            default: if is_generated { None } else { default },
            identity,
            serial,
            collation: r.get(11),
            sql_name: r.get(12),
            stats: None,
        });
    }
    Ok(out)
}

async fn constraints(client: &Client, oids: &[u32]) -> Result<HashMap<u32, Vec<Constraint>>> {
    let rows = client
        .query(
            "SELECT k.conrelid, quote_ident(k.conname), k.contype::text, pg_get_constraintdef(k.oid), \
                    coalesce(k.conkey, '{}'), CASE WHEN k.contype = 'f' THEN k.confrelid END, \
                    coalesce(k.confkey, '{}') \
             FROM pg_constraint k \
             WHERE k.conrelid = ANY($1) AND k.contype IN ('p', 'u', 'c', 'f', 'x') \
                AND k.conparentid = 0 \
             ORDER BY k.conrelid, k.conname",
            &[&oids],
        )
        .await
        .map_err(|e| read_error(e, "the constraints"))?;
    let mut out: HashMap<u32, Vec<Constraint>> = HashMap::new();
    for r in rows {
        let kind: String = r.get(2);
        out.entry(r.get(0)).or_default().push(Constraint {
            name: r.get(1),
            kind: kind.chars().next().unwrap_or('c'),
            def: r.get(3),
            columns: r.get(4),
            ref_table: r.get(5),
            ref_columns: r.get(6),
        });
    }
    Ok(out)
}

async fn indexes(client: &Client, oids: &[u32]) -> Result<HashMap<u32, Vec<Index>>> {
    // pg_get_indexdef qualifies the table; the rehearsal database creates
    // tables unqualified, and an index on a partitioned table must recurse
    // (no ONLY).
    let rows = client
        .query(
            "SELECT i.indrelid, \
                    replace(replace(pg_get_indexdef(i.indexrelid), \
                        ' ON ONLY ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ', \
                        ' ON ' || quote_ident(c.relname) || ' '), \
                        ' ON ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ', \
                        ' ON ' || quote_ident(c.relname) || ' '), \
                    quote_ident(ic.relname), i.indisunique, i.indkey::int2[], \
                    i.indpred IS NOT NULL, i.indisvalid \
             FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = ANY($1) \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid \
                               AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')) \
             ORDER BY i.indrelid, ic.relname",
            &[&oids],
        )
        .await
        .map_err(|e| read_error(e, "the indexes"))?;
    let mut out: HashMap<u32, Vec<Index>> = HashMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(Index {
            def: r.get(1),
            name: r.get(2),
            unique: r.get(3),
            columns: r.get(4),
            partial: r.get(5),
            valid: r.get(6),
        });
    }
    Ok(out)
}

/// Every partition below `t` (parents before their own partitions), and
/// the leaves' reltuples summed into `t`.
async fn partitions(client: &Client, t: &mut Table) -> Result<()> {
    let rows = client
        .query(
            "WITH RECURSIVE parts AS ( \
                 SELECT inhrelid AS oid, inhparent AS parent, 1 AS depth FROM pg_inherits \
                 WHERE inhparent = $1 \
                 UNION ALL \
                 SELECT i.inhrelid, i.inhparent, p.depth + 1 FROM pg_inherits i \
                 JOIN parts p ON i.inhparent = p.oid) \
             SELECT quote_ident(c.relname), quote_ident(pc.relname), \
                    pg_get_expr(c.relpartbound, c.oid), \
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                    c.relkind::text, c.reltuples::float8, c.relpages::int8 \
             FROM parts p JOIN pg_class c ON c.oid = p.oid JOIN pg_class pc ON pc.oid = p.parent \
             ORDER BY p.depth, c.relname",
            &[&t.oid],
        )
        .await
        .map_err(|e| read_error(e, &format!("the partitions of {}", t.name)))?;
    let (mut tuples, mut pages, mut analyzed) = (0.0, 0i64, true);
    for r in rows {
        let kind: String = r.get(4);
        if kind == "r" {
            let reltuples: f64 = r.get(5);
            if reltuples < 0.0 {
                analyzed = false;
            }
            tuples += reltuples.max(0.0);
            pages += r.get::<_, i64>(6);
        }
        t.partitions.push(Partition {
            name: r.get(0),
            parent: r.get(1),
            bound: r.get(2),
            partition_key: r.get(3),
        });
    }
    t.reltuples = if analyzed { tuples } else { -1.0 };
    t.relpages = pages;
    Ok(())
}

/// The user-defined types to create, the extensions that own the others,
/// and the schemas qualified type names need.
pub struct TypesRead {
    pub defs: Vec<TypeDef>,
    pub extensions: Vec<String>,
    pub schemas: Vec<String>,
}

/// The types the columns use, with domains followed to their base; fills
/// each column's [`BaseType`].
pub async fn types(client: &Client, tables: &mut [Table]) -> Result<TypesRead> {
    let mut info: HashMap<u32, TypeRow> = HashMap::new();
    let mut wanted: BTreeSet<u32> = tables
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| c.type_oid))
        .collect();
    // Domains name their base, arrays their element, composites their
    // attributes' types: follow until nothing new turns up.
    for _ in 0..16 {
        let missing: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|o| !info.contains_key(o))
            .collect();
        if missing.is_empty() {
            break;
        }
        for row in type_rows(client, &missing).await? {
            for next in [row.basetype, row.elem]
                .into_iter()
                .chain(row.attribute_types.iter().copied())
            {
                if next != 0 {
                    wanted.insert(next);
                }
            }
            info.insert(row.oid, row);
        }
    }
    for t in tables.iter_mut() {
        for c in &mut t.columns {
            c.base = base_of(&info, c.type_oid, c.base.typmod);
        }
    }
    let mut defs = Vec::new();
    let mut schemas = Vec::new();
    let mut extensions = BTreeSet::new();
    for row in info.values() {
        if let Some(ext) = &row.extension {
            extensions.insert(ext.clone());
            continue;
        }
        if row.oid < FIRST_USER_OID || (row.typtype == 'b' && row.category == 'A') {
            continue;
        }
        let kind = match row.typtype {
            'e' => TypeKind::Enum(row.labels.clone()),
            'd' => TypeKind::Domain {
                base: row.base_sql.clone().unwrap_or_default(),
                base_oid: row.basetype,
                text: base_of(&info, row.oid, -1).category == 'S',
                not_null: row.notnull,
                default: row.default.clone(),
                checks: row.checks.clone(),
            },
            'c' if row.composite.is_some() => {
                TypeKind::Composite(row.composite.clone().unwrap_or_default())
            }
            'r' if row.range_of.is_some() => {
                TypeKind::Range(row.range_of.clone().unwrap_or_default())
            }
            other => TypeKind::Other(other),
        };
        // Qualified by format_type: its schema must exist.
        if row.name.starts_with(&format!("{}.", row.schema))
            && row.schema != "public"
            && !schemas.contains(&row.schema)
        {
            schemas.push(row.schema.clone());
        }
        defs.push(TypeDef {
            oid: row.oid,
            name: row.name.clone(),
            kind,
        });
    }
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    schemas.sort();
    Ok(TypesRead {
        defs,
        extensions: extensions.into_iter().collect(),
        schemas,
    })
}

struct TypeRow {
    oid: u32,
    name: String,
    typname: String,
    typtype: char,
    category: char,
    basetype: u32,
    base_sql: Option<String>,
    typtypmod: i32,
    elem: u32,
    notnull: bool,
    default: Option<String>,
    checks: Vec<String>,
    labels: Vec<String>,
    attribute_types: Vec<u32>,
    extension: Option<String>,
    /// A stand-alone composite type's attributes, as SQL.
    composite: Option<String>,
    /// A range type's subtype.
    range_of: Option<String>,
    /// The type's schema, quoted.
    schema: String,
}

async fn type_rows(client: &Client, oids: &[u32]) -> Result<Vec<TypeRow>> {
    let rows = client
        .query(
            "SELECT t.oid, format_type(t.oid, NULL), t.typname::text, t.typtype::text, \
                    t.typcategory::text, t.typbasetype, \
                    CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
                    t.typtypmod, CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END, \
                    t.typnotnull, t.typdefault, \
                    ARRAY(SELECT 'CONSTRAINT ' || quote_ident(k.conname) || ' ' || \
                                 pg_get_constraintdef(k.oid) FROM pg_constraint k \
                          WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname), \
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid \
                          ORDER BY e.enumsortorder), \
                    ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = t.typrelid \
                          AND t.typrelid <> 0 AND a.attnum > 0 AND NOT a.attisdropped), \
                    (SELECT quote_ident(x.extname) FROM pg_depend dep \
                     JOIN pg_extension x ON x.oid = dep.refobjid \
                     WHERE dep.classid = 'pg_type'::regclass AND dep.objid = t.oid \
                       AND dep.refclassid = 'pg_extension'::regclass AND dep.deptype = 'e' LIMIT 1), \
                    CASE WHEN t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c' \
                         THEN (SELECT string_agg(quote_ident(a.attname) || ' ' || \
                                                 format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) \
                               FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 \
                                 AND NOT a.attisdropped) END, \
                    (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid), \
                    (SELECT quote_ident(nspname) FROM pg_namespace WHERE oid = t.typnamespace) \
             FROM pg_type t WHERE t.oid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(|e| read_error(e, "the column types"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let c = |i: usize| r.get::<_, String>(i).chars().next().unwrap_or(' ');
            TypeRow {
                oid: r.get(0),
                name: r.get(1),
                typname: r.get(2),
                typtype: c(3),
                category: c(4),
                basetype: r.get(5),
                base_sql: r.get(6),
                typtypmod: r.get(7),
                elem: r.get(8),
                notnull: r.get(9),
                default: r.get(10),
                checks: r.get(11),
                labels: r.get(12),
                attribute_types: r.get(13),
                extension: r.get(14),
                composite: r.get(15),
                range_of: r.get(16),
                schema: r.get(17),
            }
        })
        .collect())
}

/// A type with its domains followed: the base's name, kind and category,
/// and the modifier in force (the column's, or the innermost domain's).
fn base_of(info: &HashMap<u32, TypeRow>, oid: u32, typmod: i32) -> BaseType {
    let (mut oid, mut typmod) = (oid, typmod);
    for _ in 0..16 {
        match info.get(&oid) {
            Some(t) if t.typtype == 'd' => {
                typmod = t.typtypmod;
                oid = t.basetype;
            }
            Some(t) => {
                return BaseType {
                    oid,
                    name: t.typname.clone(),
                    typtype: t.typtype,
                    category: t.category,
                    typmod,
                    labels: t.labels.clone(),
                }
            }
            None => break,
        }
    }
    BaseType {
        oid,
        typmod,
        ..BaseType::default()
    }
}
