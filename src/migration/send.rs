//! Sending one statement with its probe pipelined behind it (and, behind
//! the last statement of a transaction, its COMMIT), timing it, and the
//! figures of its row in statements.csv — or, for each figure that cannot be
//! had, why (an unknown is never written as 0 or false).

use std::sync::atomic::Ordering;

use super::probe::{self, Probe, SAVEPOINT, UNDO_SAVEPOINT};
use super::{Executor, Failure, Outgoing};
use crate::record::{StatementRow, Unknown};
use crate::scenario::{PhasePlan, StepPlan};

/// What came back for one statement.
pub(super) struct Sent {
    pub(super) row: StatementRow,
    pub(super) outcome: Result<(), Failure>,
    /// The session after the statement, or why that is unknown.
    pub(super) probe: Result<Probe, String>,
    /// COMMIT's result and when the transaction ended (the server's clock
    /// right after it, else when it returned), when it was sent behind.
    pub(super) commit: Option<(Result<(), Failure>, f64)>,
    /// When the server began the statement (on the run clock).
    pub(super) server_start: Option<f64>,
}

impl Executor {
    /// Send `sql` (the session settings, BEGIN) with a probe behind it:
    /// the state before a step's first statement.
    pub(super) async fn setup(
        &mut self,
        sql: &str,
        in_txn: bool,
    ) -> Result<Result<Probe, String>, Failure> {
        tracing::debug!("migration session: sending {sql}");
        let client = &self.client;
        let (r, _, probe, _) = tokio::join!(
            client.batch_execute(sql),
            savepoint(client, in_txn, SAVEPOINT),
            self.run_probe(),
            savepoint(client, in_txn, UNDO_SAVEPOINT),
        );
        r.map_err(|e| Failure::from_pg(&e))?;
        Ok(probe)
    }

    /// The server's clock, ms since the Unix epoch (sent now, awaited later).
    async fn server_now(&self) -> Option<f64> {
        let stmt = self.server_now.as_ref()?;
        match self.client.query_one(stmt, &[]).await {
            Ok(r) => Some(r.get(0)),
            Err(e) => {
                tracing::debug!(
                    "migration session: the server's clock could not be read: {}",
                    crate::pg::error_text(&e)
                );
                None
            }
        }
    }

    /// The probe on the migration session (sent now, awaited later).
    async fn run_probe(&self) -> Result<Probe, String> {
        let stmt = self.probe.as_ref().map_err(Clone::clone)?;
        self.client
            .query_one(stmt, &[])
            .await
            .map(|r| probe::parse(&r))
            .map_err(|e| format!("the probe failed: {}", crate::pg::error_text(&e)))
    }

    /// Send one statement, the probe behind it (inside a savepoint in a
    /// transaction) and, when `commit`, COMMIT behind that: one round trip.
    /// Never panics on SQL errors: they come back as the outcome.
    pub(super) async fn send(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        out: Outgoing<'_>,
        attempt: u32,
        in_txn: bool,
        commit: bool,
    ) -> Sent {
        let sql = out.sql;
        let status = self.ctx.status.clone();
        status.autocommit.store(!in_txn, Ordering::Relaxed);
        status.in_statement.store(true, Ordering::Relaxed);
        status.statement_seq.fetch_add(1, Ordering::Relaxed);
        // The observer polls the session's locks while the statement runs
        // (outside a transaction all of them, inside one its waits): start
        // at once.
        status.statement_sent.notify_one();
        let cancel = self.client.cancel_token();
        tracing::debug!(
            "{} / {} (attempt {attempt}): sending {sql}",
            phase.name,
            step.name
        );
        let clock = self.ctx.clock;
        let client = &self.client;
        let start = clock.now_ms();
        // Inside a transaction the server's clock is read in the statement's
        // own message, right before it: nothing is flushed to this process in
        // between, so the server cannot be preempted by our wake-up there
        // (a separate message was: up to tens of ms on a loaded machine).
        // Outside one (CONCURRENTLY refuses a multi-statement message) it is
        // a message of its own, pipelined ahead.
        // The probe's savepoint goes in the same message, and the undo of
        // the last probe in COMMIT's: every message boundary is a flush that
        // wakes this process, and a chance for the backend — holding the
        // locks — to be preempted by it (see README, Precision).
        let text = if in_txn {
            format!("{}; {sql}; {SAVEPOINT}", probe::CLOCK_SQL)
        } else {
            sql.to_string()
        };
        let statement = async {
            let r = client.simple_query(&text).await;
            let end = clock.now_ms();
            status.in_statement.store(false, Ordering::Relaxed);
            (r, end)
        };
        let server_start = async {
            if in_txn {
                None
            } else {
                self.server_now().await
            }
        };
        // COMMIT and the server's clock right after it, in one message (see
        // above): the release, free of the delays of either side.
        let end_txn = async {
            if commit {
                let r = client
                    .simple_query(&format!("{UNDO_SAVEPOINT}; COMMIT; {}", probe::CLOCK_SQL))
                    .await;
                let returned = clock.now_ms();
                Some(match r {
                    Ok(msgs) => (Ok(()), first_clock(&msgs), returned),
                    Err(e) => (Err(Failure::from_pg(&e)), None, returned),
                })
            } else {
                None
            }
        };
        // Polled in this order, each sends its message at once: the server
        // runs them back to back.
        let pipelined = async {
            tokio::join!(
                server_start,
                statement,
                self.run_probe(),
                savepoint(client, in_txn && !commit, UNDO_SAVEPOINT),
                end_txn,
            )
        };
        let r = tokio::select! {
            r = pipelined => Some(r),
            _ = self.ctx.abort.cancelled() => None,
        };
        status.in_statement.store(false, Ordering::Relaxed);
        let (outcome, end, probe, commit, server_start) = match r {
            None => {
                self.ctx.conn.cancel(&cancel).await;
                let end = clock.now_ms();
                let why = "the rehearsal was interrupted during the statement".to_string();
                (Err(Failure::Aborted), end, Err(why), None, None)
            }
            Some((server_start, (r, end), probe, _, commit)) => {
                let server_start = match &r {
                    Ok(msgs) if in_txn => first_clock(msgs),
                    _ => server_start,
                };
                let server_start = server_start.map(|ms| self.ctx.server_clock.to_run_ms(ms));
                let outcome = r.map(|_| ()).map_err(|e| Failure::from_pg(&e));
                // The server's clock after COMMIT, else when it answered.
                let commit = commit.map(|(c, ended, returned): (_, Option<f64>, f64)| {
                    let ended = ended.map(|ms| self.ctx.server_clock.to_run_ms(ms));
                    (c, ended.unwrap_or(returned))
                });
                (outcome, end, probe, commit, server_start)
            }
        };
        let (label, sqlstate) = match &outcome {
            Ok(()) => ("ok", ""),
            Err(f) => f.statement_outcome(),
        };
        tracing::debug!(
            "{} / {}: {label}{} after {:.1} ms",
            phase.name,
            step.name,
            if sqlstate.is_empty() {
                String::new()
            } else {
                format!(" ({sqlstate})")
            },
            end - start
        );
        // In an aborted transaction the probe could not run.
        let probe = match (&outcome, in_txn) {
            (Err(_), true) => {
                Err("the statement failed, and its transaction with it, before the probe".into())
            }
            _ => probe,
        };
        let row = StatementRow {
            phase: phase.name.clone(),
            step: step.name.clone(),
            attempt,
            sql: out.code.to_string(),
            start_ms: crate::pg::round3(start),
            end_ms: crate::pg::round3(end),
            duration_ms: crate::pg::round3(end - start),
            outcome: label.to_string(),
            sqlstate: sqlstate.to_string(),
            rewrote: None,
            seq_scans: None,
            wal_bytes: None,
            cluster_wal_bytes: None,
            unknown: String::new(),
            file: out
                .at
                .map(|(f, _)| f.display().to_string())
                .unwrap_or_default(),
            line: out.at.map(|(_, l)| l as u64).filter(|l| *l > 0),
        };
        Sent {
            row,
            outcome,
            probe,
            commit,
            server_start,
        }
    }

