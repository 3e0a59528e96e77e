//! How figures and facts read in the reports: durations, spans, rates,
//! budget values, locks, waits, step outcomes.

use crate::analyze::{
    fmt_bytes, BudgetOverride, BudgetResult, LockFact, Recovery, RecoveryState, ReplicaLag,
    StepFacts, WaitFact,
};

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

/// A statement listed in a summary table, at most this many characters.
const MAX_SQL_CHARS: usize = 200;

/// A step's statements for a table cell: the first three, then a count.
pub(crate) fn sql_list(sql: &[String], distinct: usize) -> String {
    let mut v: Vec<String> = sql
        .iter()
        .take(3)
        .map(|q| crate::sql::one_line(q, MAX_SQL_CHARS))
        .collect();
    let total = distinct.max(sql.len());
    if total > 3 {
        v.push(format!("… (+{} more)", total - 3));
    }
    v.join("; ")
}

/// How long the app's latency took to come back after a step.
pub(crate) fn recovery(r: &Recovery) -> String {
    match r.state {
        RecoveryState::Recovered => opt_ms(r.recovery_ms),
        RecoveryState::NotRecovered => "not recovered by the end of the run".into(),
        RecoveryState::RunStopped => "not measured: the run stopped first".into(),
        RecoveryState::NextStepBegan => "not before the next step began".into(),
        RecoveryState::NoBaseline => "– (no traffic before)".into(),
    }
}

/// A verdict judged by limits `report --budget` set, in words: "limits
/// overridden by `pgrehearse report --budget`, not the run's (run.json
/// keeps its own): p99_ms 1000.0 ms (the run's: 80.0 ms); max_errors 5
/// (the run had none)". Empty for the run's own verdict.
pub(crate) fn overridden(o: &[BudgetOverride]) -> String {
    if o.is_empty() {
        return String::new();
    }
    let value = |unit: &str, v: f64| match unit {
        "ms" => ms(v),
        "ratio" => pct(v),
        _ => format!("{v:.0}"),
    };
    let each: Vec<String> = o
        .iter()
        .map(|b| {
            let was = b.run_limit.map_or("the run had none".to_string(), |r| {
                format!("the run's: {}", value(&b.unit, r))
            });
            format!("{} {} ({was})", b.name, value(&b.unit, b.limit))
        })
        .collect();
    format!(
        "limits overridden by `pgrehearse report --budget`, not the run's (run.json keeps its own): {}",
        each.join("; ")
    )
}

pub(crate) fn pct(r: f64) -> String {
    format!("{:.2}%", r * 100.0)
}

/// A budget's measured figure: "not measured" when it could not be.
pub(crate) fn budget_measured(b: &BudgetResult) -> String {
    b.measured
        .map_or("not measured".into(), |v| budget_value(b, v))
}

/// A budget's result in a word: "fail" when breached (over the part that
/// ran, if the run did not finish: that stands); "n/a" when it held in a
/// run that did not finish (what did not run could still breach it); else
/// "ok".
pub(crate) fn budget_result(b: &BudgetResult, finished: bool) -> &'static str {
    match (b.passed, finished) {
        (false, _) => "fail",
        (true, false) => "n/a",
        (true, true) => "ok",
    }
}

/// [`budget_measured`], of a run that did not finish: "12.0 ms so far",
/// or "not measured: the run did not finish".
pub(crate) fn budget_measured_in(b: &BudgetResult, finished: bool) -> String {
    match (b.measured, finished) {
        (None, false) => "not measured: the run did not finish".into(),
        (Some(_), false) if b.passed => format!("{} so far", budget_measured(b)),
        _ => budget_measured(b),
    }
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
    let (limit, measured) = (budget_value(b, b.limit), budget_measured(b));
    let over = if b.measured.is_some() { ">" } else { "against" };
    match (report, &b.step) {
        (false, Some(s)) => format!("{} {measured} {over} {limit} ({s})", b.name),
        (false, None) => format!("{} {measured} {over} {limit}", b.name),
        (true, Some(s)) => format!("{} (limit {limit}, measured {measured}, step {s})", b.name),
        (true, None) => format!("{} (limit {limit}, measured {measured})", b.name),
    }
}

pub(crate) fn lock(l: &Option<LockFact>) -> String {
    match l {
        Some(l) => format!("{} on {} {}", l.mode, l.relation, held(l)),
        None => "–".into(),
    }
}

/// "held 12.0 ms", or "waited 100.1 ms, never granted".
fn held(l: &LockFact) -> String {
    match l.held_ms {
        Some(h) => format!("held {}", ms(h)),
        None => format!("waited {}, never granted", ms(l.wait_ms)),
    }
}

pub(crate) fn wait(w: &Option<WaitFact>) -> String {
    match w {
        Some(w) => format!("{} ({} {}, {})", ms(w.wait_ms), w.query, w.app, w.cause),
        None => "–".into(),
    }
}

