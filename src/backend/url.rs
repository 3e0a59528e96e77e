//! An existing server by URL; works only in a scratch database it creates.
//!
//! The server is not ours: the only things this backend creates or drops are
//! one database named `pgrehearse_<UTC timestamp>_<random>`, created at
//! start (other roles' CONNECT revoked) and dropped (`WITH (FORCE)`) at teardown — or, if teardown
//! never ran, from `Drop` on a separate thread with its own runtime.
//! The URL's password (or PGPASSWORD) never appears in a message.

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::tls::{Tls, TlsParams};
use super::{BackendOptions, ConnInfo, ServerLog};
use crate::error::{Error, Result};

/// Prefix of the scratch databases (tests look for leftovers by it).
pub const SCRATCH_PREFIX: &str = "pgrehearse_";
const DROP_TIMEOUT: Duration = Duration::from_secs(20);

pub struct UrlServer {
    conn: ConnInfo,
    /// The database named in the URL (or `postgres`): where CREATE/DROP DATABASE run.
    admin_db: String,
    version: String,
    version_num: u32,
    /// How the sessions are secured (see `Tls::describe`).
    tls_note: String,
    /// Said on stderr at start; run.json `warnings`.
    warnings: Vec<String>,
    settings_in_force: Vec<(String, String)>,
    dropped: bool,
}

impl UrlServer {
    pub async fn start(opts: &BackendOptions) -> Result<UrlServer> {
        let raw = opts.database_url.as_deref().ok_or_else(|| {
            Error::Usage("--backend url needs --database-url postgres://...".into())
        })?;
        let (server, admin_db) = parse_database_url(raw)?;
        let admin = server
            .connect_to(&admin_db, "pgrehearse/harness")
            .await
            .map_err(|e| server.cannot_connect(&admin_db, "", &e))?;
        // What secured the session, as the server saw it: run.json says so.
        let tls_note = server.tls.describe(&super::tls::observe(&admin).await);
        let (version, version_num) = crate::pg::server_version(&admin).await?;
        let redacted = server.redacted_at(&admin_db);
        crate::pg::require_supported(&version, version_num, &redacted)?;

        let name = scratch_name();
        let password = server.password.clone();
        super::scratch_db::create(&admin, &name)
            .await
            .map_err(|why| {
                Error::NoPostgres(scrub(
                    &format!("cannot create the scratch database {name} on {redacted}: {why}"),
                    password.as_deref(),
                ))
            })?;
        let prepared = super::db_settings::prepare(&admin, &admin_db, &name, opts, &version).await;
        Ok(UrlServer {
            conn: ConnInfo {
                dbname: name,
                ..server
            },
            admin_db,
            version,
            version_num,
            tls_note,
            warnings: prepared.warnings,
            settings_in_force: prepared.settings_in_force,
            dropped: false,
        })
    }

    /// What the rehearsals on this server should know that differs from
    /// what they asked for or from production's database: for run.json.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The scenario's settings that are in force in the scratch database.
    pub fn settings_in_force(&self) -> &[(String, String)] {
        &self.settings_in_force
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
            "url PostgreSQL {} at {} (scratch database {}; {})",
            self.version,
            self.conn.redacted_at(&self.admin_db),
            self.conn.dbname,
            self.tls_note
        )
    }

    pub async fn teardown(mut self) -> Result<()> {
        self.dropped = true;
        drop_scratch(&self.conn, &self.admin_db).await
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
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                match tokio::time::timeout(DROP_TIMEOUT, drop_scratch(&conn, &admin_db)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::NoPostgres("timed out".into())),
                }
            })
        });
        if let Ok(Err(e)) = worker.join() {
            crate::say!(
                "warning: could not drop the scratch database {}: {e}",
                self.conn.dbname
            );
        }
    }
}

async fn drop_scratch(conn: &ConnInfo, admin_db: &str) -> Result<()> {
    let admin = conn
        .connect_to(admin_db, "pgrehearse/harness")
        .await
        .map_err(|e| {
            let doing = format!(" to drop the scratch database {}", conn.dbname);
            conn.cannot_connect(admin_db, &doing, &e)
        })?;
    super::scratch_db::drop_database(&admin, &conn.dbname)
        .await
        .map_err(|e| Error::Other(anyhow::anyhow!(e)))
}

