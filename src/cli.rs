//! Command-line interface: raw arguments (clap) validated into a plan, then
//! dispatched. `main.rs` only maps the result to an exit code.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::backend::BackendKind;
use crate::error::{exit, Error, Result};
use crate::scenario::{self, Overrides, Scenario};

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
        common: Common,
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

/// Flags shared by the commands that talk to Postgres.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Where Postgres comes from.
    #[arg(long, value_enum, default_value = "auto", env = "PGREHEARSE_BACKEND")]
    pub backend: BackendKind,
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
    /// More output (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Parse `250000`, `250_000`, `250k`, `2M`, `1.5M`, `1G` into a row count.
pub fn parse_rows(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G' | 'b' | 'B') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("--rows: `{s}` is not a row count (examples: 250000, 250k, 2M)"))?;
    let rows = v * mult;
    if !(1.0..=1e13).contains(&rows) || rows.fract() != 0.0 {
        return Err(format!(
            "--rows: `{s}` must be a whole number of rows between 1 and 10^13"
        ));
    }
    Ok(rows as u64)
}

fn overrides(rows: &Option<String>, scale: Option<f64>) -> Result<Overrides> {
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
    Ok(Overrides { rows, scale })
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

/// Parse the process arguments and run. Returns the exit code.
pub fn main() -> std::process::ExitCode {
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
            return std::process::ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("pgrehearse: {e}");
            if let Error::Rehearsal {
                report_dir: Some(d),
                ..
            } = &e
            {
                eprintln!("pgrehearse: partial report in {}", d.display());
            }
            std::process::ExitCode::from(e.exit_code())
        }
    }
}

/// Run a parsed command; Ok carries the exit code (0 or 1 for a budget breach).
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check {
            scenarios,
            rows,
            scale,
        } => {
            let ov = overrides(&rows, scale)?;
            for s in load_all(&scenarios, &ov)? {
                println!("{}", scenario::load::describe(&s));
            }
            Ok(exit::OK)
        }
        Command::Run { scenarios, common } => {
            let ov = overrides(&common.rows, common.scale)?;
            let plans = load_all(&scenarios, &ov)?;
            let budgets = parse_budgets(&common.budgets)?;
            if common.backend == BackendKind::Url && common.database_url.is_none() {
                return Err(Error::Usage(
                    "--backend url needs --database-url postgres://user@host:port/db".into(),
                ));
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::new)?;
            runtime.block_on(crate::rehearsal::run_all(plans, common, budgets))
        }
        Command::Report {
            run_dir,
            json,
            budgets,
        } => {
            let budgets = parse_budgets(&budgets)?;
            crate::rehearsal::rerender(&run_dir, json, &budgets)
        }
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
