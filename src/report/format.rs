//! How figures and facts read in the reports: durations, spans, rates,
//! budget values, locks, waits, step outcomes.

use crate::analyze::{fmt_bytes, BudgetResult, LockFact, ReplicaLag, StepFacts, WaitFact};

pub(crate) fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        format!("{v:.1} ms")
    }
}

pub(crate) fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| "–".into())
}

pub(crate) fn span(a: f64, b: f64) -> String {
    format!("{:.2}–{:.2} s", a / 1000.0, b / 1000.0)
}

/// A step's statements for a table cell: the first three, then a count.
pub(crate) fn sql_list(sql: &[String]) -> String {
    let mut v: Vec<String> = sql
        .iter()
        .take(3)
        .map(|q| q.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    if sql.len() > 3 {
        v.push(format!("… (+{} more)", sql.len() - 3));
    }
    v.join("; ")
}

pub(crate) fn pct(r: f64) -> String {
    format!("{:.2}%", r * 100.0)
}

pub(crate) fn budget_value(b: &BudgetResult, v: f64) -> String {
    match b.unit.as_str() {
        "ms" => ms(v),
        "ratio" => pct(v),
        _ => format!("{v:.0}"),
    }
}

/// A breached budget in words: "p99_ms 1017.7 ms > 250.0 ms (expand /
/// create index)" in a line of text, or "p99_ms (limit 250.0 ms, measured
/// 1017.7 ms, step expand / create index)" in a report.
pub(crate) fn breach(b: &BudgetResult, report: bool) -> String {
    let (limit, measured) = (budget_value(b, b.limit), budget_value(b, b.measured));
    match (report, &b.step) {
        (false, Some(s)) => format!("{} {measured} > {limit} ({s})", b.name),
        (false, None) => format!("{} {measured} > {limit}", b.name),
        (true, Some(s)) => format!("{} (limit {limit}, measured {measured}, step {s})", b.name),
        (true, None) => format!("{} (limit {limit}, measured {measured})", b.name),
    }
}

pub(crate) fn lock(l: &Option<LockFact>) -> String {
    match l {
        Some(l) => format!("{} on {} held {}", l.mode, l.relation, ms(l.held_ms)),
        None => "–".into(),
    }
}

pub(crate) fn wait(w: &Option<WaitFact>) -> String {
    match w {
        Some(w) => format!("{} ({} {}, {})", ms(w.wait_ms), w.query, w.app, w.cause),
        None => "–".into(),
    }
}

/// "ok", "ok after 2 attempts", "lock_timeout (55P03) after 3 attempts".
pub(crate) fn outcome(st: &StepFacts) -> String {
    let mut o = if st.sqlstate.is_empty() {
        st.outcome.clone()
    } else {
        format!("{} ({})", st.outcome, st.sqlstate)
    };
    if st.attempts > 1 {
        o.push_str(&format!(" after {} attempts", st.attempts));
    }
    o
}

pub(crate) fn blocking(st: &StepFacts) -> String {
    st.longest_blocking_lock
        .as_ref()
        .map(|l| {
            format!(
                "{} on {} {} (blocks {})",
                l.mode,
                l.relation,
                ms(l.held_ms),
                l.blocks
            )
        })
        .unwrap_or_else(|| "none".into())
}

/// The worst app wait and how many waits the step caused.
pub(crate) fn waits(st: &StepFacts) -> String {
    match st.app_waits {
        0 => "none".into(),
        1 => wait(&st.worst_app_wait),
        n => format!("{}; {n} waits", wait(&st.worst_app_wait)),
    }
}

/// Rewrite, scans and WAL in one cell.
pub(crate) fn table_work(st: &StepFacts) -> String {
    format!(
        "{} · {} seq scan{} · {} WAL",
        if st.rewrote { "rewrite" } else { "no rewrite" },
        st.seq_scans,
        if st.seq_scans == 1 { "" } else { "s" },
        crate::analyze::fmt_bytes(st.wal_bytes)
    )
}

/// "95.5 ms (7.6 MiB behind)", or "–" without a replica.
pub(crate) fn replica_lag(l: &Option<ReplicaLag>) -> String {
    let Some(l) = l else {
        return "–".into();
    };
    let behind = l.peak_bytes.map(|b| format!("{} behind", fmt_bytes(b)));
    match (l.peak_ms, behind) {
        (Some(t), Some(b)) => format!("{} ({b})", ms(t)),
        (Some(t), None) => ms(t),
        (None, Some(b)) => b,
        (None, None) => "–".into(),
    }
}
