//! The migration session's `lock_timeout` and `statement_timeout` as its
//! migration files leave them. A file that says `SET lock_timeout = '2s'`
//! at session level runs its later statements under it, in its later
//! segments too (its `BEGIN ... COMMIT`, then its `CREATE INDEX
//! CONCURRENTLY`: psql keeps one session per file); and where the tool runs
//! every file on one connection (`MigrationFile::shares_session`: Flyway,
//! golang-migrate, goose, dbmate, Prisma) the files after it in its phase
//! run under it as well, as they would in production.
//!
//! How the file's own `SET`s are known: each attempt at a file's segment
//! sets the session's timeouts at session level (a transaction's `SET`
//! after its `BEGIN` is rolled back with it), and after it succeeds the
//! session's values are read back (pg_settings, in ms) and reset: a value
//! that differs from what was set is the file's doing — a `SET`, a
//! `set_config(..., false)`, a `RESET`, or one inside a `DO` block alike;
//! a `SET LOCAL` ends with its transaction and leaves nothing.
//!
//! What runs under what, for each timeout: a value the step's own file set
//! in an earlier segment; else the scenario's for the step; else a value
//! carried from an earlier file on the tool's connection; else none (0).

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use super::failure::Failure;
use super::{Executor, Outgoing};
use crate::scenario::{PhasePlan, StepAction, StepPlan};

/// Reads the session's two timeouts (ms) and resets them, in one round trip.
const READ_AND_RESET: &str =
    "SELECT (SELECT setting FROM pg_settings WHERE name = 'lock_timeout'), \
     (SELECT setting FROM pg_settings WHERE name = 'statement_timeout'); \
     RESET lock_timeout; RESET statement_timeout";

/// A timeout a migration file set at session level.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FileSet {
    /// Milliseconds; 0 turned it off.
    pub ms: u64,
    /// The file's name as reports show it.
    pub file: String,
    /// Set by the file the step runs now (else carried from an earlier
    /// one): it wins over the scenario's value for the step.
    pub this_step: bool,
}

/// What migration files' own `SET`s have left in effect.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct FileTimeouts {
    pub lock_timeout: Option<FileSet>,
    pub statement_timeout: Option<FileSet>,
}

impl FileTimeouts {
    /// The same values, carried into the next file: none of them its own.
    fn carried(&self) -> FileTimeouts {
        let carry = |s: &Option<FileSet>| {
            s.clone().map(|s| FileSet {
                this_step: false,
                ..s
            })
        };
        FileTimeouts {
            lock_timeout: carry(&self.lock_timeout),
            statement_timeout: carry(&self.statement_timeout),
        }
    }
}

/// The lock_timeout and statement_timeout (ms, 0: none) a step's statements
/// run under (see the module's comment for the order), the session's own
/// defaults (`defaults`: a role's, a database's or the server's, as any
/// connection of the tool gets them) last.
pub(super) fn effective(step: &StepPlan, files: &FileTimeouts, defaults: (u64, u64)) -> (u64, u64) {
    let pick =
        |file: &Option<FileSet>, scenario: Option<Duration>, default: u64| match (file, scenario) {
            (Some(f), _) if f.this_step => f.ms,
            (_, Some(d)) => d.as_millis() as u64,
            (Some(f), None) => f.ms,
            (None, None) => default,
        };
    (
        pick(&files.lock_timeout, step.lock_timeout, defaults.0),
        pick(&files.statement_timeout, step.statement_timeout, defaults.1),
    )
}

/// Where a step's timeout comes from when it is the session's default.
pub(super) const SESSION_DEFAULT: &str =
    "the session's default (a role's, database's or server's setting)";

