//! Connection-pool exhaustion: queries that conflict with nothing the
//! migration holds stalled anyway, because every connection of their app
//! was stuck on a query that did conflict. A `CREATE INDEX` takes SHARE,
//! which lets reads through — yet the reads of an app whose connections
//! all wait on writes get no connection, as in a real app's pool.
//!
//! - **Reads** inflight.csv (per window's end: the app's busy connections
//!   and its oldest request in flight), latency.csv (each query × app's
//!   max latency per window) and the app lock waits charged to the step.
//! - **Fires when**, while the step ran, every connection of an app was
//!   busy for longer than the blocking-lock threshold (100 ms), some of them
//!   on lock waits the step caused, and a query
//!   of that app with *no lock wait of its own* (whoever held the lock) was as slow as the
//!   exhaustion (its max latency at least the threshold and half the time
//!   the pool was full): it waited for a connection, not for a lock. Once
//!   per step and app; critical when that query waited 10× the threshold.
//! - **Advises** keeping a blocked query from pinning a connection: a
//!   `lock_timeout` (or `statement_timeout`) in the app's sessions so the
//!   stuck writes give up, separate pools for reads and writes, and the
//!   non-blocking form of the step itself.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::rule::{distinct, Evidence, Rule, StepEvidence};
use crate::record::{InflightRow, LatencyRow, WaitRow};

pub const KIND: FindingKind = FindingKind::new("pool_exhausted");

pub const RULE: Rule = Rule::step(KIND, check);

/// The longest run of consecutive windows in which every connection of
/// `app` was busy, ending within the step: (first row, last row).
fn longest_exhaustion<'a>(
    rows: &[&'a InflightRow],
    start_ms: f64,
    end_ms: f64,
) -> Option<(&'a InflightRow, &'a InflightRow)> {
    let mut best: Option<(&InflightRow, &InflightRow)> = None;
    let mut run: Option<(&InflightRow, &InflightRow)> = None;
    for r in rows {
        let at = r.window_start_ms + r.window_ms;
        let full = r.connections > 0 && r.busy >= r.connections;
        if full && at >= start_ms && at <= end_ms + r.window_ms {
            run = Some(match run {
                Some((first, _)) => (first, r),
                None => (r, r),
            });
            let len = |(a, b): (&InflightRow, &InflightRow)| b.window_start_ms - a.window_start_ms;
            if best.is_none_or(|b| len(run.expect("set")) > len(b)) {
                best = run;
            }
        } else {
            run = None;
        }
    }
    best
}

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    let th = ev.th.blocking_lock_ms;
    let (start, end) = (st.facts.latency.start_ms, st.facts.latency.end_ms);
    let apps = distinct(ev.rec.inflight.iter().map(|r| r.app.clone()));
    let mut out = Vec::new();
    for app in apps {
        let rows: Vec<&InflightRow> = ev.rec.inflight.iter().filter(|r| r.app == app).collect();
        let Some((first, last)) = longest_exhaustion(&rows, start, end) else {
            continue;
        };
        let (from, to) = (
            first.window_start_ms + first.window_ms,
            last.window_start_ms + last.window_ms,
        );
        // Each window's end was a full pool: it was full from the first
        // end for as long as the run lasted, plus up to a window.
        let full_ms = to - from + first.window_ms;
        if full_ms <= th {
            continue;
        }
        let oldest = rows
            .iter()
            .filter(|r| r.window_start_ms >= first.window_start_ms && r.window_start_ms <= last.window_start_ms)
            .filter_map(|r| r.oldest_ms)
            .fold(0.0, f64::max);
        // Requests stuck in the full pool complete when it drains: look a
        // little past its end.
        let until = to + 2.0 * last.window_ms;
        // The pool was the step's doing only if its connections were stuck
        // on waits the step caused (another session's lock, a script's,
        // exhausts a pool too, and is no finding of the migration's).
        let waited: Vec<&WaitRow> = st.waits.iter().copied().filter(|w| w.app == app).collect();
        if waited.is_empty() {
            continue;
        }
        // A query that waited for any lock, whoever held it, waited for
        // that, not for a connection.
        let any_wait: Vec<&WaitRow> = ev.rec.waits.iter().filter(|w| w.app == app).collect();
        let victims = slow_without_waits(&ev.rec.latency, &app, &any_wait, (from - first.window_ms, until))
            .into_iter()
            .filter(|(_, max_ms)| *max_ms >= th && *max_ms >= full_ms / 2.0)
            .filter(|(q, _)| !would_have_waited(st, ev, q))
            .collect::<Vec<_>>();
        let Some(&(ref worst, worst_ms)) = victims.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let relations = distinct(waited.iter().map(|w| w.relation.clone()));
        let blockers = distinct(waited.iter().map(|w| w.query.clone()));
        let mut seen = format!(
            "all {} connections of {app} were busy for {:.0} ms ({:.2}–{:.2} s), its oldest request in flight reaching {:.0} ms; {} ({app}) took up to {:.1} ms with no lock wait of its own: it waited for a connection",
            first.connections,
            full_ms,
            (from - first.window_ms) / 1000.0,
            to / 1000.0,
            oldest,
            worst,
            worst_ms
        );
        if victims.len() > 1 {
            let others: Vec<String> = victims
                .iter()
                .filter(|(q, _)| q != worst)
                .map(|(q, ms)| format!("{q} {ms:.1} ms"))
                .collect();
            seen.push_str(&format!(" (so did {})", others.join(", ")));
        }
        if !waited.is_empty() {
            seen.push_str(&format!(
                "; the connections were held by {} waiting for locks on {} ({} waits, up to {:.1} ms)",
                blockers.join(", "),
                relations.join(", "),
                waited.len(),
                waited.iter().map(|w| w.wait_ms).fold(0.0, f64::max)
            ));
        }
        let severity = if worst_ms >= 10.0 * th {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let title = format!(
            "Connection pool of {app} exhausted: {worst} stalled {:.0} ms without a lock wait",
            worst_ms
        );
        out.push(
            st.finding(KIND, severity, title, seen)
                .on(relations.first().cloned())
                .instead(advice(&app)),
        );
    }
    out
}

