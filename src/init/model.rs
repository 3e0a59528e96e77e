//! What `init` reads from the source database: plain data, filled by
//! catalog.rs, stats.rs and statements.rs, read by everything after them.

/// Everything read, in one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub database: String,
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    /// The schema the tables were picked from.
    pub schema: String,
    /// The tables to write, in no particular order (order.rs orders them).
    pub tables: Vec<Table>,
    /// Tables `--tables` did not name (or from other schemas) that their
    /// foreign keys reach.
    pub added_by_fk: Vec<String>,
    /// `--tables` named the tables.
    pub named_tables: bool,
    /// User-defined types the columns use (enums, domains), by oid.
    pub types: Vec<TypeDef>,
    /// Sequences named by column defaults that are not a column's own
    /// serial sequence (created before the first table).
    pub sequences: Vec<String>,
    /// Extensions that own a type a column uses (citext, hstore, ...) or a
    /// function a default, check or index calls.
    pub extensions: Vec<String>,
    /// User functions the tables call (not written): `f(integer)`.
    pub functions: Vec<String>,
    /// User functions the tables call, written before the first table:
    /// (`CREATE OR REPLACE FUNCTION ...`, `f(integer)`).
    pub function_defs: Vec<(String, String)>,
    /// Schemas other than the source's that types live in (created).
    pub type_schemas: Vec<String>,
    /// The source's relation names of this schema (tables, views, ...): a
    /// statement that mentions one that is not written is skipped.
    pub relations: Vec<String>,
    /// pg_stat_statements' top statements; None when it is not installed.
    pub statements: Option<Statements>,
    /// The views and materialized views of the schema, by name.
    pub views: Vec<View>,
}

/// A view or materialized view.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub oid: u32,
    pub name: String,
    pub sql_name: String,
    pub materialized: bool,
    /// pg_get_viewdef, without its `;`.
    pub def: String,
    /// `security_barrier=true`, `check_option=local`, ...
    pub options: Vec<String>,
    /// The relations it reads (oids), and their names.
    pub reads: Vec<u32>,
    pub reads_names: Vec<String>,
    /// Functions it calls outside pg_catalog: `f(args)`, followed by the
    /// extension's name for an extension's.
    pub functions: Vec<String>,
}

/// What pg_stat_statements held.
#[derive(Debug, Clone, Default)]
pub struct Statements {
    /// The app's statements, most called first.
    pub top: Vec<Statement>,
    /// (why, how many) of the entries that are not the app's.
    pub skipped: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// The name as SQL, quoted where Postgres would quote it.
    pub sql_name: String,
    /// `r` plain, `p` partitioned.
    pub kind: char,
    /// pg_class.reltuples (of the leaf partitions for a partitioned table);
    /// negative when never analyzed.
    pub reltuples: f64,
    pub relpages: i64,
    pub unlogged: bool,
    /// `fillfactor=70`, ...
    pub options: Vec<String>,
    /// `RANGE (created_at)`: pg_get_partkeydef.
    pub partition_key: Option<String>,
    /// Partitions, depth first (a partition may be partitioned itself).
    pub partitions: Vec<Partition>,
    /// Tables it inherits from (not as a partition).
    pub inherits: Vec<String>,
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    /// Its triggers' names (not written).
    pub triggers: Vec<String>,
    /// Its schema as SQL (quoted where Postgres would quote it).
    pub sql_schema: String,
}

