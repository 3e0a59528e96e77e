//! Lock holds of the migration (locks.csv): the executor's own lock lists per
//! transaction (`probe` rows), the migration backend's locks polled while a
//! statement ran outside a transaction, or inside one while a statement ran
//! that then failed, with no probe after it (`poll` rows), refined by what the
//! observer saw it wait for and by the server log's "acquired ... after X
//! ms" lines; waits that never led to a grant (`wait` rows).
//!
//! - requested: when the server began the statement that took the lock (its
//!   clock read right before the statement, pipelined ahead of it; the send
//!   time where that is unknown), or — if the migration had to wait —
//!   pg_locks.waitstart (server clock, µs precision).
//! - granted: when the server began the statement, when there was no wait; after a wait,
//!   the log line's timestamp (ms precision) where we own the server, else the
//!   first poll that no longer saw the wait (± half a poll interval). A lock
//!   first polled mid-statement: halfway between the poll that missed it and
//!   the one that saw it.
//! - released: the server's clock right after COMMIT/ROLLBACK (pipelined
//!   behind it; when it returned, where that is unknown) for transactional
//!   steps; outside a transaction, the server's clock right after the
//!   statement (the probe behind it) — unless the poll saw the lock go
//!   earlier: halfway between its last sighting and the poll that missed it.
//!   Inside a transaction, a lock a later statement's probe no longer lists
//!   (a ROLLBACK TO SAVEPOINT let it go) went during that statement: where
//!   the poll saw it go, else halfway through it. One taken and let go
//!   within a statement (a PL/pgSQL exception block's subtransaction) no
//!   probe lists: its row is the poll's. A lock let go and taken again
//!   (after a savepoint, in each batch of a procedure that commits) has a
//!   row for each hold, and a wait dates only the hold that began as it
//!   ended.
//!
//! Relations are named as migration/catalog.rs settles them: a relation the
//! step created or dropped is marked `(new)` / `(dropped)`; one nobody ever
//! saw by name (a rewrite's transient heap, created and dropped inside the
//! statement) has no row.

use std::collections::HashMap;

use crate::locks::{blocks_of, marked_new, unmarked, LockMode};
use crate::migration::{is_catalog, MigrationRun};
use crate::observe::{LogAcquired, MigrationWait, Observations};
use crate::record::{LockRow, StatementRow, WaitCause, WaitRow};

use crate::pg::round3;

/// A log line matched to a lock.
struct NamedAcquired<'a> {
    line: &'a LogAcquired,
}

/// A lock to place: what the row says and which statement took it.
struct Taken<'a> {
    locktype: &'a str,
    oid: Option<u32>,
    seen: &'a str,
    mode: &'a str,
}

/// Every lock row of the migration, by when it was requested: each
/// transaction's probed locks, the polled ones, and waits that never led to
/// a grant.
pub fn lock_rows(run: &MigrationRun, obs: &Observations) -> Vec<LockRow> {
    let mut placer = Placer {
        run,
        obs,
        acquired: obs
            .log_acquired
            .iter()
            .filter(|a| a.pid == run.pid)
            .map(|line| NamedAcquired { line })
            .collect(),
        used_waits: vec![false; obs.migration_waits.len()],
        rows: Vec::new(),
        units: Vec::new(),
        seen_names: seen_names(run, obs),
    };
    placer.probed();
    placer.polled();
    placer.ungranted();
    placer.visible_after_commit();
    let mut rows = placer.rows;
    sessions_blocked(&mut rows, &obs.waits);
    waited_behind(&mut rows, &obs.migration_waits);
    rows.sort_by(|a, b| a.requested_ms.total_cmp(&b.requested_ms));
    rows
}

/// Who held up each lock the migration waited for: the blockers of its
/// wait (the one that began when the row's request did).
fn waited_behind(rows: &mut [LockRow], waits: &[MigrationWait]) {
    for r in rows.iter_mut().filter(|r| r.wait_ms > 0.0) {
        let w = waits.iter().find(|w| {
            w.mode == r.mode
                && w.locktype == r.locktype
                && (w.start_ms - r.requested_ms).abs() <= 1.0
                && !w.blockers.is_empty()
        });
        if let Some(w) = w {
            r.blocked_by = w.blockers.join("; ");
        }
    }
}

/// An advisory lock blocks what takes its key: nothing the conflict matrix
/// knows of. It blocks the app where app sessions waited for that key
/// while the migration held it (waits.csv, blamed on the migration).
fn sessions_blocked(rows: &mut [LockRow], waits: &[WaitRow]) {
    for r in rows.iter_mut().filter(|r| r.locktype == "advisory") {
        let (Some(from), Some(to)) = (r.granted_ms, r.released_ms) else {
            continue;
        };
        let waited = waits.iter().any(|w| {
            w.locktype == "advisory"
                && w.relation == r.relation
                && w.cause != WaitCause::App
                && w.start_ms < to
                && w.end_ms > from
        });
        if waited {
            r.blocks = crate::record::Blocks::Sessions;
        }
    }
}

