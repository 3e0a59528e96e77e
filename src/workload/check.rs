//! Before any traffic: every query an app live from the start sends is
//! prepared on the schema as seeded (and set up by `[migrations]`), and a
//! value of each of its generators is encoded for the parameter type the
//! server inferred. A query that cannot run there — a relation or column
//! that does not exist, a syntax error, a generator that cannot fill its
//! parameter — is the scenario's mistake, reported as one (exit 2, at
//! `workload.query[i].sql`), not a rehearsal of nothing but failing
//! requests. Queries only later app versions send are not checked: they may
//! need what the migration adds.

use std::path::Path;

use postgres_types::{ToSql, Type};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::ConnInfo;
use crate::error::{Error, Result, ScenarioError};
use crate::scenario::gen::Value;
use crate::scenario::WorkloadPlan;

/// Check the queries of `live` apps (all of them when `live` is empty)
/// against the database `conn` reaches; every problem at once.
pub async fn check_queries(
    conn: &ConnInfo,
    plan: &WorkloadPlan,
    live: &[String],
    scenario: &Path,
) -> Result<()> {
    let client = conn.connect(crate::rehearsal::HARNESS_APP_NAME).await?;
    let mut problems = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (i, q) in plan.queries.iter().enumerate() {
        if !live.is_empty() && !q.apps.iter().any(|a| live.contains(a)) {
            continue;
        }
        let at = |field: String, message: String| ScenarioError {
            file: scenario.to_path_buf(),
            line: 0,
            column: 0,
            field: format!("workload.query[{i}].{field}"),
            message: format!("query `{}`: {message}", q.name),
        };
        let problem = |message: String| at("sql".into(), message);
        let statement = match client.prepare(&q.sql).await {
            Ok(s) => s,
            Err(e) => {
                problems.push(problem(format!(
                    "cannot run on the schema as seeded: {}",
                    crate::pg::error_text(&e)
                )));
                continue;
            }
        };
        let types = statement.params();
        if types.len() != q.params.len() {
            problems.push(problem(format!(
                "the server reads {} parameter(s) in it and `params` has {}",
                types.len(),
                q.params.len()
            )));
            continue;
        }
        for (n, (g, ty)) in q.params.iter().zip(types).enumerate() {
            let value = g.generate(0, &mut rng);
            if let Err(why) = encodes(&value, ty) {
                problems.push(at(
                    format!("params[{n}]"),
                    format!(
                        "${} is a {ty} for the server, and its generator's values do not fit: {why}",
                        n + 1
                    ),
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Scenario(crate::scenario::locate_fields(problems)))
    }
}

/// Can `value` be sent as a `ty` parameter, as the app's connections send
/// it (binary where the type takes it)?
fn encodes(value: &Value, ty: &Type) -> std::result::Result<(), String> {
    if *value == Value::Null || !<Value as ToSql>::accepts(ty) {
        // Sent as text: the server parses it; nothing to check here.
        return Ok(());
    }
    let mut buf = bytes::BytesMut::new();
    value
        .to_sql_checked(ty, &mut buf)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
