//! Which migrations a rehearsal times and which only build the schema
//! before it: `from = "<version>"`, `last = N`, or the files added since a
//! git revision. The rehearsed ones must come after every setup one in the
//! tool's order — a new migration older than applied ones is a real bug.

use std::cmp::Ordering;

use super::error::{MigrationError, Setting};
use super::flyway::Version;
use super::model::{Kind, Layout, Location, MigrationFile, MigrationSet};
use super::plain::natural_cmp;
use super::since_git::MergedChange;
use super::{sqitch, sqitch_plan};

/// Which files to rehearse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every file (no setup).
    All,
    /// That version and every later one in the tool's order (compared the
    /// tool's way; a Sqitch change spec such as `users`, `@v1.0~`).
    From(String),
    /// The last N (versioned) migrations.
    Last(usize),
    /// The files added since this git revision (`--since-git REV`).
    SinceGit(String),
}

/// The split: `setup` builds the schema (untimed), then `rehearse` runs as
/// steps, one per file. Both in the order they run.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub layout: Layout,
    pub setup: Vec<&'a MigrationFile>,
    pub rehearse: Vec<&'a MigrationFile>,
    /// `SinceGit`: setup migrations (already merged at the revision) whose
    /// file changed since, renamed or deleted. The databases that applied
    /// one will not run the edit; the rehearsal sets each up as it was.
    pub edited: Vec<MergedChange>,
    /// `SinceGit`: the migrations edited, renamed or deleted since the
    /// revision, as they were then (named and located `<name>@<rev>`): production
    /// has them, so [`Plan::setup_with`] puts them in the setup.
    pub at_rev: Vec<MigrationFile>,
}

impl Plan<'_> {
    /// The setup as it runs, owned, with `previous` (earlier versions of
    /// repeatables, [`MigrationSet::previous_repeatables`]) among its
    /// repeatables: Flyway applies those after every versioned migration,
    /// by description.
    pub fn setup_with(&self, previous: Vec<MigrationFile>) -> Vec<MigrationFile> {
        let mut setup: Vec<MigrationFile> = self.setup.iter().map(|f| (*f).clone()).collect();
        // The migrations as they were at the revision, each before the
        // first setup file the tool orders after it.
        for f in &self.at_rev {
            let at = match f.kind {
                Kind::Repeatable => setup.len(),
                _ => setup
                    .iter()
                    .position(|s| {
                        s.kind == Kind::Repeatable
                            || tool_cmp(self.layout, s, f) == Ordering::Greater
                    })
                    .unwrap_or(setup.len()),
            };
            setup.insert(at, f.clone());
        }
        setup.extend(previous);
        // Stable: the versioned ones keep their order, before every
        // repeatable.
        setup.sort_by(
            |a, b| match (a.kind == Kind::Repeatable, b.kind == Kind::Repeatable) {
                (true, true) => a.description.cmp(&b.description),
                (x, y) => x.cmp(&y),
            },
        );
        setup
    }
}

impl MigrationSet {
    /// With no migration found: the files the layout skipped, the first
    /// with its reason — most likely another tool's directory.
    fn skipped_note(&self) -> String {
        match (self.files.is_empty(), self.ignored.first()) {
            (true, Some(first)) => format!(
                "; {} file(s) there do not follow {}'s naming, e.g. {}: {} ({})",
                self.ignored.len(),
                self.layout,
                first.path.display(),
                first.reason,
                if self.detected {
                    "the layout was detected from the names there: set `layout` to the tool's"
                } else {
                    "is `layout` right? leave it out to detect it"
                }
            ),
            _ => String::new(),
        }
    }

