//! What git says changed in a migrations directory since a revision: the
//! files added (and, for Flyway repeatables, modified) between that revision
//! and the working tree, untracked files included (a migration written but
//! not yet committed is part of the change being rehearsed).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::error::{MigrationError, Setting};

/// Paths relative to the migrations directory, `/`-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitChanges {
    pub rev: String,
    /// Added since `rev` (renames count as added: `--no-renames`), plus
    /// untracked files that are not ignored.
    pub added: BTreeSet<String>,
    pub modified: BTreeSet<String>,
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, MigrationError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| MigrationError::setting(Setting::SinceGit, format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(MigrationError::setting(
            Setting::SinceGit,
            format!(
                "git {} failed in {}: {}",
                args.join(" "),
                dir.display(),
                stderr.trim()
            ),
        ));
    }
    Ok(out.stdout)
}

/// The revision must name a commit here. A shallow CI checkout often lacks
/// the base branch: say how to get it.
fn verify(dir: &Path, rev: &str) -> Result<(), MigrationError> {
    if git(dir, &["rev-parse", "--show-toplevel"]).is_err() {
        return Err(MigrationError::setting(
            Setting::SinceGit,
            format!("{} is not inside a git repository", dir.display()),
        ));
    }
    let spec = format!("{rev}^{{commit}}");
    git(dir, &["rev-parse", "--verify", "--quiet", &spec]).map_err(|_| {
        MigrationError::setting(
            Setting::SinceGit,
            format!(
                "\"{rev}\" is not a commit of the repository of {} (a shallow clone? fetch it: \
                 git fetch origin <branch>, or check out with fetch-depth: 0)",
                dir.display()
            ),
        )
    })?;
    Ok(())
}

fn nul_separated(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub fn changes_since(dir: &Path, rev: &str) -> Result<GitChanges, MigrationError> {
    verify(dir, rev)?;
    let status = git(
        dir,
        &[
            "diff",
            "--name-status",
            "--no-renames",
            "--relative",
            "-z",
            rev,
            "--",
            ".",
        ],
    )?;
    let mut changes = GitChanges {
        rev: rev.to_string(),
        ..GitChanges::default()
    };
    let fields = nul_separated(&status);
    for pair in fields.chunks(2) {
        if let [status, path] = pair {
            match status.as_str() {
                "A" => changes.added.insert(path.clone()),
                "M" | "T" => changes.modified.insert(path.clone()),
                _ => false,
            };
        }
    }
    let untracked = git(
        dir,
        &[
            "ls-files",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
            ".",
        ],
    )?;
    changes.added.extend(nul_separated(&untracked));
    Ok(changes)
}

/// The content of `relative` (to `dir`) at `rev`; `None` when it did not
/// exist then.
pub fn file_at(dir: &Path, rev: &str, relative: &str) -> Result<Option<String>, MigrationError> {
    verify(dir, rev)?;
    let object = format!("{rev}:./{relative}");
    if git(dir, &["cat-file", "-e", &object]).is_err() {
        return Ok(None);
    }
    let bytes = git(dir, &["show", &object])?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
