//! The bars of the locks chart: per relation and step, what the migration
//! held at each moment, as its strongest mode.
//!
//! A statement often takes several modes on one relation for the same span
//! (ADD FOREIGN KEY: AccessShare, RowShare and ShareRowExclusive on the
//! table). Drawn one bar per mode they cover each other and their labels
//! collide. What the app feels is the strongest mode held (the app only
//! takes AccessShare, RowShare and RowExclusive, and a stronger mode
//! conflicts with all of those a weaker one does), so each moment is drawn
//! once, in the strongest mode, and the label lists the others held with
//! it: "ShareRowExclusive 20 ms (+AccessShare, RowShare)". One row per
//! relation stays one bar high; a stronger mode taken later in the
//! transaction starts a new bar where it starts, a weaker one does not.

use crate::locks::LockMode;
use crate::record::LockRow;

/// A span during which a step held the same set of modes on a relation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub relation: String,
    pub start_s: f64,
    pub end_s: f64,
    /// The strongest mode held (pg_locks spelling).
    pub mode: String,
    /// The other modes held at the same time, weakest first.
    pub others: Vec<String>,
}

impl Bar {
    /// "ShareRowExclusive 20 ms (+AccessShare, RowShare)".
    pub fn label(&self) -> String {
        let mut s = format!(
            "{} {:.0} ms",
            short_mode(&self.mode),
            (self.end_s - self.start_s) * 1000.0
        );
        if !self.others.is_empty() {
            let others: Vec<&str> = self.others.iter().map(|m| short_mode(m)).collect();
            s.push_str(&format!(" (+{})", others.join(", ")));
        }
        s
    }

    /// The label without the other modes.
    pub fn short_label(&self) -> String {
        format!(
            "{} {:.0} ms",
            short_mode(&self.mode),
            (self.end_s - self.start_s) * 1000.0
        )
    }
}

/// "ShareRowExclusiveLock" → "ShareRowExclusive".
pub(crate) fn short_mode(mode: &str) -> &str {
    mode.strip_suffix("Lock").unwrap_or(mode)
}

fn strength(mode: &str) -> Option<LockMode> {
    LockMode::parse(mode)
}

/// When a lock was granted and released (s); None if never granted.
fn held(l: &LockRow) -> Option<(f64, f64)> {
    let g = l.granted_ms?;
    let r = l.released_ms.unwrap_or(g + l.held_ms.unwrap_or(0.0)).max(g);
    Some((g / 1000.0, r / 1000.0))
}

/// The bars of relation locks: per relation and step, consecutive spans
/// with the same set of modes held, in order of start.
pub(crate) fn bars(locks: &[&LockRow]) -> Vec<Bar> {
    let mut groups: Vec<(&str, &str, &str)> = Vec::new();
    for l in locks {
        let k = (l.relation.as_str(), l.phase.as_str(), l.step.as_str());
        if !groups.contains(&k) {
            groups.push(k);
        }
    }
    let mut out = Vec::new();
    for (rel, phase, step) in groups {
        let spans: Vec<(f64, f64, &str)> = locks
            .iter()
            .filter(|l| l.relation == rel && l.phase == phase && l.step == step)
            .filter_map(|l| held(l).map(|(g, r)| (g, r, l.mode.as_str())))
            .collect();
        out.extend(group_bars(rel, &spans));
    }
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out
}

