//! Sending one statement with its probe pipelined behind it (and, behind
//! the last statement of a transaction, its COMMIT), timing it, and the
//! figures of its row in statements.csv — or, for each figure that cannot be
//! had, why (an unknown is never written as 0 or false).

use std::sync::atomic::Ordering;

use super::failure::Failure;
use super::probe::{self, Probe, SAVEPOINT, UNDO_SAVEPOINT};
use super::{Executor, Outgoing};
use crate::record::{StatementRow, Unknown};
use crate::scenario::{PhasePlan, StepPlan};

/// How long a statement outside a transaction waits for the held-lock
/// poller to follow it (see `poller_armed`).
const ARM_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

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

/// What `send` made of the answers to its messages.
struct Settled {
    outcome: Result<(), Failure>,
    /// When the statement's answer came back (run clock).
    end: f64,
    probe: Result<Probe, String>,
    commit: Option<(Result<(), Failure>, f64)>,
    server_start: Option<f64>,
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
    ///
    /// Why this shape: each message is a future of its own (`clock_message`,
    /// `statement_message`, `run_probe`, `savepoint`, `commit_message`), and
    /// one `join!` polls them in the order they go on the wire — each writes
    /// its message when first polled, so all are sent back to back before
    /// any answer is read, and the server runs them with no round trip in
    /// between (the locks' hold gains only the probe's execution). Reading
    /// the answers is left to each future; `settle` turns them into the
    /// statement's outcome and server times, `statement_row` into its row.
    pub(super) async fn send(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        out: Outgoing<'_>,
        attempt: u32,
        in_txn: bool,
        commit: bool,
    ) -> Sent {
        self.statement_starts(in_txn);
        if !in_txn {
            self.poller_armed().await;
        }
        let cancel = self.client.cancel_token();
        tracing::debug!(
            "{} / {} (attempt {attempt}): sending {}",
            phase.name,
            step.name,
            out.sql
        );
        let start = self.ctx.clock.now_ms();
        let pipelined = async {
            tokio::join!(
                self.clock_message(!in_txn),
                self.statement_message(out.sql, in_txn),
                self.run_probe(),
                savepoint(&self.client, in_txn && !commit, UNDO_SAVEPOINT),
                self.commit_message(commit),
            )
        };
        let answers = tokio::select! {
            r = pipelined => Some(r),
            _ = self.ctx.abort.cancelled() => None,
        };
        self.ctx.status.in_statement.store(false, Ordering::Relaxed);
        let settled = match answers {
            Some((server_start, statement, probe, _, commit)) => {
                self.settle(in_txn, server_start, statement, probe, commit)
            }
            None => {
                self.ctx.conn.cancel(&cancel).await;
                Settled {
                    outcome: Err(Failure::Aborted),
                    end: self.ctx.clock.now_ms(),
                    probe: Err("the rehearsal was interrupted during the statement".into()),
                    commit: None,
                    server_start: None,
                }
            }
        };
        let mut settled = settled;
        if let (true, Err(f)) = (in_txn, &mut settled.outcome) {
            f.at_end_of(out.sql);
        }
        if let (Err(Failure::Sql { position, at, .. }), Some(st)) =
            (&mut settled.outcome, out.at.or(out.written))
        {
            *at = Some(st.location_at(*position).to_string());
        }
        let row = statement_row(phase, step, out, attempt, start, &settled);
        Sent {
            row,
            outcome: settled.outcome,
            probe: settled.probe,
            commit: settled.commit,
            server_start: settled.server_start,
        }
    }

    /// Tell the observers a statement is sent: the held-lock poller follows
    /// it from now (outside a transaction all its locks, inside one its
    /// waits), so it starts at once.
    fn statement_starts(&self, in_txn: bool) {
        let status = &self.ctx.status;
        status.autocommit.store(!in_txn, Ordering::Relaxed);
        status.in_statement.store(true, Ordering::Relaxed);
        status.statement_seq.fetch_add(1, Ordering::Relaxed);
        status.statement_sent.notify_one();
    }

    /// Wait (at most [`ARM_WAIT`]) until the held-lock poller follows the
    /// statement about to be sent outside a transaction. Its thread has to
    /// wake, and its first poll to reach the server: on a loaded machine
    /// that took longer than a 2 ms DROP INDEX CONCURRENTLY, whose locks
    /// then went unseen.
    async fn poller_armed(&self) {
        let status = &self.ctx.status;
        let seq = status.statement_seq.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + ARM_WAIT;
        while status.armed_seq.load(Ordering::Relaxed) < seq {
            if tokio::time::timeout_at(deadline, status.poller_armed.notified())
                .await
                .is_err()
            {
                tracing::debug!("the lock poller did not follow within {ARM_WAIT:?}; sending");
                return;
            }
        }
    }

    /// The server's clock as a message of its own, ahead of a statement
    /// outside a transaction (CONCURRENTLY refuses a multi-statement
    /// message); inside one it rides in the statement's message instead.
    async fn clock_message(&self, wanted: bool) -> Option<f64> {
        if wanted {
            self.server_now().await
        } else {
            None
        }
    }

