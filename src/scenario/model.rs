//! The raw TOML model of a scenario file (owned by the scenario loader).
//!
//! Every field is optional and wrapped in [`Spanned`] so that validation can
//! report *all* missing or invalid values with their line:column instead of
//! stopping at the first one; only unknown keys and wrong TOML types stop the
//! serde pass. Fields whose TOML type varies (a number or a string, a date or a
//! string) are kept as [`toml::Value`] and checked by the validator.

use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;
use toml::Value;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scenario: a TOML table of name, [[table]], [workload], ..."
)]
pub struct ScenarioFile {
    pub name: Option<S<String>>,
    pub description: Option<S<String>>,
    pub pair: Option<S<String>>,
    pub variant: Option<S<String>>,
    pub postgres: Option<PostgresSection>,
    pub migrations: Option<MigrationsSection>,
    #[serde(default)]
    pub table: Vec<S<TableSection>>,
    pub seed_sql: Option<S<SqlText>>,
    pub workload: Option<WorkloadSection>,
    #[serde(default)]
    pub phase: Vec<S<PhaseSection>>,
    pub budget: Option<BudgetSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [postgres] table")]
pub struct PostgresSection {
    /// "17" or 17.
    pub version: Option<S<Value>>,
    pub image: Option<S<String>>,
    pub settings: Option<OrderedMap<S<Value>>>,
    /// `{ cpus = 4, memory = "16GB" }`.
    pub size: Option<SizeSection>,
    /// Start a streaming physical replica next to the primary.
    pub replica: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a size table")]
pub struct SizeSection {
    pub cpus: Option<S<i64>>,
    pub memory: Option<S<String>>,
}

/// `[migrations]`: a directory of the project's migration files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [migrations] table")]
pub struct MigrationsSection {
    pub dir: Option<S<String>>,
    pub layout: Option<S<String>>,
    pub rehearse: Option<S<RehearseSection>>,
    /// Flyway `mixed`.
    pub mixed: Option<S<bool>>,
    /// Flyway `executeInTransaction`.
    pub execute_in_transaction: Option<S<bool>>,
    /// Flyway `placeholderReplacement`.
    pub placeholder_replacement: Option<S<bool>>,
    /// Flyway `placeholders.*`.
    pub placeholders: Option<S<OrderedMap<S<String>>>>,
    /// golang-migrate `x-multi-statement`.
    pub multi_statement: Option<S<bool>>,
}

/// `rehearse = { from = "5" }` or `{ last = 2 }`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: { from = \"<version>\" } or { last = <count> }"
)]
pub struct RehearseSection {
    /// A version: "1.10" or 5 (a float would lose "1.10").
    pub from: Option<S<Value>>,
    pub last: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[table]] entry")]
pub struct TableSection {
    pub name: Option<S<String>>,
    pub rows: Option<S<i64>>,
    pub create: Option<S<String>>,
    pub after_seed: Option<S<SqlText>>,
    pub columns: Option<OrderedMap<S<GenSpec>>>,
}

/// A generator spec: one flat struct so every field keeps its own span; the
/// validator checks which fields each `gen` kind allows and needs.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a generator table, e.g. { gen = \"int\", min = 1, max = 100 }"
)]
pub struct GenSpec {
    pub gen: Option<S<String>>,
    pub min: Option<S<Value>>,
    pub max: Option<S<Value>>,
    pub dist: Option<S<String>>,
    pub s: Option<S<f64>>,
    pub values: Option<S<Vec<S<Value>>>>,
    pub weights: Option<S<Vec<S<i64>>>>,
    pub from: Option<S<Value>>,
    pub to: Option<S<Value>>,
    pub min_len: Option<S<i64>>,
    pub max_len: Option<S<i64>>,
    pub p_true: Option<S<f64>>,
    pub p: Option<S<f64>>,
    pub keys: Option<S<i64>>,
    pub table: Option<S<String>>,
    pub value: Option<S<Value>>,
    pub start: Option<S<i64>>,
    pub null_fraction: Option<S<f64>>,
    /// Edges of equally likely buckets (int, float, timestamp).
    pub bounds: Option<S<Vec<S<Value>>>>,
    /// A count, or a share of the table's rows such as "50%".
    pub distinct: Option<S<Value>>,
    /// `choice`: the generator for everything not in `values`.
    pub rest: Option<Box<S<GenSpec>>>,
    pub rest_weight: Option<S<i64>>,
    /// `fk`: the constraint is added after seeding, so the table may be a
    /// later one or this one.
    pub deferred: Option<S<bool>>,
    /// `fk`: the parent's value of this column in the row referenced (a
    /// key of several columns), instead of the parent's key number.
    pub column: Option<S<String>>,
    /// `fk` with `column`: the foreign key it is part of, where a table has
    /// two into one parent (from / to): each draws its own row.
    pub key: Option<S<String>>,
}

