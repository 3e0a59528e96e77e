//! Reading a migration file and splitting it into located statements the way
//! its tool would see them: the project's faithful splitter, positions as
//! line:column, psql meta-commands for the layouts psql runs (Sqitch, plain),
//! and the constructs no tool can run (an unclosed quote, inline COPY data).

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::classify;
use super::error::MigrationError;
use super::model::{Layout, Location, Statement};
use crate::sql::{self, LineIndex, TokenKind};

/// A migration file's text with its line index.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// The text, without a leading UTF-8 byte order mark.
    pub text: String,
    /// Whether the file started with a byte order mark.
    pub bom: bool,
    lines: LineIndex,
    /// When `text` is the file after placeholder substitution: the file as
    /// written, so that positions stay those of the file.
    origin: Option<Origin>,
}

#[derive(Debug, Clone)]
struct Origin {
    text: String,
    lines: LineIndex,
    runs: Vec<Run>,
}

/// A stretch of the substituted text starting at `at`, from offset `from` of
/// the original: copied as is, or a substituted placeholder (whose every
/// byte maps to the placeholder's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub at: usize,
    pub from: usize,
    pub substituted: bool,
}

/// How includes of `\i` / `\ir` nest at most (a loop would never end).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A NUL byte cannot be sent to PostgreSQL at all; a carriage return that
/// ends a line on its own (old Mac line endings) ends a `--` comment for
/// PostgreSQL but not a line for the migration tools that read lines, so
/// what runs would depend on who reads it. Both are errors at their place.
fn refuse_nul_and_bare_cr(path: &Path, text: &str) -> Result<(), MigrationError> {
    let bare_cr = text
        .match_indices('\r')
        .map(|(i, _)| i)
        .find(|i| text.as_bytes().get(i + 1) != Some(&b'\n'));
    let (at, why) = match (text.find('\0'), bare_cr) {
        (Some(n), _) => (n, "a NUL byte, which PostgreSQL cannot be sent"),
        (None, Some(r)) => (
            r,
            "a line ends in a bare carriage return (CR, old Mac line endings); \
             convert the file to LF or CRLF line endings",
        ),
        (None, None) => return Ok(()),
    };
    let (line, column) = LineIndex::new(text).line_col(text, at);
    Err(MigrationError::at(
        Location::new(path, line, column),
        why.to_string(),
    ))
}

impl Source {
    /// Read `path`; not UTF-8 is an error at the first bad byte.
    pub fn read(path: &Path) -> Result<Source, MigrationError> {
        let bytes =
            crate::input::read_bounded(path, crate::input::MIGRATION_LIMIT).map_err(|e| {
                MigrationError::at(Location::file(path), format!("cannot read the file: {e}"))
            })?;
        match String::from_utf8(bytes) {
            Ok(text) => {
                refuse_nul_and_bare_cr(path, &text)?;
                Ok(Source::new(path, text))
            }
            Err(e) => {
                let good = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                // The valid prefix locates the bad byte.
                let prefix = String::from_utf8_lossy(&bytes[..good]).into_owned();
                let (line, column) = LineIndex::new(&prefix).line_col(&prefix, good);
                Err(MigrationError::at(
                    Location::new(path, line, column),
                    format!(
                        "not UTF-8 (byte 0x{:02x} at offset {good}): migration tools read SQL as \
                         UTF-8; convert the file (e.g. iconv -f LATIN1 -t UTF-8)",
                        bytes[good]
                    ),
                ))
            }
        }
    }

    pub fn new(path: &Path, text: String) -> Source {
        let (text, bom) = match text.strip_prefix('\u{feff}') {
            Some(rest) => (rest.to_string(), true),
            None => (text, false),
        };
        let lines = LineIndex::new(&text);
        Source {
            path: path.to_path_buf(),
            text,
            bom,
            lines,
            origin: None,
        }
    }

