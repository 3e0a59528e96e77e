//! Stage 1, provision: a server from a backend, and the databases rehearsals
//! run in. The two are apart on purpose: one [`Server`] hosts several
//! rehearsals, each in a [`Database`] of its own, and every later stage takes
//! only the [`Database`].
//!
//! # Seed once, rehearse many: the template API
//!
//! Anything that rehearses the same data several times (a batch, `compare`,
//! `sweep`, the benches) seeds it once into a template and clones that per
//! rehearsal; the crate's `library` module docs show the calls, in an
//! example the doc tests compile.
//!
//! - Two scenarios share a template when their data are the same: same
//!   tables, generators, rows, seed_sql and seed on the same server version
//!   ([`TemplateKey`]); their workloads, steps and names may differ.
//! - [`Server::empty_database`] is the other way to get a database: empty,
//!   to seed in place (a rehearsal whose data nobody else needs).
//! - Every database a server creates is dropped at teardown where the server
//!   outlives us (`url`, and clones on a kept server); on an ephemeral local
//!   cluster or container they simply go with the server.
//! - With `reuse` ([`ServerOptions::reuse`]) the server comes from the cache
//!   (`crate::cache`) and complete templates stay there for the next
//!   invocation: `ensure_template` then finds them without seeding.
//! - Templates on a `url` server are scratch databases like the rest
//!   (`pgrehearse_tpl_<key16>_<random>`): dropped at teardown, never kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::kept::{self, KeptServer, NewTemplate};
use super::needs::ServerNeeds;
use crate::backend::{Backend, BackendKind, BackendOptions, ConnInfo, ServerLog};
use crate::cache::Lease;
use crate::error::{Error, Result};
use crate::options::ServerOptions;
use crate::record::SizeInfo;
use crate::scenario::Scenario;
use crate::seed::template::{self, CloneStrategy, TemplateKey};
use crate::seed::{SeedOptions, SeedReport};
use crate::signals::Signals;

/// A running Postgres that pgrehearse provisioned (or a scratch database on
/// an existing one), with the templates made on it. Torn down by
/// [`Server::teardown`], on every path.
pub struct Server {
    /// Declared first: dropped (databases dropped) before the backend goes.
    scratch: Scratch,
    backend: Backend,
    version_num: u32,
    /// Templates got in this invocation, by key.
    templates: tokio::sync::Mutex<HashMap<TemplateKey, Template>>,
    /// The cache entry of a kept server (`reuse`).
    lease: Option<tokio::sync::Mutex<Lease>>,
    /// The backend's own work database went to a rehearsal already.
    work_db_used: AtomicBool,
    /// The size asked for and what was derived from it, for run.json.
    size: Option<SizeInfo>,
}

/// The database one rehearsal runs in, and what the measurements may use
/// of the server that hosts it.
#[derive(Debug, Clone)]
pub struct Database {
    /// Connects to this database (its `dbname`).
    pub conn: ConnInfo,
    /// The server's log, where we own the server (`log_lock_waits` lines).
    pub server_log: Option<ServerLog>,
    /// For run.json.
    pub backend: BackendKind,
    /// The target described without secrets, for run.json.
    pub target: String,
    /// The server's size and what was derived from it, for run.json.
    pub size: Option<SizeInfo>,
    /// The streaming replica, described for run.json, when there is one.
    pub replica: Option<String>,
    /// What differs from what the rehearsal asked for (run.json `warnings`).
    pub warnings: Vec<String>,
    /// The scenario settings in force where the backend could apply only
    /// some (url); None: all of them.
    pub settings_in_force: Option<Vec<(String, String)>>,
    /// Set for a database the server created for it (not the backend's own).
    scratch: Option<Scratch>,
}

/// A complete template database on a server: the data of a scenario, seeded
/// once, to clone per rehearsal.
#[derive(Debug, Clone)]
pub struct Template {
    pub key: TemplateKey,
    /// Its database on the server.
    pub name: String,
    /// How the call that returned it got it.
    pub made: TemplateMade,
    strategy: CloneStrategy,
    /// The server's own database, for everything else about it.
    site: Database,
}

/// How [`Server::ensure_template`] got a template.
#[derive(Debug, Clone)]
pub enum TemplateMade {
    /// Seeded by this call.
    Seeded(SeedReport),
    /// Seeded by an earlier call in this invocation.
    Earlier,
    /// Kept in the cache by an earlier invocation.
    Cache,
}

impl TemplateMade {
    /// `seeded`, `earlier` or `cache` (run.json's `template_source`).
    pub fn as_str(&self) -> &'static str {
        match self {
            TemplateMade::Seeded(_) => "seeded",
            TemplateMade::Earlier => "earlier",
            TemplateMade::Cache => "cache",
        }
    }
}

