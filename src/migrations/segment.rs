//! The three ways tools send a file's statements, as segments:
//!
//! - [`psql_style`]: one statement at a time in autocommit, the script's own
//!   `BEGIN ... COMMIT` blocks being transactions (psql for Sqitch and plain
//!   files; JDBC in autocommit for Flyway's non-transactional files);
//! - [`one_query`]: the whole text as one simple query (golang-migrate,
//!   Prisma, dbmate's `transaction:false`): PostgreSQL runs a multi-statement
//!   query as one implicit transaction, so only a lone statement runs outside
//!   a transaction block;
//! - [`tool_transaction`]: the tool's own BEGIN around the file (Flyway,
//!   dbmate).
//!
//! Each refuses what PostgreSQL would refuse in that mode, at the statement,
//! with the layout's fix.

use super::classify::{refused_in_transaction, same_in_own_transaction, tx_control, TxControl};
use super::error::MigrationError;
use super::model::{Execution, Location, Segment, Statement};

/// How to word a refusal: the tool, and how its users fix a statement that
/// cannot run in a transaction block.
pub struct Context<'a> {
    pub tool: &'a str,
    pub fix: &'a str,
}

fn refused_error(st: &Statement, what: &str, why: &str, fix: &str) -> MigrationError {
    MigrationError::at(
        st.location.clone(),
        format!(
            "{what} cannot run inside a transaction block, and {why}: PostgreSQL would fail with \
             \"{what} cannot run inside a transaction block\" (25001). Fix: {fix}"
        ),
    )
}

fn unsupported_control(st: &Statement, control: TxControl) -> Option<MigrationError> {
    let why = match control {
        TxControl::Begin { with_options: true } => {
            "a transaction with options (isolation level, access mode) is not supported: use a \
             plain BEGIN"
        }
        TxControl::Commit { chain: true } => "COMMIT AND CHAIN is not supported: use COMMIT",
        TxControl::Rollback => {
            "ROLLBACK in a migration discards the changes before it; pgrehearse does not \
             rehearse that: remove it"
        }
        _ => return None,
    };
    Some(MigrationError::at(st.location.clone(), why))
}

fn line(l: &Location) -> usize {
    l.line
}

/// psql (or JDBC in autocommit): statements one by one; BEGIN ... COMMIT
/// blocks of the script are transactions (their BEGIN and COMMIT are not
/// statements of the segment: the executor opens and commits it).
pub fn psql_style(
    statements: Vec<Statement>,
    autocommit_reason: &str,
    cx: &Context,
) -> Result<(Vec<Segment>, Vec<String>), MigrationError> {
    let mut segments = Vec::new();
    let mut notes = Vec::new();
    let mut auto: Vec<Statement> = Vec::new();
    let mut block: Option<(Location, Vec<Statement>)> = None;
    let flush_auto = |auto: &mut Vec<Statement>, segments: &mut Vec<Segment>| {
        if !auto.is_empty() {
            segments.push(Segment {
                execution: Execution::Autocommit,
                reason: autocommit_reason.to_string(),
                statements: std::mem::take(auto),
            });
        }
    };
    for st in statements {
        let control = tx_control(st.code());
        if let Some(e) = control.and_then(|c| unsupported_control(&st, c)) {
            return Err(e);
        }
        match control {
            Some(TxControl::Begin { .. }) => {
                if let Some((opened, _)) = &block {
                    return Err(MigrationError::at(
                        st.location.clone(),
                        format!(
                            "BEGIN inside the transaction opened at line {} (PostgreSQL only warns \
                             and stays in it): remove one of them",
                            line(opened)
                        ),
                    ));
                }
                flush_auto(&mut auto, &mut segments);
                block = Some((st.location.clone(), Vec::new()));
            }
            Some(_) => match block.take() {
                Some((opened, stmts)) => {
                    if !stmts.is_empty() {
                        segments.push(Segment {
                            execution: Execution::Transaction,
                            reason: format!(
                                "the script's own BEGIN (line {}) ... COMMIT (line {})",
                                line(&opened),
                                line(&st.location)
                            ),
                            statements: stmts,
                        });
                    }
                }
                None => notes.push(format!(
                    "the COMMIT at line {} is outside any transaction: it does nothing \
                     (PostgreSQL warns \"there is no transaction in progress\")",
                    line(&st.location)
                )),
            },
            None => match &mut block {
                Some((opened, stmts)) => {
                    if let Some(what) = refused_in_transaction(st.code()) {
                        let why = format!(
                            "it is inside the script's own transaction (BEGIN at line {})",
                            line(opened)
                        );
                        return Err(refused_error(
                            &st,
                            what,
                            &why,
                            "move it after the COMMIT, outside the transaction",
                        ));
                    }
                    stmts.push(st);
                }
                None => auto.push(st),
            },
        }
    }
    if let Some((opened, _)) = block {
        return Err(MigrationError::at(
            opened,
            format!(
                "this BEGIN is never committed: {} ends the script with the transaction open and \
                 PostgreSQL rolls it back when the session closes: add COMMIT",
                cx.tool
            ),
        ));
    }
    flush_auto(&mut auto, &mut segments);
    Ok((segments, notes))
}

