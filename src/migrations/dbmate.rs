//! dbmate: `<version>_<name>.sql` files (`^(\d+).*\.sql$`) in the directory,
//! ordered by file name (byte order, not by number); each holds one or more
//! `-- migrate:up [transaction:false]` ... `-- migrate:down` sections. dbmate
//! sends each up section as one query: inside BEGIN/COMMIT by default,
//! without them for `transaction:false` (where PostgreSQL still runs a
//! multi-statement query as one implicit transaction).

use std::ops::Range;
use std::path::Path;

use super::dir;
use super::error::{MigrationError, MigrationErrors};
use super::model::{Ignored, Layout, Location, MigrationFile, MigrationSet, Segment};
use super::script::{self, Reader, Source};
use super::segment::{self, Context};

/// A directive line: `-- migrate:up` / `-- migrate:down` at a line start
/// (dbmate's `(?m)^--\s*migrate:up(\s*$|\s+\S+)`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    up: bool,
    start: usize,
    /// `transaction:false` among the words after it.
    no_transaction: bool,
}

fn directives(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = l.strip_prefix("--") {
            let rest = rest.trim_start();
            for (word, up) in [("migrate:up", true), ("migrate:down", false)] {
                if let Some(after) = rest.strip_prefix(word) {
                    if after.is_empty() || after.starts_with(char::is_whitespace) {
                        let no_transaction = after.split_whitespace().any(|opt| {
                            opt.split(':').collect::<Vec<_>>() == ["transaction", "false"]
                        });
                        out.push(Directive {
                            up,
                            start,
                            no_transaction,
                        });
                    }
                }
            }
        }
        start += line.len();
    }
    out
}

/// Does `text` have a `-- migrate:up` directive?
pub fn has_up_directive(text: &str) -> bool {
    directives(text).iter().any(|d| d.up)
}

/// The up sections of a file: the byte range of each (from its directive to
/// the down directive) and whether it runs in a transaction. Errors as dbmate
/// parses.
fn up_sections(src: &Source) -> Result<Vec<(Range<usize>, bool)>, MigrationError> {
    let text = &src.text;
    let ds = directives(text);
    let at = |offset: usize| src.location(offset);
    let Some(first_up) = ds.iter().find(|d| d.up) else {
        return Err(MigrationError::at(
            Location::file(&src.path),
            "dbmate requires each migration to define an up block with '-- migrate:up'",
        ));
    };
    let before = &text[..first_up.start];
    if let Some(off) = before
        .split_inclusive('\n')
        .scan(0, |pos, l| {
            let here = *pos;
            *pos += l.len();
            Some((here, l))
        })
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        .map(|(o, _)| o)
    {
        return Err(MigrationError::at(
            at(off),
            "dbmate does not support statements preceding the '-- migrate:up' block",
        ));
    }
    let mut sections = Vec::new();
    let ups: Vec<&Directive> = ds.iter().filter(|d| d.up).collect();
    for (i, up) in ups.iter().enumerate() {
        let end = ups.get(i + 1).map_or(text.len(), |n| n.start);
        let downs: Vec<&Directive> = ds
            .iter()
            .filter(|d| !d.up && d.start > up.start && d.start < end)
            .collect();
        match downs.as_slice() {
            [] if i + 1 < ups.len() => {
                return Err(MigrationError::at(
                    at(ups[i + 1].start),
                    "a second '-- migrate:up' before the first one's '-- migrate:down': a dbmate \
                     migration has one up block, then its down block",
                ))
            }
            [] => {
                return Err(MigrationError::at(
                    at(up.start),
                    "dbmate requires each migration to define a down block with '-- migrate:down' \
                     (an empty one will do)",
                ))
            }
            [down] => sections.push((up.start..down.start, !up.no_transaction)),
            [_, second, ..] => {
                return Err(MigrationError::at(
                    at(second.start),
                    "dbmate requires every '-- migrate:down' to be preceded by a '-- migrate:up'",
                ))
            }
        }
    }
    if let Some(d) = ds.iter().find(|d| !d.up && d.start < first_up.start) {
        return Err(MigrationError::at(
            at(d.start),
            "dbmate requires '-- migrate:up' to appear before '-- migrate:down'",
        ));
    }
    Ok(sections)
}

const FIX_IN_TRANSACTION: &str = "write `-- migrate:up transaction:false` and keep this statement \
                                  alone in its section (dbmate sends a section as one query)";
const FIX_IMPLICIT: &str = "keep this statement alone in its `-- migrate:up transaction:false` \
                            section (a migration of its own, or a section of its own)";

fn load_file(path: &Path) -> Result<Vec<Segment>, MigrationError> {
    let src = Source::read(path)?;
    let reader = Reader::Server(Layout::Dbmate);
    let mut segments = Vec::new();
    for (range, transaction) in up_sections(&src)? {
        let statements = script::statements(&src, range, &reader)?;
        let more = if transaction {
            let cx = Context {
                tool: "dbmate",
                fix: FIX_IN_TRANSACTION,
            };
            segment::tool_transaction(
                statements,
                "dbmate runs an up section in a transaction",
                &cx,
            )?
        } else {
            let cx = Context {
                tool: "dbmate",
                fix: FIX_IMPLICIT,
            };
            let reason = "-- migrate:up transaction:false: dbmate sends the section as one query";
            segment::one_query(statements, reason, &cx)?
        };
        segments.extend(more);
    }
    Ok(segments)
}

