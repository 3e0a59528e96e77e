//! Plain ordered `.sql` files (Rails structure.sql diffs, Django sqlmigrate
//! output, hand-written scripts): the directory's `.sql` files in natural
//! order of their names (`2_x.sql` before `10_y.sql`), each run as psql runs
//! a script.
//!
//! The rule pgrehearse applies, as no tool decides: a file runs in one
//! transaction (like `psql --single-transaction --file`) unless it has its
//! own transaction control or a statement PostgreSQL refuses inside a
//! transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ...); then it runs
//! as `psql --file` does, statement by statement, its own BEGIN ... COMMIT
//! blocks being transactions.

use std::cmp::Ordering;
use std::path::Path;

use super::classify::{refused_in_transaction, tx_control};
use super::dir;
use super::error::{MigrationError, MigrationErrors};
use super::model::{Execution, Layout, MigrationFile, MigrationSet, Segment};
use super::script::{self, Reader, Source};
use super::segment::{self, Context};

/// Natural order: runs of digits compare as numbers, the rest byte by byte;
/// ties (`01` vs `1`) fall back to the names' bytes.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let b = s.as_bytes();
        for i in 1..=b.len() {
            if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
                out.push((b[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let c = match (x, y) {
            ((true, n), (true, m)) => {
                let (n, m) = (n.trim_start_matches('0'), m.trim_start_matches('0'));
                n.len().cmp(&m.len()).then_with(|| n.cmp(m))
            }
            ((_, s), (_, t)) => s.cmp(t),
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    ra.len().cmp(&rb.len()).then_with(|| a.cmp(b))
}

const SINGLE: &str = "a plain file runs in one transaction (as psql --single-transaction)";

/// A file with another tool's down section (sql-migrate's `-- +migrate
/// Down`, goose's, dbmate's) is not a plain SQL file: psql would run its
/// down statements right after its up ones, undoing the migration. Refused
/// at the marker, rather than rehearsing that.
fn refuse_down_sections(src: &Source) -> Result<(), MigrationError> {
    let mut offset = 0;
    for line in src.text.split_inclusive('\n') {
        let words: Vec<String> = line
            .trim()
            .strip_prefix("--")
            .map(|rest| {
                rest.split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let tool = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["+migrate", "down", ..] => Some("sql-migrate's"),
            ["+goose", "down", ..] => Some("goose's"),
            ["+micrate", "down", ..] => Some("micrate's"),
            ["migrate:down", ..] => Some("dbmate's"),
            // node-pg-migrate's SQL migrations: the whole comment, not a
            // sentence that starts with the words.
            ["down", "migration"] => Some("node-pg-migrate's"),
            // Play's evolutions (`# --- !Downs` in .sql files).
            ["!downs"] | ["-", "!downs"] => Some("Play evolutions'"),
            _ => None,
        };
        if let Some(tool) = tool {
            let at = offset + (line.len() - line.trim_start().len());
            return Err(MigrationError::at(
                src.location(at),
                format!(
                    "`{}` starts {tool} down section, which psql would run right after the up \
                     statements, undoing them: this is not a plain SQL file. Set `layout` to the \
                     tool's (goose and dbmate are read; for the others, split the up and down \
                     statements into files of their own)",
                    line.trim()
                ),
            ));
        }
        offset += line.len();
    }
    Ok(())
}

/// A plain file's segments. `transaction` is a scenario's `transaction =`
/// on a `file = ...` step: `None` applies the plain rule, `Some(true)` runs
/// the whole file in one transaction (refusing its own BEGIN/COMMIT and
/// statements PostgreSQL refuses in one), `Some(false)` runs it as `psql
/// --file` does.
fn load_file(
    path: &Path,
    dir_path: &Path,
    transaction: Option<bool>,
) -> Result<(Vec<Segment>, Vec<String>), MigrationError> {
    let src = Source::read(path)?;
    refuse_down_sections(&src)?;
    let reader = Reader::Psql {
        include_base: dir_path.to_path_buf(),
    };
    let statements = script::statements(&src, 0..src.text.len(), &reader)?;
    let control = statements.iter().find(|s| tx_control(s.code()).is_some());
    let refused = statements
        .iter()
        .find_map(|s| refused_in_transaction(s.code()).map(|w| (w, s)));
    if statements.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let reason = match (transaction, control, refused) {
        (Some(true), Some(c), _) => {
            return Err(MigrationError::at(
                c.location.clone(),
                "the file has its own transaction control, and transaction = true would run it \
                 inside another transaction: remove transaction = true from the step, or the \
                 file's BEGIN/COMMIT",
            ))
        }
        (Some(true), None, Some((what, st))) => {
            return Err(MigrationError::at(
                st.location.clone(),
                format!(
                    "{what} cannot run inside a transaction block, and transaction = true runs \
                     the file in one: PostgreSQL would fail with 25001. Fix: transaction = false"
                ),
            ))
        }
        (Some(true), None, None) => {
            return Ok((
                vec![Segment {
                    execution: Execution::Transaction,
                    reason: "transaction = true in the scenario: the file runs in one transaction"
                        .into(),
                    statements,
                }],
                Vec::new(),
            ))
        }
        (Some(false), _, _) => {
            "transaction = false in the scenario: psql --file runs it statement \
             by statement in autocommit"
                .to_string()
        }
        (None, None, None) => {
            return Ok((
                vec![Segment {
                    execution: Execution::Transaction,
                    reason: SINGLE.into(),
                    statements,
                }],
                Vec::new(),
            ))
        }
        (None, Some(c), _) => format!(
            "the file has its own transaction control (line {}): psql --file runs it statement by \
             statement, outside its BEGIN ... COMMIT in autocommit",
            c.location.line
        ),
        (None, None, Some((what, st))) => format!(
            "it holds {what} (line {}), which cannot run in a transaction: psql --file runs it \
             statement by statement in autocommit",
            st.location.line
        ),
    };
    let cx = Context {
        tool: "psql",
        fix: "move it after the COMMIT",
    };
    segment::psql_style(statements, &reason, &cx)
}

/// One `.sql` file on its own (a scenario step's `file = ...`), run as the
/// plain layout runs a file; `transaction` forces one way (see
/// [`load_file`]). `\ir` includes are relative to the file's directory.
pub fn load_single(
    path: &Path,
    transaction: Option<bool>,
) -> Result<MigrationFile, MigrationError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let (segments, notes) = load_file(path, base, transaction)?;
    let name = path.display().to_string();
    let version = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = MigrationFile::versioned(path.to_path_buf(), name, version, String::new(), segments);
    Ok(MigrationFile { notes, ..file })
}

/// A name that says its file undoes another (`x.down.sql`, sqlx's and
/// golang-migrate's; `x_down.sql`, `x.undo.sql`): plain runs every `.sql`
/// file in order, so it would run the undo too — before its up file, which
/// sorts after it.
fn down_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        ".down.sql",
        "_down.sql",
        "-down.sql",
        ".undo.sql",
        "_undo.sql",
    ]
    .iter()
    .any(|end| lower.ends_with(end))
}

pub fn load(dir_path: &Path) -> Result<MigrationSet, MigrationErrors> {
    let all = dir::entries(dir_path)?;
    let mut entries: Vec<&dir::Entry> = all
        .iter()
        .filter(|e| !e.is_dir && e.name.to_ascii_lowercase().ends_with(".sql"))
        .collect();
    entries.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let mut errors = Vec::new();
    let downs: Vec<&str> = entries
        .iter()
        .filter(|e| down_file(&e.name))
        .map(|e| e.name.as_str())
        .collect();
    if let Some(first) = downs.first() {
        errors.push(MigrationError::setting(
            super::Setting::Dir,
            format!(
                "{} holds {} named as a down migration ({first}{}): the plain layout runs every \
                 .sql file of the directory in order, so it would run them too, each before its \
                 up file. For N_name.up.sql / N_name.down.sql pairs (golang-migrate's, sqlx's) \
                 set layout = \"golang-migrate\"; otherwise move the down files out of the \
                 directory",
                dir_path.display(),
                if downs.len() == 1 { "a file" } else { "files" },
                if downs.len() > 1 {
                    format!(" and {} more", downs.len() - 1)
                } else {
                    String::new()
                }
            ),
        ));
    }
    let ignored = dir::nested_sql(dir_path, "the plain layout")?;
    let mut files = Vec::new();
    for e in entries.into_iter().cloned() {
        match load_file(&e.path, dir_path, None) {
            Ok((segments, notes)) => {
                let version = e.name[..e.name.len() - 4].to_string();
                let file =
                    MigrationFile::versioned(e.path, e.name, version, String::new(), segments);
                files.push(MigrationFile { notes, ..file });
            }
            Err(err) => errors.push(err),
        }
    }
    MigrationSet::checked(Layout::Plain, dir_path, files, ignored, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec![
            "10_c.sql", "2_b.sql", "1_a.sql", "01_a.sql", "b.sql", "a10.sql", "a9.sql",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            vec!["01_a.sql", "1_a.sql", "2_b.sql", "10_c.sql", "a9.sql", "a10.sql", "b.sql"]
        );
    }

    #[test]
    fn transaction_true_refuses_a_file_that_cannot_run_in_one() {
        let dir = tempfile::tempdir().unwrap();
        for (sql, want) in [
            (
                "BEGIN;\nALTER TABLE a ADD x int;\nCOMMIT;\n",
                "the file has its own transaction control, and transaction = true would run \
                 it inside another transaction",
            ),
            (
                "CREATE INDEX CONCURRENTLY i ON a (x);\n",
                "CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and \
                 transaction = true runs the file in one",
            ),
        ] {
            let path = dir.path().join("fix.sql");
            std::fs::write(&path, sql).unwrap();
            let e = load_file(&path, dir.path(), Some(true)).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert!(!e.to_string().contains("  "), "a run of spaces: {e}");
        }
    }
}
