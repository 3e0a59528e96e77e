//! Validating `[[phase]]` and `[[phase.step]]`: live apps, what a step runs
//! (sql, backfill, a rehearsed migration, a `.sql` file), transaction mode,
//! timeouts, retries and expected errors. Where rehearsed migrations go is
//! `validate_placement.rs`.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Value;

use super::diag::{app_list, item_name, sql_list, sql_located, Diags, Names};
use super::model::{self, S};
use super::validate_migrations::Migrations;
use super::validate_placement::{self as placement, Entry, PhaseDraft, Placed, Rehearsed};
use super::{BackfillPlan, PhasePlan, StepAction, StepPlan};
use crate::migrations::{self, Selection};
use crate::sql;

/// Where a phase's steps may take their SQL from.
struct Sources<'a> {
    /// The scenario file: `file = ...` is relative to it.
    scenario: &'a Path,
    rehearsed: Rehearsed<'a>,
    /// `[postgres] settings` sets lock_timeout for every session.
    server_lock_timeout: bool,
}

pub(super) fn phases(
    d: &mut Diags,
    ps: &[S<model::PhaseSection>],
    all_apps: &[String],
    scenario: &Path,
    migrations: &Migrations,
    last_span: Option<std::ops::Range<usize>>,
    server_lock_timeout: bool,
) -> Vec<PhasePlan> {
    let rehearsed = match migrations {
        Migrations::Absent => Rehearsed::NoSection,
        Migrations::Broken => Rehearsed::Unchecked,
        Migrations::Loaded(m) if m.rehearse.is_empty() => match m.selection {
            Selection::SinceGit(_) => Rehearsed::Unchecked,
            _ => Rehearsed::Files(&m.rehearse),
        },
        Migrations::Loaded(m) => Rehearsed::Files(&m.rehearse),
    };
    if ps.is_empty() {
        match (migrations, rehearsed) {
            (Migrations::Loaded(m), Rehearsed::Files(files)) if !files.is_empty() => {
                return vec![placement::default_phase(&m.rehearse, all_apps)]
            }
            (_, Rehearsed::Unchecked) => return Vec::new(),
            (Migrations::Loaded(_), _) => d.err(
                last_span.unwrap_or(0..0),
                "migrations.rehearse.last",
                "0 rehearses no file, and the scenario has no [[phase]] of its own: nothing \
                 to rehearse; expected last = 1 or more, or [[phase]] entries with \
                 [[phase.step]]s",
            ),
            _ => d.err(
                0..0,
                "phase",
                "no phases; expected at least one [[phase]] with [[phase.step]] entries, or a \
                 [migrations] section whose files are the steps",
            ),
        }
        return Vec::new();
    }
    let sources = Sources {
        scenario,
        rehearsed,
        server_lock_timeout,
    };
    let mut names = Names::new("phase");
    let mut drafts = Vec::new();
    for (i, p) in ps.iter().enumerate() {
        let pp = p.get_ref();
        let name = item_name(
            d,
            &pp.name,
            p.span(),
            &format!("phase[{i}].name"),
            &mut names,
        );
        let apps = phase_apps(d, pp, i, all_apps);
        let entries = match (&pp.migrations, pp.step.is_empty()) {
            (Some(m), true) => phase_migrations(d, m, &format!("phase[{i}].migrations"), rehearsed),
            (Some(m), false) => {
                d.err(
                    m.span(),
                    format!("phase[{i}].migrations"),
                    "a phase runs either migrations = [...] or [[phase.step]] entries, not both; \
                     name a migration in a step instead: migration = \"V5__x.sql\"",
                );
                // Its migrations still count as placed: no follow-on "no
                // phase runs it" for the files they name.
                phase_migrations(d, m, &format!("phase[{i}].migrations"), rehearsed)
            }
            (None, true) => {
                d.err(
                    p.span(),
                    format!("phase[{i}].step"),
                    "no steps; expected at least one [[phase.step]] (or migrations = [...])",
                );
                Vec::new()
            }
            (None, false) => {
                let mut step_names = Names::new("step");
                pp.step
                    .iter()
                    .enumerate()
                    .map(|(j, s)| {
                        step(
                            d,
                            s,
                            &format!("phase[{i}].step[{j}]"),
                            &mut step_names,
                            &sources,
                        )
                    })
                    .collect()
            }
        };
        drafts.push(PhaseDraft {
            name,
            apps,
            entries,
        });
    }
    placement::finish(d, drafts, rehearsed, ps[0].span())
}

