//! Validating `[migrations]`: the directory (relative to the scenario
//! file), its layout and the tool's options, which files are rehearsed
//! (`rehearse = { from | last }`, or `--since-git REV`); then loading it
//! with [`crate::migrations`], whose every check-time problem becomes a
//! located scenario error — in the migration file, or at the setting.

use std::ops::Range;
use std::path::Path;

use toml::Value;

use super::diag::Diags;
use super::model::{self, S};
use super::span::{line_col, table_span};
use super::MigrationsPlan;
use crate::migrations::{self, FlywayOptions, Layout, MigrationErrors, Selection, Setting, Spec};

/// What a scenario's `[migrations]` came to.
pub(super) enum Migrations {
    /// The scenario has none.
    Absent,
    /// It has one, but it could not be loaded (the errors are recorded):
    /// what depends on it is not checked further.
    Broken,
    Loaded(MigrationsPlan),
}

impl Migrations {
    pub(super) fn present(&self) -> bool {
        !matches!(self, Migrations::Absent)
    }

    pub(super) fn plan(&self) -> Option<&MigrationsPlan> {
        match self {
            Migrations::Loaded(p) => Some(p),
            _ => None,
        }
    }
}

/// `[migrations]` of the file at `path`, with `--since-git` (which wins
/// over `rehearse`).
pub(super) fn migrations(
    d: &mut Diags,
    m: Option<&model::MigrationsSection>,
    path: &Path,
    since_git: Option<&str>,
) -> Migrations {
    let Some(m) = m else {
        if let Some(rev) = since_git {
            d.errors.push(crate::error::ScenarioError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                field: "--since-git".into(),
                message: format!(
                    "--since-git {rev} selects migration files, and this scenario has no \
                     [migrations] section"
                ),
            });
        }
        return Migrations::Absent;
    };
    let section = m;
    // Sections keep no span (toml gives none for one only dotted headers
    // create): where `[migrations]` is written is looked up in the text.
    let span = table_span(d.text, "migrations");
    let errors_before = d.errors.len();
    let dir = match d.required(
        &section.dir,
        span.clone(),
        "migrations.dir",
        "the directory of migration files, relative to this file, e.g. dir = \"../db/migration\"",
    ) {
        Some(v) => d.nonempty(v, "migrations.dir", "a directory"),
        None => None,
    };
    let layout =
        section
            .layout
            .as_ref()
            .and_then(|v| match migrations::parse_layout(v.get_ref().trim()) {
                Ok(l) => Some(l),
                Err(e) => {
                    d.err(v.span(), "migrations.layout", e.message);
                    None
                }
            });
    let selection = selection(d, section.rehearse.as_ref(), since_git);
    let (Some(dir), Some(selection)) = (dir, selection) else {
        return Migrations::Broken;
    };
    if d.errors.len() > errors_before {
        return Migrations::Broken;
    }
    let mut spec = Spec::new(migrations::relative_to(path, &dir));
    spec.layout = layout;
    spec.options.flyway = flyway_options(section);
    spec.options.golang_migrate.multi_statement = section
        .multi_statement
        .as_ref()
        .is_some_and(|v| *v.get_ref());
    let set = match migrations::load(&spec) {
        Ok(set) => set,
        Err(e) => {
            report(d, section, span, path, &e);
            return Migrations::Broken;
        }
    };
    if !options_fit(d, section, set.layout) {
        return Migrations::Broken;
    }
    let plan = match &selection {
        // Everything builds the schema; only inline steps are rehearsed.
        Selection::Last(0) => Ok(migrations::Plan {
            layout: set.layout,
            setup: set.files.iter().collect(),
            rehearse: Vec::new(),
            edited: Vec::new(),
            at_rev: Vec::new(),
        }),
        s => set.select(s),
    };
    // --since-git: a Flyway repeatable changed since the revision is
    // rehearsed over its version at the revision, which production has.
    let previous = match (&plan, &selection, set.layout) {
        (Ok(plan), Selection::SinceGit(rev), Layout::Flyway) => {
            set.previous_repeatables(plan, rev, &spec.options.flyway)
        }
        _ => Ok(Vec::new()),
    };
    match plan.and_then(|plan| Ok((previous?, plan))) {
        Ok((previous, plan)) => {
            let setup = plan.setup_with(previous);
            let rehearse: Vec<_> = plan.rehearse.into_iter().cloned().collect();
            // A file a baseline replaces on an empty database is applied
            // after all where the rehearsal stands for a database migrated
            // before the baseline (select.rs).
            let applied = |p: &std::path::Path| setup.iter().chain(&rehearse).any(|f| f.path == p);
            let mut ignored: Vec<_> = set
                .ignored
                .iter()
                .filter(|i| !applied(&i.path))
                .cloned()
                .collect();
            ignored.extend(set.files.iter().filter(|f| !applied(&f.path)).map(|f| {
                crate::migrations::Ignored {
                    path: f.path.clone(),
                    reason: not_applied_reason(f, &plan.edited, set.layout, &selection),
                }
            }));
            Migrations::Loaded(MigrationsPlan {
                dir: set.dir.clone(),
                layout: set.layout,
                selection: selection.clone(),
                setup,
                rehearse,
                edited: plan.edited,
                ignored,
            })
        }
        Err(e) => {
            report(d, section, span, path, &MigrationErrors(vec![e]));
            Migrations::Broken
        }
    }
}

