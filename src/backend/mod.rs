//! Where Postgres comes from (README.md "Backends"): an ephemeral local
//! cluster, a container, or an existing server by URL — one interface.
//!
//! Every backend hands out a *work database* that it created and that nothing
//! else uses; `teardown` removes everything the backend started or created.

pub mod available;
mod certs;
#[cfg(feature = "docker")]
mod container;
pub mod db_settings;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "docker")]
mod docker_limits;
#[cfg(feature = "docker")]
mod docker_standby;
pub mod local;
mod local_standby;
pub mod pg_bin;
mod postmaster;
pub mod replica;
pub mod scratch_db;
pub mod tls;
mod tls_handshake;
pub mod url;
pub mod wire_stream;

use std::path::PathBuf;

use crate::error::{Error, Result};

/// How to reach a server. The password never appears in Debug or Display.
#[derive(Clone)]
pub struct ConnInfo {
    /// A host name, an IP address, or an absolute Unix-socket directory.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// The database this backend works in (created by the backend).
    pub dbname: String,
    /// How sessions are secured: the URL's sslmode and certificates for the
    /// url backend, plain text over loopback for the servers we start.
    pub tls: tls::Tls,
}

/// The startup options of the tool's own sessions (see
/// [`ConnInfo::connect_to`]).
const TOOL_SESSION_OPTIONS: &str =
    "-c statement_timeout=0 -c lock_timeout=0 -c idle_in_transaction_session_timeout=0";

impl ConnInfo {
    /// A tokio-postgres config for `dbname` on this server.
    pub fn config_for(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(dbname)
            .application_name("pgrehearse")
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(p) = &self.password {
            c.password(p);
        }
        self.tls.apply(&mut c);
        c
    }

    /// The config for the work database.
    pub fn config(&self) -> tokio_postgres::Config {
        self.config_for(&self.dbname)
    }

    /// A client for `cfg` (a config of this server, see [`ConnInfo::config_for`]);
    /// the connection is driven by a spawned task. Every session pgrehearse
    /// opens goes through here, so how it connects (TLS) is decided in one place.
    pub async fn open(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.tls.open(cfg).await
    }

    /// A session with `cfg` whose stream the caller reads and writes itself
    /// (the load driver's app connections, see `wire_stream`).
    pub async fn open_wire(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> std::result::Result<
        (wire_stream::SessionStream, tokio_postgres::CancelToken),
        wire_stream::OpenError,
    > {
        self.tls.open_wire(cfg).await
    }

    /// Cancel what a session from [`ConnInfo::open_wire`] runs; best effort.
    pub async fn cancel_wire(&self, token: &tokio_postgres::CancelToken) {
        self.tls.cancel_wire(&self.config(), token).await;
    }

    /// A client on `dbname`, named `app` in pg_stat_activity. The tool's
    /// own sessions (provisioning, setup, seeding, the catalog reads, the
    /// observers) run free of a role's, database's or server's
    /// statement_timeout, lock_timeout and idle_in_transaction timeout:
    /// those are for the app and the migration (a 2 s statement_timeout
    /// must not cancel the COPY of a large table). The migration session
    /// keeps them: they are what its steps run under (session.rs).
    pub async fn connect_to(
        &self,
        dbname: &str,
        app: &str,
    ) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut cfg = self.config_for(dbname);
        cfg.application_name(app);
        if app != crate::migration::MIGRATION_APP_NAME {
            cfg.options(TOOL_SESSION_OPTIONS);
        }
        self.open(&cfg).await
    }

