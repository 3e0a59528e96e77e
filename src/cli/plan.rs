//! Raw arguments validated into a [`Plan`]: every scenario file loaded (all
//! their problems reported at once), every flag checked, before anything
//! runs. What to do next is mod.rs's `run`.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::init::InitOptions;
use crate::options::{OutputMode, RunOptions, SeedCommand, SummaryFormat};
use crate::scenario::{self, Overrides, Scenario};
use crate::sweep::SweepOptions;

use super::args::{CacheAction, Cli, Command, RunArgs};
use super::parse::{
    parse_budgets, parse_count, parse_list, parse_rate, parse_rows, traffic_override,
};
use super::run_options::run_options;

/// A command line, validated: what to do, with plain library options.
pub enum Plan {
    Check {
        scenarios: Vec<Scenario>,
        quiet: bool,
    },
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
        out: Option<PathBuf>,
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

/// Validate raw arguments: every scenario file loaded (all their problems
/// reported at once), every flag checked, before anything runs.
pub fn plan(cli: Cli) -> Result<Plan> {
    match cli.command {
        Command::Check {
            scenarios,
            rows,
            scale,
            since_git,
            quiet,
            backend,
        } => {
            let scenarios = load_all(&scenarios, &overrides(&rows, scale, &since_git)?)?;
            // What `run` refuses before anything runs, `check` refuses too
            // (CI runs check first to name every problem of a scenario).
            if crate::backend::BackendKind::from(backend) != crate::backend::BackendKind::Url {
                super::run_options::refuse_lag_budget_without_replica(&scenarios, false)?;
            }
            Ok(Plan::Check { scenarios, quiet })
        }
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
            if let [a, b] = files.as_slice() {
                let same = |p: &std::path::PathBuf| std::fs::canonicalize(p).ok();
                if same(a).is_some() && same(a) == same(b) {
                    return Err(Error::Usage(format!(
                        "compare {} with itself: both sides would rehearse the same migration, and \
                         any difference is run-to-run noise; `run` it twice to see that noise",
                        a.display()
                    )));
                }
            }
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
        } => init_plan(database_url, tables, schema, include_values, quiet),
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
            quiet,
            budgets,
            out,
        } => Ok(Plan::Report {
            run_dir,
            format: match (json, quiet) {
                (true, _) => SummaryFormat::Json,
                (false, true) => SummaryFormat::Verdict,
                (false, false) => SummaryFormat::Text,
            },
            budgets: parse_budgets(&budgets)?,
            out,
        }),
    }
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

/// `init`: the table list and schema checked (exit 2 naming the flag).
fn init_plan(
    database_url: String,
    tables: Option<Vec<String>>,
    schema: String,
    include_values: bool,
    quiet: bool,
) -> Result<Plan> {
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
