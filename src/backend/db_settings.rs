//! The settings a database pgrehearse creates on a server it does not own
//! gets, since CREATE DATABASE copies none: those of the database it stands
//! in for (the URL's: its lock_timeout, statement_timeout or search_path
//! are what production's sessions run under), then the scenario's
//! `[postgres] settings` that a database can carry. Each is given on its
//! own: one that cannot be must not cost the others, and each that is not
//! given is said, with why and what it means for the rehearsal.

use tokio_postgres::Client;

use crate::pg::{error_text, quote_ident, quote_literal};

/// Settings whose absence changes what a rehearsal measures (lock waits,
/// timeouts, what the SQL resolves to): not having one is said loudly.
const DECISIVE: [&str; 8] = [
    "lock_timeout",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
    "idle_session_timeout",
    "deadlock_timeout",
    "search_path",
    "default_transaction_isolation",
];

/// A setting that was not given to the new database, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct NotGiven {
    /// The whole sentence, for stderr and run.json's `warnings`.
    pub text: String,
    /// The rehearsal's own sessions run without a setting that decides
    /// lock waits or timeouts: its verdict may not be production's.
    pub decisive: bool,
}

/// Give database `name` the settings of database `from` (`ALTER DATABASE
/// ... SET`, and `ALTER ROLE ... IN DATABASE ... SET`), each on its own.
/// Returns those that could not be given; Err only when they cannot be
/// read at all.
pub async fn copy(
    admin: &Client,
    from: &str,
    name: &str,
) -> Result<Vec<NotGiven>, tokio_postgres::Error> {
    let me: String = admin
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0);
    let rows = admin
        .query(
            "SELECT r.rolname::text, s.setconfig FROM pg_db_role_setting s \
             LEFT JOIN pg_roles r ON r.oid = s.setrole \
             WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1) \
             ORDER BY s.setrole",
            &[&from],
        )
        .await?;
    let mut not_given = Vec::new();
    for row in rows {
        let role: Option<String> = row.get(0);
        let settings: Vec<String> = row.get::<_, Option<Vec<String>>>(1).unwrap_or_default();
        let target = match &role {
            Some(r) => format!("ROLE {} IN DATABASE {}", quote_ident(r), quote_ident(name)),
            None => format!("DATABASE {}", quote_ident(name)),
        };
        for setting in settings {
            let Some((key, value)) = setting.split_once('=') else {
                continue;
            };
            let sql = format!(
                "ALTER {target} SET {} TO {}",
                quote_ident(key),
                setting_value(key, value)
            );
            if let Err(e) = admin.batch_execute(&sql).await {
                not_given.push(not_copied(from, name, role.as_deref(), &me, key, value, &e));
            }
        }
    }
    Ok(not_given)
}

/// Why one of `from`'s settings is not in `name`, and whether that matters:
/// another role's setting does not (the rehearsal connects as `me`); a
/// database-wide one, or `me`'s own, does.
fn not_copied(
    from: &str,
    name: &str,
    role: Option<&str>,
    me: &str,
    key: &str,
    value: &str,
    e: &tokio_postgres::Error,
) -> NotGiven {
    let why = error_text(e);
    let (text, applies) = match role {
        Some(r) if r != me => (
            format!(
                "the role-specific setting {key} = {value} of role {r} in database {from} \
                 (ALTER ROLE {r} IN DATABASE {from} SET) was not copied to {name}: {why}; \
                 it applies only to {r}'s sessions, and the rehearsal's connect as {me}, \
                 so they do not miss it"
            ),
            false,
        ),
        Some(r) => (
            format!(
                "the role-specific setting {key} = {value} of role {r} in database {from} \
                 (ALTER ROLE {r} IN DATABASE {from} SET) was not copied to {name}: {why}; \
                 the rehearsal connects as {r}: its sessions run without it"
            ),
            true,
        ),
        None => (
            format!(
                "the database-wide setting {key} = {value} of {from} (ALTER DATABASE {from} \
                 SET) was not copied to {name}: {why}; every session of the rehearsal runs \
                 without it"
            ),
            true,
        ),
    };
    let decisive = applies && DECISIVE.contains(&key.to_ascii_lowercase().as_str());
    let text = if decisive {
        format!(
            "{text} — {key} decides lock waits and timeouts, so this rehearsal's verdict \
             may not be production's"
        )
    } else {
        text
    };
    NotGiven { text, decisive }
}