/// `pgrehearse_20261122T020455_k3x9qa`: sortable, unique, a valid identifier.
pub fn scratch_name() -> String {
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
/// comes from the URL, else PGPASSWORD; the TLS parameters from the URL, else
/// PGSSLMODE & co., else `~/.postgresql` (see tls.rs). Errors never echo the
/// input.
pub fn parse_database_url(raw: &str) -> Result<(ConnInfo, String)> {
    parse_database_url_with(raw, &|name| std::env::var(name).ok())
}

/// [`parse_database_url`] with the environment (`PG*` variables, `HOME`)
/// read through `env`.
pub fn parse_database_url_with(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(ConnInfo, String)> {
    let (rest, tls_params) = take_tls_params(raw)?;
    let cfg: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        Error::NoPostgres(format!(
            "cannot parse --database-url {}: {}",
            redact_url(raw),
            scrub(&e.to_string(), None)
        ))
    })?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => env("PGHOST").unwrap_or_else(|| "localhost".into()),
    };
    let port = cfg
        .get_ports()
        .first()
        .copied()
        .unwrap_or_else(|| env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432));
    let user = cfg
        .get_user()
        .map(str::to_string)
        .or_else(|| env("PGUSER"))
        .unwrap_or_else(|| "postgres".into());
    let password = match cfg.get_password() {
        Some(p) => Some(String::from_utf8(p.to_vec()).map_err(|_| {
            Error::NoPostgres("the password in --database-url is not valid UTF-8".into())
        })?),
        None => env("PGPASSWORD").filter(|p| !p.is_empty()),
    };
    let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    let tls = Tls::resolve(&tls_params.or_env(env), &host, home.as_deref())?;
    let admin_db = cfg.get_dbname().unwrap_or("postgres").to_string();
    Ok((
        ConnInfo {
            host,
            port,
            user,
            password,
            dbname: admin_db.clone(),
            tls,
        },
        admin_db,
    ))
}

/// Take the TLS parameters out of a URL's query string or a conninfo's
/// pairs: tls.rs applies them (tokio-postgres knows only some of them, and
/// only some sslmode values); the rest goes on to tokio-postgres unchanged.
fn take_tls_params(raw: &str) -> Result<(String, TlsParams)> {
    let mut params = TlsParams::default();
    let Some(after_scheme) = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|p| raw.strip_prefix(p))
    else {
        // A conninfo that does not tokenize is left to tokio-postgres' error.
        let mut rest = String::new();
        let mut copied = 0;
        for (key, value, span) in conninfo_pairs(raw).unwrap_or_default() {
            if let Some(key) = TlsParams::known_key(key) {
                params.set(key, value);
                rest.push_str(&raw[copied..span.start]);
                copied = span.end;
            }
        }
        rest.push_str(&raw[copied..]);
        return Ok((rest, params));
    };
    // As tokio-postgres reads a URL: the credentials end at the first '@',
    // the query starts at the first '?' after them.
    let scheme = raw.len() - after_scheme.len();
    let from = scheme + after_scheme.find('@').map_or(0, |at| at + 1);
    let Some(query) = raw[from..].find('?').map(|q| from + q) else {
        return Ok((raw.to_string(), params));
    };
    let mut kept = Vec::new();
    for item in raw[query + 1..].split('&') {
        let tls_key = item.split_once('=').and_then(|(k, v)| {
            let key = percent_decode_str(k).decode_utf8().ok()?;
            Some((TlsParams::known_key(&key)?, v))
        });
        match tls_key {
            Some((key, value)) => {
                let value = percent_decode_str(value).decode_utf8().map_err(|_| {
                    Error::NoPostgres(format!(
                        "the value of {key} in --database-url is not valid UTF-8"
                    ))
                })?;
                params.set(key, value.into_owned());
            }
            None => kept.push(item),
        }
    }
    let mut rest = raw[..query].to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, params))
}

