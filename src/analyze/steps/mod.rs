//! Per-step facts: which step ran when, which app waits it caused (by
//! time overlap with its lock holds and statements), its locks, and what the
//! app saw while it ran.

use super::facts::{LockFact, Recovery, StepFacts, StepFootprint, WaitFact};
use super::latency;
use crate::locks::LockMode;
use crate::record::{
    Blocks, LockRow, RunRecord, StatementRow, StatementTotals, Unknown, WaitCause, WaitRow,
};

/// The record as the analysis reads it: a lock on a relation that the step
/// itself creates (the new index of CREATE INDEX, a new table) blocks
/// nobody — no other session can see the relation before commit — so its
/// `blocks` is set to none. Unless the lock was granted after the creation
/// committed — after the release of the step's first lock on it, which the
/// creating transaction took (a file's second transaction, the next
/// autocommit statement): then everyone sees the relation. Idempotent.
pub fn normalize(rec: &RunRecord) -> RunRecord {
    let mut out = rec.clone();
    for l in &mut out.locks {
        if l.blocks != Blocks::None
            && created_by_step(rec, &l.phase, &l.step, &l.relation)
            && !after_creation_committed(rec, l)
        {
            l.blocks = Blocks::None;
        }
    }
    out
}

/// Was `l` granted once the relation's creation had committed: at or after
/// the release of the step's earliest-granted lock on it?
fn after_creation_committed(rec: &RunRecord, l: &LockRow) -> bool {
    let first = rec
        .locks
        .iter()
        .filter(|o| o.phase == l.phase && o.step == l.step && o.relation == l.relation)
        .filter_map(|o| o.granted_ms.map(|g| (g, o)))
        .min_by(|(a, _), (b, _)| a.total_cmp(b))
        .map(|(_, o)| o);
    match (first.and_then(|f| f.released_ms), l.granted_ms) {
        (Some(created), Some(granted)) => granted >= created,
        _ => false,
    }
}

/// Does any step create `relation`? (See `created_by_step`.)
pub fn created_by_any_step(rec: &RunRecord, relation: &str) -> bool {
    let mut steps: Vec<(&str, &str)> = Vec::new();
    for l in rec.locks.iter().filter(|l| l.relation == relation) {
        if !steps.contains(&(l.phase.as_str(), l.step.as_str())) {
            steps.push((&l.phase, &l.step));
        }
    }
    steps
        .into_iter()
        .any(|(p, st)| created_by_step(rec, p, st, relation))
}

/// Does a statement of the step create `relation` (CREATE [UNIQUE] INDEX
/// [CONCURRENTLY] [IF NOT EXISTS] name, CREATE TABLE / SEQUENCE /
/// MATERIALIZED VIEW name)? Names compare without schema and quotes. A
/// relation named only by an OID counts as created (see below).
pub(crate) fn created_by_step(rec: &RunRecord, phase: &str, step: &str, relation: &str) -> bool {
    fn bare(n: &str) -> String {
        n.rsplit('.')
            .next()
            .unwrap_or(n)
            .trim_matches('"')
            .to_ascii_lowercase()
    }
    static CREATE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CREATE.get_or_init(|| {
        regex::Regex::new(
            r#"(?i)^\s*CREATE\s+(?:UNIQUE\s+)?(?:INDEX|TABLE|SEQUENCE|MATERIALIZED\s+VIEW)\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?("[^"]+"|[\w.]+)"#,
        )
        .expect("static regex")
    });
    // A relation known only by its OID had no name in the observer's
    // snapshot: its catalog row is not committed (an index being built), so
    // no app session can see it either.
    if !relation.is_empty() && relation.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // The recorder marks what the step created (`name (new)`, `name (new,
    // dropped)`) from the catalog at the step's boundaries.
    if crate::locks::marked_new(relation) {
        return true;
    }
    let rel = bare(relation);
    rec.statements
        .iter()
        .filter(|s| s.phase == phase && s.step == step)
        // Cheap test first: a backfill has hundreds of UPDATEs.
        .filter(|s| {
            s.sql
                .trim_start()
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("create"))
        })
        .filter_map(|s| re.captures(&s.sql).map(|c| bare(&c[1])))
        .any(|created| created == rel)
}

