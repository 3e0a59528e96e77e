//! Whether two scenarios can be compared: the same server, the same tables
//! with the same data, the same traffic. Only the migration (phases, steps)
//! and the budget may differ; anything else would make the side-by-side
//! measure the setup instead of the migration.

use std::fmt::Debug;

use crate::scenario::Scenario;

/// Every difference between `a` and `b` that makes them not comparable, in
/// words naming the field ("table orders: rows 200000 vs 1000"). Empty when
/// they are comparable.
pub fn differences(a: &Scenario, b: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let mut differ = |what: String, x: &dyn Debug, y: &dyn Debug| {
        let (x, y) = (readable(format!("{x:?}")), readable(format!("{y:?}")));
        if x != y {
            let from = around_difference(&x, &y);
            out.push(format!(
                "{what}: {} vs {}",
                short(&x, from),
                short(&y, from)
            ));
        }
    };
    differ(
        "[postgres] version".into(),
        &a.postgres.version,
        &b.postgres.version,
    );
    differ(
        "[postgres] image".into(),
        &a.postgres.image,
        &b.postgres.image,
    );
    differ(
        "[postgres] settings".into(),
        &a.postgres.settings,
        &b.postgres.settings,
    );
    // Where a size came from (which file, which line) is no difference.
    let size = |s: &Scenario| {
        s.postgres
            .size
            .as_ref()
            .filter(|z| !z.is_empty())
            .map(|z| z.describe())
    };
    differ("[postgres] size".into(), &size(a), &size(b));
    differ(
        "[postgres] replica".into(),
        &a.postgres.replica,
        &b.postgres.replica,
    );
    differ(
        "tables".into(),
        &names(a.tables.iter().map(|t| &t.name)),
        &names(b.tables.iter().map(|t| &t.name)),
    );
    for (ta, tb) in a.tables.iter().zip(&b.tables) {
        if ta.name != tb.name {
            continue;
        }
        let t = &ta.name;
        differ(format!("table {t}: rows"), &ta.rows, &tb.rows);
        differ(format!("table {t}: create"), &ta.create, &tb.create);
        differ(
            format!("table {t}: after_seed"),
            &ta.after_seed,
            &tb.after_seed,
        );
        // Generators as `check` prints them, not as Rust's Debug does.
        let columns = |t: &crate::scenario::TablePlan| -> Vec<String> {
            t.columns
                .iter()
                .map(|c| format!("{} {}", c.name, crate::scenario::gen_text(&c.gen)))
                .collect()
        };
        differ(format!("table {t}: columns"), &columns(ta), &columns(tb));
    }
    differ("seed_sql".into(), &a.seed_sql, &b.seed_sql);
    let (wa, wb) = (&a.workload, &b.workload);
    differ("[workload] clients".into(), &wa.clients, &wb.clients);
    differ("[workload] rate".into(), &wa.rate, &wb.rate);
    differ("[workload] before".into(), &wa.before, &wb.before);
    differ("[workload] after".into(), &wa.after, &wb.after);
    differ("[workload] window".into(), &wa.window, &wb.window);
    differ(
        "[workload] query_timeout".into(),
        &wa.query_timeout,
        &wb.query_timeout,
    );
    differ(
        "[workload] queries".into(),
        &names(wa.queries.iter().map(|q| &q.name)),
        &names(wb.queries.iter().map(|q| &q.name)),
    );
    for (qa, qb) in wa.queries.iter().zip(&wb.queries) {
        if qa.name == qb.name {
            let q = format!("[workload] query {}", qa.name);
            differ(format!("{q}: weight"), &qa.weight, &qb.weight);
            differ(format!("{q}: apps"), &qa.apps, &qb.apps);
            differ(format!("{q}: sql"), &qa.sql, &qb.sql);
            let params = |q: &crate::scenario::QueryPlan| -> Vec<String> {
                q.params.iter().map(crate::scenario::gen_text).collect()
            };
            differ(format!("{q}: params"), &params(qa), &params(qb));
        }
    }
    differ("[workload] scripts".into(), &wa.scripts, &wb.scripts);
    out.extend(setup_differences(a, b));
    out
}

