//! Command-line interface: raw arguments (clap) validated into a [`Plan`] of
//! plain library options (`crate::options`), then dispatched. The library
//! never sees clap: the dependency goes cli → rehearsal, report, scenario.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::BackendKind;
use crate::error::{exit, Error, Result};
use crate::init::InitOptions;
use crate::matrix;
use crate::options::{OutputMode, RunOptions, SeedCommand, ServerOptions, SummaryFormat};
use crate::scenario::{self, Overrides, Scenario};
use crate::sizing::{parse_memory, ServerSize, MAX_CPUS};
use crate::sweep::SweepOptions;

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
        #[arg(long, value_name = "RATE,...")]
        rate: Option<String>,
        /// The size (rows of the largest table) to extrapolate to: 400M.
        #[arg(long, value_name = "ROWS")]
        extrapolate: Option<String>,
        /// --rows is a comma-separated list of sizes: 100k,400k,1.6M.
        #[command(flatten)]
        args: RunArgs,
    },
    /// Validate scenario files and print the plan; touches no database.
    Check {
        #[arg(required = true, value_name = "SCENARIO")]
        scenarios: Vec<PathBuf>,
        /// --rows / --scale are applied so the plan shows the real row counts.
        #[arg(long)]
        rows: Option<String>,
        #[arg(long)]
        scale: Option<f64>,
        /// Rehearse the [migrations] files added since this git revision.
        #[arg(long, value_name = "REV")]
        since_git: Option<String>,
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
        #[arg(long)]
        rows: Option<String>,
        /// Multiply every table's row count.
        #[arg(long)]
        scale: Option<f64>,
        /// Seed for all generated data.
        #[arg(long, default_value_t = 1)]
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
        /// Override a budget: KEY=VALUE (e.g. p99_ms=50); repeatable.
        #[arg(long = "budget", value_name = "KEY=VALUE")]
        budgets: Vec<String>,
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
    /// Rows of the largest table (others scale with it): 250000, 250k, 2M.
    #[arg(long)]
    pub rows: Option<String>,
    /// Multiply every table's row count.
    #[arg(long)]
    pub scale: Option<f64>,
    /// Rehearse the [migrations] files added since this git revision (e.g.
    /// origin/main): the pull request's pending migrations. Overrides the
    /// scenario's `rehearse`.
    #[arg(long, value_name = "REV")]
    pub since_git: Option<String>,
    /// Traffic before the first step (e.g. 1s), instead of the scenario's
    /// [workload] before; scripts keep their `at`.
    #[arg(long, value_name = "DURATION")]
    pub before: Option<String>,
    /// Traffic after the last step, instead of the scenario's [workload] after.
    #[arg(long, value_name = "DURATION")]
    pub after: Option<String>,
    /// Where run directories go.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Seed for all generated data and parameters.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override a budget: KEY=VALUE (e.g. p99_ms=50); repeatable.
    #[arg(long = "budget", value_name = "KEY=VALUE")]
    pub budgets: Vec<String>,
    /// CPUs of the server (a container's CPU limit; parallel workers are
    /// derived from it); wins over the scenario's [postgres] size.
    #[arg(long, value_name = "N")]
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

/// Parse `250000`, `250_000`, `250k`, `2M`, `1.5M`, `1G` into a row count.
pub fn parse_rows(s: &str) -> std::result::Result<u64, String> {
    parse_count("--rows", s)
}

/// A row count (as [`parse_rows`]); errors name `flag`.
pub fn parse_count(flag: &str, s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G' | 'b' | 'B') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{flag}: `{s}` is not a row count (examples: 250000, 250k, 2M)"))?;
    let rows = v * mult;
    if !(1.0..=1e13).contains(&rows) || rows.fract() != 0.0 {
        return Err(format!(
            "{flag}: `{s}` must be a whole number of rows between 1 and 10^13"
        ));
    }
    Ok(rows as u64)
}

/// What `run` and `compare` change in the scenarios they load.
fn run_overrides(args: &RunArgs) -> Result<Overrides> {
    Ok(Overrides {
        before: traffic_override("--before", &args.before)?,
        after: traffic_override("--after", &args.after)?,
        ..overrides(&args.rows, args.scale, &args.since_git)?
    })
}

fn overrides(
    rows: &Option<String>,
    scale: Option<f64>,
    since_git: &Option<String>,
) -> Result<Overrides> {
    let rows = rows
        .as_deref()
        .map(parse_rows)
        .transpose()
        .map_err(Error::Usage)?;
    if let Some(f) = scale {
        if !(f.is_finite() && f > 0.0) {
            return Err(Error::Usage(format!(
                "--scale: {f} must be a positive number"
            )));
        }
    }
    if rows.is_some() && scale.is_some() {
        return Err(Error::Usage("--rows and --scale cannot be combined".into()));
    }
    if let Some(rev) = since_git {
        if rev.trim().is_empty() || rev.starts_with('-') {
            return Err(Error::Usage(format!(
                "--since-git: `{rev}` is not a git revision (e.g. origin/main)"
            )));
        }
    }
    Ok(Overrides {
        rows,
        scale,
        since_git: since_git.clone(),
        ..Overrides::default()
    })
}

/// `--before` / `--after`: a duration such as `1s` or `500ms`.
fn traffic_override(flag: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|s| scenario::parse_duration(s).map_err(|e| Error::Usage(format!("{flag}: {e}"))))
        .transpose()
}

