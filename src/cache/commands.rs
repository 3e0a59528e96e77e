//! `pgrehearse cache ls` and `pgrehearse cache clean [--older-than AGE]`.
//!
//! `ls` reads manifests only (a server is never started for it): the sizes
//! are the entry's files on disk (a container's data are in the engine) and
//! each template's size when it was seeded. `clean` removes whole entries
//! (the cluster directory, or the container) and, with `--older-than`,
//! forgets templates unused for that long in the entries it keeps: they
//! leave the manifest now and their databases are dropped the next time the
//! entry's server starts. An entry in use by a running invocation is
//! skipped, and says by whom.

use std::time::Duration;

use super::{now, Cache, Listing};
use crate::error::{exit, Error, Result};

/// `cache ls`: print every entry and its templates.
pub fn ls() -> Result<u8> {
    let cache = open()?;
    crate::printer::stdout(&listing(&cache)?)?;
    Ok(exit::OK)
}

fn open() -> Result<Cache> {
    let root = super::default_root().ok_or_else(|| {
        Error::Usage("neither XDG_CACHE_HOME nor HOME is set to an absolute path".into())
    })?;
    Ok(Cache::at(root))
}

/// The text of `cache ls`.
pub fn listing(cache: &Cache) -> Result<String> {
    let entries = cache.entries()?;
    let mut out = format!("cache {}\n", cache.root().display());
    if entries.is_empty() {
        out.push_str("  (empty)\n");
        return Ok(out);
    }
    let now = now();
    for e in &entries {
        let Some(m) = &e.manifest else {
            out.push_str(&format!(
                "{}  {}  (no readable manifest: rebuilt when next used, removed by `cache clean`)\n",
                e.name,
                size(e.bytes as i64)
            ));
            continue;
        };
        out.push_str(&format!(
            "{}  {} {}  {} on disk  created {}, used {}\n",
            e.name,
            m.kind,
            m.what,
            size(e.bytes as i64),
            ago(now - m.created),
            ago(now - m.last_used)
        ));
        if m.templates.is_empty() {
            out.push_str("  no templates\n");
        }
        for t in &m.templates {
            out.push_str(&format!(
                "  template {}  {}  {} rows  seeded in {:.1} s, {}, used {}  scenarios: {}\n",
                t.key,
                size(t.size_bytes),
                t.rows,
                t.seed_ms / 1e3,
                ago(now - t.created),
                ago(now - t.last_used),
                t.scenarios.join(", ")
            ));
        }
    }
    Ok(out)
}

/// `cache clean`: print what was removed or forgotten, and what was skipped.
pub async fn clean(older_than: Option<Duration>) -> Result<u8> {
    let cache = open()?;
    let mut out = String::new();
    let cutoff = older_than.map(|d| now() - d.as_secs() as i64);
    for e in cache.entries()? {
        let lock = match cache.try_lock(&e.name)? {
            Ok(lock) => lock,
            Err(holder) => {
                out.push_str(&format!("skipped {}: in use by {holder}\n", e.name));
                continue;
            }
        };
        let last_used = e.manifest.as_ref().map_or(i64::MIN, |m| m.last_used);
        match cutoff {
            Some(cut) if last_used >= cut => {
                let age = older_than.unwrap_or_default();
                for key in cache.forget_templates(&e.name, age)? {
                    out.push_str(&format!(
                        "forgot template {key} of {} (its database goes when the server next starts)\n",
                        e.name
                    ));
                }
            }
            _ => {
                remove(&e).await?;
                out.push_str(&format!("removed {} ({})\n", e.name, size(e.bytes as i64)));
            }
        }
        drop(lock);
    }
    if out.is_empty() {
        out = "nothing to clean\n".into();
    }
    crate::printer::stdout(&out)?;
    Ok(exit::OK)
}

/// Remove an entry: its container (docker), its cluster, its directory.
async fn remove(e: &Listing) -> Result<()> {
    #[cfg(feature = "docker")]
    if let Some(name) = e.manifest.as_ref().and_then(|m| m.container.clone()) {
        crate::backend::docker::remove_named(&name).await?;
    }
    crate::backend::local::wipe_kept(&e.path.join(super::CLUSTER_DIR))?;
    std::fs::remove_dir_all(&e.path)
        .map_err(|err| Error::Other(anyhow::anyhow!("cannot remove {}: {err}", e.path.display())))
}

/// `512 MB`, `3.4 GB`, `12 kB`.
fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.0} MB", b / 1e6),
        b => format!("{:.0} kB", b / 1e3),
    }
}

/// `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`.
fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86_400),
    }
}
