//! The report of one run as a [`Document`]: the verdict and context first,
//! then budgets, charts, steps, app latency, phases, errors by app version,
//! findings and the run directory's files. summary.md and index.html are
//! this document, formatted.

use super::format::{
    blocking, breach, budget_measured_in, budget_result, budget_value, bytes_or_unknown, growth,
    ms, opt_ms, outcome, pct, recovery, replica_lag, span, sql_list, strongest, table_work,
    unknown, waits,
};
use super::summary::Summary;
use super::view::{
    plain, strong, Block, Callout, Cell, ChartRef, Document, Inline, Section, Table, Text, Tone,
};
use crate::analyze::{Analysis, AppFacts, LatencyFacts, Severity};

/// The charts a run report shows, with what to read in each.
const CHARTS: [(&str, &str); 4] = [
    ("latency", "App latency per query: p99 (thick), p50 (thin), max (dots) per window, log scale. Dashed, per app version: the age of its oldest request still in flight (queued or executing) at each window's end — it rises through a stall in which nothing completes; thick where every connection of the app was busy. Orange: a migration statement running. Red strip along the bottom: a lock that blocks the app held (outlined: the migration waiting for one, with app queries queued behind it)."),
    ("locks", "Locks the migration held, zoomed to the migration: a row per relation, a bar per span in the strongest mode held (weaker modes held with it are named in its label; outlined: waiting to be granted). Thin bars under a row: app queries waiting for a lock, coloured by cause."),
    ("throughput", "Successful requests per second (ok/s) by app version; below, failed requests per second, a lane per app version that had errors."),
    ("replica", "The streaming replica's replay lag (ms, pg_stat_replication.replay_lag; 0 once it has replayed all the primary wrote) and the WAL it had not replayed yet (MiB), sampled every 250 ms; a dot marks each step's peak."),
];

pub(crate) fn document(s: &Summary) -> Document {
    let a = &s.analysis;
    Document {
        title: format!("pgrehearse: {}", a.run.name()),
        lead: lead(s),
        sections: vec![
            budgets(a),
            charts(s),
            steps(a),
            latency(a),
            phases(a),
            errors_by_app(a),
            findings(a),
            files(s),
        ]
        .into_iter()
        .filter(|sec| !sec.blocks.is_empty())
        .collect(),
        notes: s.notes.iter().map(|n| plain(n.clone())).collect(),
    }
}

/// "Verdict: FAIL — 2 of 4 budgets breached: ...", naming each breach.
fn verdict(s: &Summary) -> (Tone, Text) {
    let a = &s.analysis;
    if a.run.failure.is_some() {
        let parts: Vec<String> = a.breached().map(|b| breach(b, true)).collect();
        return (
            Tone::Fail,
            vec![
                Inline::Strong(vec![
                    Inline::Plain("Verdict: ".into()),
                    Inline::Badge(Tone::Fail, "INCOMPLETE".into()),
                ]),
                Inline::Plain(if parts.is_empty() {
                    " — the rehearsal did not finish; its budgets below are over the part that ran"
                        .into()
                } else {
                    format!(
                        " — the rehearsal did not finish; breached over the part that ran: {}",
                        parts.join("; ")
                    )
                }),
            ],
        );
    }
    if a.budgets.is_empty() {
        return (
            Tone::Neutral,
            vec![
                strong("Verdict: no budget checked"),
                Inline::Plain(" — set [budget] in the scenario or pass --budget key=value".into()),
            ],
        );
    }
    if s.verdict_passed() {
        return (
            Tone::Pass,
            vec![
                Inline::Strong(vec![
                    Inline::Plain("Verdict: ".into()),
                    Inline::Badge(Tone::Pass, "PASS".into()),
                ]),
                Inline::Plain(if a.budgets.len() == 1 {
                    " — the budget held".into()
                } else {
                    format!(" — all {} budgets held", a.budgets.len())
                }),
            ],
        );
    }
    let parts: Vec<String> = a.breached().map(|b| breach(b, true)).collect();
    (
        Tone::Fail,
        vec![
            Inline::Strong(vec![
                Inline::Plain("Verdict: ".into()),
                Inline::Badge(Tone::Fail, "FAIL".into()),
            ]),
            Inline::Plain(format!(
                " — {} of {} budgets breached: {}",
                parts.len(),
                a.budgets.len(),
                parts.join("; ")
            )),
        ],
    )
}