/// Load every file; report the problems of all of them, not just the first.
pub fn load_all(paths: &[PathBuf], ov: &Overrides) -> Result<Vec<Scenario>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match scenario::load(p, ov) {
            Ok(s) => ok.push(s),
            Err(Error::Scenario(es)) => errors.extend(es),
            Err(e) => return Err(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(Error::Scenario(errors))
    }
}

/// A command line, validated: what to do, with plain library options.
pub enum Plan {
    Check(Vec<Scenario>),
    Run {
        scenarios: Vec<Scenario>,
        options: RunOptions,
    },
    Sweep {
        scenarios: Vec<Scenario>,
        options: SweepOptions,
    },
    Compare {
        sides: Box<[Scenario; 2]>,
        options: RunOptions,
    },
    Report {
        run_dir: PathBuf,
        format: SummaryFormat,
        budgets: Vec<(String, f64)>,
    },
    Init {
        options: InitOptions,
        quiet: bool,
    },
    Seed(Box<SeedCommand>),
    CacheLs,
    CacheClean {
        older_than: Option<std::time::Duration>,
    },
}

/// Parse the process arguments and run. Returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match plan(cli).and_then(run) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            crate::printer::error(&e, None);
            ExitCode::from(e.exit_code())
        }
    }
}

/// Validate raw arguments: every scenario file loaded (all their problems
/// reported at once), every flag checked, before anything runs.
pub fn plan(cli: Cli) -> Result<Plan> {
    match cli.command {
        Command::Check {
            scenarios,
            rows,
            scale,
            since_git,
        } => Ok(Plan::Check(load_all(
            &scenarios,
            &overrides(&rows, scale, &since_git)?,
        )?)),
        Command::Run { scenarios, args } => {
            let mut scenarios = load_all(&scenarios, &run_overrides(&args)?)?;
            let options = run_options(args, &mut scenarios)?;
            Ok(Plan::Run { scenarios, options })
        }
        Command::Sweep {
            scenario,
            rate,
            extrapolate,
            args,
        } => sweep_plan(scenario, rate, extrapolate, args),
        Command::Compare {
            scenarios,
            pair,
            scenarios_dir,
            args,
        } => {
            let files = crate::compare::files(&scenarios, pair.as_deref(), &scenarios_dir)?;
            let mut loaded = load_all(&files, &run_overrides(&args)?)?;
            let options = run_options(args, &mut loaded)?;
            let [a, b]: [Scenario; 2] = loaded.try_into().expect("two files, two scenarios");
            crate::compare::check_comparable(&a, &b)?;
            Ok(Plan::Compare {
                sides: Box::new([a, b]),
                options,
            })
        }
        Command::Init {
            database_url,
            tables,
            schema,
            include_values,
            quiet,
        } => {
            let tables = match tables {
                None => None,
                Some(list) => {
                    let names: Vec<String> = list.iter().map(|t| t.trim().to_string()).collect();
                    if names.iter().any(String::is_empty) {
                        return Err(Error::Usage(
                            "--tables: expected table names separated by commas, e.g. --tables orders,customers"
                                .into(),
                        ));
                    }
                    Some(names)
                }
            };
            if schema.trim().is_empty() {
                return Err(Error::Usage("--schema: expected a schema name".into()));
            }
            Ok(Plan::Init {
                options: InitOptions {
                    database_url,
                    schema: schema.trim().to_string(),
                    tables,
                    include_values,
                },
                quiet,
            })
        }
        Command::Seed {
            scenario,
            database_url,
            rows,
            scale,
            seed,
            replace,
            quiet,
            verbose,
        } => {
            let mut loaded = load_all(&[scenario], &overrides(&rows, scale, &None)?)?;
            Ok(Plan::Seed(Box::new(SeedCommand {
                scenario: loaded.remove(0),
                database_url,
                seed,
                replace,
                output: OutputMode {
                    summary: if quiet {
                        SummaryFormat::Verdict
                    } else {
                        SummaryFormat::Text
                    },
                    chatter: !quiet,
                    verbose,
                },
            })))
        }
        Command::Cache { action } => match action {
            CacheAction::Ls => Ok(Plan::CacheLs),
            CacheAction::Clean { older_than } => Ok(Plan::CacheClean {
                older_than: older_than
                    .as_deref()
                    .map(crate::cache::parse_age)
                    .transpose()
                    .map_err(Error::Usage)?,
            }),
        },
        Command::Report {
            run_dir,
            json,
            budgets,
        } => Ok(Plan::Report {
            run_dir,
            format: if json {
                SummaryFormat::Json
            } else {
                SummaryFormat::Text
            },
            budgets: parse_budgets(&budgets)?,
        }),
    }
}

