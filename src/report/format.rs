//! Number formatting shared by the reports, and the plain-text summary
//! printed at the end of a run.

use crate::analyze::{Analysis, BudgetResult, LockFact, StepFacts, WaitFact};

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

fn step_line(s: &StepFacts) -> String {
    let mut out = format!(
        "  {} — {} · {}{}\n",
        s.label(),
        ms(s.duration_ms),
        s.outcome,
        if s.attempts > 1 {
            format!(" after {} attempts", s.attempts)
        } else {
            String::new()
        }
    );
    out.push_str(&format!(
        "      strongest lock: {}\n",
        lock(&s.strongest_lock)
    ));
    if s.longest_blocking_lock.is_some() && s.longest_blocking_lock != s.strongest_lock {
        out.push_str(&format!(
            "      longest blocking: {}\n",
            lock(&s.longest_blocking_lock)
        ));
    }
    out.push_str(&format!(
        "      worst app wait: {}{}\n",
        wait(&s.worst_app_wait),
        if s.app_waits > 1 {
            format!(" of {} waits", s.app_waits)
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "      app p99 {} while it ran · {} errors\n",
        opt_ms(s.latency.p99_ms),
        s.latency.errors
    ));
    out
}

/// The verdict on one line, naming each breached budget.
pub fn verdict_line(a: &Analysis) -> String {
    let breached: Vec<String> = a
        .breached()
        .map(|b| {
            format!(
                "{} {} > {}{}",
                b.name,
                budget_value(b, b.measured),
                budget_value(b, b.limit),
                b.step
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if a.budgets.is_empty() {
        format!("{}: no budget checked", a.run.scenario)
    } else if breached.is_empty() {
        format!(
            "{}: PASS ({} budgets held)",
            a.run.scenario,
            a.budgets.len()
        )
    } else {
        format!("{}: FAIL — {}", a.run.scenario, breached.join("; "))
    }
}

/// What a run prints on stdout when it ends.
pub fn text_summary(a: &Analysis) -> String {
    let mut out = String::new();
    let breached: Vec<&BudgetResult> = a.breached().collect();
    out.push_str(&format!(
        "{}: {}\n",
        a.run.scenario,
        if a.budgets.is_empty() {
            "no budget checked".to_string()
        } else if breached.is_empty() {
            format!("PASS ({} budgets held)", a.budgets.len())
        } else {
            format!(
                "FAIL ({} of {} budgets breached)",
                breached.len(),
                a.budgets.len()
            )
        }
    ));
    if let Some(f) = &a.run.failure {
        out.push_str(&format!("rehearsal failed: {f}\n"));
    }
    if let Some(m) = a.migration {
        out.push_str(&format!(
            "migration: {} ({})\n",
            ms(m.duration_ms),
            span(m.start_ms, m.end_ms)
        ));
    }
    out.push_str(&format!(
        "app p99 before {} · during {} · after {} · errors {} ({} during)\n",
        opt_ms(a.before.p99_ms),
        opt_ms(a.during.p99_ms),
        opt_ms(a.after.p99_ms),
        a.apps
            .iter()
            .map(|x| x.errors_by_sqlstate.iter().map(|c| c.count).sum::<u64>())
            .sum::<u64>(),
        a.during.errors
    ));
    for s in &a.steps {
        out.push_str(&step_line(s));
    }
    for b in &a.budgets {
        out.push_str(&format!(
            "budget {}: {} {} {} limit {}{}\n",
            b.name,
            if b.passed { "ok  " } else { "FAIL" },
            budget_value(b, b.measured),
            if b.passed { "<=" } else { ">" },
            budget_value(b, b.limit),
            b.step
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ));
    }
    if !a.findings.is_empty() {
        out.push_str("findings:\n");
        for f in &a.findings {
            out.push_str(&format!(
                "  [{}] {} — {}\n",
                f.severity,
                f.title,
                f.location()
            ));
        }
    }
    out
}