/// The whole text sent as one simple query. `implicit_reason` says why the
/// statements share a transaction ("golang-migrate sends the file as one
/// query").
pub fn one_query(
    statements: Vec<Statement>,
    implicit_reason: &str,
    cx: &Context,
) -> Result<Vec<Segment>, MigrationError> {
    if let [only] = statements.as_slice() {
        if tx_control(only.code()).is_none() {
            let (execution, reason) = match refused_in_transaction(only.code()) {
                Some(what) => (
                    Execution::Autocommit,
                    format!("{implicit_reason}; a lone {what} runs outside any transaction block"),
                ),
                None if same_in_own_transaction(only.code()) => (
                    Execution::Transaction,
                    format!("{implicit_reason}; a lone statement runs in its own transaction"),
                ),
                // A CALL, or a DO that may COMMIT inside, which PostgreSQL
                // allows only outside a transaction block; SET, LOCK,
                // ANALYZE, ... run as sent too.
                None => (
                    Execution::Autocommit,
                    format!(
                        "{implicit_reason}; a lone statement runs outside a transaction block \
                         (a DO or CALL may commit inside)"
                    ),
                ),
            };
            return Ok(vec![Segment {
                execution,
                reason,
                statements,
            }]);
        }
    }
    let mut segments = Vec::new();
    let mut current: Vec<Statement> = Vec::new();
    let mut opened: Option<Location> = None;
    for st in statements {
        let control = tx_control(st.code());
        if let Some(e) = control.and_then(|c| unsupported_control(&st, c)) {
            return Err(e);
        }
        match control {
            // A BEGIN turns the implicit transaction into an explicit one;
            // the statements before it stay in it.
            Some(TxControl::Begin { .. }) => {
                opened.get_or_insert(st.location.clone());
            }
            Some(_) => {
                let reason = match opened.take() {
                    Some(b) => format!(
                        "its own BEGIN (line {}) ... COMMIT (line {})",
                        line(&b),
                        line(&st.location)
                    ),
                    None => implicit_reason.to_string(),
                };
                if !current.is_empty() {
                    segments.push(Segment {
                        execution: Execution::Transaction,
                        reason,
                        statements: std::mem::take(&mut current),
                    });
                }
            }
            None => {
                if let Some(what) = refused_in_transaction(st.code()) {
                    let why = format!(
                        "{implicit_reason}: PostgreSQL runs the statements of a multi-statement \
                         query in one transaction block"
                    );
                    return Err(refused_error(&st, what, &why, cx.fix));
                }
                current.push(st);
            }
        }
    }
    if !current.is_empty() {
        segments.push(Segment {
            execution: Execution::Transaction,
            reason: implicit_reason.to_string(),
            statements: current,
        });
    }
    Ok(segments)
}

