//! The plain text printed at the end of a run, and its one-line verdict
//! for `-q`.

use super::format::{
    breach, budget_measured, budget_measured_in, budget_result, budget_value, lock, ms, opt_ms,
    recovery, replica_lag, span, wait,
};
use crate::analyze::{Analysis, BudgetResult, RecoveryState, StepFacts};

fn step_line(s: &StepFacts) -> String {
    let mut out = format!(
        "  {} — {} · {}\n",
        s.label(),
        ms(s.duration_ms),
        super::format::outcome(s)
    );
    out.push_str(&format!(
        "      strongest lock: {}\n",
        super::format::strongest(s)
    ));
    if let (None, Some(why)) = (&s.strongest_lock, s.unknown.get("locks")) {
        out.push_str(&format!("      locks: unknown: {why}\n"));
    }
    if s.longest_blocking_lock.is_some() && s.longest_blocking_lock != s.strongest_lock {
        out.push_str(&format!(
            "      longest blocking: {}\n",
            lock(&s.longest_blocking_lock)
        ));
    }
    if !s.lock_wait_behind.is_empty() {
        out.push_str(&format!(
            "      the migration waited {} for a lock, behind {}\n",
            ms(s.lock_wait_ms),
            s.lock_wait_behind.join("; ")
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
        "      app p99 {} while it ran · {} errors · {}\n",
        opt_ms(s.latency.p99_ms),
        s.latency.errors,
        match s.recovery.state {
            RecoveryState::Recovered => format!("recovered after {}", recovery(&s.recovery)),
            _ => format!("recovery: {}", recovery(&s.recovery)),
        }
    ));
    if s.replica_lag.is_some() {
        out.push_str(&format!(
            "      replica lag peak: {}\n",
            replica_lag(&s.replica_lag)
        ));
    }
    out
}

/// "1 budget held", "3 budgets held".
pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The verdict on one line, naming each breached budget, and the limits
/// `report --budget` overrode when it did.
pub fn verdict_line(a: &Analysis) -> String {
    let line = run_verdict_line(a);
    match super::format::overridden(&a.overridden) {
        o if o.is_empty() => line,
        o => format!("{line} [{o}]"),
    }
}

fn run_verdict_line(a: &Analysis) -> String {
    let breached: Vec<String> = a.breached().map(|b| breach(b, false)).collect();
    if let Some(f) = &a.run.failure {
        let also = if breached.is_empty() {
            String::new()
        } else {
            format!("; breached over the part that ran: {}", breached.join("; "))
        };
        format!("{}: INCOMPLETE — {f}{also}", a.run.name())
    } else if a.budgets.is_empty() {
        format!("{}: no budget checked", a.run.name())
    } else if breached.is_empty() {
        format!(
            "{}: PASS ({})",
            a.run.name(),
            plural(a.budgets.len(), "budget held", "budgets held")
        )
    } else {
        format!("{}: FAIL — {}", a.run.name(), breached.join("; "))
    }
}

/// What a run prints on stdout when it ends.
pub fn text_summary(a: &Analysis) -> String {
    let mut out = String::new();
    let breached: Vec<&BudgetResult> = a.breached().collect();
    out.push_str(&format!(
        "{}: {}\n",
        a.run.name(),
        if a.run.failure.is_some() {
            format!(
                "INCOMPLETE (the rehearsal did not finish; {} of {} budgets breached over the part that ran)",
                breached.len(),
                a.budgets.len()
            )
        } else if a.budgets.is_empty() {
            "no budget checked".to_string()
        } else if breached.is_empty() {
            format!("PASS ({})", plural(a.budgets.len(), "budget held", "budgets held"))
        } else {
            format!(
                "FAIL ({} of {} budgets breached)",
                breached.len(),
                a.budgets.len()
            )
        }
    ));
    if !a.overridden.is_empty() {
        out.push_str(&format!("{}\n", super::format::overridden(&a.overridden)));
    }
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
    let unfinished = match super::summary::unfinished(a) {
        0 => String::new(),
        n => format!(" · {n} unfinished at the stop (counted with their age then)"),
    };
    out.push_str(&format!(
        "app p99 before {} · during {} · after {} · errors {} ({} during){unfinished}\n",
        opt_ms(a.before.p99_ms),
        opt_ms(a.during.p99_ms),
        opt_ms(a.after.p99_ms),
        // The app's errors (a script's are its own, as for the budgets).
        a.app_errors(),
        a.during.errors
    ));
    for s in &a.steps {
        out.push_str(&step_line(s));
    }
    let finished = a.run.failure.is_none();
    for b in &a.budgets {
        out.push_str(&format!(
            "budget {}: {:<4} {} limit {}{}\n",
            b.name,
            match budget_result(b, finished) {
                "fail" => "FAIL",
                r => r,
            },
            // "5.0 ms <=", "not measured: the run did not finish;"
            match (b.measured, b.passed, finished) {
                (_, true, false) => format!("{};", budget_measured_in(b, finished)),
                (None, _, _) => format!("{} against", budget_measured(b)),
                (Some(_), true, _) => format!("{} <=", budget_measured(b)),
                (Some(_), false, _) => format!("{} >", budget_measured(b)),
            },
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

#[cfg(test)]
mod tests {
    use crate::analyze::analyze;
    use crate::analyze::testkit::record;

    /// A run stopped before its migration: p99 was never measured, and the
    /// line says so instead of "ok".
    #[test]
    fn a_budget_an_unfinished_run_never_measured_reads_na() {
        let mut r = record();
        let info = r.info.as_mut().unwrap();
        info.budget.p99_ms = Some(500.0);
        info.budget.max_errors = Some(10);
        info.failure = Some("interrupted by SIGINT while seeding".into());
        let text = super::text_summary(&analyze(&r));
        assert!(
            text.contains(
                "budget p99_ms: n/a  not measured: the run did not finish; limit 500.0 ms\n"
            ),
            "{text}"
        );
        // Held so far is not held: the rest could still breach it.
        assert!(
            text.contains("budget max_errors: n/a  0 so far; limit 10\n"),
            "{text}"
        );
    }
}
