//! One rehearsal, in five stages, one file each:
//!
//! 1. `provision.rs` — a [`Server`] from a backend (or the cache, `kept.rs`),
//!    and the [`Database`]s rehearsals run in; templates: seed once, clone
//!    per rehearsal (its module docs show the API `compare` and `sweep`
//!    build on);
//! 2. `seeding.rs` — the rehearsal's database with its data: seeded in
//!    place, or cloned from a template;
//!    with `[migrations]`, `setup.rs` first applies the migrations before
//!    the rehearsed ones in that database (the schema the data go into);
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
//! clone one template ([`DataPlan`]). Scenarios with `[migrations]` are
//! always seeded in place, after their setup: a template would have to be
//! built by the setup migrations and keyed by them.

mod capacity;
mod kept;
mod needs;
mod provision;
mod recording;
mod reporting;
mod run;
mod seeding;
mod setup;
mod stage;

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

pub use needs::ServerNeeds;
pub use provision::{Database, Server, Template, TemplateMade};
pub use recording::{Draft, Recorded};
pub use run::{Measured, RunInputs, Traffic, TrafficCtx, SERVER_SAMPLE, WAIT_POLL};
pub use seeding::DataPlan;
pub use setup::SETUP_APP_NAME;
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
    scenarios.iter().for_each(warn_edited);
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
        if s.nothing_to_rehearse() {
            outcomes.push(Some(nothing_to_rehearse(s)));
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
        .zip(members)
        .map(|(k, s)| {
            let shared = keys.iter().filter(|o| *o == k).count() > 1;
            if s.migrations.is_some() {
                // The setup migrations run in the rehearsal's own database
                // before it is seeded (`seeding::obtain`); templates are not
                // built through them (nor keyed by their digest) yet.
                DataPlan::InPlace
            } else if shared || opts.server.reuse {
                DataPlan::Template
            } else {
                DataPlan::InPlace
            }
        })
        .collect()
}

fn say_provisioning(s: &Scenario, opts: &RunOptions) {
    if opts.output.chatter {
        crate::say!(
            "pgrehearse: {} — provisioning Postgres ({:?} backend{})",
            s.name,
            opts.server.backend,
            // Asked for, not promised: kept.rs says when it cannot be.
            if opts.server.reuse { ", --reuse" } else { "" }
        );
    }
}

