//! Backfill steps: `UPDATE ... SET <set> WHERE key > lo AND key <= hi AND
//! (<where>)`, one transaction per batch, keyset-paged, each batch retried on
//! a lock timeout like any step.

use super::failure::Failure;
use super::{Executor, Outgoing, StepSpan};
use crate::scenario::{BackfillPlan, PhasePlan, StepPlan};

impl Executor {
    pub(super) async fn run_backfill(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        b: &BackfillPlan,
        span: &mut StepSpan,
    ) -> Result<(), Failure> {
        // Keyset paging: each batch ends at the key `batch` rows further on,
        // so sparse or skewed keys cost no empty batches.
        let sql_err = |e: tokio_postgres::Error| Failure::from_pg(&e);
        let bound_sql = format!(
            "SELECT max({k})::int8 FROM (SELECT {k} FROM {t} WHERE {k} > $1::int8 ORDER BY {k} LIMIT {n}) s",
            k = b.key,
            t = b.table,
            n = b.batch.max(1)
        );
        let bound = self.client.prepare(&bound_sql).await.map_err(sql_err)?;
        let max_sql = format!("SELECT max({k})::int8 FROM {t}", k = b.key, t = b.table);
        let max: Option<i64> = self
            .client
            .query_one(max_sql.as_str(), &[])
            .await
            .map_err(sql_err)?
            .get(0);
        let Some(max) = max else { return Ok(()) };
        let mut from = i64::MIN;
        let mut batch_no = 0u64;
        loop {
            let hi: Option<i64> = self
                .client
                .query_one(&bound, &[&from])
                .await
                .map_err(sql_err)?
                .get(0);
            let Some(to) = hi else { break };
            batch_no += 1;
            let mut sql = format!(
                "UPDATE {t} SET {set} WHERE {k} > {from} AND {k} <= {to}",
                t = b.table,
                set = b.set,
                k = b.key
            );
            if let Some(w) = &b.where_clause {
                sql.push_str(&format!(" AND ({w})"));
            }
            let progress = format!(
                "{} / {} (batch {batch_no}, key {to} of {max})",
                phase.name, step.name
            );
            self.run_with_retries(
                phase,
                step,
                &[Outgoing::inline(&sql)],
                true,
                span,
                &progress,
            )
            .await?;
            from = to;
            if from < max && !b.pause.is_zero() && !self.sleep(b.pause).await {
                return Err(Failure::Aborted);
            }
        }
        Ok(())
    }
}
