//! A faithful SQL statement splitter: semicolons outside quotes, dollar
//! quotes, comments, parentheses and `BEGIN ATOMIC ... END` bodies end
//! statements. The tokenizer follows PostgreSQL's lexer (and psql's
//! statement-boundary heuristic) closely enough that migration files split the
//! way psql would split them. The tokenizer is in lex.rs, what a `SET` of a
//! time setting does in guc.rs, what `CREATE` statements make in created.rs;
//! here: statements, their positions, `$n` placeholders, lines and columns.

mod created;
mod guc;
mod lex;

pub use created::{created_objects, Created, CreatedKind};
pub use guc::{session_time_setting, time_setting};

use lex::lex;
pub use lex::{tokens, Token, TokenKind, Unclosed, UnclosedKind};

/// One statement of a text: byte ranges into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementSpan {
    /// The statement trimmed of whitespace, without its terminating `;`.
    /// Leading comments belong to it: this is the text PostgreSQL itself
    /// reports for the statement of a multi-statement query (the server's
    /// `stmt_location`/`stmt_len`, trimmed as pg_stat_statements does).
    pub start: usize,
    pub end: usize,
    /// Where its first token that is not a comment starts: the line an
    /// editor should jump to.
    pub code_start: usize,
}

/// The statements of a text, and what never closed (then the last
/// statement runs to the end of the text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statements {
    pub spans: Vec<StatementSpan>,
    pub unclosed: Option<Unclosed>,
}

/// Whether `sql` names `relation` (as locks.csv spells it: `t`,
/// `public.t`, `"User"`) as one of its identifiers.
pub fn names_relation(sql: &str, relation: &str) -> bool {
    let last = relation.rsplit('.').next().unwrap_or(relation);
    tokens(sql).iter().any(|t| {
        let text = &sql[t.start..t.end];
        match t.kind {
            TokenKind::Word => text.eq_ignore_ascii_case(last),
            TokenKind::QuotedIdent => text == last,
            _ => false,
        }
    })
}

/// A statement on one line, for reports and advice: each run of whitespace
/// one space, comments gone (on one line a `--` comment would swallow the
/// rest, and the `;` an advice puts after it), strings and quoted names as
/// written; past `max` characters cut, ending in "...". Reads no further
/// than it needs: a 6 MB `INSERT ... VALUES` costs what its start does.
pub fn one_line(sql: &str, max: usize) -> String {
    let mut out = String::new();
    let (mut chars, mut space) = (0, false);
    for t in tokens(sql) {
        if matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment) {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
        }
        let text = &sql[t.start..t.end];
        out.push_str(text);
        chars += text.chars().count();
        if chars > max {
            let cut: String = out.chars().take(max.saturating_sub(3)).collect();
            return cut + "...";
        }
    }
    out
}

/// Split `sql` into statements, trimmed, without the terminating `;`, empty
/// statements (and comment-only ones) dropped.
///
/// Like psql, a `;` does not end a statement inside parentheses or inside the
/// `BEGIN ... END` body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (SQL-standard
/// bodies, `BEGIN ATOMIC`), where `CASE ... END` nests.
pub fn split(sql: &str) -> Vec<String> {
    statement_spans(sql)
        .spans
        .iter()
        .map(|s| sql[s.start..s.end].to_string())
        .collect()
}

/// What keeps `fragment` (an expression or a SET list pasted into a
/// statement we build, such as a backfill's UPDATE) from staying one part
/// of that statement: a quote or comment never closed, a `;`, a
/// parenthesis it closes without opening or opens without closing, a `--`
/// comment (it would swallow what follows it). None when it is whole.
pub fn fragment_problem(fragment: &str) -> Option<String> {
    let (toks, unclosed) = lex(fragment);
    if let Some(u) = unclosed {
        let at: String = fragment[u.start..].chars().take(20).collect();
        return Some(format!(
            "a {} opened at `{at}` is never closed",
            u.kind.describe()
        ));
    }
    let mut depth = 0usize;
    for t in &toks {
        let text = &fragment[t.start..t.end];
        match t.kind {
            TokenKind::Semicolon => {
                return Some("a `;` would end the statement it is part of".into())
            }
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen if depth == 0 => {
                return Some(format!(
                    "the `)` at byte {} closes a parenthesis it did not open",
                    t.start
                ))
            }
            TokenKind::CloseParen => depth -= 1,
            TokenKind::Comment if text.starts_with("--") => {
                return Some(
                    "a `--` comment would swallow the rest of the statement; use /* ... */".into(),
                )
            }
            _ => {}
        }
    }
    (depth > 0).then(|| "opens a parenthesis it does not close".to_string())
}