    /// A client on the work database, named `app`.
    pub async fn connect(
        &self,
        app: &str,
    ) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.connect_to(&self.dbname, app).await
    }

    /// Like [`ConnInfo::connect_to`], but failing to connect is "no usable
    /// Postgres" (exit 3), with the server named and the password not.
    pub async fn session_on(&self, dbname: &str, app: &str) -> Result<tokio_postgres::Client> {
        self.connect_to(dbname, app)
            .await
            .map_err(|e| self.cannot_connect(dbname, "", &e))
    }

    /// "No usable Postgres" (exit 3) for a failed connection to `dbname`,
    /// `doing` what (e.g. " to drop the scratch database x"): the server
    /// named, the cause, what to do when TLS is the reason, never the password.
    pub fn cannot_connect(&self, dbname: &str, doing: &str, e: &tokio_postgres::Error) -> Error {
        let mut msg = format!(
            "cannot connect to {}{doing}: {}",
            self.redacted_at(dbname),
            crate::pg::error_text(e)
        );
        if let Some(advice) = self.tls.advice(e) {
            msg.push_str(": ");
            msg.push_str(&advice);
        }
        if let Some(pw) = self.password.as_deref().filter(|p| p.len() >= 2) {
            msg = msg.replace(pw, "***");
        }
        Error::NoPostgres(msg)
    }

    /// [`ConnInfo::session_on`] the work database.
    pub async fn session(&self, app: &str) -> Result<tokio_postgres::Client> {
        self.session_on(&self.dbname, app).await
    }

    /// Ask the server to cancel what `token`'s session is running; best effort.
    pub async fn cancel(&self, token: &tokio_postgres::CancelToken) {
        self.tls.cancel(token).await;
    }

    /// Like [`ConnInfo::redacted`] but naming another database.
    pub fn redacted_at(&self, dbname: &str) -> String {
        ConnInfo {
            password: self.password.as_ref().map(|_| String::new()),
            dbname: dbname.to_string(),
            ..self.clone()
        }
        .redacted()
    }

    /// `postgres://user:***@host:port/db`, with `?sslmode=...` for a server
    /// reached by URL; safe to print and to write.
    pub fn redacted(&self) -> String {
        let pw = if self.password.is_some() { ":***" } else { "" };
        format!(
            "postgres://{}{}@{}:{}/{}{}",
            self.user,
            pw,
            self.host,
            self.port,
            self.dbname,
            self.tls.url_suffix()
        )
    }
}

impl std::fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// docker if an engine answers, else local, else exit 3.
    Auto,
    Docker,
    Local,
    Url,
}

/// What the caller wants from a backend.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    pub backend: BackendKind,
    /// --image / PGREHEARSE_IMAGE / scenario image.
    pub image: Option<String>,
    /// --database-url (url backend).
    pub database_url: Option<String>,
    /// Wanted major version, if any ("15", "17").
    pub version: Option<String>,
    /// Scenario settings plus the harness's own, as `-c name=value`.
    pub settings: Vec<(String, String)>,
    /// The server's size: container limits (docker), and a check that the
    /// machine can give it (local, docker). The settings derived from it are
    /// already in `settings`.
    pub size: Option<crate::sizing::ServerSize>,
    /// Start a streaming physical replica next to the primary.
    pub replica: bool,
}

impl BackendOptions {
    /// An ephemeral local cluster with these server settings.
    pub fn local(settings: &[(&str, &str)]) -> BackendOptions {
        BackendOptions {
            backend: BackendKind::Local,
            image: None,
            database_url: None,
            version: None,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            size: None,
            replica: false,
        }
    }

    /// A container from `image` with these server settings.
    pub fn docker(image: &str, settings: &[(&str, &str)]) -> BackendOptions {
        BackendOptions {
            backend: BackendKind::Docker,
            image: Some(image.to_string()),
            ..BackendOptions::local(settings)
        }
    }

    /// A scratch database on the server at `url` (a URL or `key=value`
    /// connection string).
    pub fn url(url: &str) -> BackendOptions {
        BackendOptions {
            backend: BackendKind::Url,
            database_url: Some(url.to_string()),
            ..BackendOptions::local(&[])
        }
    }
}

/// `-c name=value` arguments for a server we start, in the order that
/// decides (the last of a name wins): defaults the settings may override
/// (a parseable log line prefix, English messages), the settings, then what
/// the backend `forced` (its port, its addresses), which nothing overrides.
pub(crate) fn server_args(settings: &[(String, String)], forced: &[(&str, &str)]) -> Vec<String> {
    let defaults = [("log_line_prefix", "%m [%p] "), ("lc_messages", "C")];
    let owned = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    owned(&defaults)
        .into_iter()
        .chain(settings.iter().cloned())
        .chain(owned(forced))
        .flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")])
        .collect()
}