/// The tool opens a transaction around the statements and commits it.
pub fn tool_transaction(
    statements: Vec<Statement>,
    reason: &str,
    cx: &Context,
) -> Result<Vec<Segment>, MigrationError> {
    for st in &statements {
        if tx_control(st.code()).is_some() {
            return Err(MigrationError::at(
                st.location.clone(),
                format!(
                    "{} already runs this file in a transaction ({reason}); the file's own \
                     transaction control would end or nest it: remove it",
                    cx.tool
                ),
            ));
        }
        if let Some(what) = refused_in_transaction(st.code()) {
            let why = format!("{} runs this file in a transaction ({reason})", cx.tool);
            return Err(refused_error(st, what, &why, cx.fix));
        }
    }
    if statements.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Segment {
        execution: Execution::Transaction,
        reason: reason.to_string(),
        statements,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn stmts(list: &[&str]) -> Vec<Statement> {
        list.iter()
            .enumerate()
            .map(|(i, s)| Statement {
                sql: s.to_string(),
                location: Location::new(Path::new("f.sql"), i + 1, 1),
                code_offset: 0,
                origins: Vec::new(),
            })
            .collect()
    }

    const CX: Context = Context {
        tool: "tool",
        fix: "do the fix",
    };

    fn shape(segs: &[Segment]) -> Vec<(Execution, Vec<String>)> {
        segs.iter()
            .map(|s| {
                (
                    s.execution,
                    s.statements.iter().map(|x| x.sql.clone()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn psql_runs_blocks_as_transactions_and_the_rest_in_autocommit() {
        use Execution::*;
        let (segs, notes) = psql_style(
            stmts(&[
                "SET lock_timeout = '1s'",
                "BEGIN",
                "CREATE TABLE a (x int)",
                "ALTER TABLE a ADD y int",
                "COMMIT",
                "CREATE INDEX CONCURRENTLY i ON a (x)",
                "COMMIT",
            ]),
            "psql autocommit",
            &CX,
        )
        .unwrap();
        assert_eq!(
            shape(&segs),
            vec![
                (Autocommit, vec!["SET lock_timeout = '1s'".to_string()]),
                (
                    Transaction,
                    vec![
                        "CREATE TABLE a (x int)".to_string(),
                        "ALTER TABLE a ADD y int".to_string()
                    ]
                ),
                (
                    Autocommit,
                    vec!["CREATE INDEX CONCURRENTLY i ON a (x)".to_string()]
                ),
            ]
        );
        assert_eq!(
            segs[1].reason,
            "the script's own BEGIN (line 2) ... COMMIT (line 5)"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn psql_refuses_what_postgres_would() {
        let e = psql_style(
            stmts(&["BEGIN", "CREATE INDEX CONCURRENTLY i ON a (x)", "COMMIT"]),
            "",
            &CX,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("f.sql:2:1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and it is inside the script's own transaction (BEGIN at line 1)"), "{e}");
        let e = psql_style(stmts(&["BEGIN", "SELECT 1"]), "", &CX).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.sql:1:1: this BEGIN is never committed"),
            "{e}"
        );
        let e = psql_style(stmts(&["BEGIN", "BEGIN", "COMMIT"]), "", &CX).unwrap_err();
        assert!(
            e.message
                .contains("BEGIN inside the transaction opened at line 1"),
            "{e}"
        );
        let e = psql_style(stmts(&["BEGIN", "SELECT 1", "ROLLBACK"]), "", &CX).unwrap_err();
        assert!(e.message.starts_with("ROLLBACK in a migration"), "{e}");
        let e = psql_style(
            stmts(&["BEGIN ISOLATION LEVEL SERIALIZABLE", "COMMIT"]),
            "",
            &CX,
        )
        .unwrap_err();
        assert!(e.message.contains("options"), "{e}");
    }

    #[test]
    fn one_query_is_one_implicit_transaction_unless_alone() {
        use Execution::*;
        let segs = one_query(
            stmts(&["CREATE INDEX CONCURRENTLY i ON a (x)"]),
            "sent as one query",
            &CX,
        )
        .unwrap();
        assert_eq!(segs[0].execution, Autocommit);
        let segs = one_query(
            stmts(&["ALTER TABLE a ADD y int"]),
            "sent as one query",
            &CX,
        )
        .unwrap();
        assert_eq!(segs[0].execution, Transaction);
        // A procedure or DO block may COMMIT, which a transaction block
        // forbids (2D000): alone in the query, it runs outside one.
        for code in ["CALL backfill()", "DO $$ BEGIN COMMIT; END $$"] {
            let segs = one_query(stmts(&[code]), "sent as one query", &CX).unwrap();
            assert_eq!(segs[0].execution, Autocommit, "{code}");
        }
        let segs = one_query(
            stmts(&[
                "CREATE TABLE a (x int)",
                "CREATE TABLE b (x int)",
                "COMMIT",
                "CREATE TABLE c (x int)",
            ]),
            "sent as one query",
            &CX,
        )
        .unwrap();
        assert_eq!(
            shape(&segs),
            vec![
                (
                    Transaction,
                    vec![
                        "CREATE TABLE a (x int)".to_string(),
                        "CREATE TABLE b (x int)".to_string()
                    ]
                ),
                (Transaction, vec!["CREATE TABLE c (x int)".to_string()]),
            ]
        );
        let segs = one_query(
            stmts(&["BEGIN", "CREATE TABLE a (x int)", "COMMIT"]),
            "sent as one query",
            &CX,
        )
        .unwrap();
        assert_eq!(segs[0].reason, "its own BEGIN (line 1) ... COMMIT (line 3)");
        let e = one_query(
            stmts(&[
                "CREATE TABLE a (x int)",
                "CREATE INDEX CONCURRENTLY i ON a (x)",
            ]),
            "tool sends the file as one query",
            &CX,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("f.sql:2:1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and tool sends the file as one query: PostgreSQL runs the statements of a multi-statement query in one transaction block"), "{e}");
        assert!(e.message.ends_with("Fix: do the fix"), "{e}");
    }

    #[test]
    fn the_tools_transaction_refuses_its_own_control_and_concurrently() {
        let segs = tool_transaction(
            stmts(&["CREATE TABLE a (x int)", "SELECT 1"]),
            "its default",
            &CX,
        )
        .unwrap();
        assert_eq!(segs.len(), 1);
        let e = tool_transaction(stmts(&["BEGIN", "SELECT 1", "COMMIT"]), "its default", &CX)
            .unwrap_err();
        assert!(
            e.message
                .starts_with("tool already runs this file in a transaction"),
            "{e}"
        );
        let e = tool_transaction(stmts(&["SELECT 1", "VACUUM a"]), "its default", &CX).unwrap_err();
        assert!(e.to_string().starts_with("f.sql:2:1: VACUUM cannot run inside a transaction block, and tool runs this file in a transaction (its default)"), "{e}");
    }
}
