//! steps.csv: each step's footprint at its boundaries (catalog.rs) with its
//! statements' rewrite and WAL summed — unknown when any statement's is.

use super::catalog::{Boundary, Footprint};
use super::Executor;
use crate::record::{StatementRow, StatementTotals, StepRow, Unknown};

/// A step's footprint before and after it, or why unknown.
#[derive(Debug, Clone, Default)]
pub(super) struct StepBoundaries {
    before: Option<Footprint>,
    after: Option<Footprint>,
    unknown_before: Option<String>,
    unknown_after: Option<String>,
}

impl StepBoundaries {
    pub(super) fn of(before: &Boundary, after: &Boundary) -> StepBoundaries {
        StepBoundaries {
            before: before.footprint,
            after: after.footprint,
            unknown_before: before.unknown.clone(),
            unknown_after: after.unknown.clone(),
        }
    }
}

/// The boundary after a step the rehearsal interrupted: not read.
pub(super) fn interrupted() -> Boundary {
    Boundary {
        unknown: Some("the rehearsal was interrupted".into()),
        ..Boundary::default()
    }
}

impl Executor {
    /// The relations and footprint now (the session holds no lock).
    pub(super) async fn boundary(&self) -> Boundary {
        match &self.catalog {
            Ok(c) => {
                c.read(&self.client, &self.ctx.tables, &self.ctx.sized)
                    .await
            }
            Err(why) => Boundary {
                unknown: Some(why.clone()),
                ..Boundary::default()
            },
        }
    }

    /// One steps.csv row per executed step.
    pub(super) fn step_rows(&self) -> Vec<StepRow> {
        self.run
            .steps
            .iter()
            .zip(&self.boundaries)
            .map(|(span, b)| {
                let stmts: Vec<&StatementRow> = self
                    .run
                    .statements
                    .iter()
                    .filter(|s| s.phase == span.phase && s.step == span.step)
                    .collect();
                let mut unknown = Unknown::default();
                // steps.csv has no seq_scans column: its reason is not kept.
                let totals = StatementTotals::of(&stmts, |field, why| {
                    if field != "seq_scans" {
                        unknown.add(field, why);
                    }
                });
                let side =
                    |f: &Option<Footprint>, why: &Option<String>, field: &str, u: &mut Unknown| {
                        if f.is_none() {
                            u.add(field, why.clone().unwrap_or_else(|| "not read".into()));
                        }
                    };
                side(
                    &b.before,
                    &b.unknown_before,
                    "table_bytes_before",
                    &mut unknown,
                );
                side(
                    &b.before,
                    &b.unknown_before,
                    "index_bytes_before",
                    &mut unknown,
                );
                side(
                    &b.after,
                    &b.unknown_after,
                    "table_bytes_after",
                    &mut unknown,
                );
                side(
                    &b.after,
                    &b.unknown_after,
                    "index_bytes_after",
                    &mut unknown,
                );
                side(
                    &b.after,
                    &b.unknown_after,
                    "dead_tuples_after",
                    &mut unknown,
                );
                StepRow {
                    phase: span.phase.clone(),
                    step: span.step.clone(),
                    start_ms: crate::pg::round3(span.start_ms),
                    end_ms: crate::pg::round3(span.end_ms),
                    outcome: span.outcome.clone(),
                    rewrote: totals.rewrote,
                    table_bytes_before: b.before.map(|f| f.table_bytes),
                    table_bytes_after: b.after.map(|f| f.table_bytes),
                    index_bytes_before: b.before.map(|f| f.index_bytes),
                    index_bytes_after: b.after.map(|f| f.index_bytes),
                    dead_tuples_after: b.after.map(|f| f.dead_tuples),
                    wal_bytes: totals.wal_bytes,
                    cluster_wal_bytes: totals.cluster_wal_bytes,
                    unknown: unknown.to_string(),
                }
            })
            .collect()
    }
}
