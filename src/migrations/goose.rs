//! goose (pressly/goose): `<version>_<name>.sql` files in the directory (not
//! below it), the version being the integer before the first `_` (above 0),
//! applied in version order. `goose up` refuses a `.sql` file whose name has
//! no such version, and two files with one version.
//!
//! A file's up section runs from `-- +goose Up` to `-- +goose Down`. goose
//! cuts it into pieces line by line, not by PostgreSQL's grammar: a piece
//! ends at a line whose last word (before a word starting with `--`) ends in
//! `;`, or is everything between `-- +goose StatementBegin` and `-- +goose
//! StatementEnd`. Comment and blank lines before a piece are dropped. Each
//! piece is sent as one query: all inside one BEGIN/COMMIT by default; with
//! `-- +goose NO TRANSACTION` each on its own, where a piece holding several
//! statements is still one implicit transaction. Annotations are matched
//! without regard to case and must start their line.
//!
//! Not done here: `-- +goose ENVSUB ON` substitution of environment
//! variables. A line it would change (one with a `$`) is an error, so that
//! nothing is rehearsed other than what goose would send. Go migrations
//! (`<version>_<name>.go`) run from the user's own binary: they are listed as
//! not applied, with that reason.

use std::ops::Range;
use std::path::Path;

use super::dir;
use super::error::{MigrationError, MigrationErrors};
use super::model::{Ignored, Layout, Location, MigrationFile, MigrationSet, Segment, Statement};
use super::script::{self, Reader, Source};
use super::segment::{self, Context};

/// goose's version of a migration file name: the integer before the first
/// `_`, above zero (goose's `NumericComponent`).
fn version_of(name: &str) -> Result<i64, &'static str> {
    let (before, _) = name
        .split_once('_')
        .ok_or("no `_` between the version and the name")?;
    let n: i64 = before
        .parse()
        .map_err(|_| "the part before the first `_` is not an integer")?;
    if n < 1 {
        return Err("the version must be greater than zero");
    }
    Ok(n)
}

/// Is `file_name` a goose SQL migration's name?
pub fn is_migration_name(file_name: &str) -> bool {
    file_name.ends_with(".sql") && version_of(file_name).is_ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Annotation {
    Up,
    Down,
    StatementBegin,
    StatementEnd,
    NoTransaction,
    EnvsubOn,
    EnvsubOff,
}

const ANNOTATIONS: [(&str, Annotation); 7] = [
    ("Up", Annotation::Up),
    ("Down", Annotation::Down),
    ("StatementBegin", Annotation::StatementBegin),
    ("StatementEnd", Annotation::StatementEnd),
    ("NO TRANSACTION", Annotation::NoTransaction),
    ("ENVSUB ON", Annotation::EnvsubOn),
    ("ENVSUB OFF", Annotation::EnvsubOff),
];

/// The annotation a line holds, as goose reads it: a line that starts
/// (after blanks) with `--` and holds `+goose` is one, or an error.
fn annotation(line: &str) -> Option<Result<Annotation, String>> {
    if !line.trim_start().starts_with("--") || !line.contains("+goose") {
        return None;
    }
    if line.starts_with([' ', '\t']) {
        return Some(Err(
            "goose refuses an annotation indented by blanks: start the line with `--`".into(),
        ));
    }
    let cmd = line.replace("--", "").replacen("+goose", "", 1);
    if cmd.contains("+goose") {
        return Some(Err(
            "goose refuses two `+goose` annotations on one line".into()
        ));
    }
    let cmd = cmd.trim();
    Some(
        ANNOTATIONS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(cmd))
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                format!(
                    "goose does not know the annotation `{cmd}` (it knows Up, Down, \
                     StatementBegin, StatementEnd, NO TRANSACTION, ENVSUB ON, ENVSUB OFF)"
                )
            }),
    )
}

