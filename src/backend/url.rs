//! An existing server by URL; works only in a scratch database it creates.
//!
//! The server is not ours: the only things this backend creates or drops are
//! one database named `pgrehearse_<UTC timestamp>_<random>`, created at
//! start and dropped (`WITH (FORCE)` on 13+) at teardown — or, if teardown
//! never ran, from `Drop` on a separate thread with its own runtime.
//! The URL's password (or PGPASSWORD) never appears in a message.

use std::time::Duration;

use super::{BackendOptions, ConnInfo, ServerLog};
use crate::error::{Error, Result};
use crate::pg::quote_ident;

/// Prefix of the scratch databases (tests look for leftovers by it).
pub const SCRATCH_PREFIX: &str = "pgrehearse_";
const DROP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct UrlServer {
    conn: ConnInfo,
    /// The database named in the URL (or `postgres`): where CREATE/DROP DATABASE run.
    admin_db: String,
    version: String,
    version_num: u32,
    dropped: bool,
}

impl UrlServer {
    pub async fn start(opts: &BackendOptions) -> Result<UrlServer> {
        let raw = opts.database_url.as_deref().ok_or_else(|| {
            Error::Usage("--backend url needs --database-url postgres://...".into())
        })?;
        let (server, admin_db) = parse_database_url(raw)?;
        let redacted = server.redacted_at(&admin_db);

        let admin = server
            .connect_to(&admin_db, "pgrehearse/harness")
            .await
            .map_err(|e| {
                Error::NoPostgres(scrub(
                    &format!(
                        "cannot connect to {redacted}: {}",
                        crate::pg::error_text(&e)
                    ),
                    server.password.as_deref(),
                ))
            })?;
        let row = admin
            .query_one(
                "SELECT current_setting('server_version'), \
                 current_setting('server_version_num')::int",
                &[],
            )
            .await?;
        let version: String = row.get(0);
        let version_num = row.get::<_, i32>(1) as u32;

        let name = scratch_name();
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .map_err(|e| {
                Error::NoPostgres(scrub(
                    &format!(
                        "cannot create the scratch database {name} on {redacted} \
                         (the role needs CREATEDB): {}",
                        crate::pg::error_text(&e)
                    ),
                    server.password.as_deref(),
                ))
            })?;
        Ok(UrlServer {
            conn: ConnInfo {
                dbname: name,
                ..server
            },
            admin_db,
            version: version
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            version_num,
            dropped: false,
        })
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    pub fn server_log(&self) -> Option<ServerLog> {
        None
    }

    pub fn server_version_num(&self) -> u32 {
        self.version_num
    }

    pub fn describe(&self) -> String {
        format!(
            "url PostgreSQL {} at {} (scratch database {})",
            self.version,
            self.conn.redacted_at(&self.admin_db),
            self.conn.dbname
        )
    }

    pub async fn teardown(mut self) -> Result<()> {
        self.dropped = true;
        drop_scratch(&self.conn, &self.admin_db, self.version_num).await
    }
}

impl Drop for UrlServer {
    /// Safety net after a panic or an early return: drop the scratch database
    /// from a separate thread with its own runtime, because we may be inside
    /// (or outside) a tokio runtime here and cannot await.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let conn = self.conn.clone();
        let admin_db = self.admin_db.clone();
        let version_num = self.version_num;
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                match tokio::time::timeout(
                    DROP_TIMEOUT,
                    drop_scratch(&conn, &admin_db, version_num),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(Error::NoPostgres("timed out".into())),
                }
            })
        });
        if let Ok(Err(e)) = worker.join() {
            eprintln!(
                "warning: could not drop the scratch database {}: {e}",
                self.conn.dbname
            );
        }
    }
}

async fn drop_scratch(conn: &ConnInfo, admin_db: &str, version_num: u32) -> Result<()> {
    let admin = conn
        .connect_to(admin_db, "pgrehearse/harness")
        .await
        .map_err(|e| {
            Error::NoPostgres(scrub(
                &format!(
                    "cannot connect to {} to drop the scratch database {}: {}",
                    conn.redacted_at(admin_db),
                    conn.dbname,
                    crate::pg::error_text(&e)
                ),
                conn.password.as_deref(),
            ))
        })?;
    let name = quote_ident(&conn.dbname);
    if version_num >= 130000 {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
    } else {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&conn.dbname],
            )
            .await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
    }
    Ok(())
}

