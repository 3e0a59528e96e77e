//! The cache directory (`run --reuse`, `pgrehearse cache ls|clean`): local
//! clusters and containers that survive between invocations, with their
//! template databases, so a second invocation neither starts a server from
//! scratch nor seeds data it already has.
//!
//! Where: `$XDG_CACHE_HOME/pgrehearse`, else `~/.cache/pgrehearse`.
//!
//! ```text
//! pgrehearse/
//!   CACHEDIR.TAG
//!   servers/<kind>-<hash16>/    one server: local-... (a cluster) or docker-... (a container)
//!     lock                      flock'ed by the invocation using it (lock.rs)
//!     manifest.json             what it is, its password, its complete templates (manifest.rs)
//!     cluster/                  local: data/, server.log, the socket (the server's user owns it)
//! ```
//!
//! An entry is used by one invocation at a time: [`Cache::lease`] takes its
//! lock, saying whom it waits for when another invocation has it. This
//! module knows files only; starting the server an entry describes and
//! checking its templates against the server is `rehearsal/provision.rs`'s
//! job. What is trusted: a manifest that parses, is of this format and
//! names this entry (else the entry is wiped and rebuilt); a template the
//! manifest lists *and* whose database carries its completion marker, made
//! on this server version by this pgrehearse build (else it is dropped and
//! seeded again).

pub mod commands;
mod lock;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
pub use lock::EntryLock;
pub use manifest::{now, Manifest, TemplateEntry};

/// The directory of the server entries, under the cache root.
pub const SERVERS: &str = "servers";
/// A local entry's cluster directory (data/, server.log, socket).
pub const CLUSTER_DIR: &str = "cluster";
const LOCK_FILE: &str = "lock";

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// `$XDG_CACHE_HOME/pgrehearse`, else `$HOME/.cache/pgrehearse`.
pub fn default_root() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from("XDG_CACHE_HOME")
        .or_else(|| from("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("pgrehearse"))
}

/// Which pgrehearse build made something: its version, and the size and
/// modification time of its executable (a rebuilt binary may generate other
/// data for the same key).
pub fn tool_fingerprint() -> String {
    let exe = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{}-{mtime}", m.len())
        })
        .unwrap_or_default();
    format!("{} {exe}", env!("CARGO_PKG_VERSION"))
}

/// The entry name of a server of `kind` described by `what`.
pub fn entry_name(kind: &str, what: &str) -> String {
    let hash = hex::encode(Sha256::digest(format!("{kind}\n{what}").as_bytes()));
    format!("{kind}-{}", &hash[..16])
}

impl Cache {
    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The cache at `root`, created if needed; `Err` says why it cannot be
    /// used.
    pub fn open(root: &Path) -> std::result::Result<Cache, String> {
        let servers = root.join(SERVERS);
        let unusable = |e: std::io::Error| format!("cache directory {}: {e}", root.display());
        std::fs::create_dir_all(&servers).map_err(unusable)?;
        // CACHEDIR.TAG: backup tools skip the directory. Writing it also
        // proves we can write here.
        std::fs::write(
            root.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n\
             # This is the cache of pgrehearse (pgrehearse cache ls|clean).\n",
        )
        .map_err(unusable)?;
        Ok(Cache::at(root))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, entry: &str) -> PathBuf {
        self.root.join(SERVERS).join(entry)
    }