/// Verdict, failure, description, context and the migration in a line.
fn lead(s: &Summary) -> Vec<Block> {
    let a = &s.analysis;
    let r = &a.run;
    let (tone, v) = verdict(s);
    let mut out = vec![Block::Banner(tone, v)];
    // A what-if verdict says so where the verdict is, never silently.
    if !a.overridden.is_empty() {
        out.push(Block::Banner(
            Tone::Warning,
            vec![
                strong("Not the run's verdict:"),
                Inline::Plain(format!(" {}.", super::format::overridden(&a.overridden))),
            ],
        ));
    }
    if let Some(f) = &r.failure {
        out.push(Block::Banner(
            Tone::Fail,
            vec![
                strong("The rehearsal did not finish:"),
                Inline::Plain(format!(" {f}")),
            ],
        ));
    }
    if let Some(d) = &r.description {
        out.push(Block::Quote(plain(d.clone())));
    }
    let rows: Vec<String> = r
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n} rows"))
        .collect();
    out.push(Block::Meta(plain(format!(
        "PostgreSQL {} ({}) · {} · {} clients{} · seed {} · started {}{}",
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
    ))));
    for (what, v) in [("Server size", &r.size), ("Replica", &r.replica)] {
        if let Some(v) = v {
            out.push(Block::Meta(plain(format!("{what}: {v}"))));
        }
    }
    if let Some(why) = &r.wal_unavailable {
        out.push(Block::Meta(plain(format!(
            "Each statement's own WAL is not measured in this run: {why}"
        ))));
    }
    // A setting the rehearsal ran without, another version: a reader of
    // the verdict must see them beside it.
    for w in &r.warnings {
        out.push(Block::Banner(
            Tone::Warning,
            vec![strong("Warning:"), Inline::Plain(format!(" {w}"))],
        ));
    }
    if let Some(m) = a.migration {
        out.push(Block::Paragraph(vec![
            Inline::Plain("Migration ran ".into()),
            Inline::Plain(format!(
                "{} ({})",
                ms(m.duration_ms),
                span(m.start_ms, m.end_ms)
            )),
            Inline::Plain("; app p99 ".into()),
            strong(opt_ms(a.before.p99_ms)),
            Inline::Plain(" before, ".into()),
            strong(opt_ms(a.during.p99_ms)),
            Inline::Plain(" during, ".into()),
            strong(opt_ms(a.after.p99_ms)),
            Inline::Plain(" after.".into()),
        ]));
    }
    if let Some(l) = a.replica_lag {
        out.push(Block::Paragraph(vec![
            Inline::Plain("The replica's replay lag peaked at ".into()),
            strong(replica_lag(&Some(l))),
            Inline::Plain(format!(" at {:.1} s.", l.at_ms / 1e3)),
        ]));
    }
    out
}

fn budgets(a: &Analysis) -> Section {
    let mut sec = Section::new("budgets", "Budgets");
    if a.budgets.is_empty() {
        sec.blocks
            .push(Block::Paragraph(plain("No budget was set.")));
        return sec;
    }
    let mut t = Table::new(&[
        "budget",
        "limit>",
        "measured>",
        "result",
        "step",
        "measured as",
    ]);
    let finished = a.run.failure.is_none();
    for b in &a.budgets {
        let result = if budget_result(b, finished) == "n/a" {
            vec![Inline::Badge(Tone::Neutral, "n/a".into())]
        } else if b.passed {
            vec![Inline::Badge(Tone::Pass, "pass".into())]
        } else {
            vec![Inline::Strong(vec![Inline::Badge(
                Tone::Fail,
                "fail".into(),
            )])]
        };
        t.row(vec![
            vec![Inline::Code(b.name.clone())].into(),
            budget_value(b, b.limit).into(),
            budget_measured_in(b, finished).into(),
            result.into(),
            b.step.as_deref().unwrap_or("–").into(),
            b.detail.clone().into(),
        ])
        .tone = if b.passed { Tone::Neutral } else { Tone::Fail };
    }
    sec.blocks.push(Block::Table(t));
    sec
}