/// `pgrehearse_20261122T020455_k3x9qa`: sortable, unique, a valid identifier.
fn scratch_name() -> String {
    use rand::distributions::{Distribution, Uniform};
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let pick = Uniform::from(0..ALPHABET.len());
    let suffix: String = (0..6)
        .map(|_| ALPHABET[pick.sample(&mut rng)] as char)
        .collect();
    format!(
        "{SCRATCH_PREFIX}{}_{suffix}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    )
}

/// Parse a `postgres://` URL or a `key=value` conninfo into the server to
/// reach and the database named in it (`postgres` if none). The password
/// comes from the URL, else PGPASSWORD. Errors never echo the input.
pub fn parse_database_url(raw: &str) -> Result<(ConnInfo, String)> {
    let cfg: tokio_postgres::Config = raw.parse().map_err(|e: tokio_postgres::Error| {
        Error::NoPostgres(format!(
            "cannot parse --database-url {}: {}",
            redact_url(raw),
            scrub(&e.to_string(), None)
        ))
    })?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => std::env::var("PGHOST").unwrap_or_else(|_| "localhost".into()),
    };
    let port = cfg.get_ports().first().copied().unwrap_or_else(|| {
        std::env::var("PGPORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(5432)
    });
    let user = cfg
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("PGUSER").ok())
        .unwrap_or_else(|| "postgres".into());
    let password = match cfg.get_password() {
        Some(p) => Some(String::from_utf8(p.to_vec()).map_err(|_| {
            Error::NoPostgres("the password in --database-url is not valid UTF-8".into())
        })?),
        None => std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()),
    };
    let admin_db = cfg.get_dbname().unwrap_or("postgres").to_string();
    Ok((
        ConnInfo {
            host,
            port,
            user,
            password,
            dbname: admin_db.clone(),
        },
        admin_db,
    ))
}

/// The URL or conninfo with any password replaced by `***`, safe to print.
pub fn redact_url(raw: &str) -> String {
    let raw = raw.trim();
    let mut out = if let Some(scheme_end) = raw.find("://") {
        let after = &raw[scheme_end + 3..];
        let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..auth_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                let pw = if userinfo.contains(':') { ":***" } else { "" };
                format!(
                    "{}{user}{pw}{}{}",
                    &raw[..scheme_end + 3],
                    &authority[at..],
                    &after[auth_end..]
                )
            }
            None => raw.to_string(),
        }
    } else {
        raw.to_string()
    };
    // `password=...` in a query string or a key=value conninfo.
    let re = regex::Regex::new(r#"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)"#)
        .expect("static regex");
    out = re.replace_all(&out, "${1}***").into_owned();
    out
}

/// Remove a known password (and PGPASSWORD) from a message.
fn scrub(msg: &str, password: Option<&str>) -> String {
    let mut out = msg.to_string();
    let env_pw = std::env::var("PGPASSWORD").ok();
    for pw in [password, env_pw.as_deref()].into_iter().flatten() {
        if pw.len() >= 2 {
            out = out.replace(pw, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls_and_conninfo() {
        assert_eq!(
            redact_url("postgres://bob:s3cr%40t@db.example:5433/app?sslmode=disable"),
            "postgres://bob:***@db.example:5433/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://bob@db/app?password=hunter2&x=1"),
            "postgresql://bob@db/app?password=***&x=1"
        );
        assert_eq!(
            redact_url("host=db user=bob password='a b\\'c' dbname=app"),
            "host=db user=bob password=*** dbname=app"
        );
        assert_eq!(redact_url("postgres://db/app"), "postgres://db/app");
    }

    #[test]
    fn parses_url_and_conninfo() {
        let (c, db) = parse_database_url("postgres://bob:pw@127.0.0.1:6543/app").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str(), db.as_str()),
            ("127.0.0.1", 6543, "bob", "app")
        );
        assert_eq!(c.password.as_deref(), Some("pw"));
        let (c, db) = parse_database_url("host=/tmp port=5000 user=al").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, db.as_str()),
            ("/tmp", 5000, "postgres")
        );
    }

    #[test]
    fn a_bad_url_does_not_echo_the_password() {
        let err = parse_database_url("postgres://bob:topsecret@host:notaport/db").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        assert_eq!(err.exit_code(), 3);
    }

    #[test]
    fn scratch_names_are_unique_identifiers() {
        let a = scratch_name();
        let b = scratch_name();
        assert_ne!(a, b);
        assert!(a.starts_with(SCRATCH_PREFIX) && a.len() < 63);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == 'T'));
    }
}