    /// Lock entry `entry` (waiting for another invocation to finish with it;
    /// `waiting` says so first), and read its manifest. Blocking.
    pub fn lease(
        &self,
        entry: &str,
        kind: &str,
        what: &str,
        waiting: impl FnOnce(&str),
    ) -> Result<Lease> {
        let dir = self.entry_dir(entry);
        std::fs::create_dir_all(&dir)?;
        // Traversable (not listable) by others: as root, the cluster below
        // runs as `postgres` and must reach its directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        let lock = EntryLock::take(&dir.join(LOCK_FILE), |holder| {
            waiting(&format!(
                "the cache entry {} is in use by {holder}: waiting for it",
                dir.display()
            ))
        })?;
        let (manifest, rebuilt) = match Manifest::read(&dir, entry, kind, what) {
            Ok(m) => (Some(m), None),
            Err(why) => (None, Some(why)),
        };
        Ok(Lease {
            dir,
            entry: entry.to_string(),
            _lock: lock,
            manifest,
            rebuilt,
        })
    }

    /// Every entry with its manifest (None: missing or corrupt), in name order.
    pub fn entries(&self) -> Result<Vec<Listing>> {
        let mut out = Vec::new();
        let dir = self.root.join(SERVERS);
        let Ok(read) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in read.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(path.join(manifest::MANIFEST_FILE)).ok();
            let manifest = text.and_then(|t| serde_json::from_str::<Manifest>(&t).ok());
            out.push(Listing {
                name: e.file_name().to_string_lossy().into_owned(),
                bytes: dir_size(&path),
                manifest,
                path,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Lock entry `name` if nobody uses it; `Err(holder)` when someone does.
    pub fn try_lock(&self, name: &str) -> Result<std::result::Result<EntryLock, String>> {
        Ok(EntryLock::try_take(&self.entry_dir(name).join(LOCK_FILE))?)
    }

    /// Forget `name`'s templates unused for `older_than`: they leave the
    /// manifest now, and their databases go the next time the entry's server
    /// starts. Returns the keys forgotten. The caller holds the entry's lock.
    pub fn forget_templates(&self, name: &str, older_than: Duration) -> Result<Vec<String>> {
        let dir = self.entry_dir(name);
        let Some(mut m) = self
            .entries()?
            .into_iter()
            .find(|l| l.name == name)
            .and_then(|l| l.manifest)
        else {
            return Ok(Vec::new());
        };
        let cutoff = now() - older_than.as_secs() as i64;
        let (old, keep): (Vec<_>, Vec<_>) =
            m.templates.into_iter().partition(|t| t.last_used < cutoff);
        m.templates = keep;
        m.write(&dir)?;
        Ok(old.into_iter().map(|t| t.key).collect())
    }
}

/// An entry of the cache, as `cache ls` shows it.
#[derive(Debug, Clone)]
pub struct Listing {
    pub name: String,
    pub path: PathBuf,
    /// Bytes on disk under the entry (a container's data are in the engine).
    pub bytes: u64,
    pub manifest: Option<Manifest>,
}

/// A locked entry: its server is ours until this is dropped.
pub struct Lease {
    pub dir: PathBuf,
    pub entry: String,
    _lock: EntryLock,
    /// The trusted manifest, or None: the entry is to be (re)built.
    pub manifest: Option<Manifest>,
    /// Why the entry is rebuilt, when it is.
    pub rebuilt: Option<String>,
}

impl Lease {
    /// A local entry's cluster directory.
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.join(CLUSTER_DIR)
    }

    /// Save `m` as the entry's manifest.
    pub fn save(&mut self, m: Manifest) -> Result<()> {
        m.write(&self.dir).map_err(|e| {
            Error::Other(anyhow::anyhow!(
                "cannot write the cache manifest in {}: {e}",
                self.dir.display()
            ))
        })?;
        self.manifest = Some(m);
        Ok(())
    }
}

/// Bytes of the files under `dir` (not following symlinks); what cannot be
/// read counts as nothing.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// `7d`, `12h`, `30m`, `45s`, `2w` → a duration.
pub fn parse_age(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("--older-than: `{s}` is not an age (examples: 7d, 12h, 30m)"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "--older-than: `{s}` needs a unit: s, m, h, d or w (examples: 7d, 12h)"
            ))
        }
    };
    Ok(Duration::from_secs(n * secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert!(parse_age("7").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("3y").is_err());
    }

    #[test]
    fn an_unwritable_place_says_why() {
        let err = Cache::open(Path::new("/dev/null/pgrehearse")).unwrap_err();
        assert!(err.contains("/dev/null/pgrehearse"), "{err}");
    }

    #[test]
    fn entry_names_follow_what_the_server_is() {
        let a = entry_name("local", "/usr/lib/postgresql/15/bin 15");
        assert!(a.starts_with("local-") && a.len() == 22, "{a}");
        assert_ne!(a, entry_name("local", "/usr/lib/postgresql/17/bin 17"));
        assert_eq!(a, entry_name("local", "/usr/lib/postgresql/15/bin 15"));
    }
}
