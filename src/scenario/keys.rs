//! Every unknown key in a file at once (serde stops at the first), each with
//! its location, dotted path, the keys allowed there and a "did you mean".
//! The allowed keys come from the model's own serde field lists, so they
//! cannot drift from what the deserializer accepts.

use std::ops::Range;

use crate::fields::field_names as fields_of;

use super::model::{
    BackfillSection, BudgetSection, GenSpec, MigrationsSection, PhaseSection, PostgresSection,
    QuerySection, RehearseSection, ScenarioFile, ScriptSection, SizeSection, StepSection,
    TableSection, WorkloadSection,
};

/// An unknown key: byte span of the key, dotted path, message.
pub struct UnknownKey {
    pub span: Range<usize>,
    pub field: String,
    pub message: String,
}

/// What a table at some path may contain.
#[derive(Clone, Copy)]
enum Shape {
    Root,
    Postgres,
    Migrations,
    Rehearse,
    Size,
    Table,
    Columns,
    Gen,
    Workload,
    Query,
    Script,
    Phase,
    Step,
    Backfill,
    Budget,
}

impl Shape {
    /// Allowed keys; None = any key (a map such as columns or settings).
    fn keys(self) -> Option<&'static [&'static str]> {
        Some(match self {
            Shape::Root => fields_of::<ScenarioFile>(),
            Shape::Postgres => fields_of::<PostgresSection>(),
            Shape::Migrations => fields_of::<MigrationsSection>(),
            Shape::Rehearse => fields_of::<RehearseSection>(),
            Shape::Size => fields_of::<SizeSection>(),
            Shape::Table => fields_of::<TableSection>(),
            Shape::Columns => return None,
            Shape::Gen => fields_of::<GenSpec>(),
            Shape::Workload => fields_of::<WorkloadSection>(),
            Shape::Query => fields_of::<QuerySection>(),
            Shape::Script => fields_of::<ScriptSection>(),
            Shape::Phase => fields_of::<PhaseSection>(),
            Shape::Step => fields_of::<StepSection>(),
            Shape::Backfill => fields_of::<BackfillSection>(),
            Shape::Budget => fields_of::<BudgetSection>(),
        })
    }

    /// The shape of a child key's table(s), if it is a table we check.
    fn child(self, key: &str) -> Option<Shape> {
        Some(match (self, key) {
            (Shape::Root, "postgres") => Shape::Postgres,
            (Shape::Root, "migrations") => Shape::Migrations,
            (Shape::Migrations, "rehearse") => Shape::Rehearse,
            (Shape::Postgres, "size") => Shape::Size,
            (Shape::Root, "table") => Shape::Table,
            (Shape::Root, "workload") => Shape::Workload,
            (Shape::Root, "phase") => Shape::Phase,
            (Shape::Root, "budget") => Shape::Budget,
            (Shape::Table, "columns") => Shape::Columns,
            (Shape::Columns, _) => Shape::Gen,
            (Shape::Gen, "rest") => Shape::Gen,
            (Shape::Workload, "query") => Shape::Query,
            (Shape::Workload, "script") => Shape::Script,
            (Shape::Query, "params") => Shape::Gen,
            (Shape::Phase, "step") => Shape::Step,
            (Shape::Step, "backfill") => Shape::Backfill,
            _ => return None,
        })
    }
}

/// All unknown keys of a document that parses as TOML.
pub fn unknown_keys(doc: &toml_edit::ImDocument<&str>) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    walk_table(doc.as_table(), "", Shape::Root, &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_key(key: &toml_edit::Key, path: &str, shape: Shape, out: &mut Vec<UnknownKey>) -> bool {
    let Some(allowed) = shape.keys() else {
        return true;
    };
    let k = key.get();
    if allowed.contains(&k) {
        return true;
    }
    let hint = closest(k, allowed).map_or(";".to_string(), |s| format!(", did you mean `{s}`?"));
    let message = format!(
        "unknown field `{k}`{hint} expected one of: {}",
        allowed.join(", ")
    );
    push_unknown(key, path, message, out);
    false
}

/// Record `message` at `key`, adding where the key probably belongs when it
/// is a top-level field written after a `[header]`.
fn push_unknown(key: &toml_edit::Key, path: &str, mut message: String, out: &mut Vec<UnknownKey>) {
    const MISPLACED: &str = " (keys after a [header] belong to that table: move top-level keys above the first [header])";
    let k = key.get();
    if fields_of::<ScenarioFile>().contains(&k) {
        message.push_str(MISPLACED);
    }
    out.push(UnknownKey {
        span: key.span().unwrap_or(0..0),
        field: join(path, k),
        message,
    });
}

/// A column's generator must be a table; anything else is usually a
/// top-level key written after a `[table.columns]` header.
fn check_column_value(
    key: &toml_edit::Key,
    item: &toml_edit::Item,
    path: &str,
    shape: Shape,
    out: &mut Vec<UnknownKey>,
) -> bool {
    if !matches!(shape, Shape::Columns) || item.is_table_like() {
        return true;
    }
    let message = format!(
        "column `{}` is not a generator; expected a table like {{ gen = \"int\", min = 1, max = 100 }}",
        key.get()
    );
    push_unknown(key, path, message, out);
    false
}

fn walk_table(t: &toml_edit::Table, path: &str, shape: Shape, out: &mut Vec<UnknownKey>) {
    for (k, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(k) else {
            continue;
        };
        if check_key(key, path, shape, out) && check_column_value(key, item, path, shape, out) {
            if let Some(child) = shape.child(k) {
                walk_item(item, &join(path, k), child, out);
            }
        }
    }
}

fn walk_item(item: &toml_edit::Item, path: &str, shape: Shape, out: &mut Vec<UnknownKey>) {
    match item {
        toml_edit::Item::Table(t) => walk_table(t, path, shape, out),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                walk_table(t, &format!("{path}[{i}]"), shape, out);
            }
        }
        toml_edit::Item::Value(v) => walk_value(v, path, shape, out),
        toml_edit::Item::None => {}
    }
}

