//! golang-migrate: `<version>_<title>.up.<ext>` files in the directory (not
//! below it), in numeric version order. Its postgres and pgx drivers send a
//! whole file as one query (an implicit transaction when it holds several
//! statements); with `x-multi-statement=true` they cut the file at every `;`
//! byte and send each piece on its own.

use std::path::Path;

use super::dir;
use super::error::{MigrationError, MigrationErrors};
use super::model::{Ignored, Layout, MigrationFile, MigrationSet, Segment, Statement};
use super::script::{self, Reader, Source};
use super::segment::{self, Context};
use crate::sql;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GolangMigrateOptions {
    /// `x-multi-statement=true` on the database URL.
    pub multi_statement: bool,
}

/// golang-migrate's file name: `^([0-9]+)_(.*)\.(down|up)\.(.*)$`.
fn parse_name(name: &str) -> Option<(u64, &str, &str)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let rest = name[digits..].strip_prefix('_')?;
    if digits == 0 {
        return None;
    }
    // The regex is greedy: the last ".up." or ".down." splits title and
    // extension.
    let (title, direction) = ["up", "down"]
        .into_iter()
        .filter_map(|d| rest.rfind(&format!(".{d}.")).map(|i| (i, d)))
        .max()
        .map(|(i, d)| (&rest[..i], d))?;
    let version = name[..digits].parse::<u64>().ok()?;
    Some((version, title, direction))
}

/// Is `file_name` a golang-migrate migration (up or down)?
pub fn is_migration_name(file_name: &str) -> bool {
    parse_name(file_name).is_some()
}

const FIX: &str = "put it alone in a migration file of its own (golang-migrate's advice), or \
                   enable x-multi-statement";

pub fn load(
    dir_path: &Path,
    options: &GolangMigrateOptions,
) -> Result<MigrationSet, MigrationErrors> {
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    let mut ups = Vec::new();
    for e in dir::entries(dir_path)?.into_iter().filter(|e| !e.is_dir) {
        match parse_name(&e.name) {
            Some((version, title, "up")) => ups.push((version, title.to_string(), e)),
            Some(_) => ignored.push(Ignored {
                path: e.path,
                reason: "a down migration".into(),
            }),
            None if e.name.ends_with(".sql") => ignored.push(Ignored {
                path: e.path,
                reason:
                    "not a golang-migrate name (<version>_<title>.up.sql): golang-migrate skips it"
                        .into(),
            }),
            None => {}
        }
    }
    ups.sort_by_key(|(v, _, _)| *v);
    for w in ups.windows(2) {
        if w[0].0 == w[1].0 {
            let what = format!("version {} is the same", w[1].0);
            errors.push(dir::duplicate(
                &w[0].2.path,
                &w[1].2.path,
                &what,
                "golang-migrate",
            ));
        }
    }
    let mut files = Vec::new();
    for (version, title, e) in ups {
        match load_file(&e.path, options) {
            Ok(segments) => files.push(MigrationFile::versioned(
                e.path,
                e.name,
                version.to_string(),
                title,
                segments,
            )),
            Err(e) => errors.push(e),
        }
    }
    ignored.extend(dir::nested_sql(dir_path, "golang-migrate")?);
    MigrationSet::checked(Layout::GolangMigrate, dir_path, files, ignored, errors)
}

fn load_file(path: &Path, options: &GolangMigrateOptions) -> Result<Vec<Segment>, MigrationError> {
    let src = Source::read(path)?;
    let reader = Reader::Server(Layout::GolangMigrate);
    let statements = script::statements(&src, 0..src.text.len(), &reader)?;
    let cx = Context {
        tool: "golang-migrate",
        fix: FIX,
    };
    if !options.multi_statement {
        return segment::one_query(
            statements,
            "golang-migrate sends the whole file as one query",
            &cx,
        );
    }
    check_naive_cuts(&src, &statements)?;
    let (segments, _) = segment::psql_style(
        statements,
        "x-multi-statement: golang-migrate sends each `;`-separated statement on its own",
        &cx,
    )?;
    Ok(segments)
}

