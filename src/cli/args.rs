//! What the command line says: clap's argument structs (the subcommands and
//! their flags, the flags every rehearsing command shares) and `--backend`'s
//! names. Nothing here is validated; plan.rs turns these into a `Plan`.
//!
//! The doc comments below are `--help` text, which clap prints as written:
//! `[migrations]` there names a scenario table, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::BackendKind;

#[derive(Debug, Parser)]
#[command(
    name = "pgrehearse",
    version,
    about = "Rehearse a PostgreSQL schema migration under production-like load and measure \
             every lock, wait and latency change it causes."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rehearse: provision Postgres, seed, run traffic and the migration, write a run directory per scenario.
    Run {
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Rehearse two forms of a change (A.toml B.toml, or a pair's naive and
    /// safe file) on one server, the same data and the same traffic; write
    /// both run directories and a compare directory side by side.
    Compare {
        #[arg(value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
        /// The pair whose naive and safe files to compare, found in
        /// --scenarios-dir by their `pair` and `variant` keys.
        #[arg(long)]
        pair: Option<String>,
        /// Where --pair looks.
        #[arg(long, default_value = "scenarios")]
        scenarios_dir: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Rehearse one scenario at several sizes (and rates, and with
    /// --pg-version versions), fit each figure against size and
    /// extrapolate: sweep.csv/.json/.md/.svg/.png in a sweep-<stamp>/
    /// directory beside the runs.
    Sweep {
        #[arg(value_name = "SCENARIO")]
        scenario: PathBuf,
        /// Open-loop rates in queries/s, comma-separated (default: the scenario's).
        #[arg(allow_hyphen_values = true, long, value_name = "RATE,...")]
        rate: Option<String>,
        /// The size (rows of the largest table) to extrapolate to: 400M.
        #[arg(allow_hyphen_values = true, long, value_name = "ROWS")]
        extrapolate: Option<String>,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Validate scenario files and print the plan; touches no database.
    Check {
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
        /// --rows / --scale are applied so the plan shows the real row counts.
        #[arg(allow_hyphen_values = true, long)]
        rows: Option<String>,
        #[arg(allow_hyphen_values = true, long)]
        scale: Option<f64>,
        /// Rehearse the [migrations] files added since this git revision.
        #[arg(long, value_name = "REV")]
        since_git: Option<String>,
        /// No plan on stdout: only problems (stderr) and the exit code.
        #[arg(short, long)]
        quiet: bool,
        /// The backend `run` will use: a budget that needs a replica is
        /// refused for a server of pgrehearse's without one, as `run`
        /// refuses it, but not for url (its server may have replicas).
        #[arg(long, value_enum, default_value = "auto", env = "PGREHEARSE_BACKEND")]
        backend: BackendArg,
    },
    /// Write a scenario for a live database: its tables, the shape of their
    /// data (from pg_stats) and its busiest statements (from
    /// pg_stat_statements), on stdout. Reads catalogs and statistics only, in
    /// one read-only transaction.
    Init {
        /// The source database: postgres://user@host:port/db or a conninfo
        /// string; the password may also come from PGPASSWORD.
        #[arg(long, env = "PGREHEARSE_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Only these tables (comma-separated), plus the tables their
        /// foreign keys reference.
        #[arg(long, value_delimiter = ',', value_name = "TABLE,...")]
        tables: Option<Vec<String>>,
        /// The schema to read.
        #[arg(long, default_value = "public")]
        schema: String,
        /// Copy the most common values of text columns (they may be
        /// sensitive); by default text is synthetic.
        #[arg(long)]
        include_values: bool,
        /// No progress on stderr, only errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Seed an existing database with a scenario's tables and rows (staging
    /// data; also how seeding is measured). No rehearsal, no scratch database.
    Seed {
        #[arg(value_name = "SCENARIO")]
        scenario: PathBuf,
        /// The database to seed (its tables are created there).
        #[arg(long, env = "PGREHEARSE_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Rows of the largest table (others scale with it): 250000, 250k, 2M.
        #[arg(allow_hyphen_values = true, long)]
        rows: Option<String>,
        /// Multiply every table's row count.
        #[arg(allow_hyphen_values = true, long)]
        scale: Option<f64>,
        /// Seed for all generated data.
        #[arg(allow_hyphen_values = true, long, default_value_t = crate::options::DEFAULT_SEED)]
        seed: u64,
        /// Drop the scenario's tables first if the database has them.
        #[arg(long)]
        replace: bool,
        /// No progress, only errors.
        #[arg(short, long)]
        quiet: bool,
        /// Log what seeding does on stderr.
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// The cache of kept servers and templates (`run --reuse`).
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Re-render the reports of a run directory from its CSVs and run.json.
    Report {
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// Print summary.json on stdout.
        #[arg(long)]
        json: bool,
        /// Only the verdict line on stdout, as `run -q` prints it.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
        /// Judge the run against another limit: KEY=VALUE (e.g. p99_ms=50);
        /// repeatable. A what-if: the run directory's reports stay as the
        /// run judged them; the verdict is printed (and its exit code
        /// returned), and written only with --out.
        #[arg(long = "budget", value_name = "KEY=VALUE")]
        budgets: Vec<String>,
        /// Write summary.json, summary.md, index.html and the charts into
        /// DIR (created) instead of the run directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// List kept servers and their templates: key, size, age, scenarios.
    Ls,
    /// Remove kept servers and templates: everything, or what was not used
    /// for --older-than (e.g. 7d, 12h).
    Clean {
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
    },
}

/// Flags of the commands that rehearse.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Where Postgres comes from.
    #[arg(long, value_enum, default_value = "auto", env = "PGREHEARSE_BACKEND")]
    pub backend: BackendArg,
    /// Container image for the docker backend [env: PGREHEARSE_IMAGE]; with
    /// several --pg-version, only PGREHEARSE_IMAGE, for the version its tag names.
    #[arg(long)]
    pub image: Option<String>,
    /// Rehearse on each of these PostgreSQL major versions, one run directory
    /// each and the results side by side: 15,17,18.
    #[arg(long, value_name = "MAJORS")]
    pub pg_version: Option<String>,
    /// An existing server (url backend); the password may also come from PGPASSWORD.
    #[arg(long, env = "PGREHEARSE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Rows of the largest table (others scale with it): 250000, 250k, 2M;
    /// for sweep, a comma-separated list of sizes: 100k,400k,1.6M.
    #[arg(allow_hyphen_values = true, long)]
    pub rows: Option<String>,
    /// Multiply every table's row count (not with sweep: its sizes are
    /// --rows).
    #[arg(allow_hyphen_values = true, long)]
    pub scale: Option<f64>,
    /// Rehearse the [migrations] files added since this git revision (e.g.
    /// origin/main): the pull request's pending migrations. Overrides the
    /// scenario's `rehearse`.
    #[arg(long, value_name = "REV")]
    pub since_git: Option<String>,
    /// Traffic before the first step (e.g. 1s), instead of the scenario's
    /// [workload] before; scripts keep their `at`.
    #[arg(allow_hyphen_values = true, long, value_name = "DURATION")]
    pub before: Option<String>,
    /// Traffic after the last step, instead of the scenario's [workload] after.
    #[arg(allow_hyphen_values = true, long, value_name = "DURATION")]
    pub after: Option<String>,
    /// Where run directories go.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Seed for all generated data and parameters.
    #[arg(allow_hyphen_values = true, long, default_value_t = crate::options::DEFAULT_SEED)]
    pub seed: u64,
    /// Override a budget: KEY=VALUE (e.g. p99_ms=50); repeatable.
    #[arg(long = "budget", value_name = "KEY=VALUE")]
    pub budgets: Vec<String>,
    /// CPUs of the server (a container's CPU limit; parallel workers are
    /// derived from it); wins over the scenario's [postgres] size.
    #[arg(long, value_name = "N", value_parser = cpus)]
    pub cpus: Option<u32>,
    /// Memory of the server, e.g. 16GB (a container's memory limit;
    /// shared_buffers and others are derived from it).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Start a streaming physical replica next to the primary and sample
    /// its replay lag (local and docker backends).
    #[arg(long)]
    pub replica: bool,
    /// Keep the local cluster or container and its seeded templates in the
    /// cache between invocations ($XDG_CACHE_HOME/pgrehearse, else
    /// ~/.cache/pgrehearse); see `pgrehearse cache`.
    #[arg(long)]
    pub reuse: bool,
    /// Print the machine-readable summary (summary.json) on stdout.
    #[arg(long)]
    pub json: bool,
    /// Less output: no progress, only the verdict and errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Log what pgrehearse does on stderr: -v each stage with its duration,
    /// each statement of the migration, each retry; -vv also the observers'
    /// polls (summarised per second).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// `--backend`: the command line's names for [`BackendKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// docker if an engine answers, else local, else exit 3.
    Auto,
    /// A container from --image / PGREHEARSE_IMAGE / the scenario.
    Docker,
    /// An ephemeral cluster from this machine's Postgres binaries.
    Local,
    /// A scratch database on the server of --database-url.
    Url,
}

impl From<BackendArg> for BackendKind {
    fn from(b: BackendArg) -> BackendKind {
        match b {
            BackendArg::Auto => BackendKind::Auto,
            BackendArg::Docker => BackendKind::Docker,
            BackendArg::Local => BackendKind::Local,
            BackendArg::Url => BackendKind::Url,
        }
    }
}

/// `--cpus`: a whole number of CPUs, as a container limit takes them here.
fn cpus(v: &str) -> Result<u32, String> {
    let most = crate::sizing::MAX_CPUS;
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=most).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number of CPUs from 1 to {most}")),
    }
}
