//! Findings from measured evidence, not static rules: each says what was
//! seen (with the numbers), where (phase / step / relation), and the safe
//! pattern to use instead.

use serde::{Deserialize, Serialize};

use super::{patterns, step_keys, Analysis, StepFacts};
use crate::locks::LockMode;
use crate::record::{Blocks, RunRecord, WaitCause, WaitRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A lock that blocks app reads or writes held longer than the threshold.
    BlockingLock,
    /// A table rewrite while holding ACCESS EXCLUSIVE.
    RewriteUnderAccessExclusive,
    /// A full-table scan while holding ACCESS EXCLUSIVE.
    ScanUnderAccessExclusive,
    /// App queries queued behind the migration's pending lock request.
    LockQueue,
    /// A step that takes a blocking lock with no lock_timeout.
    NoLockTimeout,
    /// App errors of one class for one app version.
    AppErrors,
    /// An index left INVALID (a failed CREATE INDEX CONCURRENTLY).
    InvalidIndex,
    /// A step that wrote a lot of WAL.
    WalVolume,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SafePattern {
    pub advice: String,
    pub sql: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub title: String,
    /// What was measured, with numbers.
    pub seen: String,
    pub phase: Option<String>,
    pub step: Option<String>,
    pub relation: Option<String>,
    pub safe_pattern: SafePattern,
}

impl Finding {
    /// "phase / step on relation", or what of it is known.
    pub fn location(&self) -> String {
        let mut s = match (&self.phase, &self.step) {
            (Some(p), Some(st)) => format!("{p} / {st}"),
            (Some(p), None) => p.clone(),
            (None, Some(st)) => st.clone(),
            (None, None) => "run".into(),
        };
        if let Some(r) = &self.relation {
            s.push_str(&format!(" on {r}"));
        }
        s
    }
}

/// When measured evidence becomes a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// A blocking lock held longer than this (ms) is a finding.
    pub blocking_lock_ms: f64,
    /// A step that wrote at least this much WAL (bytes) is a finding.
    pub wal_bytes: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            blocking_lock_ms: 100.0,
            wal_bytes: 16 * 1024 * 1024,
        }
    }
}

/// 25165824 → "24.0 MiB".
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn statement_for(st: &StepFacts, rec: &RunRecord, at_ms: f64) -> String {
    rec.statements
        .iter()
        .filter(|s| s.phase == st.phase && s.step == st.step)
        .find(|s| s.start_ms <= at_ms && at_ms <= s.end_ms)
        .map(|s| s.sql.clone())
        .or_else(|| st.sql.first().cloned())
        .unwrap_or_default()
}

fn waits_of<'a>(rec: &'a RunRecord, wait_steps: &[Option<usize>], idx: usize) -> Vec<&'a WaitRow> {
    rec.waits
        .iter()
        .zip(wait_steps)
        .filter(|(_, s)| **s == Some(idx))
        .map(|(w, _)| w)
        .collect()
}

fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
    v
}