/// The setup migrations of both (what builds the schema before seeding):
/// a file only one side applies, or one both apply that makes PostgreSQL
/// do something else (compared as run.json's `setup_digest` is).
fn setup_differences(a: &Scenario, b: &Scenario) -> Vec<String> {
    use crate::migrations::{digest, MigrationFile};
    let setup = |s: &Scenario| -> Vec<MigrationFile> {
        s.migrations
            .as_ref()
            .map(|m| m.setup.clone())
            .unwrap_or_default()
    };
    let (sa, sb) = (setup(a), setup(b));
    let mut out = Vec::new();
    if let (Some(ma), Some(mb)) = (&a.migrations, &b.migrations) {
        if ma.layout != mb.layout && !(sa.is_empty() && sb.is_empty()) {
            out.push(format!(
                "[migrations] layout (the setup's history table): {} vs {}",
                ma.layout, mb.layout
            ));
        }
    }
    let find = |files: &[MigrationFile], name: &str| files.iter().position(|f| f.name == name);
    for f in &sa {
        match find(&sb, &f.name) {
            None => out.push(format!(
                "setup migration {}: applied by A only ({})",
                f.name,
                f.path.display()
            )),
            Some(j) if digest([f]) != digest([&sb[j]]) => out.push(format!(
                "setup migration {}: differs ({} vs {})",
                f.name,
                f.path.display(),
                sb[j].path.display()
            )),
            Some(_) => {}
        }
    }
    for f in &sb {
        if find(&sa, &f.name).is_none() {
            out.push(format!(
                "setup migration {}: applied by B only ({})",
                f.name,
                f.path.display()
            ));
        }
    }
    let common = |x: &[MigrationFile], y: &[MigrationFile]| -> Vec<String> {
        x.iter()
            .filter(|f| find(y, &f.name).is_some())
            .map(|f| f.name.clone())
            .collect()
    };
    if out.is_empty() && common(&sa, &sb) != common(&sb, &sa) {
        out.push(format!(
            "setup migrations: applied in another order ({} vs {})",
            common(&sa, &sb).join(", "),
            common(&sb, &sa).join(", ")
        ));
    }
    out
}

/// A value's debug text as a person reads it: `Some("15")` is `15`, `None`
/// is `not set`, `[("max_wal_size", "1GB")]` is `[max_wal_size = 1GB]`.
fn readable(debug: String) -> String {
    let mut s = debug.as_str();
    if s == "None" {
        return "not set".into();
    }
    if let Some(inner) = s.strip_prefix("Some(").and_then(|r| r.strip_suffix(')')) {
        s = inner;
    }
    // A whole number as the file writes it: 50, not 50.0.
    if let Some(whole) = s.strip_suffix(".0").filter(|w| w.parse::<i64>().is_ok()) {
        return whole.to_string();
    }
    let pairs = regex::Regex::new(r#"\("((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)"\)"#)
        .expect("a valid pattern");
    let s = pairs.replace_all(s, "$1 = $2");
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.to_string(),
        _ => s.into_owned(),
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    it.map(String::as_str).collect()
}

/// How many characters of a value a message shows.
const SHOWN: usize = 120;

/// Where to start showing two long values so that where they first differ
/// is in view: a little before it (in characters), 0 when it is near the
/// start anyway.
fn around_difference(x: &str, y: &str) -> usize {
    let first = x.chars().zip(y.chars()).take_while(|(a, b)| a == b).count();
    first.saturating_sub(SHOWN / 3)
}

/// A long value from character `from` on, cut to what a terminal line
/// holds, `…` where it was cut.
fn short(s: &str, from: usize) -> String {
    let tail: String = s.chars().skip(from).collect();
    let head = if from > 0 { "…" } else { "" };
    match tail.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{head}{}…", &tail[..at]),
        None => format!("{head}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{self, Overrides};

    fn load(name: &str) -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name);
        scenario::load(&path, &Overrides::default()).expect("the library loads")
    }

    #[test]
    fn a_pair_of_the_library_is_comparable() {
        let (a, b) = (
            load("create-index-naive.toml"),
            load("create-index-safe.toml"),
        );
        assert_eq!(differences(&a, &b), Vec::<String>::new());
    }

    #[test]
    fn different_rows_and_workload_are_named() {
        let a = load("create-index-naive.toml");
        let mut b = load("create-index-safe.toml");
        b.tables[0].rows += 1;
        b.workload.clients += 1;
        let d = differences(&a, &b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].starts_with(&format!("table {}: rows", a.tables[0].name)),
            "{d:?}"
        );
        assert!(d[1].starts_with("[workload] clients"), "{d:?}");
    }

    #[test]
    fn a_long_difference_is_shown_where_the_values_differ() {
        let a = format!("{}max: 100 }}", "x".repeat(300));
        let b = format!("{}max: 500 }}", "x".repeat(300));
        let from = around_difference(&a, &b);
        assert!(short(&a, from).contains("max: 100"), "{}", short(&a, from));
        assert!(short(&b, from).starts_with('…'));
        assert_eq!(short("rows", 0), "rows");
    }

    #[test]
    fn values_read_as_written_not_as_rust_debug_text() {
        assert_eq!(readable("None".into()), "not set");
        assert_eq!(readable("Some(\"15\")".into()), "15");
        // A rate of 50 reads 50, as the file says it; 50.5 as it is.
        assert_eq!(readable("Some(200.0)".into()), "200");
        assert_eq!(readable("Some(200.5)".into()), "200.5");
        assert_eq!(
            readable("[(\"max_wal_size\", \"1GB\"), (\"work_mem\", \"4MB\")]".into()),
            "[max_wal_size = 1GB, work_mem = 4MB]"
        );
        let a = load("create-index-naive.toml");
        let mut b = a.clone();
        b.postgres.version = Some("15".into());
        let d = differences(&a, &b);
        assert_eq!(d, ["[postgres] version: not set vs 15"]);
    }

    #[test]
    fn other_tables_are_named() {
        let a = load("create-index-naive.toml");
        let mut b = a.clone();
        b.tables[0].name = "other".into();
        let d = differences(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].starts_with("tables: ") && d[0].contains("vs [\"other\""),
            "{d:?}"
        );
    }
}
