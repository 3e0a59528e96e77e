//! A faithful SQL statement splitter: semicolons outside quotes, dollar
//! quotes, comments, parentheses and `BEGIN ATOMIC ... END` bodies end
//! statements. The tokenizer follows PostgreSQL's lexer (and psql's
//! statement-boundary heuristic) closely enough that migration files split the
//! way psql would split them.

/// What a stretch of SQL text is, as far as statement boundaries care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An unquoted identifier or keyword (may contain `$` after the first char).
    Word,
    /// A `$n` parameter placeholder; the number saturates at `u32::MAX`.
    Param(u32),
    Semicolon,
    OpenParen,
    CloseParen,
    /// '...', E'...', also B'', X'', N'' and U&'' bodies (the prefix is a Word).
    String,
    /// "..." identifier.
    QuotedIdent,
    /// $$...$$ or $tag$...$tag$.
    DollarString,
    /// -- line comment or nested /* */ block comment.
    Comment,
    Whitespace,
    /// Any other character (operators, digits, punctuation).
    Other,
}

/// A token: its kind and its byte range in the input. Ranges always start and
/// end on char boundaries (every boundary is an ASCII byte or the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// Dollar-quote tags are identifiers without `$`.
fn is_tag_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

/// A quote, dollar quote, comment, parenthesis or routine body that opens at
/// byte `start` and is never closed: the rest of the input belongs to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unclosed {
    pub kind: UnclosedKind,
    pub start: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnclosedKind {
    /// '...' (also E'', B'', X'', U&'').
    String,
    /// "...".
    QuotedIdent,
    /// $$...$$ or $tag$...$tag$.
    DollarString,
    /// /* ... */ (nesting counted).
    BlockComment,
    /// ( without its ).
    Paren,
    /// A `BEGIN ATOMIC` routine body without its END.
    RoutineBody,
}

impl UnclosedKind {
    /// What it is, for an error message ("dollar-quoted string").
    pub fn describe(self) -> &'static str {
        match self {
            UnclosedKind::String => "quoted string",
            UnclosedKind::QuotedIdent => "double-quoted identifier",
            UnclosedKind::DollarString => "dollar-quoted string",
            UnclosedKind::BlockComment => "block comment",
            UnclosedKind::Paren => "parenthesis",
            UnclosedKind::RoutineBody => "BEGIN ATOMIC routine body",
        }
    }
}

/// Tokenize `sql`. Unterminated quotes and comments run to the end of input.
pub fn tokens(sql: &str) -> Vec<Token> {
    lex(sql).0
}

/// Tokenize, and say which construct (only ever the last token) never closed.
fn lex(sql: &str) -> (Vec<Token>, Option<Unclosed>) {
    let mut unclosed = None;
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let start = i;
        let c = b[i];
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                while i < n && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
                    i += 1;
                }
                TokenKind::Whitespace
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                TokenKind::Comment
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (end, closed) = skip_block_comment(b, i);
                i = end;
                if !closed {
                    unclosed = Some((UnclosedKind::BlockComment, start));
                }
                TokenKind::Comment
            }
            b'\'' => {
                // An E prefix right before the quote (as a whole word) turns on
                // backslash escapes.
                let escapes = matches!(out.last(), Some(Token { kind: TokenKind::Word, start: ws, end: we })
                    if *we == start && we - ws == 1 && matches!(b[*ws], b'e' | b'E'));
                let closed;
                (i, closed) = skip_quoted(b, i, b'\'', escapes);
                if !closed {
                    unclosed = Some((UnclosedKind::String, start));
                }
                TokenKind::String
            }
            b'"' => {
                let closed;
                (i, closed) = skip_quoted(b, i, b'"', false);
                if !closed {
                    unclosed = Some((UnclosedKind::QuotedIdent, start));
                }
                TokenKind::QuotedIdent
            }
            b'$' => {
                let (kind, end, closed) = dollar(b, i);
                i = end;
                if !closed {
                    unclosed = Some((UnclosedKind::DollarString, start));
                }
                kind
            }
            b';' => {
                i += 1;
                TokenKind::Semicolon
            }
            b'(' => {
                i += 1;
                TokenKind::OpenParen
            }
            b')' => {
                i += 1;
                TokenKind::CloseParen
            }
            c if is_ident_start(c) => {
                while i < n && is_ident_cont(b[i]) {
                    i += 1;
                }
                TokenKind::Word
            }
            c if c.is_ascii_digit() => {
                // A number: digits, and identifier chars glued to it (1e5,
                // 0x1F) so they are not taken for words like END.
                while i < n && (is_ident_cont(b[i]) || b[i] == b'.') && b[i] != b'$' {
                    i += 1;
                }
                TokenKind::Other
            }
            _ => {
                i += 1;
                TokenKind::Other
            }
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    let unclosed = unclosed.map(|(kind, start)| Unclosed { kind, start });
    (out, unclosed)
}

/// Skip a block comment starting at `/*`; they nest in PostgreSQL. Returns
/// the index after the close, and whether there was a close (else the index
/// is the end of input).
fn skip_block_comment(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    (i, depth == 0)
}

/// What starts with the `$` at `b[i]`: a `$n` placeholder, a dollar-quoted
/// string, or a lone `$`. Returns the kind, the index after it, and whether
/// it was closed (only a dollar-quoted string can run to the end of input).
fn dollar(b: &[u8], mut i: usize) -> (TokenKind, usize, bool) {
    let n = b.len();
    if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
        i += 1;
        let mut v: u64 = 0;
        while i < n && b[i].is_ascii_digit() {
            v = (v * 10 + u64::from(b[i] - b'0')).min(u64::from(u32::MAX));
            i += 1;
        }
        (TokenKind::Param(v as u32), i, true)
    } else if let Some(tag_end) = dollar_tag(b, i) {
        let tag = &b[i..tag_end];
        match find(&b[tag_end..], tag) {
            Some(p) => (TokenKind::DollarString, tag_end + p + tag.len(), true),
            None => (TokenKind::DollarString, n, false),
        }
    } else {
        (TokenKind::Other, i + 1, true)
    }
}

/// Skip a quoted string or identifier starting at the opening quote `b[i]`;
/// a doubled quote is an escaped quote. Returns the index after the close,
/// and whether there was a close (else the index is the end of input).
fn skip_quoted(b: &[u8], mut i: usize, q: u8, backslash_escapes: bool) -> (usize, bool) {
    i += 1;
    while i < b.len() {
        if backslash_escapes && b[i] == b'\\' {
            // Skip the escaped byte; a multi-byte char's continuation bytes
            // are never quotes, so skipping one byte is enough.
            i += 2;
        } else if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
            } else {
                return (i + 1, true);
            }
        } else {
            i += 1;
        }
    }
    (b.len(), false)
}

/// If `b[i..]` starts a dollar-quote opening (`$$` or `$tag$`), the index
/// after it.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < b.len() && is_ident_start(b[j]) {
        j += 1;
        while j < b.len() && is_tag_cont(b[j]) {
            j += 1;
        }
    }
    (j < b.len() && b[j] == b'$').then_some(j + 1)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

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