/// Why a file of the directory is neither set up nor rehearsed as it is:
/// changed since the `--since-git` revision after it was merged (the setup
/// applies it as it was then), or a Flyway baseline.
fn not_applied_reason(
    f: &crate::migrations::MigrationFile,
    edited: &[crate::migrations::MergedChange],
    layout: crate::migrations::Layout,
    selection: &Selection,
) -> String {
    use crate::migrations::Change;
    let rev = match selection {
        Selection::SinceGit(rev) => rev.as_str(),
        _ => "",
    };
    for m in edited {
        match &m.change {
            Change::Edited { .. } if m.name == f.name => {
                return format!(
                    "edited since {rev}, where it was already merged: databases that applied it \
                     will not run the edit, so the setup applies it as it was at {rev}"
                )
            }
            Change::Renamed { to, .. } if *to == f.name => {
                return format!(
                    "{} renamed since {rev}, where it was already merged: the setup applies it \
                     as it was at {rev}",
                    m.name
                )
            }
            _ => {}
        }
    }
    match layout {
        crate::migrations::Layout::Flyway => "a baseline: Flyway applies it to an empty database \
             only, and this rehearsal stands for a database migrated version by version"
            .into(),
        _ => {
            format!("changed since {rev} after it was merged: the setup applies it as it was then")
        }
    }
}

/// `rehearse` (or `--since-git`, which wins) as a selection; the default is
/// the newest migration.
fn selection(
    d: &mut Diags,
    r: Option<&S<model::RehearseSection>>,
    since_git: Option<&str>,
) -> Option<Selection> {
    if let Some(rev) = since_git {
        return Some(Selection::SinceGit(rev.to_string()));
    }
    let Some(r) = r else {
        return Some(Selection::Last(1));
    };
    let rr = r.get_ref();
    match (&rr.from, &rr.last) {
        (Some(_), Some(last)) => {
            d.err(
                last.span(),
                "migrations.rehearse.last",
                "give either from or last, not both",
            );
            None
        }
        (None, None) => {
            d.err(
                r.span(),
                "migrations.rehearse",
                "is empty; expected from = \"<version>\" or last = <count>",
            );
            None
        }
        (Some(from), None) => match from.get_ref() {
            Value::String(s) if !s.trim().is_empty() => Some(Selection::From(s.trim().into())),
            Value::Integer(i) => Some(Selection::From(i.to_string())),
            Value::Float(f) => {
                d.err(
                    from.span(),
                    "migrations.rehearse.from",
                    format!(
                        "{f} is a number, and TOML reads 1.10 as 1.1: write the version as a \
                         string, e.g. from = \"{f}\""
                    ),
                );
                None
            }
            other => {
                d.err(
                    from.span(),
                    "migrations.rehearse.from",
                    format!("`{other}` is not a version; expected e.g. from = \"5\""),
                );
                None
            }
        },
        (None, Some(last)) => d
            .int_in(last, "migrations.rehearse.last", 0, 1_000_000)
            .map(|n| Selection::Last(n as usize)),
    }
}