    /// Split this set for a rehearsal. Flyway repeatables: with `From` and
    /// `Last` every repeatable is rehearsed after the versioned migrations
    /// (Flyway reapplies those that changed, and without history all are
    /// taken as changed); with `SinceGit` those added or modified are
    /// rehearsed and the others end the setup. `SinceGit` with nothing new
    /// gives an empty `rehearse`.
    pub fn select(&self, selection: &Selection) -> Result<Plan<'_>, MigrationError> {
        // None at all: about the directory (or the layout that skipped its
        // files), not the selection.
        if self.ordered().next().is_none() && !matches!(selection, Selection::SinceGit(_)) {
            let setting = if self.ignored.is_empty() {
                Setting::Dir
            } else {
                Setting::Layout
            };
            return Err(MigrationError::setting(
                setting,
                format!(
                    "no {} migrations in {}{}",
                    self.layout,
                    self.dir.display(),
                    self.skipped_note()
                ),
            ));
        }
        if !self.replaced.is_empty() && matches!(selection, Selection::From(_) | Selection::Last(_))
        {
            return self.select_past_baseline(selection);
        }
        match selection {
            Selection::All => Ok(self.split_at(0)),
            Selection::Last(0) => Err(MigrationError::setting(
                Setting::Last,
                "last must be at least 1",
            )),
            Selection::Last(n) => {
                let count = self.ordered().count();
                if *n > count {
                    return Err(MigrationError::setting(
                        Setting::Last,
                        format!(
                            "last = {n}, but {} has only {count} migrations{}",
                            self.dir.display(),
                            self.skipped_note()
                        ),
                    ));
                }
                Ok(self.split_at(count - n))
            }
            Selection::From(v) => Ok(self.split_at(self.index_reaching(v)?)),
            Selection::SinceGit(rev) => self.select_since_git(rev),
        }
    }

    /// Flyway, with a baseline that replaces versioned migrations on an
    /// empty database: a rehearsal of later versions stands for a database
    /// migrated version by version, which runs every versioned migration at
    /// or after `from` (or the last N) — those the baseline replaced too —
    /// and never a baseline. The setup builds what that database had: the
    /// latest baseline before the first rehearsed version and the versioned
    /// ones after it, else the versioned ones before.
    fn select_past_baseline(&self, selection: &Selection) -> Result<Plan<'_>, MigrationError> {
        let flyway = |a: &&MigrationFile, b: &&MigrationFile| tool_cmp(Layout::Flyway, a, b);
        let mut versioned: Vec<&MigrationFile> = self
            .replaced
            .iter()
            .chain(self.files.iter().filter(|f| f.kind == Kind::Versioned))
            .collect();
        versioned.sort_by(flyway);
        let k = match selection {
            Selection::Last(0) => {
                return Err(MigrationError::setting(
                    Setting::Last,
                    "last must be at least 1",
                ))
            }
            Selection::Last(n) if *n > versioned.len() => {
                return Err(MigrationError::setting(
                    Setting::Last,
                    format!(
                        "last = {n}, but {} has only {} versioned migrations",
                        self.dir.display(),
                        versioned.len()
                    ),
                ))
            }
            Selection::Last(n) => versioned.len() - n,
            Selection::From(from) => {
                let v = Version::parse(from).ok_or_else(|| {
                    MigrationError::setting(
                        Setting::From,
                        format!("\"{from}\" is not a Flyway version (like 5 or 1.10)"),
                    )
                })?;
                versioned
                    .iter()
                    .position(|f| Version::parse(&f.version).is_some_and(|fv| fv >= v))
                    .ok_or_else(|| {
                        MigrationError::setting(
                            Setting::From,
                            format!("no versioned migration at or after version \"{from}\""),
                        )
                    })?
            }
            _ => unreachable!("only from and last"),
        };
        let first = versioned[k];
        let baseline = self
            .files
            .iter()
            .filter(|f| f.kind == Kind::Baseline)
            .rfind(|b| tool_cmp(Layout::Flyway, b, first) == Ordering::Less);
        let setup: Vec<&MigrationFile> = match baseline {
            Some(b) => std::iter::once(b)
                .chain(
                    versioned[..k]
                        .iter()
                        .copied()
                        .filter(|f| tool_cmp(Layout::Flyway, f, b) == Ordering::Greater),
                )
                .collect(),
            None => versioned[..k].to_vec(),
        };
        let mut rehearse = versioned[k..].to_vec();
        rehearse.extend(self.files.iter().filter(|f| f.kind == Kind::Repeatable));
        Ok(Plan {
            layout: self.layout,
            setup,
            rehearse,
            edited: Vec::new(),
            at_rev: Vec::new(),
        })
    }

    /// The migrations that have a place in the version order (all but
    /// Flyway repeatables).
    fn ordered(&self) -> impl Iterator<Item = &MigrationFile> {
        self.files.iter().filter(|f| f.kind != Kind::Repeatable)
    }

    /// Setup: the first `n` ordered migrations; rehearse: the rest, then the
    /// repeatables.
    fn split_at(&self, n: usize) -> Plan<'_> {
        let ordered: Vec<&MigrationFile> = self.ordered().collect();
        let mut rehearse = ordered[n..].to_vec();
        rehearse.extend(self.files.iter().filter(|f| f.kind == Kind::Repeatable));
        Plan {
            layout: self.layout,
            setup: ordered[..n].to_vec(),
            rehearse,
            edited: Vec::new(),
            at_rev: Vec::new(),
        }
    }

    /// The index (among the ordered migrations) of the first one at or after
    /// `from`, compared the tool's way.
    fn index_reaching(&self, from: &str) -> Result<usize, MigrationError> {
        let bad = |why: String| MigrationError::setting(Setting::From, why);
        let ordered: Vec<&MigrationFile> = self.ordered().collect();
        let reaches: Box<dyn Fn(&MigrationFile) -> bool + '_> = match self.layout {
            Layout::Sqitch => {
                let (_, plan) = sqitch::read_plan(&self.dir)?;
                return sqitch_plan::resolve(&plan, from).map_err(bad);
            }
            Layout::Flyway => {
                let v = Version::parse(from).ok_or_else(|| {
                    bad(format!(
                        "\"{from}\" is not a Flyway version (like 5 or 1.10)"
                    ))
                })?;
                Box::new(move |f| Version::parse(&f.version).is_some_and(|fv| fv >= v))
            }
            Layout::GolangMigrate => {
                let v: u64 = from.parse().map_err(|_| {
                    bad(format!(
                        "\"{from}\" is not a golang-migrate version (a number)"
                    ))
                })?;
                Box::new(move |f| f.version.parse::<u64>().is_ok_and(|fv| fv >= v))
            }
            Layout::Goose => {
                let v: i64 = from
                    .parse()
                    .map_err(|_| bad(format!("\"{from}\" is not a goose version (a number)")))?;
                Box::new(move |f| f.version.parse::<i64>().is_ok_and(|fv| fv >= v))
            }
            // dbmate compares versions as strings.
            Layout::Dbmate => Box::new(|f| f.version.as_str() >= from),
            // Prisma orders by directory name.
            Layout::Prisma => {
                Box::new(|f| f.name.trim_end_matches("/migration.sql").cmp(from) != Ordering::Less)
            }
            Layout::Plain => Box::new(|f| natural_cmp(&f.version, from) != Ordering::Less),
        };
        ordered.iter().position(|f| reaches(f)).ok_or_else(|| {
            let last = ordered
                .last()
                .map_or("none".to_string(), |f| f.version.clone());
            bad(format!(
                "no migration at or after version \"{from}\" (the last one is {last}){}",
                self.skipped_note()
            ))
        })
    }
}

