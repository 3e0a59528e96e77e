//! One rehearsal, in five stages, one file each:
//!
//! 1. `provision.rs` — a [`Server`] from a backend (or the cache, `kept.rs`),
//!    and the [`Database`]s rehearsals run in; templates: seed once, clone
//!    per rehearsal (its module docs show the API `compare` and `sweep`
//!    build on);
//! 2. `seeding.rs` — the rehearsal's database with its data: seeded in
//!    place, or cloned from a template;
//! 3. `run.rs` — traffic, the migration and the observers on one clock;
//! 4. `recording.rs` — what was measured, written to the run directory;
//! 5. `reporting.rs` — the reports rendered, the summary printed, the exit
//!    code.
//!
//! (`stage.rs` holds what they share.) Whatever happens (a failed step, a
//! dead server, Ctrl-C), what was recorded is written (a partial report when
//! a stage stopped early) and the server is torn down. Only provisioning and
//! teardown see the server; the later stages take a [`Database`].
//!
//! A batch (`run a.toml b.toml`) provisions one server per group of
//! scenarios that ask for the same one (version, image, settings), runs the
//! group's rehearsals one after the other on it, each in a database of its
//! own, and seeds each distinct data set once: scenarios with the same data
//! clone one template ([`DataPlan`]).

mod kept;
mod provision;
mod recording;
mod reporting;
mod run;
mod seeding;
mod stage;

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

pub use provision::{Database, Server, ServerNeeds, Template, TemplateMade};
pub use recording::{Draft, Recorded};
pub use run::{Measured, RunInputs, Traffic, TrafficCtx, SERVER_SAMPLE, WAIT_POLL};
pub use seeding::DataPlan;
pub use stage::{Stopped, HARNESS_APP_NAME};

use crate::error::{exit, Result};
use crate::options::RunOptions;
use crate::printer::{self, BatchLine};
use crate::scenario::Scenario;
use crate::signals::Signals;

/// How one rehearsal ended.
#[derive(Debug)]
pub struct Outcome {
    /// Its run directory, when one was created (it holds a partial report
    /// when the rehearsal failed).
    pub run_dir: Option<PathBuf>,
    /// The verdict's exit code (0 or 1), or why it did not finish.
    pub result: Result<u8>,
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match &self.result {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        }
    }

    pub fn describe(&self) -> String {
        match &self.result {
            Ok(exit::OK) => "pass".into(),
            Ok(_) => "budget breached".into(),
            Err(e) => e.to_string(),
        }
    }
}

/// `pgrehearse run`: every scenario in turn, on a server per group of
/// scenarios that can share one (module docs). A failed scenario does not
/// stop the others; a signal stops the batch. Returns the worst exit code
/// (numerically the largest: 143 > 130 > 4 > 3 > 2 > 1 > 0). Errors are
/// printed as they happen; the recap lists the scenarios in the order given.
pub async fn rehearse_batch(scenarios: &[Scenario], opts: &RunOptions) -> u8 {
    let signals = Signals::install();
    let mut lines: Vec<Option<BatchLine>> = (0..scenarios.len()).map(|_| None).collect();
    for group in server_groups(scenarios) {
        let members: Vec<&Scenario> = group.iter().map(|&i| &scenarios[i]).collect();
        let outcomes = rehearse_group(&members, opts, &signals).await;
        for (i, outcome) in group.into_iter().zip(outcomes) {
            let s = &scenarios[i];
            lines[i] = Some(match outcome {
                Some(o) => BatchLine {
                    scenario: s.name.clone(),
                    code: Some(o.exit_code()),
                    outcome: o.describe(),
                    run_dir: o.run_dir,
                },
                None => BatchLine {
                    scenario: s.name.clone(),
                    code: None,
                    outcome: format!("not run ({})", signals.name()),
                    run_dir: None,
                },
            });
        }
    }
    let lines: Vec<BatchLine> = lines.into_iter().flatten().collect();
    let mut code = lines
        .iter()
        .filter_map(|l| l.code)
        .max()
        .unwrap_or(exit::OK);
    if lines.iter().any(|l| l.code.is_none()) {
        code = code.max(signals.error().exit_code());
    }
    if scenarios.len() > 1 {
        printer::batch(&lines, code);
    }
    code
}