impl Server {
    /// Provision a server for `needs`: from the cache with `opts.reuse`
    /// (local or docker; the url backend is never kept), else a new one. A
    /// signal during the start tears down what was started and returns the
    /// signal's error.
    pub async fn provision(
        opts: &ServerOptions,
        needs: &ServerNeeds,
        signals: &Signals,
    ) -> Result<Server> {
        let url = opts.backend == BackendKind::Url;
        if url && needs.replica {
            return Err(crate::Error::Usage(
                "the url backend cannot start a replica: the server is not pgrehearse's".into(),
            ));
        }
        let backend_opts = BackendOptions {
            backend: opts.backend,
            image: opts.image.clone().or_else(|| needs.image.clone()),
            database_url: opts.database_url.clone(),
            version: opts.version.clone().or_else(|| needs.version.clone()),
            settings: if url {
                needs.settings.clone()
            } else {
                needs.harness_settings()
            },
            size: needs.size.clone(),
            replica: needs.replica,
        };
        if let (true, Some(s)) = (url, &needs.size) {
            crate::say!(
                "pgrehearse: warning: the server size ({}) is not applied: the url backend's \
                 server is not pgrehearse's to limit or configure",
                s.describe()
            );
        }
        if opts.reuse && !url {
            if let Some(KeptServer { backend, mut lease }) =
                kept::start(&backend_opts, signals).await?
            {
                let version_num = backend.server_version_num();
                let reconciled = kept::reconcile(&mut lease, backend.conn(), version_num).await;
                let size = needs.size_info(backend.kind());
                let server = Server::new(backend, Some(lease), size);
                if let Err(e) = reconciled {
                    server.teardown().await;
                    return Err(e);
                }
                tracing::info!("provisioned (kept) {}", server.backend.describe());
                return Ok(server);
            }
        }
        let backend = if url {
            // Not raced against a signal: a CREATE DATABASE abandoned mid-way
            // still completes on the server, with nobody left to drop it. The
            // start is short (bounded by the connect timeout); finish it, then
            // tear down.
            let backend = Backend::start(&backend_opts).await?;
            if signals.received() {
                Server::new(backend, None, None).teardown().await;
                return Err(signals.error());
            }
            backend
        } else {
            // Dropping a local or docker start tears down what it started.
            tokio::select! {
                b = Backend::start(&backend_opts) => b?,
                _ = signals.token.cancelled() => return Err(signals.error()),
            }
        };
        tracing::info!("provisioned {}", backend.describe());
        // After the start: `auto` has become docker or local by now.
        let size = needs.size_info(backend.kind());
        Ok(Server::new(backend, None, size))
    }

    fn new(backend: Backend, lease: Option<Lease>, size: Option<SizeInfo>) -> Server {
        // Databases we create outlive us where the server does.
        let survives = lease.is_some() || backend.kind() == BackendKind::Url;
        Server {
            scratch: Scratch::new(backend.conn().clone(), survives),
            version_num: backend.server_version_num(),
            backend,
            templates: Default::default(),
            lease: lease.map(tokio::sync::Mutex::new),
            work_db_used: AtomicBool::new(false),
            size,
        }
    }

    /// `server_version_num` (e.g. 150018).
    pub fn version_num(&self) -> u32 {
        self.version_num
    }

    /// Whether this server came from the cache (`reuse`).
    pub fn is_kept(&self) -> bool {
        self.lease.is_some()
    }

    /// The server's own database (the backend's work database), as what a
    /// rehearsal records about its server before it has a database of its
    /// own (version, target). Rehearse in [`Server::empty_database`] or a
    /// template's clone, not here.
    pub fn site(&self) -> Database {
        Database {
            conn: self.backend.conn().clone(),
            server_log: self.backend.server_log(),
            backend: self.backend.kind(),
            target: self.backend.describe(),
            size: self.size.clone(),
            replica: self.backend.replica(),
            warnings: self.backend.warnings(),
            settings_in_force: self.backend.settings_in_force(),
            scratch: None,
        }
    }

    /// The backend's own work database, for a caller that manages databases
    /// on the server itself (the ddl bench); no rehearsal gets it after.
    pub fn work_database(&self) -> Database {
        self.work_db_used.store(true, Ordering::SeqCst);
        self.site()
    }