/// The scenario's `[postgres] settings` on a server pgrehearse does not
/// own: each one a session may set (`pg_settings.context` user or
/// superuser) is given to database `name` with `ALTER DATABASE ... SET`,
/// so every session of the rehearsal starts with it, as with a server
/// setting; one that only the server's configuration can set (postmaster,
/// sighup ...), or that the role may not set, is not. Returns the settings
/// in force (given, or already the server's value) and a sentence for each
/// that is not.
pub async fn apply_scenario(
    admin: &Client,
    name: &str,
    settings: &[(String, String)],
) -> (Vec<(String, String)>, Vec<String>) {
    let mut in_force = Vec::new();
    let mut not_applied = Vec::new();
    for (key, value) in settings {
        let row = admin
            .query_opt(
                "SELECT context, current_setting(name) FROM pg_settings WHERE name = lower($1)",
                &[key],
            )
            .await;
        let (context, current) = match row {
            Ok(Some(r)) => (r.get::<_, String>(0), Some(r.get::<_, String>(1))),
            // Not a known setting (an extension's, not loaded): let the
            // server decide whether a database may carry it.
            Ok(None) => ("user".to_string(), None),
            Err(e) => {
                not_applied.push(format!(
                    "the scenario's setting {key} = {value} was not applied: {}",
                    error_text(&e)
                ));
                continue;
            }
        };
        if current.as_deref() == Some(value.as_str()) {
            in_force.push((key.clone(), value.clone()));
            continue;
        }
        let server_has = current
            .map(|c| format!("; the server's {key} = {c} is in force"))
            .unwrap_or_default();
        if !matches!(context.as_str(), "user" | "superuser") {
            not_applied.push(format!(
                "the scenario's setting {key} = {value} was not applied: it can only be set \
                 in the server's configuration (pg_settings.context = {context}), which is \
                 not pgrehearse's on the url backend{server_has}"
            ));
            continue;
        }
        let sql = format!(
            "ALTER DATABASE {} SET {} TO {}",
            quote_ident(name),
            quote_ident(key),
            setting_value(key, value)
        );
        match admin.batch_execute(&sql).await {
            Ok(()) => in_force.push((key.clone(), value.clone())),
            Err(e) => not_applied.push(format!(
                "the scenario's setting {key} = {value} was not applied \
                 (ALTER DATABASE {name} SET): {}{server_has}",
                error_text(&e)
            )),
        }
    }
    (in_force, not_applied)
}

/// What a url backend's scratch database got, and what it did not.
pub struct Prepared {
    /// Each said on stderr already.
    pub warnings: Vec<String>,
    pub settings_in_force: Vec<(String, String)>,
}

/// Give the scratch database `name` the settings of `from` (the URL's
/// database), then the scenario's (`opts.settings`: they win, as a
/// scenario's settings win over a server's), and compare the scenario's
/// `[postgres] version` with the server's `version`. Everything that
/// differs from what was asked is said on stderr — a decisive setting lost
/// as `WARNING` — and returned for run.json.
pub async fn prepare(
    admin: &Client,
    from: &str,
    name: &str,
    opts: &super::BackendOptions,
    version: &str,
) -> Prepared {
    let mut said: Vec<(bool, String)> = Vec::new();
    match copy(admin, from, name).await {
        Ok(not_given) => said.extend(not_given.into_iter().map(|n| (n.decisive, n.text))),
        Err(e) => said.push((
            true,
            format!(
                "the settings of {from} (pg_db_role_setting) could not be read to copy them to \
                 {name}: {}; the rehearsal's sessions run without them, lock_timeout and \
                 statement_timeout included",
                error_text(&e)
            ),
        )),
    }
    let (settings_in_force, not_applied) = apply_scenario(admin, name, &opts.settings).await;
    said.extend(not_applied.into_iter().map(|t| (false, t)));
    if let Some(w) = version_mismatch(opts.version.as_deref(), version) {
        said.push((false, w));
    }
    for (decisive, text) in &said {
        let level = if *decisive { "WARNING" } else { "warning" };
        crate::say!("pgrehearse: {level}: {text}");
    }
    Prepared {
        warnings: said.into_iter().map(|(_, t)| t).collect(),
        settings_in_force,
    }
}

/// The scenario's `[postgres] version` is what the server pgrehearse
/// provisions runs; a url server is what it is, so a different one is
/// said (not refused: rehearsing on the staging server at hand is the
/// point of the url backend).
fn version_mismatch(wanted: Option<&str>, server: &str) -> Option<String> {
    let wanted = wanted?.trim();
    let same = server == wanted || server.starts_with(&format!("{wanted}."));
    (!same).then(|| {
        format!(
            "the scenario asks for PostgreSQL {wanted} ([postgres] version); the url server \
             runs PostgreSQL {server}, and the rehearsal runs there"
        )
    })
}

/// A setting's value as ALTER ... SET takes it: a list setting
/// (search_path and the like, stored as written: `app, "$user"`) as is, any
/// other as one quoted literal.
fn setting_value(key: &str, value: &str) -> String {
    const LISTS: [&str; 6] = [
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
        "unix_socket_directories",
    ];
    if LISTS.contains(&key.to_ascii_lowercase().as_str()) {
        value.to_string()
    } else {
        quote_literal(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_major_is_said_with_both_versions() {
        assert_eq!(version_mismatch(None, "15.18"), None);
        assert_eq!(version_mismatch(Some("15"), "15.18"), None);
        assert_eq!(version_mismatch(Some("15.18"), "15.18"), None);
        let w = version_mismatch(Some("17"), "15.18").unwrap();
        assert!(w.contains("PostgreSQL 17") && w.contains("15.18"), "{w}");
        assert!(version_mismatch(Some("1"), "15.18").is_some());
    }
}
