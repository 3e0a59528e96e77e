//! Reading pg_stats: per column the share of NULLs, the number of distinct
//! values, the most common values with their frequencies, the histogram
//! bounds and the average width. Only what ANALYZE already gathered: not a
//! row of the tables is read.

use tokio_postgres::Client;

use super::model::{ColumnStats, Table};
use super::session::read_error;
use crate::error::Result;

/// Fill each column's statistics. A partitioned table's are those ANALYZE
/// gathers over all its partitions (`inherited`). The value arrays are read
/// as text, except for arrays and geometric types (no scalar text form).
pub async fn fill(client: &Client, tables: &mut [Table]) -> Result<()> {
    for t in tables.iter_mut() {
        let rows = client
            .query(
                "SELECT s.attname::text, s.null_frac::float8, s.avg_width, s.n_distinct::float8, \
                        CASE WHEN ty.typcategory NOT IN ('A', 'G') \
                             THEN s.most_common_vals::text::text[] END, \
                        s.most_common_freqs::float8[], \
                        CASE WHEN ty.typcategory NOT IN ('A', 'G') \
                             THEN s.histogram_bounds::text::text[] END, \
                        s.correlation::float8 \
                 FROM pg_stats s \
                 JOIN pg_namespace n ON n.nspname = s.schemaname \
                 JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname \
                 JOIN pg_type ty ON ty.oid = a.atttypid \
                 WHERE c.oid = $1 AND s.inherited = $2",
                &[&t.oid, &(t.kind == 'p')],
            )
            .await
            .map_err(|e| read_error(e, &format!("the statistics of {}", t.name)))?;
        for r in rows {
            let name: String = r.get(0);
            let Some(col) = t.columns.iter_mut().find(|c| c.name == name) else {
                continue;
            };
            col.stats = Some(ColumnStats {
                null_frac: r.get(1),
                avg_width: r.get(2),
                n_distinct: r.get(3),
                mcv: r.get::<_, Option<Vec<String>>>(4).unwrap_or_default(),
                mcf: r.get::<_, Option<Vec<f64>>>(5).unwrap_or_default(),
                histogram: r.get::<_, Option<Vec<String>>>(6).unwrap_or_default(),
                correlation: r.get(7),
            });
        }
    }
    Ok(())
}
