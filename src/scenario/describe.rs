//! The human-readable plan `pgrehearse check` prints.

use std::fmt::Write;

use super::diag::{fmt_duration, trim_float};
use super::{
    Budget, ColumnGen, Distinct, Gen, IntDist, MigrationsPlan, Scale, Scenario, StepAction,
    StepPlan, WorkloadPlan,
};
use crate::migrations::{Execution, MigrationFile, Selection};

/// Render the validated plan: tables with rows and generators, workload,
/// phases and steps with their statements and timeouts, budget.
pub fn describe(s: &Scenario) -> String {
    let mut o = String::new();
    let _ = write_plan(&mut o, s);
    o
}

fn write_plan(o: &mut String, s: &Scenario) -> std::fmt::Result {
    write_header(o, s)?;
    if let Some(m) = &s.migrations {
        write_migrations(o, m)?;
    }
    write_tables(o, s)?;
    write_workload(o, &s.workload)?;
    if s.nothing_to_rehearse() {
        writeln!(
            o,
            "phases: none — no migration is new, nothing to rehearse (run exits 0)"
        )?;
    } else {
        writeln!(o, "phases")?;
    }
    for (i, p) in s.phases.iter().enumerate() {
        writeln!(o, "  {}. {} — apps [{}]", i + 1, p.name, p.apps.join(", "))?;
        for st in &p.steps {
            write_step(o, st)?;
        }
    }
    write_budget(o, &s.budget)
}

/// Name, description, pair, hash and the Postgres wanted.
fn write_header(o: &mut String, s: &Scenario) -> std::fmt::Result {
    writeln!(o, "scenario {} ({})", s.name, s.path.display())?;
    if let Some(d) = &s.description {
        writeln!(o, "  {d}")?;
    }
    if let Some(p) = &s.pair {
        let v = s
            .variant
            .map_or("-".to_string(), |v| format!("{v:?}").to_lowercase());
        writeln!(o, "  pair {p}, variant {v}")?;
    }
    writeln!(o, "  sha256 {}", s.hash)?;
    let pg = &s.postgres;
    if pg.version.is_some()
        || pg.image.is_some()
        || !pg.settings.is_empty()
        || pg.size.is_some()
        || pg.replica
    {
        write!(o, "postgres")?;
        if let Some(v) = &pg.version {
            write!(o, " version {v}")?;
        }
        if let Some(i) = &pg.image {
            write!(o, " image {i}")?;
        }
        writeln!(o)?;
        if let Some(size) = &pg.size {
            writeln!(o, "  size {}", size.describe())?;
            for d in crate::sizing::derive(size) {
                let note = if pg.settings.iter().any(|(k, _)| *k == d.name) {
                    " (the scenario's setting wins)"
                } else {
                    ""
                };
                writeln!(o, "    derived {} = {}{note}", d.name, d.value)?;
            }
        }
        if pg.replica {
            writeln!(o, "  a streaming physical replica")?;
        }
        for (k, v) in &pg.settings {
            writeln!(o, "  {k} = {v}")?;
        }
    }
    Ok(())
}

/// The directory, how files were chosen, what setup applies and what is
/// rehearsed, and what the tool would not run.
fn write_migrations(o: &mut String, m: &MigrationsPlan) -> std::fmt::Result {
    let chosen = match &m.selection {
        Selection::All => "every file".to_string(),
        Selection::From(v) => format!("from version {v}"),
        Selection::Last(0) => "none (last = 0): every file is setup".to_string(),
        Selection::Last(n) => format!("the last {n}"),
        Selection::SinceGit(rev) => format!("those added since git {rev}"),
    };
    writeln!(
        o,
        "migrations {} ({}), rehearsed: {chosen}",
        m.dir.display(),
        m.layout
    )?;
    writeln!(
        o,
        "  setup, applied before seeding and not timed: {} file(s)",
        m.setup.len()
    )?;
    for f in &m.setup {
        writeln!(o, "    {} — {}", f.name, file_shape(f))?;
    }
    writeln!(o, "  rehearsed: {} file(s), a step each", m.rehearse.len())?;
    for f in &m.rehearse {
        writeln!(o, "    {} — {}", f.name, file_shape(f))?;
    }
    if let Selection::SinceGit(rev) = &m.selection {
        for c in &m.edited {
            writeln!(
                o,
                "  warning: {}",
                crate::migrations::edited_warning(m.layout, c, rev)
            )?;
        }
    }
    for i in &m.ignored {
        writeln!(
            o,
            "  not applied by {}: {} ({})",
            m.layout.tool(),
            i.path.display(),
            i.reason
        )?;
    }
    Ok(())
}

