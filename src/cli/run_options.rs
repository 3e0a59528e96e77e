//! The options of the commands that rehearse (`run`, `compare`, `sweep`):
//! `--budget` applied to each scenario, the backend, `--pg-version`,
//! `--image`, `--reuse`, the output mode; `--cpus`, `--memory`, `--replica`
//! over each scenario's `[postgres]`; and the combinations refused before
//! anything runs.

use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::options::{OutputMode, RunOptions, ServerOptions, SummaryFormat};
use crate::scenario::Scenario;
use crate::sizing::{parse_memory, ServerSize};

use super::args::RunArgs;
use super::parse::{parse_budgets, parse_versions};

/// The options of a rehearsing command; every `--budget` applied to each
/// scenario (the budget in force, which run.json records).
pub(super) fn run_options(args: RunArgs, scenarios: &mut [Scenario]) -> Result<RunOptions> {
    let budgets = parse_budgets(&args.budgets)?;
    for s in scenarios.iter_mut() {
        for (key, value) in &budgets {
            s.budget
                .apply(key, *value)
                .map_err(|e| Error::Usage(format!("--budget: {e}")))?;
        }
    }
    // A --database-url names the server: with no backend picked, it is
    // the url backend's (QA: it used to be ignored, and the rehearsal ran
    // on an ephemeral local cluster instead).
    let backend = match BackendKind::from(args.backend) {
        BackendKind::Auto if args.database_url.is_some() => BackendKind::Url,
        b => b,
    };
    if backend == BackendKind::Url && args.database_url.is_none() {
        return Err(Error::Usage(
            "--backend url needs --database-url postgres://user@host:port/db".into(),
        ));
    }
    // Flags that pick a server the backend does not use: said, not
    // silently ignored.
    let unused: &[(&str, bool, &str)] = match backend {
        BackendKind::Local => &[
            ("--database-url", args.database_url.is_some(), "url"),
            ("--image", args.image.is_some(), "docker"),
        ],
        BackendKind::Docker => &[("--database-url", args.database_url.is_some(), "url")],
        _ => &[],
    };
    for (flag, given, other) in unused {
        if *given {
            let what = match backend {
                BackendKind::Local => "--backend local (a cluster from the local binaries)",
                _ => "--backend docker (a container it starts)",
            };
            return Err(Error::Usage(format!(
                "{flag} is not used by {what}; drop it, or pick --backend {other}"
            )));
        }
    }
    apply_server_flags(&args, scenarios)?;
    if backend == BackendKind::Url {
        refuse_url_replica(&args, scenarios)?;
    } else {
        let from_flag = budgets.iter().any(|(k, _)| k == "max_replica_lag_ms");
        refuse_lag_budget_without_replica(scenarios, from_flag)?;
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
    usable_out(&args.out)?;
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

/// `--out` must be a directory pgrehearse can write in: said before any
/// server starts, not after. The directories made to find out are removed
/// again (the run makes them when it writes there): a run that stops
/// before it, at a server that will not start, leaves no empty `reports/`.
fn usable_out(out: &std::path::Path) -> Result<()> {
    let bad = |why: String| Error::Usage(format!("--out {}: {why}", out.display()));
    if out.exists() && !out.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let made: Vec<&std::path::Path> = out
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    std::fs::create_dir_all(out).map_err(|e| bad(format!("cannot create it: {e}")))?;
    let probe = out.join(format!(".pgrehearse-write-test-{}", std::process::id()));
    let written = std::fs::write(&probe, b"").map_err(|e| bad(format!("cannot write in it: {e}")));
    let _ = std::fs::remove_file(&probe);
    // Innermost first; remove_dir leaves any that is not empty.
    for d in made {
        let _ = std::fs::remove_dir(d);
    }
    written
}

/// `--cpus`, `--memory` and `--replica` over each scenario's `[postgres]`:
/// the flags win, field by field.
fn apply_server_flags(args: &RunArgs, scenarios: &mut [Scenario]) -> Result<()> {
    // --cpus is in 1..=MAX_CPUS: its parser says so.
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
            "--replica: the url backend cannot start a replica (the server is not pgrehearse's); \
             use --backend local or docker, or drop --replica"
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
/// `from_flag`: `--budget max_replica_lag_ms=...` set it, which is then
/// the place to name, not the scenario's `[budget]`.
/// `check` refuses the same scenarios (`from_flag` false), every one of
/// them named at once.
pub(super) fn refuse_lag_budget_without_replica(
    scenarios: &[Scenario],
    from_flag: bool,
) -> Result<()> {
    let without: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| !s.postgres.replica && s.budget.max_replica_lag_ms.is_some())
        .collect();
    match without.first() {
        Some(s) if from_flag => Err(Error::Usage(format!(
            "--budget max_replica_lag_ms needs a replica to measure, and {} has none: pass \
             --replica, or set [postgres] replica = true",
            s.path.display()
        ))),
        Some(_) => Err(Error::Scenario(crate::scenario::locate_fields(
            without
                .iter()
                .map(|s| crate::error::ScenarioError {
                    file: s.path.clone(),
                    line: 0,
                    column: 0,
                    field: "budget.max_replica_lag_ms".into(),
                    message:
                        "needs a replica to measure; set [postgres] replica = true or pass --replica"
                            .into(),
                })
                .collect(),
        ))),
        None => Ok(()),
    }
}
