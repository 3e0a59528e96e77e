//! Where a local cluster's server binaries are, and which majors this
//! machine has: PGREHEARSE_PG_BIN, `pg_config --bindir`, `initdb` on PATH,
//! Debian's `/usr/lib/postgresql/<major>/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// A directory holding initdb, pg_ctl and postgres, and the version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBin {
    pub dir: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
}

/// Where the server binaries are: PGREHEARSE_PG_BIN, then `pg_config --bindir`
/// and `initdb` on PATH, then Debian's `/usr/lib/postgresql/<major>/bin`
/// (newest first). With `want` ("15", "17.2") only that major qualifies.
pub fn find_binaries(want: Option<&str>) -> Result<PgBin> {
    let want_major: Option<u32> = match want {
        Some(v) => Some(
            v.split('.')
                .next()
                .and_then(|m| m.trim().parse().ok())
                .ok_or_else(|| Error::Usage(format!("bad Postgres version {v:?}")))?,
        ),
        None => None,
    };
    if let Some(dir) = pg_bin_env() {
        let bin = probe(&dir).ok_or_else(|| {
            Error::NoPostgres(format!(
                "PGREHEARSE_PG_BIN={} holds no working initdb and postgres",
                dir.display()
            ))
        })?;
        if let Some(m) = want_major.filter(|m| *m != bin.major) {
            return Err(Error::NoPostgres(format!(
                "PostgreSQL {m} was asked for, but PGREHEARSE_PG_BIN={} is version {}",
                dir.display(),
                bin.major
            )));
        }
        return Ok(bin);
    }
    let seen = candidates();
    for dir in &seen {
        if let Some(bin) = probe(dir) {
            if want_major.is_none_or(|m| m == bin.major) {
                return Ok(bin);
            }
        }
    }
    let looked: Vec<String> = seen.iter().map(|p| p.display().to_string()).collect();
    Err(Error::NoPostgres(match want_major {
        Some(m) => format!(
            "no PostgreSQL {m} server binaries found (looked in: {}); install them \
             (Debian: apt-get install postgresql-{m}) or set PGREHEARSE_PG_BIN",
            if looked.is_empty() {
                "nothing found".into()
            } else {
                looked.join(", ")
            }
        ),
        None => "no PostgreSQL server binaries found (PGREHEARSE_PG_BIN, pg_config, PATH, \
                 /usr/lib/postgresql/*/bin); install them (Debian: apt-get install postgresql) \
                 or set PGREHEARSE_PG_BIN"
            .into(),
    }))
}

/// Every working set of server binaries this machine has, one per major:
/// PGREHEARSE_PG_BIN's first, then in [`find_binaries`]' order.
pub fn installed() -> Vec<PgBin> {
    let mut found: Vec<PgBin> = Vec::new();
    for dir in pg_bin_env().into_iter().chain(candidates()) {
        if let Some(bin) = probe(&dir) {
            if found.iter().all(|f| f.major != bin.major) {
                found.push(bin);
            }
        }
    }
    found.sort_by_key(|b| b.major);
    found
}

fn pg_bin_env() -> Option<PathBuf> {
    std::env::var_os("PGREHEARSE_PG_BIN").map(PathBuf::from)
}

/// The directories to look in after PGREHEARSE_PG_BIN, without repeats.
fn candidates() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(pg_config) = which::which("pg_config") {
        if let Ok(out) = Command::new(pg_config).arg("--bindir").output() {
            if out.status.success() {
                candidates.push(PathBuf::from(
                    String::from_utf8_lossy(&out.stdout).trim().to_string(),
                ));
            }
        }
    }
    if let Ok(initdb) = which::which("initdb") {
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(d) = initdb.parent() {
            candidates.push(d.to_path_buf());
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|d| std::cmp::Reverse(d.0));
    candidates.extend(debian.into_iter().map(|(_, p)| p));
    let mut seen: Vec<PathBuf> = Vec::new();
    for c in candidates {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen
}

/// `dir` holds initdb and postgres; `postgres --version` tells the major.
fn probe(dir: &Path) -> Option<PgBin> {
    if !dir.join("initdb").is_file() {
        return None;
    }
    let out = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(PgBin {
        dir: dir.to_path_buf(),
        major,
    })
}
