//! ATTACH PARTITION's advice. The attach scans the table it attaches, under
//! ACCESS EXCLUSIVE on it, to prove every row fits the bounds, and scans the
//! parent's DEFAULT partition, under ACCESS EXCLUSIVE too, to prove none of
//! its rows belongs in the new partition — unless a valid CHECK constraint
//! already proves it. Validating such a CHECK first takes SHARE UPDATE
//! EXCLUSIVE only.
//!
//! PostgreSQL proves it by matching the CHECK against the partition
//! constraint it derives from the bounds, expression by expression
//! (`predicate_implied_by`): a row comparison `(a, b) >= (1, 2)` proves
//! nothing. So the CHECK here is written in the form PostgreSQL derives
//! (partbounds.c, `get_qual_for_range`, `get_qual_for_list`,
//! `get_qual_for_hash`), and the DEFAULT partition's is its negation, which
//! PostgreSQL derives for it the same way. The key columns are the parent's,
//! not in the statement: the run reads them (run.json `partition_keys`,
//! `default_partitions`); without them `key` (`key1`, `key2`, ...) stands
//! for them.

use std::collections::BTreeMap;

use regex::Regex;

use super::{as_identifier, derived, pattern, qualified, re, split_name, SafePattern};

/// What the run read of its partitioned tables at the end, by table as
/// locks.csv names it (run.json `partition_keys`, `default_partitions`).
#[derive(Clone, Copy)]
pub struct Partitioning<'a> {
    /// Each one's key columns, in order (a table partitioned on an
    /// expression is absent).
    pub keys: &'a BTreeMap<String, Vec<String>>,
    /// Each one's DEFAULT partition, where it has one.
    pub defaults: &'a BTreeMap<String, String>,
}

/// One datum of a range bound.
#[derive(Debug, PartialEq)]
enum Datum {
    Value(String),
    MinValue,
    MaxValue,
}

/// A partition's bounds, as `FOR VALUES` gives them.
enum Bounds {
    Range { lo: Vec<Datum>, hi: Vec<Datum> },
    List { values: Vec<String>, null: bool },
    Hash { modulus: String, remainder: String },
}

fn statement() -> Regex {
    re(&format!(
        r"(?is)^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?{}\s+ATTACH\s+PARTITION\s+{}\s+FOR\s+VALUES\s+(.*?)\s*;?\s*$",
        qualified(),
        qualified()
    ))
}