fn phase_apps(
    d: &mut Diags,
    pp: &model::PhaseSection,
    i: usize,
    all_apps: &[String],
) -> Vec<String> {
    let Some(v) = &pp.apps else {
        return all_apps.to_vec();
    };
    let list = app_list(d, v, &format!("phase[{i}].apps"));
    for (k, a) in v.get_ref().iter().enumerate() {
        let a_name = a.get_ref().trim();
        if !a_name.is_empty() && !all_apps.iter().any(|x| x == a_name) {
            d.err(
                a.span(),
                format!("phase[{i}].apps[{k}]"),
                format!(
                    "app `{a_name}` is not sent any query; expected one of: {}",
                    all_apps.join(", ")
                ),
            );
        }
    }
    list
}

/// `migrations = ["V5__a.sql", ...]` or `"*"`.
fn phase_migrations(d: &mut Diags, m: &S<Value>, field: &str, rehearsed: Rehearsed) -> Vec<Entry> {
    const EXPECTED: &str =
        "expected a list of rehearsed migrations, e.g. [\"V5__add_column.sql\"], \
                            or \"*\" (every rehearsed one no other phase runs)";
    if let Rehearsed::NoSection = rehearsed {
        d.err(
            m.span(),
            field,
            "names migrations, and the scenario has no [migrations] section",
        );
        return Vec::new();
    }
    match m.get_ref() {
        Value::String(s) if s.trim() == "*" => vec![Entry::Rest {
            span: m.span(),
            field: field.to_string(),
        }],
        Value::Array(items) if !items.is_empty() => {
            // toml::Value keeps no spans inside: the list's span locates
            // every name in it.
            let mut out = Vec::new();
            for (k, item) in items.iter().enumerate() {
                let f = format!("{field}[{k}]");
                let Value::String(name) = item else {
                    d.err(
                        m.span(),
                        &f,
                        format!("`{item}` is not a file name; {EXPECTED}"),
                    );
                    continue;
                };
                if let Some(index) = placement::resolve(d, rehearsed, name, m.span(), &f) {
                    let Rehearsed::Files(files) = rehearsed else {
                        continue;
                    };
                    out.push(Entry::Step(
                        Box::new(placement::file_step(
                            &files[index],
                            files[index].name.clone(),
                        )),
                        Some(Placed {
                            index,
                            span: m.span(),
                            field: f,
                        }),
                    ));
                }
            }
            out
        }
        other => {
            d.err(
                m.span(),
                field,
                format!("`{other}` is not a list of migrations; {EXPECTED}"),
            );
            Vec::new()
        }
    }
}

/// What a step runs: exactly one of these keys.
fn what_it_runs(
    d: &mut Diags,
    ss: &model::StepSection,
    span: Range<usize>,
    path: &str,
) -> Option<&'static str> {
    let given: Vec<(&'static str, Range<usize>)> = [
        ("sql", ss.sql.as_ref().map(S::span)),
        ("backfill", ss.backfill.as_ref().map(S::span)),
        ("migration", ss.migration.as_ref().map(S::span)),
        ("file", ss.file.as_ref().map(S::span)),
    ]
    .into_iter()
    .filter_map(|(k, s)| s.map(|s| (k, s)))
    .collect();
    match given.as_slice() {
        [] => {
            d.err(
                span,
                path,
                "runs nothing; expected one of sql, backfill, migration (a rehearsed migration) or \
                 file (a .sql file)",
            );
            None
        }
        [(only, _)] => Some(only),
        [(first, _), (second, s2), ..] => {
            d.err(
                s2.clone(),
                format!("{path}.{second}"),
                format!("a step runs one of sql, backfill, migration or file, and this one also has {first}; split it into two steps"),
            );
            None
        }
    }
}

