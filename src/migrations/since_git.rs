//! `--since-git REV`: the migrations merged at the revision that changed
//! since (edited, renamed, deleted), set up as production has them and
//! warned about, and which files are new and rehearsed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{MigrationError, Setting};
use super::flyway::{self, FlywayOptions, Version};
use super::git::{self, GitChanges};
use super::model::{Kind, Layout, MigrationFile, MigrationSet};
use super::select::{out_of_order, Plan};
use super::{sqitch, sqitch_plan};

/// How a migration merged at the `--since-git` revision changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its file was edited (in more than line endings or a BOM); the
    /// setup applies it as it was at the revision (`as_it_was`), or as it
    /// is now where that version could not be had (Sqitch; a tree that no
    /// longer loads).
    Edited { as_it_was: bool },
    /// Its file has another name now (`to`), one the tool takes for the
    /// same migration (the same version; for a Flyway repeatable, the same
    /// description); the setup applies it as it was at the revision.
    Renamed { to: String, content_changed: bool },
    /// Its file is gone (or has a name the tool takes for another
    /// migration, which is then new); the setup applies it as it was at
    /// the revision.
    Deleted,
    /// Merged into the revision after this branch forked from it: the
    /// branch does not have its file, production has it; the setup applies
    /// it as the revision has it.
    MergedAfterFork,
}

impl Change {
    /// run.json's `kind`: edited | renamed | deleted.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Edited { .. } => "edited",
            Change::Renamed { .. } => "renamed",
            Change::Deleted => "deleted",
            Change::MergedAfterFork => "merged_after_fork",
        }
    }
}

/// The migrations as they were at the `--since-git` revision that the
/// setup needs: those deleted since (with their normalized text, to tell a
/// rename from an edit) and those edited since, by their name now.
#[derive(Default)]
struct Then {
    gone: Vec<(MigrationFile, Vec<u8>)>,
    edited: HashMap<String, MigrationFile>,
}

/// A migration merged at the `--since-git` revision (named as it was
/// then) whose file changed since in a way production will not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedChange {
    pub name: String,
    pub change: Change,
}