/// The advice for `s` if it attaches a partition with bounds (`FOR
/// VALUES`), the key columns named where `known` has the parent's.
pub(super) fn advice(s: &str, known: Option<Partitioning>) -> Option<SafePattern> {
    let c = statement().captures(s)?;
    let (parent, part) = (&c[1], &c[2]);
    let bounds = bounds(c[3].trim());
    let facts = known.and_then(|k| {
        let keys = lookup(k.keys, parent)?;
        Some((keys, lookup(k.defaults, parent)))
    });
    let arity = match &bounds {
        Some(Bounds::Range { lo, .. }) => lo.len(),
        _ => 1,
    };
    // The run's key where it has as many columns as the bounds.
    let named = facts
        .as_ref()
        .map(|(keys, _)| *keys)
        .filter(|keys| matches!(bounds, Some(Bounds::Hash { .. })) || keys.len() == arity);
    let keys: Vec<String> = match named {
        Some(keys) => keys.iter().map(|k| as_identifier(k)).collect(),
        None if arity == 1 => vec!["key".into()],
        None => (1..=arity).map(|i| format!("key{i}")).collect(),
    };
    let check = match &bounds {
        Some(Bounds::Range { lo, hi }) => range_check(&keys, lo, hi),
        Some(Bounds::List { values, null }) => list_check(&keys[0], values, *null),
        Some(Bounds::Hash { modulus, remainder }) => format!(
            "satisfies_hash_partition('{}'::regclass, {modulus}, {remainder}, {})",
            parent.replace('\'', "''"),
            keys.join(", ")
        ),
        None => "key fits the bounds".to_string(),
    };
    let whose = match (named, keys.len()) {
        (Some(_), 1) => format!("`{}` is {parent}'s partition key.", keys[0]),
        (Some(_), _) => format!("`{}` are {parent}'s partition key.", keys.join("`, `")),
        (None, 1) => "`key` is the partition key.".to_string(),
        (None, _) => format!("`{}` are the partition key's columns.", keys.join("`, `")),
    };
    let name = derived(part, "_bounds");
    let statement = s.trim().trim_end_matches(';');
    let mut add = format!("ALTER TABLE {part} ADD CONSTRAINT {name} CHECK ({check}) NOT VALID;\n");
    let mut validate = format!("ALTER TABLE {part} VALIDATE CONSTRAINT {name};\n");
    let mut drop = format!("ALTER TABLE {part} DROP CONSTRAINT {name};");
    let mut why = "ATTACH PARTITION scans the whole table it attaches under ACCESS EXCLUSIVE on it, to prove its rows fit the partition's bounds, unless a valid CHECK constraint proves it already. Add that CHECK NOT VALID (a brief lock), VALIDATE it in its own step (SHARE UPDATE EXCLUSIVE: reads and writes go on), then attach: PostgreSQL skips the scan.".to_string();
    if matches!(bounds, Some(Bounds::Hash { .. })) {
        why.push_str(" For a hash partition the CHECK is the one PostgreSQL derives, satisfies_hash_partition() over the key; PostgreSQL does not match it for a key of a collatable type (text, varchar): it scans then, CHECK or not.");
    }
    if let Some(default) = facts.as_ref().and_then(|(_, d)| *d) {
        let outside = derived(default, &format!("_not_{}", super::bare(part)));
        add.push_str(&format!(
            "ALTER TABLE {default} ADD CONSTRAINT {outside} CHECK (NOT ({check})) NOT VALID;\n"
        ));
        validate.push_str(&format!(
            "ALTER TABLE {default} VALIDATE CONSTRAINT {outside};\n"
        ));
        drop.push_str(&format!(
            "\nALTER TABLE {default} DROP CONSTRAINT {outside};"
        ));
        why.push_str(&format!(" {parent} has a DEFAULT partition, {default}: the attach also scans it, under ACCESS EXCLUSIVE (every query that reaches it waits), to prove none of its rows belongs in the new partition, unless a valid CHECK on it excludes the new partition's bounds. Give it that CHECK the same way."));
    }
    why.push(' ');
    why.push_str(&whose);
    Some(pattern(
        &why,
        format!("{add}-- next step:\n{validate}-- next step:\n{statement};\n{drop}"),
    ))
}

/// The ATTACH PARTITION advice again, with what the run read of the
/// parent: its key columns instead of `key`, and its DEFAULT partition's
/// CHECK where it has one. Other advice is left as it is.
pub fn with_partitioning(p: &mut SafePattern, known: Partitioning) {
    let attach = statement();
    let Some(line) = p.sql.lines().find(|l| attach.is_match(l)) else {
        return;
    };
    if let Some(again) = advice(line, Some(known)) {
        *p = again;
    }
}

/// `parent`'s entry in a map keyed by table as run.json names it
/// (schema-qualified only when its schema is not on the search path): the
/// same parts first, then a qualified name written for a table named
/// without its schema. An unqualified name never means another schema's.
fn lookup<'a, T>(map: &'a BTreeMap<String, T>, parent: &str) -> Option<&'a T> {
    let written = split_name(parent, true);
    let same = |exact: bool| {
        map.iter()
            .find(|(table, _)| {
                let table = split_name(table, true);
                table == written
                    || (!exact && table.len() == 1 && written.len() == 2 && table[0] == written[1])
            })
            .map(|(_, v)| v)
    };
    same(true).or_else(|| same(false))
}

fn bounds(text: &str) -> Option<Bounds> {
    if let Some(b) = re(r"(?is)^FROM\s*\((.*?)\)\s*TO\s*\((.*?)\)$").captures(text) {
        let datums = |list: &str| -> Vec<Datum> {
            list_items(list)
                .into_iter()
                .map(|d| match d.to_ascii_uppercase().as_str() {
                    "MINVALUE" => Datum::MinValue,
                    "MAXVALUE" => Datum::MaxValue,
                    _ => Datum::Value(d.to_string()),
                })
                .collect()
        };
        let (lo, hi) = (datums(&b[1]), datums(&b[2]));
        return (!lo.is_empty() && lo.len() == hi.len()).then_some(Bounds::Range { lo, hi });
    }
    if let Some(b) = re(r"(?is)^IN\s*\((.*)\)$").captures(text) {
        let items = list_items(&b[1]);
        let null = items.iter().any(|v| v.eq_ignore_ascii_case("NULL"));
        let values = items
            .into_iter()
            .filter(|v| !v.eq_ignore_ascii_case("NULL"))
            .map(str::to_string)
            .collect();
        return Some(Bounds::List { values, null });
    }
    let b =
        re(r"(?is)^WITH\s*\(\s*MODULUS\s+(\d+)\s*,\s*REMAINDER\s+(\d+)\s*\)$").captures(text)?;
    Some(Bounds::Hash {
        modulus: b[1].to_string(),
        remainder: b[2].to_string(),
    })
}