/// [`split`] with positions: each statement's byte range and where its code
/// starts, plus the construct that never closed, if any.
pub fn statement_spans(sql: &str) -> Statements {
    let (toks, unclosed_token) = lex(sql);
    let mut out = Statements::default();
    let mut st = StatementState::default();
    let mut stmt_start = 0;
    let mut code_start = None;
    // Where each open parenthesis opened, outermost first.
    let mut parens: Vec<usize> = Vec::new();
    let mut body_start = None;
    for t in toks {
        match t.kind {
            TokenKind::Semicolon if st.paren_depth == 0 && st.begin_depth == 0 => {
                push_span(&mut out.spans, sql, stmt_start, t.start, code_start);
                st = StatementState::default();
                stmt_start = t.end;
                code_start = None;
                parens.clear();
                body_start = None;
                continue;
            }
            TokenKind::Whitespace | TokenKind::Comment => continue,
            TokenKind::OpenParen => {
                st.paren_depth += 1;
                parens.push(t.start);
            }
            TokenKind::CloseParen => {
                st.paren_depth = st.paren_depth.saturating_sub(1);
                parens.pop();
            }
            TokenKind::Word => {
                st.word(&sql[t.start..t.end]);
                if st.begin_depth > 0 && body_start.is_none() {
                    body_start = Some(t.start);
                } else if st.begin_depth == 0 {
                    body_start = None;
                }
            }
            _ => {}
        }
        code_start.get_or_insert(t.start);
    }
    push_span(&mut out.spans, sql, stmt_start, sql.len(), code_start);
    out.unclosed = unclosed_token
        .or_else(|| {
            parens.first().map(|&start| Unclosed {
                kind: UnclosedKind::Paren,
                start,
            })
        })
        .or_else(|| {
            body_start.map(|start| Unclosed {
                kind: UnclosedKind::RoutineBody,
                start,
            })
        });
    out
}

/// The lexer's whitespace (and the server's `scanner_isspace`).
fn is_sql_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

fn push_span(
    out: &mut Vec<StatementSpan>,
    sql: &str,
    from: usize,
    to: usize,
    code_start: Option<usize>,
) {
    let Some(code_start) = code_start else {
        return; // only whitespace and comments
    };
    let text = &sql[from..to];
    let start = from + (text.len() - text.trim_start_matches(is_sql_space).len());
    let end = from + text.trim_end_matches(is_sql_space).len();
    out.push(StatementSpan {
        start,
        end,
        code_start,
    });
}

/// psql's heuristic for SQL-standard function bodies (psqlscan.l).
#[derive(Default)]
struct StatementState {
    paren_depth: usize,
    begin_depth: usize,
    /// First letters of the first four words when they are CREATE, OR,
    /// REPLACE, FUNCTION or PROCEDURE; 0 otherwise.
    identifiers: [u8; 4],
    identifier_count: usize,
}

impl StatementState {
    fn word(&mut self, w: &str) {
        let lw = w.to_ascii_lowercase();
        if self.identifier_count < self.identifiers.len()
            && matches!(
                lw.as_str(),
                "create" | "function" | "procedure" | "or" | "replace"
            )
        {
            self.identifiers[self.identifier_count] = lw.as_bytes()[0];
        }
        self.identifier_count += 1;
        let ids = self.identifiers;
        let creating_routine = ids[0] == b'c'
            && (ids[1] == b'f'
                || ids[1] == b'p'
                || (ids[1] == b'o' && ids[2] == b'r' && (ids[3] == b'f' || ids[3] == b'p')));
        if creating_routine && self.paren_depth == 0 {
            match lw.as_str() {
                "begin" => self.begin_depth += 1,
                "case" if self.begin_depth > 0 => self.begin_depth += 1,
                "end" if self.begin_depth > 0 => self.begin_depth -= 1,
                _ => {}
            }
        }
    }
}

