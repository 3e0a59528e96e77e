//! What a statement is, as far as transactions care: whether PostgreSQL
//! refuses it inside a transaction block, whether Flyway's parser thinks so,
//! whether it is transaction control, whether it reads inline COPY data.
//! Decided on the statement's words (quotes, dollar quotes and comments are
//! never words), the way the tools decide.

use crate::sql::{self, TokenKind};

/// The statement's first word, uppercased, past comments (`ALTER`).
pub fn first_word(code: &str) -> Option<String> {
    words(code, true).into_iter().next()
}

/// The unquoted words of `code`, uppercased; `top_level` keeps only those
/// outside parentheses.
fn words(code: &str, top_level: bool) -> Vec<String> {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for t in sql::tokens(code) {
        match t.kind {
            TokenKind::OpenParen => depth += 1,
            TokenKind::CloseParen => depth = depth.saturating_sub(1),
            TokenKind::Word if depth == 0 || !top_level => {
                out.push(code[t.start..t.end].to_ascii_uppercase())
            }
            _ => {}
        }
    }
    out
}

fn starts(w: &[String], prefix: &[&str]) -> bool {
    w.len() >= prefix.len() && w.iter().zip(prefix).all(|(a, b)| a == b)
}

/// Does `w` contain `seq` as a subsequence (in order, gaps allowed)?
fn in_order(w: &[String], seq: &[&str]) -> bool {
    let mut it = w.iter();
    seq.iter().all(|s| it.any(|x| x == s))
}

/// The statement PostgreSQL refuses inside a transaction block
/// (`PreventInTransactionBlock`, SQLSTATE 25001), named for a message; `None`
/// for everything that can run in one. For PostgreSQL 12 and later (`ALTER
/// TYPE ... ADD VALUE` runs in a transaction since 12).
pub fn refused_in_transaction(code: &str) -> Option<&'static str> {
    let w = words(code, true);
    let first = w.first().map(String::as_str)?;
    let object = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    match first {
        "CREATE" | "DROP" => {
            let i = if object(1) == "UNIQUE" { 2 } else { 1 };
            match (object(i), object(i + 1)) {
                ("INDEX", "CONCURRENTLY") if first == "CREATE" => Some("CREATE INDEX CONCURRENTLY"),
                ("INDEX", "CONCURRENTLY") => Some("DROP INDEX CONCURRENTLY"),
                ("DATABASE", _) if i == 1 => Some(if first == "CREATE" {
                    "CREATE DATABASE"
                } else {
                    "DROP DATABASE"
                }),
                ("TABLESPACE", _) if i == 1 => Some(if first == "CREATE" {
                    "CREATE TABLESPACE"
                } else {
                    "DROP TABLESPACE"
                }),
                ("SUBSCRIPTION", _) if i == 1 => Some(if first == "CREATE" {
                    "CREATE SUBSCRIPTION"
                } else {
                    "DROP SUBSCRIPTION"
                }),
                _ => None,
            }
        }
        // REINDEX (CONCURRENTLY) TABLE t puts the option in parentheses.
        "REINDEX" if words(code, false).iter().any(|x| x == "CONCURRENTLY") => {
            Some("REINDEX CONCURRENTLY")
        }
        "REINDEX" => match w
            .iter()
            .skip(1)
            .find(|x| *x != "VERBOSE")
            .map(String::as_str)
        {
            Some("SCHEMA") => Some("REINDEX SCHEMA"),
            Some("DATABASE") => Some("REINDEX DATABASE"),
            Some("SYSTEM") => Some("REINDEX SYSTEM"),
            _ => None,
        },
        "VACUUM" => Some("VACUUM"),
        "CLUSTER" if w.iter().skip(1).all(|x| x == "VERBOSE") => Some("CLUSTER of every table"),
        "ALTER" => match object(1) {
            "SYSTEM" => Some("ALTER SYSTEM"),
            "DATABASE" if in_order(&w, &["SET", "TABLESPACE"]) => {
                Some("ALTER DATABASE ... SET TABLESPACE")
            }
            "SUBSCRIPTION" if w.iter().any(|x| x == "REFRESH") => {
                Some("ALTER SUBSCRIPTION ... REFRESH PUBLICATION")
            }
            "TABLE" if in_order(&w, &["DETACH", "PARTITION", "CONCURRENTLY"]) => {
                Some("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY")
            }
            _ => None,
        },
        "DISCARD" if object(1) == "ALL" => Some("DISCARD ALL"),
        "COMMIT" | "ROLLBACK" if object(1) == "PREPARED" => Some("COMMIT/ROLLBACK PREPARED"),
        _ => None,
    }
}