/// How far an app wait's end, placed halfway between two wait polls (5 ms
/// apart), may lie before the release of the migration lock it waited
/// behind and still be that wait: the release is the finer figure.
const WAIT_END_SLACK_MS: f64 = 6.0;

/// An app that waited for a lock the migration held — or had asked for
/// before it, queued behind that request — got it no earlier than the
/// migration let go (or gave the request up, at a lock_timeout): end such a
/// wait (waits.csv) no earlier than that lock's release (locks.csv), where
/// the wait poll's halfway estimate put it up to a poll interval before.
pub fn align_waits(waits: &mut [WaitRow], locks: &[LockRow]) {
    for w in waits.iter_mut() {
        if w.cause == WaitCause::App {
            continue;
        }
        if matches!(w.locktype.as_str(), "tuple" | "transactionid") {
            align_row_wait(w, locks);
            continue;
        }
        if !matches!(w.locktype.as_str(), "" | "relation") {
            continue;
        }
        let Some(wanted) = LockMode::parse(&w.mode) else {
            continue;
        };
        let release = locks
            .iter()
            .filter(|l| unmarked(&l.relation) == unmarked(&w.relation))
            .filter(|l| LockMode::parse(&l.mode).is_some_and(|m| m.conflicts_with(wanted)))
            // Held, or asked for, when the wait began.
            .filter(|l| l.requested_ms <= w.start_ms + WAIT_END_SLACK_MS)
            // Let go; or, never granted (a lock_timeout), given up: a wait
            // queued behind the request went on at least that long.
            .filter_map(|l| match l.granted_ms {
                Some(_) => l.released_ms,
                None => Some(l.requested_ms + l.wait_ms),
            })
            .collect::<Vec<f64>>();
        end_no_earlier_than(w, release);
    }
}

/// End `w` at the latest of `releases` that lies after its poll-placed end
/// by no more than the slack: the finer figure of when it could go on.
fn end_no_earlier_than(w: &mut WaitRow, releases: Vec<f64>) {
    let release = releases
        .into_iter()
        .filter(|r| *r > w.end_ms && *r - w.end_ms <= WAIT_END_SLACK_MS)
        .reduce(f64::max);
    if let Some(r) = release {
        // A lock_timeout's end is a sum (request + wait): rounded as every
        // time in the CSVs is (QA: 1187.4869999999999).
        w.end_ms = round3(r);
        w.wait_ms = round3(r - w.start_ms);
    }
}

/// A wait for a row the migration's transaction changed ends when that
/// transaction does: no earlier than the release of the locks it held then
/// on the row's table or its transaction id (all let go at its COMMIT),
/// where the wait poll's halfway estimate put it up to a poll before (QA:
/// 1–4 ms early).
fn align_row_wait(w: &mut WaitRow, locks: &[LockRow]) {
    let release = locks
        .iter()
        .filter(|l| {
            l.locktype == "transactionid"
                || (l.locktype == "relation" && unmarked(&l.relation) == unmarked(&w.relation))
        })
        .filter(|l| {
            l.granted_ms
                .is_some_and(|g| g <= w.start_ms + WAIT_END_SLACK_MS)
        })
        .filter_map(|l| l.released_ms)
        .collect();
    end_no_earlier_than(w, release);
}