/// How many distinct statement texts a step lists.
pub const MAX_SQL: usize = 10;

/// Steps in the order they first ran: (phase, step). A step that ran no
/// statement (a migration file of comments only) is one too: steps.csv
/// has it.
pub(crate) fn step_keys(rec: &RunRecord) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut order: Vec<(f64, (String, String))> = rec
        .statements
        .iter()
        .map(|s| (s.start_ms, (s.phase.clone(), s.step.clone())))
        .chain(
            rec.locks
                .iter()
                .map(|l| (l.requested_ms, (l.phase.clone(), l.step.clone()))),
        )
        .chain(
            rec.steps
                .iter()
                .map(|s| (s.start_ms, (s.phase.clone(), s.step.clone()))),
        )
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, k) in order {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// The intervals during which a step could make app sessions wait: its lock
/// requests until release, and its statements.
fn step_intervals(rec: &RunRecord, phase: &str, step: &str) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = rec
        .statements
        .iter()
        .filter(|s| s.phase == phase && s.step == step)
        .map(|s| (s.start_ms, s.end_ms))
        .collect();
    for l in rec
        .locks
        .iter()
        .filter(|l| l.phase == phase && l.step == step)
    {
        let end = l
            .released_ms
            .or(l.granted_ms.zip(l.held_ms).map(|(g, h)| g + h))
            .unwrap_or(l.requested_ms + l.wait_ms);
        v.push((l.requested_ms, end));
    }
    v
}

/// For each wait in waits.csv, the index into [`step_keys`] of the step it is
/// charged to: the caused-by-migration wait overlapping that step's lock
/// holds or statements the most; an app query waiting for a session that
/// waited for the migration then (a chain) goes with that session's wait.
/// Other app-vs-app waits, and scripts' and other sessions' waits (they are
/// not the app), are charged to no step.
pub(crate) fn attribute_waits(rec: &RunRecord) -> Vec<Option<usize>> {
    let direct = direct_steps(rec);
    rec.waits
        .iter()
        .zip(&direct)
        .map(|(w, d)| {
            if !crate::latency::is_the_apps(&w.app) {
                None
            } else if w.cause != WaitCause::App {
                *d
            } else {
                crate::analyze::budget::chain_blocker(w, &rec.waits).and_then(|x| direct[x])
            }
        })
        .collect()
}

/// The step each wait the migration caused directly overlaps the most.
fn direct_steps(rec: &RunRecord) -> Vec<Option<usize>> {
    let keys = step_keys(rec);
    let intervals: Vec<Vec<(f64, f64)>> = keys
        .iter()
        .map(|(p, s)| step_intervals(rec, p, s))
        .collect();
    rec.waits
        .iter()
        .map(|w| {
            if w.cause == WaitCause::App {
                return None;
            }
            let mut best: Option<(usize, f64)> = None;
            for (i, iv) in intervals.iter().enumerate() {
                let overlap: f64 = iv
                    .iter()
                    .map(|(a, b)| (w.end_ms.min(*b) - w.start_ms.max(*a)).max(0.0))
                    .fold(0.0, f64::max);
                let touches = iv.iter().any(|(a, b)| w.start_ms <= *b && w.end_ms >= *a);
                if touches && best.is_none_or(|(_, o)| overlap > o) {
                    best = Some((i, overlap));
                }
            }
            best.map(|(i, _)| i)
        })
        .collect()
}

pub(crate) fn step_facts(rec: &RunRecord, wait_steps: &[Option<usize>]) -> Vec<StepFacts> {
    step_keys(rec)
        .into_iter()
        .enumerate()
        .map(|(idx, (phase, step))| one_step(rec, wait_steps, idx, phase, step))
        .collect()
}