/// "2 statements in a transaction, then 1 in autocommit".
fn file_shape(f: &MigrationFile) -> String {
    let parts: Vec<String> = f
        .segments
        .iter()
        .map(|s| {
            let n = s.statements.len();
            let how = match s.execution {
                Execution::Transaction => "in a transaction",
                Execution::Autocommit => "in autocommit",
            };
            format!("{n} statement{} {how}", if n == 1 { "" } else { "s" })
        })
        .collect();
    if parts.is_empty() {
        "no statements".into()
    } else {
        parts.join(", then ")
    }
}

fn write_tables(o: &mut String, s: &Scenario) -> std::fmt::Result {
    writeln!(o, "tables")?;
    for t in &s.tables {
        writeln!(o, "  {} — {} rows", t.name, t.rows)?;
        match &t.create {
            Some(create) => writeln!(o, "    {}", one_line(create, 4))?,
            None => writeln!(o, "    (created by the setup migrations)")?,
        }
        for c in &t.columns {
            writeln!(o, "    {:<16} {}", c.name, gen_text(&c.gen))?;
        }
        for a in &t.after_seed {
            writeln!(o, "    after seed: {}", one_line(a, 16))?;
        }
    }
    for q in &s.seed_sql {
        writeln!(o, "  seed sql: {}", one_line(q, 12))?;
    }
    Ok(())
}

fn write_workload(o: &mut String, w: &WorkloadPlan) -> std::fmt::Result {
    let rate = w.rate.map_or("closed loop".to_string(), |r| {
        format!("{} queries/s open loop", trim_float(r))
    });
    writeln!(
        o,
        "workload: {} clients per app, {rate}, {} before, {} after, {} windows",
        w.clients,
        fmt_duration(w.before),
        fmt_duration(w.after),
        fmt_duration(w.window)
    )?;
    if let Some(t) = w.query_timeout {
        writeln!(o, "  query timeout {}", fmt_duration(t))?;
    }
    let total: u32 = w.queries.iter().map(|q| q.weight).sum::<u32>().max(1);
    for q in &w.queries {
        writeln!(
            o,
            "  query {} weight {} ({:.0}%) apps [{}]",
            q.name,
            q.weight,
            100.0 * f64::from(q.weight) / f64::from(total),
            q.apps.join(", ")
        )?;
        writeln!(o, "    {}", one_line(&q.sql, 4))?;
        for (i, p) in q.params.iter().enumerate() {
            writeln!(o, "    ${} {}", i + 1, gen_text(p))?;
        }
    }
    for sc in &w.scripts {
        writeln!(o, "  script {} at {}", sc.name, fmt_duration(sc.at))?;
        for q in &sc.sql {
            writeln!(o, "    {}", one_line(q, 4))?;
        }
    }
    Ok(())
}

/// A step: how it runs (transaction, timeouts, retries, pause), then what.
fn write_step(o: &mut String, st: &StepPlan) -> std::fmt::Result {
    let mut opts = Vec::new();
    if let StepAction::File(f) = &st.action {
        opts.push(file_shape(f));
    }
    if let StepAction::Sql(_) = st.action {
        opts.push(
            if st.transaction {
                "in a transaction"
            } else {
                "autocommit"
            }
            .to_string(),
        );
    }
    if let Some(t) = st.lock_timeout {
        opts.push(format!("lock_timeout {}", fmt_duration(t)));
    }
    if let Some(t) = st.statement_timeout {
        opts.push(format!("statement_timeout {}", fmt_duration(t)));
    }
    if st.retries > 0 {
        opts.push(format!(
            "{} retries from {} backoff",
            st.retries,
            fmt_duration(st.retry_backoff)
        ));
    }
    if !st.pause_after.is_zero() {
        opts.push(format!("pause {} after", fmt_duration(st.pause_after)));
    }
    if !st.expect_error.is_empty() {
        opts.push(format!(
            "expected to fail with {}",
            st.expect_error.join(" or ")
        ));
    }
    if opts.is_empty() {
        writeln!(o, "     step {}", st.name)?;
    } else {
        writeln!(o, "     step {} ({})", st.name, opts.join(", "))?;
    }
    match &st.action {
        StepAction::Sql(stmts) => {
            for q in stmts {
                writeln!(o, "       {}", one_line(q, 7))?;
            }
        }
        StepAction::File(f) => {
            writeln!(o, "       {}", f.path.display())?;
            for seg in &f.segments {
                writeln!(o, "       {}:", seg.reason)?;
                for q in &seg.statements {
                    // A statement of a file the step's file includes (`\i`)
                    // names that file: its line is there.
                    let elsewhere = if q.location.file == f.path {
                        String::new()
                    } else {
                        format!(" ({})", q.location.file.display())
                    };
                    // The text's lines go under its first, past the number.
                    let line = format!("{:>4}", q.location.line);
                    let column = 9 + line.len() + 2;
                    writeln!(
                        o,
                        "         {line}  {}{elsewhere}",
                        one_line(q.code(), column)
                    )?;
                }
            }
            for n in &f.notes {
                writeln!(o, "       note: {n}")?;
            }
            if f.shares_session {
                for n in carried_settings(f) {
                    writeln!(o, "       note: {n}")?;
                }
            }
        }
        StepAction::Backfill(b) => {
            let cond = b
                .where_clause
                .as_ref()
                .map_or(String::new(), |w| format!(" AND ({})", one_line(w, 17)));
            writeln!(
                o,
                "       backfill: UPDATE {} SET {} WHERE {} > lo AND {} <= lo + {}{cond}; pause {} between batches",
                b.table,
                one_line(&b.set, 17),
                b.key,
                b.key,
                b.batch,
                fmt_duration(b.pause)
            )?;
        }
    }
    Ok(())
}