    /// An empty database for one rehearsal to seed in place: the backend's
    /// work database the first time, a new one (dropped at teardown where
    /// the server outlives us) after.
    pub async fn empty_database(&self) -> Result<Database> {
        if !self.work_db_used.swap(true, Ordering::SeqCst) {
            return Ok(self.site());
        }
        let name = crate::backend::url::scratch_name();
        self.scratch.add(&name);
        template::create_database(self.backend.conn(), &name).await?;
        Ok(self.site().named(&name, Some(self.scratch.clone())))
    }

    /// The template of `s`'s data seeded with `opts.seed`: the one made
    /// earlier in this invocation, else the one kept in the cache, else a
    /// new one seeded now (`opts` says how). Interrupting this (dropping the
    /// future) leaves no template that looks complete: the marker is set
    /// last, and teardown drops the unfinished database.
    pub async fn ensure_template(&self, s: &Scenario, opts: &SeedOptions) -> Result<Template> {
        let key = TemplateKey::of(s, opts.seed, self.version_num);
        let mut templates = self.templates.lock().await;
        if let Some(t) = templates.get(&key) {
            self.record_use(&key, None, &s.name).await?;
            return Ok(Template {
                made: TemplateMade::Earlier,
                ..t.clone()
            });
        }
        let conn = self.backend.conn();
        let cached = match &self.lease {
            Some(lease) => kept::find(&*lease.lock().await, conn, &key).await?,
            None => None,
        };
        let (name, made) = match cached {
            Some(name) => {
                self.record_use(&key, None, &s.name).await?;
                (name, TemplateMade::Cache)
            }
            None => {
                let name = match self.backend.kind() {
                    // Unique: another invocation may seed the same data there.
                    BackendKind::Url => format!("{}_{}", key.database(), random_suffix()),
                    _ => key.database(),
                };
                let report = self.seed_template(s, opts, &key, &name).await?;
                let new = NewTemplate {
                    database: name.clone(),
                    rows: report.total_rows(),
                    seed_ms: report.duration.as_secs_f64() * 1e3,
                    server_version_num: self.version_num,
                };
                self.record_use(&key, Some(new), &s.name).await?;
                (name, TemplateMade::Seeded(report))
            }
        };
        let t = Template {
            key: key.clone(),
            name,
            made,
            strategy: CloneStrategy::for_server(self.version_num),
            site: self.site(),
        };
        templates.insert(key, t.clone());
        Ok(t)
    }

    /// Seed `s` into a new database `name` and mark it a complete template.
    async fn seed_template(
        &self,
        s: &Scenario,
        opts: &SeedOptions,
        key: &TemplateKey,
        name: &str,
    ) -> Result<SeedReport> {
        let conn = self.backend.conn();
        // A leftover of an interrupted seed (a kept server) goes first.
        template::drop_database(conn, name).await?;
        self.scratch.add(name);
        template::create_database(conn, name).await?;
        let target = ConnInfo {
            dbname: name.to_string(),
            ..conn.clone()
        };
        let mut report = crate::seed::seed_with(&target, s, opts).await?;
        // Once, here: every clone copies the files as they are on disk.
        report.checkpoint = crate::seed::checkpoint_or_say(&target).await?;
        template::mark_complete(conn, name, key).await?;
        if self.lease.is_some() {
            // Complete and recorded in the cache: it stays.
            self.scratch.remove(name);
        }
        Ok(report)
    }

    async fn record_use(
        &self,
        key: &TemplateKey,
        new: Option<NewTemplate>,
        scenario: &str,
    ) -> Result<()> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let mut lease = lease.lock().await;
        kept::record_use(&mut lease, self.backend.conn(), key, new, scenario).await
    }

    /// The server still answers (a rehearsal may have killed it).
    pub async fn healthy(&self) -> bool {
        let check = async {
            let c = self.backend.conn().session(super::HARNESS_APP_NAME).await?;
            c.simple_query("SELECT 1").await?;
            Ok::<_, Error>(())
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(10), check).await,
            Ok(Ok(()))
        )
    }

    /// Drop every database this server created that outlives it, then stop
    /// and remove everything the backend started or created (a kept server
    /// is stopped and stays, with its complete templates). A failure is
    /// reported, not returned: the rehearsal's own outcome matters more.
    pub async fn teardown(self) {
        self.scratch.drop_all().await;
        if let Some(lease) = &self.lease {
            let mut lease = lease.lock().await;
            if let Some(mut m) = lease.manifest.clone() {
                m.last_used = crate::cache::now();
                if let Err(e) = lease.save(m) {
                    crate::say!("pgrehearse: teardown: {e}");
                }
            }
        }
        let Server { backend, lease, .. } = self;
        if let Err(e) = backend.teardown().await {
            crate::say!("pgrehearse: teardown: {e}");
        }
        // The cache entry is unlocked once its server is down.
        drop(lease);
    }
}

