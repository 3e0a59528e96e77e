//! Template databases: seed once, rehearse many.
//!
//! A seeded database becomes a *template* named after a [`TemplateKey`], a
//! hash of everything that decides its contents: the tables (name, create
//! SQL, rows, every generator), after_seed, seed_sql, the data seed, the
//! server's `server_version_num` and the seeding code's format version
//! ([`SEED_FORMAT`]). Whatever else comes to decide the data must go into
//! [`KeyParts`] too (the setup migrations that run before seeding add their
//! files' digests with [`KeyParts::push`]).
//!
//! A template is complete only once its database carries the marker
//! `COMMENT ON DATABASE <name> IS 'pgrehearse template <key>'`, set after
//! seeding finished; a database with the template's name but without that
//! exact comment (an interrupted seed, a stale or tampered one) is never
//! cloned: it is dropped and seeded again.
//!
//! Rehearsals clone it with `CREATE DATABASE ... TEMPLATE ...`:
//! `STRATEGY FILE_COPY` on PostgreSQL 15+ (a file-level copy, fast for big
//! databases; 15 made WAL_LOG, which copies block by block through shared
//! buffers and WAL-logs every block, the default), the only strategy before.
//! The rehearsal-side API (a server, `ensure_template`, `clone_into`) is in
//! `rehearsal/provision.rs`.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{db_error, SEED_APP_NAME};
use crate::backend::ConnInfo;
use crate::error::{Error, Result};
use crate::pg::quote_ident;
use crate::scenario::Scenario;

/// Bumped whenever the seeding code would write other data for the same
/// scenario and seed (a generator's algorithm, the encoding of a type):
/// templates made by an older format are never cloned.
pub const SEED_FORMAT: u32 = 1;

/// Prefix of template databases (`pgrehearse_tpl_<key16>`).
pub const TEMPLATE_PREFIX: &str = "pgrehearse_tpl_";

/// What a template's data depends on, as named parts; hashed into a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyParts {
    parts: Vec<(String, String)>,
}

impl KeyParts {
    /// The parts of `s` seeded with `seed` on a server of `server_version_num`.
    pub fn of(s: &Scenario, seed: u64, server_version_num: u32) -> KeyParts {
        let mut k = KeyParts { parts: Vec::new() };
        k.push("format", &SEED_FORMAT.to_string());
        k.push("server_version_num", &server_version_num.to_string());
        k.push("seed", &seed.to_string());
        for t in &s.tables {
            // The plan's Debug form holds every field, generators included,
            // so a field added later is part of the key without a change here.
            k.push(&format!("table {}", t.name), &format!("{t:?}"));
        }
        for (i, sql) in s.seed_sql.iter().enumerate() {
            k.push(&format!("seed_sql[{i}]"), sql);
        }
        // The schema the setup migrations build is part of the data (such
        // scenarios are seeded in place for now, but a key must not say
        // otherwise).
        if let Some(m) = &s.migrations {
            k.push("setup", &m.setup_digest());
        }
        k
    }

    /// Add a part (e.g. `("setup V1__init.sql", <sha256 of the file>)`).
    pub fn push(&mut self, name: &str, value: &str) {
        self.parts.push((name.to_string(), value.to_string()));
    }

