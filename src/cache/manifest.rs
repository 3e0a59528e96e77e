//! `manifest.json` of a cache entry: what server it holds and which
//! templates on it are complete. Written whole (to a temp file, then
//! renamed) so a reader never sees half of it; 0600, since it holds the
//! server's password. A manifest that does not parse, is of another format
//! or names another entry is not trusted: the entry is rebuilt.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Bumped when the manifest's meaning changes: older entries are rebuilt.
pub const MANIFEST_FORMAT: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// The entry's directory name (`local-<hash>`, `docker-<hash>`).
    pub entry: String,
    /// `local` or `docker`.
    pub kind: String,
    /// What the server is made from: the binaries' directory and major, or
    /// the image and the server's command line.
    pub what: String,
    /// The superuser's password (the cluster's or the container's).
    pub password: String,
    /// The container's name (docker).
    #[serde(default)]
    pub container: Option<String>,
    /// Unix seconds.
    pub created: i64,
    pub last_used: i64,
    pub templates: Vec<TemplateEntry>,
}

/// A complete template on the entry's server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TemplateEntry {
    /// The template key (hex sha256).
    pub key: String,
    pub database: String,
    /// Scenarios that used it, by name.
    pub scenarios: Vec<String>,
    pub rows: u64,
    pub size_bytes: i64,
    pub seed_ms: f64,
    /// The server's server_version_num when it was seeded.
    pub server_version_num: u32,
    /// The pgrehearse build that seeded it (see `cache::tool_fingerprint`).
    pub tool: String,
    pub created: i64,
    pub last_used: i64,
}

impl Manifest {
    /// A manifest for a new entry.
    pub fn new(entry: &str, kind: &str, what: &str, password: String) -> Manifest {
        let now = now();
        Manifest {
            format: MANIFEST_FORMAT,
            entry: entry.to_string(),
            kind: kind.to_string(),
            what: what.to_string(),
            password,
            container: None,
            created: now,
            last_used: now,
            templates: Vec::new(),
        }
    }

    /// The manifest in `dir`, if it is one we trust for entry `entry` of
    /// kind `kind` made from `what`; otherwise why not.
    pub fn read(dir: &Path, entry: &str, kind: &str, what: &str) -> Result<Manifest, String> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("no manifest (a new entry)".into())
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| format!("{} is corrupt: {e}", path.display()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!("{} has format {}", path.display(), m.format));
        }
        if m.entry != entry || m.kind != kind || m.what != what {
            return Err(format!(
                "{} describes another server ({} {})",
                path.display(),
                m.kind,
                m.what
            ));
        }
        Ok(m)
    }

    /// Write it into `dir`, atomically, readable by us only.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(json.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(MANIFEST_FILE))
    }

    pub fn template(&self, key: &str) -> Option<&TemplateEntry> {
        self.templates.iter().find(|t| t.key == key)
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_trust() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::new(
            "local-ab",
            "local",
            "/usr/lib/postgresql/15/bin 15",
            "pw".into(),
        );
        m.write(dir.path()).unwrap();
        let back = Manifest::read(dir.path(), "local-ab", "local", m.what.as_str()).unwrap();
        assert_eq!(back, m);
        let other = Manifest::read(dir.path(), "local-cd", "local", m.what.as_str());
        assert!(other.unwrap_err().contains("another server"));
        std::fs::write(dir.path().join(MANIFEST_FILE), "{ not json").unwrap();
        let corrupt = Manifest::read(dir.path(), "local-ab", "local", m.what.as_str());
        assert!(corrupt.unwrap_err().contains("corrupt"));
        use std::os::unix::fs::PermissionsExt;
        m.write(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(MANIFEST_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