/// Six lowercase letters and digits.
fn random_suffix() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric
        .sample_string(&mut rand::thread_rng(), 6)
        .to_lowercase()
}

impl Template {
    /// A fresh database holding a copy of the template's data (CREATE
    /// DATABASE ... TEMPLATE; see `seed::template` for the strategy), named
    /// like a scratch database and dropped at teardown where the server
    /// outlives us.
    pub async fn clone_into(&self) -> Result<Database> {
        let name = crate::backend::url::scratch_name();
        let scratch = self.site.scratch.clone().unwrap_or_else(Scratch::none);
        scratch.add(&name);
        template::clone_database_with(&self.site.conn, &self.name, &name, self.strategy).await?;
        Ok(self.site.named(&name, Some(scratch)))
    }

    /// The CREATE DATABASE strategy clones use: `file_copy`, `wal_log` or
    /// `default`.
    pub fn strategy(&self) -> &'static str {
        match self.strategy {
            CloneStrategy::FileCopy => "file_copy",
            CloneStrategy::WalLog => "wal_log",
            CloneStrategy::ServerDefault => "default",
        }
    }

    /// Clones use `strategy` from now on (benches compare them).
    pub fn with_strategy(mut self, strategy: CloneStrategy) -> Template {
        self.strategy = strategy;
        self
    }
}

impl Database {
    /// The same server's database `name`, which the caller created and
    /// drops (the ddl bench's seeded databases and their copies).
    pub fn in_database(&self, name: &str) -> Database {
        self.named(name, None)
    }

    /// This server's database `name`.
    fn named(&self, name: &str, scratch: Option<Scratch>) -> Database {
        Database {
            conn: ConnInfo {
                dbname: name.to_string(),
                ..self.conn.clone()
            },
            target: format!("{}; rehearsed in database {name}", self.target),
            scratch,
            ..self.clone()
        }
    }

    /// Drop this database now, if the server created it for a rehearsal
    /// (the backend's own work database stays until teardown).
    pub async fn discard(self) -> Result<()> {
        let Some(scratch) = &self.scratch else {
            return Ok(());
        };
        template::drop_database(&self.conn, &self.conn.dbname).await?;
        scratch.remove(&self.conn.dbname);
        Ok(())
    }
}

/// Databases that must be dropped at teardown because the server outlives
/// us; dropped on a thread of its own if teardown never ran (a panic).
#[derive(Clone)]
struct Scratch(Arc<Mutex<ScratchList>>);

struct ScratchList {
    conn: ConnInfo,
    /// Whether to track anything (the server outlives us).
    enabled: bool,
    names: Vec<String>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.0.lock().map(|l| l.names.clone()).unwrap_or_default();
        f.debug_tuple("Scratch").field(&names).finish()
    }
}

impl Scratch {
    fn new(conn: ConnInfo, enabled: bool) -> Scratch {
        Scratch(Arc::new(Mutex::new(ScratchList {
            conn,
            enabled,
            names: Vec::new(),
        })))
    }

    /// Tracks nothing.
    fn none() -> Scratch {
        Scratch::new(
            ConnInfo {
                host: String::new(),
                port: 0,
                user: String::new(),
                password: None,
                dbname: String::new(),
                tls: crate::backend::tls::Tls::plaintext(),
            },
            false,
        )
    }

    fn add(&self, name: &str) {
        if let Ok(mut l) = self.0.lock() {
            if l.enabled {
                l.names.push(name.to_string());
            }
        }
    }

    fn remove(&self, name: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.names.retain(|n| n != name);
        }
    }

    fn take(&self) -> (ConnInfo, Vec<String>) {
        match self.0.lock() {
            Ok(mut l) => (l.conn.clone(), std::mem::take(&mut l.names)),
            Err(_) => (Scratch::none().take().0, Vec::new()),
        }
    }

    async fn drop_all(&self) {
        let (conn, names) = self.take();
        for name in names {
            if let Err(e) = template::drop_database(&conn, &name).await {
                crate::say!("pgrehearse: teardown: {e}");
            }
        }
    }
}

impl Drop for ScratchList {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let (conn, names) = (self.conn.clone(), std::mem::take(&mut self.names));
        crate::backend::block_on_own_thread(async move {
            for name in names {
                let drop = template::drop_database(&conn, &name);
                if !matches!(
                    tokio::time::timeout(Duration::from_secs(20), drop).await,
                    Ok(Ok(()))
                ) {
                    crate::say!("pgrehearse: warning: could not drop database {name}");
                }
            }
        });
    }
}
