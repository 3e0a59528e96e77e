//! Servers kept in the cache (`run --reuse`): a local cluster or a container
//! found again in its cache entry (`crate::cache`) and started, or built
//! there when the entry is new, corrupt or its server will not start; its
//! templates checked against what the server holds. `provision.rs` uses
//! this; this file knows nothing of rehearsals.

use crate::backend::local::{self, LocalCluster};
use crate::backend::{Backend, BackendKind, BackendOptions, ConnInfo};
use crate::cache::{self, Cache, Lease, Manifest, TemplateEntry};
use crate::error::{Error, Result};
use crate::seed::template::{self, TemplateKey};
use crate::signals::Signals;

/// A started kept server, and its locked cache entry.
pub struct KeptServer {
    pub backend: Backend,
    pub lease: Lease,
}

/// Start the kept server for `opts` (`auto`: a container if an engine
/// answers, else a local cluster). `Ok(None)` when the cache cannot be used
/// here: the caller runs without it (this says why on stderr).
pub async fn start(opts: &BackendOptions, signals: &Signals) -> Result<Option<KeptServer>> {
    let without_cache = |why: &str| {
        crate::say!("pgrehearse: warning: {why}: running without the cache (--reuse ignored)");
    };
    let Some(root) = cache::default_root() else {
        without_cache("neither XDG_CACHE_HOME nor HOME is set to an absolute path");
        return Ok(None);
    };
    let kind = match opts.backend {
        BackendKind::Auto if docker_answers().await => BackendKind::Docker,
        BackendKind::Auto => BackendKind::Local,
        k => k,
    };
    let (kind_name, what) = match kind {
        BackendKind::Local => {
            let bin = local::find_binaries(opts.version.as_deref())?;
            ("local", format!("{} {}", bin.dir.display(), bin.major))
        }
        #[cfg(feature = "docker")]
        BackendKind::Docker => ("docker", crate::backend::docker::identity(opts)),
        _ => return Ok(None),
    };
    let entry = cache::entry_name(kind_name, &what);
    if kind == BackendKind::Local {
        // Said before the cache directory is made: nothing is left behind.
        let dir = root.join(cache::SERVERS).join(&entry);
        if let Some(why) = LocalCluster::unusable_dir(&dir) {
            crate::say!(
                "pgrehearse: warning: --reuse cannot keep a local cluster in {}: {why}; running \
                 without the cache (set XDG_CACHE_HOME to a directory the `postgres` user can \
                 reach, e.g. /var/cache)",
                root.display()
            );
            return Ok(None);
        }
    }
    let cache = match Cache::open(&root) {
        Ok(c) => c,
        Err(why) => {
            without_cache(&why);
            return Ok(None);
        }
    };
    let lease = {
        let (cache, entry, what) = (cache.clone(), entry.clone(), what.clone());
        let take = tokio::task::spawn_blocking(move || {
            cache.lease(&entry, kind_name, &what, |msg| {
                crate::say!("pgrehearse: {msg}")
            })
        });
        tokio::select! {
            l = take => l.map_err(|e| Error::Other(anyhow::anyhow!("cache lock: {e}")))??,
            _ = signals.token.cancelled() => return Err(signals.error()),
        }
    };
    let mut lease = lease;
    let started = tokio::select! {
        b = start_in(&mut lease, kind, kind_name, &what, opts) => b,
        _ = signals.token.cancelled() => return Err(signals.error()),
    };
    match started {
        Ok(backend) => Ok(Some(KeptServer { backend, lease })),
        // A kept cluster as root needs a directory `postgres` can reach.
        Err(Error::NoPostgres(why)) if kind == BackendKind::Local => {
            crate::say!(
                "pgrehearse: warning: no cluster could be kept in {} ({why}): running without \
                 the cache (as root, set XDG_CACHE_HOME to a directory the `postgres` user can \
                 reach)",
                lease.dir.display()
            );
            let _ = local::wipe_kept(&lease.cluster_dir());
            // Nothing kept: no entry for `cache ls` to list.
            let _ = std::fs::remove_dir_all(&lease.dir);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(feature = "docker")]
async fn docker_answers() -> bool {
    crate::backend::docker::engine_answers().await
}

#[cfg(not(feature = "docker"))]
async fn docker_answers() -> bool {
    false
}

/// Start the entry's server, rebuilding the entry from scratch when it has
/// no trusted manifest or its server does not start.
async fn start_in(
    lease: &mut Lease,
    kind: BackendKind,
    kind_name: &str,
    what: &str,
    opts: &BackendOptions,
) -> Result<Backend> {
    if let (None, Some(why)) = (&lease.manifest, &lease.rebuilt) {
        if lease.dir.join(cache::manifest::MANIFEST_FILE).exists() {
            crate::say!(
                "pgrehearse: the cache entry {} is rebuilt: {why}",
                lease.dir.display()
            );
        }
    }
    for attempt in 0..2 {
        let manifest = match lease.manifest.clone() {
            Some(m) => m,
            None => {
                wipe(lease, kind).await?;
                let mut m = Manifest::new(&lease.entry, kind_name, what, random_password());
                m.container = (kind == BackendKind::Docker).then(|| container_name(&lease.entry));
                lease.save(m.clone())?;
                m
            }
        };
        match start_backend(lease, kind, opts, &manifest).await {
            Ok(b) => {
                let mut m = manifest;
                m.last_used = cache::now();
                lease.save(m)?;
                return Ok(b);
            }
            // A setting the server refuses is the scenario's fault, not the cache's.
            Err(e @ Error::Usage(_)) => return Err(e),
            Err(e) if attempt == 0 => {
                crate::say!(
                    "pgrehearse: the cached server in {} does not start ({e}): rebuilding it",
                    lease.dir.display()
                );
                lease.manifest = None;
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the second attempt returns")
}

async fn start_backend(
    lease: &Lease,
    kind: BackendKind,
    opts: &BackendOptions,
    m: &Manifest,
) -> Result<Backend> {
    match kind {
        #[cfg(feature = "docker")]
        BackendKind::Docker => {
            use crate::backend::docker::{DockerPostgres, Kept};
            let kept = Kept {
                name: m.container.clone().unwrap_or_default(),
                password: m.password.clone(),
            };
            Ok(Backend::Docker(
                DockerPostgres::start_kept(opts, &kept).await?,
            ))
        }
        _ => Ok(Backend::Local(
            LocalCluster::start_kept(opts, &lease.cluster_dir(), &m.password).await?,
        )),
    }
}

/// Remove what the entry held: its cluster directory, its container.
async fn wipe(lease: &Lease, kind: BackendKind) -> Result<()> {
    local::wipe_kept(&lease.cluster_dir())?;
    #[cfg(feature = "docker")]
    if kind == BackendKind::Docker {
        crate::backend::docker::remove_named(&container_name(&lease.entry)).await?;
    }
    let _ = kind;
    Ok(())
}

/// The kept container of cache entry `entry` (`docker-<hash16>`).
pub fn container_name(entry: &str) -> String {
    format!("pgrehearse-cache-{}", entry.trim_start_matches("docker-"))
}

fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

/// Make the manifest and the server agree: a template stays only when the
/// manifest lists it, its database carries its marker, and it was seeded on
/// this server version by this pgrehearse build. Every other `pgrehearse_`
/// database on the server (a template that was never completed, a clone an
/// interrupted invocation left, a template `cache clean` forgot) is dropped.
pub async fn reconcile(lease: &mut Lease, conn: &ConnInfo, version_num: u32) -> Result<()> {
    let Some(mut m) = lease.manifest.clone() else {
        return Ok(());
    };
    let tool = cache::tool_fingerprint();
    let mut good = Vec::new();
    for db in template::databases_like(conn, "pgrehearse_").await? {
        let entry = m.templates.iter().find(|t| t.database == db.name);
        let trusted = entry.is_some_and(|t| {
            let marked = TemplateKey::parse(&t.key)
                .is_some_and(|k| db.comment.as_deref() == Some(k.marker().as_str()));
            marked && t.server_version_num == version_num && t.tool == tool
        });
        if trusted {
            good.push(db.name);
        } else {
            tracing::info!(
                "cache: dropping {} (not a complete template of this build)",
                db.name
            );
            template::drop_database(conn, &db.name).await?;
        }
    }
    m.templates.retain(|t| good.contains(&t.database));
    lease.save(m)
}

/// The manifest's entry for `key`, if the template is there and complete.
pub async fn find(lease: &Lease, conn: &ConnInfo, key: &TemplateKey) -> Result<Option<String>> {
    let Some(entry) = lease
        .manifest
        .as_ref()
        .and_then(|m| m.template(key.as_str()))
    else {
        return Ok(None);
    };
    let name = entry.database.clone();
    Ok(template::is_complete(conn, &name, key)
        .await?
        .then_some(name))
}

/// Record that `scenario` used the template `key` (and, when it was just
/// seeded, the template itself).
pub async fn record_use(
    lease: &mut Lease,
    conn: &ConnInfo,
    key: &TemplateKey,
    new: Option<NewTemplate>,
    scenario: &str,
) -> Result<()> {
    let Some(mut m) = lease.manifest.clone() else {
        return Ok(());
    };
    let now = cache::now();
    if let Some(n) = new {
        let size = template::databases_like(conn, &n.database)
            .await?
            .into_iter()
            .find(|d| d.name == n.database)
            .and_then(|d| d.size_bytes)
            .unwrap_or(0);
        m.templates.retain(|t| t.key != key.as_str());
        m.templates.push(TemplateEntry {
            key: key.to_string(),
            database: n.database,
            scenarios: Vec::new(),
            rows: n.rows,
            size_bytes: size,
            seed_ms: n.seed_ms,
            server_version_num: n.server_version_num,
            tool: cache::tool_fingerprint(),
            created: now,
            last_used: now,
        });
    }
    if let Some(t) = m.templates.iter_mut().find(|t| t.key == key.as_str()) {
        t.last_used = now;
        if !t.scenarios.iter().any(|s| s == scenario) {
            t.scenarios.push(scenario.to_string());
        }
    }
    m.last_used = now;
    lease.save(m)
}

/// A template just seeded on a kept server.
pub struct NewTemplate {
    pub database: String,
    pub rows: u64,
    pub seed_ms: f64,
    pub server_version_num: u32,
}