/// Flyway's own rule (PostgreSQLParser.detectCanExecuteInTransaction): the
/// statement's leading keywords match one of its patterns. Narrower than
/// PostgreSQL's: REINDEX ... CONCURRENTLY, DETACH PARTITION CONCURRENTLY,
/// CLUSTER and ALTER DATABASE SET TABLESPACE are not recognised, so Flyway
/// runs them in a transaction, where they fail.
pub fn flyway_non_transactional(code: &str) -> bool {
    // Flyway's keywords are words of letters and `_` outside parentheses;
    // it looks at the first 10.
    let w: Vec<String> = words(code, true)
        .into_iter()
        .filter(|x| x.chars().all(|c| c.is_alphabetic() || c == '_'))
        .take(10)
        .collect();
    let one_of =
        |i: usize, options: &[&str]| w.get(i).is_some_and(|x| options.contains(&x.as_str()));
    let create_or_drop = one_of(0, &["CREATE", "DROP"]);
    let tail = w.get(1..).unwrap_or(&[]);
    (create_or_drop && one_of(1, &["DATABASE", "TABLESPACE", "SUBSCRIPTION"]))
        || starts(&w, &["ALTER", "SYSTEM"])
        || (create_or_drop && starts(tail, &["INDEX", "CONCURRENTLY"]))
        || (create_or_drop && starts(tail, &["UNIQUE", "INDEX", "CONCURRENTLY"]))
        || (starts(&w, &["REINDEX"])
            && (one_of(1, &["SCHEMA", "DATABASE", "SYSTEM"])
                || (one_of(1, &["VERBOSE"]) && one_of(2, &["SCHEMA", "DATABASE", "SYSTEM"]))))
        || starts(&w, &["VACUUM"])
        || starts(&w, &["DISCARD", "ALL"])
}

/// Does an autocommit statement mean exactly the same run as a transaction
/// of its own (`BEGIN; statement; COMMIT`)? PostgreSQL runs a lone
/// statement in an implicit transaction anyway; an explicit one lets the
/// executor's probe list its locks before COMMIT releases them, where a
/// poll can miss a statement shorter than its interval (an `ADD COLUMN`
/// holds ACCESS EXCLUSIVE for well under a millisecond). Only DDL and DML,
/// one statement, nothing PostgreSQL refuses in a block: transaction
/// control, `SET` (whose `LOCAL` form would take effect), `LOCK` (an error
/// outside a block), `CALL` (a procedure may commit), a `DO` that could
/// commit (its text says COMMIT, ROLLBACK or CALL, or another language) and
/// anything unknown keep running as sent; a PL/pgSQL `DO` that cannot end
/// a transaction runs in its own, its locks probed. So do those whose run depends on
/// being outside a block in ways the text does not show: `ANALYZE` of
/// several tables (or all) commits after each table outside one, `REINDEX`
/// and `CLUSTER` of a partitioned table are refused inside one, and `ALTER
/// SUBSCRIPTION ... SET PUBLICATION` refreshes (refused inside one) by
/// default.
pub fn same_in_own_transaction(code: &str) -> bool {
    if refused_in_transaction(code).is_some() || copy_from_stdin(code) {
        return false;
    }
    if crate::sql::split(code).len() != 1 {
        return false;
    }
    let w = words(code, true);
    if w.iter().take(2).any(|x| x == "SUBSCRIPTION") {
        return false;
    }
    if w.first().is_some_and(|x| x == "DO") {
        return do_without_transaction_control(code);
    }
    matches!(
        w.first().map(String::as_str),
        Some(
            "ALTER"
                | "CREATE"
                | "DROP"
                | "COMMENT"
                | "GRANT"
                | "REVOKE"
                | "TRUNCATE"
                | "UPDATE"
                | "INSERT"
                | "DELETE"
                | "MERGE"
                | "REFRESH"
        )
    )
}

