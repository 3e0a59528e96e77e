//! A migration merged before the `--since-git` revision was edited,
//! renamed or deleted since: production already ran the old version and
//! will not run the edit nor undo it (or, with Flyway, will refuse to
//! migrate at all), so a database built from the files is not the one
//! production has.
//!
//! - **Reads** run.json `migrations.edited` (the files merged at the
//!   revision that `git diff` calls modified or deleted, a rename's old
//!   name among them), `migrations.changes` (how each changed; absent in
//!   older runs: edited), its layout and its selection.
//! - **Fires when** any such file is there; once per file, warning.
//! - **Advises** restoring the file and putting the change in a new
//!   migration, which is then rehearsed.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::rule::{Evidence, Rule};
use crate::migrations::{edited_warning, Change, Layout, MergedChange};

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
        .enumerate()
        .map(|(i, name)| {
            let c = match m.changes.get(i) {
                Some(info) if info.file == *name => info.change(),
                _ => MergedChange {
                    name: name.clone(),
                    change: Change::Edited { as_it_was: false },
                },
            };
            let (how, restore) = match &c.change {
                Change::Edited { .. } => ("edited", format!("Restore {name} as it was at {rev}")),
                Change::Renamed { to, .. } => (
                    "renamed",
                    format!("Rename {to} back to {name}, as it was at {rev},"),
                ),
                Change::Deleted => ("deleted", format!("Restore {name} as it was at {rev}")),
                Change::MergedAfterFork => {
                    return Finding::new(
                        KIND,
                        Severity::Info,
                        format!("Migration merged into {rev} after this branch forked: {name}"),
                        edited_warning(layout, &c, rev),
                    )
                    .instead(SafePattern {
                        advice: format!(
                            "Rebase the branch on {rev} (or merge it in), so that the rehearsal runs what will land."
                        ),
                        sql: format!("-- git fetch && git rebase {rev}"),
                    })
                }
            };
            Finding::new(
                KIND,
                Severity::Warning,
                format!("Merged migration {how}: {name}"),
                edited_warning(layout, &c, rev),
            )
            .instead(SafePattern {
                advice: format!(
                    "{restore} and put the change in a new migration after the latest one; this rehearsal then times it as a step."
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
            changes: Vec::new(),
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

    #[test]
    fn a_rename_and_a_deletion_are_named_as_such() {
        use crate::migrations::{Change, MergedChange};
        use crate::record::EditedInfo;
        let mut r = quiet();
        let m = r.info.as_mut().unwrap().migrations.as_mut().unwrap();
        for c in [
            MergedChange {
                name: "V1__a.sql".into(),
                change: Change::Renamed {
                    to: "V1__add_a.sql".into(),
                    content_changed: false,
                },
            },
            MergedChange {
                name: "V1_5__b.sql".into(),
                change: Change::Deleted,
            },
        ] {
            m.edited.push(c.name.clone());
            m.changes.push(EditedInfo::of(&c));
        }
        let a = analyze(&r);
        let f: Vec<_> = a.findings.iter().filter(|f| f.kind == KIND).collect();
        assert_eq!(f[0].title, "Merged migration renamed: V1__a.sql");
        assert!(f[0].seen.contains("description mismatch"), "{}", f[0].seen);
        assert!(f[0].safe_pattern.advice.contains("Rename V1__add_a.sql back"));
        assert_eq!(f[1].title, "Merged migration deleted: V1_5__b.sql");
        assert!(f[1].seen.contains("not resolved locally"), "{}", f[1].seen);
    }
}
