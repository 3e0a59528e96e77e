//! pg_stat_statements keeps a statement's text with its constants replaced
//! by `$n`, and a typed literal (`interval '1 day'`, `date '2024-01-01'`)
//! becomes `interval $1`, which does not parse: the `type 'string'` form
//! takes a string constant, never a parameter. Written as a cast
//! (`$1::interval`) it means the same and can be prepared. A type no
//! generator writes goes through text (`$1::text::interval`), and the
//! parameter gets a constant of the type: the literal's value is not in
//! pg_stat_statements.

use crate::sql::{tokens, TokenKind};

/// Type names that take a typed literal, one word each (lowercase).
const ONE_WORD: &[&str] = &[
    "interval",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "bool",
    "boolean",
    "int",
    "int2",
    "int4",
    "int8",
    "integer",
    "smallint",
    "bigint",
    "numeric",
    "decimal",
    "real",
    "float",
    "float4",
    "float8",
    "text",
    "varchar",
    "char",
    "character",
    "bpchar",
    "name",
    "uuid",
    "json",
    "jsonb",
    "inet",
    "cidr",
    "macaddr",
    "bytea",
    "money",
    "xml",
    "bit",
    "varbit",
    "point",
    "tsquery",
    "tsvector",
];

/// Type names of several words, by their last words (lowercase).
const SEVERAL_WORDS: &[&[&str]] = &[
    &["timestamp", "with", "time", "zone"],
    &["timestamp", "without", "time", "zone"],
    &["time", "with", "time", "zone"],
    &["time", "without", "time", "zone"],
    &["double", "precision"],
    &["character", "varying"],
    &["char", "varying"],
    &["bit", "varying"],
];

/// Types a generator writes (query parameters of these types are filled
/// as they are), as the literal's type names say them.
const GENERATED: &[&str] = &[
    "date",
    "timestamp",
    "timestamptz",
    "timestamp with time zone",
    "timestamp without time zone",
    "bool",
    "boolean",
    "int",
    "int2",
    "int4",
    "int8",
    "integer",
    "smallint",
    "bigint",
    "numeric",
    "decimal",
    "real",
    "float",
    "float4",
    "float8",
    "double precision",
    "text",
    "varchar",
    "character varying",
    "char varying",
    "uuid",
    "json",
    "jsonb",
];

/// A value of a type no generator writes, for a parameter passed as text.
fn constant_of(ty: &str) -> &'static str {
    match ty {
        "interval" => "1 day",
        "time" | "timetz" | "time with time zone" | "time without time zone" => "12:00:00",
        "inet" => "10.0.0.1",
        "cidr" => "10.0.0.0/8",
        "macaddr" => "08:00:2b:01:02:03",
        "money" => "1.00",
        "bytea" => "\\x00",
        "xml" => "<x/>",
        "bit" | "varbit" | "bit varying" => "1",
        "point" => "(0,0)",
        "tsquery" | "tsvector" => "word",
        _ => "x",
    }
}

/// A statement's text with its typed literals of parameters as casts.
#[derive(Debug, PartialEq)]
pub struct Mended {
    pub sql: String,
    /// (`$n`'s n, value, type) of parameters passed as text to a type no
    /// generator writes: each gets this constant.
    pub constants: Vec<(u32, &'static str, String)>,
}

/// `query` with every `type $n` written `$n::type` (`$n::text::type` for a
/// type no generator writes); None when it has none.
pub fn typed_parameters(query: &str) -> Option<Mended> {
    let toks: Vec<_> = tokens(query)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment))
        .collect();
    let word = |i: usize| -> Option<String> {
        let t = toks.get(i)?;
        (t.kind == TokenKind::Word).then(|| query[t.start..t.end].to_lowercase())
    };
    // (byte range replaced, replacement), in order.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut constants = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        let TokenKind::Param(n) = t.kind else {
            continue;
        };
        if k == 0 {
            continue;
        }
        let words_before = |n: usize| -> Option<Vec<String>> {
            (1..=n)
                .rev()
                .map(|back| k.checked_sub(back).and_then(word))
                .collect()
        };
        let several = SEVERAL_WORDS.iter().find(|name| {
            words_before(name.len()).is_some_and(|w| w.iter().zip(name.iter()).all(|(a, b)| a == b))
        });
        let len = match several {
            Some(name) => name.len(),
            None if word(k - 1).is_some_and(|w| ONE_WORD.contains(&w.as_str())) => 1,
            None => continue,
        };
        // `AT TIME ZONE $1` and `x::time $1` are not typed literals; a type
        // name after `.` is a column (`t.date $1` does not parse either way).
        let before = k.checked_sub(len + 1).map(|i| &toks[i]);
        let blocked = before.is_some_and(|b| {
            let text = &query[b.start..b.end];
            text == "."
                || text == ":"
                || (b.kind == TokenKind::Word && text.eq_ignore_ascii_case("at"))
        });
        if blocked {
            continue;
        }
        let first = &toks[k - len];
        let ty = (k - len..k).filter_map(word).collect::<Vec<_>>().join(" ");
        let param = &query[t.start..t.end];
        let via = if GENERATED.contains(&ty.as_str()) {
            ""
        } else {
            constants.push((n, constant_of(&ty), ty.clone()));
            "::text"
        };
        edits.push((first.start, t.end, format!("{param}{via}::{ty}")));
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(query.len() + 8 * edits.len());
    let mut at = 0;
    for (start, end, text) in edits {
        out.push_str(&query[at..start]);
        out.push_str(&text);
        at = end;
    }
    out.push_str(&query[at..]);
    Some(Mended {
        sql: out,
        constants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(q: &str) -> Option<String> {
        typed_parameters(q).map(|m| m.sql)
    }

    #[test]
    fn typed_literals_become_casts() {
        let m = typed_parameters("SELECT * FROM t WHERE at > now() - interval $2 AND id = $1");
        assert_eq!(
            m,
            Some(Mended {
                sql: "SELECT * FROM t WHERE at > now() - $2::text::interval AND id = $1".into(),
                constants: vec![(2, "1 day", "interval".into())],
            })
        );
        assert_eq!(
            sql("SELECT 1 FROM t WHERE d >= DATE $1 AND ts < timestamp with time zone $2"),
            Some(
                "SELECT 1 FROM t WHERE d >= $1::date AND ts < $2::timestamp with time zone".into()
            )
        );
        assert_eq!(
            sql("SELECT x::double precision, double precision $1 FROM t"),
            Some("SELECT x::double precision, $1::double precision FROM t".into())
        );
        // Nothing to rewrite: a cast already, a keyword before $n, AT TIME
        // ZONE, a column called date.
        for q in [
            "SELECT * FROM t WHERE at > now() - $1::interval",
            "SELECT * FROM t WHERE id = $1 LIMIT $2",
            "SELECT at AT TIME ZONE $1 FROM t",
            "SELECT * FROM t WHERE t.date = $1",
            "SELECT 'interval $1' FROM t",
        ] {
            assert_eq!(sql(q), None, "{q}");
        }
    }
}