fn step(
    d: &mut Diags,
    s: &S<model::StepSection>,
    path: &str,
    names: &mut Names,
    sources: &Sources,
) -> Entry {
    let ss = s.get_ref();
    let f = |n: &str| format!("{path}.{n}");
    let runs = what_it_runs(d, ss, s.span(), path);
    let transaction = ss.transaction.as_ref().is_none_or(|v| *v.get_ref());
    let mut placed = None;
    let mut sql_at = Vec::new();
    // An earlier file on the tool's one connection leaves a lock_timeout
    // this step may run under (session.rs).
    let mut carried_lock_timeout = false;
    let (action, file_transaction) = match runs {
        Some("sql") => {
            let v = ss.sql.as_ref().expect("checked");
            let stmts = sql_list(d, v, &f("sql"));
            sql_at = sql_located(d, v);
            if transaction {
                check_transactional(d, &stmts, v.span(), &f("sql"));
            } else {
                check_autocommit(d, &stmts, v.span(), &f("sql"));
            }
            (StepAction::Sql(stmts), None)
        }
        Some("backfill") => {
            let b = ss.backfill.as_ref().expect("checked");
            (StepAction::Backfill(backfill(d, b, &f("backfill"))), None)
        }
        Some("migration") => {
            let m = ss.migration.as_ref().expect("checked");
            let (action, t, p, carried) = migration_step(d, ss, m, path, sources);
            (placed, carried_lock_timeout) = (p, carried);
            (action, t)
        }
        Some("file") => {
            let v = ss.file.as_ref().expect("checked");
            match sql_file(
                d,
                v,
                ss.transaction.as_ref().map(|t| *t.get_ref()),
                &f("file"),
                sources,
            ) {
                Some(file) => {
                    let t = placement::file_step(&file, String::new()).transaction;
                    (StepAction::File(file), Some(t))
                }
                None => (StepAction::Sql(Vec::new()), None),
            }
        }
        _ => (StepAction::Sql(Vec::new()), None),
    };
    let name = match (&ss.name, &action) {
        (None, StepAction::File(file)) => {
            names.add_at(d, &file.name, s.span(), &f("name"));
            file.name.clone()
        }
        // A `migration` that was not found is said at `migration`; its
        // name is the file's, not missing too.
        (None, _) if ss.migration.is_some() => ss
            .migration
            .as_ref()
            .map(|m| m.get_ref().clone())
            .unwrap_or_default(),
        _ => item_name(d, &ss.name, s.span(), &f("name"), names),
    };
    let expect_error = match &ss.expect_error {
        None => Vec::new(),
        Some(_) if ss.backfill.is_some() => {
            d.err(
                ss.expect_error.as_ref().map_or(s.span(), |v| v.span()),
                f("expect_error"),
                "a backfill step cannot expect an error; put the statement that fails in a sql step",
            );
            Vec::new()
        }
        Some(v) => sqlstates(d, v, &f("expect_error")),
    };
    let retries = match &ss.retries {
        Some(v) => d.int_in(v, &f("retries"), 0, 1000).unwrap_or(0) as u32,
        None => 0,
    };
    let plan = StepPlan {
        name,
        action,
        transaction: file_transaction.unwrap_or(transaction),
        lock_timeout: d.pg_timeout(&ss.lock_timeout, &f("lock_timeout"), "no limit"),
        statement_timeout: d.pg_timeout(&ss.statement_timeout, &f("statement_timeout"), "no limit"),
        retries,
        retry_backoff: d.duration(
            &ss.retry_backoff,
            &f("retry_backoff"),
            Duration::from_millis(100),
        ),
        pause_after: d.duration(&ss.pause_after, &f("pause_after"), Duration::ZERO),
        expect_error,
        sql_at,
    };
    if let Some(v) = &ss.retries {
        let can_time_out = plan.lock_timeout.is_some()
            || sources.server_lock_timeout
            || carried_lock_timeout
            || can_give_up_a_lock(&plan.action);
        if plan.retries > 0 && !can_time_out {
            d.err(
                v.span(),
                f("retries"),
                format!(
                    "retries = {} would never happen: a step is retried only after a lock \
                     timeout (55P03), and nothing can time out this one's locks (no \
                     lock_timeout, none set by its SQL or left by an earlier file on its \
                     tool's connection, no NOWAIT); give it lock_timeout = \
                     \"2s\", or leave retries out",
                    plan.retries
                ),
            );
        }
    }
    Entry::Step(Box::new(plan), placed)
}

/// A `migration = "..."` step: the rehearsed file it names (and where it
/// is placed), whether its segments are all transactions, and whether an
/// earlier file on its tool's one connection leaves it a lock_timeout
/// (session.rs).
fn migration_step(
    d: &mut Diags,
    ss: &model::StepSection,
    m: &S<String>,
    path: &str,
    sources: &Sources,
) -> (StepAction, Option<bool>, Option<Placed>, bool) {
    let f = |n: &str| format!("{path}.{n}");
    if let Some(t) = &ss.transaction {
        d.err(
            t.span(),
            f("transaction"),
            "a migration runs the way its tool runs it (check shows how); remove \
             transaction, or run the file with file = \"...\" to choose",
        );
    }
    let index = placement::resolve(d, sources.rehearsed, m.get_ref(), m.span(), &f("migration"));
    let (Some(index), Rehearsed::Files(files)) = (index, sources.rehearsed) else {
        return (StepAction::Sql(Vec::new()), None, None, false);
    };
    let placed = Placed {
        index,
        span: m.span(),
        field: f("migration"),
    };
    let file = &files[index];
    let carried = file.shares_session
        && files[..index].iter().any(|f| {
            f.statements().any(|s| {
                matches!(
                    crate::sql::session_time_setting(&s.sql, "lock_timeout"),
                    Some(Some(_))
                )
            })
        });
    let transaction = placement::file_step(file, String::new()).transaction;
    (
        StepAction::File(file.clone()),
        Some(transaction),
        Some(placed),
        carried,
    )
}