/// Would `query` have waited for the step's lock anyway, had it got a
/// connection: it names a relation the step held in a mode that conflicts
/// with the lock its statement takes (a read's ACCESS SHARE, a write's
/// ROW EXCLUSIVE). Under an ACCESS EXCLUSIVE lock every query of the table
/// stalls for the lock: a query that found no free connection was no
/// victim of the pool (QA: pool exhaustion named in a plain lock stall).
/// Unknown SQL (no run.json `queries`, a statement of another kind) is no
/// proof: the query stays a victim.
fn would_have_waited(st: &StepEvidence<'_>, ev: &Evidence<'_>, query: &str) -> bool {
    let Some(sql) = ev
        .rec
        .info
        .as_ref()
        .and_then(|i| i.queries.iter().find(|q| q.name == query))
        .map(|q| q.sql.as_str())
    else {
        return false;
    };
    let Some(takes) = statement_lock(sql) else {
        return false;
    };
    st.locks.iter().any(|l| {
        l.blocks != crate::record::Blocks::None
            && crate::locks::LockMode::parse(&l.mode).is_some_and(|held| held.conflicts_with(takes))
            && crate::sql::names_relation(sql, crate::locks::unmarked(&l.relation))
    })
}

/// The table lock a plain app statement takes on what it names.
fn statement_lock(sql: &str) -> Option<crate::locks::LockMode> {
    use crate::locks::LockMode;
    let lower = sql.trim_start().to_ascii_lowercase();
    let first = lower.split_whitespace().next()?;
    match first {
        "insert" | "update" | "delete" | "merge" => Some(LockMode::RowExclusive),
        "select" | "with" | "table" | "values" => {
            let locking = [" for update", " for no key update", " for share", " for key share"];
            if locking.iter().any(|f| lower.contains(f)) {
                Some(LockMode::RowShare)
            } else if first == "with"
                && [" insert ", " update ", " delete "].iter().any(|w| lower.contains(w))
            {
                Some(LockMode::RowExclusive)
            } else {
                Some(LockMode::AccessShare)
            }
        }
        _ => None,
    }
}

