//! A step that wrote a lot of WAL: replicas and archiving have to carry it,
//! and in production it grows with the table.
//!
//! - **Reads** statements.csv `wal_bytes` summed over the step — the WAL its
//!   statements wrote themselves (pg_stat_statements), never the cluster's
//!   (`cluster_wal_bytes`, app writes included) — and server.csv replica lag
//!   while it ran.
//! - **Fires when** the step's own WAL is known and at least the WAL
//!   threshold (16 MiB); info, a warning from 1 GiB. Unknown WAL fires
//!   nothing (the report says it is unknown, and why).
//! - **Advises** for an UPDATE or a rewrite, its batched or non-rewriting
//!   form; otherwise to expect the WAL times the size ratio in production and
//!   check replica lag and archiving.

use super::finding::{fmt_bytes, Finding, FindingKind, SafePattern, Severity};
use super::patterns;
use super::rule::{Evidence, Rule, StepEvidence};

pub const KIND: FindingKind = FindingKind::new("wal_volume");

pub const RULE: Rule = Rule::step(KIND, check);

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    let facts = st.facts;
    let Some(wal_bytes) = facts.wal_bytes.filter(|w| *w >= ev.th.wal_bytes) else {
        return Vec::new();
    };
    let secs = (facts.duration_ms / 1000.0).max(0.001);
    let rel = facts.strongest_lock.as_ref().map(|l| l.relation.clone());
    // The advice is about the statement that wrote the WAL: the rewrite, or
    // the one that wrote the most.
    let heaviest = st
        .statements
        .iter()
        .filter(|s| s.rewrote == Some(true))
        .chain(st.statements.iter())
        .max_by_key(|s| (s.rewrote == Some(true), s.wal_bytes.unwrap_or(0)));
    let sql = heaviest.map_or(st.first_sql(), |s| s.sql.as_str());
    // One statement run many times — the same text, or the same but for
    // its numbers (a backfill's bounds) —: batches already.
    let shape = |sql: &str| sql.replace(|c: char| c.is_ascii_digit(), "");
    let first_shape = st.statements.first().map(|s| shape(&s.sql));
    let batched = facts.statements > 1
        && (facts.sql.len() == 1
            || st.statements.iter().all(|s| Some(shape(&s.sql)) == first_shape));
    let update = sql.trim_start().to_ascii_uppercase().starts_with("UPDATE");
    let safe = if batched {
        SafePattern {
            advice: "The step already runs in batches; its WAL is the change itself. Spread it: pause between batches (longer where replicas lag), and run it off-peak; expect this WAL times the size ratio in production.".into(),
            sql: "-- between batches, e.g.\nSELECT pg_sleep(0.05);".into(),
        }
    } else if update || heaviest.is_some_and(|s| s.rewrote == Some(true)) {
        patterns::for_statement(sql, rel.as_deref().unwrap_or("t"))
    } else {
        SafePattern {
            advice: "Expect this WAL in production multiplied by the size ratio: check replica lag and archive throughput, run it off-peak, and split batch work into short transactions with pauses (a backfill step).".into(),
            sql: "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '<lsn before>')); -- measure on a staging copy".into(),
        }
    };
    let lag = ev
        .rec
        .server
        .iter()
        .filter(|s| s.t_ms >= facts.start_ms && s.t_ms <= facts.end_ms + 1000.0)
        .filter_map(|s| s.replica_lag_bytes)
        .max();
    let severity = if wal_bytes >= 1024 * 1024 * 1024 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let title = format!("{} of WAL written by {}", fmt_bytes(wal_bytes), facts.step);
    let seen = format!(
        "{} of WAL in {:.1} s ({}/s, written by the step's own statements){}",
        fmt_bytes(wal_bytes),
        secs,
        fmt_bytes((wal_bytes as f64 / secs) as u64),
        lag.map(|l| format!("; replica lag reached {}", fmt_bytes(l)))
            .unwrap_or_default()
    );
    vec![st.finding(KIND, severity, title, seen).on(rel).instead(safe)]
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::{lock_on, record, stmt};
    use crate::record::RunRecord;

    /// A batch UPDATE writes 64 MiB of WAL in 2 s.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        let mut s = stmt(
            "backfill",
            "UPDATE orders SET s2 = s WHERE id > 0 AND id <= 10000",
            1000.0,
            3000.0,
        );
        s.wal_bytes = Some(64 * 1024 * 1024);
        s.cluster_wal_bytes = Some(80 * 1024 * 1024);
        r.statements.push(s);
        r
    }

    /// ADD COLUMN writes 4 KiB itself while app traffic makes the cluster
    /// write 64 MiB: the app's WAL is not the step's.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = record();
        let mut s = stmt(
            "small",
            "ALTER TABLE orders ADD COLUMN y int",
            3100.0,
            3101.0,
        );
        s.wal_bytes = Some(4096);
        s.cluster_wal_bytes = Some(64 * 1024 * 1024);
        r.statements.push(s);
        r
    }

    #[test]
    fn advises_on_the_statement_that_wrote_it_and_not_batches_to_a_batched_step() {
        // An index build, then a rewrite that wrote the WAL.
        let mut r = record();
        let mut idx = stmt("both", "CREATE INDEX t_v ON orders (v)", 1000.0, 1100.0);
        idx.wal_bytes = Some(1 << 20);
        let mut alter = stmt("both", "ALTER TABLE orders ALTER COLUMN v TYPE bigint", 1100.0, 3000.0);
        alter.wal_bytes = Some(60 << 20);
        alter.rewrote = Some(true);
        r.statements.extend([idx, alter]);
        r.locks
            .push(lock_on("orders", "both", "AccessExclusiveLock", 1100.0, 3000.0));
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert!(f.safe_pattern.advice.contains("expand/contract"), "{}", f.safe_pattern.advice);
        assert!(f.safe_pattern.sql.contains("WHERE id > $1 AND id <= $2"), "{}", f.safe_pattern.sql);
        // The batches go by the table's own key where the run read it.
        r.info
            .as_mut()
            .unwrap()
            .primary_keys
            .insert("orders".into(), "order_id".into());
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert!(
            f.safe_pattern.sql.contains("WHERE order_id > $1 AND order_id <= $2"),
            "{}",
            f.safe_pattern.sql
        );
        // Keys read, none of one column for this table: a placeholder.
        let keys = &mut r.info.as_mut().unwrap().primary_keys;
        keys.clear();
        keys.insert("customers".into(), "id".into());
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert!(
            f.safe_pattern.sql.contains("WHERE key_col > $1 AND key_col <= $2"),
            "{}",
            f.safe_pattern.sql
        );
        // A backfill: one UPDATE, batch after batch.
        let mut r = record();
        for k in 0..4 {
            let mut s = stmt(
                "backfill",
                "UPDATE orders SET s2 = s WHERE id > $1 AND id <= $2",
                1000.0 + 500.0 * k as f64,
                1400.0 + 500.0 * k as f64,
            );
            s.wal_bytes = Some(16 << 20);
            r.statements.push(s);
        }
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert!(f.safe_pattern.advice.contains("already runs in batches"), "{}", f.safe_pattern.advice);
        // Its batches with their bounds written in (QA: a backfill step of
        // 1 000-row batches was advised batches of 10 000).
        for (k, s) in r.statements.iter_mut().enumerate() {
            s.sql = format!("UPDATE orders SET s2 = s WHERE id > {} AND id <= {}", k * 1000, (k + 1) * 1000);
        }
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert!(f.safe_pattern.advice.contains("already runs in batches"), "{}", f.safe_pattern.advice);
    }

    #[test]
    fn unknown_wal_fires_nothing() {
        let mut r = fires();
        let s = r.statements.last_mut().unwrap();
        s.wal_bytes = None;
        s.unknown = "wal_bytes: pg_stat_statements is not loaded".into();
        let a = analyze(&r);
        assert!(a.findings.iter().all(|f| f.kind != KIND));
        let step = &a.steps[0];
        assert_eq!(step.wal_bytes, None);
        assert!(
            step.unknown["wal_bytes"].contains("pg_stat_statements is not loaded"),
            "{:?}",
            step.unknown
        );
    }

    #[test]
    fn says_how_much_how_fast_and_only_for_the_heavy_step() {
        let mut r = fires();
        r.statements.extend(quiet().statements);
        let a = analyze(&r);
        let f: Vec<_> = a.findings.iter().filter(|f| f.kind == KIND).collect();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].step.as_deref(), Some("backfill"));
        assert!(
            f[0].seen.contains("64.0 MiB of WAL in 2.0 s (32.0 MiB/s, written by the step's own"),
            "{}",
            f[0].seen
        );
    }
}