/// The distinct `$n` placeholder numbers used outside quotes and comments,
/// sorted ascending.
pub fn placeholders(sql: &str) -> Vec<u32> {
    let mut v: Vec<u32> = tokens(sql)
        .into_iter()
        .filter_map(|t| match t.kind {
            TokenKind::Param(n) => Some(n),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Byte offsets to 1-based line:column (column in characters) for many
/// offsets into one text: the line starts are found once.
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { line_starts }
    }

    /// Line and column of byte `offset` of `text` (the text this index was
    /// built from); an offset past the end or inside a character clamps back.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        (line, text[start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fragment_stays_one_clause() {
        for whole in [
            "v = 0",
            "x IS NULL AND (y > 2 OR z)",
            "s = 'a;b)'",
            "x /* -- */ = 1",
        ] {
            assert_eq!(fragment_problem(whole), None, "{whole}");
        }
        for (broken, why) in [
            ("v > 5) OR (true", "closes a parenthesis"),
            ("(v > 5", "does not close"),
            ("x = 0 WHERE false; DELETE FROM t", "`;`"),
            ("x IS NULL --", "`--` comment"),
            ("s = 'open", "never closed"),
            ("s = $$x", "never closed"),
        ] {
            let got = fragment_problem(broken).unwrap_or_default();
            assert!(got.contains(why), "{broken}: {got}");
        }
    }

    #[test]
    fn a_carriage_return_ends_a_line_comment_as_in_postgresql() {
        let sql = "ALTER TABLE a ADD x int; -- x\rALTER TABLE a ADD y int";
        assert_eq!(
            split(sql),
            ["ALTER TABLE a ADD x int", "-- x\rALTER TABLE a ADD y int"]
        );
        assert_eq!(split("-- only\rSELECT 1"), ["-- only\rSELECT 1"]);
    }

    #[test]
    fn names_a_relation_as_locks_csv_spells_it() {
        let sql = r#"CREATE INDEX m_sensor ON public.m (sensor_id); UPDATE "User" SET x = 1"#;
        assert!(names_relation(sql, "m"));
        assert!(names_relation(sql, "public.m"));
        assert!(names_relation(sql, "\"User\""));
        assert!(!names_relation(sql, "m_2024"), "a prefix is not the name");
        assert!(!names_relation(sql, "user"), "quoted names keep their case");
        assert!(
            !names_relation("SELECT 'm'", "m"),
            "a string is not an identifier"
        );
    }

    #[test]
    fn one_line_drops_comments_and_keeps_strings() {
        assert_eq!(
            one_line(
                "ALTER TABLE t\n  ADD c int -- JIRA-1\n/* why */ DEFAULT 0",
                100
            ),
            "ALTER TABLE t ADD c int DEFAULT 0"
        );
        assert_eq!(one_line("SELECT 'a  --b'", 100), "SELECT 'a  --b'");
        assert_eq!(one_line("SELECT 123456789", 10), "SELECT ...");
        assert_eq!(one_line("  -- only a comment\n", 10), "");
    }

    #[test]
    fn splits_plain_statements() {
        assert_eq!(
            split("SELECT 1; SELECT 2;\n\n;  SELECT 3"),
            vec!["SELECT 1", "SELECT 2", "SELECT 3"]
        );
        assert_eq!(split(""), Vec::<String>::new());
        assert_eq!(split(" ; ;; "), Vec::<String>::new());
    }

    #[test]
    fn single_quotes_with_doubled_escape() {
        assert_eq!(
            split("SELECT 'a;b''c;'; SELECT 2"),
            vec!["SELECT 'a;b''c;'", "SELECT 2"]
        );
    }

    #[test]
    fn backslash_is_literal_in_standard_strings() {
        // standard_conforming_strings: 'a\' is a complete string.
        assert_eq!(
            split(r"SELECT 'a\'; SELECT 2"),
            vec![r"SELECT 'a\'", "SELECT 2"]
        );
    }

    #[test]
    fn e_strings_honour_backslash_escapes() {
        assert_eq!(
            split(r"SELECT E'it\'s; fine'; SELECT e'\\'; SELECT 3"),
            vec![r"SELECT E'it\'s; fine'", r"SELECT e'\\'", "SELECT 3"]
        );
        // `name'` is not an E prefix: the word is "name".
        assert_eq!(
            placeholders(r"SELECT 1 FROM t WHERE name='\' AND x = $1"),
            vec![1]
        );
    }

    #[test]
    fn double_quoted_identifiers() {
        assert_eq!(
            split(r#"SELECT "a;""b" FROM t; SELECT 2"#),
            vec![r#"SELECT "a;""b" FROM t"#, "SELECT 2"]
        );
    }

    #[test]
    fn dollar_quotes_plain_and_tagged() {
        let body = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$";
        assert_eq!(split(&format!("{body}; SELECT 2")), vec![body, "SELECT 2"]);
        let tagged = "DO $fn$ BEGIN PERFORM 'x$$;'; END $fn$";
        assert_eq!(
            split(&format!("{tagged};SELECT 2")),
            vec![tagged, "SELECT 2"]
        );
        // An identifier may contain `$`: not a dollar quote.
        assert_eq!(split("SELECT a$b$ FROM t; SELECT 2").len(), 2);
    }

    #[test]
    fn comments_line_and_nested_block() {
        assert_eq!(
            split("SELECT 1 -- ; not here\n; /* a /* nested ; */ still ; */ SELECT 2"),
            vec![
                "SELECT 1 -- ; not here",
                "/* a /* nested ; */ still ; */ SELECT 2"
            ]
        );
        // Comment-only statements are dropped.
        assert_eq!(split("SELECT 1; -- trailing\n"), vec!["SELECT 1"]);
    }

    #[test]
    fn semicolons_inside_parentheses_do_not_split() {
        assert_eq!(split("SELECT (1; 2); SELECT 3").len(), 2);
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let f = "CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END; SELECT 2; END";
        assert_eq!(split(&format!("{f}; SELECT 9")), vec![f, "SELECT 9"]);
        let p = "CREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END";
        assert_eq!(split(&format!("{p};\nSELECT 9;")), vec![p, "SELECT 9"]);
        // A transaction BEGIN is not a routine body.
        assert_eq!(
            split("BEGIN; SELECT 1; COMMIT"),
            vec!["BEGIN", "SELECT 1", "COMMIT"]
        );
    }

    #[test]
    fn unterminated_constructs_run_to_end_without_panicking() {
        assert_eq!(
            split("SELECT 'abc; SELECT 2"),
            vec!["SELECT 'abc; SELECT 2"]
        );
        assert_eq!(split("SELECT $$abc; x"), vec!["SELECT $$abc; x"]);
        assert_eq!(split("SELECT 1 /* ; "), vec!["SELECT 1 /* ;"]);
        assert_eq!(split(r"SELECT E'\"), vec![r"SELECT E'\"]);
        assert_eq!(split("é; ü'ñ"), vec!["é", "ü'ñ"]);
    }

    #[test]
    fn placeholders_outside_quotes_and_comments() {
        assert_eq!(
            placeholders("SELECT $2, '$3', \"$4\", $$ $5 $$ /* $6 */ -- $7\n, $1, $2, $10"),
            vec![1, 2, 10]
        );
        assert_eq!(placeholders("SELECT a$1 FROM t"), Vec::<u32>::new());
        assert_eq!(placeholders("SELECT $99999999999"), vec![u32::MAX]);
        assert_eq!(placeholders("SELECT 1"), Vec::<u32>::new());
    }

    #[test]
    fn spans_keep_leading_comments_and_locate_the_code() {
        let sql = "-- header; with a semicolon\nCREATE TABLE a (x int);\n\n  /* c */ SELECT 1 ;\n-- trailing\n";
        let st = statement_spans(sql);
        assert_eq!(st.unclosed, None);
        let texts: Vec<&str> = st.spans.iter().map(|s| &sql[s.start..s.end]).collect();
        assert_eq!(
            texts,
            vec![
                "-- header; with a semicolon\nCREATE TABLE a (x int)",
                "/* c */ SELECT 1"
            ]
        );
        assert!(sql[st.spans[0].code_start..].starts_with("CREATE TABLE"));
        assert!(sql[st.spans[1].code_start..].starts_with("SELECT 1"));
        // split() is the same statements as text.
        assert_eq!(split(sql), texts);
    }

    #[test]
    fn spans_report_what_never_closed_and_where_it_opened() {
        let cases = [
            ("SELECT 1; SELECT 'abc", UnclosedKind::String, 17),
            ("SELECT \"abc", UnclosedKind::QuotedIdent, 7),
            (
                "SELECT 1;\nDO $fn$ BEGIN END $$;",
                UnclosedKind::DollarString,
                13,
            ),
            ("SELECT 1 /* a /* b */ still", UnclosedKind::BlockComment, 9),
            ("CREATE TABLE t (a int; SELECT 2", UnclosedKind::Paren, 15),
            (
                "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; SELECT 2",
                UnclosedKind::RoutineBody,
                32,
            ),
        ];
        for (sql, kind, at) in cases {
            let st = statement_spans(sql);
            assert_eq!(st.unclosed, Some(Unclosed { kind, start: at }), "{sql}");
        }
        // Closed constructs are not reported, including a quote that is the
        // very last byte.
        for sql in [
            "SELECT 'a'",
            "SELECT \"a\"",
            "SELECT $$a$$",
            "SELECT 1 /* a */",
            "SELECT (1)",
        ] {
            assert_eq!(statement_spans(sql).unclosed, None, "{sql}");
        }
    }

    #[test]
    fn line_index_counts_lines_and_characters() {
        let text = "ab\nçd€x\n\nz";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_col(text, 0), (1, 1));
        assert_eq!(idx.line_col(text, 2), (1, 3));
        assert_eq!(idx.line_col(text, 3), (2, 1));
        // 'ç' is 2 bytes, '€' 3: 'x' is the 4th character of line 2.
        assert_eq!(idx.line_col(text, text.find('x').unwrap()), (2, 4));
        assert_eq!(idx.line_col(text, text.find('z').unwrap()), (4, 1));
        // Inside a character or past the end clamps back.
        assert_eq!(idx.line_col(text, 4), (2, 1));
        assert_eq!(idx.line_col(text, 999), (4, 2));
    }
}