/// Whether the step's own SQL can end in 55P03: it sets a lock_timeout
/// (`SET lock_timeout`, `set_config`) or asks for a lock NOWAIT.
fn can_give_up_a_lock(action: &StepAction) -> bool {
    let gives_up = |sql: &str| {
        matches!(crate::sql::time_setting(sql, "lock_timeout"), Some(Some(_)))
            || sql.to_ascii_lowercase().contains("nowait")
    };
    match action {
        StepAction::Sql(stmts) => stmts.iter().any(|s| gives_up(s)),
        StepAction::File(file) => file.statements().any(|s| gives_up(&s.sql)),
        StepAction::Backfill(_) => false,
    }
}

/// `expect_error`: one SQLSTATE or a non-empty list of them, each five
/// digits or upper-case letters ("57014" query_canceled, which a
/// statement_timeout raises; "23505" unique_violation; "55P03" lock_not_available).
fn sqlstates(d: &mut Diags, v: &S<toml::Value>, field: &str) -> Vec<String> {
    const EXPECTED: &str = "expected a SQLSTATE such as \"57014\" (statement_timeout) or \"23505\" (unique_violation), or a list of them";
    let items: Vec<&toml::Value> = match v.get_ref() {
        toml::Value::String(_) => vec![v.get_ref()],
        toml::Value::Array(a) if !a.is_empty() => a.iter().collect(),
        toml::Value::Array(_) => {
            d.err(v.span(), field, format!("is an empty list; {EXPECTED}"));
            return Vec::new();
        }
        other => {
            d.err(
                v.span(),
                field,
                format!(
                    "is {} {}; {EXPECTED}",
                    if other.type_str().starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    },
                    other.type_str()
                ),
            );
            return Vec::new();
        }
    };
    let mut codes = Vec::new();
    for item in items {
        let code = item.as_str().map(|c| c.trim().to_ascii_uppercase());
        match code {
            Some(c) if c.len() == 5 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                if !codes.contains(&c) {
                    codes.push(c);
                }
            }
            _ => d.err(
                v.span(),
                field,
                format!("{item} is not a SQLSTATE (five digits or letters); {EXPECTED}"),
            ),
        }
    }
    codes
}

/// `file = "path.sql"`: any SQL file, relative to the scenario file, run as
/// the plain layout runs a file (or as `transaction` says).
fn sql_file(
    d: &mut Diags,
    v: &S<String>,
    transaction: Option<bool>,
    field: &str,
    sources: &Sources,
) -> Option<crate::migrations::MigrationFile> {
    let written = d.nonempty(v, field, "a .sql file, relative to the scenario file")?;
    let path = migrations::relative_to(sources.scenario, &written);
    if !path.is_file() {
        let hint = match sources.rehearsed {
            Rehearsed::Files(files) if files.iter().any(|f| f.name.ends_with(written.as_str())) => {
                format!("; to run the rehearsed migration, write migration = \"{written}\"")
            }
            _ => String::new(),
        };
        d.err(
            v.span(),
            field,
            format!(
                "{} is not a file (file is relative to the scenario file){hint}",
                path.display()
            ),
        );
        return None;
    }
    match migrations::load_sql_file(&path, transaction) {
        Ok(file) if file.segments.is_empty() => {
            d.err(
                v.span(),
                field,
                format!("{} has no SQL statements", path.display()),
            );
            None
        }
        Ok(file) => Some(crate::migrations::MigrationFile {
            name: written,
            ..file
        }),
        Err(e) => {
            d.errors
                .push(e.to_scenario_error(sources.scenario, |_| (0, 0)));
            None
        }
    }
}