/// The last `n` lines of a server's log, for an error that quotes it.
pub(crate) fn last_lines(log: &str, n: usize) -> String {
    let tail: Vec<&str> = log.lines().rev().take(n).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// A server log we can tail for `log_lock_waits` lines, where we own the server.
#[derive(Debug, Clone)]
pub enum ServerLog {
    /// A file written by the server (local backend), or the container's
    /// stderr followed into a file (docker backend).
    File(PathBuf),
}

/// A running Postgres with a work database.
pub enum Backend {
    Local(local::LocalCluster),
    #[cfg(feature = "docker")]
    Docker(docker::DockerPostgres),
    Url(url::UrlServer),
}

impl Backend {
    /// Provision according to `opts`; `auto` picks docker, then local.
    /// Errors map to exit 3 (`Error::NoPostgres`) when nothing is usable.
    pub async fn start(opts: &BackendOptions) -> Result<Backend> {
        match opts.backend {
            BackendKind::Local => Ok(Backend::Local(local::LocalCluster::start(opts).await?)),
            BackendKind::Url => Ok(Backend::Url(url::UrlServer::start(opts).await?)),
            #[cfg(feature = "docker")]
            BackendKind::Docker => Ok(Backend::Docker(docker::DockerPostgres::start(opts).await?)),
            #[cfg(not(feature = "docker"))]
            BackendKind::Docker => Err(crate::Error::NoPostgres(
                "this build has no docker backend (built without the `docker` feature)".into(),
            )),
            BackendKind::Auto => auto(opts).await,
        }
    }

    pub fn conn(&self) -> &ConnInfo {
        match self {
            Backend::Local(t) => t.conn(),
            #[cfg(feature = "docker")]
            Backend::Docker(t) => t.conn(),
            Backend::Url(t) => t.conn(),
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Local(_) => BackendKind::Local,
            #[cfg(feature = "docker")]
            Backend::Docker(_) => BackendKind::Docker,
            Backend::Url(_) => BackendKind::Url,
        }
    }

    /// The server log, where we own the server and can read it.
    pub fn server_log(&self) -> Option<ServerLog> {
        match self {
            Backend::Local(t) => t.server_log(),
            #[cfg(feature = "docker")]
            Backend::Docker(t) => t.server_log(),
            Backend::Url(_) => None,
        }
    }

    /// The server's `server_version_num` (e.g. 150018), read at start.
    pub fn server_version_num(&self) -> u32 {
        match self {
            Backend::Local(t) => t.server_version_num(),
            #[cfg(feature = "docker")]
            Backend::Docker(t) => t.server_version_num(),
            Backend::Url(t) => t.server_version_num(),
        }
    }

    /// The streaming replica, described for run.json, when one was started.
    pub fn replica(&self) -> Option<String> {
        match self {
            Backend::Local(t) => t.replica(),
            #[cfg(feature = "docker")]
            Backend::Docker(t) => t.replica(),
            Backend::Url(_) => None,
        }
    }

    /// What differs from what the rehearsals asked for or from the
    /// database they stand in for (the url backend's settings not copied
    /// or not applied, another version): run.json `warnings`.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Backend::Url(t) => t.warnings().to_vec(),
            _ => Vec::new(),
        }
    }

    /// The scenario settings in force, where the backend applies only some
    /// (url); None where the server was started with all of them.
    pub fn settings_in_force(&self) -> Option<Vec<(String, String)>> {
        match self {
            Backend::Url(t) => Some(t.settings_in_force().to_vec()),
            _ => None,
        }
    }

    /// Human description for run.json and progress output (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(t) => t.describe(),
            #[cfg(feature = "docker")]
            Backend::Docker(t) => t.describe(),
            Backend::Url(t) => t.describe(),
        }
    }

    /// Stop and remove everything this backend started or created. Safe to
    /// call once; errors are reported, not fatal.
    pub async fn teardown(self) -> Result<()> {
        match self {
            Backend::Local(t) => t.teardown().await,
            #[cfg(feature = "docker")]
            Backend::Docker(t) => t.teardown().await,
            Backend::Url(t) => t.teardown().await,
        }
    }
}

async fn auto(opts: &BackendOptions) -> Result<Backend> {
    // An engine that answers but cannot give us a container (typically: the
    // image is not there and no registry is reachable) falls back to local.
    #[allow(unused_mut)]
    let mut docker_why = "no Docker engine answered".to_string();
    #[cfg(feature = "docker")]
    if docker::engine_answers().await {
        match docker::DockerPostgres::start(opts).await {
            Ok(t) => return Ok(Backend::Docker(t)),
            Err(crate::Error::NoPostgres(why)) => {
                docker_why = format!("the Docker engine gave no container: {why}")
            }
            Err(e) => return Err(e),
        }
    }
    match local::LocalCluster::start(opts).await {
        Ok(t) => Ok(Backend::Local(t)),
        Err(crate::Error::NoPostgres(why)) => Err(crate::Error::NoPostgres(format!(
            "{docker_why}, and no local cluster could be started ({why}).\n\
             Either start a Docker engine (e.g. `dockerd &`) and use --backend docker,\n\
             install the Postgres server binaries (Debian: apt-get install postgresql),\n\
             or point at a server with --backend url --database-url postgres://..."
        ))),
        Err(e) => Err(e),
    }
}

/// Run `f` to completion on a runtime of its own in a thread of its own,
/// and wait for it: cleanup from a `Drop`, which may run inside or outside
/// a runtime.
pub(crate) fn block_on_own_thread<F>(f: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(f);
    })
    .join();
}
