//! summary.md: the verdict line first, then budgets, steps, app latency,
//! phases with errors by app version, and findings with the safe pattern.

use super::format::{
    blocking, budget_value, lock, ms, opt_ms, outcome, pct, span, sql_list, table_work, waits,
};
use super::Summary;
use crate::analyze::LatencyFacts;

/// Table cells must not break the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn verdict_line(s: &Summary) -> String {
    let a = &s.analysis;
    if a.budgets.is_empty() {
        return "**Verdict: no budget checked** — set [budget] in the scenario or pass --budget key=value".into();
    }
    if s.verdict_passed() {
        return format!(
            "**Verdict: ✅ PASS** — all {} budgets held",
            a.budgets.len()
        );
    }
    let parts: Vec<String> = a
        .breached()
        .map(|b| {
            format!(
                "{} (limit {}, measured {}{})",
                b.name,
                budget_value(b, b.limit),
                budget_value(b, b.measured),
                b.step
                    .as_ref()
                    .map(|st| format!(", step {st}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "**Verdict: ❌ FAIL** — {} of {} budgets breached: {}",
        parts.len(),
        a.budgets.len(),
        parts.join("; ")
    )
}

fn latency_cells(l: &LatencyFacts) -> String {
    format!(
        "{} | {:.0} | {} | {} | {} | {} | {}",
        l.requests,
        l.qps,
        opt_ms(l.p50_ms),
        opt_ms(l.p99_ms),
        opt_ms(l.max_ms),
        l.errors,
        pct(l.error_rate)
    )
}

pub(crate) fn render(s: &Summary) -> String {
    let a = &s.analysis;
    let r = &a.run;
    let mut o = String::new();
    o.push_str(&format!("# pgrehearse: {}\n\n", r.scenario));
    o.push_str(&verdict_line(s));
    o.push_str("\n\n");
    if let Some(f) = &r.failure {
        o.push_str(&format!("**The rehearsal did not finish:** {f}\n\n"));
    }
    if let Some(d) = &r.description {
        o.push_str(&format!("> {d}\n\n"));
    }
    let rows: Vec<String> = r
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n} rows"))
        .collect();
    o.push_str(&format!(
        "PostgreSQL {} ({}) · {} · {} clients{} · seed {} · started {}{}\n\n",
        r.postgres_version,
        r.backend,
        rows.join(", "),
        r.clients,
        r.rate
            .map(|q| format!(" at {q:.0} req/s"))
            .unwrap_or_else(|| " (closed loop)".into()),
        r.seed,
        r.started_at,
        match (&r.pair, &r.variant) {
            (Some(p), Some(v)) => format!(" · pair {p} ({v})"),
            _ => String::new(),
        }
    ));
    if let Some(m) = a.migration {
        o.push_str(&format!(
            "Migration ran {} ({}); app p99 **{}** before, **{}** during, **{}** after.\n\n",
            ms(m.duration_ms),
            span(m.start_ms, m.end_ms),
            opt_ms(a.before.p99_ms),
            opt_ms(a.during.p99_ms),
            opt_ms(a.after.p99_ms)
        ));
    }

    o.push_str("## Budgets\n\n");
    if a.budgets.is_empty() {
        o.push_str("No budget was set.\n\n");
    } else {
        o.push_str("| budget | limit | measured | result | step | measured as |\n|---|---:|---:|---|---|---|\n");
        for b in &a.budgets {
            o.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                b.name,
                budget_value(b, b.limit),
                budget_value(b, b.measured),
                if b.passed { "✅ pass" } else { "❌ **fail**" },
                b.step.as_deref().unwrap_or("–"),
                cell(&b.detail)
            ));
        }
        o.push('\n');
    }

    o.push_str("## Steps\n\n");
    o.push_str("| phase / step | duration | outcome | strongest lock | longest blocking hold | waited for lock | worst app wait | app p99 while running | errors | table work |\n");
    o.push_str("|---|---:|---|---|---|---:|---|---:|---:|---|\n");
    for st in &a.steps {
        o.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&st.label()),
            ms(st.duration_ms),
            cell(&outcome(st)),
            cell(&lock(&st.strongest_lock)),
            cell(&blocking(st)),
            ms(st.lock_wait_ms),
            cell(&waits(st)),
            opt_ms(st.latency.p99_ms),
            st.latency.errors,
            table_work(st)
        ));
    }
    o.push('\n');
    for st in &a.steps {
        o.push_str(&format!(
            "- **{}**: `{}`\n",
            cell(&st.label()),
            sql_list(&st.sql).replace('`', "'")
        ));
    }
    o.push('\n');

    o.push_str("## App latency\n\n| period | span | requests | req/s | p50 | p99 | max | errors | error rate |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (name, l) in [
        ("before", &a.before),
        ("during the migration", &a.during),
        ("after", &a.after),
    ] {
        o.push_str(&format!(
            "| {name} | {} | {} |\n",
            span(l.start_ms, l.end_ms),
            latency_cells(l)
        ));
    }
    o.push('\n');

    if !a.phases.is_empty() {
        o.push_str("## Phases\n\n| phase | apps | span | requests | req/s | p50 | p99 | max | errors | error rate |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &a.phases {
            o.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(&p.name),
                p.apps.join(", "),
                span(p.latency.start_ms, p.latency.end_ms),
                latency_cells(&p.latency)
            ));
        }
        o.push('\n');
    }

    o.push_str("### Errors by app version\n\n| scope | app | requests | errors | error rate | by SQLSTATE |\n|---|---|---:|---:|---:|---|\n");
    let scopes = std::iter::once(("whole run".to_string(), &a.apps)).chain(
        a.phases
            .iter()
            .map(|p| (format!("phase {}", p.name), &p.by_app)),
    );
    for (scope, apps) in scopes {
        for app in apps.iter() {
            let codes: Vec<String> = app
                .errors_by_sqlstate
                .iter()
                .map(|c| {
                    format!(
                        "{}× {} {} ({})",
                        c.count,
                        c.sqlstate,
                        c.class,
                        c.queries.join(", ")
                    )
                })
                .collect();
            o.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                cell(&scope),
                cell(&app.app),
                app.latency.requests,
                app.latency.errors,
                pct(app.latency.error_rate),
                cell(&if codes.is_empty() {
                    "–".to_string()
                } else {
                    codes.join("; ")
                })
            ));
        }
    }
    o.push('\n');

    o.push_str("## Findings\n\n");
    if a.findings.is_empty() {
        o.push_str("No findings: no blocking lock held past the threshold, no lock queue, no app errors.\n\n");
    }
    for (i, f) in a.findings.iter().enumerate() {
        let icon = match f.severity {
            crate::analyze::Severity::Critical => "🔴",
            crate::analyze::Severity::Warning => "🟠",
            crate::analyze::Severity::Info => "🔵",
        };
        o.push_str(&format!(
            "### {}. {icon} {} — {}\n\n",
            i + 1,
            f.severity,
            f.title
        ));
        o.push_str(&format!("- **Where:** {}\n", f.location()));
        o.push_str(&format!("- **Seen:** {}\n", f.seen));
        o.push_str(&format!("- **Instead:** {}\n\n", f.safe_pattern.advice));
        o.push_str(&format!("```sql\n{}\n```\n\n", f.safe_pattern.sql));
    }

    o.push_str("---\n\n");
    for n in &s.notes {
        o.push_str(&format!("_{n}_\n\n"));
    }
    let files: Vec<String> = s.files.iter().map(|f| format!("[{f}]({f})")).collect();
    o.push_str(&format!("Files: {}\n", files.join(" · ")));
    o
}