/// A `DO` block in PL/pgSQL (the default) that cannot end a transaction:
/// no COMMIT, ROLLBACK or CALL (a procedure may commit) as a word anywhere
/// in it, strings included (`EXECUTE 'COMMIT'`). PostgreSQL runs it the
/// same inside a transaction block; one that commits fails there (2D000),
/// so it keeps running as sent.
fn do_without_transaction_control(code: &str) -> bool {
    // DO [LANGUAGE lang] body: the body is a string, so the only words
    // are DO, LANGUAGE and the language's name.
    let mut tokens = sql::tokens(code)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment));
    let language = tokens
        .find(|t| {
            t.kind == TokenKind::Word && code[t.start..t.end].eq_ignore_ascii_case("LANGUAGE")
        })
        .and_then(|_| tokens.next())
        .map(|t| {
            code[t.start..t.end]
                .trim_matches(|c| c == '\'' || c == '"')
                .to_string()
        });
    if language.is_some_and(|l| !l.eq_ignore_ascii_case("plpgsql")) {
        return false;
    }
    !may_end_transaction(code)
}

/// Could code holding this text (a DO block, a procedure's definition) end
/// its transaction? COMMIT, ROLLBACK or CALL (a procedure may commit) as a
/// word anywhere in it, strings included (`EXECUTE 'COMMIT'`): a cautious
/// answer, which only costs the probe.
pub fn may_end_transaction(text: &str) -> bool {
    static ENDS_TRANSACTION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(commit|rollback|call)\b").expect("a valid regex")
    });
    ENDS_TRANSACTION.is_match(text)
}

/// A note per DO block of `file` that says COMMIT or ROLLBACK while the
/// tool runs it inside a transaction: if that runs, PostgreSQL stops it
/// with 2D000 (invalid transaction termination), in the rehearsal as in
/// production. Said at `check`, before anything runs.
pub fn commits_in_a_transaction(file: &super::MigrationFile) -> Vec<String> {
    static COMMITS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\b(commit|rollback)\b").expect("a valid regex")
    });
    file.segments
        .iter()
        .filter(|s| s.execution == super::Execution::Transaction)
        .flat_map(|s| &s.statements)
        .filter(|st| first_word(st.code()).as_deref() == Some("DO") && COMMITS.is_match(st.code()))
        .map(|st| {
            format!(
                "the DO block at line {} says COMMIT or ROLLBACK, and the file runs in a \
                 transaction: if that runs, PostgreSQL stops it with 2D000 (invalid \
                 transaction termination), in production as here; run the file outside a \
                 transaction to let it commit",
                st.location.line
            )
        })
        .collect()
}

/// `CALL [schema.]name(...)`: the procedure's schema (if named) and name,
/// as the catalog spells them (unquoted names folded to lower case).
pub fn called_procedure(code: &str) -> Option<(Option<String>, String)> {
    let tokens: Vec<_> = sql::tokens(code)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment))
        .collect();
    let text = |i: usize| &code[tokens[i].start..tokens[i].end];
    if tokens.first()?.kind != TokenKind::Word || !text(0).eq_ignore_ascii_case("CALL") {
        return None;
    }
    let mut parts = Vec::new();
    for (i, t) in tokens.iter().enumerate().skip(1) {
        match t.kind {
            TokenKind::Word => parts.push(text(i).to_lowercase()),
            TokenKind::QuotedIdent => {
                let quoted = text(i);
                parts.push(quoted[1..quoted.len() - 1].replace("\"\"", "\""));
            }
            TokenKind::Other if text(i) == "." => {}
            TokenKind::OpenParen => break,
            _ => return None,
        }
    }
    match parts.as_slice() {
        [name] => Some((None, name.clone())),
        [schema, name] => Some((Some(schema.clone()), name.clone())),
        _ => None,
    }
}

/// A transaction-control statement of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxControl {
    /// BEGIN / START TRANSACTION; `with_options` when it sets an isolation
    /// level or access mode.
    Begin { with_options: bool },
    /// COMMIT / END; `chain` for AND CHAIN.
    Commit { chain: bool },
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    Rollback,
}

pub fn tx_control(code: &str) -> Option<TxControl> {
    let w = words(code, true);
    let rest_after = |n: usize| -> Vec<&str> {
        w.iter()
            .skip(n)
            .map(String::as_str)
            .filter(|x| !matches!(*x, "WORK" | "TRANSACTION"))
            .collect()
    };
    match w.first().map(String::as_str)? {
        "BEGIN" => Some(TxControl::Begin {
            with_options: !rest_after(1).is_empty(),
        }),
        "START" if w.get(1).is_some_and(|x| x == "TRANSACTION") => Some(TxControl::Begin {
            with_options: !rest_after(2).is_empty(),
        }),
        "COMMIT" | "END" if !w.iter().any(|x| x == "PREPARED") => Some(TxControl::Commit {
            chain: w.iter().any(|x| x == "CHAIN") && !w.iter().any(|x| x == "NO"),
        }),
        "ROLLBACK" | "ABORT" if !w.iter().any(|x| x == "PREPARED" || x == "TO") => {
            Some(TxControl::Rollback)
        }
        _ => None,
    }
}

