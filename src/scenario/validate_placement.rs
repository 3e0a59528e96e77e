//! Which phase runs which rehearsed migration. Without `[[phase]]`, one
//! phase `migrate` runs a step per rehearsed file. With phases, a phase
//! names its files (`migrations = ["V5__a.sql"]`, or `"*"`: every rehearsed
//! file no other phase runs) or a step names one (`migration = "V5__a.sql"`,
//! with step options). Every rehearsed file runs exactly once, in the
//! tool's order: the order production will apply them in.

use std::ops::Range;

use super::diag::Diags;
use super::{PhasePlan, StepAction, StepPlan};
use crate::migrations::{Execution, MigrationFile};

/// The rehearsed files steps may name.
#[derive(Clone, Copy)]
pub(super) enum Rehearsed<'a> {
    /// The scenario has no `[migrations]`: naming a migration is an error.
    NoSection,
    /// Names are not checked: `[migrations]` did not load (its errors are
    /// reported), or `--since-git` found nothing to rehearse.
    Unchecked,
    Files(&'a [MigrationFile]),
}

/// A step that runs rehearsed file `index`, and where the scenario says so.
pub(super) struct Placed {
    pub index: usize,
    pub span: Range<usize>,
    pub field: String,
}

/// A phase's entry before `"*"` is expanded.
pub(super) enum Entry {
    // Boxed: a step plan is large, and `Rest` is not.
    Step(Box<StepPlan>, Option<Placed>),
    /// `migrations = "*"`.
    Rest {
        span: Range<usize>,
        field: String,
    },
}

/// A phase as validated, its `"*"` not yet expanded.
pub(super) struct PhaseDraft {
    pub name: String,
    pub apps: Vec<String>,
    pub entries: Vec<Entry>,
}

/// The one phase of a scenario with `[migrations]` and no `[[phase]]`.
pub(super) fn default_phase(files: &[MigrationFile], apps: &[String]) -> PhasePlan {
    PhasePlan {
        name: "migrate".into(),
        apps: apps.to_vec(),
        steps: files.iter().map(|f| file_step(f, f.name.clone())).collect(),
    }
}

/// A step that runs `file` with no options of its own.
pub(super) fn file_step(file: &MigrationFile, name: String) -> StepPlan {
    let transaction = file
        .segments
        .iter()
        .all(|s| s.execution == Execution::Transaction);
    StepPlan::plain(name, StepAction::File(file.clone()), transaction)
}

/// The index of the rehearsed file `name` names: its name (`V5__a.sql`,
/// `release2/V5__a.sql`), its file name when only one has it, or its
/// version (`5`, a Sqitch change) when only one has it. An error otherwise.
pub(super) fn resolve(
    d: &mut Diags,
    rehearsed: Rehearsed,
    name: &str,
    span: Range<usize>,
    field: &str,
) -> Option<usize> {
    let files = match rehearsed {
        Rehearsed::Files(f) => f,
        Rehearsed::Unchecked => return None,
        Rehearsed::NoSection => {
            d.err(
                span,
                field,
                "names a migration, and the scenario has no [migrations] section; add one, or \
                 use file = \"path.sql\" for a file of its own",
            );
            return None;
        }
    };
    let name = name.trim();
    if let Some(i) = files.iter().position(|f| f.name == name) {
        return Some(i);
    }
    let keys: [fn(&MigrationFile) -> &str; 2] = [
        |f| f.name.rsplit('/').next().unwrap_or(&f.name),
        |f| &f.version,
    ];
    for key in keys {
        let hits: Vec<usize> = (0..files.len())
            .filter(|&i| key(&files[i]) == name)
            .collect();
        if let [only] = hits.as_slice() {
            return Some(*only);
        }
    }
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    d.err(
        span,
        field,
        format!(
            "no rehearsed migration is named `{name}`; rehearsed: {} (a migration before the \
             rehearsed ones is applied at setup: widen rehearse to rehearse it)",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    );
    None
}

/// Expand `"*"`, and check that every rehearsed file runs once, in the
/// tool's order. `phases_span` locates "no phase runs it".
pub(super) fn finish(
    d: &mut Diags,
    drafts: Vec<PhaseDraft>,
    rehearsed: Rehearsed,
    phases_span: Range<usize>,
) -> Vec<PhasePlan> {
    let files = match rehearsed {
        Rehearsed::Files(f) => f,
        _ => &[],
    };
    let mut placed: Vec<Option<Range<usize>>> = vec![None; files.len()];
    let mut rest_seen: Option<Range<usize>> = None;
    for e in drafts.iter().flat_map(|p| &p.entries) {
        match e {
            Entry::Step(_, Some(p)) => match &placed[p.index] {
                Some(first) => {
                    let line = d.line_of(first.clone());
                    d.err(
                        p.span.clone(),
                        &p.field,
                        format!(
                            "{} already runs on line {line}; a migration runs once",
                            files[p.index].name
                        ),
                    );
                }
                None => placed[p.index] = Some(p.span.clone()),
            },
            Entry::Rest { span, field } => {
                if let Some(first) = &rest_seen {
                    let line = d.line_of(first.clone());
                    d.err(
                        span.clone(),
                        field,
                        format!("\"*\" is already used on line {line}; one phase takes the rest"),
                    );
                }
                rest_seen.get_or_insert(span.clone());
            }
            Entry::Step(_, None) => {}
        }
    }
    let unplaced: Vec<usize> = (0..files.len()).filter(|&i| placed[i].is_none()).collect();
    if rest_seen.is_none() {
        for &i in &unplaced {
            d.err(
                phases_span.clone(),
                "phase",
                format!(
                    "{} is rehearsed, and no phase runs it: name it in a phase's migrations, or \
                     give one phase migrations = \"*\" (the rehearsed files no other phase runs)",
                    files[i].name
                ),
            );
        }
    }
    let mut last: Option<(usize, Range<usize>)> = None;
    let mut out = Vec::new();
    for draft in drafts {
        let mut steps = Vec::new();
        for e in draft.entries {
            let (new, at): (Vec<StepPlan>, Vec<Placed>) = match e {
                Entry::Step(s, p) => (vec![*s], p.into_iter().collect()),
                Entry::Rest { span, field } => (
                    unplaced
                        .iter()
                        .map(|&i| file_step(&files[i], files[i].name.clone()))
                        .collect(),
                    unplaced
                        .iter()
                        .map(|&index| Placed {
                            index,
                            span: span.clone(),
                            field: field.clone(),
                        })
                        .collect(),
                ),
            };
            for Placed {
                index: i,
                span,
                field,
            } in at
            {
                if let Some((prev, prev_span)) = &last {
                    if i < *prev {
                        let line = d.line_of(prev_span.clone());
                        d.err(
                            span.clone(),
                            field,
                            format!(
                                "{} runs after {} (line {line}), and the tool applies it before: \
                                 production applies migrations in the tool's order; place it \
                                 earlier",
                                files[i].name, files[*prev].name
                            ),
                        );
                    }
                }
                last = Some((i, span));
            }
            steps.extend(new);
        }
        out.push(PhasePlan {
            name: draft.name,
            apps: draft.apps,
            steps,
        });
    }
    out
}
