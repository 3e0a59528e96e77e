//! A migration merged before the `--since-git` revision was edited since:
//! production already ran the old version and will not run the edit (or,
//! with Flyway, will refuse to migrate at all), so the rehearsal's schema is
//! not the one production will have.
//!
//! - **Reads** run.json `migrations.edited` (the files `git diff` calls
//!   modified that were not new), its layout and its selection.
//! - **Fires when** any such file is there; once per file, warning.
//! - **Advises** restoring the file and putting the change in a new
//!   migration, which is then rehearsed.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::rule::{Evidence, Rule};
use crate::migrations::{edited_warning, Layout};

pub const KIND: FindingKind = FindingKind::new("edited_migration");

pub const RULE: Rule = Rule::run(KIND, check);

fn check(ev: &Evidence<'_>) -> Vec<Finding> {
    let Some(m) = ev.rec.info.as_ref().and_then(|i| i.migrations.as_ref()) else {
        return vec![];
    };
    let rev = m.selection.strip_prefix("since git ").unwrap_or(&m.selection);
    let layout = Layout::from_name(&m.layout).unwrap_or(Layout::Plain);
    m.edited
        .iter()
        .map(|name| {
            Finding::new(
                KIND,
                Severity::Warning,
                format!("Merged migration edited: {name}"),
                edited_warning(layout, name, rev),
            )
            .instead(SafePattern {
                advice: format!(
                    "Restore {name} as it was at {rev} and put the change in a new migration after the latest one; this rehearsal then times it as a step."
                ),
                sql: format!(
                    "-- git -C {} checkout {rev} -- {name}\n-- then, in a new migration file:\nALTER TABLE ... ;",
                    m.dir
                ),
            })
        })
        .collect()
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::one_statement;
    use crate::record::{MigrationsInfo, RunRecord};

    /// V1 was merged at origin/main and edited since; V2 is new.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = quiet();
        let m = r.info.as_mut().unwrap().migrations.as_mut().unwrap();
        m.edited.push("V1__init.sql".into());
        r
    }

    /// Only V2 changed: it is new.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = one_statement("V2__index.sql", "CREATE INDEX t_v ON orders (v)", 1000.0, 1500.0);
        r.info.as_mut().unwrap().migrations = Some(MigrationsInfo {
            dir: "db/migration".into(),
            layout: "flyway".into(),
            selection: "since git origin/main".into(),
            setup: Vec::new(),
            setup_ms: 0.0,
            setup_digest: String::new(),
            rehearsed: vec!["V2__index.sql".into()],
            edited: Vec::new(),
        });
        r
    }

    #[test]
    fn names_the_file_the_revision_and_what_the_tool_does() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert_eq!(f.title, "Merged migration edited: V1__init.sql");
        assert!(f.seen.contains("already merged at origin/main"), "{}", f.seen);
        assert!(f.seen.contains("checksum mismatch"), "{}", f.seen);
        assert!(f.safe_pattern.advice.contains("new migration"), "{}", f.safe_pattern.advice);
    }
}