/// `COPY ... FROM STDIN`: its data follows the statement in the file.
pub fn copy_from_stdin(code: &str) -> bool {
    let w = words(code, true);
    w.first().is_some_and(|x| x == "COPY") && in_order(&w, &["FROM", "STDIN"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_refuses_these_in_a_transaction() {
        let refused = [
            (
                "CREATE INDEX CONCURRENTLY i ON t (a)",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "create unique index concurrently if not exists i on t (a)",
                "CREATE INDEX CONCURRENTLY",
            ),
            (
                "DROP INDEX CONCURRENTLY IF EXISTS i",
                "DROP INDEX CONCURRENTLY",
            ),
            ("REINDEX TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
            (
                "REINDEX (CONCURRENTLY, VERBOSE) INDEX i",
                "REINDEX CONCURRENTLY",
            ),
            ("REINDEX VERBOSE SCHEMA s", "REINDEX SCHEMA"),
            ("VACUUM (ANALYZE) t", "VACUUM"),
            ("CLUSTER", "CLUSTER of every table"),
            ("CREATE DATABASE d", "CREATE DATABASE"),
            ("DROP TABLESPACE ts", "DROP TABLESPACE"),
            ("ALTER SYSTEM SET work_mem = '1MB'", "ALTER SYSTEM"),
            (
                "ALTER DATABASE d SET TABLESPACE ts",
                "ALTER DATABASE ... SET TABLESPACE",
            ),
            (
                "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
                "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY",
            ),
            ("DISCARD ALL", "DISCARD ALL"),
            (
                "/* note; */ -- x\n CREATE INDEX CONCURRENTLY i ON t (a)",
                "CREATE INDEX CONCURRENTLY",
            ),
        ];
        for (sql, what) in refused {
            assert_eq!(refused_in_transaction(sql), Some(what), "{sql}");
        }
        let fine = [
            "CREATE INDEX i ON t (a)",
            "CREATE TABLE concurrently (a int)",
            "REINDEX TABLE t",
            "CLUSTER t USING i",
            "ALTER DATABASE d SET work_mem = '1MB'",
            "ALTER TYPE mood ADD VALUE 'meh'",
            "ANALYZE t",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
            "DO $$ BEGIN EXECUTE 'VACUUM'; END $$",
            "SELECT 'CREATE INDEX CONCURRENTLY'",
            "CREATE INDEX \"concurrently\" ON t (a)",
        ];
        for sql in fine {
            assert_eq!(refused_in_transaction(sql), None, "{sql}");
        }
    }

    #[test]
    fn flyway_recognises_fewer_than_postgres() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)",
            "DROP INDEX CONCURRENTLY i",
            "VACUUM t",
            "REINDEX SCHEMA s",
            "REINDEX VERBOSE DATABASE d",
            "CREATE DATABASE d",
            "DROP SUBSCRIPTION s",
            "ALTER SYSTEM RESET ALL",
            "DISCARD ALL",
        ] {
            assert!(flyway_non_transactional(sql), "{sql}");
        }
        // Refused by PostgreSQL, yet Flyway runs them in a transaction.
        for sql in [
            "REINDEX TABLE CONCURRENTLY t",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "CLUSTER",
            "ALTER DATABASE d SET TABLESPACE ts",
            "CREATE INDEX i ON t (a)",
        ] {
            assert!(!flyway_non_transactional(sql), "{sql}");
        }
    }

    #[test]
    fn transaction_control() {
        use TxControl::*;
        let cases = [
            (
                "BEGIN",
                Some(Begin {
                    with_options: false,
                }),
            ),
            (
                "begin work",
                Some(Begin {
                    with_options: false,
                }),
            ),
            (
                "START TRANSACTION",
                Some(Begin {
                    with_options: false,
                }),
            ),
            (
                "BEGIN ISOLATION LEVEL SERIALIZABLE",
                Some(Begin { with_options: true }),
            ),
            ("COMMIT", Some(Commit { chain: false })),
            ("END TRANSACTION", Some(Commit { chain: false })),
            ("COMMIT AND CHAIN", Some(Commit { chain: true })),
            ("COMMIT AND NO CHAIN", Some(Commit { chain: false })),
            ("ROLLBACK", Some(Rollback)),
            ("ABORT", Some(Rollback)),
            ("ROLLBACK TO SAVEPOINT s", None),
            ("COMMIT PREPARED 'x'", None),
            ("SAVEPOINT s", None),
            ("SELECT 1", None),
        ];
        for (sql, want) in cases {
            assert_eq!(tx_control(sql), want, "{sql}");
        }
    }

    #[test]
    fn copy_with_inline_data() {
        assert!(copy_from_stdin("COPY t (a, b) FROM stdin"));
        assert!(copy_from_stdin("copy t from STDIN with (format csv)"));
        assert!(!copy_from_stdin("COPY t FROM '/tmp/x.csv'"));
        assert!(!copy_from_stdin("COPY (SELECT 1) TO STDOUT"));
    }

    #[test]
    fn a_call_names_its_procedure_as_the_catalog_spells_it() {
        let named = |sql: &str| called_procedure(sql);
        assert_eq!(
            named("CALL Backfill(1000)"),
            Some((None, "backfill".into()))
        );
        assert_eq!(
            named("call app.\"Move \"\"Rows\"\"\"()"),
            Some((Some("app".into()), "Move \"Rows\"".into()))
        );
        assert_eq!(
            named("-- why\nCALL s . p ()"),
            Some((Some("s".into()), "p".into()))
        );
        assert_eq!(named("SELECT p()"), None);
        assert_eq!(named("CALL a.b.c()"), None);
        assert!(may_end_transaction("BEGIN UPDATE t SET x = 1; Commit; END"));
        assert!(!may_end_transaction("BEGIN PERFORM committed_total(); END"));
    }

    #[test]
    fn which_autocommit_statements_run_as_their_own_transaction() {
        let own = [
            "ALTER TABLE orders ADD COLUMN note text",
            "-- why\nalter table orders alter column id set statistics 500",
            "CREATE INDEX orders_customer ON orders (customer_id)",
            "DROP TABLE old_orders",
            "COMMENT ON COLUMN orders.note IS 'free text'",
            "UPDATE orders SET note = '' WHERE id < 100",
            "TRUNCATE audit",
            "REFRESH MATERIALIZED VIEW CONCURRENTLY totals",
            "DO $$ BEGIN ALTER TABLE items ADD COLUMN c1 int; END $$",
            "do language plpgsql $body$ begin perform 1; end $body$",
            "DO 'BEGIN PERFORM committed_total(); END' LANGUAGE 'plpgsql'",
        ];
        for sql in own {
            assert!(same_in_own_transaction(sql), "{sql}");
        }
        let not = [
            "CREATE INDEX CONCURRENTLY orders_customer ON orders (customer_id)",
            "DROP INDEX CONCURRENTLY orders_customer",
            "VACUUM orders",
            "REINDEX (CONCURRENTLY) TABLE orders",
            "ALTER SYSTEM SET work_mem = '64MB'",
            "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY",
            "CLUSTER",
            "CREATE DATABASE other",
            "COPY orders FROM stdin",
            // Outside a block these may run differently from inside one.
            "ANALYZE orders, accounts",
            "REINDEX TABLE measurements",
            "CLUSTER measurements USING measurements_pkey",
            "ALTER SUBSCRIPTION sub SET PUBLICATION pub",
            "CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION pub",
            // Session state, transaction control and blocks keep their meaning
            // only where the file put them.
            "SET lock_timeout = '1s'",
            "LOCK TABLE orders IN SHARE MODE",
            "BEGIN",
            "COMMIT",
            "CALL backfill()",
            // A DO that may end its transaction: refused inside a block.
            "DO $$ BEGIN UPDATE t SET x = 1; COMMIT; END $$",
            "DO $$ BEGIN EXECUTE 'ROLLBACK'; END $$",
            "DO $$ BEGIN CALL backfill(); END $$",
            "DO LANGUAGE plpython3u $$ plpy.commit() $$",
            "SELECT pg_sleep(1)",
            "ALTER TABLE a ADD COLUMN x int; ALTER TABLE b ADD COLUMN y int",
        ];
        for sql in not {
            assert!(!same_in_own_transaction(sql), "{sql}");
        }
    }
}