/// Carry out a plan; Ok carries the exit code.
pub fn run(plan: Plan) -> Result<u8> {
    match plan {
        Plan::Check(scenarios) => {
            for s in scenarios {
                crate::printer::stdout(&(scenario::load::describe(&s) + "\n"))?;
            }
            Ok(exit::OK)
        }
        Plan::Run { scenarios, options } => {
            init_logging(options.output.verbose);
            Ok(runtime()?.block_on(matrix::rehearse_all(&scenarios, &options)))
        }
        Plan::Sweep { scenarios, options } => {
            init_logging(options.run.output.verbose);
            Ok(runtime()?.block_on(crate::sweep::sweep(&scenarios, &options)))
        }
        Plan::Seed(cmd) => {
            init_logging(cmd.output.verbose);
            runtime()?.block_on(crate::seed::staging::seed_command(&cmd))
        }
        Plan::CacheLs => crate::cache::commands::ls(),
        Plan::CacheClean { older_than } => {
            runtime()?.block_on(crate::cache::commands::clean(older_than))
        }
        Plan::Compare { sides, options } => {
            init_logging(options.output.verbose);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::new)?;
            let [a, b] = &*sides;
            Ok(runtime.block_on(crate::compare::compare(a, b, &options)))
        }
        Plan::Report {
            run_dir,
            format,
            budgets,
        } => crate::report::rerender::rerender(&run_dir, format, &budgets),
        Plan::Init { options, quiet } => init(&options, quiet),
    }
}

/// `init`: the scenario on stdout, what was read on stderr.
fn init(options: &InitOptions, quiet: bool) -> Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::new)?;
    if !quiet {
        eprintln!(
            "init: reading {} (schema {}, read-only)",
            crate::backend::url::redact_url(&options.database_url),
            options.schema
        );
    }
    let (text, summary) = runtime.block_on(crate::init::init(options))?;
    crate::printer::stdout(&text)?;
    if !quiet {
        let statements = match summary.statements {
            Some(n) => format!("{n} statements from pg_stat_statements"),
            None => "no pg_stat_statements: an example workload".to_string(),
        };
        eprintln!("init: {} tables, {statements}", summary.tables);
    }
    Ok(exit::OK)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::new)?)
}

/// `-v` / `-vv`: pgrehearse's own events on stderr, with the time since
/// start. Other crates' events stay off: they would bury ours.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => return,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(Targets::new().with_target("pgrehearse", level))
        .try_init();
}

