//! Sqitch: `sqitch.plan` says the order, `deploy/<change>.sql` holds each
//! change (`deploy/<change>@<tag>.sql` for an instance reworked later).
//! Sqitch deploys a script with `psql --file` and ON_ERROR_STOP: statements
//! run one by one in autocommit, except inside the script's own
//! `BEGIN ... COMMIT` (most scripts have one).

use std::path::{Path, PathBuf};

use super::error::{MigrationError, MigrationErrors};
use super::model::{Ignored, Kind, Layout, Location, MigrationFile, MigrationSet};
use super::script::{self, Reader, Source};
use super::segment::{self, Context};
use super::sqitch_plan::{self, Change, Plan};

pub const PLAN_FILE: &str = "sqitch.plan";

const AUTOCOMMIT: &str = "Sqitch runs the script with psql: a statement outside the script's own \
                          BEGIN ... COMMIT runs on its own (autocommit)";

/// The plan file and the directory holding deploy/: sqitch.conf's
/// `top_dir` / `plan_file` (`[engine "pg"]` over `[core]`), else `dir`.
pub fn project_paths(dir: &Path) -> (PathBuf, PathBuf) {
    let mut top = None;
    let mut plan = None;
    if let Ok(conf) = std::fs::read_to_string(dir.join("sqitch.conf")) {
        let mut section = String::new();
        for line in conf.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            let engine = section == "[engine \"pg\"]";
            if section == "[core]" || engine {
                match k.trim() {
                    "top_dir" if engine || top.is_none() => top = Some(dir.join(v)),
                    "plan_file" if engine || plan.is_none() => plan = Some(dir.join(v)),
                    _ => {}
                }
            }
        }
    }
    let top = top.unwrap_or_else(|| dir.to_path_buf());
    let plan = plan.unwrap_or_else(|| top.join(PLAN_FILE));
    (top, plan)
}

/// Parse the plan of the project in `dir`.
pub fn read_plan(dir: &Path) -> Result<(PathBuf, Plan), MigrationError> {
    let (top, plan_path) = project_paths(dir);
    if !plan_path.is_file() {
        return Err(MigrationError::at(
            Location::file(&plan_path),
            format!(
                "not found: every Sqitch project has a {PLAN_FILE}; if {} is not a Sqitch \
                 project, fix `layout = \"sqitch\"` or leave `layout` out to detect the tool",
                dir.display()
            ),
        ));
    }
    let src = Source::read(&plan_path)?;
    Ok((top, sqitch_plan::parse(&plan_path, &src.text)?))
}

/// The deploy script of `change` (Sqitch's path_segments).
fn deploy_script(top: &Path, change: &Change) -> PathBuf {
    let deploy = top.join("deploy");
    if change.rework_tags.is_empty() {
        return deploy.join(format!("{}.sql", change.name));
    }
    let candidates: Vec<PathBuf> = change
        .rework_tags
        .iter()
        .map(|t| deploy.join(format!("{}@{t}.sql", change.name)))
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or(&candidates[0])
        .clone()
}

pub fn load(dir: &Path) -> Result<MigrationSet, MigrationErrors> {
    let (top, plan) = read_plan(dir)?;
    let (_, plan_path) = project_paths(dir);
    let mut errors = Vec::new();
    let mut files = Vec::new();
    // Sqitch runs psql from the project's directory (where sqitch.conf
    // is), not its top_dir: `\i` paths are relative to it.
    let reader = Reader::Psql {
        include_base: dir.to_path_buf(),
    };
    let cx = Context {
        tool: "psql",
        fix: "move it after the COMMIT",
    };
    for change in &plan.changes {
        let path = deploy_script(&top, change);
        if !path.is_file() {
            errors.push(MigrationError::at(
                Location::new(&plan_path, change.line, 1),
                format!(
                    "change \"{}\" has no deploy script: {} does not exist",
                    change.name,
                    path.display()
                ),
            ));
            continue;
        }
        let loaded = Source::read(&path).and_then(|src| {
            let statements = script::statements(&src, 0..src.text.len(), &reader)?;
            segment::psql_style(statements, AUTOCOMMIT, &cx)
        });
        let (segments, notes) = match loaded {
            Ok(x) => x,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let version = match change.rework_tags.first() {
            Some(tag) => format!("{}@{tag}", change.name),
            None => change.name.clone(),
        };
        files.push(MigrationFile {
            name: relative(dir, &path),
            path,
            version,
            description: change.note.clone(),
            kind: Kind::Versioned,
            segments,
            notes,
            shares_session: false,
        });
    }
    let ignored = unplanned_scripts(&top, &files);
    MigrationSet::checked(Layout::Sqitch, dir, files, ignored, errors)
}

/// `dir`-relative, `/`-separated.
fn relative(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Deploy scripts no plan entry points at: Sqitch never runs them.
fn unplanned_scripts(top: &Path, files: &[MigrationFile]) -> Vec<Ignored> {
    let Ok(all) = super::dir::walk(&top.join("deploy")) else {
        return Vec::new();
    };
    all.into_iter()
        .filter(|e| e.name.ends_with(".sql") && !files.iter().any(|f| f.path == e.path))
        .map(|e| Ignored {
            path: e.path,
            reason: "not in sqitch.plan: Sqitch never deploys it".into(),
        })
        .collect()
}
