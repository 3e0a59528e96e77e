//! Listing a migrations directory: its entries sorted by name, a recursive
//! walk for Flyway, and the errors every layout shares (the directory is
//! missing, two files claim one version).

use std::path::{Path, PathBuf};

use super::error::{MigrationError, Setting};
use super::model::Location;

/// One directory entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file name; for [`walk`], the path relative to the walked
    /// directory with `/` separators.
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The directory must exist and be a directory.
pub fn require(dir: &Path) -> Result<(), MigrationError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(MigrationError::setting(
            Setting::Dir,
            format!("{} is a file, not a directory of migrations", dir.display()),
        )),
        Err(e) => Err(MigrationError::setting(
            Setting::Dir,
            format!(
                "the migrations directory {} cannot be read: {e} (dir is relative to the scenario \
                 file)",
                dir.display()
            ),
        )),
    }
}

/// The entries of `dir`, sorted by name (byte order). A `.sql` file or a
/// directory whose name is not UTF-8 is refused: the tools run it (psql and
/// Flyway take any name), and it cannot be ordered or named here; other
/// such names are skipped.
pub fn entries(dir: &Path) -> Result<Vec<Entry>, MigrationError> {
    let read = std::fs::read_dir(dir).map_err(|e| {
        MigrationError::setting(Setting::Dir, format!("cannot list {}: {e}", dir.display()))
    })?;
    let mut out = Vec::new();
    for entry in read.flatten() {
        let path = entry.path();
        // Follow symlinks, like the tools do.
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        let name = match entry.file_name().into_string() {
            Ok(name) => name,
            Err(raw) if is_dir || raw.to_string_lossy().ends_with(".sql") => {
                return Err(MigrationError::setting(
                    Setting::Dir,
                    format!(
                        "{} has a name that is not UTF-8: the migration tools would run it, but \
                         it cannot be ordered among the others or named in a report; rename it",
                        path.display()
                    ),
                ))
            }
            Err(_) => continue,
        };
        // Its name becomes a step's, one line of every report.
        if name.chars().any(char::is_control)
            && (is_dir || name.to_ascii_lowercase().ends_with(".sql"))
        {
            return Err(MigrationError::setting(
                Setting::Dir,
                format!(
                    "{:?} has a tab, a line break or another control character in its name: it \
                     would name a step of the reports, where a name is one line; rename it",
                    path.display().to_string()
                ),
            ));
        }
        out.push(Entry { name, path, is_dir });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The `.sql` files in `dir`'s subdirectories (hidden ones skipped), for
/// a tool that reads the directory's own files only (golang-migrate,
/// dbmate, goose, plain): said as not applied, never skipped in silence —
/// a pull request that adds one there adds a migration nobody runs.
pub fn nested_sql(dir: &Path, tool: &str) -> Result<Vec<super::Ignored>, MigrationError> {
    let mut out = Vec::new();
    for d in entries(dir)?
        .into_iter()
        .filter(|e| e.is_dir && !e.name.starts_with('.'))
    {
        for f in walk(&d.path)? {
            if !f.is_dir && f.name.to_ascii_lowercase().ends_with(".sql") {
                out.push(super::Ignored {
                    path: f.path,
                    reason: format!(
                        "in a subdirectory: {tool} runs the .sql files of the directory itself only"
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// Every file under `dir`, recursively (hidden directories skipped), sorted
/// by relative path.
pub fn walk(dir: &Path) -> Result<Vec<Entry>, MigrationError> {
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = pending.pop() {
        for e in entries(&d)? {
            let name = format!("{prefix}{}", e.name);
            if e.is_dir {
                if !e.name.starts_with('.') {
                    pending.push((e.path, format!("{name}/")));
                }
            } else {
                out.push(Entry { name, ..e });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Two files the tool cannot tell apart.
pub fn duplicate(first: &Path, second: &Path, what: &str, tool: &str) -> MigrationError {
    MigrationError::at(
        Location::file(second),
        format!(
            "{what} as {}: {tool} refuses two migrations with one {}",
            first.display(),
            if what.starts_with("repeatable") {
                "description; rename one of them"
            } else {
                "version; renumber one of them"
            }
        ),
    )
}