/// Queries of `app` that completed in `(from, until]`-overlapping windows
/// and had no lock wait there, with their max latency (ms), slowest first.
fn slow_without_waits(
    latency: &[LatencyRow],
    app: &str,
    waited: &[&WaitRow],
    (from, until): (f64, f64),
) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for r in latency.iter().filter(|r| {
        r.app == app
            && r.count > 0
            && r.window_start_ms + r.window_ms > from
            && r.window_start_ms < until
    }) {
        if waited.iter().any(|w| w.query == r.query) {
            continue;
        }
        let ms = r.max_us as f64 / 1000.0;
        match out.iter_mut().find(|(q, _)| *q == r.query) {
            Some((_, m)) => *m = m.max(ms),
            None => out.push((r.query.clone(), ms)),
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

fn advice(app: &str) -> SafePattern {
    SafePattern {
        advice: format!(
            "The slow queries took no lock: they waited for one of {app}'s connections, all held by queries stuck behind the migration's lock. Keep a blocked query from pinning a connection: give the app's sessions a lock_timeout (or statement_timeout) so a write stuck behind a migration lock fails fast and frees its connection, keep reads and writes in separate pools, and run the step in its non-blocking form (see the step's other findings: the lock or the rows the app waited for)."
        ),
        sql: "-- the app's role: a query stuck behind a lock gives up after 2 s\nALTER ROLE app_user SET lock_timeout = '2s';\n-- or per transaction, in the app's write paths:\nSET LOCAL lock_timeout = '2s';".into(),
    }
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::testkit::{inflight_row, latency_row, record, step_holding, step_span, wait};
    use crate::analyze::{analyze, Severity};
    use crate::record::{RunRecord, WaitCause};

    /// CREATE INDEX holds SHARE on orders 1.0–1.6 s: v1's 8 connections all
    /// wait on writes from 1.1 s, and read_order, which SHARE lets
    /// through, takes 600 ms without a lock wait.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        let sql = "CREATE INDEX i ON orders (customer_id)";
        step_holding(&mut r, "idx", sql, (1000.0, 1600.0), "ShareLock", 1000.5);
        step_span(&mut r, "idx", 1000.0, 1600.0);
        for k in 0..30 {
            let ws = k as f64 * 100.0;
            let full = (1000.0..1600.0).contains(&ws);
            let oldest = if full { ws + 100.0 - 1000.0 } else { 1.0 };
            r.inflight.push(inflight_row("v1", ws, if full { 8 } else { 3 }, oldest));
        }
        for start in [1010.0, 1020.0, 1030.0] {
            r.waits.push(wait(start, 1600.0, WaitCause::Migration));
        }
        r.latency.push(latency_row("read_order", "v1", 1600.0, 600_000));
        r.latency.push(latency_row("update_order", "v1", 1600.0, 590_000));
        r
    }

    /// The same step, but the pool never fills: the writes wait, the reads
    /// go through.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = fires();
        for row in &mut r.inflight {
            row.busy = row.busy.min(5);
        }
        r
    }

    #[test]
    fn names_the_pool_the_victim_and_the_blockers() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("pool");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.relation.as_deref(), Some("orders"));
        for part in [
            "all 8 connections of v1 were busy for 600 ms",
            "read_order (v1) took up to 600.0 ms with no lock wait of its own",
            "held by update_order waiting for locks on orders (3 waits",
        ] {
            assert!(f.seen.contains(part), "{}", f.seen);
        }
        assert!(f.safe_pattern.sql.contains("lock_timeout"));
    }

    /// The pool full of waits another session caused (a script's LOCK):
    /// not the step's doing, no finding of it.
    #[test]
    fn a_pool_another_session_exhausted_is_not_the_steps() {
        let mut r = fires();
        for w in &mut r.waits {
            (w.cause, w.blocked_by) = (WaitCause::App, "42".into());
        }
        assert!(analyze(&r).findings.iter().all(|f| f.kind != KIND));
    }

    #[test]
    fn a_fast_read_is_no_victim() {
        let mut r = fires();
        r.latency.retain(|l| l.query != "read_order");
        r.latency.push(latency_row("read_order", "v1", 1600.0, 2_000));
        assert!(analyze(&r).findings.iter().all(|f| f.kind != KIND));
    }

    /// Under ACCESS EXCLUSIVE every query of orders stalls for the lock:
    /// a read that found no free connection would have waited anyway, and
    /// the stall is the lock's, not the pool's (QA). Under SHARE the same
    /// read is the pool's victim; a query of another table is one either
    /// way.
    #[test]
    fn a_query_the_lock_would_have_stopped_is_no_victim_of_the_pool() {
        use crate::record::QueryInfo;
        let with_queries = |mode: &str, read_sql: &str| {
            let mut r = fires();
            r.locks[0].mode = mode.into();
            r.locks[0].blocks = crate::locks::blocks_of("relation", mode);
            r.info.as_mut().unwrap().queries = vec![
                QueryInfo {
                    name: "read_order".into(),
                    sql: read_sql.into(),
                },
                QueryInfo {
                    name: "update_order".into(),
                    sql: "UPDATE orders SET status = $2 WHERE id = $1".into(),
                },
            ];
            analyze(&r).findings.iter().any(|f| f.kind == KIND)
        };
        let read = "SELECT status FROM orders WHERE id = $1";
        assert!(!with_queries("AccessExclusiveLock", read));
        assert!(with_queries("ShareLock", read));
        assert!(with_queries("AccessExclusiveLock", "SELECT name FROM customers WHERE id = $1"));
        // A locking read takes ROW SHARE: SHARE lets it through, EXCLUSIVE
        // does not.
        let locking = "SELECT status FROM orders WHERE id = $1 FOR UPDATE";
        assert!(with_queries("ShareLock", locking));
        assert!(!with_queries("ExclusiveLock", locking));
    }
}