fn walk_value(v: &toml_edit::Value, path: &str, shape: Shape, out: &mut Vec<UnknownKey>) {
    match v {
        toml_edit::Value::InlineTable(t) => {
            for (k, _) in t.iter() {
                let Some((key, item)) = t.get_key_value(k) else {
                    continue;
                };
                if check_key(key, path, shape, out)
                    && check_column_value(key, item, path, shape, out)
                {
                    if let Some(child) = shape.child(k) {
                        walk_item(item, &join(path, k), child, out);
                    }
                }
            }
        }
        // params = [{...}, {...}]: each element has the shape.
        toml_edit::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk_value(x, &format!("{path}[{i}]"), shape, out);
            }
        }
        _ => {}
    }
}

/// The allowed name closest to `k` by edit distance, if it is close.
pub fn closest<'a>(k: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(k, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 3) && *d < a.len().max(k.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_serde() {
        assert!(fields_of::<TableSection>().contains(&"rows"));
        assert!(fields_of::<BackfillSection>().contains(&"where"));
        assert!(!fields_of::<BackfillSection>().contains(&"where_clause"));
        assert_eq!(fields_of::<ScenarioFile>().len(), 11);
    }

    #[test]
    fn finds_every_unknown_key() {
        let text = "nmae = \"x\"\n[[table]]\nrowz = 1\n[table.columns]\nid = { gen = \"int\", mn = 1 }\n[[phase]]\n[[phase.step]]\nbackfill = { tabel = \"t\" }\n[postgres.settings]\nanything = 1\n";
        let doc = toml_edit::ImDocument::parse(text).unwrap();
        let found: Vec<(String, String)> = unknown_keys(&doc)
            .into_iter()
            .map(|u| (u.field, u.message))
            .collect();
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "nmae",
                "table[0].rowz",
                "table[0].columns.id.mn",
                "phase[0].step[0].backfill.tabel"
            ]
        );
        assert!(
            found[0]
                .1
                .starts_with("unknown field `nmae`, did you mean `name`? expected one of: name,"),
            "{found:?}"
        );
        assert!(found[2].1.contains("did you mean `min`?"), "{found:?}");
        assert!(
            found[3]
                .1
                .starts_with("unknown field `tabel`, did you mean `table`?"),
            "{found:?}"
        );
    }

    #[test]
    fn top_level_key_after_a_header_is_explained() {
        let text = "[[table]]\nname = \"t\"\n[table.columns]\nid = { gen = \"sequence\" }\nseed_sql = [\"SELECT 1\"]\n[[phase]]\nbudget = 1\n";
        let doc = toml_edit::ImDocument::parse(text).unwrap();
        let found = unknown_keys(&doc);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].field, "table[0].columns.seed_sql");
        assert!(
            found[0].message.contains("is not a generator"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.contains("move top-level keys above"),
            "{}",
            found[0].message
        );
        assert_eq!(found[1].field, "phase[0].budget");
        assert!(
            found[1].message.contains("move top-level keys above"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(closest("rowz", &["rows", "name"]), Some("rows"));
        assert_eq!(closest("integer", &["int", "float", "sequence"]), None);
        assert_eq!(
            closest("timestmp", &["timestamp", "text"]),
            Some("timestamp")
        );
        assert_eq!(closest("zzzzzz", &["rows"]), None);
    }
}