/// The lock_timeout the step's own SQL set (`SET lock_timeout`,
/// `set_config`, `RESET`), in effect when it asked for its blocking lock
/// (else at its end): a migration file that sets its own timeout has one.
/// None when its SQL touched none; `Some(None)` when it turned it off.
fn own_lock_timeout(last: &[&StatementRow], blocking: Option<&LockFact>) -> Option<Option<f64>> {
    let asked = blocking.map_or(f64::INFINITY, |l| l.requested_ms);
    last.iter()
        .filter(|s| s.start_ms < asked && s.outcome == "ok")
        .filter_map(|s| crate::sql::time_setting(&s.sql, "lock_timeout"))
        .next_back()
}

fn one_step(
    rec: &RunRecord,
    wait_steps: &[Option<usize>],
    idx: usize,
    phase: String,
    step: String,
) -> StepFacts {
    let stmts: Vec<&StatementRow> = rec
        .statements
        .iter()
        .filter(|s| s.phase == phase && s.step == step)
        .collect();
    let locks: Vec<&LockRow> = rec
        .locks
        .iter()
        .filter(|l| l.phase == phase && l.step == step)
        .collect();
    let attempts = stmts.iter().map(|s| s.attempt).max().unwrap_or(0);
    let last = final_tries(&stmts);
    let bad = last.iter().find(|s| s.outcome != "ok");
    // The first MAX_SQL distinct texts: a backfill writes one statement per
    // batch, and `statements` keeps the count.
    let mut distinct: Vec<&str> = Vec::new();
    for s in &last {
        if !distinct.contains(&s.sql.as_str()) {
            distinct.push(&s.sql);
        }
    }
    let sql_distinct = distinct.len();
    let sql: Vec<String> = distinct.into_iter().take(MAX_SQL).map(clipped).collect();
    let (start, end) = step_span(rec, &phase, &step, &stmts, &locks);

    let mine: Vec<&WaitRow> = rec
        .waits
        .iter()
        .zip(wait_steps)
        .filter(|(_, s)| **s == Some(idx))
        .map(|(w, _)| w)
        .collect();
    let mut unknown = std::collections::BTreeMap::new();
    // Of the tries that ran last: an attempt given up (a lock_timeout, then
    // retried) ran nothing the step keeps; its figures, unknown for want of
    // a probe, would leave the step's unknown too (QA: "rewrite unknown,
    // WAL unknown" for every step that had to retry).
    let totals = totals_of(&last, &mut unknown);
    // A statement whose locks nothing listed (it failed before its probe,
    // or ran outside a transaction between two polls): the step's locks
    // are unknown in part, not "none".
    if let Some(why) = stmts
        .iter()
        .find_map(|s| Unknown::parse(&s.unknown).why("locks").map(str::to_string))
    {
        unknown.insert("locks".to_string(), why);
    }
    let footprint = footprint(rec, &phase, &step, &mut unknown);
    let strongest_lock = strongest_lock(rec, &phase, &step, &locks, &sql);
    let longest_blocking_lock = longest_blocking(&locks, &sql);
    // What the step's own SQL set before it asked for the lock wins over
    // what it began under (the scenario's, one carried from an earlier
    // file, the session's default), as on the server.
    let info = rec
        .info
        .iter()
        .flat_map(|i| i.steps.iter())
        .find(|s| s.phase == phase && s.step == step);
    let began_under = info.and_then(|s| s.lock_timeout_ms);
    let lock_timeout_from = info.and_then(|s| s.lock_timeout_from.clone());
    let statement_timeout_from = info.and_then(|s| s.statement_timeout_from.clone());
    let lock_timeout_ms =
        own_lock_timeout(&last, longest_blocking_lock.as_ref()).unwrap_or(began_under);

    StepFacts {
        statements: last.len(),
        attempts,
        sql,
        sql_distinct,
        start_ms: start,
        end_ms: end,
        duration_ms: crate::pg::round3(end - start),
        outcome: match bad {
            // The step failed as the scenario expects: steps.csv says so.
            Some(_) if step_outcome(rec, &phase, &step) == Some("expected_error") => {
                "expected_error".into()
            }
            Some(s) => s.outcome.clone(),
            // No statement failed, yet steps.csv says the step did not end
            // well: it failed before any statement ran (a server that died
            // as it began it).
            None => match step_outcome(rec, &phase, &step) {
                Some(o) if o != "ok" => o.to_string(),
                _ => "ok".into(),
            },
        },
        sqlstate: bad.map(|s| s.sqlstate.clone()).unwrap_or_default(),
        strongest_lock,
        longest_blocking_lock,
        lock_wait_ms: locks.iter().map(|l| l.wait_ms).fold(0.0, f64::max),
        lock_wait_behind: locks
            .iter()
            .filter(|l| l.wait_ms > 0.0)
            .max_by(|a, b| a.wait_ms.total_cmp(&b.wait_ms))
            .map(|l| {
                l.blocked_by
                    .split("; ")
                    .filter(|b| !b.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        rewrote: totals.rewrote,
        seq_scans: totals.seq_scans,
        wal_bytes: totals.wal_bytes,
        cluster_wal_bytes: totals.cluster_wal_bytes,
        footprint,
        unknown,
        app_waits: mine.len(),
        worst_app_wait: mine
            .iter()
            .max_by(|a, b| a.wait_ms.total_cmp(&b.wait_ms))
            .map(|w| WaitFact::of(w)),
        latency: {
            let (a, b) = latency_span(rec, &phase, &step).unwrap_or((start, end));
            latency::facts(rec, a, b, None)
        },
        recovery: Recovery::default(),
        lock_timeout_ms,
        lock_timeout_from,
        statement_timeout_from,
        // Set over the step's window by `replica::per_step`.
        replica_lag: None,
        phase,
        step,
    }
}

/// When the step ran: from its first statement or lock request to its last
/// statement's return or lock's release, whichever is later — a
/// transaction's COMMIT (which flushes the WAL the step wrote) is part of
/// the step, as its holds are. A step that ran nothing spans its steps.csv
/// row.
fn step_span(
    rec: &RunRecord,
    phase: &str,
    step: &str,
    stmts: &[&StatementRow],
    locks: &[&LockRow],
) -> (f64, f64) {
    let (row_start, row_end) = rec
        .steps
        .iter()
        .find(|r| r.phase == phase && r.step == step)
        .map_or((0.0, 0.0), |r| (r.start_ms, r.end_ms));
    let start = stmts
        .iter()
        .map(|s| s.start_ms)
        .chain(locks.iter().map(|l| l.requested_ms))
        .reduce(f64::min)
        .unwrap_or(row_start);
    let end = stmts
        .iter()
        .map(|s| s.end_ms)
        .chain(locks.iter().filter_map(|l| l.released_ms))
        .reduce(f64::max)
        .map_or(row_end.max(start), |e| e.max(start));
    (start, end)
}

/// The longest hold of a lock that blocks the app; of holds as long, the
/// one that blocks more, in the stronger mode, on the table rather than its
/// index.
fn longest_blocking(locks: &[&LockRow], sql: &[String]) -> Option<LockFact> {
    locks
        .iter()
        .copied()
        .filter(|l| l.blocks != Blocks::None && l.held_ms.is_some())
        .max_by(|a, b| {
            a.held_ms
                .unwrap_or(0.0)
                .total_cmp(&b.held_ms.unwrap_or(0.0))
                .then(a.blocks.cmp(&b.blocks))
                .then(LockMode::parse(&a.mode).cmp(&LockMode::parse(&b.mode)))
                .then(is_index(b).cmp(&is_index(a)))
        })
        .map(|l| LockFact::of(named_twin(l, locks, sql)))
}

/// steps.csv's row of the step (a run recorded before steps.csv has none:
/// every figure unknown, and said so).
fn footprint(
    rec: &RunRecord,
    phase: &str,
    step: &str,
    unknown: &mut std::collections::BTreeMap<String, String>,
) -> StepFootprint {
    let Some(row) = rec
        .steps
        .iter()
        .find(|s| s.phase == phase && s.step == step)
    else {
        return StepFootprint::default();
    };
    let why = Unknown::parse(&row.unknown);
    for (field, v) in [
        ("table_bytes_before", row.table_bytes_before),
        ("table_bytes_after", row.table_bytes_after),
        ("index_bytes_before", row.index_bytes_before),
        ("index_bytes_after", row.index_bytes_after),
        ("dead_tuples_after", row.dead_tuples_after),
    ] {
        if v.is_none() {
            let w = why.why(field).unwrap_or("not measured").to_string();
            unknown.insert(field.to_string(), w);
        }
    }
    StepFootprint {
        table_bytes_before: row.table_bytes_before,
        table_bytes_after: row.table_bytes_after,
        index_bytes_before: row.index_bytes_before,
        index_bytes_after: row.index_bytes_after,
        dead_tuples_after: row.dead_tuples_after,
    }
}

/// The span the step's app latency covers: run.json's span of the step
/// (from before its BEGIN until its COMMIT returned, as the executor marked
/// it: a segment boundary at each end); None when run.json does not have
/// it (the statements' span is used then).
pub(crate) fn latency_span(rec: &RunRecord, phase: &str, step: &str) -> Option<(f64, f64)> {
    rec.info
        .iter()
        .flat_map(|i| i.steps.iter())
        .find(|s| s.phase == phase && s.step == step)
        .map(|s| (s.start_ms, s.end_ms))
}

/// The final try of each statement: per SQL text, its rows at that text's
/// highest attempt (a whole-transaction retry bumps every statement; a
/// single-statement retry only its own).
fn final_tries<'a>(stmts: &[&'a StatementRow]) -> Vec<&'a StatementRow> {
    stmts
        .iter()
        .copied()
        .filter(|s| {
            let top = stmts
                .iter()
                .filter(|o| o.sql == s.sql)
                .map(|o| o.attempt)
                .max();
            Some(s.attempt) == top
        })
        .collect()
}