/// Provision a server for `s` alone, rehearse on it, tear it down.
/// A scenario whose `--since-git` found no new migration needs no server.
pub async fn rehearse_one(s: &Scenario, opts: &RunOptions, signals: &Signals) -> Outcome {
    if s.nothing_to_rehearse() {
        return nothing_to_rehearse(s);
    }
    let plan = if opts.server.reuse && s.migrations.is_none() {
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

/// `--since-git` found merged migrations edited since: each said on
/// stderr (`check` does this; `run` also writes the job summary). The
/// warnings said.
pub fn edited_on_stderr(s: &Scenario) -> Vec<String> {
    let Some(m) = &s.migrations else {
        return Vec::new();
    };
    let crate::migrations::Selection::SinceGit(rev) = &m.selection else {
        return Vec::new();
    };
    let lines: Vec<String> = m
        .edited
        .iter()
        .map(|c| crate::migrations::edited_warning(m.layout, c, rev))
        .collect();
    for l in &lines {
        crate::say!("pgrehearse: warning: {}: {l}", s.name);
    }
    lines
}

/// `--since-git` found merged migrations edited since: say so before
/// anything runs, on stderr and in GitHub's job summary (the report's
/// `edited_migration` finding says it again), even with nothing new.
pub fn warn_edited(s: &Scenario) {
    let lines = edited_on_stderr(s);
    if lines.is_empty() {
        return;
    }
    if let Some(path) = crate::report::RenderOptions::default().github_step_summary {
        // No heading of its own: the summary (or the "nothing to
        // rehearse" line) that follows has one.
        let md = lines
            .iter()
            .map(|l| format!("> **Warning ({}):** {l}\n", s.name))
            .collect::<String>();
        if let Err(e) = crate::report::append_step_summary(&path, &md) {
            crate::say!("pgrehearse: cannot append to {}: {e}", path.display());
        }
    }
}

/// No migration was added since the `--since-git` revision: say so (also
/// in GitHub's job summary), pass.
fn nothing_to_rehearse(s: &Scenario) -> Outcome {
    let since = match s.migrations.as_ref().map(|m| &m.selection) {
        Some(crate::migrations::Selection::SinceGit(rev)) => format!(" since {rev}"),
        _ => String::new(),
    };
    let dir = s
        .migrations
        .as_ref()
        .map_or(String::new(), |m| format!(" in {}", m.dir.display()));
    // SQL the tool never runs, in a subdirectory: a migration added there
    // would be skipped in silence.
    let nested: Vec<String> = s
        .migrations
        .iter()
        .flat_map(|m| &m.ignored)
        .filter(|i| i.reason.starts_with("in a subdirectory"))
        .map(|i| i.path.display().to_string())
        .collect();
    let unread = match nested.as_slice() {
        [] => String::new(),
        [one] => format!(" ({one} is in a subdirectory, which the tool does not read)"),
        [first, rest @ ..] => format!(
            " ({first} and {} more .sql files are in subdirectories, which the tool does not read)",
            rest.len()
        ),
    };
    crate::say!(
        "pgrehearse: {} — no migration added{since}{dir}: nothing to rehearse{unread}",
        s.name
    );
    let summary = crate::report::RenderOptions::default().github_step_summary;
    if let Some(path) = summary {
        let md = format!(
            "## pgrehearse: {}\n\nNo migration added{since}{dir}: nothing to rehearse{unread}.\n",
            s.name
        );
        if let Err(e) = crate::report::append_step_summary(&path, &md) {
            crate::say!("pgrehearse: cannot append to {}: {e}", path.display());
        }
    }
    Outcome {
        run_dir: None,
        result: Ok(exit::OK),
    }
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
    // With [migrations], the setup migrations build the schema the tables
    // are seeded into, in the rehearsal's database (run.json's `migrations`
    // records each file).
    capacity::check(&server.site().conn, s)
        .await
        .map_err(|e| draft.abandon(Stopped::from(e)))?;
    let setup = s.migrations.as_ref().zip(draft.info.migrations.as_mut());
    let data = seeding::obtain(server, s, plan, setup, opts, signals);
    let obtained = timed("seed", data)
        .await
        .map_err(|stopped| draft.abandon(stopped))?;
    draft.info.seed_ms = crate::pg::round3(obtained.ms);
    draft.info.database = Some(obtained.origin);
    draft.info.target = obtained.db.target.clone();
    let db = obtained.db;
    rows_as_seeded(&mut draft, &db, s, opts.output.chatter).await;
    let result = measure(draft, &db, s, opts, signals).await;
    if let Err(e) = db.discard().await {
        tracing::info!("the rehearsal's database was not dropped: {e}");
    }
    result
}

/// run.json `rows`: what the tables hold, where seed_sql or after_seed may
/// have added or deleted rows (init's removal of duplicate keys), however
/// the data was obtained (seeded, cloned, kept). Unread, the rows asked for.
async fn rows_as_seeded(draft: &mut Draft, db: &Database, s: &Scenario, say: bool) {
    if !crate::seed::rows_may_change(s) {
        return;
    }
    let counted = match db.conn.session(HARNESS_APP_NAME).await {
        Ok(c) => crate::seed::rows_now(&c, s).await,
        Err(e) => Err(e),
    };
    match counted {
        Ok(counted) => {
            for (name, rows) in counted {
                if let Some(r) = draft.info.rows.iter_mut().find(|(n, _)| *n == name) {
                    if r.1 != rows && say {
                        crate::say!(
                            "pgrehearse: table {name} holds {rows} rows, not the {} asked for: \
                             seed_sql or after_seed changed them (run.json rows says {rows})",
                            r.1
                        );
                    }
                    r.1 = rows;
                }
            }
        }
        Err(e) => tracing::info!("the tables' rows were not counted: {e}"),
    }
}

/// Seed the empty database `db` for `s` and nothing else, so that several
/// rehearsals can start from copies of it (the ddl bench). Returns how long
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
    let result = match capacity::check(&db.conn, s).await {
        Ok(()) => measure(draft, db, s, opts, signals).await,
        Err(e) => Err(draft.abandon(Stopped::from(e))),
    };
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
    // The app's queries run on this schema from the first request on: one
    // that cannot is the scenario's mistake, found before any traffic.
    let live: Vec<String> = s.phases.first().map(|p| p.apps.clone()).unwrap_or_default();
    let checked = crate::workload::check_queries(&db.conn, &s.workload, &live, &s.path);
    timed("check queries", checked).await.map_err(|e| {
        draft.abandon(Stopped {
            why: format!("the workload's queries do not fit the schema: {e}"),
            error: e,
        })
    })?;
    let tables = run::observed_tables(&db.conn, s).await;
    let input = RunInputs {
        conn: &db.conn,
        server_log: db.server_log.clone(),
        scenario: s,
        tables,
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
