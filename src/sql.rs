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

/// Tokenize `sql`. Unterminated quotes and comments run to the end of input.
pub fn tokens(sql: &str) -> Vec<Token> {
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
                // Block comments nest in PostgreSQL.
                let mut depth = 0usize;
                while i < n {
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
                TokenKind::Comment
            }
            b'\'' => {
                // An E prefix right before the quote (as a whole word) turns on
                // backslash escapes.
                let escapes = matches!(out.last(), Some(Token { kind: TokenKind::Word, start: ws, end: we })
                    if *we == start && we - ws == 1 && matches!(b[*ws], b'e' | b'E'));
                i = skip_quoted(b, i, b'\'', escapes);
                TokenKind::String
            }
            b'"' => {
                i = skip_quoted(b, i, b'"', false);
                TokenKind::QuotedIdent
            }
            b'$' => {
                if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    let mut v: u64 = 0;
                    while i < n && b[i].is_ascii_digit() {
                        v = (v * 10 + u64::from(b[i] - b'0')).min(u64::from(u32::MAX));
                        i += 1;
                    }
                    TokenKind::Param(v as u32)
                } else if let Some(tag_end) = dollar_tag(b, i) {
                    let tag = &b[i..tag_end];
                    i = tag_end;
                    match find(&b[i..], tag) {
                        Some(p) => i += p + tag.len(),
                        None => i = n,
                    }
                    TokenKind::DollarString
                } else {
                    i += 1;
                    TokenKind::Other
                }
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
    out
}

/// Skip a quoted string or identifier starting at the opening quote `b[i]`;
/// a doubled quote is an escaped quote. Returns the index after the close.
fn skip_quoted(b: &[u8], mut i: usize, q: u8, backslash_escapes: bool) -> usize {
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
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
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

/// Split `sql` into statements, trimmed, without the terminating `;`, empty
/// statements (and comment-only ones) dropped.
///
/// Like psql, a `;` does not end a statement inside parentheses or inside the
/// `BEGIN ... END` body of `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (SQL-standard
/// bodies, `BEGIN ATOMIC`), where `CASE ... END` nests.
pub fn split(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut st = StatementState::default();
    let mut stmt_start = 0;
    for t in tokens(sql) {
        match t.kind {
            TokenKind::Semicolon if st.paren_depth == 0 && st.begin_depth == 0 => {
                push_statement(&mut out, &sql[stmt_start..t.start], st.has_code);
                st = StatementState::default();
                stmt_start = t.end;
            }
            TokenKind::Whitespace | TokenKind::Comment => {}
            TokenKind::OpenParen => {
                st.has_code = true;
                st.paren_depth += 1;
            }
            TokenKind::CloseParen => {
                st.has_code = true;
                st.paren_depth = st.paren_depth.saturating_sub(1);
            }
            TokenKind::Word => {
                st.has_code = true;
                st.word(&sql[t.start..t.end]);
            }
            _ => st.has_code = true,
        }
    }
    push_statement(&mut out, &sql[stmt_start..], st.has_code);
    out
}

fn push_statement(out: &mut Vec<String>, text: &str, has_code: bool) {
    let text = text.trim();
    if has_code && !text.is_empty() {
        out.push(text.to_string());
    }
}

/// psql's heuristic for SQL-standard function bodies (psqlscan.l).
#[derive(Default)]
struct StatementState {
    has_code: bool,
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
}