/// The options of a rehearsing command; every `--budget` applied to each
/// scenario (the budget in force, which run.json records).
fn run_options(args: RunArgs, scenarios: &mut [Scenario]) -> Result<RunOptions> {
    let budgets = parse_budgets(&args.budgets)?;
    for s in scenarios.iter_mut() {
        for (key, value) in &budgets {
            s.budget
                .apply(key, *value)
                .map_err(|e| Error::Usage(format!("--budget: {e}")))?;
        }
    }
    let backend = BackendKind::from(args.backend);
    if backend == BackendKind::Url && args.database_url.is_none() {
        return Err(Error::Usage(
            "--backend url needs --database-url postgres://user@host:port/db".into(),
        ));
    }
    apply_server_flags(&args, scenarios)?;
    if backend == BackendKind::Url {
        refuse_url_replica(&args, scenarios)?;
    } else {
        refuse_lag_budget_without_replica(scenarios)?;
    }
    let versions = match &args.pg_version {
        Some(raw) => parse_versions(raw).map_err(Error::Usage)?,
        None => Vec::new(),
    };
    if backend == BackendKind::Url && !versions.is_empty() {
        return Err(Error::Usage(
            "--pg-version picks the servers pgrehearse starts; the url backend rehearses \
             on the server of --database-url, whatever its version"
                .into(),
        ));
    }
    if versions.len() > 1 && args.image.is_some() {
        return Err(Error::Usage(format!(
            "--image names one image, but --pg-version asks for {}: drop --image (each \
             version runs on pgrehearse/postgres:<major>, or on local binaries)",
            versions.join(", ")
        )));
    }
    let image_env = std::env::var("PGREHEARSE_IMAGE")
        .ok()
        .filter(|i| !i.trim().is_empty());
    let image_from_env = args.image.is_none() && image_env.is_some();
    if backend == BackendKind::Url && args.reuse {
        return Err(Error::Usage(
            "--reuse keeps servers pgrehearse starts (local, docker); the url backend \
             works in scratch databases it always drops"
                .into(),
        ));
    }
    Ok(RunOptions {
        server: ServerOptions {
            backend,
            image: args.image.or(image_env),
            database_url: args.database_url,
            version: None,
            image_from_env,
            reuse: args.reuse,
        },
        versions,
        out: args.out,
        seed: args.seed,
        budgets,
        output: OutputMode {
            summary: match (args.json, args.quiet) {
                (true, _) => SummaryFormat::Json,
                (false, true) => SummaryFormat::Verdict,
                (false, false) => SummaryFormat::Text,
            },
            chatter: !args.quiet,
            verbose: args.verbose,
        },
    })
}

/// `sweep`: the size and rate lists checked (exit 2 naming the flag), the
/// scenario loaded once per size.
fn sweep_plan(
    scenario: PathBuf,
    rate: Option<String>,
    extrapolate: Option<String>,
    mut args: RunArgs,
) -> Result<Plan> {
    let Some(rows) = args.rows.take() else {
        return Err(Error::Usage(
            "--rows: sweep needs the sizes to rehearse, e.g. --rows 100k,400k,1.6M".into(),
        ));
    };
    if args.scale.is_some() {
        return Err(Error::Usage(
            "--scale: sweep sizes come from --rows; --scale cannot be combined with it".into(),
        ));
    }
    let mut sizes = parse_list("--rows", &rows, |s| parse_count("--rows", s))?;
    sizes.sort_unstable();
    let rates = match rate {
        None => vec![None],
        Some(r) => parse_list("--rate", &r, parse_rate)?
            .into_iter()
            .map(Some)
            .collect(),
    };
    let extrapolate = extrapolate
        .map(|e| parse_count("--extrapolate", &e))
        .transpose()
        .map_err(Error::Usage)?;
    // --rows is the sweep's list: each size is loaded as `run --rows N`.
    let base = run_overrides(&args)?;
    let mut scenarios = Vec::new();
    for &n in &sizes {
        let ov = Overrides {
            rows: Some(n),
            ..base.clone()
        };
        scenarios.extend(load_all(std::slice::from_ref(&scenario), &ov)?);
    }
    let run = run_options(args, &mut scenarios)?;
    Ok(Plan::Sweep {
        scenarios,
        options: SweepOptions {
            sizes,
            rates,
            extrapolate,
            run,
        },
    })
}

/// A comma-separated list, each item parsed by `one`; empty items and
/// repeats are errors naming `flag`.
fn parse_list<T: PartialEq + std::fmt::Display>(
    flag: &str,
    raw: &str,
    one: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::new();
    for item in raw.split(',') {
        if item.trim().is_empty() {
            return Err(Error::Usage(format!(
                "{flag}: `{raw}` has an empty item; expected values separated by commas, e.g. {flag} {}",
                if flag == "--rate" { "200,800" } else { "100k,400k,1.6M" }
            )));
        }
        let v = one(item.trim()).map_err(Error::Usage)?;
        if out.contains(&v) {
            return Err(Error::Usage(format!("{flag}: {v} is listed twice")));
        }
        out.push(v);
    }
    Ok(out)
}

/// `--pg-version 15,17,18`, checked for form only (exit 2): items separated
/// by commas, none empty or repeated, majors rather than minors. Whether
/// pgrehearse knows a version and the machine has it is decided later
/// (exit 3, with what is available).
pub fn parse_versions(raw: &str) -> std::result::Result<Vec<String>, String> {
    let bad = |why: String| {
        format!(
            "--pg-version: `{raw}`: {why}; expected major versions separated by commas, e.g. 15,17"
        )
    };
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',') {
        let v = item.trim();
        if v.is_empty() {
            return Err(bad("an empty item".into()));
        }
        if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return Err(bad(format!("`{v}` is not a version")));
        }
        if let Some((major, _)) = v.split_once('.').filter(|(m, _)| m.parse::<u32>().is_ok()) {
            return Err(bad(format!(
                "`{v}` is a minor version; give its major, {major}"
            )));
        }
        if out.iter().any(|o| o == v) {
            return Err(bad(format!("{v} is listed twice")));
        }
        out.push(v.to_string());
    }
    Ok(out)
}

