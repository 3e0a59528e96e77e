//! What the tables depend on besides their columns' types: the functions
//! their defaults, generated columns, checks and indexes call (an
//! extension's brings CREATE EXTENSION; a user's cannot be written, so a
//! comment names it), and their triggers (named in a comment: rehearsing
//! them would need their functions).

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::model::Table;
use super::session::read_error;
use crate::error::Result;

pub struct Depends {
    /// Extensions whose functions the tables call (quoted).
    pub extensions: Vec<String>,
    /// User functions they call that are not written, `name(argument
    /// types)`: another language than SQL or PL/pgSQL, or another schema.
    pub functions: Vec<String>,
    /// Those that are: each `CREATE OR REPLACE FUNCTION` as the source has
    /// it (pg_get_functiondef), unqualified, and its `name(argument types)`.
    pub function_defs: Vec<(String, String)>,
}

/// The functions the tables' defaults, checks and indexes call, in the
/// source schema `schema` (search_path: its functions print unqualified).
pub async fn read(client: &Client, tables: &mut [Table], schema: &str) -> Result<Depends> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = client
        .query(
            "SELECT DISTINCT p.oid::regprocedure::text, quote_ident(x.extname), \
               CASE WHEN l.lanname IN ('sql', 'plpgsql') AND p.prokind IN ('f', 'p') \
                 AND p.pronamespace::regnamespace::text = quote_ident($2) \
               THEN pg_get_functiondef(p.oid) END, \
               quote_ident(p.pronamespace::regnamespace::text) || '.' || quote_ident(p.proname) \
             FROM pg_depend d \
             JOIN pg_proc p ON p.oid = d.refobjid \
             JOIN pg_language l ON l.oid = p.prolang \
             LEFT JOIN pg_depend e ON e.classid = 'pg_proc'::regclass AND e.objid = p.oid \
                  AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e' \
             LEFT JOIN pg_extension x ON x.oid = e.refobjid \
             WHERE d.refclassid = 'pg_proc'::regclass \
               AND p.pronamespace <> 'pg_catalog'::regnamespace \
               AND ((d.classid = 'pg_attrdef'::regclass \
                     AND d.objid IN (SELECT oid FROM pg_attrdef WHERE adrelid = ANY($1))) \
                 OR (d.classid = 'pg_constraint'::regclass \
                     AND d.objid IN (SELECT oid FROM pg_constraint WHERE conrelid = ANY($1))) \
                 OR (d.classid = 'pg_class'::regclass \
                     AND d.objid IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY($1)))) \
             ORDER BY 1",
            &[&oids, &schema],
        )
        .await
        .map_err(|e| read_error(e, "the functions the tables use"))?;
    let mut extensions = BTreeSet::new();
    let (mut functions, mut function_defs) = (Vec::new(), Vec::new());
    for r in rows {
        match (r.get::<_, Option<String>>(1), r.get::<_, Option<String>>(2)) {
            (Some(ext), _) => {
                extensions.insert(ext);
            }
            // Written where the tables are: unqualified, as they are.
            (None, Some(def)) => {
                let qualified: String = r.get(3);
                let def = def.trim_end().replacen(
                    &format!("{qualified}("),
                    &format!("{}(", unqualified(&qualified)),
                    1,
                );
                function_defs.push((def, r.get(0)));
            }
            (None, None) => functions.push(r.get(0)),
        }
    }
    let triggers = client
        .query(
            "SELECT tgrelid, quote_ident(tgname) FROM pg_trigger \
             WHERE tgrelid = ANY($1) AND NOT tgisinternal ORDER BY 1, 2",
            &[&oids],
        )
        .await
        .map_err(|e| read_error(e, "the triggers"))?;
    for r in triggers {
        let oid: u32 = r.get(0);
        if let Some(t) = tables.iter_mut().find(|t| t.oid == oid) {
            t.triggers.push(r.get(1));
        }
    }
    Ok(Depends {
        extensions: extensions.into_iter().collect(),
        functions,
        function_defs,
    })
}

/// `name` of `schema.name` (both quoted as needed).
fn unqualified(qualified: &str) -> &str {
    // The schema part is quote_ident's: a quoted one may hold a dot, so
    // split after its closing quote.
    let after_schema = match qualified.strip_prefix('"') {
        Some(rest) => rest.find("\".").map_or(0, |i| i + 3),
        None => qualified.find('.').map_or(0, |i| i + 1),
    };
    &qualified[after_schema..]
}
