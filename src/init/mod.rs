//! `pgrehearse init`: a scenario from a live database (README.md "Start
//! from your database"). Reads its schema, statistics and, where
//! pg_stat_statements is installed, its busiest statements, in one
//! read-only transaction; writes a scenario whose tables, generators and
//! workload reproduce them.
//!
//! Data flows one way:
//! session.rs (catalog.rs, stats.rs, statements.rs with literals.rs) → a
//! [`model::Source`] → order.rs (creation order, cycles) and keys.rs →
//! columns.rs (generators: distribution.rs and fk.rs turn pg_stats into
//! them, unique.rs keeps unique keys unique) → ddl.rs (create, after_seed)
//! → workload.rs → write.rs (TOML with comments).

mod catalog;
mod columns;
mod ddl;
mod depends;
mod distinct;
mod distribution;
mod fk;
mod histogram;
mod keys;
mod literals;
pub mod model;
mod order;
mod params;
mod session;
mod spec;
mod statements;
mod stats;
mod unique;
mod views;
mod workload;
mod write;

use crate::error::{Error, Result};
use model::Source;

pub use session::APP_NAME;

/// What `init` is asked for, validated by cli/plan.rs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The source database (a `postgres://` URL or a conninfo string).
    pub database_url: String,
    /// The schema to read tables from.
    pub schema: String,
    /// Only these tables (and what their foreign keys reach); all when None.
    pub tables: Option<Vec<String>>,
    /// Copy the most common values of text columns.
    pub include_values: bool,
}

/// What init read, for the progress line.
pub struct Summary {
    pub tables: usize,
    pub statements: Option<usize>,
}

/// Read the source and write the scenario.
pub async fn init(opts: &InitOptions) -> Result<(String, Summary)> {
    let source = session::read(opts).await?;
    let text = render(&source, opts.include_values)?;
    Ok((
        text,
        Summary {
            tables: source.tables.len(),
            statements: source.statements.as_ref().map(|s| s.top.len()),
        },
    ))
}

/// The scenario for what was read. It is checked like any scenario file
/// before it is handed out: init never prints a file `check` rejects.
pub fn render(source: &Source, include_values: bool) -> Result<String> {
    let order = order::order(&source.tables);
    let keys = keys::keys(&source.tables);
    let (rows, row_notes) = row_counts(source, &keys);
    let cx = columns::Context {
        tables: &source.tables,
        rows: &rows,
        keys: &keys,
        order: &order,
        include_values,
    };
    let gens: Vec<columns::TableGens> = (0..source.tables.len())
        .map(|i| columns::generators(&cx, i))
        .collect();
    let prelude = ddl::prelude(source);
    let views = views::written(source);
    let mut o = String::new();
    write::header(&mut o, &header(source, include_values, &views));
    let _ = std::fmt::Write::write_fmt(
        &mut o,
        format_args!(
            "name = {}\ndescription = {}\n",
            write::string(&source.database),
            write::string(&format!(
                "The tables of {} (schema {}) with the shape of their data, from pgrehearse init",
                source.database, source.schema
            )),
        ),
    );
    write::seed_sql(&mut o, &views.sql);
    let _ = std::fmt::Write::write_fmt(
        &mut o,
        format_args!(
            "\n[postgres]\n# The source's major version: rehearse on the same.\nversion = \"{}\"\n",
            source.version_num / 10000
        ),
    );
    for (pos, &ti) in order.tables.iter().enumerate() {
        let t = &source.tables[ti];
        let sql = ddl::table_sql(t, &source.tables, &gens, ti, &keys, &order);
        let mut notes = vec![format!("{}.{}: {}", t.schema, t.name, row_notes[ti])];
        let mut create = sql.create;
        let mut after_seed = sql.after_seed;
        if pos == 0 {
            if !prelude.sql.is_empty() {
                notes
                    .push("The types, extensions and sequences the tables need come first.".into());
                create = format!("{};\n{create}", prelude.sql.join(";\n"));
            }
            notes.extend(prelude.notes.iter().cloned());
            after_seed.extend(prelude.after_seed.iter().cloned());
        }
        notes.extend(sql.notes);
        write::table(
            &mut o,
            &write::TableOut {
                name: &t.name,
                notes,
                rows: rows[ti],
                create,
                after_seed,
                columns: &gens[ti].columns,
            },
        );
    }
    let written = workload::Written {
        tables: &source.tables,
        rows: &rows,
        gens: &gens,
        order: &order.tables,
    };
    write::workload(&mut o, &workload::workload(source, &written));
    write::phase(&mut o);
    // A file check rejects is a bug here, not the user's: say so.
    if let Err(e) =
        crate::scenario::load_str("init.toml".as_ref(), o.as_bytes(), &Default::default())
    {
        return Err(Error::Other(anyhow::anyhow!(invalid(&o, &e.to_string()))));
    }
    Ok(o)
}

