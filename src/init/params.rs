//! Which column a statement's `$n` stands for, read from its text: the
//! column it is compared with (`col = $1`, `$1 < t.col`, `col IN ($1, $2)`,
//! `col LIKE $1`, `col BETWEEN $1 AND $2`), assigned to (`SET col = $1`) or
//! inserted into (`INSERT INTO t (a, b) VALUES ($1, $2)`), and LIMIT and
//! OFFSET. Aliases (`FROM orders o`) name their tables. Anything else, such
//! as `lower($1)`, is unknown: the parameter gets a value of its type.

use super::model::Table;
use crate::sql::{tokens, TokenKind};

/// What a parameter stands for, as far as the text tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Compared with or assigned to (table index, column name); `insert`
    /// when it is a value an INSERT writes.
    Column {
        table: usize,
        column: String,
        insert: bool,
    },
    Limit,
    Offset,
    Unknown,
}

/// The scenario tables a statement names, in the order it names them.
pub fn mentioned_tables(sql: &str, tables: &[Table]) -> Vec<usize> {
    let mut out = Vec::new();
    for w in super::statements::identifiers(sql) {
        if let Some(i) = tables.iter().position(|t| t.name == w) {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

/// For each `$n` (1-based, `count` of them), the column it stands for.
pub fn param_targets(
    sql: &str,
    count: usize,
    tables: &[Table],
    mentioned: &[usize],
) -> Vec<Target> {
    let toks: Vec<(TokenKind, String)> = tokens(sql)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment))
        .map(|t| (t.kind, sql[t.start..t.end].to_string()))
        .collect();
    let text = Text {
        aliases: aliases(&toks, tables),
        inserted: insert_columns(&toks),
        toks,
        tables,
        mentioned,
    };
    let mut out = vec![Target::Unknown; count];
    for (k, (kind, _)) in text.toks.iter().enumerate() {
        let TokenKind::Param(n) = *kind else {
            continue;
        };
        let Some(slot) = (n as usize).checked_sub(1).filter(|s| *s < count) else {
            continue;
        };
        // The first place that tells wins.
        if out[slot] == Target::Unknown {
            out[slot] = text.target(k);
        }
    }
    out
}

/// A statement's significant tokens and what is known about its tables.
struct Text<'a> {
    toks: Vec<(TokenKind, String)>,
    tables: &'a [Table],
    mentioned: &'a [usize],
    aliases: Vec<(String, usize)>,
    /// (token index of a placeholder, table, column) of INSERT values.
    inserted: Vec<(usize, Option<String>, String)>,
}

