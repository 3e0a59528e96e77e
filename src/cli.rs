//! Command-line interface: raw arguments (clap) validated into a [`Plan`] of
//! plain library options (`crate::options`), then dispatched. The library
//! never sees clap: the dependency goes cli → rehearsal, report, scenario.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::BackendKind;
use crate::error::{exit, Error, Result};
use crate::init::InitOptions;
use crate::options::{OutputMode, RunOptions, ServerOptions, SummaryFormat};
use crate::rehearsal;
use crate::scenario::{self, Overrides, Scenario};
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
    /// Rehearse one scenario at several sizes (and rates), fit each figure
    /// against size and extrapolate: sweep.csv/.json/.md/.svg/.png in a
    /// sweep-<stamp>/ directory beside the runs.
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

/// Flags of the commands that rehearse.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Where Postgres comes from.
    #[arg(long, value_enum, default_value = "auto", env = "PGREHEARSE_BACKEND")]
    pub backend: BackendArg,
    /// Container image for the docker backend.
    #[arg(long, env = "PGREHEARSE_IMAGE")]
    pub image: Option<String>,
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
    /// Where run directories go.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Seed for all generated data and parameters.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override a budget: KEY=VALUE (e.g. p99_ms=50); repeatable.
    #[arg(long = "budget", value_name = "KEY=VALUE")]
    pub budgets: Vec<String>,
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
    })
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
    Report {
        run_dir: PathBuf,
        format: SummaryFormat,
        budgets: Vec<(String, f64)>,
    },
    Init {
        options: InitOptions,
        quiet: bool,
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
            let ov = overrides(&args.rows, args.scale, &args.since_git)?;
            let mut scenarios = load_all(&scenarios, &ov)?;
            let options = run_options(args, &mut scenarios)?;
            Ok(Plan::Run { scenarios, options })
        }
        Command::Sweep {
            scenario,
            rate,
            extrapolate,
            args,
        } => sweep_plan(scenario, rate, extrapolate, args),
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
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::new)?;
            Ok(runtime.block_on(rehearsal::rehearse_batch(&scenarios, &options)))
        }
        Plan::Sweep { scenarios, options } => {
            init_logging(options.run.output.verbose);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::new)?;
            Ok(runtime.block_on(crate::sweep::sweep(&scenarios, &options)))
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
    Ok(RunOptions {
        server: ServerOptions {
            backend,
            image: args.image,
            database_url: args.database_url,
        },
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
    let mut scenarios = Vec::new();
    for &n in &sizes {
        let ov = Overrides {
            rows: Some(n),
            scale: None,
            ..Overrides::default()
        };
        scenarios.extend(load_all(std::slice::from_ref(&scenario), &ov)?);
    }
    // A sweep seeds once per size and reuses the data: the setup migrations
    // would have to run before that seeding, which is not built yet.
    if scenarios.iter().any(|s| s.migrations.is_some()) {
        return Err(Error::Usage(format!(
            "sweep: {} has a [migrations] section, and sweep does not rehearse migration files \
             yet; use run (with --rows) for each size",
            scenario.display()
        )));
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