/// Does `text` have a `-- +goose Up` annotation?
pub fn has_up_annotation(text: &str) -> bool {
    text.lines().any(|l| {
        matches!(
            annotation(l.trim_end_matches('\r')),
            Some(Ok(Annotation::Up))
        )
    })
}

/// goose's `endsWithSemicolon`: the last blank-separated word before any
/// word starting with `--` ends in `;`.
fn ends_with_semicolon(line: &str) -> bool {
    line.split_whitespace()
        .take_while(|w| !w.starts_with("--"))
        .last()
        .is_some_and(|w| w.ends_with(';'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Up,
    UpBlock,
    UpBlockEnd,
    Down,
    DownBlock,
    DownBlockEnd,
}

impl State {
    fn is_down(self) -> bool {
        matches!(self, State::Down | State::DownBlock | State::DownBlockEnd)
    }
}

/// What goose sends for the up direction: each piece's byte range and
/// whether it came from a StatementBegin/End block; and whether the file
/// runs in a transaction.
#[derive(Debug)]
struct UpPieces {
    pieces: Vec<(Range<usize>, bool)>,
    transaction: bool,
}

const DOCS: &str = "see goose's SQL migration annotations";

/// The up pieces of a file, cut as goose's SQL parser cuts them, with its
/// errors located: a line is an annotation (a state change) or SQL (goose's
/// buffer, cut into pieces).
fn up_pieces(src: &Source) -> Result<UpPieces, MigrationError> {
    let mut p = Parser::new(src);
    let mut offset = 0;
    for raw in src.text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches('\n').trim_end_matches('\r');
        if p.state == State::Start && line.trim().is_empty() {
            continue;
        }
        if let Some(a) = annotation(line) {
            let a = a.map_err(|m| p.at(start, m))?;
            if !p.annotation(a, start)? {
                continue;
            }
        }
        p.sql_line(line, start)?;
    }
    p.finish()
}

/// goose's SQL parser as it walks a file's lines.
struct Parser<'a> {
    src: &'a Source,
    state: State,
    transaction: bool,
    envsub: bool,
    /// goose's buffer, as the range of the lines written to it.
    buf: Option<Range<usize>>,
    /// Where the open StatementBegin block began.
    block_start: usize,
    pieces: Vec<(Range<usize>, bool)>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a Source) -> Self {
        Parser {
            src,
            state: State::Start,
            transaction: true,
            envsub: false,
            buf: None,
            block_start: 0,
            pieces: Vec::new(),
        }
    }

    fn at(&self, offset: usize, msg: String) -> MigrationError {
        MigrationError::at(self.src.location(offset), msg)
    }

    /// A statement left in the buffer without its closing `;` line.
    fn unfinished(&self) -> Result<(), MigrationError> {
        match &self.buf {
            Some(r) if !self.src.text[r.start..r.end].trim().is_empty() => Err(self.at(
                r.start,
                "this statement does not end with a line ending in `;`: goose would fail \
                 (\"missing semicolon?\"); end its last line with `;`, or wrap it in \
                 `-- +goose StatementBegin` / `-- +goose StatementEnd`"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// Apply an annotation at `start`. True when goose goes on with the
    /// line as SQL (StatementEnd: it ends the block's piece).
    fn annotation(&mut self, a: Annotation, start: usize) -> Result<bool, MigrationError> {
        match a {
            Annotation::Up => {
                if self.state != State::Start {
                    return Err(self.at(
                        start,
                        format!("a second `-- +goose Up`: goose allows one per file ({DOCS})"),
                    ));
                }
                self.state = State::Up;
            }
            Annotation::Down => {
                if self.state == State::UpBlock {
                    return Err(self.at(
                        self.block_start,
                        format!(
                            "`-- +goose StatementBegin` without its `-- +goose StatementEnd` \
                             before `-- +goose Down`: close the block ({DOCS})"
                        ),
                    ));
                }
                if !matches!(self.state, State::Up | State::UpBlockEnd) {
                    return Err(self.at(
                        start,
                        format!(
                            "`-- +goose Down` where goose expects it only after the up \
                             section's `-- +goose Up` ({DOCS})"
                        ),
                    ));
                }
                self.unfinished()?;
                self.buf = None;
                self.state = State::Down;
            }
            Annotation::StatementBegin => {
                self.state = match self.state {
                    State::Up | State::UpBlockEnd => State::UpBlock,
                    State::Down | State::DownBlockEnd => State::DownBlock,
                    _ => {
                        return Err(self.at(
                            start,
                            format!(
                                "`-- +goose StatementBegin` must follow `-- +goose Up` or \
                                 `-- +goose Down`, outside another block ({DOCS})"
                            ),
                        ))
                    }
                };
                self.block_start = start;
            }
            Annotation::StatementEnd => {
                self.state = match self.state {
                    State::UpBlock => State::UpBlockEnd,
                    State::DownBlock => State::DownBlockEnd,
                    _ => {
                        return Err(self.at(
                            start,
                            "`-- +goose StatementEnd` without a `-- +goose StatementBegin` \
                             before it"
                                .into(),
                        ))
                    }
                };
                return Ok(true);
            }
            Annotation::NoTransaction => self.transaction = false,
            Annotation::EnvsubOn | Annotation::EnvsubOff => {
                self.envsub = a == Annotation::EnvsubOn;
            }
        }
        Ok(false)
    }

    /// A line of SQL (or the StatementEnd line) from `start`: into the
    /// buffer, and the buffer out as a piece where goose cuts one.
    fn sql_line(&mut self, line: &str, start: usize) -> Result<(), MigrationError> {
        // Comments and empty lines before a piece are dropped (goose tests
        // `line == ""`: a line of blanks is kept).
        if self.buf.is_none() && (line.trim_start().starts_with("--") || line.is_empty()) {
            return Ok(());
        }
        if !matches!(self.state, State::UpBlockEnd | State::DownBlockEnd) {
            if self.envsub && line.contains('$') && !self.state.is_down() {
                return Err(self.at(
                    start,
                    "goose substitutes environment variables in this line (`-- +goose ENVSUB \
                     ON`), which pgrehearse does not do: rehearse the file with the values \
                     written in, or turn ENVSUB OFF around lines that need no substitution"
                        .into(),
                ));
            }
            let end = start + line.len();
            self.buf = Some(self.buf.take().map_or(start..end, |r| r.start..end));
        }
        match self.state {
            State::Start => {
                return Err(self.at(
                    start,
                    format!(
                        "a statement before `-- +goose Up`: goose refuses the file (\"must start \
                         with '-- +goose Up' annotation\"; {DOCS})"
                    ),
                ))
            }
            s if s.is_down() => self.buf = None,
            State::Up if ends_with_semicolon(line) => {
                let piece = self.buf.take().expect("a line was written");
                self.pieces.push((piece, false));
            }
            State::UpBlockEnd => {
                // goose sends the block, even an empty one (a no-op).
                if let Some(r) = self.buf.take() {
                    self.pieces.push((r, true));
                }
                self.state = State::Up;
            }
            _ => {}
        }
        Ok(())
    }

    /// The end of the file: goose's checks of what is left open.
    fn finish(self) -> Result<UpPieces, MigrationError> {
        match self.state {
            State::Start => {
                return Err(MigrationError::at(
                    Location::file(&self.src.path),
                    format!(
                        "no `-- +goose Up` annotation: goose refuses the file (\"must start with \
                         '-- +goose Up' annotation\"; {DOCS})"
                    ),
                ))
            }
            State::UpBlock | State::DownBlock => {
                return Err(self.at(
                    self.block_start,
                    "`-- +goose StatementBegin` without its `-- +goose StatementEnd`: goose \
                     refuses the file"
                        .into(),
                ))
            }
            _ => {}
        }
        self.unfinished()?;
        Ok(UpPieces {
            pieces: self.pieces,
            transaction: self.transaction,
        })
    }
}

const FIX_IN_TRANSACTION: &str = "add `-- +goose NO TRANSACTION` to this migration and keep \
                                  the statement alone on its own line ending in `;` (or in a \
                                  migration of its own)";
const FIX_NO_TRANSACTION: &str = "end the statement before it with a line ending in `;`, so \
                                  that goose sends this one on its own";

/// The statements PostgreSQL finds in one piece goose sends.
fn piece_statements(
    src: &Source,
    range: Range<usize>,
    block: bool,
) -> Result<Vec<Statement>, MigrationError> {
    script::statements(src, range, &Reader::Server(Layout::Goose)).map_err(|mut e| {
        if !block && e.message.contains("never closed") {
            e.message.push_str(
                "; goose cut the statement here because a line ends in `;`: wrap the whole \
                 statement in `-- +goose StatementBegin` / `-- +goose StatementEnd`",
            );
        }
        e
    })
}

fn load_file(path: &Path) -> Result<Vec<Segment>, MigrationError> {
    let src = Source::read(path)?;
    let up = up_pieces(&src)?;
    if up.transaction {
        let mut statements = Vec::new();
        for (range, block) in up.pieces {
            statements.extend(piece_statements(&src, range, block)?);
        }
        let cx = Context {
            tool: "goose",
            fix: FIX_IN_TRANSACTION,
        };
        return segment::tool_transaction(
            statements,
            "goose runs a migration in a transaction",
            &cx,
        );
    }
    let cx = Context {
        tool: "goose",
        fix: FIX_NO_TRANSACTION,
    };
    let mut segments = Vec::new();
    for (range, block) in up.pieces {
        let statements = piece_statements(&src, range, block)?;
        segments.extend(segment::one_query(
            statements,
            "-- +goose NO TRANSACTION: goose sends each statement as one query",
            &cx,
        )?);
    }
    Ok(segments)
}

pub fn load(dir_path: &Path) -> Result<MigrationSet, MigrationErrors> {
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    let mut found: Vec<(i64, dir::Entry)> = Vec::new();
    for e in dir::entries(dir_path)?.into_iter().filter(|e| !e.is_dir) {
        let go = e.name.ends_with(".go") && !e.name.ends_with("_test.go");
        if !e.name.ends_with(".sql") && !go {
            continue;
        }
        match version_of(&e.name) {
            Ok(_) if go => ignored.push(Ignored {
                path: e.path,
                reason: "a Go migration: goose runs it from your own binary, pgrehearse cannot, \
                         so what it changes is missing from this rehearsal"
                    .into(),
            }),
            Ok(v) => found.push((v, e)),
            // goose skips a Go file without a version (a helper).
            Err(_) if go => {}
            Err(why) => errors.push(MigrationError::at(
                Location::file(&e.path),
                format!(
                    "not a goose migration name (<version>_<name>.sql): {why}; `goose up` \
                     refuses the directory (\"could not parse SQL migration file\"); rename it \
                     or move it out"
                ),
            )),
        }
    }
    found.sort_by_key(|(v, _)| *v);
    for w in found.windows(2) {
        if w[0].0 == w[1].0 {
            let what = format!("version {} is the same", w[1].0);
            errors.push(dir::duplicate(&w[0].1.path, &w[1].1.path, &what, "goose"));
        }
    }
    let mut files = Vec::new();
    for (version, e) in found {
        let description = e
            .name
            .split_once('_')
            .map_or("", |(_, rest)| rest)
            .trim_end_matches(".sql")
            .to_string();
        match load_file(&e.path) {
            Ok(segments) => files.push(MigrationFile::versioned(
                e.path,
                e.name,
                version.to_string(),
                description,
                segments,
            )),
            Err(err) => errors.push(err),
        }
    }
    ignored.extend(dir::nested_sql(dir_path, "goose")?);
    MigrationSet::checked(Layout::Goose, dir_path, files, ignored, errors)
}

#[cfg(test)]
mod tests;