/// The strongest relation lock on a relation others can see; a lock on a
/// relation the step creates only when there is nothing else.
fn strongest_lock(
    rec: &RunRecord,
    phase: &str,
    step: &str,
    locks: &[&LockRow],
    sql: &[String],
) -> Option<LockFact> {
    let mut created: Vec<(&str, bool)> = Vec::new();
    for l in locks {
        if !created.iter().any(|(r, _)| *r == l.relation) {
            created.push((&l.relation, created_by_step(rec, phase, step, &l.relation)));
        }
    }
    let is_created = |rel: &str| created.iter().any(|(r, c)| *r == rel && *c);
    let visible: Vec<&LockRow> = locks
        .iter()
        .copied()
        // Created by the step, but taken after its creation committed:
        // others see it (the recorder says so by its `blocks`).
        .filter(|l| l.blocks != Blocks::None || !is_created(&l.relation))
        .collect();
    let pool = if visible.is_empty() { locks } else { &visible };
    let best = pool
        .iter()
        .filter(|l| l.locktype == "relation")
        .filter_map(|l| LockMode::parse(&l.mode).map(|m| (m, *l)))
        // Held beats waited for and never granted; then the strongest mode,
        // then the longest hold.
        .max_by(|(ma, la), (mb, lb)| {
            (la.held_ms.is_some(), ma)
                .cmp(&(lb.held_ms.is_some(), mb))
                .then(
                    la.held_ms
                        .unwrap_or(0.0)
                        .total_cmp(&lb.held_ms.unwrap_or(0.0)),
                )
                .then(is_index(lb).cmp(&is_index(la)))
        })
        .map(|(_, l)| l)?;
    Some(LockFact::of(named_twin(best, pool, sql)))
}