/// A list partition's constraint: `key IS NOT NULL AND key IN (...)`, and
/// with NULL in the list, `key IS NULL OR key IN (...)`.
fn list_check(key: &str, values: &[String], null: bool) -> String {
    match (null, values.is_empty()) {
        (false, _) => format!("{key} IS NOT NULL AND {key} IN ({})", values.join(", ")),
        (true, true) => format!("{key} IS NULL"),
        (true, false) => format!("({key} IS NULL OR {key} IN ({}))", values.join(", ")),
    }
}

/// A range partition's constraint as PostgreSQL derives it: every key
/// column NOT NULL; `col = value` for each leading column whose bounds are
/// the same; then, from the first that differ, the lower bound as an OR of
/// arms (`a > 1 OR (a = 1 AND b >= 10)`) and the upper likewise, an
/// unbounded datum (MINVALUE, MAXVALUE) ending its side's arms.
fn range_check(keys: &[String], lo: &[Datum], hi: &[Datum]) -> String {
    let n = keys.len();
    let mut and: Vec<String> = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect();
    let mut i = 0;
    while i + 1 < n {
        match (&lo[i], &hi[i]) {
            (Datum::Value(a), Datum::Value(b)) if a == b => {
                and.push(format!("{} = {a}", keys[i]));
                i += 1;
            }
            _ => break,
        }
    }
    let (mut lower, mut upper) = (Vec::new(), Vec::new());
    let (mut more_lower, mut more_upper) = (true, true);
    for arm in 0..n - i {
        let (mut l, mut u) = (Vec::new(), Vec::new());
        for j in i..=i + arm {
            let last = j == i + arm;
            if let (true, Datum::Value(v)) = (more_lower, &lo[j]) {
                let op = match () {
                    _ if !last => "=",
                    _ if j == n - 1 || lo.get(j + 1) == Some(&Datum::MinValue) => ">=",
                    _ => ">",
                };
                l.push(format!("{} {op} {v}", keys[j]));
            }
            if let (true, Datum::Value(v)) = (more_upper, &hi[j]) {
                let op = match () {
                    _ if !last => "=",
                    _ if hi.get(j + 1) == Some(&Datum::MaxValue) => "<=",
                    _ => "<",
                };
                u.push(format!("{} {op} {v}", keys[j]));
            }
        }
        let j = i + arm;
        let value = |d: Option<&Datum>| matches!(d, Some(Datum::Value(_)));
        more_lower &= value(lo.get(j)) && value(lo.get(j + 1));
        more_upper &= value(hi.get(j)) && value(hi.get(j + 1));
        for (arms, args) in [(&mut lower, l), (&mut upper, u)] {
            match args.len() {
                0 => {}
                1 => arms.extend(args),
                _ => arms.push(format!("({})", args.join(" AND "))),
            }
        }
        if !more_lower && !more_upper {
            break;
        }
    }
    for arms in [lower, upper] {
        match arms.len() {
            0 => {}
            1 => and.extend(arms),
            _ => and.push(format!("({})", arms.join(" OR "))),
        }
    }
    and.join(" AND ")
}