    /// sha256 over every part, length-prefixed so no two lists collide.
    pub fn key(&self) -> TemplateKey {
        let mut h = Sha256::new();
        for (name, value) in &self.parts {
            for s in [name, value] {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
        TemplateKey(hex::encode(h.finalize()))
    }
}

/// A template's identity: the hex sha256 of its [`KeyParts`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateKey(String);

impl TemplateKey {
    /// The key of `s`'s data (see [`KeyParts::of`]).
    pub fn of(s: &Scenario, seed: u64, server_version_num: u32) -> TemplateKey {
        KeyParts::of(s, seed, server_version_num).key()
    }

    /// A key read back (a manifest, a marker); None unless 64 hex digits.
    pub fn parse(s: &str) -> Option<TemplateKey> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| TemplateKey(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 16 hex digits: database names and messages.
    pub fn short(&self) -> &str {
        &self.0[..16]
    }

    /// The database name of this template on a server we own:
    /// `pgrehearse_tpl_<key16>`.
    pub fn database(&self) -> String {
        format!("{TEMPLATE_PREFIX}{}", self.short())
    }

    /// The marker a complete template carries as its database comment.
    pub fn marker(&self) -> String {
        format!("pgrehearse template {}", self.0)
    }
}

impl std::fmt::Display for TemplateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How CREATE DATABASE copies a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneStrategy {
    /// STRATEGY FILE_COPY (15+): copy the files, two checkpoints around it.
    FileCopy,
    /// STRATEGY WAL_LOG (15+): block by block through shared buffers, each
    /// block WAL-logged.
    WalLog,
    /// No STRATEGY clause (before 15 there is only the file copy).
    ServerDefault,
}

impl CloneStrategy {
    /// FILE_COPY where the server can be told, else its only strategy.
    pub fn for_server(server_version_num: u32) -> CloneStrategy {
        if server_version_num >= 150_000 {
            CloneStrategy::FileCopy
        } else {
            CloneStrategy::ServerDefault
        }
    }

    fn clause(self) -> &'static str {
        match self {
            CloneStrategy::FileCopy => " STRATEGY FILE_COPY",
            CloneStrategy::WalLog => " STRATEGY WAL_LOG",
            CloneStrategy::ServerDefault => "",
        }
    }
}

/// Make `to` a copy of `from` (CREATE DATABASE ... TEMPLATE) with the
/// server's default strategy, after ending every session connected to
/// `from` (a template must have none).
pub async fn clone_database(conn: &ConnInfo, from: &str, to: &str) -> Result<()> {
    clone_database_with(conn, from, to, CloneStrategy::ServerDefault).await
}

/// [`clone_database`] with a strategy.
pub async fn clone_database_with(
    conn: &ConnInfo,
    from: &str,
    to: &str,
    strategy: CloneStrategy,
) -> Result<()> {
    let admin = admin_client(conn, &[from, to]).await?;
    let create = format!(
        "CREATE DATABASE {} TEMPLATE {}{}",
        quote_ident(to),
        quote_ident(from),
        strategy.clause()
    );
    // Terminated backends take a moment to exit: retry "being accessed".
    for attempt in 0.. {
        // Only the sessions our role may end (all, for a superuser): one of
        // another role cannot get in (its CONNECT is revoked) unless it is a
        // superuser's, and trying to end that would fail the whole clone.
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() \
                   AND pg_has_role(current_user, usesysid, 'MEMBER')",
                &[&from],
            )
            .await
            .map_err(|e| db_error(e, "ending sessions on the template"))?;
        match admin.batch_execute(&create).await {
            Ok(()) => {
                crate::backend::scratch_db::keep_others_out(&admin, to)
                    .await
                    .map_err(|e| Error::rehearsal(format!("seeding: {e}")))?;
                // The settings of the database the clone stands in for (the
                // url backend's scratch database has the URL's).
                match crate::backend::db_settings::copy(&admin, &conn.dbname, to).await {
                    Ok(not_copied) => {
                        for w in not_copied {
                            tracing::warn!("{}", w.text);
                        }
                    }
                    Err(e) => tracing::warn!(
                        "the settings of {} could not be read for the clone {to}: {}",
                        conn.dbname,
                        crate::pg::error_text(&e)
                    ),
                }
                return Ok(());
            }
            Err(e) if attempt < 100 && e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(db_error(e, &format!("cloning {from} into {to}"))),
        }
    }
    unreachable!("the loop returns")
}

/// Create an empty database `name` (from the server's default template,
/// like the url backend's scratch database).
pub async fn create_database(conn: &ConnInfo, name: &str) -> Result<()> {
    let admin = admin_client(conn, &[name]).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
        .await
        .map_err(|e| db_error(e, &format!("creating database {name}")))?;
    crate::backend::scratch_db::keep_others_out(&admin, name)
        .await
        .map_err(|e| Error::rehearsal(format!("seeding: {e}")))
}

/// Drop `name` (ending its sessions first); no error when it does not
/// exist. Sessions our role may not end make it retry for a few seconds,
/// then fail naming them (see `backend::scratch_db`).
pub async fn drop_database(conn: &ConnInfo, name: &str) -> Result<()> {
    let admin = admin_client(conn, &[name]).await?;
    crate::backend::scratch_db::drop_database(&admin, name)
        .await
        .map_err(|e| Error::Other(anyhow::anyhow!(e)))
}

/// Mark `name` a complete template of `key` (see the module docs).
pub async fn mark_complete(conn: &ConnInfo, name: &str, key: &TemplateKey) -> Result<()> {
    let admin = admin_client(conn, &[name]).await?;
    let sql = format!(
        "COMMENT ON DATABASE {} IS '{}'",
        quote_ident(name),
        key.marker()
    );
    admin
        .batch_execute(&sql)
        .await
        .map_err(|e| db_error(e, &format!("marking template {name} complete")))
}

/// A database on the server and what it says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseFacts {
    pub name: String,
    /// Its COMMENT (a template's marker), if any.
    pub comment: Option<String>,
    /// None when we may not connect to it (someone else's, on a shared server).
    pub size_bytes: Option<i64>,
}