/// The session's lock_timeout and statement_timeout (ms) as it connected.
pub(super) async fn defaults(client: &tokio_postgres::Client) -> (u64, u64) {
    let read = client
        .query_one(
            "SELECT (SELECT setting::int8 FROM pg_settings WHERE name = 'lock_timeout'), \
                    (SELECT setting::int8 FROM pg_settings WHERE name = 'statement_timeout')",
            &[],
        )
        .await;
    match read {
        Ok(r) => (
            r.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64,
            r.get::<_, Option<i64>>(1).unwrap_or(0).max(0) as u64,
        ),
        Err(_) => (0, 0),
    }
}

impl Executor {
    /// At a step's start: what the files before it left in effect for it —
    /// the tool's connection's, when it runs the tool's next file in the
    /// same phase; nothing otherwise (a step's own `file` runs as psql
    /// would, in a session of its own; inline SQL and backfills are not
    /// the tool's). Sets the step's recorded timeouts to what it begins
    /// under, and names the file a carried one comes from.
    pub(super) fn enter_session(&mut self, phase: &PhasePlan, step: &StepPlan) {
        self.session = match (&step.action, &self.tool_session) {
            (StepAction::File(f), Some((p, carried))) if f.shares_session && *p == phase.name => {
                carried.carried()
            }
            _ => FileTimeouts::default(),
        };
    }

    /// After a step that ran a file as psql runs it (a Sqitch or plain
    /// file, a `file = ...` step), in a session of its own that ends with
    /// it: what the file `SET` (a search_path, a role), its temporary tables
    /// and the advisory locks it took at session level go with that session,
    /// and reach neither the next file nor the scenario's own SQL. The
    /// tool's connection is reset to what a new session starts with. Not
    /// around other steps: the scenario's own steps share one session, as
    /// a migration holding a session-level advisory lock from its first
    /// step to its last needs. Outside the step's timing.
    pub(super) async fn end_file_session(&mut self, step: &StepPlan) {
        if !matches!(&step.action, StepAction::File(f) if !f.shares_session) {
            return;
        }
        if let Err(e) = self
            .client
            .batch_execute(crate::migrations::FRESH_SESSION)
            .await
        {
            tracing::warn!(
                "resetting the migration session after step {}: {}",
                step.name,
                crate::pg::error_text(&e)
            );
        }
    }

    /// At a step's end: what the tool's connection carries into its next
    /// file, when the step ran one of the tool's files.
    pub(super) fn leave_session(&mut self, phase: &PhasePlan, step: &StepPlan) {
        if matches!(&step.action, StepAction::File(f) if f.shares_session) {
            self.tool_session = Some((phase.name.clone(), self.session.clone()));
        }
    }

    /// The session-level `SET`s that give `step`'s statements their
    /// timeouts (`SET LOCAL` for an inline or backfill step in a
    /// transaction, which COMMIT and ROLLBACK end without a round trip).
    pub(super) fn session_settings(&self, step: &StepPlan, local: bool) -> String {
        let scope = if local { "SET LOCAL" } else { "SET" };
        let (lt, st) = effective(step, &self.session, self.session_defaults);
        format!("{scope} lock_timeout = {lt}; {scope} statement_timeout = {st};")
    }

