//! The scenario as TOML text, with comments saying where every figure came
//! from. Everything is in a fixed order (tables as created, columns by
//! position, constraints and indexes by name) and carries no time, so the
//! same database gives the same file.

use std::fmt::Write;

use super::columns::ColumnOut;
use super::spec::{Spec, Val};
use super::workload::WorkloadOut;

/// One `[[table]]` as written.
pub struct TableOut<'a> {
    pub name: &'a str,
    /// Comment lines under the header.
    pub notes: Vec<String>,
    pub rows: u64,
    pub create: String,
    pub after_seed: Vec<String>,
    pub columns: &'a [ColumnOut],
}

/// Lines longer than this are split (lists) or written as a section
/// (generators).
const WIDTH: usize = 100;

pub fn header(o: &mut String, lines: &[String]) {
    for l in lines {
        comment(o, l, "");
    }
}

/// `# text`, wrapped at [`WIDTH`].
pub fn comment(o: &mut String, text: &str, indent: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + 2 + line.len() + 1 + word.len() > WIDTH {
            let _ = writeln!(o, "{indent}# {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(o, "{indent}# {line}");
}

/// The views, created once the tables are loaded: `seed_sql` before the
/// first table (TOML puts a file's own keys before its tables).
pub fn seed_sql(o: &mut String, sql: &[String]) {
    if sql.is_empty() {
        return;
    }
    o.push_str("# The source's views: created after the tables are loaded.\nseed_sql = [\n");
    for s in sql {
        let _ = writeln!(o, "    {},", sql_block(s));
    }
    o.push_str("]\n");
}

pub fn table(o: &mut String, t: &TableOut) {
    o.push_str("\n[[table]]\n");
    for n in &t.notes {
        comment(o, n, "");
    }
    let _ = writeln!(o, "name = {}", string(t.name));
    if t.rows > 0 {
        let _ = writeln!(o, "rows = {}", t.rows);
    }
    let _ = writeln!(o, "create = {}", sql_block(&t.create));
    if !t.after_seed.is_empty() {
        let items: Vec<String> = t.after_seed.iter().map(|s| string(s)).collect();
        let _ = writeln!(o, "after_seed = {}", list(&items, ""));
    }
    if t.rows == 0 {
        return;
    }
    let (short, sections): (Vec<&ColumnOut>, Vec<&ColumnOut>) = t
        .columns
        .iter()
        .filter(|c| c.spec.is_some())
        .partition(|c| {
            let width = WIDTH.saturating_sub(key(&c.name).len() + 3);
            c.spec.as_ref().and_then(|s| inline(s, width)).is_some()
        });
    let untouched: Vec<&ColumnOut> = t.columns.iter().filter(|c| c.spec.is_none()).collect();
    // Always the header, even when every generator is a section of its own:
    // the scenario loader rejects `[table.columns.x]` without it.
    o.push_str("\n[table.columns]\n");
    for c in &untouched {
        for n in &c.notes {
            comment(o, &format!("{}: {n}", c.name), "");
        }
    }
    for c in short {
        for n in &c.notes {
            comment(o, n, "");
        }
        let spec = c
            .spec
            .as_ref()
            .and_then(|s| inline(s, usize::MAX))
            .unwrap_or_default();
        let _ = writeln!(o, "{} = {spec}", key(&c.name));
    }
    for c in sections {
        let path = format!("table.columns.{}", key(&c.name));
        o.push('\n');
        for n in &c.notes {
            comment(o, n, "");
        }
        if let Some(spec) = &c.spec {
            section(o, &path, spec);
        }
    }
}

/// A generator as `[path]` with one key per line (and `[path.rest]`).
fn section(o: &mut String, path: &str, spec: &Spec) {
    let _ = writeln!(o, "[{path}]");
    for (k, v) in &spec.fields {
        let _ = writeln!(o, "{k} = {}", value(v, ""));
    }
    if let Some(rest) = &spec.rest {
        section(o, &format!("{path}.rest"), rest);
    }
}

/// `{ gen = "int", ... }` when it fits in `width`.
pub fn inline(spec: &Spec, width: usize) -> Option<String> {
    let mut parts: Vec<String> = spec
        .fields
        .iter()
        .map(|(k, v)| format!("{k} = {}", flat(v)))
        .collect();
    if let Some(rest) = &spec.rest {
        parts.push(format!("rest = {}", inline(rest, usize::MAX)?));
    }
    let s = format!("{{ {} }}", parts.join(", "));
    (s.len() <= width && !s.contains('\n')).then_some(s)
}

/// A value on one line.
fn flat(v: &Val) -> String {
    match v {
        Val::List(items) => format!(
            "[{}]",
            items.iter().map(flat).collect::<Vec<_>>().join(", ")
        ),
        other => value(other, ""),
    }
}

/// A value; a long list one item per line.
pub fn value(v: &Val, indent: &str) -> String {
    match v {
        Val::Str(s) => string(s),
        Val::Int(i) => i.to_string(),
        Val::Float(x) => float(*x),
        Val::Bool(b) => b.to_string(),
        Val::List(items) => list(&items.iter().map(flat).collect::<Vec<_>>(), indent),
    }
}

/// `[a, b]`, or one item per line when that is too long.
pub fn list(items: &[String], indent: &str) -> String {
    let one = format!("[{}]", items.join(", "));
    if one.len() + indent.len() + 20 <= WIDTH && !one.contains('\n') {
        return one;
    }
    // Several short items a line; a long one on a line of its own.
    let mut s = String::from("[\n");
    let mut line = String::new();
    for i in items {
        if !line.is_empty() && indent.len() + 4 + line.len() + i.len() + 1 > WIDTH {
            let _ = writeln!(s, "{indent}    {}", line.trim_end());
            line.clear();
        }
        line.push_str(i);
        line.push_str(", ");
    }
    if !line.is_empty() {
        let _ = writeln!(s, "{indent}    {}", line.trim_end());
    }
    s.push_str(indent);
    s.push(']');
    s
}

fn float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains(['.', 'e', 'E', 'n', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// A TOML string.
pub fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// SQL over several lines as a literal block, when it can be one.
fn sql_block(sql: &str) -> String {
    if sql.contains('\n')
        && !sql.contains("'''")
        && !sql
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        format!("'''\n{sql}'''")
    } else {
        string(sql)
    }
}

/// A column name as a TOML key.
fn key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        string(name)
    }
}

pub fn workload(o: &mut String, w: &WorkloadOut) {
    o.push('\n');
    for n in &w.notes {
        comment(o, n, "");
    }
    o.push_str(
        "[workload]\n\
         # Traffic while the migration runs: pick the clients and rate of your production.\n\
         clients = 4\n\
         rate = 50\n\
         before = \"2s\"\n\
         after = \"2s\"\n",
    );
    for q in &w.queries {
        o.push_str("\n[[workload.query]]\n");
        for n in &q.notes {
            comment(o, n, "");
        }
        let _ = writeln!(o, "name = {}", string(&q.name));
        let _ = writeln!(o, "weight = {}", q.weight);
        let _ = writeln!(o, "sql = {}", string(&q.sql));
        if !q.params.is_empty() {
            let items: Vec<String> = q
                .params
                .iter()
                .map(|p| inline(p, usize::MAX).unwrap_or_default())
                .collect();
            let _ = writeln!(o, "params = {}", list(&items, ""));
        }
    }
}

/// The phase to fill in: one step that does nothing, so the file runs as is.
pub fn phase(o: &mut String) {
    o.push_str(
        "\n[[phase]]\n\
         name = \"migrate\"\n\
         \n\
         [[phase.step]]\n\
         # Put your migration here: the statements to rehearse, e.g.\n\
         # sql = \"CREATE INDEX CONCURRENTLY orders_created_at ON orders (created_at)\"\n\
         # with transaction = false. Add more steps and phases as your release has them,\n\
         # and a [budget] to fail CI when the migration blocks the app for too long.\n\
         name = \"your migration\"\n\
         sql = \"SELECT 1\"\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml() {
        assert_eq!(value(&Val::Float(1.0), ""), "1.0");
        assert_eq!(value(&Val::Float(0.25), ""), "0.25");
        let s = string("a\"b\nc");
        let back: toml::Value = toml::from_str(&format!("x = {s}")).unwrap();
        assert_eq!(back["x"].as_str(), Some("a\"b\nc"));
        assert_eq!(key("Weird col"), "\"Weird col\"");
        let spec = Spec::new("int")
            .with("min", Val::Int(1))
            .with("max", Val::Int(9));
        assert_eq!(
            inline(&spec, 80).unwrap(),
            "{ gen = \"int\", min = 1, max = 9 }"
        );
        assert_eq!(inline(&spec, 10), None);
        let items: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let l = list(&items, "");
        assert!(l.starts_with("[\n    0, 1, 2,"), "{l}");
        assert!(l.lines().all(|x| x.len() <= WIDTH), "{l}");
    }
}