impl GenSpec {
    /// (field name, span) of every field that is set, `gen` excluded.
    pub fn set_fields(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut v = Vec::new();
        macro_rules! field {
            ($($f:ident),*) => {$(
                if let Some(x) = &self.$f {
                    v.push((stringify!($f), x.span()));
                }
            )*};
        }
        field!(
            min,
            max,
            dist,
            s,
            values,
            weights,
            from,
            to,
            min_len,
            max_len,
            p_true,
            p,
            keys,
            table,
            value,
            start,
            null_fraction,
            bounds,
            distinct,
            rest,
            rest_weight,
            deferred,
            column,
            key
        );
        v
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [workload] table")]
pub struct WorkloadSection {
    pub clients: Option<S<i64>>,
    pub rate: Option<S<f64>>,
    pub before: Option<S<String>>,
    pub after: Option<S<String>>,
    pub window: Option<S<String>>,
    pub query_timeout: Option<S<String>>,
    #[serde(default)]
    pub query: Vec<S<QuerySection>>,
    #[serde(default)]
    pub script: Vec<S<ScriptSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[workload.query]] entry")]
pub struct QuerySection {
    pub name: Option<S<String>>,
    pub weight: Option<S<i64>>,
    pub apps: Option<S<Vec<S<String>>>>,
    pub sql: Option<S<String>>,
    pub params: Option<S<Vec<S<GenSpec>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[workload.script]] entry")]
pub struct ScriptSection {
    pub name: Option<S<String>>,
    pub at: Option<S<String>>,
    pub sql: Option<S<SqlText>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[phase]] entry")]
pub struct PhaseSection {
    pub name: Option<S<String>>,
    pub apps: Option<S<Vec<S<String>>>>,
    /// Rehearsed migrations run by this phase: a list of names, or "*"
    /// (those no other phase runs).
    pub migrations: Option<S<Value>>,
    #[serde(default)]
    pub step: Vec<S<StepSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[phase.step]] entry")]
pub struct StepSection {
    pub name: Option<S<String>>,
    pub sql: Option<S<SqlText>>,
    /// A rehearsed migration of `[migrations]`, by name.
    pub migration: Option<S<String>>,
    /// Any `.sql` file, relative to the scenario file.
    pub file: Option<S<String>>,
    pub transaction: Option<S<bool>>,
    pub lock_timeout: Option<S<String>>,
    pub statement_timeout: Option<S<String>>,
    pub retries: Option<S<i64>>,
    pub retry_backoff: Option<S<String>>,
    pub pause_after: Option<S<String>>,
    /// A SQLSTATE ("57014") or a list of them: the step is expected to fail
    /// with one, and the migration goes on.
    pub expect_error: Option<S<Value>>,
    pub backfill: Option<S<BackfillSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a backfill table")]
pub struct BackfillSection {
    pub table: Option<S<String>>,
    pub key: Option<S<String>>,
    pub batch: Option<S<i64>>,
    pub pause: Option<S<String>>,
    pub set: Option<S<String>>,
    #[serde(rename = "where")]
    pub where_clause: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [budget] table")]
pub struct BudgetSection {
    pub max_blocking_lock_ms: Option<S<f64>>,
    pub max_app_wait_ms: Option<S<f64>>,
    pub p99_ms: Option<S<f64>>,
    pub max_errors: Option<S<i64>>,
    /// A ratio (0.01) or a percentage ("1%"), as `--budget` takes it.
    pub max_error_rate: Option<S<Value>>,
    pub max_duration_ms: Option<S<f64>>,
    pub max_invalid_indexes: Option<S<i64>>,
    pub max_recovery_ms: Option<S<f64>>,
    pub max_replica_lag_ms: Option<S<f64>>,
}

/// SQL given as one string (split into statements later) or a list of strings.
#[derive(Debug)]
pub enum SqlText {
    One(String),
    Many(Vec<S<String>>),
}

impl<'de> Deserialize<'de> for SqlText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SqlText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("SQL as a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SqlText, E> {
                Ok(SqlText::One(s.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<SqlText, E> {
                Ok(SqlText::One(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SqlText, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<S<String>>()? {
                    v.push(s);
                }
                Ok(SqlText::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A TOML table kept in document order, keys with their spans.
#[derive(Debug)]
pub struct OrderedMap<V>(pub Vec<(S<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedMap<V>, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key::<S<String>>()? {
                    let val = m.next_value::<V>()?;
                    v.push((k, val));
                }
                Ok(OrderedMap(v))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}
