//! The source schema's views and materialized views, reproduced in
//! `seed_sql` (which runs once every table is loaded) from
//! `pg_get_viewdef`, views a view reads before it. A migration that alters
//! or drops a column a view uses fails, or must rebuild the view: the
//! rehearsal needs them. A view that reads what the scenario does not have
//! (a table --tables left out, another schema's relation, a user function)
//! is named in the header instead.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::model::{Source, View};
use super::session::read_error;
use crate::error::Result;

/// The views and materialized views of `schema`, by name.
pub async fn read(client: &Client, schema: &str) -> Result<Vec<View>> {
    let rows = client
        .query(
            "SELECT c.oid, c.relname::text, quote_ident(c.relname), c.relkind::text, \
                    pg_get_viewdef(c.oid, true), coalesce(c.reloptions, '{}')::text[], \
                    ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite r \
                          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
                          WHERE r.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass \
                            AND d.refobjid <> c.oid ORDER BY 1), \
                    ARRAY(SELECT DISTINCT d.refobjid::regclass::text FROM pg_rewrite r \
                          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
                          WHERE r.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass \
                            AND d.refobjid <> c.oid ORDER BY 1), \
                    ARRAY(SELECT DISTINCT p.oid::regprocedure::text || coalesce(' ' || quote_ident(x.extname), '') \
                          FROM pg_rewrite r \
                          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
                          JOIN pg_proc p ON p.oid = d.refobjid \
                          LEFT JOIN pg_depend e ON e.classid = 'pg_proc'::regclass AND e.objid = p.oid \
                               AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e' \
                          LEFT JOIN pg_extension x ON x.oid = e.refobjid \
                          WHERE r.ev_class = c.oid AND d.refclassid = 'pg_proc'::regclass \
                            AND p.pronamespace <> 'pg_catalog'::regnamespace ORDER BY 1) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('v', 'm') \
               AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.classid = 'pg_class'::regclass \
                               AND x.objid = c.oid AND x.deptype = 'e') \
             ORDER BY c.relname",
            &[&schema],
        )
        .await
        .map_err(|e| read_error(e, "the views"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind: String = r.get(3);
            let def: String = r.get(4);
            View {
                oid: r.get(0),
                name: r.get(1),
                sql_name: r.get(2),
                materialized: kind == "m",
                def: def.trim().trim_end_matches(';').trim_end().to_string(),
                options: r.get(5),
                reads: r.get(6),
                reads_names: r.get(7),
                functions: r.get(8),
            }
        })
        .collect())
}

/// What becomes of the views.
#[derive(Debug, Default, PartialEq)]
pub struct Written {
    /// `CREATE [MATERIALIZED] VIEW ...`, a view after the views it reads.
    pub sql: Vec<String>,
    /// Their names, in the same order.
    pub names: Vec<String>,
    /// `name (why)` of the views left out.
    pub left_out: Vec<String>,
}

/// The views whose every relation is a table of the scenario (of the source
/// schema: others are created in the rehearsal's default schema, where the
/// view's qualified name would not find them) or a view written before
/// them, and whose functions are built in or an extension's the scenario
/// creates.
pub fn written(source: &Source) -> Written {
    let mut have: BTreeSet<u32> = source
        .tables
        .iter()
        .filter(|t| t.schema == source.schema)
        .map(|t| t.oid)
        .collect();
    let mut out = Written::default();
    let mut pending: Vec<&View> = source.views.iter().collect();
    // Views reading views: each round writes those whose reads are there.
    loop {
        let (ready, wait): (Vec<&View>, Vec<&View>) = pending
            .into_iter()
            .partition(|v| v.reads.iter().all(|o| have.contains(o)));
        if ready.is_empty() {
            pending = wait;
            break;
        }
        for v in ready {
            if let Some(why) = unwritable_function(v, &source.extensions) {
                out.left_out.push(format!("{} ({why})", v.name));
                continue;
            }
            have.insert(v.oid);
            out.sql.push(create_sql(v));
            out.names.push(v.name.clone());
        }
        pending = wait;
    }
    for v in pending {
        let missing: Vec<&str> = v
            .reads
            .iter()
            .zip(&v.reads_names)
            .filter(|(o, _)| !have.contains(o))
            .map(|(_, n)| n.as_str())
            .collect();
        out.left_out.push(format!(
            "{} (it reads {}, which the scenario does not have)",
            v.name,
            missing.join(", ")
        ));
    }
    out.left_out.sort();
    out
}

/// Why a view's functions keep it out: a user function (not written), or
/// an extension's the scenario does not create.
fn unwritable_function(v: &View, extensions: &[String]) -> Option<String> {
    // `f(args)`, or `f(args) extension` for an extension's.
    let missing: Vec<String> = v
        .functions
        .iter()
        .filter_map(|f| match f.rsplit_once(") ") {
            Some((_, ext)) if extensions.iter().any(|e| e == ext) => None,
            Some((sig, _)) => Some(format!("{sig})")),
            None => Some(f.clone()),
        })
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "it calls {}, which the scenario does not create",
            missing.join(", ")
        )
    })
}

fn create_sql(v: &View) -> String {
    let with = if v.options.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", v.options.join(", "))
    };
    let kind = if v.materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    };
    format!("CREATE {kind} {}{with} AS\n{}", v.sql_name, v.def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::model::Table;

    fn view(oid: u32, name: &str, reads: &[(u32, &str)], functions: &[&str]) -> View {
        View {
            oid,
            name: name.into(),
            sql_name: name.into(),
            materialized: false,
            def: "SELECT 1".into(),
            options: Vec::new(),
            reads: reads.iter().map(|r| r.0).collect(),
            reads_names: reads.iter().map(|r| r.1.to_string()).collect(),
            functions: functions.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn views_come_after_what_they_read() {
        let source = Source {
            schema: "public".into(),
            tables: vec![Table {
                oid: 1,
                schema: "public".into(),
                name: "t".into(),
                ..Table::default()
            }],
            extensions: vec!["citext".into()],
            views: vec![
                view(10, "a_on_b", &[(11, "b_on_t")], &[]),
                view(11, "b_on_t", &[(1, "t")], &["lower(citext) citext"]),
                view(12, "c_elsewhere", &[(1, "t"), (99, "other.x")], &[]),
                view(13, "d_user_fn", &[(1, "t")], &["app.f(integer)"]),
            ],
            ..Source::default()
        };
        let w = written(&source);
        assert_eq!(w.names, ["b_on_t", "a_on_b"]);
        assert_eq!(w.sql[0], "CREATE VIEW b_on_t AS\nSELECT 1");
        assert_eq!(
            w.left_out,
            [
                "c_elsewhere (it reads other.x, which the scenario does not have)",
                "d_user_fn (it calls app.f(integer), which the scenario does not create)"
            ]
        );
    }
}