/// With `transaction = true` (the default), a statement PostgreSQL refuses
/// inside a transaction block is an error here, not at run time.
fn check_transactional(d: &mut Diags, stmts: &[String], span: Range<usize>, field: &str) {
    let refused = stmts.iter().find_map(|st| {
        let code_start = sql::statement_spans(st)
            .spans
            .first()
            .map_or(0, |s| s.code_start);
        migrations::refused_in_transaction(&st[code_start..]).map(|what| (what, st))
    });
    if let Some((what, st)) = refused {
        let first: String = st.chars().take(60).collect();
        d.err(
            span.clone(),
            field,
            format!("`{first}` ({what}) cannot run inside a transaction block; set transaction = false on this step"),
        );
    }
    // The step's transaction is the tool's: a statement that begins or
    // ends one would end it under the probes that follow.
    refuse_control(
        d,
        stmts,
        span,
        field,
        " would end the step's own transaction: a step with transaction = true runs in one \
         transaction that commits at its end (or is rolled back when it expects its error); \
         remove it, or put the statements in steps of their own",
    );
}

/// A `transaction = false` step runs each statement on its own — in a
/// transaction of the tool's where PostgreSQL allows one, for its probe —
/// so a BEGIN ... COMMIT of its own would not be the transaction written:
/// its statements would commit one by one, its locks go early (QA: a 110 ms
/// hold measured as 3 ms). A SQL file runs its own blocks as psql does.
fn check_autocommit(d: &mut Diags, stmts: &[String], span: Range<usize>, field: &str) {
    refuse_control(
        d,
        stmts,
        span,
        field,
        ": a step with transaction = false runs each statement on its own, so a transaction \
         block written in it would not hold; run the block as a step with transaction = true \
         (without BEGIN/COMMIT), or put the SQL in a file (`file = \"...\"`, transaction = \
         false), which runs its own BEGIN ... COMMIT blocks as psql does",
    );
}

/// The step's first statement that begins or ends a transaction, refused:
/// its first characters, then `why`.
fn refuse_control(d: &mut Diags, stmts: &[String], span: Range<usize>, field: &str, why: &str) {
    if let Some(st) = stmts.iter().find(|st| controls_transaction(st)) {
        let first: String = st.chars().take(60).collect();
        d.err(span, field, format!("`{first}`{why}"));
    }
}

/// BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK (not to a savepoint),
/// ABORT: a statement that begins or ends a transaction.
fn controls_transaction(st: &str) -> bool {
    let words: Vec<String> = sql::tokens(st)
        .into_iter()
        .filter(|t| t.kind == sql::TokenKind::Word)
        .take(2)
        .map(|t| st[t.start..t.end].to_ascii_lowercase())
        .collect();
    match words.first().map(String::as_str) {
        Some("begin" | "commit" | "end" | "abort") => true,
        Some("rollback") => words.get(1).is_none_or(|w| w != "to"),
        Some("start") => words.get(1).is_some_and(|w| w == "transaction"),
        _ => false,
    }
}

fn backfill(d: &mut Diags, b: &S<model::BackfillSection>, path: &str) -> BackfillPlan {
    let bb = b.get_ref();
    let f = |n: &str| format!("{path}.{n}");
    let text = |d: &mut Diags, v: &Option<S<String>>, n: &str, what: &str| match d.required(
        v,
        b.span(),
        &f(n),
        what,
    ) {
        Some(v) => d.nonempty(v, &f(n), what).unwrap_or_default(),
        None => String::new(),
    };
    let table = text(
        d,
        &bb.table,
        "table",
        "the table to update, e.g. table = \"orders\"",
    );
    let key = text(
        d,
        &bb.key,
        "key",
        "an integer key column to batch by, e.g. key = \"id\"",
    );
    let set = text(
        d,
        &bb.set,
        "set",
        "the SET clause, e.g. set = \"total_v2 = total\"",
    );
    let where_clause = bb
        .where_clause
        .as_ref()
        .and_then(|v| d.nonempty(v, &f("where"), "a condition, or omit it"));
    // Both are pasted into the UPDATE of each batch: each must stay the
    // clause it stands for, or every batch could update the whole table.
    for (v, field) in [(&bb.set, "set"), (&bb.where_clause, "where")] {
        if let Some(problem) = v
            .as_ref()
            .and_then(|v| crate::sql::fragment_problem(v.get_ref()))
        {
            let span = v.as_ref().map_or(b.span(), |v| v.span());
            d.err(
                span,
                f(field),
                format!("{problem}: it goes into the UPDATE of each batch as one clause"),
            );
        }
    }
    let batch = match &bb.batch {
        Some(v) => d.int_in(v, &f("batch"), 1, 10_000_000).unwrap_or(1000) as u64,
        None => 1000,
    };
    BackfillPlan {
        table,
        key,
        batch,
        pause: d.duration(&bb.pause, &f("pause"), Duration::ZERO),
        set,
        where_clause,
    }
}