/// Of the holds taken and released with `best` in its mode (a partitioned
/// table's parent and partitions, a table and the index CLUSTER or DROP
/// TABLE locks with it), the one a statement of the step names, taken
/// first (the parent, the table: the index's lock comes after), else `best`
/// itself.
fn named_twin<'a>(best: &'a LockRow, locks: &[&'a LockRow], sql: &[String]) -> &'a LockRow {
    let named = |l: &LockRow| {
        sql.iter()
            .any(|s| crate::sql::names_relation(s, &l.relation))
    };
    locks
        .iter()
        .copied()
        .filter(|l| std::ptr::eq(*l, best) || held_together(l, best))
        .filter(|l| named(l))
        .reduce(first_granted)
        .unwrap_or(best)
}

/// The step's outcome in steps.csv.
/// The figures of the tries that ran last, their reasons for any unknown
/// in `unknown`. No statement of the step ran (the server died as it
/// began): nothing it did is known — not "no rewrite, no WAL".
fn totals_of(
    last: &[&StatementRow],
    unknown: &mut std::collections::BTreeMap<String, String>,
) -> StatementTotals {
    if last.is_empty() {
        for field in ["rewrote", "seq_scans", "wal_bytes", "cluster_wal_bytes"] {
            unknown.insert(
                field.to_string(),
                "no statement of the step ran".to_string(),
            );
        }
        return StatementTotals {
            seq_scans: None,
            wal_bytes: None,
            cluster_wal_bytes: None,
            rewrote: None,
        };
    }
    StatementTotals::of(last, |field, why| {
        unknown.insert(field.to_string(), why);
    })
}

fn step_outcome<'a>(rec: &'a RunRecord, phase: &str, step: &str) -> Option<&'a str> {
    rec.steps
        .iter()
        .find(|s| s.phase == phase && s.step == step)
        .map(|s| s.outcome.as_str())
        .or_else(|| {
            rec.info
                .iter()
                .flat_map(|i| i.steps.iter())
                .find(|s| s.phase == phase && s.step == step)
                .map(|s| s.outcome.as_str())
        })
}