/// What init says when its own scenario does not validate: what failed,
/// the scenario (whose lines the errors point at), and what failed again
/// after it, where a long scenario leaves the terminal.
fn invalid(scenario: &str, errors: &str) -> String {
    format!(
        "init wrote a scenario that does not validate (a bug in pgrehearse; please report it):\n\
         {errors}\n--- the scenario (init.toml) ---\n{scenario}--- end of the scenario ---\n\
         init wrote no scenario: the one above does not validate:\n{errors}"
    )
}

/// Rows per table (by index), with a note on where the figure came from.
fn row_counts(source: &Source, keys: &keys::Keys) -> (Vec<u64>, Vec<String>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for t in &source.tables {
        if t.never_analyzed() && t.relpages > 0 {
            // About 100 bytes a row on 8 kB pages.
            let guess = (t.relpages as u64 * 80).max(1);
            rows.push(guess);
            notes.push(format!(
                "never analyzed, so {guess} rows is a guess from its {} pages; ANALYZE the source for real figures",
                t.relpages
            ));
        } else {
            rows.push(t.rows());
            notes.push(match t.rows() {
                0 => "empty in the source (pg_class.reltuples 0)".to_string(),
                n => format!("{n} rows (pg_class.reltuples)"),
            });
        }
    }
    // A table that foreign keys of loaded rows reference needs a key to
    // reference.
    for ((child, _), &p) in keys.generated.iter().chain(&keys.copied) {
        let c = source.tables.iter().position(|t| t.oid == *child);
        if c.is_some_and(|c| rows[c] > 0) && rows[p] == 0 {
            rows[p] = 1;
            notes[p] =
                "empty in the source, but given 1 row: rows of other tables reference it".into();
        }
    }
    (rows, notes)
}

fn header(source: &Source, include_values: bool, views: &views::Written) -> Vec<String> {
    let mut h = vec![format!(
        "Written by `pgrehearse init` from database {} (PostgreSQL {}.{}), schema {}.",
        source.database,
        source.version_num / 10000,
        source.version_num % 10000,
        source.schema
    )];
    if !source.added_by_fk.is_empty() {
        let picked = if source.named_tables {
            "the tables --tables named".to_string()
        } else {
            format!("the tables of schema {}", source.schema)
        };
        h.push(format!(
            "Besides {picked}: {}, which their foreign keys reference.",
            source.added_by_fk.join(", ")
        ));
    }
    h.push(
        "Copied from the source: the schema (columns, types, defaults, constraints, indexes), \
         each table's row count (pg_class.reltuples) and, from pg_stats, each column's share of \
         NULLs, number of distinct values and most common values' frequencies, and the values of \
         number, timestamp and date columns (their most common values and histogram bounds)."
            .into(),
    );
    if include_values {
        h.push("Also copied (--include-values): the most common values of text columns.".into());
    } else {
        h.push(
            "Not copied: text values. Text columns get random text of the same average length, \
             their most common values become labels (status_1, status_2, ...) with the same \
             frequencies; --include-values copies them. Enum labels and the values a CHECK lists \
             are schema, and copied as such."
                .into(),
        );
    }
    if !views.names.is_empty() {
        h.push(format!(
            "Views ({}) are created in seed_sql, once the tables are loaded, a view after the \
             views it reads.",
            views.names.join(", ")
        ));
    }
    if !views.left_out.is_empty() {
        h.push(format!("Views left out: {}.", views.left_out.join("; ")));
    }
    let one_offs = source.statements.as_ref().and_then(|st| {
        st.skipped
            .iter()
            .find(|(why, _)| why == statements::ONE_OFF)
            .map(|(_, n)| *n)
    });
    if let Some(n) = one_offs {
        h.push(format!(
            "Left out of the workload: {n} statement(s) on these tables that pg_stat_statements \
             saw {}. The comments above [workload] say what else was skipped and why.",
            statements::ONE_OFF
        ));
    }
    h.push(
        "Each generator's comment says which figures it reproduces. Table rows scale with --rows \
         and --scale; `distinct` given as a share of rows scales with them."
            .into(),
    );
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_invalid_scenario_is_named_before_and_after_its_text() {
        let errors = "init.toml:3:1: table[0].columns.v.distinct: 60 distinct integers do not fit";
        let long: String = (0..500).map(|i| format!("# line {i}\n")).collect();
        let m = super::invalid(&long, errors);
        assert!(m.starts_with("init wrote a scenario that does not validate"));
        assert!(m.ends_with(&format!("does not validate:\n{errors}")), "{m}");
        assert!(m.contains(&long));
    }
}