/// A rate in queries/s: a positive number, `k` for thousands.
fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    let (num, mult) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * mult),
        _ => Err(format!(
            "--rate: `{s}` is not a rate in queries/s (examples: 200, 1.5k)"
        )),
    }
}

/// `--cpus`, `--memory` and `--replica` over each scenario's `[postgres]`:
/// the flags win, field by field.
fn apply_server_flags(args: &RunArgs, scenarios: &mut [Scenario]) -> Result<()> {
    if let Some(c) = args.cpus.filter(|c| !(1..=MAX_CPUS).contains(c)) {
        return Err(Error::Usage(format!(
            "--cpus: {c} is out of range; expected 1..={MAX_CPUS}"
        )));
    }
    let flags = ServerSize {
        cpus: args.cpus,
        memory: args
            .memory
            .as_deref()
            .map(parse_memory)
            .transpose()
            .map_err(|e| Error::Usage(format!("--memory: {e}")))?,
        cpus_from: "--cpus".into(),
        memory_from: "--memory".into(),
    };
    for s in scenarios {
        if !flags.is_empty() {
            let size = s.postgres.size.clone().unwrap_or_default();
            s.postgres.size = Some(size.overlay(&flags));
        }
        s.postgres.replica |= args.replica;
    }
    Ok(())
}

/// The url backend's server is not ours: no replica can be started there.
fn refuse_url_replica(args: &RunArgs, scenarios: &[Scenario]) -> Result<()> {
    if args.replica {
        return Err(Error::Usage(
            "--replica: the url backend cannot start a replica (the server is not pgrehearse's);              use --backend local or docker, or drop --replica"
                .into(),
        ));
    }
    if let Some(s) = scenarios.iter().find(|s| s.postgres.replica) {
        return Err(Error::Usage(format!(
            "{}: [postgres] replica = true, but the url backend cannot start a replica (the \
             server is not pgrehearse's); use --backend local or docker",
            s.path.display()
        )));
    }
    Ok(())
}

/// A replica-lag budget on a server of ours without a replica could only
/// fail: say so before anything runs. (A url server may have replicas of
/// its own, which server.csv samples: allowed there.)
/// (`--budget` is applied to each scenario's budget by now.)
fn refuse_lag_budget_without_replica(scenarios: &[Scenario]) -> Result<()> {
    match scenarios
        .iter()
        .find(|s| !s.postgres.replica && s.budget.max_replica_lag_ms.is_some())
    {
        Some(s) => Err(Error::Usage(format!(
            "{}: the budget max_replica_lag_ms needs a replica to measure; set \
             [postgres] replica = true or pass --replica",
            s.path.display()
        ))),
        None => Ok(()),
    }
}

fn parse_budgets(raw: &[String]) -> Result<Vec<(String, f64)>> {
    raw.iter()
        .map(|s| {
            crate::analyze::parse_budget_override(s)
                .map_err(|e| Error::Usage(format!("--budget: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lists_are_checked_for_form_only() {
        assert_eq!(parse_versions("15,17,18").unwrap(), ["15", "17", "18"]);
        assert_eq!(parse_versions(" 15 , 17").unwrap(), ["15", "17"]);
        // Known or not is decided against the machine (exit 3), not here.
        assert_eq!(parse_versions("9,99,abc").unwrap(), ["9", "99", "abc"]);
        for (bad, says) in [
            ("", "an empty item"),
            ("15,,17", "an empty item"),
            ("15,", "an empty item"),
            ("15;17", "`15;17` is not a version"),
            ("15,15", "15 is listed twice"),
            ("17.2", "give its major, 17"),
        ] {
            let e = parse_versions(bad).unwrap_err();
            assert!(
                e.starts_with("--pg-version: ") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn rows_accept_suffixes() {
        assert_eq!(parse_rows("250000"), Ok(250_000));
        assert_eq!(parse_rows("250_000"), Ok(250_000));
        assert_eq!(parse_rows("250k"), Ok(250_000));
        assert_eq!(parse_rows("1.5M"), Ok(1_500_000));
        assert!(parse_rows("0").is_err());
        assert!(parse_rows("-5").is_err());
        assert!(parse_rows("1.5").is_err());
        assert!(parse_rows("lots").is_err());
    }
}