pub(crate) fn find(
    a: &Analysis,
    rec: &RunRecord,
    wait_steps: &[Option<usize>],
    th: &Thresholds,
) -> Vec<Finding> {
    let keys = step_keys(rec);
    let mut out: Vec<Finding> = Vec::new();
    for (idx, st) in a.steps.iter().enumerate() {
        debug_assert_eq!(keys[idx], (st.phase.clone(), st.step.clone()));
        let waits = waits_of(rec, wait_steps, idx);
        let locks: Vec<_> = rec
            .locks
            .iter()
            .filter(|l| l.phase == st.phase && l.step == st.step)
            .collect();
        let at = |phase: &str| (Some(phase.to_string()), Some(st.step.clone()));

        // 1. Blocking lock held too long: the longest hold per relation × mode.
        let mut seen_keys: Vec<(String, String)> = Vec::new();
        let mut blocking: Vec<_> = locks
            .iter()
            .filter(|l| l.blocks != Blocks::None && l.held_ms > th.blocking_lock_ms)
            .collect();
        blocking.sort_by(|x, y| y.held_ms.total_cmp(&x.held_ms));
        for l in blocking {
            let k = (l.relation.clone(), l.mode.clone());
            if seen_keys.contains(&k) {
                continue;
            }
            seen_keys.push(k);
            let on_rel: Vec<_> = waits.iter().filter(|w| w.relation == l.relation).collect();
            let worst = on_rel.iter().max_by(|x, y| x.wait_ms.total_cmp(&y.wait_ms));
            let mut seen = format!(
                "{} on {} held {:.1} ms, blocking app {} (threshold {:.0} ms)",
                l.mode, l.relation, l.held_ms, l.blocks, th.blocking_lock_ms
            );
            match worst {
                Some(w) => seen.push_str(&format!(
                    "; {} app queries waited on {}, worst {} ({}) {:.1} ms",
                    on_rel.len(),
                    l.relation,
                    w.query,
                    w.app,
                    w.wait_ms
                )),
                None => seen.push_str("; no app query happened to wait on it in this rehearsal"),
            }
            if st.latency.errors > 0 {
                seen.push_str(&format!(
                    "; {} app errors while the step ran",
                    st.latency.errors
                ));
            }
            let severity =
                if l.blocks == Blocks::ReadsWrites || l.held_ms >= 10.0 * th.blocking_lock_ms {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
            let (phase, step) = at(&st.phase);
            out.push(Finding {
                kind: FindingKind::BlockingLock,
                severity,
                title: format!(
                    "{} blocked {} on {} for {:.0} ms",
                    l.mode, l.blocks, l.relation, l.held_ms
                ),
                seen,
                phase,
                step,
                relation: Some(l.relation.clone()),
                safe_pattern: patterns::for_statement(
                    &statement_for(st, rec, l.granted_ms.unwrap_or(l.requested_ms)),
                    &l.relation,
                ),
            });
        }

        // 2. Rewrite / full scan while holding ACCESS EXCLUSIVE.
        let mut reported: Vec<FindingKind> = Vec::new();
        for s in rec
            .statements
            .iter()
            .filter(|s| s.phase == st.phase && s.step == st.step)
        {
            let ae = locks.iter().find(|l| {
                LockMode::parse(&l.mode) == Some(LockMode::AccessExclusive)
                    && l.locktype == "relation"
                    // Not a relation the step itself creates (normalized to
                    // block nothing): nobody else can see it.
                    && l.blocks != Blocks::None
                    && l.granted_ms.is_some_and(|g| g <= s.end_ms)
                    && l.released_ms.is_none_or(|r| r >= s.start_ms)
            });
            let Some(ae) = ae else { continue };
            let mut push = |kind: FindingKind, what: String, title: String| {
                if reported.contains(&kind) {
                    return;
                }
                reported.push(kind);
                let (phase, step) = at(&st.phase);
                out.push(Finding {
                    kind,
                    severity: if ae.held_ms > th.blocking_lock_ms { Severity::Critical } else { Severity::Warning },
                    title,
                    seen: format!(
                        "`{}` {what} while holding AccessExclusiveLock on {} for {:.1} ms (reads and writes blocked); the time grows with the table",
                        patterns_short(&s.sql), ae.relation, ae.held_ms
                    ),
                    phase,
                    step,
                    relation: Some(ae.relation.clone()),
                    safe_pattern: patterns::for_statement(&s.sql, &ae.relation),
                });
            };
            if s.rewrote {
                push(
                    FindingKind::RewriteUnderAccessExclusive,
                    format!(
                        "rewrote the table (new relfilenode) in {:.1} ms",
                        s.duration_ms
                    ),
                    format!("Table rewrite under ACCESS EXCLUSIVE on {}", ae.relation),
                );
            }
            if s.seq_scans > 0 && !s.rewrote {
                push(
                    FindingKind::ScanUnderAccessExclusive,
                    format!(
                        "made {} sequential scan(s) in {:.1} ms",
                        s.seq_scans, s.duration_ms
                    ),
                    format!("Full scan under ACCESS EXCLUSIVE on {}", ae.relation),
                );
            }
        }

        // 3. A lock queue behind the step's pending request.
        let queued: Vec<_> = waits
            .iter()
            .filter(|w| w.cause == WaitCause::QueuedBehindMigration)
            .collect();
        for rel in distinct(queued.iter().map(|w| w.relation.clone())) {
            let q: Vec<_> = queued.iter().filter(|w| w.relation == rel).collect();
            // The part of each wait spent behind the *pending* request:
            // from the wait's start until the step's lock was granted. The
            // rest is waiting on the held lock (the blocking-lock finding).
            let pending_part = |w: &WaitRow| {
                let granted = locks
                    .iter()
                    .filter(|l| l.relation == rel && l.requested_ms <= w.start_ms)
                    .filter_map(|l| l.granted_ms)
                    .filter(|g| *g >= w.start_ms)
                    .fold(f64::INFINITY, f64::min);
                let end = if granted.is_finite() {
                    granted.min(w.end_ms)
                } else {
                    w.end_ms
                };
                (end - w.start_ms).clamp(0.0, w.wait_ms)
            };
            let worst = q.iter().map(|w| pending_part(w)).fold(0.0, f64::max);
            let worst_total = q.iter().map(|w| w.wait_ms).fold(0.0, f64::max);
            let pending = locks
                .iter()
                .filter(|l| l.relation == rel)
                .max_by(|x, y| x.wait_ms.total_cmp(&y.wait_ms));
            let mut seen = format!(
                "{} app queries ({}) queued for up to {:.1} ms behind the step's pending lock request on {rel}",
                q.len(),
                distinct(q.iter().map(|w| format!("{} {}", w.query, w.app))).join(", "),
                worst
            );
            if worst_total > worst + 0.05 {
                seen.push_str(&format!(
                    " ({:.1} ms in all, the rest behind the granted lock)",
                    worst_total
                ));
            }
            if let Some(p) = pending {
                seen.push_str(&format!(
                    "; the step asked for {} and waited {:.1} ms for it while the queue grew",
                    p.mode, p.wait_ms
                ));
            }
            let (phase, step) = at(&st.phase);
            out.push(Finding {
                kind: FindingKind::LockQueue,
                severity: if worst > th.blocking_lock_ms {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                title: format!("Lock queue on {rel} behind a pending migration lock"),
                seen,
                phase,
                step,
                relation: Some(rel.clone()),
                safe_pattern: patterns::lock_timeout(
                    st.sql.first().map(String::as_str).unwrap_or(""),
                ),
            });
        }

        // 4. A blocking step with no lock_timeout.
        if let Some(bl) = &st.longest_blocking_lock {
            let info = rec.info.as_ref().and_then(|i| {
                i.steps
                    .iter()
                    .find(|s| s.phase == st.phase && s.step == st.step)
            });
            let had_timeout = match info {
                Some(i) => i.lock_timeout_ms.is_some(),
                // Not recorded: a lock_timeout outcome proves one was set.
                None => rec.statements.iter().any(|s| {
                    s.phase == st.phase
                        && s.step == st.step
                        && (s.outcome == "lock_timeout" || s.sqlstate == "55P03")
                }),
            };
            if !had_timeout {
                let how = if info.is_some() {
                    "with no lock_timeout"
                } else {
                    "with no lock_timeout recorded"
                };
                let severity = if bl.wait_ms > th.blocking_lock_ms || !queued.is_empty() {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                let (phase, step) = at(&st.phase);
                out.push(Finding {
                    kind: FindingKind::NoLockTimeout,
                    severity,
                    title: format!("Blocking step without lock_timeout: {}", st.step),
                    seen: format!(
                        "the step took {} on {} (blocks {}) {how}; it waited {:.1} ms for the lock here, but behind a long transaction it would wait without bound while every app query on {} queues behind it",
                        bl.mode, bl.relation, bl.blocks, st.lock_wait_ms, bl.relation
                    ),
                    phase,
                    step,
                    relation: Some(bl.relation.clone()),
                    safe_pattern: patterns::lock_timeout(st.sql.first().map(String::as_str).unwrap_or("")),
                });
            }
        }

        // 7. WAL volume.
        if st.wal_bytes >= th.wal_bytes {
            let secs = (st.duration_ms / 1000.0).max(0.001);
            let rel = st.strongest_lock.as_ref().map(|l| l.relation.clone());
            let sql = st.sql.first().cloned().unwrap_or_default();
            let safe = if sql.trim_start().to_ascii_uppercase().starts_with("UPDATE") || st.rewrote
            {
                patterns::for_statement(&sql, rel.as_deref().unwrap_or("t"))
            } else {
                SafePattern {
                    advice: "Expect this WAL in production multiplied by the size ratio: check replica lag and archive throughput, run it off-peak, and split batch work into short transactions with pauses (a backfill step).".into(),
                    sql: "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '<lsn before>')); -- measure on a staging copy".into(),
                }
            };
            let lag = rec
                .server
                .iter()
                .filter(|s| s.t_ms >= st.start_ms && s.t_ms <= st.end_ms + 1000.0)
                .filter_map(|s| s.replica_lag_bytes)
                .max();
            let (phase, step) = at(&st.phase);
            out.push(Finding {
                kind: FindingKind::WalVolume,
                severity: if st.wal_bytes >= 1024 * 1024 * 1024 {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                title: format!("{} of WAL written by {}", fmt_bytes(st.wal_bytes), st.step),
                seen: format!(
                    "{} of WAL in {:.1} s ({}/s, cluster-wide while the step ran){}",
                    fmt_bytes(st.wal_bytes),
                    secs,
                    fmt_bytes((st.wal_bytes as f64 / secs) as u64),
                    lag.map(|l| format!("; replica lag reached {}", fmt_bytes(l)))
                        .unwrap_or_default()
                ),
                phase,
                step,
                relation: rel,
                safe_pattern: safe,
            });
        }
    }

    // 5. App errors per app version and class.
    for app in &a.apps {
        let mut classes: Vec<&str> = Vec::new();
        for c in &app.errors_by_sqlstate {
            if !classes.contains(&c.class.as_str()) {
                classes.push(&c.class);
            }
        }
        for class in classes {
            let codes: Vec<_> = app
                .errors_by_sqlstate
                .iter()
                .filter(|c| c.class == class)
                .collect();
            let n: u64 = codes.iter().map(|c| c.count).sum();
            let errs: Vec<_> = rec
                .errors
                .iter()
                .filter(|e| e.app == app.app && codes.iter().any(|c| c.sqlstate == e.sqlstate))
                .collect();
            let first = errs.iter().map(|e| e.t_ms).fold(f64::INFINITY, f64::min);
            let last = errs
                .iter()
                .map(|e| e.t_ms)
                .fold(f64::NEG_INFINITY, f64::max);
            // The step that was running, or had last started, when the first
            // error came: a lock timeout falls inside the step, a schema
            // error right after the step that changed the schema.
            let step = super::blame_step(a, first, class == "schema incompatibility");
            let phase = rec
                .info
                .iter()
                .flat_map(|i| i.phases.iter())
                .find(|p| first >= p.start_ms && first < p.end_ms)
                .map(|p| p.name.clone());
            let code_list = codes
                .iter()
                .map(|c| {
                    format!(
                        "{}× {} in {} (\"{}\")",
                        c.count,
                        c.sqlstate,
                        c.queries.join(", "),
                        c.example
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let cached_plan = codes.iter().any(|c| c.sqlstate == "0A000");
            let safe = if cached_plan {
                SafePattern {
                    advice: "A schema change invalidated the app's prepared statements (\"cached plan must not change result type\"): a prepared SELECT * or RETURNING * changes its result type when a column is added or dropped. Name the columns the app reads instead of *, and make the app (or its pool) re-prepare and retry on 0A000; ship that app version before the migration.".into(),
                    sql: "-- instead of\nSELECT * FROM t WHERE id = $1;\n-- prepare\nSELECT id, customer_id, status, total_cents FROM t WHERE id = $1;".into(),
                }
            } else if class == "schema incompatibility" {
                SafePattern {
                    advice: "Expand/contract: every schema change must stay readable by every app version that is still live. Add new columns and tables first (expand), ship the app version that uses them, and drop or rename only once no live version reads the old names (contract). A rename is add + keep in sync + drop.".into(),
                    sql: "-- expand (old and new app both work):\nALTER TABLE t ADD COLUMN new_name type;\n-- backfill, keep in sync with a trigger, deploy the new app\n-- contract (after the old app is gone):\nALTER TABLE t DROP COLUMN old_name;".into(),
                }
            } else if let Some(s) = step {
                let rel = s
                    .longest_blocking_lock
                    .as_ref()
                    .map(|l| l.relation.clone())
                    .unwrap_or_else(|| "t".into());
                patterns::for_statement(s.sql.first().map(String::as_str).unwrap_or(""), &rel)
            } else {
                patterns::lock_timeout("-- the migration statement")
            };
            out.push(Finding {
                kind: FindingKind::AppErrors,
                severity: if class == "schema incompatibility" {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                title: format!("App {}: {n} error(s), {class}", app.app),
                seen: format!(
                    "app {} got {n} {class} error(s) between {:.1} and {:.1} ms: {code_list}{}",
                    app.app,
                    first,
                    last,
                    step.map(|s| if first <= s.end_ms {
                        format!("; the first while {} ran", s.label())
                    } else {
                        format!(
                            "; the first {:.1} ms after {} finished",
                            first - s.end_ms,
                            s.label()
                        )
                    })
                    .unwrap_or_default()
                ),
                phase: step.map(|s| s.phase.clone()).or(phase),
                step: step.map(|s| s.step.clone()),
                relation: step
                    .and_then(|s| s.longest_blocking_lock.as_ref().map(|l| l.relation.clone())),
                safe_pattern: safe,
            });
        }
    }

    // 6. Invalid indexes left behind.
    for name in rec.info.iter().flat_map(|i| i.invalid_indexes.iter()) {
        let lname = name.to_ascii_lowercase();
        let st = a.steps.iter().find(|s| {
            s.sql
                .iter()
                .any(|q| q.to_ascii_lowercase().contains(&lname))
        });
        let stmt = rec
            .statements
            .iter()
            .find(|s| s.sql.to_ascii_lowercase().contains(&lname));
        let create = stmt.map(|s| s.sql.trim().trim_end_matches(';').to_string());
        out.push(Finding {
            kind: FindingKind::InvalidIndex,
            severity: Severity::Critical,
            title: format!("Invalid index {name} left behind"),
            seen: format!(
                "index {name} is INVALID after the run{}: it is updated on every write but never used by queries, and a retry of the same CREATE INDEX fails because the name exists",
                stmt.map(|s| format!(" (`{}` ended {}{})", patterns_short(&s.sql), s.outcome, if s.sqlstate.is_empty() { String::new() } else { format!(" {}", s.sqlstate) }))
                    .unwrap_or_default()
            ),
            phase: st.map(|s| s.phase.clone()),
            step: st.map(|s| s.step.clone()),
            relation: Some(name.clone()),
            safe_pattern: SafePattern {
                advice: "Drop the invalid index CONCURRENTLY before retrying the build, and make the step idempotent (check pg_index.indisvalid).".into(),
                sql: format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {name};\n{};",
                    create.unwrap_or_else(|| format!("CREATE INDEX CONCURRENTLY {name} ON t (col)"))
                ),
            },
        });
    }

    // Most severe first; within a severity, in the order they happened.
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn patterns_short(sql: &str) -> String {
    let s: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 80 {
        s.chars().take(77).collect::<String>() + "..."
    } else {
        s
    }
}
