//! The tokenizer: SQL text into words, quotes, dollar quotes, comments,
//! placeholders and punctuation, the way PostgreSQL's lexer sees them, and
//! what never closed.

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
pub(super) fn lex(sql: &str) -> (Vec<Token>, Option<Unclosed>) {
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
                while i < n && !matches!(b[i], b'\n' | b'\r') {
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
