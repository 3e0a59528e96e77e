//! Seeding (interim: the full parallel binary COPY lands from the seed branch).

use crate::error::Result;
use crate::scenario::Scenario;
use crate::target::ConnInfo;

#[derive(Debug, Clone)]
pub struct SeedReport {
    pub rows: Vec<(String, u64)>,
    pub duration: std::time::Duration,
}

pub async fn seed(
    conn: &ConnInfo,
    s: &Scenario,
    _seed: u64,
    _progress: bool,
) -> Result<SeedReport> {
    let t = std::time::Instant::now();
    let (client, connection) = conn.config().connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    for t in &s.tables {
        client.batch_execute(&t.create).await?;
        let cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        let _ = cols;
        client
            .batch_execute(&format!(
                "INSERT INTO {} (id) SELECT g FROM generate_series(1, {}) g",
                t.name, t.rows
            ))
            .await?;
        for a in &t.after_seed {
            client.batch_execute(a).await?;
        }
    }
    for sql in &s.seed_sql {
        client.batch_execute(sql).await?;
    }
    Ok(SeedReport {
        rows: s.tables.iter().map(|t| (t.name.clone(), t.rows)).collect(),
        duration: t.elapsed(),
    })
}