/// A DDL or maintenance statement with no row in locks.csv where only the
/// lock poll could have listed its locks — outside a transaction, or inside
/// one but failing before the probe behind it ran — and the poll saw none
/// (it was over between two polls). Said in its `unknown`, not left to look
/// like a statement that takes none (a budget would pass it).
pub fn note_unseen(run: &mut MigrationRun, rows: &[LockRow]) {
    const TAKES_LOCKS: &[&str] = &[
        "ALTER", "CREATE", "DROP", "REINDEX", "VACUUM", "CLUSTER", "REFRESH", "ANALYZE",
        "TRUNCATE", "COMMENT", "UPDATE", "INSERT", "DELETE", "MERGE", "DO", "CALL", "LOCK",
    ];
    let failed_in_txn = (0..run.statements.len())
        .filter(|i| !run.outside_txn.contains(i) && !run.statements[*i].sqlstate.is_empty());
    let unprobed: Vec<usize> = run
        .outside_txn
        .iter()
        .copied()
        .chain(failed_in_txn)
        .collect();
    for idx in unprobed {
        let in_txn = !run.outside_txn.contains(&idx);
        let Some(st) = run.statements.get_mut(idx) else {
            continue;
        };
        let first = crate::migrations::first_word(&st.sql).unwrap_or_default();
        if !TAKES_LOCKS.contains(&first.as_str()) {
            continue;
        }
        let seen = rows.iter().any(|l| {
            l.phase == st.phase
                && l.step == st.step
                && l.granted_ms.unwrap_or(l.requested_ms) >= st.start_ms - 1.0
                && l.granted_ms.unwrap_or(l.requested_ms) <= st.end_ms + 1.0
        });
        if seen {
            continue;
        }
        let why = if in_txn {
            format!(
                "not in locks.csv: the statement failed ({}) after {:.1} ms, before the probe \
                 behind it could list its locks, and the lock poll saw none taken while it ran: \
                 it was over between two polls, or failed before taking any",
                st.sqlstate, st.duration_ms
            )
        } else {
            format!(
                "not in locks.csv: the lock poll saw no lock of this statement outside a \
                 transaction ({:.1} ms): it was over between two polls, or took none (an IF \
                 EXISTS of nothing, a DO or CALL that changed nothing)",
                st.duration_ms
            )
        };
        let mut u = crate::record::Unknown::parse(&st.unknown);
        u.add("locks", why);
        st.unknown = u.to_string();
    }
}

/// What took a lock: a transaction (its index in `txns`), a statement run
/// outside one (its index in `statements`), or nothing (a wait never
/// granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Txn(usize),
    Statement(usize),
    None,
}

/// What the three sources of rows share: the wait matching (`used_waits`,
/// so one wait dates one grant), the log lines, the naming of relations,
/// and the rows so far.
struct Placer<'a> {
    run: &'a MigrationRun,
    obs: &'a Observations,
    acquired: Vec<NamedAcquired<'a>>,
    used_waits: Vec<bool>,
    rows: Vec<LockRow>,
    /// What took each row's lock, by index.
    units: Vec<Unit>,
    /// The names the migration's probes and the poll saw relations by.
    seen_names: HashMap<u32, String>,
}

/// Every name a probe or the poll saw a relation by: a relation a step
/// created and later dropped is seen by name while it exists, and only by
/// its oid once the DROP has it (its catalog row is gone), in a reading
/// neither step boundary has.
fn seen_names(run: &MigrationRun, obs: &Observations) -> HashMap<u32, String> {
    let named = |n: &str| !n.is_empty() && !n.bytes().all(|b| b.is_ascii_digit());
    let probed = run
        .txns
        .iter()
        .flat_map(|t| t.acquired.iter())
        .filter_map(|(k, _)| Some((k.oid?, k.name.as_str())));
    let polled = obs
        .migration_held
        .iter()
        .filter_map(|h| Some((h.oid?, h.relation.as_str())));
    let mut names = HashMap::new();
    for (oid, name) in probed.chain(polled).filter(|(_, n)| named(n)) {
        names.entry(oid).or_insert_with(|| name.to_string());
    }
    names
}