#[derive(Debug, Clone)]
pub struct Partition {
    pub name: String,
    pub parent: String,
    /// `FOR VALUES FROM (...) TO (...)`, `DEFAULT`.
    pub bound: String,
    pub partition_key: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Column {
    pub num: i16,
    pub name: String,
    /// The name as SQL, quoted where Postgres would quote it.
    pub sql_name: String,
    /// format_type: `character varying(20)`, `integer[]`, `status`.
    pub type_sql: String,
    pub type_oid: u32,
    /// The type after following domains: what generators see.
    pub base: BaseType,
    pub not_null: bool,
    /// pg_get_expr of the default.
    pub default: Option<String>,
    /// `a` GENERATED ALWAYS, `d` BY DEFAULT (identity), or none.
    pub identity: Option<char>,
    /// The expression of a GENERATED ALWAYS AS (...) STORED column.
    pub generated: Option<String>,
    /// The default is `nextval` of the column's own sequence: a serial.
    pub serial: bool,
    /// A collation other than the type's: `"C"`.
    pub collation: Option<String>,
    pub stats: Option<ColumnStats>,
}

/// A column's type once domains are followed.
#[derive(Debug, Clone, Default)]
pub struct BaseType {
    pub oid: u32,
    pub name: String,
    /// pg_type.typtype: b base, e enum, c composite, r range, ...
    pub typtype: char,
    /// pg_type.typcategory: N numeric, S string, A array, ...
    pub category: char,
    /// The modifier in force (varchar length + 4, numeric precision/scale).
    pub typmod: i32,
    /// Enum labels in order.
    pub labels: Vec<String>,
}

/// pg_stats for one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnStats {
    pub null_frac: f64,
    pub avg_width: i32,
    /// Positive: a count; negative: minus a share of rows (pg_stats' rule).
    pub n_distinct: f64,
    pub mcv: Vec<String>,
    pub mcf: Vec<f64>,
    pub histogram: Vec<String>,
    pub correlation: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub name: String,
    /// p primary key, u unique, c check, f foreign key, x exclusion.
    pub kind: char,
    /// pg_get_constraintdef: `FOREIGN KEY (a) REFERENCES t(id)`, with
    /// ` NOT VALID` when it is not validated.
    pub def: String,
    pub columns: Vec<i16>,
    /// The referenced table (foreign keys), by oid.
    pub ref_table: Option<u32>,
    pub ref_columns: Vec<i16>,
}

#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    /// pg_get_indexdef, the table name unqualified.
    pub def: String,
    pub unique: bool,
    /// Column numbers; 0 for an expression.
    pub columns: Vec<i16>,
    pub partial: bool,
    pub valid: bool,
}

/// An enum or domain a column uses.
#[derive(Debug, Clone)]
pub struct TypeDef {
    pub oid: u32,
    /// As format_type writes it (what the columns say).
    pub name: String,
    pub kind: TypeKind,
}

#[derive(Debug, Clone)]
pub enum TypeKind {
    Enum(Vec<String>),
    /// The base type as SQL, NOT NULL, DEFAULT and CHECK constraints.
    Domain {
        base: String,
        base_oid: u32,
        /// Text underneath: synthetic text may break its checks.
        text: bool,
        not_null: bool,
        default: Option<String>,
        /// `CONSTRAINT name CHECK (...)`.
        checks: Vec<String>,
    },
    /// `CREATE TYPE name AS (attributes)`.
    Composite(String),
    /// `CREATE TYPE name AS RANGE (subtype = ...)`.
    Range(String),
    /// A base type from outside an extension, or a table's row type: not
    /// written (a comment says so).
    Other(char),
}

/// One pg_stat_statements entry.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The text proposed: pg_stat_statements' with typed literals of a
    /// parameter (`interval $1`) written as casts (`$1::interval`).
    pub query: String,
    /// pg_stat_statements' text when `query` differs from it.
    pub original: Option<String>,
    /// (`$n`'s n, value, type): parameters of a typed literal whose type
    /// no generator writes, passed as text; they get this constant.
    pub constants: Vec<(u32, &'static str, String)>,
    pub calls: i64,
    /// Parameter types as the server described them; None when it could
    /// not be prepared (why).
    pub params: Result<Vec<ParamType>, String>,
}

#[derive(Debug, Clone)]
pub struct ParamType {
    pub oid: u32,
    pub name: String,
    /// A type query parameters can be generated for (crate::scenario::gen::PgType).
    pub supported: bool,
}

impl Table {
    pub fn column(&self, num: i16) -> Option<&Column> {
        self.columns.iter().find(|c| c.num == num)
    }

    /// Row count to generate: reltuples, rounded; 0 for an empty table.
    pub fn rows(&self) -> u64 {
        if self.reltuples > 0.0 {
            self.reltuples.round() as u64
        } else {
            0
        }
    }

    /// Never analyzed (reltuples -1 since PostgreSQL 14, or 0 with pages).
    pub fn never_analyzed(&self) -> bool {
        self.reltuples < 0.0 || (self.reltuples == 0.0 && self.relpages > 0)
    }
}