    /// After an attempt at `stmts`, a segment of `file`, succeeded: read
    /// back the session's timeouts, keep as the file's own any it changed
    /// or set (a `SET` to the value it already had is the file's too: it
    /// holds on when the scenario's for the step does not), and reset them
    /// (the next attempt sets them again).
    pub(super) async fn read_file_session(
        &mut self,
        step: &StepPlan,
        file: &str,
        stmts: &[Outgoing<'_>],
    ) -> Result<(), Failure> {
        let (lt, st) = effective(step, &self.session, self.session_defaults);
        let sets = |name: &str| {
            stmts
                .iter()
                .any(|o| crate::sql::session_time_setting(o.sql, name).is_some())
        };
        let (sets_lt, sets_st) = (sets("lock_timeout"), sets("statement_timeout"));
        tracing::debug!("migration session: sending {READ_AND_RESET}");
        let messages = self
            .client
            .simple_query(READ_AND_RESET)
            .await
            .map_err(|e| Failure::from_pg(&e))?;
        let Some(row) = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        }) else {
            return Ok(());
        };
        let ms = |i: usize| row.get(i).and_then(|v| v.parse::<u64>().ok());
        let note = |slot: &mut Option<FileSet>, now: Option<u64>, set: u64, sets: bool| {
            if let Some(now) = now.filter(|&now| now != set || sets) {
                *slot = Some(FileSet {
                    ms: now,
                    file: file.to_string(),
                    this_step: true,
                });
            }
        };
        note(&mut self.session.lock_timeout, ms(0), lt, sets_lt);
        note(&mut self.session.statement_timeout, ms(1), st, sets_st);
        Ok(())
    }

    /// The step's recorded lock_timeout and statement_timeout as it begins
    /// (ms, None: none), each with where it came from when not from the
    /// scenario (an earlier file, the session's default).
    pub(super) fn starting_timeouts(&self, step: &StepPlan) -> [(Option<f64>, Option<String>); 2] {
        let (lt, st) = effective(step, &self.session, self.session_defaults);
        let one = |ms: u64, set: &Option<FileSet>, scenario: Option<Duration>, default: u64| {
            // Only a timeout in effect has a source (a file that turned it
            // off leaves none).
            let from = match (set, scenario) {
                (Some(f), None) if f.ms > 0 => Some(f.file.clone()),
                (None, None) if default > 0 => Some(SESSION_DEFAULT.to_string()),
                _ => None,
            };
            ((ms > 0).then_some(ms as f64), from)
        };
        [
            one(
                lt,
                &self.session.lock_timeout,
                step.lock_timeout,
                self.session_defaults.0,
            ),
            one(
                st,
                &self.session.statement_timeout,
                step.statement_timeout,
                self.session_defaults.1,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(lock_timeout: Option<u64>) -> StepPlan {
        StepPlan {
            lock_timeout: lock_timeout.map(Duration::from_millis),
            ..StepPlan::plain("s".into(), StepAction::Sql(Vec::new()), true)
        }
    }

    fn set(ms: u64, this_step: bool) -> Option<FileSet> {
        Some(FileSet {
            ms,
            file: "V5__a.sql".into(),
            this_step,
        })
    }

    #[test]
    fn the_files_own_set_wins_then_the_scenarios_then_a_carried_one() {
        let files = |lt| FileTimeouts {
            lock_timeout: lt,
            statement_timeout: None,
        };
        // Nothing set anywhere: none, or the session's own default.
        assert_eq!(effective(&step(None), &files(None), (0, 0)), (0, 0));
        assert_eq!(effective(&step(None), &files(None), (100, 0)), (100, 0));
        assert_eq!(
            effective(&step(None), &files(set(0, false)), (100, 0)),
            (0, 0)
        );
        // The scenario's.
        assert_eq!(effective(&step(Some(500)), &files(None), (0, 0)), (500, 0));
        // Carried from an earlier file: under the scenario's, over none.
        assert_eq!(
            effective(&step(None), &files(set(2_000, false)), (0, 0)),
            (2_000, 0)
        );
        assert_eq!(
            effective(&step(Some(500)), &files(set(2_000, false)), (0, 0)),
            (500, 0)
        );
        // Set by the step's own file in an earlier segment: over the
        // scenario's, even to turn it off.
        assert_eq!(
            effective(&step(Some(500)), &files(set(2_000, true)), (0, 0)),
            (2_000, 0)
        );
        assert_eq!(
            effective(&step(Some(500)), &files(set(0, true)), (0, 0)),
            (0, 0)
        );
        // Carried on, a file's own value is no longer the step's own.
        let carried = files(set(2_000, true)).carried();
        assert_eq!(
            carried.lock_timeout.as_ref().map(|s| s.this_step),
            Some(false)
        );
        assert_eq!(effective(&step(Some(500)), &carried, (0, 0)), (500, 0));
    }
}
