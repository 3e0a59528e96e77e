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

fn load_file(path: &Path, dir_path: &Path) -> Result<(Vec<Segment>, Vec<String>), MigrationError> {
    let src = Source::read(path)?;
    let reader = Reader::Psql {
        include_base: dir_path.to_path_buf(),
    };
    let statements = script::statements(&src, 0..src.text.len(), &reader)?;
    let control = statements.iter().find(|s| tx_control(s.code()).is_some());
    let refused = statements
        .iter()
        .find_map(|s| refused_in_transaction(s.code()).map(|w| (w, s.location.line)));
    let reason = match (control, refused) {
        (None, None) if statements.is_empty() => return Ok((Vec::new(), Vec::new())),
        (None, None) => {
            return Ok((
                vec![Segment {
                    execution: Execution::Transaction,
                    reason: SINGLE.into(),
                    statements,
                }],
                Vec::new(),
            ))
        }
        (Some(c), _) => format!(
            "the file has its own transaction control (line {}): psql --file runs it statement by \
             statement, outside its BEGIN ... COMMIT in autocommit",
            c.location.line
        ),
        (None, Some((what, line))) => format!(
            "it holds {what} (line {line}), which cannot run in a transaction: psql --file runs it \
             statement by statement in autocommit"
        ),
    };
    let cx = Context {
        tool: "psql",
        fix: "move it after the COMMIT",
    };
    segment::psql_style(statements, &reason, &cx)
}

pub fn load(dir_path: &Path) -> Result<MigrationSet, MigrationErrors> {
    let mut entries: Vec<dir::Entry> = dir::entries(dir_path)?
        .into_iter()
        .filter(|e| !e.is_dir && e.name.to_ascii_lowercase().ends_with(".sql"))
        .collect();
    entries.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for e in entries {
        match load_file(&e.path, dir_path) {
            Ok((segments, notes)) => {
                let version = e.name[..e.name.len() - 4].to_string();
                let file =
                    MigrationFile::versioned(e.path, e.name, version, String::new(), segments);
                files.push(MigrationFile { notes, ..file });
            }
            Err(err) => errors.push(err),
        }
    }
    MigrationSet::checked(Layout::Plain, dir_path, files, Vec::new(), errors)
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
}