impl MigrationSet {
    /// [`super::Selection::SinceGit`]: the files added since `rev` are
    /// rehearsed, every other one builds the schema at setup.
    pub(super) fn select_since_git(&self, rev: &str) -> Result<Plan<'_>, MigrationError> {
        let changes = git::changes_since(&self.dir, rev)?;
        let old_plan = match self.layout {
            Layout::Sqitch => {
                let (_, plan) = sqitch::project_paths(&self.dir);
                let relative = plan.strip_prefix(&self.dir).unwrap_or(&plan);
                let relative = relative.to_string_lossy().replace('\\', "/");
                Some(git::file_at(&self.dir, rev, &relative)?)
            }
            _ => None,
        };
        let then = match self.layout {
            // Sqitch goes by its plan, not by files.
            Layout::Sqitch => Then::default(),
            // A repeatable's earlier text is read on its own
            // (`previous_repeatables`): no tree at the revision for it.
            _ if changes.deleted.is_empty()
                && !self
                    .files
                    .iter()
                    .any(|f| f.kind != Kind::Repeatable && changes.modified.contains(&f.name)) =>
            {
                Then::default()
            }
            _ => self.then(&changes, rev)?,
        };
        self.select_changes(&changes, old_plan.as_ref().map(Option::as_deref), then)
    }

    /// `SinceGit`: the migrations of the directory as it was at `rev` whose
    /// file git says was deleted (a rename's old name among them) or
    /// edited since, loaded as the tool loaded them then, each with its
    /// text (normalized, [`git::normalized`]). Named and located
    /// `<name>@<rev>`. A tree that does not load is an error only where a
    /// file was deleted: an edited one can still be set up as it is now.
    fn then(&self, changes: &GitChanges, rev: &str) -> Result<Then, MigrationError> {
        let Some(tree) = git::tree_at(&self.dir, rev)? else {
            return Ok(Then::default());
        };
        let spec = super::Spec {
            dir: tree.path().to_path_buf(),
            layout: Some(self.layout),
            options: self.options.clone(),
        };
        let then = match super::load(&spec) {
            Ok(then) => then,
            Err(_) if changes.deleted.is_empty() => return Ok(Then::default()),
            Err(e) => {
                return Err(MigrationError::setting(
                    Setting::SinceGit,
                    format!(
                        "{} as it was at {rev} does not load (needed to set up the migrations \
                         deleted or renamed since as production has them): {}",
                        self.dir.display(),
                        e.0.first().map_or(String::new(), |e| e.to_string())
                    ),
                ))
            }
        };
        let relocate = |p: &Path| -> PathBuf {
            match p.strip_prefix(tree.path()) {
                Ok(rel) => PathBuf::from(format!("{}@{rev}", self.dir.join(rel).display())),
                Err(_) => p.to_path_buf(),
            }
        };
        let mut out = Then::default();
        for mut f in then.files {
            let deleted = changes.deleted.contains(&f.name);
            let edited = f.kind != Kind::Repeatable && changes.modified.contains(&f.name);
            if !deleted && !edited {
                continue;
            }
            let text = std::fs::read(&f.path).unwrap_or_default();
            let now_name = f.name.clone();
            f.path = relocate(&f.path);
            f.name = format!("{}@{rev}", f.name);
            for seg in &mut f.segments {
                for st in &mut seg.statements {
                    st.location.file = relocate(&st.location.file);
                }
            }
            if deleted {
                out.gone.push((f, git::normalized(&text)));
            } else {
                out.edited.insert(now_name, f);
            }
        }
        Ok(out)
    }

    /// [`Selection::SinceGit`] once git has answered: `old_plan` is
    /// sqitch.plan at the revision (Sqitch only; `Some(None)` when it did not
    /// exist).
    /// `then`: the migrations deleted or edited since, as they were then.
    fn select_changes(
        &self,
        changes: &GitChanges,
        old_plan: Option<Option<&str>>,
        then: Then,
    ) -> Result<Plan<'_>, MigrationError> {
        let Then {
            gone,
            edited: mut edited_then,
        } = then;
        // A file added since that the tool takes for a merged one deleted
        // since (its new name keeps the version): that one, renamed.
        let suffix = format!("@{}", changes.rev);
        let mut renamed: Vec<bool> = vec![false; self.files.len()];
        let mut gone_changes = Vec::new();
        let mut at_rev = Vec::new();
        // Of `at_rev`, the versioned migrations merged after the fork.
        let mut after_fork_at: Vec<usize> = Vec::new();
        for (old, text) in gone {
            let name = old
                .name
                .strip_suffix(&suffix)
                .unwrap_or(&old.name)
                .to_string();
            let pair = self.files.iter().enumerate().position(|(i, f)| {
                !renamed[i]
                    && changes.added.contains(&f.name)
                    && same_migration(self.layout, &old, f)
            });
            let after_fork = changes.merged_after_fork.contains(&name);
            // Renamed on the revision after the fork (a new name, the same
            // version): this branch has it under its old name, set up
            // already. Once is enough (QA: set up twice, and the run failed
            // on "already exists").
            if after_fork
                && self.files.iter().any(|f| {
                    !changes.added.contains(&f.name) && same_migration(self.layout, &old, f)
                })
            {
                continue;
            }
            let change = match pair.filter(|_| !after_fork) {
                None if after_fork => Some(Change::MergedAfterFork),
                Some(i) => {
                    renamed[i] = true;
                    let now = &self.files[i];
                    let content_changed =
                        std::fs::read(&now.path).map_or(true, |t| git::normalized(&t) != text);
                    (!harmless_rename(self.layout, &old, now, content_changed)).then(|| {
                        Change::Renamed {
                            to: now.name.clone(),
                            content_changed,
                        }
                    })
                }
                None => Some(Change::Deleted),
            };
            if let Some(change) = change {
                gone_changes.push(MergedChange { name, change });
            }
            if after_fork && old.kind != Kind::Repeatable {
                after_fork_at.push(at_rev.len());
            }
            at_rev.push(old);
        }
        let rehearsed: Vec<bool> = match (self.layout, old_plan) {
            (Layout::Sqitch, Some(old)) => self.new_sqitch_changes(old)?,
            _ => self
                .files
                .iter()
                .zip(&renamed)
                .map(|(f, renamed)| {
                    (changes.added.contains(&f.name) && !renamed)
                        || (f.kind == Kind::Repeatable && changes.modified.contains(&f.name))
                })
                .collect(),
        };
        let ordered: Vec<(usize, &MigrationFile)> = self
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind != Kind::Repeatable)
            .collect();
        if let Some(first) = ordered.iter().position(|(i, _)| rehearsed[*i]) {
            let new = ordered[first].1;
            if let Some((_, older)) = ordered[first..].iter().find(|(i, _)| !rehearsed[*i]) {
                return Err(out_of_order(self.layout, new, older, &changes.rev));
            }
            // The revision moved on past the branch's new version after the
            // fork: production has that one first, so the tool treats the
            // branch's as out of order — a rebase alone does not mend it,
            // the branch's migration needs a newer version (QA: rehearsed
            // after it, with an info finding advising a rebase).
            let passed = after_fork_at
                .iter()
                .map(|&k| &at_rev[k])
                .find(|m| super::select::tool_cmp(self.layout, m, new) != std::cmp::Ordering::Less);
            if let Some(merged) = passed {
                return Err(past_the_branch(self.layout, new, merged, &changes.rev));
            }
        }
        let mut edited: Vec<MergedChange> = Vec::new();
        // An edited one is set up as it was at the revision, as production
        // has it, where that version could be loaded.
        let mut replaced: Vec<bool> = vec![false; self.files.len()];
        for (i, f) in self.files.iter().enumerate() {
            if rehearsed[i] || f.kind == Kind::Repeatable || !changes.modified.contains(&f.name) {
                continue;
            }
            edited.push(MergedChange {
                name: f.name.clone(),
                change: Change::Edited {
                    as_it_was: edited_then.contains_key(&f.name),
                },
            });
            if let Some(then) = edited_then.remove(&f.name) {
                replaced[i] = true;
                at_rev.push(then);
            }
        }
        let pick = |want: bool| -> Vec<&MigrationFile> {
            self.files
                .iter()
                .enumerate()
                .filter(|(i, _)| rehearsed[*i] == want && !renamed[*i] && !replaced[*i])
                .map(|(_, f)| f)
                .collect()
        };
        edited.extend(gone_changes);
        Ok(Plan {
            layout: self.layout,
            setup: pick(false),
            rehearse: pick(true),
            edited,
            at_rev,
        })
    }

    /// `SinceGit`, Flyway: a repeatable rehearsed because it was modified
    /// since `rev` had its text at `rev` applied wherever `rev` was
    /// deployed; Flyway reapplies it because its checksum changed. Those
    /// earlier versions, to end the setup (so the rehearsal replaces the
    /// view or function as production will, rather than creating it).
    /// Repeatables added since `rev` have none.
    pub fn previous_repeatables(
        &self,
        plan: &Plan<'_>,
        rev: &str,
        options: &FlywayOptions,
    ) -> Result<Vec<MigrationFile>, MigrationError> {
        let mut previous = Vec::new();
        for f in plan.rehearse.iter().filter(|f| f.kind == Kind::Repeatable) {
            if let Some(text) = git::file_at(&self.dir, rev, &f.name)? {
                previous.push(flyway::repeatable_at(f, text, rev, options)?);
            }
        }
        Ok(previous)
    }

    /// Sqitch: the changes of the plan now that the plan at the revision
    /// did not have (an instance of a name beyond its count then).
    fn new_sqitch_changes(&self, old: Option<&str>) -> Result<Vec<bool>, MigrationError> {
        let (_, plan) = sqitch::read_plan(&self.dir)?;
        let mut before: HashMap<String, usize> = HashMap::new();
        if let Some(text) = old {
            let path = self.dir.join(format!("{}@rev", sqitch::PLAN_FILE));
            for c in sqitch_plan::parse(&path, text)?.changes {
                *before.entry(c.name).or_default() += 1;
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        Ok(plan
            .changes
            .iter()
            .map(|c| {
                let k = seen.entry(c.name.as_str()).or_default();
                *k += 1;
                *k > before.get(&c.name).copied().unwrap_or(0)
            })
            .collect())
    }
}

/// Whether the tool takes `now` (a file added since the revision) for
/// `then` (a migration merged at it, deleted since): what its history
/// knows a migration by is the same. Flyway: the version (a repeatable:
/// its description); golang-migrate, goose, dbmate: the version. Prisma
/// and plain files go by the name, so a rename is another migration.
fn same_migration(layout: Layout, then: &MigrationFile, now: &MigrationFile) -> bool {
    match layout {
        Layout::Flyway => {
            then.kind == now.kind
                && match then.kind {
                    Kind::Repeatable => then.description == now.description,
                    _ => {
                        Version::parse(&then.version).is_some()
                            && Version::parse(&then.version) == Version::parse(&now.version)
                    }
                }
        }
        Layout::GolangMigrate => {
            then.version.parse::<u64>().ok().is_some()
                && then.version.parse::<u64>().ok() == now.version.parse::<u64>().ok()
        }
        Layout::Goose => {
            then.version.parse::<i64>().ok().is_some()
                && then.version.parse::<i64>().ok() == now.version.parse::<i64>().ok()
        }
        Layout::Dbmate => then.version == now.version,
        Layout::Sqitch | Layout::Prisma | Layout::Plain => false,
    }
}

/// A rename the tool does not notice: the same SQL under a name that keeps
/// what its history records. golang-migrate, goose and dbmate record only
/// the version; Flyway also validates the description (and the
/// checksum), so only a move to another directory keeps both.
fn harmless_rename(
    layout: Layout,
    then: &MigrationFile,
    now: &MigrationFile,
    content_changed: bool,
) -> bool {
    !content_changed
        && match layout {
            Layout::Flyway => then.description == now.description,
            _ => true,
        }
}

/// A migration the revision gained after this branch forked has a version
/// at or past one the branch adds: the branch's must be renumbered.
fn past_the_branch(
    layout: Layout,
    new: &MigrationFile,
    merged: &MigrationFile,
    rev: &str,
) -> MigrationError {
    let same = super::select::tool_cmp(layout, merged, new) == std::cmp::Ordering::Equal;
    let merged_name = merged
        .name
        .strip_suffix(&format!("@{rev}"))
        .unwrap_or(&merged.name);
    MigrationError::at(
        super::Location::file(&new.path),
        format!(
            "{} is new on this branch, but {rev} gained {merged_name} after the branch forked, \
             {}: production applies that one first, and {} treats this one as out of order. \
             Rebase on {rev} and give it a version after {merged_name}",
            new.name,
            if same {
                "with the same version"
            } else {
                "with a later version"
            },
            layout.tool()
        ),
    )
}

/// What happens to a migration merged at `rev` and edited, renamed or
/// deleted since, where it was applied already: the sentence the
/// rehearsal warns with (stderr, the GitHub job summary, the
/// `edited_migration` finding).
pub fn edited_warning(layout: Layout, c: &MergedChange, rev: &str) -> String {
    let name = &c.name;
    let not_again = match layout {
        Layout::Flyway => "",
        Layout::Sqitch => "Sqitch does not deploy it again (a rework, `sqitch rework`, is how a change is changed)",
        Layout::Prisma => "prisma migrate deploy does not apply it again (and `migrate dev` asks to reset the database: \"was modified after it was applied\")",
        Layout::GolangMigrate | Layout::Dbmate | Layout::Goose => {
            "the tool does not run it again: the edit never reaches them"
        }
        Layout::Plain => {
            "a file already applied is not applied again: the edit never reaches them"
        }
    };
    match &c.change {
        Change::Edited { as_it_was } => {
            let consequence = match layout {
                Layout::Flyway => "Flyway's validate fails on its changed checksum (\"Migration checksum mismatch\") and migrate refuses to run",
                _ => not_again,
            };
            let setup = if *as_it_was {
                format!("as it was at {rev}, untimed, as production has it")
            } else {
                "as it is now, untimed (its version at the revision could not be loaded)".into()
            };
            format!(
                "{name} was already merged at {rev} and has been edited since: on the databases \
                 that applied it, {consequence}. The rehearsal applies it at setup {setup}. Put \
                 the change in a new migration and restore this file."
            )
        }
        Change::Renamed {
            to,
            content_changed,
        } => {
            let consequence = match (layout, content_changed) {
                (Layout::Flyway, false) => "Flyway's validate fails on its changed description (\"Migration description mismatch\") and migrate refuses to run".to_string(),
                (Layout::Flyway, true) => "Flyway's validate fails on its changed checksum (\"Migration checksum mismatch\") and migrate refuses to run".to_string(),
                // Only a rename keeping the version pairs the two files:
                // these tools then see nothing but the edit.
                (_, _) => format!("the tool takes it for the migration it applied (the version is the same) and {}", not_again.strip_prefix("the tool ").unwrap_or(not_again)),
            };
            let what = if *content_changed {
                "renamed and edited"
            } else {
                "renamed (its SQL unchanged)"
            };
            format!(
                "{name} was already merged at {rev} and has been {what} since, to {to}: on the \
                 databases that applied it, {consequence}. The rehearsal sets it up as it was at \
                 {rev}, untimed, and does not rehearse {to}. Restore the file{} and put any \
                 change in a new migration.",
                if layout == Layout::Flyway && !content_changed {
                    "'s name"
                } else {
                    ""
                }
            )
        }
        Change::Deleted => {
            let consequence = match layout {
                Layout::Flyway => "Flyway's validate fails on a migration applied but not found (\"Detected applied migration not resolved locally\") and migrate refuses to run",
                Layout::Prisma => "prisma migrate deploy does not undo it (and `migrate dev` finds a migration applied but missing locally, and asks to reset the database)",
                Layout::GolangMigrate => "golang-migrate does not undo it (and where it was the last one applied, fails to find that version's file)",
                Layout::Sqitch | Layout::Dbmate | Layout::Goose | Layout::Plain => {
                    "nothing undoes it"
                }
            };
            format!(
                "{name} was already merged at {rev} and has been deleted (or renamed to another \
                 version) since: on the databases that applied it, {consequence}, while a \
                 database built from these files would not have it. The rehearsal sets it up as \
                 it was at {rev}, untimed, as production has it. Restore the file; undoing a \
                 migration takes a new one."
            )
        }
        Change::MergedAfterFork => format!(
            "{name} was merged into {rev} after this branch forked from it, and this branch does \
             not have it: production does. The rehearsal sets it up as {rev} has it, untimed, \
             before the branch's new migrations. Rebase (or merge {rev}) to rehearse the branch \
             as it will land."
        ),
    }
}
