//! The application's statements from pg_stat_statements, most called first:
//! which are the app's (not utility statements, not queries of the system
//! catalogs, only tables the scenario has), and their parameter types, which
//! the server tells by describing each statement (parsed, never executed).

use tokio_postgres::Client;

use std::collections::BTreeMap;

use super::literals::typed_parameters;
use super::model::{ParamType, Source, Statement, Statements};
use super::session::read_error;
use crate::error::Result;
use crate::scenario::gen::PgType;
use crate::sql::{tokens, TokenKind};

/// Statements proposed at most.
pub const MAX_STATEMENTS: usize = 10;
/// Entries read from pg_stat_statements, most called first.
const MAX_READ: i64 = 500;
/// Why a statement called once is not proposed (also in the header).
pub const ONE_OFF: &str =
    "called only once (a one-off such as a manual query or a script's), not app traffic";

/// The top app statements, or None when pg_stat_statements is not there
/// (not installed in this database, or not loaded by the server).
pub async fn read(client: &Client, source: &Source, loaded: bool) -> Result<Option<Statements>> {
    let row = client
        .query_one(
            "SELECT (SELECT quote_ident(n.nspname) FROM pg_extension e \
                     JOIN pg_namespace n ON n.oid = e.extnamespace \
                     WHERE e.extname = 'pg_stat_statements')",
            &[],
        )
        .await
        .map_err(|e| read_error(e, "the extensions"))?;
    let Some(nsp) = row.get::<_, Option<String>>(0) else {
        return Ok(None);
    };
    // Querying the view of an extension the server did not preload is an
    // error, which would end the transaction.
    if !loaded {
        return Ok(None);
    }
    let view = format!("{nsp}.pg_stat_statements");
    let toplevel: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
                            AND attname = 'toplevel')",
            &[&view],
        )
        .await
        .map_err(|e| read_error(e, "pg_stat_statements"))?
        .get(0);
    let sql = format!(
        "SELECT query, calls FROM {view} \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) {} \
         ORDER BY calls DESC, query LIMIT {MAX_READ}",
        if toplevel { "AND toplevel" } else { "" }
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| read_error(e, "pg_stat_statements"))?;
    // The views written are the scenario's too.
    let views = super::views::written(source).names;
    let tables: Vec<&str> = source
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .chain(views.iter().map(String::as_str))
        .collect();
    let mut top = Vec::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        let query: String = r.get(0);
        let calls: i64 = r.get(1);
        if let Err(why) = app_statement(&query, &source.relations, &tables) {
            *skipped.entry(why).or_default() += 1;
            continue;
        }
        // Run once since the statistics were reset: a manual query, a
        // migration's or a script's, not traffic the app keeps sending.
        if calls <= 1 {
            *skipped.entry(ONE_OFF.into()).or_default() += 1;
            continue;
        }
        if top.len() == MAX_STATEMENTS {
            *skipped
                .entry(format!("beyond the {MAX_STATEMENTS} most called"))
                .or_default() += 1;
            continue;
        }
        let (query, original, constants) = match typed_parameters(&query) {
            Some(m) => (m.sql, Some(query), m.constants),
            None => (query, None, Vec::new()),
        };
        let params = describe(client, &query).await?;
        top.push(Statement {
            query,
            original,
            constants,
            calls,
            params,
        });
    }
    Ok(Some(Statements {
        top,
        skipped: skipped.into_iter().collect(),
    }))
}

/// The parameter types of `query`, from the server's description of it. A
/// statement the server cannot prepare (pg_stat_statements' normalized text
/// is not always valid SQL; literals.rs mends the typed literals) is rolled
/// back to a savepoint so the transaction goes on.
async fn describe(client: &Client, query: &str) -> Result<Result<Vec<ParamType>, String>> {
    client
        .batch_execute("SAVEPOINT pgrehearse_describe")
        .await
        .map_err(|e| read_error(e, "a savepoint"))?;
    match client.prepare(query).await {
        Ok(st) => Ok(Ok(st
            .params()
            .iter()
            .map(|ty| ParamType {
                oid: ty.oid(),
                name: ty.name().to_string(),
                supported: PgType::from_type(ty).is_some(),
            })
            .collect())),
        Err(e) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT pgrehearse_describe")
                .await
                .map_err(|e| read_error(e, "a savepoint"))?;
            Ok(Err(crate::pg::error_text(&e)))
        }
    }
}

/// Whether a statement is the app's: a query or DML (not a utility
/// statement), not on the system catalogs, naming at least one table the
/// scenario has and no relation of the source it does not. Err says why not.
pub fn app_statement(query: &str, relations: &[String], tables: &[&str]) -> Result<(), String> {
    let words = identifiers(query);
    let first = words.first().map(String::as_str).unwrap_or("");
    if !matches!(
        first,
        "select" | "insert" | "update" | "delete" | "with" | "values" | "table"
    ) {
        return Err("not a query or DML statement".into());
    }
    if words.iter().any(|w| {
        // A table of the scenario may be called pg_something too.
        (w.starts_with("pg_") && !tables.contains(&w.as_str()) && !relations.contains(w))
            || w == "information_schema"
    }) {
        return Err("reads the system catalogs".into());
    }
    let mut uses_table = false;
    for w in &words {
        if tables.contains(&w.as_str()) {
            uses_table = true;
        } else if relations.contains(w) {
            return Err(format!("uses `{w}`, which the scenario does not have"));
        }
    }
    if !uses_table {
        return Err("uses none of the scenario's tables".into());
    }
    Ok(())
}

/// The words (lowercased) and quoted identifiers (as written) of a statement.
pub fn identifiers(query: &str) -> Vec<String> {
    tokens(query)
        .into_iter()
        .filter_map(|t| {
            let text = &query[t.start..t.end];
            match t.kind {
                TokenKind::Word => Some(text.to_lowercase()),
                TokenKind::QuotedIdent => Some(
                    text.strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .unwrap_or(text)
                        .replace("\"\"", "\""),
                ),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_statements_are_queries_on_the_scenarios_tables() {
        let rel = vec![
            "orders".to_string(),
            "audit".to_string(),
            "Weird".to_string(),
        ];
        let t = ["orders", "Weird"];
        assert!(app_statement("SELECT * FROM orders WHERE id = $1", &rel, &t).is_ok());
        assert!(app_statement("with x as (select 1) select * from \"Weird\"", &rel, &t).is_ok());
        assert!(app_statement("UPDATE orders SET s = $1", &rel, &t).is_ok());
        assert!(app_statement("BEGIN", &rel, &t).is_err());
        assert!(app_statement("SET search_path = $1", &rel, &t).is_err());
        assert!(app_statement("SELECT * FROM pg_class", &rel, &t).is_err());
        assert!(
            app_statement("SELECT * FROM orders JOIN audit USING (id)", &rel, &t)
                .unwrap_err()
                .contains("`audit`")
        );
        assert!(app_statement("SELECT $1", &rel, &t).is_err());
        assert!(app_statement("/* app */ select * from orders", &rel, &t).is_ok());
    }
}
