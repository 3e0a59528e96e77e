//! What git says changed in a migrations directory since a revision: the
//! files added, modified and deleted between that revision and the working
//! tree, untracked files included (a migration written but not yet
//! committed is part of the change being rehearsed). A file whose SQL is
//! the same but for its line endings or a leading BOM is not modified.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use super::error::{MigrationError, Setting};

/// Paths relative to the migrations directory, `/`-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitChanges {
    pub rev: String,
    /// Added since `rev` (a rename's new name counts as added:
    /// `--no-renames`), plus untracked files that are not ignored.
    pub added: BTreeSet<String>,
    /// Changed since `rev`, in more than line endings or a leading BOM.
    pub modified: BTreeSet<String>,
    /// Gone since `rev` (a rename's old name counts as deleted), and the
    /// ones in `merged_after_fork`.
    pub deleted: BTreeSet<String>,
    /// Added on `rev` after this branch forked from it, which the branch
    /// does not have: production has them, a rebase would bring them.
    pub merged_after_fork: BTreeSet<String>,
}

/// `text` as every tool reads its SQL: without a leading UTF-8 BOM, lines
/// ending in `\n` (not `\r\n` or `\r`). Flyway's checksum is computed
/// line by line the same way, so two files equal after this have the same
/// checksum.
pub fn normalized(text: &[u8]) -> Vec<u8> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\r' => {
                out.push(b'\n');
                if text.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
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
    // What this branch changed: against where it forked from `rev`, not
    // `rev`'s tip, which may have moved on since (a push build, a local run
    // on a branch behind main). Without a common history at hand (a
    // shallow clone), against `rev` itself.
    let base = fork_point(dir, rev).unwrap_or_else(|| rev.to_string());
    let mut changes = GitChanges {
        rev: rev.to_string(),
        ..GitChanges::default()
    };
    for (status, path) in name_status(dir, &[&base])? {
        match status.as_str() {
            "A" => changes.added.insert(path),
            "M" | "T" if !same_sql_as_at(dir, &base, &path)? => changes.modified.insert(path),
            "D" => changes.deleted.insert(path),
            _ => false,
        };
    }
    // Merged into `rev` after the fork: missing here, present in
    // production; set up as `rev` has them, like a file deleted.
    if base != rev {
        for (status, path) in name_status(dir, &[&base, rev])? {
            // The branch added a file of that name too: the same one (it
            // merged the revision in) is no news; another is a collision.
            let ours = changes.added.contains(&path);
            if status == "A" && (!ours || !same_sql_as_at(dir, rev, &path)?) {
                changes.deleted.insert(path.clone());
                changes.merged_after_fork.insert(path);
            }
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

/// `git diff --name-status` of the directory against `revs` (one: the
/// working tree against it; two: between them), as (status, path relative
/// to `dir`).
fn name_status(dir: &Path, revs: &[&str]) -> Result<Vec<(String, String)>, MigrationError> {
    let mut args = vec!["diff", "--name-status", "--no-renames", "--relative", "-z"];
    args.extend_from_slice(revs);
    args.extend_from_slice(&["--", "."]);
    let out = git(dir, &args)?;
    Ok(nul_separated(&out)
        .chunks(2)
        .filter_map(|pair| match pair {
            [status, path] => Some((status.clone(), path.clone())),
            _ => None,
        })
        .collect())
}

/// Where HEAD forked from `rev` (`git merge-base`), when git can tell.
fn fork_point(dir: &Path, rev: &str) -> Option<String> {
    let out = git(dir, &["merge-base", rev, "HEAD"]).ok()?;
    let sha = String::from_utf8_lossy(&out).trim().to_string();
    (!sha.is_empty()).then_some(sha)
}

/// Whether `relative` (to `dir`), changed since `rev` by git's account,
/// holds the same SQL as then: only its line endings or a leading BOM
/// changed.
fn same_sql_as_at(dir: &Path, rev: &str, relative: &str) -> Result<bool, MigrationError> {
    let Ok(now) = std::fs::read(dir.join(relative)) else {
        return Ok(false);
    };
    let then = git(dir, &["show", &format!("{rev}:./{relative}")])?;
    Ok(normalized(&now) == normalized(&then))
}

/// The migrations directory `dir` as it was at `rev`, written out into a
/// temporary directory (`git archive` of its tree); `None` when it did not
/// exist then.
pub fn tree_at(dir: &Path, rev: &str) -> Result<Option<tempfile::TempDir>, MigrationError> {
    verify(dir, rev)?;
    let spec = format!("{rev}:./");
    let Ok(tree) = git(dir, &["rev-parse", "--verify", "--quiet", &spec]) else {
        return Ok(None);
    };
    let tree = String::from_utf8_lossy(&tree).trim().to_string();
    // `git archive` run in a subdirectory archives only what is under it:
    // run it at the top, on the tree's id.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let top = String::from_utf8_lossy(&top).trim().to_string();
    let tar = git(Path::new(&top), &["archive", "--format=tar", &tree])?;
    let failed = |e: String| {
        MigrationError::setting(
            Setting::SinceGit,
            format!("cannot write out {} as it was at {rev}: {e}", dir.display()),
        )
    };
    let out = tempfile::Builder::new()
        .prefix("pgrehearse-at-rev-")
        .tempdir()
        .map_err(|e| failed(e.to_string()))?;
    let mut child = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run tar: {e}")))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(&tar).map_err(|e| failed(e.to_string()))?;
    }
    let done = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !done.status.success() {
        return Err(failed(format!(
            "tar: {}",
            String::from_utf8_lossy(&done.stderr).trim()
        )));
    }
    Ok(Some(out))
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

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn line_endings_and_a_bom_are_not_the_sql() {
        let lf = normalized(b"ALTER TABLE t ADD a int;\nSELECT 1;\n");
        assert_eq!(normalized(b"ALTER TABLE t ADD a int;\r\nSELECT 1;\r\n"), lf);
        assert_eq!(
            normalized(b"\xEF\xBB\xBFALTER TABLE t ADD a int;\rSELECT 1;\n"),
            lf
        );
        assert_ne!(normalized(b"ALTER TABLE t ADD a bigint;\nSELECT 1;\n"), lf);
    }
}