impl Placer<'_> {
    /// The wait (and its grant) of the lock `t` took during `stmt`. With
    /// `seen`, the poll's first sighting of this hold: the wait that ended
    /// between the poll that missed the lock and the one that saw it. A
    /// statement that takes one lock again and again (a procedure that
    /// commits between batches, a DO block retrying through its exception
    /// handler, a `lock_timeout` loop) waits before some of its holds and
    /// not others: any wait of the statement would date a hold by another
    /// hold's wait.
    fn wait_for(
        &mut self,
        t: &Taken,
        stmt: &StatementRow,
        seen: Option<&crate::observe::HeldSighting>,
    ) -> Option<(f64, f64)> {
        let used = &self.used_waits;
        let before_sighting = |w: &MigrationWait| {
            seen.is_none_or(|h| {
                w.start_ms <= h.first_ms + WAIT_END_SLACK_MS
                    && w.end_ms <= h.first_ms + WAIT_END_SLACK_MS
                    && h.missed_before_ms
                        .is_none_or(|m| w.end_ms >= m - WAIT_END_SLACK_MS)
            })
        };
        let (i, w) = self
            .obs
            .migration_waits
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                !used[*i]
                    && same_relation(w.oid, &w.relation, t.oid, t.seen)
                    && w.mode == t.mode
                    && w.start_ms >= stmt.start_ms - 5.0
                    && w.start_ms <= stmt.end_ms + 5.0
                    && before_sighting(w)
            })
            // Of several, the one that ended last before the sighting.
            .reduce(|a, b| match seen.is_some() && b.1.end_ms > a.1.end_ms {
                true => b,
                false => a,
            })?;
        self.used_waits[i] = true;
        let granted = self
            .acquired
            .iter()
            .find(|a| {
                a.line.relation_oid.is_some()
                    && a.line.relation_oid == t.oid
                    && a.line.mode == t.mode
                    && a.line.at_ms >= w.start_ms - 5.0
                    && a.line.at_ms <= stmt.end_ms + 5.0
            })
            .map(|a| a.line.at_ms.max(w.start_ms))
            .unwrap_or(w.end_ms);
        Some((w.start_ms, granted))
    }

    /// The relation's name as the step left it; None for a catalog or a
    /// relation nobody saw by name.
    fn name(&self, phase: &str, step: &str, t: &Taken) -> Option<String> {
        let seen = match t.oid.and_then(|o| self.seen_names.get(&o)) {
            Some(n) if t.seen.bytes().all(|b| b.is_ascii_digit()) => n.as_str(),
            _ => t.seen,
        };
        let n = self.run.relations.name(phase, step, t.oid, seen)?;
        (!is_catalog(t.oid, &n)).then_some(n)
    }

    /// The row just pushed is `t`'s, taken by `unit`. A lock on a
    /// materialized view that only stops writes stops nothing the app does:
    /// nothing writes a materialized view (REFRESH ... CONCURRENTLY's
    /// EXCLUSIVE lets its readers go on).
    fn last_is(&mut self, t: &Taken, unit: Unit) {
        if let Some(r) = self.rows.last_mut() {
            if r.blocks == crate::record::Blocks::Writes && self.run.relations.is_matview(t.oid) {
                r.blocks = crate::record::Blocks::None;
            }
        }
        self.units.push(unit);
    }

    /// Each transaction's locks, as its probes listed them.
    fn probed(&mut self) {
        let (run, obs) = (self.run, self.obs);
        for (ti, txn) in run.txns.iter().enumerate() {
            // Rows released at COMMIT's clock for want of a sighting (a
            // transactionid lock, which the poll does not read).
            let mut at_commit: Vec<(usize, Option<f64>)> = Vec::new();
            let mut seen_going: Option<f64> = None;
            for (ai, (k, idx)) in txn.acquired.iter().enumerate() {
                let t = Taken {
                    locktype: &k.locktype,
                    oid: k.oid,
                    seen: &k.name,
                    mode: &k.mode,
                };
                let Some(relation) = self.name(&txn.phase, &txn.step, &t) else {
                    continue;
                };
                let stmt = &run.statements[*idx];
                let (start, end) = server_span(run, *idx);
                // Let go before COMMIT after statement `gone_at` (a
                // savepoint rolled back), perhaps to be taken again: this
                // hold's sightings end with that statement.
                let gone_at = txn.gone.iter().find(|(g, _)| *g == ai).map(|(_, gi)| *gi);
                let until = gone_at.map_or(txn.released_ms, |gi| server_span(run, gi).1);
                let sightings = in_txn_sightings(obs, &t, start, until);
                let first = sightings
                    .clone()
                    .min_by(|a, b| a.first_ms.total_cmp(&b.first_ms));
                let last_seen = sightings.clone().map(|h| h.last_ms).reduce(f64::max);
                let gone = sightings
                    .filter(|h| h.missed_after_ms.is_some())
                    .max_by(|a, b| a.last_ms.total_cmp(&b.last_ms));
                let (requested, granted) = self.wait_for(&t, stmt, first).unwrap_or_else(|| {
                    // Taken mid-statement (ALTER COLUMN TYPE's index locks at
                    // its end): between the poll that missed it and the one
                    // that saw it; never seen, between the statement's last
                    // poll (which did not list it) and its end — DROP TABLE
                    // takes its index only once its wait for the table is
                    // over, and returns before a poll sees it.
                    let missed = match first {
                        Some(h) => h.missed_before_ms.map(|m| (m, h.first_ms)),
                        None => last_poll(obs, start, end).map(|m| (m, end)),
                    };
                    let g = missed
                        .filter(|(m, _)| *m > start)
                        .map_or(start, |(m, f)| ((m + f) / 2.0).clamp(start, end));
                    // No wait: requested when granted.
                    (g, g)
                });
                // The statement returned once it had the lock.
                let granted = granted.min(end.max(requested));
                let at_error = released_at_error(run, obs, &t, start, txn.released_ms);
                // Let go during a later statement, before COMMIT (a
                // savepoint rolled back): the probe after it no longer
                // listed it. Between the poll's last sighting (or that
                // statement's start) and the poll that missed it (or its end).
                let let_go = gone_at.map(|gi| {
                    let (gs, ge) = server_span(run, gi);
                    let lo = last_seen.map_or(gs, |l| l.max(gs)).min(ge);
                    let hi = gone
                        .and_then(|h| h.missed_after_ms)
                        .map_or(ge, |m| m.clamp(lo, ge));
                    ((lo + hi) / 2.0).max(granted)
                });
                // Released inside COMMIT, which goes on past the release
                // (a rewrite's old files are unlinked after the locks go):
                // when the poll saw it go, between the last poll that saw it
                // and the one that missed it.
                let released = if at_error < txn.released_ms {
                    at_error
                } else if let Some(r) = let_go {
                    r
                } else {
                    match gone
                        .and_then(|h| Some((h.last_ms, h.missed_after_ms?)))
                        .map(|(l, m)| seen_released(l, m, txn.released_ms))
                        .filter(|r| *r >= granted && *r < txn.released_ms)
                    {
                        Some(r) => {
                            seen_going = Some(seen_going.map_or(r, |s| s.min(r)));
                            r
                        }
                        None => {
                            at_commit.push((self.rows.len(), last_seen));
                            txn.released_ms
                        }
                    }
                };
                let table = self.run.relations.table_of(&txn.phase, &txn.step, t.oid);
                self.rows.push(row(
                    &txn.phase,
                    &txn.step,
                    (&relation, &table),
                    &t,
                    requested,
                    Some(granted),
                    Some(released),
                    "probe",
                ));
                self.last_is(&t, Unit::Txn(ti));
            }
            // COMMIT releases all of a transaction's locks together: where
            // the poll saw some go, the others went then too — unless the
            // poll saw one still held after that (a backend descheduled
            // between two lock partitions releases them milliseconds
            // apart): it went after its last sighting, before COMMIT
            // returned.
            if let Some(r) = seen_going {
                for (i, last_seen) in at_commit {
                    let row = &mut self.rows[i];
                    let released = match last_seen {
                        Some(l) if l > r => (l + txn.released_ms.max(l)) / 2.0,
                        _ => r,
                    };
                    if row.granted_ms.is_some_and(|g| g <= released) {
                        row.released_ms = Some(round3(released));
                        row.held_ms = row.granted_ms.map(|g| round3(released - g));
                    }
                }
            }
        }
    }

    /// Locks polled while a statement ran outside a transaction, and inside
    /// one those of a statement that failed: no probe listed them, and the
    /// error released them (the transaction aborted there).
    fn polled(&mut self) {
        let run = self.run;
        for h in &sightings_by_transaction(run, self.obs) {
            let Some(idx) = statement_near(&run.statements, h.first_ms, 1.0) else {
                continue;
            };
            let stmt = &run.statements[idx];
            let (start, end) = server_span(run, idx);
            let t = Taken {
                locktype: &h.locktype,
                oid: h.oid,
                seen: &h.relation,
                mode: &h.mode,
            };
            let Some(relation) = self.name(&stmt.phase, &stmt.step, &t) else {
                continue;
            };
            // A ShareLock on another transaction's id is how a backend
            // waits for that transaction to end (a row it changed): taken
            // as it ends and let go at once. The wait is the row
            // (`ungranted`), named by the row's table.
            if h.locktype == "transactionid" && h.mode == "ShareLock" {
                continue;
            }
            // Inside a transaction, a lock the probe after the statement
            // listed (or one after an earlier statement did) has its probe
            // row; one taken and let go within the statement (a PL/pgSQL
            // exception block rolls its subtransaction back) only the poll
            // saw. So has one a failing statement held.
            let probed = |r: &LockRow| {
                r.source == "probe"
                    && r.phase == stmt.phase
                    && r.step == stmt.step
                    && r.relation == relation
                    && r.mode == h.mode
                    && r.released_ms.is_some_and(|x| x >= start)
            };
            if h.in_txn && self.rows.iter().any(probed) {
                continue;
            }
            // Of an ok statement, only a lock first seen while it ran: the
            // probe's own locks, seen just after, are none of the
            // migration's. One the probe behind it did not list was let go
            // before the statement ended (an exception block rolled back
            // its subtransaction), though the poll may not have seen it go
            // yet. Where that probe failed, one not seen gone by the end may
            // be held to COMMIT: its locks are unknown, and the row says so.
            let probed_after = crate::record::Unknown::parse(&stmt.unknown)
                .why("locks")
                .is_none();
            let gone_by_end = h.missed_after_ms.is_some_and(|m| m <= end + 1.0)
                || (probed_after && h.last_ms <= end + 1.0);
            if h.in_txn && stmt.outcome == "ok" && (h.first_ms > end || !gone_by_end) {
                continue;
            }
            // Taken no earlier than the backend began the statement (when
            // the poller saw when that was), and mid-statement if a poll
            // during the statement missed it first.
            let start = h
                .statement_start_ms
                .filter(|s| *s > start && *s <= h.first_ms)
                .unwrap_or(start);
            let polled_grant = h
                .missed_before_ms
                .filter(|m| *m > start)
                .map(|m| ((m + h.first_ms) / 2.0).max(start));
            let (requested, granted) = self.wait_for(&t, stmt, Some(h)).unwrap_or_else(|| {
                let g = polled_grant.unwrap_or(start);
                (g, g)
            });
            let released = if h.in_txn && stmt.outcome != "ok" {
                at_error(h, end)
            } else if h.in_txn {
                // Let go inside the statement: after the last sighting, by
                // the poll that missed it or the statement's end.
                let by = h.missed_after_ms.map_or(end, |m| m.min(end));
                ((h.last_ms + by) / 2.0).max(h.last_ms)
            } else {
                h.missed_after_ms
                    .filter(|m| *m < end)
                    .map(|m| ((h.last_ms + m) / 2.0).min(end))
                    .unwrap_or(end)
            };
            let table = self.run.relations.table_of(&stmt.phase, &stmt.step, t.oid);
            let mut r = row(
                &stmt.phase,
                &stmt.step,
                (&relation, &table),
                &t,
                requested,
                Some(granted),
                Some(released),
                "poll",
            );
            if drops_dead_index(&stmt.sql, &relation) {
                r.blocks = crate::record::Blocks::None;
            }
            self.rows.push(r);
            self.last_is(&t, Unit::Statement(idx));
        }
    }

    /// Waits that never led to a grant: lock timeouts, cancelled attempts
    /// (and waits for another transaction to end, got and let go at once).
    fn ungranted(&mut self) {
        let run = self.run;
        for (i, w) in self.obs.migration_waits.iter().enumerate() {
            if self.used_waits[i] {
                continue;
            }
            let stmt = statement_near(&run.statements, w.start_ms, 5.0).map(|i| &run.statements[i]);
            let (phase, step) = stmt
                .map(|s| (s.phase.as_str(), s.step.as_str()))
                .unwrap_or(("", ""));
            let t = Taken {
                locktype: &w.locktype,
                oid: w.oid,
                seen: &w.relation,
                mode: &w.mode,
            };
            let relation = self
                .name(phase, step, &t)
                .unwrap_or_else(|| w.relation.clone());
            let table = self.run.relations.table_of(phase, step, t.oid);
            // A wait for another transaction to end (CONCURRENTLY's waits
            // for older snapshots) that its statement got past: the lock is
            // taken as that transaction ends and let go at once.
            let got = matches!(w.locktype.as_str(), "virtualxid" | "transactionid")
                && stmt.is_some_and(|s| s.outcome == "ok" && w.end_ms <= s.end_ms + 5.0);
            // Not after its statement returned: a poll's midpoint can be.
            let end_ms = match stmt {
                Some(s) if got => w.end_ms.min(s.end_ms).max(w.start_ms),
                _ => w.end_ms,
            };
            let at = got.then_some(end_ms);
            let mut r = row(
                phase,
                step,
                (&relation, &table),
                &t,
                w.start_ms,
                at,
                at,
                "wait",
            );
            r.wait_ms = round3(end_ms - w.start_ms);
            self.rows.push(r);
            self.last_is(&t, Unit::None);
        }
    }

    /// A relation the step created blocks nobody while the transaction
    /// (or the statement outside one) that created it is open: no other
    /// session can see it. Once that has committed it can: a later
    /// transaction of the step (a file's second `BEGIN ... COMMIT`, the next
    /// autocommit statement) that locks it conflicts like on any table. The
    /// creator is whatever took the step's first lock on it; a wait for a
    /// lock on it means some other session already had it open.
    fn visible_after_commit(&mut self) {
        let rows = &self.rows;
        let creator = |r: &LockRow| {
            rows.iter()
                .zip(&self.units)
                .filter(|(o, u)| {
                    **u != Unit::None
                        && o.phase == r.phase
                        && o.step == r.step
                        && o.relation == r.relation
                })
                .min_by(|(a, _), (b, _)| {
                    let at = |l: &LockRow| l.granted_ms.unwrap_or(l.requested_ms);
                    at(a).total_cmp(&at(b))
                })
                .map(|(_, u)| *u)
        };
        let visible: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                // A wait means another session holds the relation: it sees it.
                marked_new(&rows[i].relation)
                    && (self.units[i] == Unit::None || creator(&rows[i]) != Some(self.units[i]))
            })
            .collect();
        for i in visible {
            let r = &mut self.rows[i];
            r.blocks = blocks_of(&r.locktype, &r.mode);
        }
    }
}

