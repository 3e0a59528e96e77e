//! What `pgrehearse seed --replace` drops before it runs the scenario's SQL
//! again, in the same transaction as the seed (staging.rs), and what a seed
//! that failed after its commit drops: the scenario's tables, and every
//! object its SQL (each table's create, seed_sql, after_seed) creates that a
//! second run would collide with — enum and composite types, domains,
//! sequences, functions, procedures, views, schemas, extensions
//! ([`crate::sql::created_objects`]: not those made `IF NOT EXISTS` or
//! `OR REPLACE`, which do not collide).
//!
//! Why drop them rather than let the create skip what exists: an object
//! left from an earlier seed may no longer be what the scenario says (an
//! enum with other labels, a domain with another check), and the replaced
//! data must be what a fresh database would get. Each is dropped `IF
//! EXISTS` and without CASCADE: what the database has beyond the scenario
//! (a table of yours with a foreign key to one of the scenario's, a column
//! of yours of its enum type) stops the replace, and the database refuses
//! it by name (exit 2, nothing changed).
//!
//! Order: objects are dropped in the reverse of the order the seed creates
//! them (a domain before the enum it is over, a view before its tables),
//! except that every table goes in one `DROP TABLE`, placed where the last
//! created table is: one statement drops tables that reference each other
//! (a cycle of foreign keys closed in after_seed) where table by table the
//! first would be refused.

use crate::scenario::Scenario;
use crate::sql::{created_objects, Created, CreatedKind};

/// The DROP statements, in order. `tables`: the scenario's tables that
/// exist, as the catalog names them.
pub(super) fn drops(s: &Scenario, tables: &[String]) -> Vec<String> {
    // The seed's own order: every create, then seed_sql, then after_seed.
    let creates = s.tables.iter().filter_map(|t| t.create.as_deref());
    let after_seed = s.tables.iter().flat_map(|t| t.after_seed.iter());
    let created: Vec<Created> = creates
        .chain(s.seed_sql.iter().map(String::as_str))
        .chain(after_seed.map(String::as_str))
        .flat_map(created_objects)
        .collect();
    let mut all_tables: Vec<String> = tables.to_vec();
    for c in created.iter().filter(|c| c.kind == CreatedKind::Table) {
        if !all_tables.contains(&c.name) {
            all_tables.push(c.name.clone());
        }
    }
    let mut groups: Vec<(CreatedKind, Vec<String>)> = Vec::new();
    let mut tables_placed = false;
    for c in created.iter().rev() {
        if c.kind == CreatedKind::Table {
            if !tables_placed {
                groups.push((CreatedKind::Table, all_tables.clone()));
                tables_placed = true;
            }
            continue;
        }
        let target = c.target();
        match groups.last_mut() {
            Some((kind, names)) if *kind == c.kind => {
                if !names.contains(&target) {
                    names.push(target);
                }
            }
            _ => groups.push((c.kind, vec![target])),
        }
    }
    if !tables_placed && !all_tables.is_empty() {
        groups.insert(0, (CreatedKind::Table, all_tables));
    }
    groups
        .into_iter()
        .map(|(kind, names)| format!("DROP {} IF EXISTS {}", kind.keyword(), names.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TablePlan;

    fn table(name: &str, create: &str, after_seed: &[&str]) -> TablePlan {
        TablePlan {
            name: name.into(),
            rows: 10,
            create: Some(create.into()),
            after_seed: after_seed.iter().map(|s| s.to_string()).collect(),
            columns: Vec::new(),
        }
    }

    #[test]
    fn drops_in_reverse_with_every_table_in_one_statement() {
        let s = Scenario::seed_only(
            "t",
            vec![
                table(
                    "docs",
                    "CREATE TYPE doc_state AS ENUM ('draft', 'live'); \
                     CREATE DOMAIN short AS text CHECK (length(VALUE) < 10); \
                     CREATE TABLE docs (id int PRIMARY KEY, state doc_state, title short)",
                    &["CREATE VIEW live_docs AS SELECT * FROM docs WHERE state = 'live'"],
                ),
                table(
                    "refs",
                    "CREATE SEQUENCE ref_ids; \
                     CREATE TABLE refs (id int DEFAULT nextval('ref_ids'), doc int REFERENCES docs)",
                    &["CREATE INDEX refs_doc ON refs (doc)"],
                ),
            ],
        );
        assert_eq!(
            drops(&s, &["public.docs".into()]),
            vec![
                "DROP VIEW IF EXISTS live_docs",
                "DROP TABLE IF EXISTS public.docs, docs, refs",
                "DROP SEQUENCE IF EXISTS ref_ids",
                "DROP DOMAIN IF EXISTS short",
                "DROP TYPE IF EXISTS doc_state",
            ]
        );
    }

    #[test]
    fn existing_tables_are_dropped_even_when_no_sql_names_them_so() {
        let s = Scenario::seed_only(
            "t",
            vec![table(
                "Docs",
                "CREATE TABLE IF NOT EXISTS \"Docs\" (id int)",
                &[],
            )],
        );
        assert_eq!(
            drops(&s, &["\"Docs\"".into()]),
            vec!["DROP TABLE IF EXISTS \"Docs\""]
        );
        assert_eq!(drops(&s, &[]), Vec::<String>::new());
    }
}