fn write_budget(o: &mut String, b: &Budget) -> std::fmt::Result {
    let mut lines = Vec::new();
    let mut ms = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            lines.push(format!("{name} <= {} ms", trim_float(v)));
        }
    };
    ms("longest blocking lock", b.max_blocking_lock_ms);
    ms("longest app lock wait", b.max_app_wait_ms);
    ms("app p99 during migration", b.p99_ms);
    ms("migration duration", b.max_duration_ms);
    ms("recovery after a step", b.max_recovery_ms);
    ms("replica lag", b.max_replica_lag_ms);
    if let Some(e) = b.max_errors {
        lines.push(format!("app errors <= {e}"));
    }
    if let Some(r) = b.max_error_rate {
        lines.push(format!("app error rate <= {}", trim_float(r)));
    }
    if let Some(n) = b.max_invalid_indexes {
        lines.push(format!("invalid indexes at the end <= {n}"));
    }
    if lines.is_empty() {
        writeln!(o, "budget: none")?;
    } else {
        writeln!(o, "budget")?;
        for l in lines {
            writeln!(o, "  {l}")?;
        }
    }
    Ok(())
}

/// SQL on one line, shortened for a plan listing.
/// What a file of a tool that runs every file on one connection leaves set
/// at session level for the files after it in its phase (the last
/// `SET lock_timeout` / `statement_timeout` it makes there; the rehearsal
/// reads the session's values back, this only says so ahead of it).
fn carried_settings(f: &crate::migrations::MigrationFile) -> Vec<String> {
    ["lock_timeout", "statement_timeout"]
        .into_iter()
        .filter_map(|name| {
            let last = f
                .statements()
                .filter_map(|s| crate::sql::session_time_setting(&s.sql, name))
                .last()?;
            let value = last.map_or("off".to_string(), |ms| format!("{} ms", trim_float(ms)));
            Some(format!(
                "leaves {name} {value} at session level: its tool runs the next files of this \
                 phase on the same connection, under it"
            ))
        })
        .collect()
}

/// `sql` on one line, comments and runs of whitespace made one space —
/// but for a string that spans lines (a function's dollar-quoted body),
/// which keeps its lines: each line after the first is indented to
/// `column`, where the first began, so the plan's outline holds (its tabs
/// made four spaces, which the indent is counted in).
fn one_line(sql: &str, column: usize) -> String {
    let text = crate::sql::one_line(sql, 160).replace('\t', "    ");
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.trim().is_empty() {
                out.push_str(&" ".repeat(column));
            }
        }
        out.push_str(if i > 0 && line.trim().is_empty() {
            ""
        } else {
            line
        });
    }
    out
}

