//! The migration's own WAL, statement by statement, from
//! pg_stat_statements: the probe snapshots its counters (`calls`,
//! `wal_bytes` per query id, top-level statements of this database) before
//! and after every statement; the entry whose `calls` went up and whose text
//! is the statement's (constants aside) holds the statement's WAL.
//!
//! Exact when that entry's `calls` went up by one: nothing else ran that
//! normalized statement meanwhile. When app sessions ran the same normalized
//! statement, or pg_stat_statements did not record the statement (it
//! failed, or `track_utility` is off), the figure is unknown, never the
//! cluster's WAL.
//!
//! pg_stat_statements must be preloaded (the local and docker backends do
//! it); the extension is created in its own schema `pgrehearse` of the work
//! database unless it is there already. A url target without it has no
//! per-statement WAL, and run.json says why.

use std::collections::HashMap;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::Executor;
use crate::record::Unknown;
use crate::sql::TokenKind;

/// The schema pgrehearse creates the extension in.
const SCHEMA: &str = "pgrehearse";

/// Whether (and through what) the migration's own WAL can be attributed.
#[derive(Debug, Clone, Default)]
pub struct WalSource {
    /// The set-returning function to read, schema-qualified.
    function: Option<String>,
    /// run.json `wal_attribution`.
    pub attribution: Option<String>,
    /// run.json `wal_unavailable`.
    pub unavailable: Option<String>,
}

impl WalSource {
    /// No attribution possible, because `why`.
    pub fn unavailable(why: impl Into<String>) -> WalSource {
        WalSource {
            unavailable: Some(why.into()),
            ..WalSource::default()
        }
    }

    /// `schema.pg_stat_statements`, when it can be read.
    pub fn pgss_function(&self) -> Option<&str> {
        self.function.as_deref()
    }

    /// Find pg_stat_statements in the work database, creating it where it
    /// is loaded but not created, and check that it answers.
    pub async fn prepare(client: &Client) -> WalSource {
        match find_or_create(client).await {
            Ok(w) => w,
            Err(why) => WalSource::unavailable(why),
        }
    }
}

async fn find_or_create(client: &Client) -> Result<WalSource, String> {
    let text = |e: tokio_postgres::Error| crate::pg::error_text(&e);
    // Settings any role may read (shared_preload_libraries is not one: it
    // needs pg_read_all_settings, so whether the library is loaded is
    // decided by reading pg_stat_statements itself, below).
    let settings = client
        .query_one(
            "SELECT coalesce(current_setting('pg_stat_statements.track_utility', true), ''), \
             current_setting('compute_query_id')",
            &[],
        )
        .await
        .map_err(text)?;
    let (track_utility, query_id): (String, String) = (settings.get(0), settings.get(1));
    if query_id == "off" {
        return Err("compute_query_id is off, so pg_stat_statements records nothing".into());
    }
    // Where the role may see it (pg_settings hides it otherwise), a
    // library not loaded is said as plainly as it is.
    if let Some(preload) = visible_preload(client).await {
        if !preload.split(',').any(|l| l.trim() == "pg_stat_statements") {
            return Err(not_loaded(&format!(
                " (shared_preload_libraries = '{preload}')"
            )));
        }
    }
    let found = find(client).await.map_err(text)?;
    let (schema, version) = match found {
        Some(f) => f,
        None => {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; \
                     CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA {SCHEMA}"
                ))
                .await
                .map_err(|e| {
                    format!(
                        "the extension pg_stat_statements is not in the rehearsal's database and \
                         this role could not create it ({}); a superuser can create it in \
                         template1, which every new database copies",
                        text(e)
                    )
                })?;
            find(client)
                .await
                .map_err(text)?
                .ok_or("the extension pg_stat_statements vanished after CREATE EXTENSION")?
        }
    };
    let function = format!("{}.pg_stat_statements", crate::pg::quote_ident(&schema));
    client
        .query_one(&format!("SELECT count(*) FROM {function}(false)"), &[])
        .await
        .map_err(|e| match e.code() {
            // "pg_stat_statements must be loaded via shared_preload_libraries"
            Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => not_loaded(""),
            _ => format!(
                "pg_stat_statements cannot be read by this role: {}",
                text(e)
            ),
        })?;
    let utility = if track_utility == "off" {
        " (pg_stat_statements.track_utility is off: DDL statements stay unknown)"
    } else {
        ""
    };
    Ok(WalSource {
        function: Some(function),
        attribution: Some(format!(
            "pg_stat_statements {version} in schema {schema}: each statement's own wal_bytes{utility}"
        )),
        unavailable: None,
    })
}