    /// Push `row` with the figures the probes before and after it give;
    /// returns its index.
    pub(super) fn record(
        &mut self,
        sent: &Sent,
        before: &Result<Probe, String>,
        in_txn: bool,
    ) -> usize {
        let mut row = sent.row.clone();
        let after = &sent.probe;
        let idx = self.run.statements.len();
        let end = after
            .as_ref()
            .ok()
            .map(|p| self.ctx.server_clock.to_run_ms(p.server_ms));
        self.run.server_spans.push(match (sent.server_start, end) {
            (Some(start_ms), Some(end_ms)) => Some(super::ServerSpan { start_ms, end_ms }),
            _ => None,
        });
        let mut unknown = Unknown::default();
        match (before, after) {
            (Ok(b), Ok(a)) => {
                row.rewrote = Some(probe::rewrote(&b.relfilenodes, &a.relfilenodes));
                row.cluster_wal_bytes = match (b.wal_lsn, a.wal_lsn) {
                    (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                    _ => None,
                };
                if row.cluster_wal_bytes.is_none() {
                    unknown.add("cluster_wal_bytes", "the WAL position could not be read");
                }
                if in_txn {
                    row.seq_scans = Some((a.seq_scans - b.seq_scans).max(0) as u64);
                } else {
                    unknown.add(
                        "seq_scans",
                        "counted only inside a transaction (pg_stat_get_xact_numscans)",
                    );
                }
                match (&b.pgss, &a.pgss) {
                    (Some(pb), Some(pa)) => self.pgss_changes.push((idx, pa.changes_since(pb))),
                    _ => unknown.add("wal_bytes", self.wal_unknown()),
                }
            }
            (Err(why), _) | (_, Err(why)) => {
                for f in ["rewrote", "seq_scans", "wal_bytes", "cluster_wal_bytes"] {
                    unknown.add(f, why.clone());
                }
            }
        }
        row.unknown = unknown.to_string();
        self.run.statements.push(row);
        idx
    }

    /// The statements from `first` on took locks no probe listed (`why`):
    /// said in their `unknown`, since locks.csv has no row for them.
    pub(super) fn locks_unknown(&mut self, first: usize, why: &str) {
        for row in &mut self.run.statements[first..] {
            let mut u = Unknown::parse(&row.unknown);
            u.add("locks", format!("not in locks.csv: {why}"));
            row.unknown = u.to_string();
        }
    }

    /// Why no statement's own WAL is known in this run.
    pub(super) fn wal_unknown(&self) -> String {
        match &self.ctx.wal.unavailable {
            Some(why) => why.clone(),
            None => "pg_stat_statements could not be read".into(),
        }
    }
}

/// `sql` (a savepoint command) inside a transaction, nothing outside; its
/// result does not matter (see probe.rs).
async fn savepoint(client: &tokio_postgres::Client, in_txn: bool, sql: &str) {
    if in_txn {
        let _ = client.batch_execute(sql).await;
    }
}

/// The server's clock (ms since the Unix epoch) of the first row of a
/// simple-query answer: the clock read sent in the same message.
fn first_clock(msgs: &[tokio_postgres::SimpleQueryMessage]) -> Option<f64> {
    msgs.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse().ok(),
        _ => None,
    })
}