pub fn gen_text(g: &ColumnGen) -> String {
    let base = match &g.kind {
        Gen::Sequence { start } => format!("sequence from {start}"),
        Gen::Int { min, max, dist, s } => match dist {
            IntDist::Uniform => format!("int uniform {min}..={max}"),
            IntDist::Zipf => format!("int zipf(s={}) {min}..={max}", trim_float(*s)),
        },
        Gen::Float { min, max } => format!("float {min}..={max}"),
        Gen::Text { min_len, max_len } => format!("text length {min_len}..={max_len}"),
        Gen::Words { min, max } => format!("words {min}..={max}"),
        Gen::Choice { values, weights } => {
            let items: Vec<String> = values
                .iter()
                .zip(weights)
                // A value with a line break or tab, escaped: one line.
                .map(|(v, w)| match v.contains(char::is_control) {
                    true => format!("{v:?}:{w}"),
                    false => format!("{v}:{w}"),
                })
                .collect();
            format!("choice [{}]", items.join(", "))
        }
        Gen::Bool { p_true } => format!("bool p_true={}", trim_float(*p_true)),
        Gen::Timestamp { from_us, to_us } => {
            format!("timestamp {} ..= {}", ts(*from_us), ts(*to_us))
        }
        Gen::Uuid => "uuid".to_string(),
        Gen::Json { keys } => format!("json with {keys} keys"),
        Gen::ForeignKey { table, rows } => format!("fk {table} 1..={rows}"),
        Gen::Constant { value } => format!("constant {value:?}"),
        Gen::Histogram {
            scale,
            bounds,
            distinct,
        } => {
            let at = |x: f64| match scale {
                Scale::Timestamp => ts(x as i64),
                _ => trim_float(x),
            };
            let kind = format!("{scale:?}").to_lowercase();
            let (lo, hi) = (bounds[0], bounds[bounds.len() - 1]);
            let shape = match bounds.len() {
                2 => String::new(),
                n => format!(" in {} equally likely buckets", n - 1),
            };
            format!(
                "{kind} {} ..= {}{shape}{}",
                at(lo),
                at(hi),
                distinct_text(distinct.as_ref())
            )
        }
        Gen::TextSet {
            min_len,
            max_len,
            distinct,
        } => format!(
            "text length {min_len}..={max_len}{}",
            distinct_text(Some(distinct))
        ),
        Gen::WeightedKeys {
            weights,
            rest,
            rest_weight,
        } => {
            let keys: Vec<String> = weights
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{}:{w}", i + 1))
                .collect();
            let rest = gen_text(&ColumnGen {
                kind: (**rest).clone(),
                null_fraction: 0.0,
            });
            format!("keys [{}], else ({rest}):{rest_weight}", keys.join(", "))
        }
        Gen::ChoiceRest {
            values,
            weights,
            rest,
            rest_weight,
        } => {
            let part = |kind: Gen| {
                gen_text(&ColumnGen {
                    kind,
                    null_fraction: 0.0,
                })
            };
            let listed = part(Gen::Choice {
                values: values.clone(),
                weights: weights.clone(),
            });
            format!("{listed}, else ({}):{rest_weight}", part((**rest).clone()))
        }
        Gen::ParentColumn {
            table,
            column,
            key,
            draw,
            ..
        } => {
            let draw = gen_text(&ColumnGen {
                kind: (**draw).clone(),
                null_fraction: 0.0,
            });
            let key = key
                .as_ref()
                .map_or(String::new(), |k| format!(" for key {k}"));
            format!("{table}.{column} of the row drawn by ({draw}){key}")
        }
        Gen::Addressed { inner, .. } => {
            // Its NULLs are the inner generator's, said once below.
            gen_text(&ColumnGen {
                kind: (**inner).clone(),
                null_fraction: 0.0,
            })
        }
    };
    if g.null_fraction > 0.0 {
        format!("{base}, {}% null", trim_float(g.null_fraction * 100.0))
    } else {
        base
    }
}

fn distinct_text(d: Option<&Distinct>) -> String {
    match d {
        None => String::new(),
        Some(Distinct::Count(n)) => format!(", {n} distinct"),
        Some(Distinct::Share(p)) => format!(", distinct {}% of rows", trim_float(p * 100.0)),
    }
}

fn ts(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map_or(us.to_string(), |t| {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_body_that_spans_lines_keeps_the_plans_outline() {
        let sql = "CREATE FUNCTION f() RETURNS int\n  LANGUAGE plpgsql AS $$\nBEGIN\n\n  RETURN 1;\nEND\n$$";
        assert_eq!(
            one_line(sql, 6),
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n      BEGIN\n\n        RETURN 1;\n      END\n      $$"
        );
        // Whitespace and comments outside strings still make one line.
        assert_eq!(one_line("SELECT 1\n  -- why\n  , 2", 6), "SELECT 1 , 2");
        // A body indented with tabs is indented with spaces, as the plan is.
        assert_eq!(
            one_line("DO $$\nBEGIN\n\tPERFORM 1;\nEND $$", 2),
            "DO $$\n  BEGIN\n      PERFORM 1;\n  END $$"
        );
    }
}