fn flyway_options(m: &model::MigrationsSection) -> FlywayOptions {
    let flag = |v: &Option<S<bool>>, default: bool| v.as_ref().map_or(default, |v| *v.get_ref());
    let defaults = FlywayOptions::default();
    FlywayOptions {
        mixed: flag(&m.mixed, defaults.mixed),
        execute_in_transaction: flag(&m.execute_in_transaction, defaults.execute_in_transaction),
        placeholder_replacement: flag(&m.placeholder_replacement, defaults.placeholder_replacement),
        placeholders: m.placeholders.as_ref().map_or(defaults.placeholders, |p| {
            p.get_ref()
                .0
                .iter()
                .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
                .collect()
        }),
    }
}

/// A tool's option set for another tool's directory is a mistake, not a
/// no-op.
fn options_fit(d: &mut Diags, m: &model::MigrationsSection, layout: Layout) -> bool {
    let flyway: [(&str, Option<Range<usize>>); 4] = [
        ("mixed", m.mixed.as_ref().map(S::span)),
        (
            "execute_in_transaction",
            m.execute_in_transaction.as_ref().map(S::span),
        ),
        (
            "placeholder_replacement",
            m.placeholder_replacement.as_ref().map(S::span),
        ),
        ("placeholders", m.placeholders.as_ref().map(S::span)),
    ];
    let golang = [("multi_statement", m.multi_statement.as_ref().map(S::span))];
    let mut fits = true;
    for (tool, layout_of, options) in [
        ("Flyway", Layout::Flyway, &flyway[..]),
        ("golang-migrate", Layout::GolangMigrate, &golang[..]),
    ] {
        for (key, span) in options {
            if let (Some(span), true) = (span, layout != layout_of) {
                d.err(
                    span.clone(),
                    format!("migrations.{key}"),
                    format!(
                        "`{key}` is a {tool} setting, and the migrations are {}: remove it",
                        layout.name()
                    ),
                );
                fits = false;
            }
        }
    }
    fits
}

/// The loader's errors as scenario errors: a problem in a migration file
/// at its file:line:column, a problem with a setting at its key here.
fn report(
    d: &mut Diags,
    section: &model::MigrationsSection,
    span: Range<usize>,
    path: &Path,
    e: &MigrationErrors,
) {
    let text = d.text;
    let at = |span: Option<Range<usize>>| span.map_or((0, 0), |s| line_col(text, s.start));
    let rehearse = section.rehearse.as_ref().map(|r| r.get_ref());
    let locate = |setting: Setting| match setting {
        Setting::Dir => at(section.dir.as_ref().map(S::span)),
        // An auto-detected layout is the directory's.
        Setting::Layout => at(section
            .layout
            .as_ref()
            .or(section.dir.as_ref())
            .map(S::span)),
        Setting::From => at(rehearse.and_then(|r| r.from.as_ref()).map(S::span)),
        Setting::Last => at(rehearse.and_then(|r| r.last.as_ref()).map(S::span)),
        Setting::SinceGit => (0, 0),
        Setting::Options => at(section
            .placeholders
            .as_ref()
            .map(S::span)
            .or(Some(span.clone()))),
    };
    d.errors.extend(e.to_scenario_errors(path, locate));
}
