//! What a text's `CREATE` statements make that running the same text again
//! would collide with ("type ... already exists"): `pgrehearse seed
//! --replace` drops these before it runs a scenario's SQL again.
//!
//! Read from the tokens, not by a pattern over the text, so that quotes,
//! dollar-quoted bodies and comments never pass for a statement. Left out,
//! because they do not collide: `CREATE OR REPLACE ...`, `... IF NOT
//! EXISTS`, and temporary objects (they end with the session). Kinds other
//! than those of [`CreatedKind`] (indexes, triggers and rules go with their
//! table; operators, casts, aggregates, collations) are not read.

use super::{statement_spans, tokens, Token, TokenKind};

/// The kinds of object read, as their `DROP` statement names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedKind {
    Schema,
    Extension,
    Table,
    View,
    MaterializedView,
    Sequence,
    Type,
    Domain,
    Function,
    Procedure,
}

impl CreatedKind {
    /// The words after `DROP`.
    pub fn keyword(self) -> &'static str {
        match self {
            CreatedKind::Schema => "SCHEMA",
            CreatedKind::Extension => "EXTENSION",
            CreatedKind::Table => "TABLE",
            CreatedKind::View => "VIEW",
            CreatedKind::MaterializedView => "MATERIALIZED VIEW",
            CreatedKind::Sequence => "SEQUENCE",
            CreatedKind::Type => "TYPE",
            CreatedKind::Domain => "DOMAIN",
            CreatedKind::Function => "FUNCTION",
            CreatedKind::Procedure => "PROCEDURE",
        }
    }
}

/// One object a `CREATE` statement makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub kind: CreatedKind,
    /// The name as written (qualified if it was, quotes kept): SQL run with
    /// the same search_path names the same object with it.
    pub name: String,
    /// Functions and procedures: the argument list as `DROP FUNCTION` takes
    /// it (`(a int, text)`: modes, names and types, defaults left out), so
    /// that one overload is named.
    pub args: Option<String>,
}

impl Created {
    /// What `DROP <kind>` takes: the name, with the argument list of a routine.
    pub fn target(&self) -> String {
        format!("{}{}", self.name, self.args.as_deref().unwrap_or(""))
    }
}

/// The objects `sql`'s statements create, in their order.
pub fn created_objects(sql: &str) -> Vec<Created> {
    statement_spans(sql)
        .spans
        .iter()
        .filter_map(|span| {
            let text = &sql[span.start..span.end];
            let toks: Vec<Token> = tokens(text)
                .into_iter()
                .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment))
                .collect();
            parse_create(text, &toks)
        })
        .collect()
}

/// `CREATE [OR REPLACE] [modifiers] <kind> [IF NOT EXISTS] name [(args)]`.
fn parse_create(text: &str, toks: &[Token]) -> Option<Created> {
    let word = |i: usize| {
        toks.get(i)
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| text[t.start..t.end].to_ascii_lowercase())
    };
    if word(0)? != "create" {
        return None;
    }
    let mut i = 1;
    if word(1).as_deref() == Some("or") && word(2).as_deref() == Some("replace") {
        return None; // no collision: it replaces
    }
    loop {
        match word(i)?.as_str() {
            "temp" | "temporary" => return None, // ends with the session
            "global" | "local" | "unlogged" | "recursive" | "trusted" | "procedural" => i += 1,
            _ => break,
        }
    }
    let kind = match word(i)?.as_str() {
        "schema" => CreatedKind::Schema,
        "extension" => CreatedKind::Extension,
        "table" => CreatedKind::Table,
        "view" => CreatedKind::View,
        "materialized" if word(i + 1).as_deref() == Some("view") => {
            i += 1;
            CreatedKind::MaterializedView
        }
        "sequence" => CreatedKind::Sequence,
        "type" => CreatedKind::Type,
        "domain" => CreatedKind::Domain,
        "function" => CreatedKind::Function,
        "procedure" => CreatedKind::Procedure,
        _ => return None,
    };
    i += 1;
    if word(i).as_deref() == Some("if") {
        return None; // IF NOT EXISTS: no collision
    }
    let (name, next) = qualified_name(text, toks, i)?;
    let args = match kind {
        CreatedKind::Function | CreatedKind::Procedure => Some(drop_args(text, toks, next)?),
        _ => None,
    };
    Some(Created { kind, name, args })
}

