//! Source positions: byte offsets to 1-based line:column, and the dotted field
//! path (`table[0].columns.id.max`) at an offset, for errors that come from
//! the TOML parser rather than from our own validation.

use std::collections::HashMap;
use std::ops::Range;

/// 1-based line and column (in characters) of byte `offset` in `text`. An
/// offset past the end or inside a character is clamped to the nearest
/// earlier character boundary.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while off > 0 && !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Where the table at dotted `path` (`workload`, `postgres.size`) is written:
/// its header or inline table, else its first key (when only dotted headers
/// such as `[postgres.settings]` or dotted keys such as `size.cpus = 4`
/// create it); 0..0 when absent. Sections are not kept with spans: toml
/// gives none for a table that only dotted headers or keys create.
pub fn table_span(text: &str, path: &str) -> Range<usize> {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return 0..0;
    };
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut found = None;
    for key in path.split('.') {
        let Some((k, item)) = table.get_key_value(key) else {
            return 0..0;
        };
        found = item.span().or_else(|| k.span());
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    found.unwrap_or(0..0)
}

/// The most specific dotted path whose key or value span contains `offset`,
/// in a document that parses as TOML. Empty when nothing matches.
pub fn path_at(text: &str, offset: usize) -> String {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return path_near(text, offset);
    };
    let mut best: Option<(usize, String)> = None;
    visit_table(doc.as_table(), "", offset, &mut best);
    best.map(|(_, p)| p).unwrap_or_default()
}

fn consider(
    span: Option<Range<usize>>,
    path: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    let Some(span) = span else { return };
    // A zero-width span (end of an empty value) still locates its offset.
    let hit = span.contains(&offset) || (span.start == offset && span.is_empty());
    if hit && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        *best = Some((span.len(), path.to_string()));
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn visit_table(
    t: &toml_edit::Table,
    path: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    consider(t.span(), path, offset, best);
    for (k, _) in t.iter() {
        let Some((key, item)) = t.get_key_value(k) else {
            continue;
        };
        let p = join(path, k);
        consider(key.span(), &p, offset, best);
        visit_item(item, &p, offset, best);
    }
}

fn visit_item(
    item: &toml_edit::Item,
    path: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    match item {
        toml_edit::Item::None => {}
        toml_edit::Item::Value(v) => visit_value(v, path, offset, best),
        toml_edit::Item::Table(t) => visit_table(t, path, offset, best),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                visit_table(t, &format!("{path}[{i}]"), offset, best);
            }
        }
    }
}

fn visit_value(
    v: &toml_edit::Value,
    path: &str,
    offset: usize,
    best: &mut Option<(usize, String)>,
) {
    consider(v.span(), path, offset, best);
    match v {
        toml_edit::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                visit_value(x, &format!("{path}[{i}]"), offset, best);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (k, _) in t.iter() {
                let Some((key, x)) = t.get_key_value(k) else {
                    continue;
                };
                let p = join(path, k);
                consider(key.span(), &p, offset, best);
                visit_item(x, &p, offset, best);
            }
        }
        _ => {}
    }
}

/// The span of the key (or `[[table]]` header) at a dotted path such as
/// `table[1].columns.total`, in a document that parses as TOML: where a
/// problem found after loading (against the live schema) is located.
pub fn span_of_path(text: &str, path: &str) -> Option<Range<usize>> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let segments: Option<Vec<(&str, Option<usize>)>> = path
        .split('.')
        .map(|part| match part.split_once('[') {
            Some((key, i)) => Some((key, Some(i.trim_end_matches(']').parse().ok()?))),
            None => Some((part, None)),
        })
        .collect();
    span_in(doc.as_table(), &segments?)
}

fn span_in(
    table: &dyn toml_edit::TableLike,
    path: &[(&str, Option<usize>)],
) -> Option<Range<usize>> {
    let ((key, index), rest) = path.split_first()?;
    let (k, item) = table.get_key_value(key)?;
    let here = k.span();
    let deeper = match (item, index) {
        (toml_edit::Item::ArrayOfTables(a), Some(i)) => {
            let t = a.get(*i)?;
            span_in(t, rest).or(t.span())
        }
        (toml_edit::Item::Value(toml_edit::Value::Array(a)), Some(i)) => {
            let v = a.get(*i)?;
            v.as_inline_table()
                .and_then(|t| span_in(t, rest))
                .or(v.span())
        }
        (item, None) => item.as_table_like().and_then(|t| span_in(t, rest)),
        _ => None,
    };
    deeper.or(here)
}

/// A best-effort path for a syntax error, from the text alone: the last table
/// header before `offset` (array-of-tables indices counted) plus the key of
/// the line, or of the last key line when the error sits inside a multi-line
/// value.
pub fn path_near(text: &str, offset: usize) -> String {
    let mut off = offset.min(text.len());
    while off > 0 && !text.is_char_boundary(off) {
        off -= 1;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut table = String::new();
    let mut last_key: Option<String> = None;
    let mut in_multiline: Option<&str> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let is_error_line = off >= line_start && (off < pos || pos == text.len());
        let t = line.trim();
        if let Some(delim) = in_multiline {
            if t.matches(delim).count() % 2 == 1 {
                in_multiline = None;
            }
        } else if let Some(inner) = t.strip_prefix("[[") {
            let inner = inner.split("]]").next().unwrap_or("");
            table = resolve_header(inner, &mut counts, true);
            last_key = None;
        } else if let Some(inner) = t.strip_prefix('[') {
            let inner = inner.split(']').next().unwrap_or("");
            table = resolve_header(inner, &mut counts, false);
            last_key = None;
        } else if let Some((k, rest)) = t.split_once('=') {
            let k = k.trim();
            if is_key(k) {
                last_key = Some(unquote_key(k));
                if is_error_line {
                    // Inside an inline table or array on this line: the
                    // key (or element) the error is in, not its parent.
                    let value_start = line_start + (line.len() - line.trim_start().len());
                    let value_start = value_start + t.len() - rest.len();
                    let upto = off.saturating_sub(value_start).min(rest.len());
                    if let Some(inner) = rest.get(..upto).map(inline_path) {
                        last_key = last_key.map(|k| k + &inner);
                    }
                }
                for delim in ["\"\"\"", "'''"] {
                    if rest.matches(delim).count() % 2 == 1 {
                        in_multiline = Some(delim);
                    }
                }
            }
        }
        if is_error_line {
            break;
        }
    }
    match last_key {
        Some(k) => join(&table, &k),
        None => table,
    }
}