impl Text<'_> {
    /// What the placeholder at token `k` stands for.
    fn target(&self, k: usize) -> Target {
        if let Some((_, table, column)) = self.inserted.iter().find(|(p, _, _)| *p == k) {
            return self.inserted_column(table.as_deref(), column);
        }
        match k.checked_sub(1).and_then(|i| self.word(i)).as_deref() {
            Some("limit") => return Target::Limit,
            Some("offset") => return Target::Offset,
            _ => {}
        }
        self.column_before(k)
            .or_else(|| self.column_after(k))
            .map_or(Target::Unknown, |(q, c)| self.resolve(q, c, false))
    }

    fn inserted_column(&self, table: Option<&str>, column: &str) -> Target {
        let named = table.and_then(|t| self.tables.iter().position(|x| x.name == t));
        match named {
            Some(ti) if has_column(&self.tables[ti], column) => Target::Column {
                table: ti,
                column: column.to_string(),
                insert: true,
            },
            _ => self.resolve(None, column.to_string(), true),
        }
    }

    /// `col <op> $n`, `col LIKE $n`, `col IN (..., $n)`,
    /// `col BETWEEN x AND $n`: the column before the placeholder.
    fn column_before(&self, k: usize) -> Option<(Option<String>, String)> {
        let skippable = |t: &(TokenKind, String)| match t.0 {
            TokenKind::OpenParen | TokenKind::Param(_) => true,
            TokenKind::Other => matches!(t.1.as_str(), "=" | "<" | ">" | "!" | "," | "~"),
            _ => false,
        };
        let mut j = k;
        while j > 0 && skippable(&self.toks[j - 1]) {
            j -= 1;
        }
        while let Some(w) = j.checked_sub(1).and_then(|i| self.word(i)) {
            match w.as_str() {
                "like" | "ilike" | "in" | "not" | "between" => j -= 1,
                // BETWEEN x AND $n: step over x too.
                "and" if j >= 3 && self.word(j - 3).as_deref() == Some("between") => j -= 3,
                _ => break,
            }
        }
        if j == k {
            return None;
        }
        self.column_ending_at(j.checked_sub(1)?)
    }

    /// `$n <op> col`: the column after the placeholder.
    fn column_after(&self, k: usize) -> Option<(Option<String>, String)> {
        let mut j = k + 1;
        while j < self.toks.len()
            && matches!(&self.toks[j], (TokenKind::Other, s) if "=<>!".contains(s.as_str()))
        {
            j += 1;
        }
        if j == k + 1 {
            return None;
        }
        let end = if self.toks.get(j + 1).is_some_and(|t| t.1 == ".") {
            j + 2
        } else {
            j
        };
        self.column_ending_at(end)
    }

    /// `[qualifier .] column` ending at token `i`.
    fn column_ending_at(&self, i: usize) -> Option<(Option<String>, String)> {
        let col = self.word(i)?;
        if is_keyword(&col) {
            return None;
        }
        let qualifier = (i >= 2 && self.toks[i - 1].1 == ".")
            .then(|| self.word(i - 2))
            .flatten();
        Some((qualifier, col))
    }

    /// The table of a (qualified) column: by alias, else the first table
    /// the statement names that has it.
    fn resolve(&self, qualifier: Option<String>, column: String, insert: bool) -> Target {
        let owner = match qualifier {
            Some(q) => self
                .aliases
                .iter()
                .find(|(a, _)| *a == q)
                .map(|(_, t)| *t)
                .filter(|t| has_column(&self.tables[*t], &column)),
            None => self
                .mentioned
                .iter()
                .copied()
                .find(|t| has_column(&self.tables[*t], &column)),
        };
        match owner {
            Some(table) => Target::Column {
                table,
                column,
                insert,
            },
            None => Target::Unknown,
        }
    }

    /// An identifier: a word lowercased, a quoted name as written.
    fn word(&self, i: usize) -> Option<String> {
        match self.toks.get(i) {
            Some(t @ (TokenKind::Word | TokenKind::QuotedIdent, _)) => Some(ident(t)),
            _ => None,
        }
    }
}

fn has_column(t: &Table, column: &str) -> bool {
    t.columns.iter().any(|c| c.name == column)
}

/// `INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)`: (token index of each
/// placeholder that is a value alone, table, column).
fn insert_columns(toks: &[(TokenKind, String)]) -> Vec<(usize, Option<String>, String)> {
    let lower = |i: usize| toks.get(i).map(|t| t.1.to_lowercase()).unwrap_or_default();
    let Some(into) = (0..toks.len()).find(|&i| lower(i) == "insert" && lower(i + 1) == "into")
    else {
        return Vec::new();
    };
    // The table: the last part of a qualified name.
    let mut i = into + 2;
    let mut table = None;
    while i < toks.len() && toks[i].0 != TokenKind::OpenParen && lower(i) != "values" {
        let name =
            matches!(toks[i].0, TokenKind::Word | TokenKind::QuotedIdent) && lower(i) != "as";
        if name && (table.is_none() || toks[i - 1].1 == ".") {
            table = Some(ident(&toks[i]));
        }
        i += 1;
    }
    if toks.get(i).map(|t| t.0) != Some(TokenKind::OpenParen) {
        return Vec::new();
    }
    let mut cols = Vec::new();
    while i < toks.len() && toks[i].0 != TokenKind::CloseParen {
        if matches!(toks[i].0, TokenKind::Word | TokenKind::QuotedIdent) {
            cols.push(ident(&toks[i]));
        }
        i += 1;
    }
    while i < toks.len() && lower(i) != "values" {
        i += 1;
    }
    // A value that is a placeholder alone: `(` or `,` before, `,` or `)` after.
    let edge = |k: usize| {
        toks.get(k).is_some_and(|t| {
            matches!(t.0, TokenKind::OpenParen | TokenKind::CloseParen) || t.1 == ","
        })
    };
    let mut out = Vec::new();
    let (mut depth, mut pos) = (0usize, 0usize);
    for (k, t) in toks.iter().enumerate().skip(i + 1) {
        match t.0 {
            TokenKind::OpenParen => {
                depth += 1;
                if depth == 1 {
                    pos = 0;
                }
            }
            TokenKind::CloseParen if depth == 0 => break,
            TokenKind::CloseParen => depth -= 1,
            TokenKind::Param(_) if depth == 1 && edge(k - 1) && edge(k + 1) => {
                if let Some(c) = cols.get(pos) {
                    out.push((k, table.clone(), c.clone()));
                }
            }
            TokenKind::Other if depth == 1 && t.1 == "," => pos += 1,
            TokenKind::Word if depth == 0 => break,
            _ => {}
        }
    }
    out
}