/// The held-lock poll's sightings, inside a transaction, of the lock `t`
/// taken no earlier than `start` and held until `released` at the latest
/// (one per statement it followed while the lock was held).
/// The start of the last read of the migration's locks made while the
/// statement of server span `[start, end]` ran (or of the last look that
/// saw it still waiting), if the poller followed it.
fn last_poll(obs: &Observations, start: f64, end: f64) -> Option<f64> {
    obs.migration_statement_polls
        .iter()
        .filter(|p| p.first_ms >= start - 1.0 && p.last_ms <= end + 1.0)
        .map(|p| p.last_ms.min(end))
        .reduce(f64::max)
}

fn in_txn_sightings<'a>(
    obs: &'a Observations,
    t: &'a Taken,
    start: f64,
    released: f64,
) -> impl Iterator<Item = &'a crate::observe::HeldSighting> + Clone {
    obs.migration_held.iter().filter(move |h| {
        h.in_txn
            && h.locktype == t.locktype
            && h.mode == t.mode
            && same_relation(h.oid, &h.relation, t.oid, t.seen)
            && h.first_ms >= start - 1.0
            && h.last_ms <= released + 1.0
    })
}

/// The poll's sightings, those of a CALL or DO block outside a transaction
/// split where it moved on to another transaction (a COMMIT inside it): a
/// lock seen on both sides of that was let go and taken again, if too
/// briefly for a poll to miss it (QA: a procedure's 200 ms and 30 ms holds
/// of one table, 1.5 ms apart, made one hold of 232 ms). Not those of the
/// server's own statements that run several transactions (VACUUM, the
/// CONCURRENTLY forms): they keep their table's lock for the session across
/// them. Nor an advisory lock, which may be the session's too.
fn sightings_by_transaction(
    run: &MigrationRun,
    obs: &Observations,
) -> Vec<crate::observe::HeldSighting> {
    let mut out = Vec::new();
    for h in &obs.migration_held {
        let user_transactions = statement_near(&run.statements, h.first_ms, 1.0).is_some_and(|i| {
            let first = crate::migrations::first_word(&run.statements[i].sql);
            matches!(first.as_deref(), Some("CALL" | "DO"))
        });
        if h.in_txn || h.locktype == "advisory" || !user_transactions {
            out.push(h.clone());
            continue;
        }
        let mut rest = h.clone();
        let mut changes: Vec<_> = obs
            .migration_txn_changes
            .iter()
            // Seen in a poll before the change and in one after it.
            .filter(|c| h.first_ms < c.after_ms && h.last_ms > c.before_ms)
            .collect();
        changes.sort_by(|a, b| a.before_ms.total_cmp(&b.before_ms));
        for c in changes {
            out.push(crate::observe::HeldSighting {
                last_ms: c.before_ms,
                missed_after_ms: Some(c.after_ms),
                ..rest.clone()
            });
            rest.first_ms = c.after_ms;
            rest.missed_before_ms = Some(c.before_ms);
            rest.statement_start_ms = None;
        }
        out.push(rest);
    }
    out
}