/// x-multi-statement cuts at every `;` byte, inside strings, dollar quotes
/// and comments too. Where that differs from the real statements, the tool
/// would send broken pieces: refuse, at the first broken piece.
fn check_naive_cuts(src: &Source, statements: &[Statement]) -> Result<(), MigrationError> {
    let text = &src.text;
    let mut pieces_statements: Vec<String> = Vec::new();
    let mut start = 0;
    let mut first_bad = None;
    for (i, _) in text
        .match_indices(';')
        .chain(std::iter::once((text.len(), "")))
    {
        let end = (i + 1).min(text.len());
        let piece = &text[start..end];
        let split = sql::statement_spans(piece);
        // Compared without leading comments: a piece may start with the end
        // of a comment line whose `;` the tool cut at.
        let texts: Vec<String> = split
            .spans
            .iter()
            .map(|s| piece[s.code_start..s.end].to_string())
            .collect();
        let k = pieces_statements.len();
        let matches = split.unclosed.is_none()
            && texts
                .iter()
                .enumerate()
                .all(|(j, t)| statements.get(k + j).is_some_and(|s| s.code() == t));
        if !matches && first_bad.is_none() {
            first_bad = Some(start + piece.len() - piece.trim_start().len());
        }
        pieces_statements.extend(texts);
        start = end;
    }
    match first_bad {
        None => Ok(()),
        Some(at) => Err(MigrationError::at(
            src.location(at),
            "with x-multi-statement golang-migrate cuts the file at every `;`, also inside \
             strings, dollar quotes and comments: this piece would reach PostgreSQL cut in the \
             middle of a statement. Fix: turn x-multi-statement off, or keep `;` out of bodies \
             and comments",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::model::Execution;

    fn executions(segments: &[Segment]) -> Vec<Execution> {
        segments.iter().map(|s| s.execution).collect()
    }

    #[test]
    fn names_as_golang_migrate_parses_them() {
        assert_eq!(parse_name("1_init.up.sql"), Some((1, "init", "up")));
        assert_eq!(
            parse_name("0010_add.index.down.sql"),
            Some((10, "add.index", "down"))
        );
        assert_eq!(
            parse_name("20240101120000_x.up.psql"),
            Some((20240101120000, "x", "up"))
        );
        assert_eq!(parse_name("1_a.up.b.down.sql"), Some((1, "a.up.b", "down")));
        assert_eq!(parse_name("init.up.sql"), None);
        assert_eq!(parse_name("1-init.up.sql"), None);
        assert_eq!(parse_name("1_init.sql"), None);
        // Beyond u64: golang-migrate skips it (ParseUint fails).
        assert_eq!(parse_name("99999999999999999999_x.up.sql"), None);
    }

    #[test]
    fn multi_statement_runs_each_statement_alone_but_not_broken_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("1_x.up.sql");
        std::fs::write(
            &p,
            "CREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY i ON a (x);\n",
        )
        .unwrap();
        let opts = GolangMigrateOptions {
            multi_statement: true,
        };
        let segs = load_file(&p, &opts).unwrap();
        assert_eq!(executions(&segs), vec![Execution::Autocommit]);
        assert_eq!(segs[0].statements.len(), 2);
        // Without it, the same file fails in PostgreSQL.
        let e = load_file(&p, &GolangMigrateOptions::default()).unwrap_err();
        assert!(
            e.message
                .contains("golang-migrate sends the whole file as one query"),
            "{e}"
        );
        std::fs::write(&p, "SELECT 1;\nDO $$ BEGIN PERFORM 1; END $$;\n").unwrap();
        let e = load_file(&p, &opts).unwrap_err();
        assert!(
            e.to_string()
                .contains("1_x.up.sql:2:1: with x-multi-statement"),
            "{e}"
        );
        // A `;` at the end of a line comment is harmless: the comment ends there.
        std::fs::write(&p, "-- first;\nSELECT 1;\n").unwrap();
        assert!(load_file(&p, &opts).is_ok());
    }
}
