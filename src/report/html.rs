//! index.html: one self-contained page (inline CSS, no script, no CDN) with
//! the verdict, the tables, the charts (relative links to the SVGs in the
//! same directory) and links to every file of the run.

use std::path::Path;

use super::format::{
    blocking, budget_value, lock, ms, opt_ms, outcome, pct, span, sql_list, table_work, waits,
};
use super::markdown::verdict_line;
use super::Summary;
use crate::analyze::{LatencyFacts, Severity};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown's **bold** in the verdict line, as HTML.
fn bold(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split("**").enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 28px 0 10px; border-bottom: 1px solid #d8dce3; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.meta { color: #566074; font-size: 14px; }
.verdict { padding: 14px 18px; border-radius: 6px; font-size: 17px; margin: 14px 0; }
.pass { background: #e3f4e6; border: 1px solid #7cc48b; }
.fail { background: #fde7e7; border: 1px solid #e08585; }
.none { background: #eef0f4; border: 1px solid #b9c0cc; }
table { border-collapse: collapse; background: #fff; font-size: 13.5px; margin: 6px 0 12px; }
th, td { border: 1px solid #d8dce3; padding: 5px 9px; text-align: left; vertical-align: top; }
th { background: #eceff4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #fff1f1; }
.chart { background: #fff; border: 1px solid #d8dce3; margin: 10px 0 18px; }
.chart img { width: 100%; height: auto; display: block; }
.chart p { margin: 4px 10px 8px; font-size: 13px; color: #566074; }
.finding { background: #fff; border: 1px solid #d8dce3; border-left: 6px solid #999; padding: 8px 14px; margin: 10px 0; }
.finding.critical { border-left-color: #c62828; }
.finding.warning { border-left-color: #ef8f00; }
.finding.info { border-left-color: #1f77b4; }
.sev { text-transform: uppercase; font-size: 12px; font-weight: bold; letter-spacing: .04em; }
pre { background: #f1f3f6; padding: 8px 10px; overflow-x: auto; font-size: 13px; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.tag-pass { color: #1b7f31; font-weight: bold; }
.tag-fail { color: #c62828; font-weight: bold; }
.note { color: #566074; font-size: 13px; }
.wide { overflow-x: auto; }
ul.files { columns: 3; font-size: 14px; }
"#;

fn latency_cells(l: &LatencyFacts) -> String {
    format!(
        "<td class=n>{}</td><td class=n>{:.0}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>",
        l.requests,
        l.qps,
        opt_ms(l.p50_ms),
        opt_ms(l.p99_ms),
        opt_ms(l.max_ms),
        l.errors,
        pct(l.error_rate)
    )
}

const LATENCY_HEAD: &str = "<th>requests</th><th>req/s</th><th>p50</th><th>p99</th><th>max</th><th>errors</th><th>error rate</th>";

pub(crate) fn render(s: &Summary, dir: &Path) -> String {
    let a = &s.analysis;
    let r = &a.run;
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str(&format!(
        "<title>pgrehearse: {}</title>\n",
        esc(&r.scenario)
    ));
    o.push_str(&format!("<style>{CSS}</style>\n</head>\n<body>\n<main>\n"));
    o.push_str(&format!("<h1>pgrehearse: {}</h1>\n", esc(&r.scenario)));
    if let Some(d) = &r.description {
        o.push_str(&format!("<p class=meta>{}</p>\n", esc(d)));
    }
    let rows: Vec<String> = r
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n} rows"))
        .collect();
    o.push_str(&format!(
        "<p class=meta>PostgreSQL {} ({}) · {} · {} clients{} · seed {} · started {}</p>\n",
        esc(&r.postgres_version),
        esc(&r.backend),
        esc(&rows.join(", ")),
        r.clients,
        r.rate
            .map(|q| format!(" at {q:.0} req/s"))
            .unwrap_or_else(|| " (closed loop)".into()),
        r.seed,
        esc(&r.started_at)
    ));
    let class = if a.budgets.is_empty() {
        "none"
    } else if s.verdict_passed() {
        "pass"
    } else {
        "fail"
    };
    o.push_str(&format!(
        "<div class=\"verdict {class}\" id=verdict>{}</div>\n",
        bold(&verdict_line(s).replace("✅ ", "").replace("❌ ", ""))
    ));
    if let Some(f) = &r.failure {
        o.push_str(&format!(
            "<div class=\"verdict fail\">The rehearsal did not finish: {}</div>\n",
            esc(f)
        ));
    }
    if let Some(m) = a.migration {
        o.push_str(&format!(
            "<p>Migration ran <strong>{}</strong> ({}); app p99 <strong>{}</strong> before, <strong>{}</strong> during, <strong>{}</strong> after.</p>\n",
            ms(m.duration_ms),
            span(m.start_ms, m.end_ms),
            opt_ms(a.before.p99_ms),
            opt_ms(a.during.p99_ms),
            opt_ms(a.after.p99_ms)
        ));
    }

    o.push_str("<h2 id=budgets>Budgets</h2>\n");
    if a.budgets.is_empty() {
        o.push_str("<p>No budget was set.</p>\n");
    } else {
        o.push_str("<table><tr><th>budget</th><th>limit</th><th>measured</th><th>result</th><th>step</th><th>measured as</th></tr>\n");
        for b in &a.budgets {
            o.push_str(&format!(
                "<tr{}><td><code>{}</code></td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                if b.passed { "" } else { " class=bad" },
                esc(&b.name),
                budget_value(b, b.limit),
                budget_value(b, b.measured),
                if b.passed { "<span class=tag-pass>pass</span>" } else { "<span class=tag-fail>FAIL</span>" },
                esc(b.step.as_deref().unwrap_or("–")),
                esc(&b.detail)
            ));
        }
        o.push_str("</table>\n");
    }

    o.push_str("<h2 id=charts>Charts</h2>\n");
    let charts = [
        ("latency", "App latency per query: p50 (thin), p99 (thick), max (dots) per window, log scale. Orange: a migration statement running; red strip: a lock that blocks the app held."),
        ("locks", "Locks the migration held, one row per relation, coloured by mode (light: waiting to be granted). Thin bars below: app queries waiting for a lock, coloured by cause."),
        ("throughput", "Completed requests per second and errors per window, by app version."),
    ];
    for (name, caption) in charts {
        let svg = format!("{name}.svg");
        let png = format!("{name}.png");
        if dir.join(&svg).exists() {
            o.push_str(&format!(
                "<figure class=chart id=chart-{name}><img src=\"{svg}\" alt=\"{name} chart\"><p>{} <a href=\"{png}\">PNG</a> · <a href=\"{svg}\">SVG</a></p></figure>\n",
                esc(caption)
            ));
        }
    }

    o.push_str("<h2 id=steps>Steps</h2>\n<div class=wide><table><tr><th>phase / step</th><th>duration</th><th>outcome</th><th>strongest lock</th><th>longest blocking hold</th><th>waited for lock</th><th>worst app wait</th><th>app p99 while running</th><th>errors</th><th>table work</th></tr>\n");
    for st in &a.steps {
        o.push_str(&format!(
            "<tr><td>{}<br><code>{}</code></td><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>\n",
            esc(&st.label()),
            esc(&sql_list(&st.sql)),
            ms(st.duration_ms),
            esc(&outcome(st)),
            esc(&lock(&st.strongest_lock)),
            esc(&blocking(st)),
            ms(st.lock_wait_ms),
            esc(&waits(st)),
            opt_ms(st.latency.p99_ms),
            st.latency.errors,
            esc(&table_work(st))
        ));
    }
    o.push_str("</table></div>\n");

    o.push_str(&format!("<h2 id=latency>App latency</h2>\n<table><tr><th>period</th><th>span</th>{LATENCY_HEAD}</tr>\n"));
    for (name, l) in [
        ("before", &a.before),
        ("during the migration", &a.during),
        ("after", &a.after),
    ] {
        o.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td>{}</tr>\n",
            span(l.start_ms, l.end_ms),
            latency_cells(l)
        ));
    }
    o.push_str("</table>\n");
    if !a.phases.is_empty() {
        o.push_str(&format!("<h2 id=phases>Phases</h2>\n<table><tr><th>phase</th><th>apps</th><th>span</th>{LATENCY_HEAD}</tr>\n"));
        for p in &a.phases {
            o.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>\n",
                esc(&p.name),
                esc(&p.apps.join(", ")),
                span(p.latency.start_ms, p.latency.end_ms),
                latency_cells(&p.latency)
            ));
        }
        o.push_str("</table>\n");
    }
    o.push_str("<h3>Errors by app version</h3>\n<table><tr><th>scope</th><th>app</th><th>requests</th><th>errors</th><th>error rate</th><th>by SQLSTATE</th></tr>\n");
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
                "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>\n",
                esc(&scope),
                esc(&app.app),
                app.latency.requests,
                app.latency.errors,
                pct(app.latency.error_rate),
                esc(&if codes.is_empty() { "–".to_string() } else { codes.join("; ") })
            ));
        }
    }
    o.push_str("</table>\n");

    o.push_str("<h2 id=findings>Findings</h2>\n");
    if a.findings.is_empty() {
        o.push_str("<p>No findings.</p>\n");
    }
    for f in &a.findings {
        let sev = match f.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        o.push_str(&format!(
            "<div class=\"finding {sev}\"><span class=sev>{sev}</span><h3>{}</h3><p><strong>Where:</strong> {}</p><p><strong>Seen:</strong> {}</p><p><strong>Instead:</strong> {}</p><pre><code>{}</code></pre></div>\n",
            esc(&f.title),
            esc(&f.location()),
            esc(&f.seen),
            esc(&f.safe_pattern.advice),
            esc(&f.safe_pattern.sql)
        ));
    }

    o.push_str("<h2 id=files>Files</h2>\n<ul class=files>\n");
    for f in &s.files {
        o.push_str(&format!("<li><a href=\"{0}\">{0}</a></li>\n", esc(f)));
    }
    o.push_str("</ul>\n");
    for n in &s.notes {
        o.push_str(&format!("<p class=note>{}</p>\n", esc(n)));
    }
    o.push_str("</main>\n</body>\n</html>\n");
    o
}