/// When statement `idx` ran: the server's own span where known, else the
/// client's send and receipt.
fn server_span(run: &MigrationRun, idx: usize) -> (f64, f64) {
    match run.server_spans.get(idx).copied().flatten() {
        Some(s) => (s.start_ms, s.end_ms),
        None => {
            let s = &run.statements[idx];
            (s.start_ms, s.end_ms)
        }
    }
}

/// The same relation: by oid when both sides have one, else by name.
/// When a probed lock of a transaction went. A transaction that failed let
/// go of its locks at the error, before its ROLLBACK returned: for a lock
/// the poll saw during the failed statement, [`at_error`]. Otherwise, and
/// for a transaction that committed, `ended`.
fn released_at_error(
    run: &MigrationRun,
    obs: &Observations,
    t: &Taken,
    from: f64,
    ended: f64,
) -> f64 {
    // The statement of this transaction that failed: its error let go of
    // every lock of the transaction, whether a poll saw them during it or not.
    let Some(failed) = (0..run.statements.len()).find(|&i| {
        let (start, _) = server_span(run, i);
        run.statements[i].outcome != "ok" && start >= from && start <= ended
    }) else {
        return ended;
    };
    let (failed_start, _) = server_span(run, failed);
    let error_ms = run.statements[failed].end_ms;
    obs.migration_held
        .iter()
        .filter(|h| {
            h.in_txn && h.mode == t.mode && same_relation(h.oid, &h.relation, t.oid, t.seen)
        })
        .filter(|h| h.first_ms >= from && h.first_ms <= ended)
        .filter(|h| statement_near(&run.statements, h.first_ms, 1.0) == Some(failed))
        .map(|h| at_error(h, error_ms))
        .fold(error_ms, f64::min)
        // Not before the failing statement began: a poll's clock and the
        // statements' are read on two sides of a socket.
        .max(failed_start)
        .min(ended)
}