    /// This file with its text replaced by `text`, whose `runs` say where
    /// each stretch came from (see [`Run`]); positions stay in this file.
    pub fn substituted(self, text: String, runs: Vec<Run>) -> Source {
        let lines = LineIndex::new(&text);
        Source {
            path: self.path,
            bom: self.bom,
            origin: Some(Origin {
                text: self.text,
                lines: self.lines,
                runs,
            }),
            text,
            lines,
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        match &self.origin {
            None => self.lines.line_col(&self.text, offset),
            Some(o) => {
                let i = o.runs.partition_point(|r| r.at <= offset).saturating_sub(1);
                let from = match o.runs.get(i) {
                    Some(r) if r.substituted => r.from,
                    Some(r) => r.from + (offset - r.at),
                    None => offset,
                };
                o.lines.line_col(&o.text, from)
            }
        }
    }

    /// Where the stretches of `range` of the text come from, relative to
    /// its start (see [`Statement::origins`]); none when no placeholder
    /// was substituted.
    pub fn origins(&self, range: Range<usize>) -> Vec<super::model::StatementOrigin> {
        let Some(o) = &self.origin else {
            return Vec::new();
        };
        let first = o
            .runs
            .partition_point(|r| r.at <= range.start)
            .saturating_sub(1);
        o.runs[first..]
            .iter()
            .take_while(|r| r.at < range.end)
            .map(|r| {
                let at = r.at.max(range.start);
                super::model::StatementOrigin {
                    at: at - range.start,
                    from: self.location(at),
                    substituted: r.substituted,
                }
            })
            .collect()
    }

    pub fn location(&self, offset: usize) -> Location {
        let (line, column) = self.line_col(offset);
        Location::new(&self.path, line, column)
    }

    /// The 1-based line of `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }
}

/// Who reads the file: PostgreSQL itself (through a driver: Flyway, golang-
/// migrate, dbmate, Prisma), or psql (Sqitch, plain files), which acts on its
/// backslash meta-commands.
#[derive(Debug, Clone)]
pub enum Reader {
    Server(Layout),
    /// `include_base`: the directory `\i` paths are relative to (psql's
    /// working directory: the Sqitch project, the plain directory).
    Psql {
        include_base: PathBuf,
    },
}

/// The statements of `src.text[range]`, in order, located in their file
/// (statements of an included file are located in that file).
pub fn statements(
    src: &Source,
    range: Range<usize>,
    reader: &Reader,
) -> Result<Vec<Statement>, MigrationError> {
    statements_at_depth(src, range, reader, 0)
}

fn statements_at_depth(
    src: &Source,
    range: Range<usize>,
    reader: &Reader,
    depth: usize,
) -> Result<Vec<Statement>, MigrationError> {
    // dbmate finds its `-- migrate:up` by line and sends what follows it:
    // a mark before a first line of something else goes nowhere.
    let dbmate_skips_it = matches!(reader, Reader::Server(Layout::Dbmate))
        && !src
            .text
            .lines()
            .next()
            .is_some_and(|l| l.trim_start().starts_with("-- migrate:up"));
    if src.bom && !matches!(reader, Reader::Server(Layout::Flyway)) && !dbmate_skips_it {
        let tool = match reader {
            Reader::Server(l) => l.tool(),
            Reader::Psql { .. } => "psql",
        };
        let what = match reader {
            // goose reads the mark as part of its first line: not an
            // annotation, so the file "must start with '-- +goose Up'".
            Reader::Server(Layout::Goose) => "goose reads as part of the first line and refuses \
                                              the file (\"must start with '-- +goose Up' \
                                              annotation\")"
                .to_string(),
            // Its first line is the marker: with the mark before it, dbmate
            // does not see it.
            Reader::Server(Layout::Dbmate) => "dbmate reads as part of the first line, so it \
                                               does not see the `-- migrate:up` there and \
                                               refuses the file (\"dbmate requires each \
                                               migration to define an up block with '-- \
                                               migrate:up'\")"
                .to_string(),
            _ => format!(
                "{tool} sends to PostgreSQL as part of the first statement (a syntax error)"
            ),
        };
        return Err(MigrationError::at(
            Location::new(&src.path, 1, 1),
            format!("the file starts with a UTF-8 byte order mark, which {what}; save it without the BOM"),
        ));
    }
    let metas = meta_commands(&src.text, range.clone());
    // The splitter sees meta-command lines as blanks, so that positions stay.
    let mut blanked = src.text[..range.end].to_string();
    for m in &metas {
        blanked.replace_range(m.start..m.end, &" ".repeat(m.end - m.start));
    }
    let spans = sql::statement_spans(&blanked[range.start..]);
    if let Some(u) = spans.unclosed {
        return Err(unclosed_error(
            src,
            range.start + u.start,
            u.kind.describe(),
        ));
    }
    let mut out: Vec<(usize, Vec<Statement>)> = Vec::new();
    for span in &spans.spans {
        let (mut start, end) = (range.start + span.start, range.start + span.end);
        let code_start = range.start + span.code_start;
        // A meta-command line among the comments before the code is not
        // part of the statement.
        if let Some(m) = metas
            .iter()
            .rev()
            .find(|m| start <= m.start && m.end <= code_start)
        {
            let rest = &src.text[m.end..code_start];
            start = code_start - rest.trim_start().len();
        }
        let stmt = Statement {
            sql: src.text[start..end].to_string(),
            location: src.location(code_start),
            code_offset: code_start - start,
            origins: src.origins(start..end),
        };
        if classify::copy_from_stdin(stmt.code()) {
            return Err(MigrationError::at(
                stmt.location,
                "COPY ... FROM STDIN with its data inline in the file is not supported: load the \
                 data with INSERT, or from a server-side file",
            ));
        }
        out.push((start, vec![stmt]));
    }
    if let (Some(m), Reader::Server(layout)) = (metas.first(), reader) {
        return Err(MigrationError::at(
            src.location(m.start),
            format!(
                "`{}` is a psql meta-command; {} sends the file to PostgreSQL itself, which \
                 cannot run it (syntax error at or near \"\\\"): remove it",
                m.name,
                layout.tool()
            ),
        ));
    }
    if let Reader::Psql { include_base } = reader {
        for m in &metas {
            if let Some(inside) = spans
                .spans
                .iter()
                .find(|s| range.start + s.code_start < m.start && m.start < range.start + s.end)
            {
                return Err(MigrationError::at(
                    src.location(m.start),
                    format!(
                        "psql meta-command `{}` in the middle of the statement that starts at line \
                         {}: pgrehearse runs whole statements; end the statement with `;` first",
                        m.name,
                        src.line(range.start + inside.code_start)
                    ),
                ));
            }
            if let Some(included) = psql_meta(src, m, include_base, depth)? {
                out.push((m.start, included));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().flat_map(|(_, s)| s).collect())
}

fn unclosed_error(src: &Source, at: usize, what: &str) -> MigrationError {
    MigrationError::at(
        src.location(at),
        format!(
            "this {what} is never closed: everything after it up to the end of the file would be \
             one statement, which PostgreSQL rejects; close it"
        ),
    )
}

/// A psql meta-command: a backslash outside quotes and comments, to the end
/// of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    start: usize,
    end: usize,
    /// `\set`, `\i`, ...
    name: String,
    args: String,
}

fn meta_commands(text: &str, range: Range<usize>) -> Vec<Meta> {
    let mut out = Vec::new();
    let mut from = range.start;
    // psql's lexer starts afresh after a meta-command line; so do we.
    while from < range.end {
        let slice = &text[from..range.end];
        let Some(t) = sql::tokens(slice)
            .into_iter()
            .find(|t| t.kind == TokenKind::Other && &slice[t.start..t.end] == "\\")
        else {
            break;
        };
        let start = from + t.start;
        let end = text[start..range.end]
            .find('\n')
            .map_or(range.end, |i| start + i);
        let line = &text[start + 1..end];
        let name_len = line
            .find(|c: char| c.is_whitespace() || c == '\\')
            .unwrap_or(line.len());
        out.push(Meta {
            start,
            end,
            name: format!("\\{}", &line[..name_len]),
            args: line[name_len..].trim().to_string(),
        });
        from = end;
    }
    out
}

/// Act on a meta-command between statements: nothing for those that only
/// print or set what pgrehearse has anyway, the included statements for
/// `\i` / `\ir`, an error for the rest.
fn psql_meta(
    src: &Source,
    m: &Meta,
    include_base: &Path,
    depth: usize,
) -> Result<Option<Vec<Statement>>, MigrationError> {
    let arg = m.args.trim_matches('\'');
    match m.name.as_str() {
        // Sqitch runs psql with ON_ERROR_STOP=1 already; pg_dump writes
        // \restrict / \unrestrict around its output; the rest only print.
        "\\set" if arg.split_whitespace().next() == Some("ON_ERROR_STOP") => Ok(None),
        "\\restrict" | "\\unrestrict" | "\\echo" | "\\qecho" | "\\warn" | "\\timing" => Ok(None),
        "\\i" | "\\include" | "\\ir" | "\\include_relative" => {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(MigrationError::at(
                    src.location(m.start),
                    format!(
                        "`{}` nests more than {MAX_INCLUDE_DEPTH} includes deep (a loop?)",
                        m.name
                    ),
                ));
            }
            let relative_to_file = matches!(m.name.as_str(), "\\ir" | "\\include_relative");
            let base = if relative_to_file {
                src.path.parent().unwrap_or(Path::new("."))
            } else {
                include_base
            };
            let path = lexically_clean(&base.join(arg));
            let included = Source::read(&path).map_err(|e| {
                MigrationError::at(
                    src.location(m.start),
                    format!(
                        "`{} {arg}` includes {}: {}",
                        m.name,
                        path.display(),
                        e.message
                    ),
                )
            })?;
            let reader = Reader::Psql {
                include_base: include_base.to_path_buf(),
            };
            let range = 0..included.text.len();
            statements_at_depth(&included, range, &reader, depth + 1).map(Some)
        }
        other => Err(MigrationError::at(
            src.location(m.start),
            format!(
                "psql meta-command `{other}` is not supported (pgrehearse sends SQL statements \
                 itself; it handles \\i, \\ir, \\set ON_ERROR_STOP and output-only commands): \
                 replace it with SQL"
            ),
        )),
    }
}

/// `a/b/../c` as `a/c`, without touching the file system (the path is
/// for messages and locations; the file system resolves it the same way
/// unless a symlink is involved).
fn lexically_clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::new(Path::new("m.sql"), text.to_string())
    }

    #[test]
    fn a_nul_byte_or_a_bare_carriage_return_is_an_error_at_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            Source::read(&p).map(|_| ()).map_err(|e| e.to_string())
        };
        assert_eq!(read("crlf.sql", "SELECT 1;\r\nSELECT 2;\r\n"), Ok(()));
        let cr = read("cr.sql", "SELECT 1; -- one\rSELECT 2;\r").unwrap_err();
        assert!(
            cr.contains("cr.sql:1:17") && cr.contains("carriage return"),
            "{cr}"
        );
        let nul = read("nul.sql", "SELECT 1;\nSELECT\0 2;\n").unwrap_err();
        assert!(nul.contains("nul.sql:2:7") && nul.contains("NUL"), "{nul}");
    }

    fn psql() -> Reader {
        Reader::Psql {
            include_base: PathBuf::from("."),
        }
    }

    #[test]
    fn statements_are_located_at_their_code() {
        let s = src("-- a comment; with a semicolon\nCREATE TABLE \"Odd;Name\" (a int);\n\n  DO $$ BEGIN PERFORM 1; END $$;\n");
        let st = statements(&s, 0..s.text.len(), &Reader::Server(Layout::Flyway)).unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(
            st[0].sql,
            "-- a comment; with a semicolon\nCREATE TABLE \"Odd;Name\" (a int)"
        );
        assert_eq!(st[0].code(), "CREATE TABLE \"Odd;Name\" (a int)");
        assert_eq!((st[0].location.line, st[0].location.column), (2, 1));
        assert_eq!(st[1].sql, "DO $$ BEGIN PERFORM 1; END $$");
        assert_eq!((st[1].location.line, st[1].location.column), (4, 3));
    }

    #[test]
    fn an_unclosed_dollar_quote_is_located_where_it_opened() {
        let s = src("SELECT 1;\nCREATE FUNCTION f() RETURNS int AS $body$\nBEGIN RETURN 1; END $$ LANGUAGE plpgsql;\n");
        let e = statements(&s, 0..s.text.len(), &psql()).unwrap_err();
        assert_eq!(e.to_string().split(": ").next(), Some("m.sql:2:36"));
        assert!(
            e.message.contains("dollar-quoted string is never closed"),
            "{e}"
        );
    }

    #[test]
    fn meta_commands_are_refused_where_the_server_reads_the_file() {
        let s = src("SELECT 1;\n\\set x 1\nSELECT 2;\n");
        let e =
            statements(&s, 0..s.text.len(), &Reader::Server(Layout::GolangMigrate)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.sql:2:1: `\\set` is a psql meta-command; golang-migrate"),
            "{e}"
        );
        // psql: \set ON_ERROR_STOP is a no-op, other \set are refused.
        let s = src("\\set ON_ERROR_STOP on\nSELECT 1;\n\\echo done\n");
        let st = statements(&s, 0..s.text.len(), &psql()).unwrap();
        assert_eq!(st.len(), 1);
        let s = src("SELECT 1;\n\\gexec\n");
        let e = statements(&s, 0..s.text.len(), &psql()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.sql:2:1: psql meta-command `\\gexec` is not supported"),
            "{e}"
        );
        // A backslash inside a string, an E'' string or a comment is not one.
        let s = src("SELECT '\\x'; SELECT E'\\\\'; -- \\set\nSELECT 3");
        assert_eq!(
            statements(&s, 0..s.text.len(), &Reader::Server(Layout::Prisma))
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn a_meta_command_inside_a_statement_is_refused() {
        let s = src("SELECT 1,\n\\i other.sql\n2;\n");
        let e = statements(&s, 0..s.text.len(), &psql()).unwrap_err();
        assert!(
            e.message
                .contains("in the middle of the statement that starts at line 1"),
            "{e}"
        );
    }

    #[test]
    fn includes_are_inlined_and_located_in_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/inner.sql"), "SELECT 'inner';\n").unwrap();
        std::fs::write(
            dir.path().join("lib/mid.sql"),
            "SELECT 'mid';\n\\ir inner.sql\n",
        )
        .unwrap();
        let main = dir.path().join("main.sql");
        std::fs::write(&main, "SELECT 1;\n\\i lib/mid.sql\nSELECT 2;\n").unwrap();
        let s = Source::read(&main).unwrap();
        let reader = Reader::Psql {
            include_base: dir.path().to_path_buf(),
        };
        let st = statements(&s, 0..s.text.len(), &reader).unwrap();
        let texts: Vec<&str> = st.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            texts,
            vec!["SELECT 1", "SELECT 'mid'", "SELECT 'inner'", "SELECT 2"]
        );
        assert_eq!(st[2].location.file, dir.path().join("lib/inner.sql"));
        // A missing include names the line that asks for it.
        std::fs::write(&main, "\\i nowhere.sql\n").unwrap();
        let s = Source::read(&main).unwrap();
        let e = statements(&s, 0..s.text.len(), &reader).unwrap_err();
        assert!(
            e.to_string()
                .contains("main.sql:1:1: `\\i nowhere.sql` includes"),
            "{e}"
        );
        // Including itself ends, with an error.
        std::fs::write(&main, "\\ir main.sql\n").unwrap();
        let s = Source::read(&main).unwrap();
        let e = statements(&s, 0..s.text.len(), &reader).unwrap_err();
        assert!(e.message.contains("includes deep"), "{e}");
    }

    #[test]
    fn not_utf8_is_located_at_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latin1.sql");
        std::fs::write(&p, b"SELECT 1;\nSELECT 'caf\xe9';\n").unwrap();
        let e = Source::read(&p).unwrap_err();
        assert_eq!(
            e.at,
            super::super::error::At::File(Location::new(&p, 2, 12))
        );
        assert!(e.message.contains("not UTF-8 (byte 0xe9"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_refused_except_by_flyway() {
        let s = src("\u{feff}SELECT 1;");
        assert!(s.bom);
        assert_eq!(
            statements(&s, 0..s.text.len(), &Reader::Server(Layout::Flyway))
                .unwrap()
                .len(),
            1
        );
        let e = statements(&s, 0..s.text.len(), &Reader::Server(Layout::Goose)).unwrap_err();
        assert!(e.message.contains("byte order mark"), "{e}");
        // dbmate sends only what follows its marker: a mark before the
        // marker's own line hides it, one before other text goes nowhere.
        let marked = src("\u{feff}-- migrate:up\nSELECT 1;");
        let e = statements(
            &marked,
            0..marked.text.len(),
            &Reader::Server(Layout::Dbmate),
        )
        .unwrap_err();
        assert!(
            e.message.contains("does not see the `-- migrate:up`"),
            "{e}"
        );
        assert!(statements(&s, 0..s.text.len(), &Reader::Server(Layout::Dbmate)).is_ok());
    }

    #[test]
    fn copy_from_stdin_is_refused() {
        let s = src("COPY t (a) FROM stdin;\n1\n\\.\n");
        let e = statements(&s, 0..s.text.len(), &psql()).unwrap_err();
        assert!(
            e.to_string().starts_with("m.sql:1:1: COPY ... FROM STDIN"),
            "{e}"
        );
    }
}