/// "ok", "ok after 2 attempts", "lock_timeout (55P03) after 3 attempts",
/// "failed as expected (23505)".
pub(crate) fn outcome(st: &StepFacts) -> String {
    let mut o = if st.outcome == "expected_error" {
        format!("failed as expected ({})", st.sqlstate)
    } else if st.sqlstate.is_empty() {
        st.outcome.clone()
    } else {
        format!("{} ({})", st.outcome, st.sqlstate)
    };
    if st.attempts > 1 {
        o.push_str(&format!(" after {} attempts", st.attempts));
    }
    // A timeout the step did not set itself: say whose it was.
    let from = match st.outcome.as_str() {
        "lock_timeout" => st.lock_timeout_from.as_ref(),
        "statement_timeout" => st.statement_timeout_from.as_ref(),
        _ => None,
    };
    if let Some(from) = from {
        o.push_str(&format!(", under a timeout from {from}"));
    }
    o
}

/// The step's strongest lock; "unknown" where none was seen and a
/// statement's locks went unlisted.
pub(crate) fn strongest(st: &StepFacts) -> String {
    match (&st.strongest_lock, st.unknown.get("locks")) {
        (None, Some(_)) => "unknown".into(),
        (l, _) => lock(l),
    }
}

pub(crate) fn blocking(st: &StepFacts) -> String {
    if st.longest_blocking_lock.is_none() && st.unknown.contains_key("locks") {
        return unknown(st, "locks");
    }
    st.longest_blocking_lock
        .as_ref()
        .map(|l| {
            format!(
                "{} on {} {} (blocks {})",
                l.mode,
                l.relation,
                // Only a lock that was granted is a blocking hold.
                l.held_ms.map_or_else(|| "–".into(), ms),
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

/// Rewrite, scans and the step's own WAL in one cell; what is unknown says
/// so, and why.
pub(crate) fn table_work(st: &StepFacts) -> String {
    let rewrite = match st.rewrote {
        Some(true) => "rewrite".to_string(),
        Some(false) => "no rewrite".to_string(),
        None => format!("rewrite {}", unknown(st, "rewrote")),
    };
    let scans = match st.seq_scans {
        Some(n) => format!("{n} seq scan{}", if n == 1 { "" } else { "s" }),
        None => format!("seq scans {}", unknown(st, "seq_scans")),
    };
    let wal = match st.wal_bytes {
        Some(b) => format!("{} WAL", crate::analyze::fmt_bytes(b)),
        None => format!("WAL {}", unknown(st, "wal_bytes")),
    };
    format!("{rewrite} · {scans} · {wal}")
}

/// "unknown (why)" for a figure of the step.
pub(crate) fn unknown(st: &StepFacts, field: &str) -> String {
    match st.unknown.get(field) {
        Some(why) => format!("unknown ({why})"),
        None => "unknown".to_string(),
    }
}

/// Bytes, or "unknown (why)".
pub(crate) fn bytes_or_unknown(st: &StepFacts, field: &str, v: Option<u64>) -> String {
    v.map(crate::analyze::fmt_bytes)
        .unwrap_or_else(|| unknown(st, field))
}

/// "1.2 MiB → 2.4 MiB (+1.2 MiB)", or what is unknown and why.
pub(crate) fn growth(
    st: &StepFacts,
    field: &str,
    before: Option<u64>,
    after: Option<u64>,
) -> String {
    let fmt = crate::analyze::fmt_bytes;
    match (before, after) {
        (Some(b), Some(a)) if a >= b => format!("{} → {} (+{})", fmt(b), fmt(a), fmt(a - b)),
        (Some(b), Some(a)) => format!("{} → {} (−{})", fmt(b), fmt(a), fmt(b - a)),
        _ => format!(
            "{} → {}",
            bytes_or_unknown(st, &format!("{field}_before"), before),
            bytes_or_unknown(st, &format!("{field}_after"), after)
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_that_held_in_a_run_that_did_not_finish_is_na_not_ok() {
        let b = |measured: Option<f64>, passed: bool| BudgetResult {
            name: "p99_ms".into(),
            limit: 250.0,
            measured,
            unit: "ms".into(),
            passed,
            step: None,
            detail: String::new(),
        };
        assert_eq!(budget_result(&b(None, true), false), "n/a");
        assert_eq!(
            budget_measured_in(&b(None, true), false),
            "not measured: the run did not finish"
        );
        // A finished run's unmeasured figure holds, as the analysis decided.
        assert_eq!(budget_result(&b(None, true), true), "ok");
        assert_eq!(budget_measured_in(&b(None, true), true), "not measured");
        // Held over the part that ran: not decided.
        assert_eq!(budget_result(&b(Some(10.0), true), false), "n/a");
        assert_eq!(
            budget_measured_in(&b(Some(10.0), true), false),
            "10.0 ms so far"
        );
        assert_eq!(budget_result(&b(Some(10.0), true), true), "ok");
        assert_eq!(budget_result(&b(Some(300.0), false), false), "fail");
        assert_eq!(budget_result(&b(None, false), true), "fail");
    }
}
