//! An index left INVALID at the end of the run (a failed CREATE INDEX
//! CONCURRENTLY): written on every write, never used, and in the way of a
//! retry.
//!
//! - **Reads** run.json `invalid_indexes` (pg_index.indisvalid false at the
//!   end) and the statement that named the index.
//! - **Fires when** any index is left invalid; always critical.
//! - **Advises** drop it CONCURRENTLY before retrying the build, and make the
//!   step idempotent.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::patterns::one_line;
use super::rule::{Evidence, Rule};

pub const KIND: FindingKind = FindingKind::new("invalid_index");

pub const RULE: Rule = Rule::run(KIND, check);

fn check(ev: &Evidence<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for name in ev.rec.info.iter().flat_map(|i| i.invalid_indexes.iter()) {
        let lname = name.to_ascii_lowercase();
        let names_it = |sql: &str| sql.to_ascii_lowercase().contains(&lname);
        let st = ev.steps.iter().find(|s| s.sql.iter().any(|q| names_it(q)));
        let stmt = ev.rec.statements.iter().find(|s| names_it(&s.sql));
        let ended = stmt
            .map(|s| {
                let code = if s.sqlstate.is_empty() {
                    String::new()
                } else {
                    format!(" {}", s.sqlstate)
                };
                format!(" (`{}` ended {}{code})", one_line(&s.sql, 80), s.outcome)
            })
            .unwrap_or_default();
        let create = stmt
            .map(|s| s.sql.trim().trim_end_matches(';').to_string())
            .unwrap_or_else(|| format!("CREATE INDEX CONCURRENTLY {name} ON t (col)"));
        let seen = format!(
            "index {name} is INVALID after the run{ended}: queries never use it, writes keep it up to date once its build got that far (pg_index.indisready), and a retry of the same CREATE INDEX fails because the name exists"
        );
        let duplicates = stmt.is_some_and(|s| s.sqlstate == "23505");
        out.push(
            Finding::new(
                KIND,
                Severity::Critical,
                format!("Invalid index {name} left behind"),
                seen,
            )
            .at(st.map(|s| s.phase.clone()), st.map(|s| s.step.clone()))
            .on(Some(name.clone()))
            .instead(if duplicates {
                unique_retry(name, &create)
            } else {
                SafePattern {
                    advice: "Drop the invalid index CONCURRENTLY before retrying the build, and make the step idempotent (check pg_index.indisvalid).".into(),
                    sql: format!("DROP INDEX CONCURRENTLY IF EXISTS {name};\n{create};"),
                }
            }),
        );
    }
    out
}

/// A unique build that failed on duplicate keys fails again on the same
/// data: find and resolve the duplicates first, then drop and rebuild.
fn unique_retry(name: &str, create: &str) -> SafePattern {
    let on = regex::Regex::new(r"(?is)\bON\s+(?:ONLY\s+)?(\S+?)\s*(?:USING\s+\w+\s*)?\((.*)\)")
        .expect("a valid pattern")
        .captures(create)
        .map(|c| (c[1].to_string(), c[2].trim().to_string()));
    let (table, cols) = on.unwrap_or_else(|| ("t".into(), "col".into()));
    SafePattern {
        advice: "The build failed on duplicate keys, and a retry fails again until they are gone: find them, merge or delete them (and stop the app from writing new ones, e.g. a NOT VALID check or the app's own guard), then drop the invalid index CONCURRENTLY and build it again.".into(),
        sql: format!(
            "SELECT {cols}, count(*) FROM {table} GROUP BY {cols} HAVING count(*) > 1;\n-- resolve those rows, then:\nDROP INDEX CONCURRENTLY IF EXISTS {name};\n{create};"
        ),
    }
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::one_statement;
    use crate::record::RunRecord;

    /// A unique CONCURRENTLY build fails on a duplicate and leaves idx_u
    /// invalid.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = quiet();
        r.statements[0].outcome = "error".into();
        r.statements[0].sqlstate = "23505".into();
        r.info
            .as_mut()
            .unwrap()
            .invalid_indexes
            .push("idx_u".into());
        r
    }

    /// The same build succeeds.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let sql = "CREATE UNIQUE INDEX CONCURRENTLY idx_u ON orders (c)";
        one_statement("idx", sql, 1000.0, 1500.0)
    }

    #[test]
    fn says_how_the_build_ended_and_how_to_retry() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert_eq!(f.step.as_deref(), Some("idx"));
        assert!(f.seen.contains("ended error 23505"), "{}", f.seen);
        // It failed on duplicates: find them first, then drop and rebuild.
        assert!(
            f.safe_pattern.sql.starts_with(
                "SELECT c, count(*) FROM orders GROUP BY c HAVING count(*) > 1;"
            ),
            "{}",
            f.safe_pattern.sql
        );
        assert!(
            f.safe_pattern
                .sql
                .contains("DROP INDEX CONCURRENTLY IF EXISTS idx_u;\nCREATE UNIQUE INDEX CONCURRENTLY idx_u ON orders (c);"),
            "{}",
            f.safe_pattern.sql
        );
        // Failed otherwise (a cancel): drop and retry.
        let mut r = fires();
        r.statements[0].sqlstate = "57014".into();
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert!(
            f.safe_pattern
                .sql
                .starts_with("DROP INDEX CONCURRENTLY IF EXISTS idx_u;"),
            "{}",
            f.safe_pattern.sql
        );
    }
}