/// Every database whose name starts with `prefix`, with its comment and size.
pub async fn databases_like(conn: &ConnInfo, prefix: &str) -> Result<Vec<DatabaseFacts>> {
    let admin = admin_client(conn, &[]).await?;
    let rows = admin
        .query(
            "SELECT datname::text, shobj_description(oid, 'pg_database'), \
                    CASE WHEN has_database_privilege(oid, 'CONNECT') \
                         THEN pg_database_size(oid) END \
             FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
            &[&prefix],
        )
        .await
        .map_err(|e| db_error(e, "listing databases"))?;
    Ok(rows
        .iter()
        .map(|r| DatabaseFacts {
            name: r.get(0),
            comment: r.get(1),
            size_bytes: r.get(2),
        })
        .collect())
}

/// Is `name` a complete template of `key` (its marker in place)?
pub async fn is_complete(conn: &ConnInfo, name: &str, key: &TemplateKey) -> Result<bool> {
    let facts = databases_like(conn, name).await?;
    Ok(facts
        .iter()
        .any(|f| f.name == name && f.comment.as_deref() == Some(key.marker().as_str())))
}

/// A session in a database other than `avoid`: the work database, else
/// `postgres`, else `template1`.
async fn admin_client(conn: &ConnInfo, avoid: &[&str]) -> Result<Client> {
    let mut last = None;
    for db in [conn.dbname.as_str(), "postgres", "template1"] {
        if avoid.contains(&db) {
            continue;
        }
        match conn.session_on(db, SEED_APP_NAME).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::NoPostgres("no database to connect to".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ColumnPlan, Gen, TablePlan};

    fn plan(rows: u64, start: i64) -> Scenario {
        Scenario::seed_only(
            "k",
            vec![TablePlan {
                name: "t".into(),
                rows,
                create: Some("CREATE TABLE t (id int)".into()),
                after_seed: vec![],
                columns: vec![ColumnPlan::new("id", Gen::Sequence { start })],
            }],
        )
    }

    #[test]
    fn the_key_follows_everything_that_decides_the_data() {
        let base = TemplateKey::of(&plan(10, 1), 1, 150_000);
        assert_eq!(base, TemplateKey::of(&plan(10, 1), 1, 150_000));
        assert_ne!(base, TemplateKey::of(&plan(11, 1), 1, 150_000), "rows");
        assert_ne!(base, TemplateKey::of(&plan(10, 2), 1, 150_000), "generator");
        assert_ne!(base, TemplateKey::of(&plan(10, 1), 2, 150_000), "seed");
        assert_ne!(base, TemplateKey::of(&plan(10, 1), 1, 170_000), "server");
        let mut sql = plan(10, 1);
        sql.seed_sql.push("UPDATE t SET id = id".into());
        assert_ne!(base, TemplateKey::of(&sql, 1, 150_000), "seed_sql");
        let mut setup = KeyParts::of(&plan(10, 1), 1, 150_000);
        setup.push("setup V1__init.sql", "abc");
        assert_ne!(base, setup.key(), "an added part");
        // Other names and workloads share the data.
        let mut renamed = plan(10, 1);
        renamed.name = "other".into();
        assert_eq!(base, TemplateKey::of(&renamed, 1, 150_000));
    }

    #[test]
    fn keys_name_databases_and_markers() {
        let k = TemplateKey::of(&plan(10, 1), 1, 150_000);
        assert_eq!(k.as_str().len(), 64);
        assert_eq!(TemplateKey::parse(k.as_str()), Some(k.clone()));
        assert_eq!(TemplateKey::parse("xyz"), None);
        assert!(k.database().starts_with("pgrehearse_tpl_") && k.database().len() < 63);
        assert!(k.marker().ends_with(k.as_str()));
    }
}