/// The path inside a value's text up to the error (`{ a = 1, b = [1, {
/// c = ` → `.b[1].c`), following inline tables and arrays, skipping
/// strings.
fn inline_path(value: &str) -> String {
    // Per open bracket: an inline table's current key, or an array's index.
    enum Level {
        Table(Option<String>),
        Array(usize),
    }
    let mut levels: Vec<Level> = Vec::new();
    let mut token = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut escaped = false;
                for d in chars.by_ref() {
                    if d == c && !escaped {
                        break;
                    }
                    escaped = c == '"' && d == '\\' && !escaped;
                }
                token.clear();
            }
            '{' => levels.push(Level::Table(None)),
            '[' => levels.push(Level::Array(0)),
            '}' | ']' => {
                levels.pop();
            }
            '=' => {
                if let Some(Level::Table(key)) = levels.last_mut() {
                    *key = Some(unquote_key(token.trim()));
                }
                token.clear();
            }
            ',' => {
                match levels.last_mut() {
                    Some(Level::Array(i)) => *i += 1,
                    Some(Level::Table(key)) => *key = None,
                    None => {}
                }
                token.clear();
            }
            _ => token.push(c),
        }
    }
    let mut out = String::new();
    for level in &levels {
        match level {
            Level::Table(Some(k)) => {
                out.push('.');
                out.push_str(k);
            }
            Level::Table(None) => break,
            Level::Array(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '))
}

fn unquote_key(k: &str) -> String {
    k.split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect::<Vec<_>>()
        .join(".")
}

/// `phase.step` → `phase[1].step[0]`, counting `[[...]]` headers.
fn resolve_header(inner: &str, counts: &mut HashMap<String, usize>, array: bool) -> String {
    let parts: Vec<String> = inner
        .split('.')
        .map(|p| p.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    let mut resolved = String::new();
    for (i, part) in parts.iter().enumerate() {
        let key = join(&resolved, part);
        let last = i + 1 == parts.len();
        if last && array {
            let n = counts.entry(key.clone()).or_insert(0);
            *n += 1;
            resolved = format!("{key}[{}]", *n - 1);
        } else if let Some(n) = counts.get(&key) {
            resolved = format!("{key}[{}]", n.saturating_sub(1));
        } else {
            resolved = key;
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_and_clamps() {
        let t = "ab\néx = 1\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 5), (2, 2)); // after the 2-byte é
        assert_eq!(line_col(t, 4), (2, 1)); // inside é: clamped
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn table_span_finds_nested_tables_however_written() {
        let t = "[postgres]\nsize.cpus = 4\n[workload]\nclients = 1\n";
        assert_eq!(&t[table_span(t, "postgres.size")], "size");
        assert!(t[table_span(t, "workload")].starts_with("[workload]"));
        let t = "[postgres]\nsize = {}\n";
        assert_eq!(&t[table_span(t, "postgres.size")], "{}");
        assert_eq!(table_span(t, "postgres.replica"), 0..0);
    }

    #[test]
    fn path_at_finds_nested_keys() {
        let t = "[[table]]\nname = \"a\"\n[[table]]\nname = \"b\"\n[table.columns]\nid = { gen = \"int\", mx = 1 }\n";
        let off = t.find("mx").unwrap();
        assert_eq!(path_at(t, off), "table[1].columns.id.mx");
        let off = t.find("\"b\"").unwrap();
        assert_eq!(path_at(t, off), "table[1].name");
    }

    #[test]
    fn path_near_descends_into_inline_tables_and_arrays() {
        let t = "[[table]]\n[table.columns]\nid = { gen = \"int\", min = 1, max = 99x }\n";
        assert_eq!(
            path_near(t, t.find("99x").unwrap()),
            "table[0].columns.id.max"
        );
        let t = "[[q]]\nparams = [{ gen = \"a, b\" }, { gen = \"int\", max = 9x }]\n";
        assert_eq!(path_near(t, t.find("9x").unwrap()), "q[0].params[1].max");
        let t = "x = { a = 1, b = { c = [1, 2x] } }\n";
        assert_eq!(path_near(t, t.find("2x").unwrap()), "x.b.c[1]");
        // Before any inner key: the outer key.
        let t = "x = { 5 }\n";
        assert_eq!(path_near(t, t.find('5').unwrap()), "x");
    }

    #[test]
    fn path_near_follows_headers() {
        let t = "[[phase]]\nname = \"a\"\n[[phase]]\n[[phase.step]]\n[[phase.step]]\nsql = \"\"\"\nx = 1\n";
        assert_eq!(path_near(t, t.len() - 2), "phase[1].step[1].sql");
        assert_eq!(
            path_near("[workload]\nclients = \n", 20),
            "workload.clients"
        );
        assert_eq!(path_near("", 0), "");
    }
}