/// When a statement's error released a lock the poll saw during it (inside
/// a transaction: the abort lets go of every lock): at the error, the very
/// end of the statement. No server clock follows a failed statement, so
/// the bound is when its error reached us (`error_ms`), or the first poll
/// that no longer saw the lock if that came sooner; never before its last
/// sighting.
fn at_error(h: &crate::observe::HeldSighting, error_ms: f64) -> f64 {
    h.missed_after_ms
        .map_or(error_ms, |m| m.min(error_ms))
        .max(h.last_ms)
}

fn same_relation(a_oid: Option<u32>, a_name: &str, b_oid: Option<u32>, b_name: &str) -> bool {
    match (a_oid, b_oid) {
        (Some(a), Some(b)) => a == b,
        _ => a_name == b_name,
    }
}

/// The statement a lock seen (or waited for) at `at` belongs to: the one
/// running then, else the nearest within `slack` ms (the poll's clock and
/// the statement's are read on two sides of a socket). Not simply the
/// first within the slack: inside a transaction the next statement is sent
/// a fraction of a millisecond after the last returned, and a lock of the
/// later one would go to the earlier (a failed DO block's lock, given to
/// the LOCK before it, which succeeded, was left out of locks.csv).
fn statement_near(stmts: &[StatementRow], at: f64, slack: f64) -> Option<usize> {
    let distance = |s: &StatementRow| (s.start_ms - at).max(at - s.end_ms).max(0.0);
    stmts
        .iter()
        .enumerate()
        .map(|(i, s)| (i, distance(s)))
        .filter(|(_, d)| *d <= slack)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// When a transaction's lock went, seen held by a poll ending at `last`
/// and gone from the one ending at `missed`, its COMMIT's clock read right
/// after it at `commit`. Between close polls (1 ms while the transaction
/// holds a lock the app queues behind, as a rewrite's is): halfway. Between
/// polls far apart (every 10 ms otherwise), halfway could be 5 ms off
/// either way, and the truth is most likely late in the gap: COMMIT lets
/// the locks go after its WAL flush, at its end — so the gap's end, or the
/// COMMIT's clock if that came first.
fn seen_released(last: f64, missed: f64, commit: f64) -> f64 {
    if missed - last <= CLOSE_POLLS_MS {
        (last + missed) / 2.0
    } else {
        missed.min(commit)
    }
}

/// Polls this close place a release halfway between them.
const CLOSE_POLLS_MS: f64 = 3.0;

/// DROP INDEX CONCURRENTLY and REINDEX CONCURRENTLY lock the index they
/// drop ACCESS EXCLUSIVE at their very end, once it is dead (`indislive`
/// false, after waiting out every transaction that could use it): no query
/// plans with it or opens it for its writes any more, so nobody waits for
/// that lock.
fn drops_dead_index(sql: &str, relation: &str) -> bool {
    relation.ends_with(" (dropped)")
        && matches!(
            crate::migrations::refused_in_transaction(sql),
            Some("DROP INDEX CONCURRENTLY" | "REINDEX CONCURRENTLY")
        )
}

/// `(relation, table)`: the relation's name, and an index's table.
#[allow(clippy::too_many_arguments)]
fn row(
    phase: &str,
    step: &str,
    (relation, table): (&str, &str),
    t: &Taken,
    requested: f64,
    granted: Option<f64>,
    released: Option<f64>,
    source: &str,
) -> LockRow {
    // A grant placed by polls (a wait seen ending late on a loaded machine)
    // is no later than the release the statement's end bounds.
    let granted = granted.map(|g| released.map_or(g, |r| g.min(r)));
    let wait = granted.map(|g| (g - requested).max(0.0)).unwrap_or(0.0);
    let held = match (granted, released) {
        (Some(g), Some(r)) => (r - g).max(0.0),
        _ => 0.0,
    };
    // A relation the step creates is seen by no other session before the
    // step commits it: nobody waits for its locks.
    let blocks = if marked_new(relation) {
        crate::record::Blocks::None
    } else {
        blocks_of(t.locktype, t.mode)
    };
    LockRow {
        phase: phase.to_string(),
        step: step.to_string(),
        relation: relation.to_string(),
        locktype: t.locktype.to_string(),
        mode: t.mode.to_string(),
        requested_ms: round3(requested),
        granted_ms: granted.map(round3),
        released_ms: released.map(round3),
        wait_ms: round3(wait),
        held_ms: granted.map(|_| round3(held)),
        blocks,
        source: source.to_string(),
        table: table.to_string(),
        blocked_by: String::new(),
    }
}

#[cfg(test)]
mod tests;