/// The items of a list of SQL values (`'de', 'fr', NULL`), trimmed: split
/// at the commas outside quotes and parentheses.
fn list_items(list: &str) -> Vec<&str> {
    let (mut items, mut start, mut depth, mut quote) = (Vec::new(), 0, 0i32, None);
    for (i, c) in list.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(list[start..].trim());
    items.retain(|s| !s.is_empty());
    items
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::for_statement;
    use super::{with_partitioning, Partitioning};

    /// The CHECK the advice adds to the partition.
    fn check_of(sql: &str) -> String {
        sql.split_once("CHECK (")
            .and_then(|(_, rest)| rest.split_once(") NOT VALID"))
            .map(|(c, _)| c.to_string())
            .unwrap_or_else(|| panic!("no CHECK in {sql}"))
    }

    fn check(bounds: &str) -> String {
        let p = for_statement(
            &format!("ALTER TABLE m ATTACH PARTITION p FOR VALUES {bounds}"),
            "p",
        );
        check_of(&p.sql)
    }

    fn map<T: Clone>(entries: &[(&str, T)]) -> BTreeMap<String, T> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn attach_partition_goes_through_a_validated_check() {
        let p = for_statement(
            "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
            "events_2026",
        );
        assert!(p.advice.contains("skips the scan"), "{}", p.advice);
        assert_eq!(
            p.sql,
            "ALTER TABLE events_2026 ADD CONSTRAINT events_2026_bounds CHECK (key IS NOT NULL AND key >= '2026-01-01' AND key < '2027-01-01') NOT VALID;\n\
             -- next step:\n\
             ALTER TABLE events_2026 VALIDATE CONSTRAINT events_2026_bounds;\n\
             -- next step:\n\
             ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n\
             ALTER TABLE events_2026 DROP CONSTRAINT events_2026_bounds;"
        );
        // IF EXISTS, a common migration form, too.
        let p = for_statement(
            "ALTER TABLE IF EXISTS m ATTACH PARTITION p FOR VALUES IN (1)",
            "p",
        );
        assert_eq!(check_of(&p.sql), "key IS NOT NULL AND key IN (1)");
    }

    #[test]
    fn a_one_column_partition_checks_what_it_takes() {
        assert_eq!(
            check("IN ('de', 'fr')"),
            "key IS NOT NULL AND key IN ('de', 'fr')"
        );
        // An unbounded side has no comparison.
        assert_eq!(
            check("FROM (MINVALUE) TO (100)"),
            "key IS NOT NULL AND key < 100"
        );
        assert_eq!(
            check("FROM (5) TO (maxvalue)"),
            "key IS NOT NULL AND key >= 5"
        );
        // A list with NULL takes the NULL rows.
        assert_eq!(
            check("IN (NULL, 'de', 'a,b')"),
            "(key IS NULL OR key IN ('de', 'a,b'))"
        );
        assert_eq!(check("IN (null)"), "key IS NULL");
    }

    /// partbounds.c's `get_qual_for_range`, case by case.
    #[test]
    fn a_range_over_several_columns_is_checked_as_postgresql_derives_it() {
        assert_eq!(
            check("FROM (1, 10) TO (2, 20)"),
            "key1 IS NOT NULL AND key2 IS NOT NULL AND (key1 > 1 OR (key1 = 1 AND key2 >= 10)) \
             AND (key1 < 2 OR (key1 = 2 AND key2 < 20))"
        );
        // A common leading value is an equality.
        assert_eq!(
            check("FROM (1, 10) TO (1, 20)"),
            "key1 IS NOT NULL AND key2 IS NOT NULL AND key1 = 1 AND key2 >= 10 AND key2 < 20"
        );
        // MINVALUE after a value: from that value on, the rest unbounded.
        assert_eq!(
            check("FROM (1, MINVALUE) TO (2, MINVALUE)"),
            "key1 IS NOT NULL AND key2 IS NOT NULL AND key1 >= 1 AND key1 < 2"
        );
        // MAXVALUE in the upper bound: up to and including that value.
        assert_eq!(
            check("FROM (MINVALUE, MINVALUE, MINVALUE) TO (5, 7, MAXVALUE)"),
            "key1 IS NOT NULL AND key2 IS NOT NULL AND key3 IS NOT NULL \
             AND (key1 < 5 OR (key1 = 5 AND key2 <= 7))"
        );
        assert_eq!(
            check("FROM (1, 2, 3) TO (1, 5, 0)"),
            "key1 IS NOT NULL AND key2 IS NOT NULL AND key3 IS NOT NULL AND key1 = 1 \
             AND (key2 > 2 OR (key2 = 2 AND key3 >= 3)) AND (key2 < 5 OR (key2 = 5 AND key3 < 0))"
        );
    }

    #[test]
    fn a_hash_partition_is_checked_by_its_hash() {
        let keys = map(&[("h", vec!["id".to_string(), "Region".to_string()])]);
        let defaults = BTreeMap::new();
        let mut p = for_statement(
            "ALTER TABLE h ATTACH PARTITION h_0 FOR VALUES WITH (modulus 4, remainder 0)",
            "h_0",
        );
        with_partitioning(
            &mut p,
            Partitioning {
                keys: &keys,
                defaults: &defaults,
            },
        );
        assert_eq!(
            check_of(&p.sql),
            "satisfies_hash_partition('h'::regclass, 4, 0, id, \"Region\")"
        );
        assert!(
            p.advice
                .contains("`id`, `\"Region\"` are h's partition key"),
            "{}",
            p.advice
        );
    }

    #[test]
    fn the_default_partition_gets_the_negated_check() {
        let keys = map(&[("app.events", vec!["at".to_string()])]);
        let defaults = map(&[("app.events", "app.events_other".to_string())]);
        let mut p = for_statement(
            "ALTER TABLE app.events ATTACH PARTITION app.events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
            "app.events_2026",
        );
        with_partitioning(
            &mut p,
            Partitioning {
                keys: &keys,
                defaults: &defaults,
            },
        );
        let check = "at IS NOT NULL AND at >= '2026-01-01' AND at < '2027-01-01'";
        assert!(
            p.sql.contains(&format!(
                "ALTER TABLE app.events_other ADD CONSTRAINT events_other_not_events_2026 CHECK (NOT ({check})) NOT VALID;"
            )),
            "{}",
            p.sql
        );
        assert!(
            p.sql.contains(
                "ALTER TABLE app.events_other VALIDATE CONSTRAINT events_other_not_events_2026;"
            ) && p.sql.ends_with(
                "ALTER TABLE app.events_other DROP CONSTRAINT events_other_not_events_2026;"
            ),
            "{}",
            p.sql
        );
        assert!(
            p.advice.contains("DEFAULT partition, app.events_other"),
            "{}",
            p.advice
        );
    }

    #[test]
    fn attach_partition_names_the_key_the_run_read() {
        let keys = map(&[
            ("app.events", vec!["created_at".to_string()]),
            ("\"Regions\"", vec!["Country Code".to_string()]),
        ]);
        let none = BTreeMap::new();
        let known = Partitioning {
            keys: &keys,
            defaults: &none,
        };
        let mut p = for_statement(
            "ALTER TABLE App.Events ATTACH PARTITION app.events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
            "app.events_2026",
        );
        with_partitioning(&mut p, known);
        assert_eq!(
            check_of(&p.sql),
            "created_at IS NOT NULL AND created_at >= '2026-01-01' AND created_at < '2027-01-01'"
        );
        assert!(
            p.advice
                .contains("`created_at` is App.Events's partition key"),
            "{}",
            p.advice
        );
        let mut p = for_statement(
            "ALTER TABLE \"Regions\" ATTACH PARTITION eu FOR VALUES IN ('de', 'fr')",
            "eu",
        );
        with_partitioning(&mut p, known);
        assert_eq!(
            check_of(&p.sql),
            "\"Country Code\" IS NOT NULL AND \"Country Code\" IN ('de', 'fr')"
        );
        // An unqualified name is the table on the search path (run.json
        // names it unqualified), not another schema's of the same name.
        let both = map(&[
            ("app.events", vec!["region".to_string()]),
            ("events", vec!["at".to_string()]),
        ]);
        for (parent, key) in [
            ("events", "at"),
            ("public.events", "at"),
            ("app.events", "region"),
        ] {
            let mut p = for_statement(
                &format!("ALTER TABLE {parent} ATTACH PARTITION x FOR VALUES IN (1)"),
                "x",
            );
            with_partitioning(
                &mut p,
                Partitioning {
                    keys: &both,
                    defaults: &none,
                },
            );
            assert_eq!(
                check_of(&p.sql),
                format!("{key} IS NOT NULL AND {key} IN (1)"),
                "{parent}"
            );
        }
        // A parent the run did not read keeps the placeholder; so does
        // another table of the same name in another schema, and a key of
        // another arity than the bounds.
        for (parent, bounds) in [
            ("regions", "IN (1)"),
            ("other.events", "IN (1)"),
            ("app.events", "FROM (1, 2) TO (3, 4)"),
        ] {
            let mut p = for_statement(
                &format!("ALTER TABLE {parent} ATTACH PARTITION x FOR VALUES {bounds}"),
                "x",
            );
            with_partitioning(&mut p, known);
            assert!(check_of(&p.sql).starts_with("key"), "{}", p.sql);
        }
    }

    /// Other advice passes through untouched.
    #[test]
    fn other_advice_is_left_alone() {
        let keys = map(&[("t", vec!["a".to_string()])]);
        let none = BTreeMap::new();
        let mut p = for_statement("CREATE INDEX ON t (a)", "t");
        let before = p.sql.clone();
        with_partitioning(
            &mut p,
            Partitioning {
                keys: &keys,
                defaults: &none,
            },
        );
        assert_eq!(p.sql, before);
    }
}