/// Scenarios by the server they can share, each group in the order given,
/// the groups in the order of their first scenario.
fn server_groups(scenarios: &[Scenario]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(ServerNeeds, Vec<usize>)> = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let needs = ServerNeeds::of(s);
        match groups
            .iter_mut()
            .find(|(first, _)| first.shared_with(&needs).is_some())
        {
            Some((_, members)) => members.push(i),
            None => groups.push((needs, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Rehearse `members` one after the other on one server (a new one if a
/// rehearsal killed it). `None` for a scenario a signal kept from running.
async fn rehearse_group(
    members: &[&Scenario],
    opts: &RunOptions,
    signals: &Signals,
) -> Vec<Option<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = Vec::new();
    let Some(needs) = ServerNeeds::of_all(members) else {
        return members.iter().map(|_| None).collect();
    };
    let plans = data_plans(members, opts);
    let mut server: Option<Server> = None;
    for (s, plan) in members.iter().zip(plans) {
        if signals.received() {
            outcomes.push(None);
            continue;
        }
        if let Some(sv) = server.take() {
            if sv.healthy().await {
                server = Some(sv);
            } else {
                tracing::info!("the server stopped answering: provisioning another");
                timed("teardown", sv.teardown()).await;
            }
        }
        if server.is_none() {
            say_provisioning(s, opts);
            match timed(
                "provision",
                Server::provision(&opts.server, &needs, signals),
            )
            .await
            {
                Ok(sv) => server = Some(sv),
                Err(e) => {
                    printer::error(&e, None);
                    outcomes.push(Some(Outcome {
                        run_dir: None,
                        result: Err(e),
                    }));
                    continue;
                }
            }
        }
        let sv = server.as_ref().expect("provisioned above");
        let outcome = rehearse_on(sv, s, plan, opts, signals).await;
        if let Err(e) = &outcome.result {
            printer::error(e, outcome.run_dir.as_deref());
        }
        outcomes.push(Some(outcome));
    }
    if let Some(sv) = server {
        timed("teardown", sv.teardown()).await;
    }
    outcomes
}

/// A template for data that several rehearsals of the group share (or all
/// data, when the cache keeps them); in place for data nobody else needs.
fn data_plans(members: &[&Scenario], opts: &RunOptions) -> Vec<DataPlan> {
    use crate::seed::template::KeyParts;
    // The server version is the same for the whole group: leave it out.
    let keys: Vec<_> = members
        .iter()
        .map(|s| KeyParts::of(s, opts.seed, 0).key())
        .collect();
    keys.iter()
        .map(|k| {
            let shared = keys.iter().filter(|o| *o == k).count() > 1;
            if shared || opts.server.reuse {
                DataPlan::Template
            } else {
                DataPlan::InPlace
            }
        })
        .collect()
}

fn say_provisioning(s: &Scenario, opts: &RunOptions) {
    if opts.output.chatter {
        eprintln!(
            "pgrehearse: {} — provisioning Postgres ({:?} backend{})",
            s.name,
            opts.server.backend,
            if opts.server.reuse {
                ", kept in the cache"
            } else {
                ""
            }
        );
    }
}

/// Provision a server for `s` alone, rehearse on it, tear it down.
pub async fn rehearse_one(s: &Scenario, opts: &RunOptions, signals: &Signals) -> Outcome {
    let plan = if opts.server.reuse {
        DataPlan::Template
    } else {
        DataPlan::InPlace
    };
    say_provisioning(s, opts);
    let server = match timed(
        "provision",
        Server::provision(&opts.server, &ServerNeeds::of(s), signals),
    )
    .await
    {
        Ok(server) => server,
        Err(e) => {
            return Outcome {
                run_dir: None,
                result: Err(e),
            }
        }
    };
    let outcome = rehearse_on(&server, s, plan, opts, signals).await;
    timed("teardown", server.teardown()).await;
    outcome
}

/// Rehearse `s` on `server` (someone else provisions and tears it down):
/// its database and data as `plan` says, then run, record, report. The
/// database it got is dropped at the end.
pub async fn rehearse_on(
    server: &Server,
    s: &Scenario,
    plan: DataPlan,
    opts: &RunOptions,
    signals: &Signals,
) -> Outcome {
    let draft = match Draft::open(&server.site(), s, opts).await {
        Ok(d) => d,
        Err(e) => {
            return Outcome {
                run_dir: None,
                result: Err(e),
            }
        }
    };
    let run_dir = Some(draft.dir.clone());
    tracing::info!("run directory {}", draft.dir.display());
    let result = stages(draft, server, s, plan, opts, signals).await;
    Outcome { run_dir, result }
}

/// Data → run → record → report, into `draft`.
async fn stages(
    mut draft: Draft,
    server: &Server,
    s: &Scenario,
    plan: DataPlan,
    opts: &RunOptions,
    signals: &Signals,
) -> Result<u8> {
    let data = seeding::obtain(server, s, plan, opts, signals);
    let obtained = timed("seed", data)
        .await
        .map_err(|stopped| draft.abandon(stopped))?;
    draft.info.seed_ms = crate::pg::round3(obtained.ms);
    draft.info.database = Some(obtained.origin);
    draft.info.target = obtained.db.target.clone();
    let db = obtained.db;
    let result = measure(draft, &db, s, opts, signals).await;
    if let Err(e) = db.discard().await {
        tracing::info!("the rehearsal's database was not dropped: {e}");
    }
    result
}

/// Seed the empty database `db` for `s` and nothing else, so that several
/// rehearsals can start from copies of it (`crate::sweep`). Returns how long
/// seeding took (ms), which their run.json records as `seed_ms`.
pub async fn seed_only(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
) -> std::result::Result<f64, Stopped> {
    timed("seed", seeding::seed_into(db, s, opts, signals)).await
}

/// Rehearse `s` in `db`, which already holds the data [`seed_only`] wrote
/// for `s` (in `seed_ms`); the caller drops `db`.
pub async fn rehearse_seeded(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
    seed_ms: f64,
) -> Outcome {
    let mut draft = match Draft::open(db, s, opts).await {
        Ok(d) => d,
        Err(e) => {
            return Outcome {
                run_dir: None,
                result: Err(e),
            }
        }
    };
    draft.info.seed_ms = crate::pg::round3(seed_ms);
    let run_dir = Some(draft.dir.clone());
    let result = measure(draft, db, s, opts, signals).await;
    Outcome { run_dir, result }
}

/// Run → record → report in `db`, which holds the data.
async fn measure(
    draft: Draft,
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
) -> Result<u8> {
    // The lag measured is the rehearsal's own: the replica has replayed the
    // seed (or the copy of a seeded template) first.
    if db.replica.is_some() {
        timed(
            "replica catch-up",
            seeding::replica_caught_up(&db.conn, signals),
        )
        .await
        .map_err(|stopped| draft.abandon(stopped))?;
    }
    let input = RunInputs {
        conn: &db.conn,
        server_log: db.server_log.clone(),
        scenario: s,
        run_dir: &draft.dir,
        seed: opts.seed,
        output: opts.output,
    };
    let measured = timed("run", run::run(&input, signals))
        .await
        .map_err(|stopped| draft.abandon(stopped))?;
    let recorded = timed("record", recording::record(draft, &db.conn, measured)).await?;
    timed("report", async {
        reporting::report(&recorded, opts, signals)
    })
    .await
}

/// Await a stage, logging (`-v`) when it starts and how long it took.
async fn timed<T>(stage: &str, f: impl Future<Output = T>) -> T {
    tracing::info!("stage {stage}: started");
    let started = Instant::now();
    let out = f.await;
    tracing::info!(
        "stage {stage}: ended after {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    out
}
