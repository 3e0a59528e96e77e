//! Which tool a directory belongs to, from what is in it: sqitch.plan
//! (Sqitch), migration_lock.toml or `<name>/migration.sql` (Prisma),
//! `V1__x.sql` / `R__x.sql` (Flyway), `1_x.up.sql` (golang-migrate),
//! `<digits>...sql` with a `-- migrate:up` line (dbmate), `<version>_x.sql`
//! with a `-- +goose Up` line (goose); other `.sql` files
//! are plain. Signs of two tools at once are an error that says which.

use std::path::Path;

use super::dir;
use super::error::{MigrationError, Setting};
use super::model::Layout;
use super::{dbmate, flyway, golang_migrate, goose, prisma, sqitch};

/// The signs of each tool found in `dir`: (layout, the file that shows it).
fn evidence(dir_path: &Path) -> Result<Vec<(Layout, String)>, MigrationError> {
    let entries = dir::entries(dir_path)?;
    let mut found: Vec<(Layout, String)> = Vec::new();
    let note = |found: &mut Vec<(Layout, String)>, layout: Layout, name: &str| {
        if !found.iter().any(|(l, _)| *l == layout) {
            found.push((layout, name.to_string()));
        }
    };
    for e in &entries {
        if !e.is_dir && (e.name == sqitch::PLAN_FILE || e.name == "sqitch.conf") {
            note(&mut found, Layout::Sqitch, &e.name);
        }
        if !e.is_dir && e.name == prisma::LOCK_FILE {
            note(&mut found, Layout::Prisma, &e.name);
        }
        if e.is_dir && e.path.join(prisma::SCRIPT).is_file() {
            note(
                &mut found,
                Layout::Prisma,
                &format!("{}/{}", e.name, prisma::SCRIPT),
            );
        }
        if !e.is_dir && golang_migrate::is_migration_name(&e.name) {
            note(&mut found, Layout::GolangMigrate, &e.name);
        }
        let digits = e.name.bytes().take_while(u8::is_ascii_digit).count();
        if !e.is_dir
            && digits > 0
            && e.name.ends_with(".sql")
            && std::fs::read_to_string(&e.path).is_ok_and(|t| dbmate::has_up_directive(&t))
        {
            note(&mut found, Layout::Dbmate, &e.name);
        }
        if !e.is_dir
            && goose::is_migration_name(&e.name)
            && std::fs::read_to_string(&e.path).is_ok_and(|t| goose::has_up_annotation(&t))
        {
            note(&mut found, Layout::Goose, &e.name);
        }
    }
    // Flyway finds migrations in subdirectories too; a Sqitch project's
    // deploy/ scripts are not Flyway's.
    if !found.iter().any(|(l, _)| *l == Layout::Sqitch) {
        if let Some(e) = dir::walk(dir_path)?
            .into_iter()
            .find(|e| flyway::is_migration_name(e.name.rsplit('/').next().unwrap_or(&e.name)))
        {
            note(&mut found, Layout::Flyway, &e.name);
        }
    }
    Ok(found)
}

pub fn detect(dir_path: &Path) -> Result<Layout, MigrationError> {
    dir::require(dir_path)?;
    let found = evidence(dir_path)?;
    match found.as_slice() {
        [(layout, _)] => Ok(*layout),
        [] => {
            let any_sql = dir::entries(dir_path)?
                .iter()
                .any(|e| !e.is_dir && e.name.to_ascii_lowercase().ends_with(".sql"));
            if any_sql {
                Ok(Layout::Plain)
            } else {
                Err(MigrationError::setting(
                    Setting::Dir,
                    format!(
                        "no migrations in {}: no .sql files, sqitch.plan or Prisma migration \
                         directories",
                        dir_path.display()
                    ),
                ))
            }
        }
        several => {
            let list: Vec<String> = several.iter().map(|(l, f)| format!("{l} ({f})")).collect();
            Err(MigrationError::setting(
                Setting::Layout,
                format!(
                    "{} holds migrations of more than one tool: {}; set layout to the one that \
                     applies them ({})",
                    dir_path.display(),
                    list.join(", "),
                    Layout::names()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_directory_has_no_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("README.md"), "notes").unwrap();
        let e = detect(dir.path()).unwrap_err();
        assert_eq!(e.at, super::super::error::At::Setting(Setting::Dir));
        assert!(e.message.starts_with("no migrations in "), "{e}");
        std::fs::write(dir.path().join("schema.sql"), "SELECT 1;").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Layout::Plain);
        std::fs::write(
            dir.path().join("1_x.sql"),
            "-- migrate:up\n-- migrate:down\n",
        )
        .unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Layout::Dbmate);
    }
}