pub fn load(dir_path: &Path) -> Result<MigrationSet, MigrationErrors> {
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    let mut files: Vec<MigrationFile> = Vec::new();
    // entries() sorts by name: dbmate's order.
    for e in dir::entries(dir_path)?.into_iter().filter(|e| !e.is_dir) {
        let digits = e.name.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !e.name.ends_with(".sql") {
            if e.name.ends_with(".sql") {
                ignored.push(Ignored {
                    path: e.path,
                    reason: "not a dbmate name (<version>_<name>.sql): dbmate skips it".into(),
                });
            }
            continue;
        }
        let version = e.name[..digits].to_string();
        if let Some(prev) = files.iter().find(|f| f.version == version) {
            let what = format!("version {version} is the same");
            errors.push(dir::duplicate(&prev.path, &e.path, &what, "dbmate"));
            continue;
        }
        let description = e.name[digits..]
            .trim_end_matches(".sql")
            .trim_start_matches('_')
            .to_string();
        match load_file(&e.path) {
            Ok(segments) => files.push(MigrationFile::versioned(
                e.path,
                e.name,
                version,
                description,
                segments,
            )),
            Err(err) => errors.push(err),
        }
    }
    ignored.extend(dir::nested_sql(dir_path, "dbmate")?);
    MigrationSet::checked(Layout::Dbmate, dir_path, files, ignored, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrations::model::Execution;

    fn sections(text: &str) -> Result<Vec<(String, bool)>, String> {
        let src = Source::new(Path::new("1_x.sql"), text.to_string());
        up_sections(&src)
            .map(|v| {
                v.into_iter()
                    .map(|(r, t)| (text[r].to_string(), t))
                    .collect()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sections_and_options_as_dbmate_reads_them() {
        let t = "-- header comment\n-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n\n-- migrate:down\nDROP INDEX i;\n";
        assert_eq!(
            sections(t).unwrap(),
            vec![(
                "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n\n"
                    .to_string(),
                false
            )]
        );
        let two = "-- migrate:up\nCREATE TABLE a (x int);\n-- migrate:down\n\n--migrate:up transaction:false\nSELECT 1;\n-- migrate:down\n";
        let s = sections(two).unwrap();
        assert_eq!((s.len(), s[0].1, s[1].1), (2, true, false));
        // `-- migrate:upx` is not a directive; `transaction:true` is the default.
        assert!(sections("-- migrate:upx\n").is_err());
        assert!(sections("-- migrate:up transaction:true\n-- migrate:down\n").unwrap()[0].1);
    }

    #[test]
    fn dbmate_parse_errors() {
        let cases = [
            (
                "CREATE TABLE a (x int);\n",
                "1_x.sql: dbmate requires each migration to define an up block",
            ),
            (
                "SELECT 1;\n-- migrate:up\n-- migrate:down\n",
                "1_x.sql:1:1: dbmate does not support statements preceding",
            ),
            (
                "-- migrate:up\nSELECT 1;\n",
                "1_x.sql:1:1: dbmate requires each migration to define a down block",
            ),
            (
                "-- migrate:down\n-- migrate:up\n-- migrate:down\n",
                "1_x.sql:1:1: dbmate requires '-- migrate:up' to appear before",
            ),
            (
                "-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n-- migrate:down\n",
                "1_x.sql:3:1: a second '-- migrate:up' before the first one's '-- migrate:down'",
            ),
            (
                "-- migrate:up\n-- migrate:down\n-- migrate:down\n",
                "1_x.sql:3:1: dbmate requires every '-- migrate:down' to be preceded",
            ),
        ];
        for (text, want) in cases {
            let got = sections(text).unwrap_err();
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
    }

    #[test]
    fn transaction_false_with_several_statements_is_still_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("2_x.sql");
        std::fs::write(&p, "-- migrate:up transaction:false\nALTER TABLE t ADD a int;\nALTER TABLE t ADD b int;\n-- migrate:down\n").unwrap();
        let segs = load_file(&p).unwrap();
        assert_eq!(segs[0].execution, Execution::Transaction);
        assert!(segs[0]
            .reason
            .contains("transaction:false: dbmate sends the section as one query"));
        std::fs::write(&p, "-- migrate:up transaction:false\nALTER TABLE t ADD a int;\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\n").unwrap();
        let e = load_file(&p).unwrap_err();
        assert!(
            e.to_string().contains(
                "2_x.sql:3:1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
            ),
            "{e}"
        );
        assert!(e.message.contains("keep this statement alone"), "{e}");
        std::fs::write(
            &p,
            "-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\n",
        )
        .unwrap();
        let e = load_file(&p).unwrap_err();
        assert!(
            e.message
                .contains("write `-- migrate:up transaction:false`"),
            "{e}"
        );
    }
}
