//! Per-step facts: which step ran when, which app waits it caused (by
//! time overlap with its lock holds and statements), its locks, and what the
//! app saw while it ran.

use super::latency;
use super::{LockFact, StepFacts, WaitFact};
use crate::locks::LockMode;
use crate::record::{Blocks, LockRow, RunRecord, StatementRow, WaitCause, WaitRow};

/// The record as the analysis reads it: a lock on a relation that the step
/// itself creates (the new index of CREATE INDEX, a new table) blocks
/// nobody — no other session can see the relation before commit — so its
/// `blocks` is set to none. Idempotent.
pub fn normalize(rec: &RunRecord) -> RunRecord {
    let mut out = rec.clone();
    for l in &mut out.locks {
        if l.blocks != Blocks::None && created_by_step(rec, &l.phase, &l.step, &l.relation) {
            l.blocks = Blocks::None;
        }
    }
    out
}

/// Does any step create `relation`? (See [`created_by_step`].)
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

/// Steps in the order they first ran: (phase, step).
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
            .or(l.granted_ms.map(|g| g + l.held_ms))
            .unwrap_or(l.requested_ms + l.wait_ms + l.held_ms);
        v.push((l.requested_ms, end));
    }
    v
}

/// For each wait in waits.csv, the index into [`step_keys`] of the step it is
/// charged to: the caused-by-migration wait overlapping that step's lock
/// holds or statements the most. App-vs-app waits are charged to no step.
pub(crate) fn attribute_waits(rec: &RunRecord) -> Vec<Option<usize>> {
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
        .map(|(idx, (phase, step))| {
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
            // The final try of each statement: per SQL text, its rows at that
            // text's highest attempt (a whole-transaction retry bumps every
            // statement; a single-statement retry only its own).
            let last: Vec<&StatementRow> = stmts
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
                .collect();
            let bad = last.iter().find(|s| s.outcome != "ok");
            // The first MAX_SQL distinct texts: a backfill writes one
            // statement per batch, and `statements` keeps the count.
            let mut sql: Vec<String> = Vec::new();
            for s in &last {
                if sql.len() < MAX_SQL && !sql.contains(&s.sql) {
                    sql.push(s.sql.clone());
                }
            }
            let start = stmts
                .iter()
                .map(|s| s.start_ms)
                .chain(locks.iter().map(|l| l.requested_ms))
                .reduce(f64::min)
                .unwrap_or(0.0);
            let end = stmts.iter().map(|s| s.end_ms).fold(start, f64::max);

            // The strongest lock on a relation others can see; a lock on a
            // relation the step creates only when there is nothing else.
            let mut created: Vec<(&str, bool)> = Vec::new();
            for l in &locks {
                if !created.iter().any(|(r, _)| *r == l.relation) {
                    created.push((
                        &l.relation,
                        created_by_step(rec, &phase, &step, &l.relation),
                    ));
                }
            }
            let is_created = |rel: &str| created.iter().any(|(r, c)| *r == rel && *c);
            let visible: Vec<&LockRow> = locks
                .iter()
                .copied()
                .filter(|l| !is_created(&l.relation))
                .collect();
            let pool = if visible.is_empty() { &locks } else { &visible };
            let strongest_lock = pool
                .iter()
                .filter(|l| l.locktype == "relation")
                .filter_map(|l| LockMode::parse(&l.mode).map(|m| (m, *l)))
                .max_by(|(ma, la), (mb, lb)| ma.cmp(mb).then(la.held_ms.total_cmp(&lb.held_ms)))
                .map(|(_, l)| LockFact::of(l));
            let longest_blocking_lock = locks
                .iter()
                .filter(|l| l.blocks != Blocks::None)
                .max_by(|a, b| a.held_ms.total_cmp(&b.held_ms))
                .map(|l| LockFact::of(l));

            let mine: Vec<&WaitRow> = rec
                .waits
                .iter()
                .zip(wait_steps)
                .filter(|(_, s)| **s == Some(idx))
                .map(|(w, _)| w)
                .collect();
            let worst_app_wait = mine
                .iter()
                .max_by(|a, b| a.wait_ms.total_cmp(&b.wait_ms))
                .map(|w| WaitFact::of(w));
            let lock_timeout_ms = rec
                .info
                .iter()
                .flat_map(|i| i.steps.iter())
                .find(|s| s.phase == phase && s.step == step)
                .and_then(|s| s.lock_timeout_ms);

            StepFacts {
                statements: last.len(),
                attempts,
                sql,
                start_ms: start,
                end_ms: end,
                duration_ms: crate::pg::round3(end - start),
                outcome: bad
                    .map(|s| s.outcome.clone())
                    .unwrap_or_else(|| "ok".into()),
                sqlstate: bad.map(|s| s.sqlstate.clone()).unwrap_or_default(),
                strongest_lock,
                longest_blocking_lock,
                lock_wait_ms: locks.iter().map(|l| l.wait_ms).fold(0.0, f64::max),
                rewrote: stmts.iter().any(|s| s.rewrote),
                seq_scans: stmts.iter().map(|s| s.seq_scans).sum(),
                wal_bytes: stmts.iter().map(|s| s.wal_bytes).sum(),
                app_waits: mine.len(),
                worst_app_wait,
                latency: latency::facts(
                    rec.latency
                        .iter()
                        .filter(|r| latency::overlaps(r, start, end)),
                    start,
                    end,
                ),
                lock_timeout_ms,
                phase,
                step,
            }
        })
        .collect()
}