/// One relation and step: cut time at every grant and release, keep the
/// strongest mode of each piece, merge neighbours that hold the same modes.
fn group_bars(relation: &str, spans: &[(f64, f64, &str)]) -> Vec<Bar> {
    let mut cuts: Vec<f64> = spans.iter().flat_map(|s| [s.0, s.1]).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut out: Vec<Bar> = Vec::new();
    let mut pieces: Vec<(f64, f64)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    // A hold of zero length that no longer hold covers is a piece of its own.
    let covered = |t: f64| spans.iter().any(|o| o.1 > o.0 && o.0 <= t && o.1 >= t);
    pieces.extend(
        spans
            .iter()
            .filter(|s| s.1 <= s.0 && !covered(s.0))
            .map(|s| (s.0, s.0)),
    );
    pieces.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    for (t0, t1) in pieces {
        let mut modes: Vec<&str> = spans
            .iter()
            .filter(|s| s.0 <= t0 && s.1 >= t1)
            .map(|s| s.2)
            .collect();
        if modes.is_empty() {
            continue;
        }
        modes.sort_by_key(|m| strength(m));
        modes.dedup();
        let mode = modes.pop().expect("not empty").to_string();
        let others: Vec<String> = modes.into_iter().map(String::from).collect();
        match out.last_mut() {
            // The strongest mode is what the app feels: one hold of it is
            // one bar, whatever weaker modes come and go under it (QA: an
            // 853 ms ACCESS EXCLUSIVE drawn as 345 ms and 507 ms bars once
            // the rewrite took SHARE under it); its label names them all.
            Some(b) if b.end_s == t0 && b.mode == mode => {
                b.end_s = t1;
                for o in others {
                    if !b.others.contains(&o) {
                        b.others.push(o);
                    }
                }
                b.others.sort_by_key(|m| strength(m));
            }
            _ => out.push(Bar {
                relation: relation.to_string(),
                start_s: t0,
                end_s: t1,
                mode,
                others,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Blocks;

    fn lock(rel: &str, mode: &str, granted: f64, released: f64) -> LockRow {
        LockRow {
            phase: "p".into(),
            step: "fk".into(),
            relation: rel.into(),
            locktype: "relation".into(),
            mode: mode.into(),
            requested_ms: granted,
            granted_ms: Some(granted),
            released_ms: Some(released),
            wait_ms: 0.0,
            held_ms: Some(released - granted),
            blocks: Blocks::None,
            source: "probe".into(),
            table: String::new(),
            blocked_by: String::new(),
        }
    }

    #[test]
    fn add_foreign_key_is_one_bar_in_its_strongest_mode() {
        let rows = [
            lock("orders", "AccessShareLock", 3000.0, 3020.0),
            lock("orders", "RowShareLock", 3000.0, 3020.0),
            lock("orders", "ShareRowExclusiveLock", 3000.0, 3020.0),
            lock("customers", "ShareRowExclusiveLock", 3000.0, 3020.0),
        ];
        let refs: Vec<&LockRow> = rows.iter().collect();
        let b = bars(&refs);
        assert_eq!(b.len(), 2, "{b:?}");
        let orders = b.iter().find(|b| b.relation == "orders").unwrap();
        assert_eq!(orders.mode, "ShareRowExclusiveLock");
        assert_eq!(
            orders.label(),
            "ShareRowExclusive 20 ms (+AccessShare, RowShare)"
        );
        let customers = b.iter().find(|b| b.relation == "customers").unwrap();
        assert_eq!(customers.label(), "ShareRowExclusive 20 ms");
    }

    #[test]
    fn a_stronger_mode_taken_later_starts_its_own_bar() {
        // RowExclusive from the first statement, AccessExclusive from the
        // third, both until COMMIT; a zero-length hold stays visible.
        let rows = [
            lock("orders", "RowExclusiveLock", 1000.0, 1010.0),
            lock("orders", "AccessExclusiveLock", 1004.0, 1010.0),
            lock("t", "AccessShareLock", 2000.0, 2000.0),
        ];
        let refs: Vec<&LockRow> = rows.iter().collect();
        let b = bars(&refs);
        let labels: Vec<String> = b.iter().map(Bar::label).collect();
        assert_eq!(
            labels,
            [
                "RowExclusive 4 ms",
                "AccessExclusive 6 ms (+RowExclusive)",
                "AccessShare 0 ms"
            ]
        );
        assert_eq!((b[0].end_s, b[1].start_s), (1.004, 1.004));
    }

    /// QA: ALTER COLUMN TYPE holds ACCESS EXCLUSIVE 853 ms and takes SHARE
    /// under it for the index rebuild 345 ms in: one bar of 853 ms, which
    /// names the SHARE, not two of 345 and 507.
    #[test]
    fn a_weaker_mode_taken_under_a_hold_does_not_cut_its_bar() {
        let rows = [
            lock("payments", "AccessExclusiveLock", 3563.684, 4416.292),
            lock("payments", "ShareLock", 3908.938, 4416.292),
        ];
        let refs: Vec<&LockRow> = rows.iter().collect();
        let labels: Vec<String> = bars(&refs).iter().map(Bar::label).collect();
        assert_eq!(labels, ["AccessExclusive 853 ms (+Share)"]);
    }
}