/// The `key = value` pairs of a conninfo with the byte span of each, read
/// the way tokio-postgres (and libpq) read them: values unquoted up to
/// whitespace or single-quoted, `\` escaping the next character. None if
/// it does not tokenize.
fn conninfo_pairs(s: &str) -> Option<Vec<(&str, String, std::ops::Range<usize>)>> {
    let mut pairs = Vec::new();
    let mut it = s.char_indices().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else {
            return Some(pairs);
        };
        while it
            .next_if(|(_, c)| !c.is_whitespace() && *c != '=')
            .is_some()
        {}
        let key_end = it.peek().map_or(s.len(), |(i, _)| *i);
        skip_ws(&mut it);
        if key_end == start || it.next().map(|(_, c)| c) != Some('=') {
            return None;
        }
        skip_ws(&mut it);
        let quoted = it.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        loop {
            match it.peek().copied() {
                None if quoted => return None,
                None => break,
                Some((_, '\'')) if quoted => {
                    it.next();
                    break;
                }
                Some((_, c)) if !quoted && c.is_whitespace() => break,
                Some((_, '\\')) => {
                    it.next();
                    if let Some((_, escaped)) = it.next() {
                        value.push(escaped);
                    }
                }
                Some((_, c)) => {
                    it.next();
                    value.push(c);
                }
            }
        }
        if value.is_empty() && !quoted {
            return None;
        }
        let end = it.peek().map_or(s.len(), |(i, _)| *i);
        pairs.push((&s[start..key_end], value, start..end));
    }
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

    /// An environment with only `vars` (and HOME pointing nowhere useful).
    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn tls_parameters_are_taken_out_of_a_url() {
        let (rest, p) = take_tls_params(
            "postgres://bob:a?b@db:5/app?sslmode=verify-full&application_name=x\
             &sslrootcert=%2Ftmp%2Fca%20x.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://bob:a?b@db:5/app?application_name=x");
        assert_eq!(
            format!("{p:?}"),
            r#"TlsParams { values: {"sslmode": "verify-full", "sslrootcert": "/tmp/ca x.pem"} }"#
        );
        let (rest, _) = take_tls_params("postgresql://db/app?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://db/app");
        let (rest, p) = take_tls_params("postgres://db/app").unwrap();
        assert_eq!(
            (rest.as_str(), p.get_for_test("sslmode")),
            ("postgres://db/app", None)
        );
    }

    #[test]
    fn tls_parameters_are_taken_out_of_a_conninfo() {
        let raw = r"host=db sslmode = 'verify-ca' user=bob sslrootcert=/tmp/a\ b.pem port=1";
        let (rest, p) = take_tls_params(raw).unwrap();
        assert_eq!(rest, "host=db  user=bob  port=1");
        assert_eq!(p.get_for_test("sslmode"), Some("verify-ca"));
        assert_eq!(p.get_for_test("sslrootcert"), Some("/tmp/a b.pem"));
        // What does not tokenize is left whole, for tokio-postgres to refuse.
        let (rest, _) = take_tls_params("host=db sslmode='require").unwrap();
        assert_eq!(rest, "host=db sslmode='require");
    }

    #[test]
    fn sslmode_comes_from_the_url_then_pgsslmode_then_prefer() {
        let mode = |raw: &str, env: &[(&str, &str)]| {
            parse_database_url_with(raw, &env_of(env))
                .map(|(c, _)| c.tls.mode().as_str())
                .unwrap()
        };
        assert_eq!(mode("postgres://db/app", &[]), "prefer");
        assert_eq!(
            mode("postgres://db/app", &[("PGSSLMODE", "require")]),
            "require"
        );
        assert_eq!(
            mode(
                "postgres://db/app?sslmode=disable",
                &[("PGSSLMODE", "require")]
            ),
            "disable"
        );
        assert_eq!(mode("host=db sslmode=allow", &[("PGSSLMODE", "")]), "allow");
        // Over a Unix socket libpq never uses TLS, whatever sslmode says.
        let (c, _) = parse_database_url_with("host=/tmp sslmode=require", &env_of(&[])).unwrap();
        assert_eq!(
            c.tls.describe(&crate::backend::tls::Observed::Plain),
            "not encrypted (Unix socket)"
        );
    }

    #[test]
    fn bad_tls_parameters_are_exit_3_and_do_not_echo_the_password() {
        let err = |raw: &str, env: &[(&str, &str)]| {
            let e = parse_database_url_with(raw, &env_of(env)).unwrap_err();
            assert_eq!(e.exit_code(), 3, "{e}");
            let text = e.to_string();
            assert!(!text.contains("topsecret"), "{text}");
            text
        };
        let t = err("postgres://bob:topsecret@db/app?sslmode=verify_full", &[]);
        assert!(t.contains("invalid sslmode value \"verify_full\""), "{t}");
        let t = err(
            "postgres://bob:topsecret@db/app?sslmode=verify-full",
            &[("HOME", "/nonexistent")],
        );
        assert!(
            t.contains("/nonexistent/.postgresql/root.crt does not exist")
                && t.contains("sslrootcert=PATH")
                && t.contains("sslmode=require"),
            "{t}"
        );
        let t = err(
            "postgres://bob:topsecret@db/app?sslrootcert=/no/such.pem",
            &[],
        );
        assert!(t.contains("cannot read sslrootcert=/no/such.pem"), "{t}");
        let t = err("postgres://db/app?sslrootcert=system&sslmode=require", &[]);
        assert!(t.contains("may not be used with sslrootcert=system"), "{t}");
        let t = err(
            "postgres://db/app?sslmode=prefer&sslnegotiation=direct",
            &[],
        );
        assert!(t.contains("sslnegotiation=direct"), "{t}");
        let t = err("postgres://db/app", &[("PGSSLCRL", "/etc/crl.pem")]);
        assert!(t.contains("sslcrl"), "{t}");
        let t = err(
            "postgres://db/app?sslmode=require&sslcert=/no/client.crt",
            &[],
        );
        assert!(t.contains("cannot read sslcert=/no/client.crt"), "{t}");
        let t = err(
            "host=db..internal sslmode=verify-full sslrootcert=system",
            &[],
        );
        assert!(t.contains("\"db..internal\" is neither"), "{t}");
    }

    #[test]
    fn sslpassword_is_redacted() {
        assert_eq!(
            redact_url("postgres://db/app?sslpassword=k3y&sslmode=require"),
            "postgres://db/app?sslpassword=***&sslmode=require"
        );
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