/// A possibly qualified name starting at token `i`: its text and the index
/// of the token after it.
fn qualified_name(text: &str, toks: &[Token], mut i: usize) -> Option<(String, usize)> {
    let part = |t: Option<&Token>| {
        t.filter(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
            .map(|t| &text[t.start..t.end])
    };
    let mut name = part(toks.get(i))?.to_string();
    i += 1;
    while toks
        .get(i)
        .is_some_and(|t| t.kind == TokenKind::Other && &text[t.start..t.end] == ".")
    {
        name.push('.');
        name.push_str(part(toks.get(i + 1))?);
        i += 2;
    }
    Some((name, i))
}

/// The parenthesized argument list starting at token `open`, as `DROP
/// FUNCTION` takes it: each argument without its `DEFAULT ...` / `= ...`.
fn drop_args(text: &str, toks: &[Token], open: usize) -> Option<String> {
    if toks.get(open)?.kind != TokenKind::OpenParen {
        return None;
    }
    let mut args: Vec<String> = Vec::new();
    // The current argument's kept text (from its first token to its last
    // before any default), and whether its default has begun.
    let mut span: Option<(usize, usize)> = None;
    let mut defaulted = false;
    let mut depth = 0usize;
    for t in &toks[open..] {
        let s = &text[t.start..t.end];
        match t.kind {
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen => depth -= 1,
            _ => {}
        }
        let top = depth == 1;
        let ends_arg = depth == 0 || (top && t.kind == TokenKind::Other && s == ",");
        if ends_arg {
            args.extend(span.take().map(|(from, to)| text[from..to].to_string()));
            defaulted = false;
            if depth == 0 {
                return Some(format!("({})", args.join(", ")));
            }
            continue;
        }
        if top && t.kind == TokenKind::OpenParen {
            continue; // the list's own parenthesis
        }
        let starts_default = (t.kind == TokenKind::Word && s.eq_ignore_ascii_case("default"))
            || (t.kind == TokenKind::Other && s == "=");
        defaulted |= top && starts_default;
        if !defaulted {
            span = Some((span.map_or(t.start, |(from, _)| from), t.end));
        }
    }
    None // never closed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(sql: &str) -> Vec<(CreatedKind, String)> {
        created_objects(sql)
            .iter()
            .map(|c| (c.kind, c.target()))
            .collect()
    }

    #[test]
    fn reads_what_collides_in_order() {
        let sql = r#"
            CREATE TYPE doc_state AS ENUM ('draft', 'live');
            -- CREATE TYPE commented_out AS ENUM ('x');
            create domain public."Short Text" as text check (length(value) < 10);
            CREATE SEQUENCE ids;
            CREATE UNLOGGED TABLE docs (id int DEFAULT nextval('ids'), state doc_state);
            CREATE TABLE docs_2024 PARTITION OF docs FOR VALUES IN (2024);
            CREATE MATERIALIZED VIEW live_docs AS SELECT * FROM docs;
            CREATE RECURSIVE VIEW v (n) AS SELECT 1;
            CREATE SCHEMA app;
            CREATE EXTENSION "uuid-ossp";
        "#;
        use CreatedKind::*;
        assert_eq!(
            targets(sql),
            vec![
                (Type, "doc_state".into()),
                (Domain, r#"public."Short Text""#.into()),
                (Sequence, "ids".into()),
                (Table, "docs".into()),
                (Table, "docs_2024".into()),
                (MaterializedView, "live_docs".into()),
                (View, "v".into()),
                (Schema, "app".into()),
                (Extension, r#""uuid-ossp""#.into()),
            ]
        );
    }

    #[test]
    fn leaves_out_what_does_not_collide() {
        let sql = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
                   CREATE TABLE IF NOT EXISTS t (id int); \
                   CREATE SEQUENCE IF NOT EXISTS s; \
                   CREATE EXTENSION IF NOT EXISTS citext; \
                   CREATE TEMP TABLE scratch (id int); \
                   CREATE GLOBAL TEMPORARY TABLE g (id int); \
                   CREATE INDEX t_id ON t (id); \
                   SELECT 'CREATE TYPE nope AS ENUM ()'; \
                   DO $$ BEGIN EXECUTE 'CREATE TYPE nope2 AS ENUM ()'; END $$";
        assert_eq!(targets(sql), vec![]);
    }

    #[test]
    fn routines_carry_their_arguments_without_defaults() {
        let sql =
            "CREATE FUNCTION app.score(a int, IN b numeric(10, 2) DEFAULT 1.5, c text = 'x,y') \
                   RETURNS int LANGUAGE sql AS $$ SELECT 1; $$; \
                   CREATE PROCEDURE tidy() LANGUAGE sql AS $$ SELECT 1 $$; \
                   CREATE FUNCTION broken(int";
        assert_eq!(
            targets(sql),
            vec![
                (
                    CreatedKind::Function,
                    "app.score(a int, IN b numeric(10, 2), c text)".into()
                ),
                (CreatedKind::Procedure, "tidy()".into()),
            ]
        );
    }
}