/// The charts that were drawn (listed in the run directory).
fn charts(s: &Summary) -> Section {
    let mut sec = Section::new("charts", "Charts");
    for (name, caption) in CHARTS {
        if s.files.iter().any(|f| *f == format!("{name}.svg")) {
            sec.blocks.push(Block::Chart(ChartRef {
                name: name.to_string(),
                caption: caption.to_string(),
            }));
        }
    }
    sec
}

fn steps(a: &Analysis) -> Section {
    let mut sec = Section::new("steps", "Steps");
    // The replica column only when a replica was sampled.
    let replica = a.replica_lag.is_some();
    let mut titles = vec![
        "phase / step",
        "duration>",
        "outcome",
        "strongest lock",
        "longest blocking hold",
        "waited for lock>",
        "worst app wait",
        "app p99 while running>",
        "recovered after>",
        "errors>",
        "table work",
    ];
    if replica {
        titles.push("replica lag peak>");
    }
    let mut t = Table::new(&titles);
    for st in &a.steps {
        let mut cells: Vec<Cell> = vec![
            Cell::from(st.label())
                .with_detail(vec![Inline::Code(sql_list(&st.sql, st.sql_distinct))]),
            ms(st.duration_ms).into(),
            outcome(st).into(),
            strongest(st).into(),
            blocking(st).into(),
            match st.lock_wait_behind.is_empty() {
                true => ms(st.lock_wait_ms),
                false => format!(
                    "{} (behind {})",
                    ms(st.lock_wait_ms),
                    st.lock_wait_behind.join(", ")
                ),
            }
            .into(),
            waits(st).into(),
            opt_ms(st.latency.p99_ms).into(),
            recovery(&st.recovery).into(),
            st.latency.errors.to_string().into(),
            table_work(st).into(),
        ];
        if replica {
            cells.push(replica_lag(&st.replica_lag).into());
        }
        t.row(cells);
    }
    if !t.rows.is_empty() {
        sec.blocks.push(Block::Table(t));
        sec.blocks.push(Block::Table(footprints(a)));
    }
    sec
}

/// What each step left on the scenario's tables (steps.csv): sizes before
/// and after, dead tuples, its own WAL next to the cluster's.
fn footprints(a: &Analysis) -> Table {
    let mut t = Table::new(&[
        "phase / step",
        "table bytes",
        "index bytes",
        "dead tuples after>",
        "own WAL>",
        "cluster WAL>",
        "rewrote",
    ]);
    for st in &a.steps {
        let f = &st.footprint;
        t.row(vec![
            st.label().into(),
            growth(st, "table_bytes", f.table_bytes_before, f.table_bytes_after).into(),
            growth(st, "index_bytes", f.index_bytes_before, f.index_bytes_after).into(),
            f.dead_tuples_after
                .map(|d| d.to_string())
                .unwrap_or_else(|| unknown(st, "dead_tuples_after"))
                .into(),
            bytes_or_unknown(st, "wal_bytes", st.wal_bytes).into(),
            bytes_or_unknown(st, "cluster_wal_bytes", st.cluster_wal_bytes).into(),
            match st.rewrote {
                Some(true) => "yes".to_string(),
                Some(false) => "no".to_string(),
                None => unknown(st, "rewrote"),
            }
            .into(),
        ]);
    }
    t
}

/// The latency columns every period, phase and app table shares.
const LATENCY_COLUMNS: [&str; 8] = [
    "requests>",
    "ok/s>",
    "p50>",
    "p99>",
    "max>",
    "errors>",
    "errors/s>",
    "error rate>",
];

fn latency_table(lead: &[&str]) -> Table {
    let titles: Vec<&str> = lead.iter().chain(LATENCY_COLUMNS.iter()).copied().collect();
    Table::new(&titles)
}