/// shared_preload_libraries where the role may read it (superusers,
/// pg_read_all_settings): pg_settings shows no row otherwise.
async fn visible_preload(client: &Client) -> Option<String> {
    client
        .query_opt(
            "SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'",
            &[],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
}

fn not_loaded(detail: &str) -> String {
    format!(
        "pg_stat_statements is not loaded by the server{detail}: add it to \
         shared_preload_libraries to measure each statement's own WAL"
    )
}

async fn find(client: &Client) -> Result<Option<(String, String)>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT n.nspname::text, e.extversion FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

impl Executor {
    /// Fill each statement's `wal_bytes` from the pg_stat_statements entries
    /// that moved while it ran, now that their texts can be read (after the
    /// last step: no lock is held).
    pub(super) async fn attribute_wal(&mut self) {
        let Some(function) = self.ctx.wal.pgss_function() else {
            return;
        };
        if self.ctx.abort.is_cancelled() {
            return self
                .leave_wal_unknown("the rehearsal was interrupted before it was attributed");
        }
        let mut ids: Vec<i64> = self
            .pgss_changes
            .iter()
            .flat_map(|(_, ch)| ch.iter().map(|c| c.queryid))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let texts: Result<HashMap<i64, String>, String> = self
            .client
            .query(
                &format!(
                    "SELECT queryid, query FROM {function}(true) WHERE queryid = ANY($1) AND toplevel \
                     AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                &[&ids],
            )
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .map_err(|e| {
                format!(
                    "the texts of pg_stat_statements could not be read: {}",
                    crate::pg::error_text(&e)
                )
            });
        let texts = match texts {
            Ok(t) => t,
            Err(why) => return self.leave_wal_unknown(&why),
        };
        for (idx, changes) in std::mem::take(&mut self.pgss_changes) {
            let row = &mut self.run.statements[idx];
            match statement_wal(&row.sql, row.outcome == "ok", &changes, &texts) {
                Ok(bytes) => row.wal_bytes = Some(bytes),
                Err(why) => add_unknown(row, &why),
            }
        }
    }

    /// Every statement still waiting for its WAL stays unknown, because `why`.
    fn leave_wal_unknown(&mut self, why: &str) {
        for (idx, _) in std::mem::take(&mut self.pgss_changes) {
            add_unknown(&mut self.run.statements[idx], why);
        }
    }
}

fn add_unknown(row: &mut crate::record::StatementRow, why: &str) {
    let mut u = Unknown::parse(&row.unknown);
    u.add("wal_bytes", why);
    row.unknown = u.to_string();
}

/// pg_stat_statements counters of this database's top-level statements:
/// query id → (calls, wal_bytes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgssSnapshot(HashMap<i64, (i64, u64)>);

/// An entry that moved between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct PgssChange {
    pub queryid: i64,
    pub calls: i64,
    pub wal_bytes: u64,
}

impl PgssSnapshot {
    /// The probe's `queryid:calls:wal_bytes` lines.
    pub fn parse(lines: &[String]) -> PgssSnapshot {
        PgssSnapshot(
            lines
                .iter()
                .filter_map(|l| {
                    let mut it = l.split(':');
                    let q = it.next()?.parse().ok()?;
                    let c = it.next()?.parse().ok()?;
                    let w = it.next()?.parse::<f64>().ok()?;
                    Some((q, (c, w.max(0.0) as u64)))
                })
                .collect(),
        )
    }

    /// Entries called since `before` (new ones included).
    pub fn changes_since(&self, before: &PgssSnapshot) -> Vec<PgssChange> {
        let mut out: Vec<PgssChange> = self
            .0
            .iter()
            .filter_map(|(q, (calls, wal))| {
                let (c0, w0) = before.0.get(q).copied().unwrap_or((0, 0));
                (*calls > c0).then(|| PgssChange {
                    queryid: *q,
                    calls: calls - c0,
                    wal_bytes: wal.saturating_sub(w0),
                })
            })
            .collect();
        out.sort_by_key(|c| c.queryid);
        out
    }
}

/// A statement's WAL from the entries that moved while it ran and the texts
/// of their queries: Ok(bytes), or why it is unknown.
pub fn statement_wal(
    sql: &str,
    ok: bool,
    changes: &[PgssChange],
    texts: &HashMap<i64, String>,
) -> Result<u64, String> {
    let mine: Vec<&PgssChange> = changes
        .iter()
        .filter(|c| {
            texts
                .get(&c.queryid)
                .is_some_and(|t| same_statement(sql, t))
        })
        .collect();
    match mine.as_slice() {
        [one] if one.calls == 1 => Ok(one.wal_bytes),
        [one] => Err(format!(
            "pg_stat_statements counted {} runs of this normalized statement while it ran \
             (app sessions ran it too), so its own WAL cannot be told apart",
            one.calls
        )),
        [] if !ok => Err("pg_stat_statements records only statements that complete".into()),
        [] => Err("pg_stat_statements recorded no entry for it (track_utility off, or the entry was evicted)".into()),
        _ => Err("several pg_stat_statements entries match it".into()),
    }
}

/// Is `recorded` (pg_stat_statements' text, constants replaced by `$n`)
/// the statement `sent`? Token by token, ignoring whitespace, comments, a
/// trailing semicolon and the case of words; a constant (string, number,
/// `true`/`false`/`null`, `$n`) on either side matches a constant on the
/// other, and a minus sign right before one is part of it.
pub fn same_statement(sent: &str, recorded: &str) -> bool {
    skeleton(sent) == skeleton(recorded)
}

fn skeleton(sql: &str) -> Vec<String> {
    const CONSTANT: &str = "\u{0}?";
    let toks = crate::sql::tokens(sql);
    let mut out: Vec<String> = Vec::new();
    for t in &toks {
        let text = &sql[t.start..t.end];
        let piece = match t.kind {
            TokenKind::Whitespace | TokenKind::Comment | TokenKind::Semicolon => continue,
            TokenKind::String | TokenKind::DollarString | TokenKind::Param(_) => CONSTANT.into(),
            TokenKind::Other if text.starts_with(|c: char| c.is_ascii_digit()) => CONSTANT.into(),
            TokenKind::Word
                if ["true", "false", "null"]
                    .iter()
                    .any(|w| text.eq_ignore_ascii_case(w)) =>
            {
                CONSTANT.into()
            }
            TokenKind::Word => text.to_ascii_lowercase(),
            _ => text.to_string(),
        };
        if piece == CONSTANT && out.last().is_some_and(|p| p == "-") {
            out.pop();
        }
        // A typed string's prefix (E'', B'', X'', N'') is part of it.
        if piece == CONSTANT
            && matches!(t.kind, TokenKind::String)
            && out
                .last()
                .is_some_and(|p| matches!(p.as_str(), "e" | "b" | "x" | "n"))
        {
            out.pop();
        }
        out.push(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_matches_its_normalized_text() {
        assert!(same_statement(
            "UPDATE orders SET s2 = s WHERE id > 10000 AND id <= 20000 AND (s2 IS NULL)",
            "UPDATE orders SET s2 = s WHERE id > $1 AND id <= $2 AND (s2 IS NULL)"
        ));
        assert!(same_statement(
            "ALTER TABLE t ADD COLUMN c int DEFAULT -7;",
            "alter table t  add column c int default $1"
        ));
        assert!(same_statement(
            "CREATE INDEX CONCURRENTLY i ON t (c) WHERE s = 'new'",
            "CREATE INDEX CONCURRENTLY i ON t (c) WHERE s = 'new'"
        ));
        assert!(same_statement(
            "UPDATE t SET flag = true, note = E'x' WHERE id = 1",
            "UPDATE t SET flag = $1, note = $2 WHERE id = $3"
        ));
        assert!(!same_statement(
            "UPDATE t SET v = v + 1 WHERE id = $1",
            "UPDATE t SET v = v - 1 WHERE id = $1"
        ));
        assert!(!same_statement(
            "CREATE INDEX i ON t (c)",
            "CREATE INDEX j ON t (c)"
        ));
        assert!(!same_statement("SELECT 1", "SELECT 1, 2"));
    }

    #[test]
    fn changes_are_the_entries_called_in_between() {
        let before = PgssSnapshot::parse(&["1:5:100".into(), "2:1:0".into()]);
        let after = PgssSnapshot::parse(&["1:6:8292".into(), "2:1:0".into(), "3:1:64".into()]);
        let ch = after.changes_since(&before);
        assert_eq!(
            ch,
            [
                PgssChange {
                    queryid: 1,
                    calls: 1,
                    wal_bytes: 8192
                },
                PgssChange {
                    queryid: 3,
                    calls: 1,
                    wal_bytes: 64
                }
            ]
        );
    }

    #[test]
    fn a_statement_shared_with_the_app_is_unknown_not_summed() {
        let texts = HashMap::from([
            (1, "UPDATE t SET v = $1 WHERE id = $2".to_string()),
            (2, "SELECT v FROM t WHERE id = $1".to_string()),
        ]);
        let sql = "UPDATE t SET v = 0 WHERE id = 5";
        let alone = [
            PgssChange {
                queryid: 1,
                calls: 1,
                wal_bytes: 120,
            },
            PgssChange {
                queryid: 2,
                calls: 40,
                wal_bytes: 0,
            },
        ];
        assert_eq!(statement_wal(sql, true, &alone, &texts), Ok(120));
        let shared = [PgssChange {
            queryid: 1,
            calls: 3,
            wal_bytes: 360,
        }];
        let e = statement_wal(sql, true, &shared, &texts).unwrap_err();
        assert!(e.contains("3 runs"), "{e}");
        let failed = statement_wal(sql, false, &[], &texts).unwrap_err();
        assert!(failed.contains("complete"), "{failed}");
    }
}