/// Of two holds, the one granted first (a tie keeps `a`, unless `a` is on
/// an index and `b` is not): the table before the index locked with it, the
/// parent before its partitions.
pub(crate) fn first_granted<'a>(a: &'a LockRow, b: &'a LockRow) -> &'a LockRow {
    let g = |l: &LockRow| l.granted_ms.unwrap_or(f64::INFINITY);
    // Of two granted at once: the table's before its index's, then the mode
    // that blocks more (ALTER COLUMN TYPE holds ACCESS EXCLUSIVE and SHARE
    // on its table over the same span, in no set order in locks.csv).
    let rank = |l: &LockRow| (is_index(l), std::cmp::Reverse(l.blocks));
    if g(b) < g(a) || (g(b) == g(a) && rank(b) < rank(a)) {
        b
    } else {
        a
    }
}

/// A lock on an index (locks.csv `table`): of holds alike, its table's is
/// the one to name.
pub(crate) fn is_index(l: &LockRow) -> bool {
    !l.table.is_empty()
}

/// Two holds that are one: the same mode and effect on the app, taken and
/// released within 2 ms of each other — a statement on a partitioned table
/// locks the parent and every partition, `LOCK a, b` both tables.
pub(crate) fn held_together(a: &LockRow, b: &LockRow) -> bool {
    let near = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() <= 2.0,
        (x, y) => x.is_none() && y.is_none(),
    };
    a.mode == b.mode
        && a.blocks == b.blocks
        && near(a.granted_ms, b.granted_ms)
        && near(a.released_ms, b.released_ms)
}

/// A statement as summaries keep it: whole up to [`MAX_SQL_CHARS`], else
/// its start and how long it was. A 6 MB `INSERT ... VALUES` of reference
/// data in summary.md would cost GitHub's step summary (1 MiB at most, or
/// none of it is shown); statements.csv keeps every statement whole.
fn clipped(sql: &str) -> String {
    match sql.char_indices().nth(MAX_SQL_CHARS) {
        None => sql.to_string(),
        Some((cut, _)) => format!(
            "{}… ({} characters in all: statements.csv has it whole)",
            &sql[..cut],
            sql.chars().count()
        ),
    }
}

/// Characters of a statement a summary keeps.
const MAX_SQL_CHARS: usize = 2000;

#[cfg(test)]
mod tests;