fn latency_cells(l: &LatencyFacts) -> Vec<Cell> {
    vec![
        l.requests.to_string().into(),
        format!("{:.0}", l.ok_qps).into(),
        opt_ms(l.p50_ms).into(),
        opt_ms(l.p99_ms).into(),
        opt_ms(l.max_ms).into(),
        l.errors.to_string().into(),
        per_s(l.error_qps).into(),
        pct(l.error_rate).into(),
    ]
}

/// Errors per second: a few per second still show.
fn per_s(v: f64) -> String {
    if v > 0.0 && v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn latency(a: &Analysis) -> Section {
    let mut sec = Section::new("latency", "App latency");
    let mut t = latency_table(&["period", "span"]);
    for (name, l) in [
        ("before", &a.before),
        ("during the migration", &a.during),
        ("after", &a.after),
    ] {
        let mut cells: Vec<Cell> = vec![name.into(), span(l.start_ms, l.end_ms).into()];
        cells.extend(latency_cells(l));
        t.row(cells);
    }
    sec.blocks.push(Block::Table(t));
    sec
}

fn phases(a: &Analysis) -> Section {
    let mut sec = Section::new("phases", "Phases");
    if a.phases.is_empty() {
        return sec;
    }
    let mut t = latency_table(&["phase", "apps", "span"]);
    for p in &a.phases {
        let mut cells: Vec<Cell> = vec![
            p.name.clone().into(),
            p.apps.join(", ").into(),
            span(p.latency.start_ms, p.latency.end_ms).into(),
        ];
        cells.extend(latency_cells(&p.latency));
        t.row(cells);
    }
    sec.blocks.push(Block::Table(t));
    sec
}

fn errors_by_app(a: &Analysis) -> Section {
    let mut sec = Section::new("errors", "Errors by app version");
    let mut t = Table::new(&[
        "scope",
        "app",
        "requests>",
        "ok/s>",
        "errors>",
        "error rate>",
        "by SQLSTATE",
    ]);
    let scopes = std::iter::once(("whole run".to_string(), &a.apps)).chain(
        a.phases
            .iter()
            .map(|p| (format!("phase {}", p.name), &p.by_app)),
    );
    for (scope, apps) in scopes {
        for app in apps.iter() {
            t.row(vec![
                scope.clone().into(),
                app.app.clone().into(),
                app.latency.requests.to_string().into(),
                format!("{:.0}", app.latency.ok_qps).into(),
                app.latency.errors.to_string().into(),
                pct(app.latency.error_rate).into(),
                sqlstates(app).into(),
            ]);
        }
    }
    if !t.rows.is_empty() {
        sec.blocks.push(Block::Table(t));
    }
    sec
}

/// "2× 55P03 lock timeout (update_order)", per SQLSTATE.
fn sqlstates(app: &AppFacts) -> String {
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
    if codes.is_empty() {
        "–".to_string()
    } else {
        codes.join("; ")
    }
}

fn findings(a: &Analysis) -> Section {
    let mut sec = Section::new("findings", "Findings");
    if a.findings.is_empty() {
        sec.blocks.push(Block::Paragraph(plain(
            "No findings: no blocking lock held past the threshold, no lock queue, no app errors.",
        )));
    }
    for (i, f) in a.findings.iter().enumerate() {
        let tone = match f.severity {
            Severity::Critical => Tone::Critical,
            Severity::Warning => Tone::Warning,
            Severity::Info => Tone::Info,
        };
        sec.blocks.push(Block::Callout(Callout {
            tone,
            label: f.severity.to_string(),
            number: i + 1,
            title: f.title.clone(),
            fields: vec![
                ("Where".into(), plain(f.location())),
                ("Seen".into(), plain(f.seen.clone())),
                ("Instead".into(), plain(f.safe_pattern.advice.clone())),
            ],
            sql: Some(f.safe_pattern.sql.clone()),
        }));
    }
    sec
}

fn files(s: &Summary) -> Section {
    let mut sec = Section::new("files", "Files");
    sec.blocks.push(Block::Links(
        s.files.iter().map(|f| (f.clone(), f.clone())).collect(),
    ));
    sec
}