/// The tool's order of two versioned migrations (of one set).
pub(super) fn tool_cmp(layout: Layout, a: &MigrationFile, b: &MigrationFile) -> Ordering {
    match layout {
        Layout::Flyway => Version::parse(&a.version).cmp(&Version::parse(&b.version)),
        Layout::GolangMigrate => a
            .version
            .parse::<u64>()
            .ok()
            .cmp(&b.version.parse::<u64>().ok()),
        Layout::Goose => a
            .version
            .parse::<i64>()
            .ok()
            .cmp(&b.version.parse::<i64>().ok()),
        Layout::Dbmate => a.version.cmp(&b.version),
        Layout::Prisma => a.name.cmp(&b.name),
        Layout::Plain => natural_cmp(&a.version, &b.version),
        Layout::Sqitch => Ordering::Equal,
    }
}

/// A migration added since `rev` that sorts before one that is not new.
pub(super) fn out_of_order(
    layout: Layout,
    new: &MigrationFile,
    older: &MigrationFile,
    rev: &str,
) -> MigrationError {
    let consequence = match layout {
        Layout::Flyway => "Flyway refuses to migrate (\"Detected resolved migration not applied to database\") unless outOfOrder is set",
        Layout::GolangMigrate => "golang-migrate never applies it: it only moves up from the database's current version",
        Layout::Dbmate => "dbmate applies it after the newer ones (and refuses in --strict mode)",
        Layout::Goose => "goose refuses to migrate (\"found 1 missing migrations\") unless run with -allow-missing, which applies it after the newer ones",
        Layout::Sqitch => "Sqitch finds the plan no longer matches the deployed changes",
        Layout::Prisma => "Prisma applies it after the newer ones already deployed",
        Layout::Plain => "it would run after the newer ones already applied",
    };
    MigrationError::at(
        Location::file(&new.path),
        format!(
            "{} is new since {rev}, yet it comes before {}, which is not: in production {} is \
             already applied, so {consequence} — a different order than on a fresh database and \
             in this rehearsal. Fix: give it a version after the latest applied one",
            new.name, older.name, older.name
        ),
    )
}
