//! Command-line interface: raw arguments (clap) validated into a [`Plan`] of
//! plain library options (`crate::options`), then dispatched. The library
//! never sees clap: the dependency goes cli → rehearsal, report, scenario.
//!
//! args.rs is what the command line says (clap's structs); plan.rs validates
//! it into a [`Plan`], with run_options.rs for the rehearsing commands'
//! options and parse.rs for flag values; this file runs a plan: `main`
//! (exit codes) over `run`, and the `-v` log.

use std::process::ExitCode;

use clap::Parser;

use crate::error::{exit, Result};
use crate::init::InitOptions;
use crate::matrix;
use crate::scenario;

mod args;
mod parse;
mod plan;
mod run_options;

pub use args::{BackendArg, CacheAction, Cli, Command, RunArgs};
pub use parse::{parse_count, parse_rows, parse_versions};
pub use plan::{load_all, plan, Plan};

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

/// Carry out a plan; Ok carries the exit code.
pub fn run(plan: Plan) -> Result<u8> {
    match plan {
        Plan::Check { scenarios, quiet } => {
            for s in &scenarios {
                crate::rehearsal::edited_on_stderr(s);
                if !quiet {
                    crate::printer::stdout(&(scenario::load::describe(s) + "\n"))?;
                }
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
            out,
        } => crate::report::rerender::rerender(&run_dir, format, &budgets, out.as_deref()),
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
        crate::say!(
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
        crate::say!("init: {} tables, {statements}", summary.tables);
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