/// alias → table index, from `FROM t a`, `JOIN t AS a`, `UPDATE t a`, and
/// each table's own name.
fn aliases(toks: &[(TokenKind, String)], tables: &[Table]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    for (k, tok) in toks.iter().enumerate() {
        if !matches!(tok.0, TokenKind::Word | TokenKind::QuotedIdent) {
            continue;
        }
        let Some(ti) = tables.iter().position(|t| t.name == ident(tok)) else {
            continue;
        };
        let mut a = k + 1;
        if toks.get(a).is_some_and(|t| t.1.eq_ignore_ascii_case("as")) {
            a += 1;
        }
        if let Some(t) = toks.get(a) {
            if matches!(t.0, TokenKind::Word | TokenKind::QuotedIdent) && !is_keyword(&ident(t)) {
                out.push((ident(t), ti));
            }
        }
    }
    out
}

fn ident(t: &(TokenKind, String)) -> String {
    match t.0 {
        TokenKind::QuotedIdent => {
            t.1.strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(&t.1)
                .replace("\"\"", "\"")
        }
        _ => t.1.to_lowercase(),
    }
}

/// Words that are neither an alias nor a column compared with a parameter.
fn is_keyword(w: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "and",
        "as",
        "between",
        "case",
        "cross",
        "default",
        "else",
        "end",
        "false",
        "for",
        "from",
        "full",
        "group",
        "having",
        "ilike",
        "in",
        "inner",
        "is",
        "join",
        "lateral",
        "left",
        "like",
        "limit",
        "natural",
        "not",
        "null",
        "offset",
        "on",
        "or",
        "order",
        "returning",
        "right",
        "select",
        "set",
        "then",
        "true",
        "union",
        "using",
        "values",
        "when",
        "where",
        "window",
    ];
    KEYWORDS.contains(&w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::model::Column;

    fn table(name: &str, cols: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: cols
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    ..Column::default()
                })
                .collect(),
            ..Table::default()
        }
    }

    fn targets(sql: &str, n: usize) -> Vec<String> {
        let tables = vec![
            table("orders", &["id", "customer_id", "status", "total"]),
            table("customers", &["id", "email"]),
        ];
        let m = mentioned_tables(sql, &tables);
        param_targets(sql, n, &tables, &m)
            .into_iter()
            .map(|t| match t {
                Target::Column {
                    table,
                    column,
                    insert,
                } => format!(
                    "{}.{column}{}",
                    tables[table].name,
                    if insert { "+" } else { "" }
                ),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn parameters_find_their_columns() {
        assert_eq!(
            targets("SELECT * FROM orders WHERE id = $1", 1),
            ["orders.id"]
        );
        assert_eq!(
            targets("SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.id = $1 AND o.status IN ($2, $3) LIMIT $4 OFFSET $5", 5),
            ["customers.id", "orders.status", "orders.status", "Limit", "Offset"]
        );
        assert_eq!(
            targets("UPDATE orders SET status = $1, total = $2 WHERE id = $3", 3),
            ["orders.status", "orders.total", "orders.id"]
        );
        assert_eq!(
            targets(
                "INSERT INTO orders (customer_id, status, total) VALUES ($1, $2, $3 + 1)",
                3
            ),
            ["orders.customer_id+", "orders.status+", "Unknown"]
        );
        assert_eq!(
            targets(
                "SELECT count(*) FROM orders WHERE total BETWEEN $1 AND $2 AND $3 <= customer_id",
                3
            ),
            ["orders.total", "orders.total", "orders.customer_id"]
        );
        assert_eq!(
            targets("SELECT * FROM customers WHERE lower(email) = lower($1)", 1),
            ["Unknown"]
        );
        assert_eq!(
            targets("SELECT * FROM customers WHERE email LIKE $1", 1),
            ["customers.email"]
        );
    }
}
