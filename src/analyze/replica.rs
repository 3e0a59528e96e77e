//! Replica lag from server.csv, per step and over the run. A step's WAL
//! reaches the replica after the step wrote it, so the lag a step causes
//! peaks while it runs or after it: a step's window runs from its start
//! until the next step starts (the end of the run, for the last step).

use super::facts::{ReplicaLag, StepFacts};
use crate::record::ServerRow;

/// The peak lag of `rows`, or None when none of them saw a replica.
pub(crate) fn peak<'a>(rows: impl Iterator<Item = &'a ServerRow>) -> Option<ReplicaLag> {
    let mut out: Option<ReplicaLag> = None;
    for r in rows {
        if r.replica_lag_bytes.is_none() && r.replica_lag_ms.is_none() {
            continue;
        }
        let p = out.get_or_insert(ReplicaLag {
            peak_ms: None,
            peak_bytes: None,
            at_ms: r.t_ms,
        });
        if let Some(b) = r.replica_lag_bytes {
            if p.peak_bytes.is_none_or(|x| b > x) {
                p.peak_bytes = Some(b);
                if p.peak_ms.is_none() {
                    p.at_ms = r.t_ms;
                }
            }
        }
        if let Some(ms) = r.replica_lag_ms {
            if p.peak_ms.is_none_or(|x| ms > x) {
                p.peak_ms = Some(ms);
                p.at_ms = r.t_ms;
            }
        }
    }
    out
}

/// Each step's peak, over its window (see the module docs); `end_ms` is
/// the end of the run.
pub(crate) fn per_step(server: &[ServerRow], steps: &mut [StepFacts], end_ms: f64) {
    let starts: Vec<f64> = steps.iter().map(|s| s.start_ms).collect();
    for (i, s) in steps.iter_mut().enumerate() {
        let until = starts
            .iter()
            .skip(i + 1)
            .copied()
            .find(|t| *t > s.start_ms)
            .unwrap_or(f64::INFINITY)
            .min(end_ms.max(s.end_ms) + 1.0);
        s.replica_lag = peak(
            server
                .iter()
                .filter(|r| r.t_ms >= s.start_ms && r.t_ms < until),
        );
    }
}

/// The step whose window holds `t_ms`.
pub(crate) fn step_at(steps: &[StepFacts], t_ms: f64) -> Option<&StepFacts> {
    steps
        .iter()
        .filter(|s| s.start_ms <= t_ms)
        .max_by(|a, b| a.start_ms.total_cmp(&b.start_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t_ms: f64, bytes: Option<u64>, ms: Option<f64>) -> ServerRow {
        ServerRow {
            t_ms,
            wal_bytes: 0,
            dead_tuples: 0,
            table_bytes: 0,
            replica_lag_bytes: bytes,
            replica_lag_ms: ms,
            waiting_backends: 0,
        }
    }

    #[test]
    fn the_peak_is_the_largest_time_lag_and_when_it_was_seen() {
        let rows = [
            row(0.0, Some(0), Some(0.0)),
            row(250.0, Some(9_000_000), Some(12.0)),
            row(500.0, Some(4_000_000), Some(80.5)),
            row(750.0, Some(0), Some(0.0)),
        ];
        let p = peak(rows.iter()).unwrap();
        assert_eq!(p.peak_ms, Some(80.5));
        assert_eq!(p.peak_bytes, Some(9_000_000));
        assert_eq!(p.at_ms, 500.0);
        assert_eq!(peak([row(0.0, None, None)].iter()), None);
        // Bytes alone (replay_lag unknown): the bytes' peak is when.
        let p = peak([row(10.0, Some(5), None), row(20.0, Some(7), None)].iter()).unwrap();
        assert_eq!((p.peak_ms, p.peak_bytes, p.at_ms), (None, Some(7), 20.0));
    }
}
