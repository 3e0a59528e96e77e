//! Prisma Migrate: `migrations/<timestamp>_<name>/migration.sql`, applied in
//! directory-name order, with `migration_lock.toml` naming the provider.
//! Prisma's schema engine sends a migration.sql as one simple query
//! (`simple_query(script)`), without BEGIN: PostgreSQL runs a
//! multi-statement query as one implicit transaction, so only a lone
//! statement runs outside a transaction block.

use std::path::Path;

use super::dir;
use super::error::{MigrationError, MigrationErrors, Setting};
use super::model::{Ignored, Layout, Location, MigrationFile, MigrationSet};
use super::script::{self, Reader, Source};
use super::segment::{self, Context};

pub const LOCK_FILE: &str = "migration_lock.toml";
pub const SCRIPT: &str = "migration.sql";

const FIX: &str = "put it alone in a migration of its own (prisma migrate dev --create-only, then \
                   edit its migration.sql)";

pub fn load(dir_path: &Path) -> Result<MigrationSet, MigrationErrors> {
    check_provider(dir_path)?;
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    let mut files = Vec::new();
    let cx = Context {
        tool: "Prisma",
        fix: FIX,
    };
    for e in dir::entries(dir_path)? {
        if !e.is_dir {
            if e.name.ends_with(".sql") {
                ignored.push(Ignored {
                    path: e.path,
                    reason: "Prisma only runs <migration>/migration.sql".into(),
                });
            }
            continue;
        }
        let path = e.path.join(SCRIPT);
        if !path.is_file() {
            errors.push(MigrationError::at(
                Location::file(&e.path),
                format!(
                    "the migration directory has no {SCRIPT}: Prisma Migrate fails to read it; \
                     add the file or remove the directory"
                ),
            ));
            continue;
        }
        let digits = e.name.bytes().take_while(u8::is_ascii_digit).count();
        let loaded = Source::read(&path).and_then(|src| {
            let reader = Reader::Server(Layout::Prisma);
            let statements = script::statements(&src, 0..src.text.len(), &reader)?;
            segment::one_query(
                statements,
                "Prisma Migrate sends migration.sql as one query",
                &cx,
            )
        });
        match loaded {
            Ok(segments) => files.push(MigrationFile::versioned(
                path,
                format!("{}/{SCRIPT}", e.name),
                if digits > 0 {
                    e.name[..digits].to_string()
                } else {
                    e.name.clone()
                },
                e.name[digits..].trim_start_matches('_').to_string(),
                segments,
            )),
            Err(err) => errors.push(err),
        }
    }
    MigrationSet::checked(Layout::Prisma, dir_path, files, ignored, errors)
}

/// migration_lock.toml, when present, must say postgresql.
fn check_provider(dir_path: &Path) -> Result<(), MigrationError> {
    let path = dir_path.join(LOCK_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(v) = line.trim().strip_prefix("provider") {
            let provider = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            if provider != "postgresql" && provider != "postgres" {
                return Err(MigrationError::at(
                    Location::new(&path, i + 1, 1),
                    format!(
                        "these migrations are for provider \"{provider}\", not PostgreSQL (check \
                         {} points at the right directory)",
                        Setting::Dir.field()
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_provider_and_a_directory_without_its_script_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "provider = \"mysql\"\n").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("migration_lock.toml:1:1: these migrations are for provider \"mysql\""),
            "{e}"
        );
        std::fs::write(dir.path().join(LOCK_FILE), "provider = \"postgresql\"\n").unwrap();
        std::fs::create_dir(dir.path().join("20240101000000_empty")).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("20240101000000_empty: the migration directory has no migration.sql"),
            "{e}"
        );
    }
}
