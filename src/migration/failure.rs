//! How a step fails: a lock timeout (retried), any other SQL error or a lost
//! connection, or an abort; and which failures a step expects
//! (`expect_error`), so that the migration goes on after them.

use crate::scenario::StepPlan;

pub(super) enum Failure {
    /// 55P03: lock_timeout expired.
    LockTimeout(String),
    /// Any other SQL error, or a lost connection.
    Sql {
        sqlstate: String,
        message: String,
        /// The server's error position in the text sent (characters from 1).
        position: Option<usize>,
        /// `file:line:column` it points to, for a file's statement.
        at: Option<String>,
    },
    Aborted,
}

impl Failure {
    /// The one mapping of a Postgres error: 55P03 (lock_timeout expired) is
    /// retried, anything else fails the step; a lost connection is 08006.
    pub(super) fn from_pg(e: &tokio_postgres::Error) -> Failure {
        let (sqlstate, message) = crate::pg::sqlstate_and_message(e);
        if sqlstate == "55P03" {
            Failure::LockTimeout(message)
        } else {
            Failure::Sql {
                sqlstate,
                message,
                position: crate::pg::error_position(e),
                at: None,
            }
        }
    }

    /// A statement cut off at its end (`ALTER TABLE t ADD COLUMN`) runs out
    /// inside a transaction into the `;` and savepoint sent behind it, and
    /// the server says "syntax error at or near \";\"" about a token the
    /// user never wrote. Say what it says of the statement on its own.
    pub(super) fn at_end_of(&mut self, sql: &str) {
        let end = sql.chars().count();
        if let Failure::Sql {
            sqlstate,
            message,
            position,
            ..
        } = self
        {
            if sqlstate == "42601" && position.is_some_and(|p| p > end) {
                *message = "syntax error at end of input".into();
                *position = Some(end + 1);
            }
        }
    }

    /// The statement's outcome and SQLSTATE in statements.csv.
    pub(super) fn statement_outcome(&self) -> (&'static str, &str) {
        match self {
            Failure::LockTimeout(_) => ("lock_timeout", "55P03"),
            Failure::Sql { sqlstate, .. } if sqlstate == "57014" => ("statement_timeout", sqlstate),
            Failure::Sql { sqlstate, .. } => ("error", sqlstate),
            Failure::Aborted => ("cancelled", ""),
        }
    }
}

/// How a step ended when the migration goes on after it.
pub(super) enum Outcome {
    Succeeded,
    /// It failed with a SQLSTATE its `expect_error` lists (the SQLSTATE).
    FailedAsExpected(String),
}

/// A failure the step expects (`expect_error`) is no failure of the
/// migration: its transaction was rolled back (or its autocommit statement
/// undone), and the next step runs. A lock timeout counts once the step's
/// retries are used up.
pub(super) fn expected(step: &StepPlan, result: Result<(), Failure>) -> Result<Outcome, Failure> {
    match result {
        Ok(()) => Ok(Outcome::Succeeded),
        Err(Failure::LockTimeout(_)) if step.expects("55P03") => {
            Ok(Outcome::FailedAsExpected("55P03".into()))
        }
        Err(Failure::Sql { sqlstate, .. }) if step.expects(&sqlstate) => {
            Ok(Outcome::FailedAsExpected(sqlstate))
        }
        Err(f) => Err(f),
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    fn syntax_error(message: &str, position: usize) -> Failure {
        Failure::Sql {
            sqlstate: "42601".into(),
            message: message.into(),
            position: Some(position),
            at: None,
        }
    }

    /// The message and position `sql` is said to fail at.
    fn said(sql: &str, message: &str, position: usize) -> (String, Option<usize>) {
        let mut f = syntax_error(message, position);
        f.at_end_of(sql);
        match f {
            Failure::Sql {
                message, position, ..
            } => (message, position),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_syntax_error_past_the_statement_is_at_its_end() {
        let sql = "ALTER TABLE é ADD COLUMN";
        assert_eq!(
            said(
                sql,
                "syntax error at or near \";\"",
                sql.chars().count() + 2
            ),
            ("syntax error at end of input".into(), Some(25))
        );
        // One inside the statement is the server's own.
        assert_eq!(
            said(sql, "syntax error at or near \"ADD\"", 16),
            ("syntax error at or near \"ADD\"".into(), Some(16))
        );
    }
}