    /// The statement's message, and when its answer came back (run clock).
    ///
    /// Inside a transaction the server's clock is read in the statement's
    /// own message, right before it: nothing is flushed to this process in
    /// between, so the server cannot be preempted by our wake-up there (a
    /// separate message was: up to tens of ms on a loaded machine). The
    /// probe's savepoint goes in the same message, and the undo of the last
    /// probe in COMMIT's: every message boundary is a flush that wakes this
    /// process, and a chance for the backend — holding the locks — to be
    /// preempted by it (see README, Precision).
    /// Also the server's clock read ahead of the statement in its message,
    /// inside a transaction — kept when the statement fails, since then no
    /// probe follows and it is the only server time of the statement's start.
    async fn statement_message(&self, sql: &str, in_txn: bool) -> StatementAnswer {
        let text = if in_txn {
            // On a line of its own: a statement may end in a `--` comment
            // (the splitter keeps it), which would swallow the savepoint.
            format!("{}{sql}\n; {SAVEPOINT}", statement_prefix())
        } else {
            sql.to_string()
        };
        let mut clock = None;
        let r = async {
            let mut messages = Vec::new();
            let mut stream = std::pin::pin!(self.client.simple_query_raw(&text).await?);
            while let Some(m) = futures_util::TryStreamExt::try_next(&mut stream).await? {
                if clock.is_none() && in_txn {
                    clock = first_clock(std::slice::from_ref(&m));
                }
                messages.push(m);
            }
            Ok(messages)
        }
        .await;
        let end = self.ctx.clock.now_ms();
        // Outside a transaction the statement's end is its locks' end.
        // Inside one the poll goes on through the probe and the COMMIT
        // pipelined behind it, which releases them (`send` stops it).
        if !in_txn {
            self.ctx.status.in_statement.store(false, Ordering::Relaxed);
        }
        (r, end, clock)
    }

    /// COMMIT (behind the last probe's undo) and the server's clock right
    /// after it, in one message: the release, free of the delays of either
    /// side. Its result, the server's clock (ms since the epoch) if read,
    /// and when it returned (run clock).
    async fn commit_message(
        &self,
        wanted: bool,
    ) -> Option<(Result<(), Failure>, Option<f64>, f64)> {
        if !wanted {
            return None;
        }
        let r = self
            .client
            .simple_query(&format!("{UNDO_SAVEPOINT}; COMMIT; {}", probe::CLOCK_SQL))
            .await;
        let returned = self.ctx.clock.now_ms();
        Some(match r {
            Ok(msgs) => (Ok(()), first_clock(&msgs), returned),
            Err(e) => (Err(Failure::from_pg(&e)), None, returned),
        })
    }

    /// The answers of one pipelined statement, on the run clock.
    fn settle(
        &self,
        in_txn: bool,
        server_start: Option<f64>,
        (r, end, clock): StatementAnswer,
        probe: Result<Probe, String>,
        commit: Option<(Result<(), Failure>, Option<f64>, f64)>,
    ) -> Settled {
        let server_clock = &self.ctx.server_clock;
        let server_start = if in_txn { clock } else { server_start };
        let outcome = r.map(|_| ()).map_err(|e| {
            let mut f = Failure::from_pg(&e);
            // Inside a transaction the statement follows the clock read in
            // its message: the position counts that too.
            if let Failure::Sql {
                position: Some(p), ..
            } = &mut f
            {
                if in_txn {
                    *p = p.saturating_sub(statement_prefix().chars().count());
                }
            }
            f
        });
        // In an aborted transaction the probe could not run.
        let probe = if outcome.is_err() && in_txn {
            Err("the statement failed, and its transaction with it, before the probe".into())
        } else {
            probe
        };
        Settled {
            outcome,
            end,
            probe,
            // The server's clock after COMMIT, else when it answered.
            commit: commit.map(|(c, ended, returned)| {
                let ended = ended.map(|ms| server_clock.to_run_ms(ms));
                (c, ended.unwrap_or(returned))
            }),
            server_start: server_start.map(|ms| server_clock.to_run_ms(ms)),
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
        if !in_txn {
            self.run.outside_txn.push(idx);
        }
        let end = after
            .as_ref()
            .ok()
            .map(|p| self.ctx.server_clock.to_run_ms(p.server_ms));
        self.run.server_spans.push(match (sent.server_start, end) {
            (Some(start_ms), Some(end_ms)) => Some(super::ServerSpan { start_ms, end_ms }),
            // No probe after it (a statement that failed in a transaction):
            // its start on the server's clock still bounds its locks better
            // than when it was sent, its end is when it returned.
            (Some(start_ms), None) => Some(super::ServerSpan {
                start_ms,
                end_ms: row.end_ms.max(start_ms),
            }),
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
                    row.scanned = probe::scanned(b, a).join("; ");
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

    /// Why no statement's own WAL is known in this run: a pointer to the
    /// one sentence run.json `wal_unavailable` (and the report's header)
    /// gives, rather than that sentence in every cell.
    pub(super) fn wal_unknown(&self) -> String {
        match &self.ctx.wal.unavailable {
            Some(_) => "not measured in this run (run.json wal_unavailable says why)".into(),
            None => "pg_stat_statements could not be read".into(),
        }
    }
}

/// The statement's row in statements.csv, its figures still empty (filled
/// by `record` from the probes around it).
fn statement_row(
    phase: &PhasePlan,
    step: &StepPlan,
    out: Outgoing<'_>,
    attempt: u32,
    start: f64,
    settled: &Settled,
) -> StatementRow {
    let end = settled.end;
    let (label, sqlstate) = match &settled.outcome {
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
    StatementRow {
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
        scanned: String::new(),
        wal_bytes: None,
        cluster_wal_bytes: None,
        unknown: String::new(),
        file: out
            .at
            .map(|st| st.location.file.display().to_string())
            .unwrap_or_default(),
        line: out.at.map(|st| st.location.line as u64).filter(|l| *l > 0),
    }
}

/// A statement's answer: its messages or error, when it returned (run
/// clock), and the server's clock read ahead of it (see `statement_message`).
type StatementAnswer = (
    Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>,
    f64,
    Option<f64>,
);

/// What goes ahead of a statement in its message inside a transaction: the
/// server's clock (see `statement_message`).
fn statement_prefix() -> String {
    format!("{}; ", probe::CLOCK_SQL)
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
