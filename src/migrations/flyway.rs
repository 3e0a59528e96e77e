//! Flyway (`db/migration`): `V<version>__<description>.sql` in version order,
//! `B<version>__` baselines, `R__<description>.sql` repeatables after them,
//! files found recursively; per-file `.sql.conf` script configuration;
//! `${placeholder}` substitution; Flyway's own rule for which files run
//! outside a transaction, and its refusal of files that mix both kinds.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::classify::{flyway_non_transactional, refused_in_transaction};
use super::dir;
use super::error::{MigrationError, MigrationErrors};
use super::model::{Ignored, Kind, Layout, Location, MigrationFile, MigrationSet, Segment};
use super::script::{self, Reader, Run, Source};
use super::segment::{self, Context};

/// The Flyway settings that change how files run. Defaults are Flyway's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlywayOptions {
    /// `flyway.mixed`: allow a file with both transactional and
    /// non-transactional statements (then the whole file runs outside a
    /// transaction). Default false: Flyway refuses such a file.
    pub mixed: bool,
    /// `flyway.executeInTransaction` (default true).
    pub execute_in_transaction: bool,
    /// `flyway.placeholderReplacement` (default true).
    pub placeholder_replacement: bool,
    /// `flyway.placeholders.*`. `flyway:defaultSchema` (public),
    /// `flyway:table` (flyway_schema_history) and `flyway:filename` are
    /// built in; these override them.
    pub placeholders: BTreeMap<String, String>,
}

impl Default for FlywayOptions {
    fn default() -> Self {
        FlywayOptions {
            mixed: false,
            execute_in_transaction: true,
            placeholder_replacement: true,
            placeholders: BTreeMap::new(),
        }
    }
}

/// A Flyway version: numeric parts compared one by one as integers, missing
/// parts are zero (so 1 = 1.0 = 1.0.0, and 1.10 > 1.9); `_` separates parts
/// like `.`.
#[derive(Debug, Clone)]
pub struct Version {
    /// Decimal digits without leading zeros; trailing zero parts dropped.
    parts: Vec<String>,
}

impl Version {
    /// Flyway's MigrationVersion: `_` becomes `.`, split at a `.` followed
    /// by a digit, every part an integer.
    pub fn parse(raw: &str) -> Option<Version> {
        let normalized = raw.replace('_', ".");
        let mut parts = Vec::new();
        let mut rest = normalized.as_str();
        loop {
            let cut = rest
                .char_indices()
                .find(|&(i, c)| c == '.' && rest[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
                .map(|(i, _)| i);
            let part = &rest[..cut.unwrap_or(rest.len())];
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let trimmed = part.trim_start_matches('0');
            parts.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
            match cut {
                Some(i) => rest = &rest[i + 1..],
                None => break,
            }
        }
        while parts.len() > 1 && parts.last().is_some_and(|p| p == "0") {
            parts.pop();
        }
        Some(Version { parts })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        let part = |v: &Version, i: usize| v.parts.get(i).map_or("0", |s| s.as_str()).to_string();
        for i in 0..n {
            let (a, b) = (part(self, i), part(other, i));
            let c = a.len().cmp(&b.len()).then_with(|| a.cmp(&b));
            if c != Ordering::Equal {
                return c;
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// A name Flyway matched, before reading the file.
struct Named {
    path: PathBuf,
    name: String,
    kind: Kind,
    version: Option<Version>,
    version_text: String,
    description: String,
}

/// What a file name is to Flyway: a migration, or ignored (with why).
fn classify_name(file_name: &str) -> Result<(Kind, String, String), String> {
    let lower = file_name.to_ascii_lowercase();
    let Some(stem) = lower.strip_suffix(".sql").map(|s| &file_name[..s.len()]) else {
        return Err("not a .sql file".into());
    };
    // Callback event names are the longest prefixes, so Flyway tries them
    // first (beforeMigrate.sql, afterMigrate__grants.sql, ...).
    if stem.starts_with("before") || stem.starts_with("after") || stem.starts_with("createSchema") {
        return Err(
            "a Flyway callback script: it runs around migrate, not as a migration; not rehearsed"
                .into(),
        );
    }
    let (kind, rest) = match stem.split_at(stem.chars().next().map_or(0, char::len_utf8)) {
        ("V", rest) => (Kind::Versioned, rest),
        ("B", rest) => (Kind::Baseline, rest),
        ("R", rest) => (Kind::Repeatable, rest),
        ("U", _) => return Err("a Flyway undo script (Teams edition, never run by migrate)".into()),
        _ => {
            return Err(
                "not a Flyway migration name (V<version>__<description>.sql, R__<description>.sql)"
                    .into(),
            )
        }
    };
    let (version, description) = rest.split_once("__").unwrap_or((rest, ""));
    let description = description.replace('_', " ");
    match kind {
        Kind::Repeatable if !version.is_empty() => {
            Err(format!("a repeatable migration name cannot have a version: Flyway rejects it (R__{description}.sql)"))
        }
        Kind::Repeatable => Ok((kind, String::new(), description)),
        _ if Version::parse(version).is_none() => Err(format!(
            "\"{version}\" is not a Flyway version (digits separated by . or _): Flyway ignores \
             the file"
        )),
        _ => Ok((kind, version.replace('_', "."), description)),
    }
}

/// Is `file_name` a Flyway migration (V, B or R prefix, valid)?
pub fn is_migration_name(file_name: &str) -> bool {
    classify_name(file_name).is_ok()
}

pub fn load(dir_path: &Path, options: &FlywayOptions) -> Result<MigrationSet, MigrationErrors> {
    let mut errors = Vec::new();
    let mut ignored = Vec::new();
    let mut named: Vec<Named> = Vec::new();
    for e in dir::walk(dir_path)? {
        if e.name.ends_with(".conf") {
            continue; // read with its script
        }
        let file_name = e.name.rsplit('/').next().unwrap_or(&e.name);
        match classify_name(file_name) {
            Ok((kind, version_text, description)) => named.push(Named {
                version: Version::parse(&version_text),
                path: e.path,
                name: e.name,
                kind,
                version_text,
                description,
            }),
            Err(reason) if e.name.to_ascii_lowercase().ends_with(".sql") => ignored.push(Ignored {
                path: e.path,
                reason,
            }),
            Err(_) => {}
        }
    }
    let replaced = order(&mut named, &mut ignored, &mut errors);
    let mut files = Vec::new();
    for n in named {
        match load_file(n, options) {
            Ok(f) => files.push(f),
            Err(e) => errors.push(e),
        }
    }
    let mut replaced_files = Vec::new();
    for n in replaced {
        match load_file(n, options) {
            Ok(f) => replaced_files.push(f),
            Err(e) => errors.push(e),
        }
    }
    let mut set = MigrationSet::checked(Layout::Flyway, dir_path, files, ignored, errors)?;
    set.replaced = replaced_files
        .into_iter()
        .map(|f| MigrationFile {
            shares_session: Layout::Flyway.shares_session(),
            ..f
        })
        .collect();
    Ok(set)
}

/// Flyway's order on an empty database: the latest baseline (replacing the
/// versioned migrations up to its version), the versioned ones after it by
/// version, then the repeatables by description. Duplicates are errors.
/// Returns the versioned migrations the baseline replaced.
fn order(
    named: &mut Vec<Named>,
    ignored: &mut Vec<Ignored>,
    errors: &mut Vec<MigrationError>,
) -> Vec<Named> {
    named.sort_by(|a, b| match (&a.version, &b.version) {
        (Some(x), Some(y)) => x
            .cmp(y)
            .then((a.kind == Kind::Versioned).cmp(&(b.kind == Kind::Versioned))),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.description.cmp(&b.description),
    });
    for w in named.windows(2) {
        let same = match (&w[0].version, &w[1].version) {
            (Some(x), Some(y)) => x == y && w[0].kind == w[1].kind,
            (None, None) => w[0].description == w[1].description,
            _ => false,
        };
        if same {
            let what = match &w[0].version {
                Some(_) => format!("version {} is the same", w[1].version_text),
                None => format!(
                    "repeatable description \"{}\" is the same",
                    w[1].description
                ),
            };
            errors.push(dir::duplicate(&w[0].path, &w[1].path, &what, "Flyway"));
        }
    }
    let baseline = named
        .iter()
        .filter(|n| n.kind == Kind::Baseline)
        .filter_map(|n| n.version.clone())
        .max();
    let Some(b) = baseline else {
        return Vec::new();
    };
    let mut replaced = Vec::new();
    for n in std::mem::take(named) {
        let superseded = match (&n.version, n.kind) {
            (Some(v), Kind::Versioned) => *v <= b,
            (Some(v), Kind::Baseline) => *v < b,
            _ => false,
        };
        if !superseded {
            named.push(n);
            continue;
        }
        ignored.push(Ignored {
            path: n.path.clone(),
            reason: "on an empty database Flyway applies the latest baseline migration instead \
                     of this one (a database migrated before the baseline ran it: `from` and \
                     `last` count it)"
                .into(),
        });
        if n.kind == Kind::Versioned {
            replaced.push(n);
        }
    }
    replaced
}

fn load_file(n: Named, options: &FlywayOptions) -> Result<MigrationFile, MigrationError> {
    let src = Source::read(&n.path)?;
    load_source(n, src, options)
}

/// A repeatable as it was at git revision `rev` (its text then, `text`),
/// loaded as Flyway applied it: named and located `<name>@<rev>`; its
/// `.conf` is read as it is now.
pub(super) fn repeatable_at(
    file: &MigrationFile,
    text: String,
    rev: &str,
    options: &FlywayOptions,
) -> Result<MigrationFile, MigrationError> {
    let name = format!("{}@{rev}", file.name);
    let shown = PathBuf::from(format!("{}@{rev}", file.path.display()));
    let n = Named {
        path: file.path.clone(),
        name,
        kind: Kind::Repeatable,
        version: None,
        version_text: String::new(),
        description: file.description.clone(),
    };
    load_source(n, Source::new(&shown, text), options)
}

fn load_source(
    n: Named,
    mut src: Source,
    options: &FlywayOptions,
) -> Result<MigrationFile, MigrationError> {
    let conf = ScriptConf::read(&n.path)?;
    if conf
        .placeholder_replacement
        .unwrap_or(options.placeholder_replacement)
    {
        let file_name = n
            .path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or(&n.name);
        src = substitute_placeholders(src, file_name, &options.placeholders)?;
    }
    let statements = script::statements(&src, 0..src.text.len(), &Reader::Server(Layout::Flyway))?;
    let conf_name = format!("{}.conf", n.name);
    let mut notes = Vec::new();
    // Flyway's rule: the first statement that makes the file mixed is the
    // offending one.
    let mut first_tx = None;
    let mut first_non_tx = None;
    for st in &statements {
        let non_tx = flyway_non_transactional(st.code());
        let slot = if non_tx {
            &mut first_non_tx
        } else {
            &mut first_tx
        };
        slot.get_or_insert(st);
        // Only `mixed` and a script's own executeInTransaction lift the
        // rule (Flyway's ParserSqlScript); flyway.executeInTransaction=false
        // does not: it is read later, when the file runs.
        if let (Some(tx), Some(ntx), None, false) = (
            first_tx,
            first_non_tx,
            conf.execute_in_transaction,
            options.mixed,
        ) {
            let what =
                refused_in_transaction(ntx.code()).unwrap_or("a non-transactional statement");
            return Err(MigrationError::at(
                st.location.clone(),
                format!(
                    "Flyway refuses a migration that mixes transactional and non-transactional \
                     statements (\"Detected both transactional and non-transactional statements \
                     within the same migration\"): {what} at line {} and the transactional \
                     statement at line {}. Fix: move the {what} into a migration of its own, or \
                     set mixed = true (Flyway then runs this whole file outside a transaction)",
                    ntx.location.line, tx.location.line
                ),
            ));
        }
    }
    let in_transaction = conf
        .execute_in_transaction
        .unwrap_or(first_non_tx.is_none() && options.execute_in_transaction);
    let cx = Context {
        tool: "Flyway",
        fix: &format!(
            "Flyway does not recognise it as non-transactional; add {conf_name} with the line \
             executeInTransaction=false"
        ),
    };
    let segments: Vec<Segment> =
        if in_transaction {
            let reason = match conf.execute_in_transaction {
                Some(_) => format!("executeInTransaction=true in {conf_name}"),
                None => "Flyway runs a migration in one transaction unless it holds a statement \
                     Flyway knows cannot run in one"
                    .to_string(),
            };
            segment::tool_transaction(statements, &reason, &cx)?
        } else {
            let reason = match (conf.execute_in_transaction, first_non_tx, first_tx) {
                (Some(_), _, _) => format!("executeInTransaction=false in {conf_name}"),
                (None, Some(ntx), Some(_)) => format!(
                    "mixed = true and it holds {} (line {}): Flyway runs the whole file outside a \
                 transaction, statement by statement",
                    refused_in_transaction(ntx.code()).unwrap_or("a non-transactional statement"),
                    ntx.location.line
                ),
                (None, Some(ntx), None) => format!(
                    "it holds {} (line {}): Flyway runs it outside a transaction",
                    refused_in_transaction(ntx.code()).unwrap_or("a non-transactional statement"),
                    ntx.location.line
                ),
                (None, None, _) => "executeInTransaction = false".to_string(),
            };
            let (segments, more) = segment::psql_style(statements, &reason, &cx)?;
            notes.extend(more);
            if segments.iter().flat_map(|s| &s.statements).any(|s| {
                refused_in_transaction(s.code()).is_some_and(|w| w.contains("CONCURRENTLY"))
            }) {
                notes.push(
                "Flyway 9.1+ holds its migration lock in a transaction by default; its docs say \
                 to set flyway.postgresql.transactional.lock=false for CONCURRENTLY statements, \
                 which otherwise can wait for that transaction forever (flyway/flyway#3682)"
                    .into(),
            );
            }
            segments
        };
    Ok(MigrationFile {
        path: n.path,
        name: n.name,
        version: n.version_text,
        description: n.description,
        kind: n.kind,
        segments,
        notes,
        shares_session: false,
    })
}

/// A script configuration file (`V1__x.sql.conf`).
#[derive(Debug, Default)]
struct ScriptConf {
    execute_in_transaction: Option<bool>,
    placeholder_replacement: Option<bool>,
}

impl ScriptConf {
    fn read(sql_path: &Path) -> Result<ScriptConf, MigrationError> {
        let mut path = sql_path.as_os_str().to_owned();
        path.push(".conf");
        let path = PathBuf::from(path);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(ScriptConf::default());
        };
        let mut conf = ScriptConf::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = Location::new(&path, i + 1, 1);
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            let (key, value) = (key.trim(), value.trim());
            let flag = || match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(MigrationError::at(
                    at.clone(),
                    format!("{key} must be true or false, not \"{value}\""),
                )),
            };
            match key {
                "executeInTransaction" => conf.execute_in_transaction = Some(flag()?),
                "placeholderReplacement" => conf.placeholder_replacement = Some(flag()?),
                "encoding"
                    if value.eq_ignore_ascii_case("utf-8")
                        || value.eq_ignore_ascii_case("utf8") => {}
                _ => {
                    return Err(MigrationError::at(
                        at,
                        format!(
                            "script configuration {key} is not supported (pgrehearse reads \
                             executeInTransaction, placeholderReplacement and encoding=UTF-8)"
                        ),
                    ))
                }
            }
        }
        Ok(conf)
    }
}

/// Flyway's built-in placeholders it fills from its connection and run.
const FLYWAY_SETS: [(&str, &str); 5] = [
    ("flyway:user", "the user it connects as"),
    ("flyway:database", "the database it connects to"),
    ("flyway:timestamp", "the time it runs"),
    ("flyway:workingDirectory", "its working directory"),
    ("flyway:environment", "the environment it runs in"),
];

/// Replace every `${name}` (names case-insensitive) the way Flyway's
/// placeholder reader does, before parsing: in strings and comments too.
fn substitute_placeholders(
    src: Source,
    file_name: &str,
    user: &BTreeMap<String, String>,
) -> Result<Source, MigrationError> {
    if !src.text.contains("${") {
        return Ok(src);
    }
    let mut values: BTreeMap<String, String> = [
        ("flyway:defaultschema", "public"),
        ("flyway:table", "flyway_schema_history"),
        ("flyway:filename", file_name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    values.extend(user.iter().map(|(k, v)| (k.to_lowercase(), v.clone())));
    let text = &src.text;
    let mut out = String::with_capacity(text.len());
    let mut runs = vec![Run {
        at: 0,
        from: 0,
        substituted: false,
    }];
    let mut i = 0;
    while let Some(p) = text[i..].find("${").map(|p| i + p) {
        let Some(close) = text[p + 2..].find('}').map(|c| p + 2 + c) else {
            break;
        };
        let name = &text[p + 2..close];
        let Some(value) = values.get(&name.to_lowercase()) else {
            let message = match FLYWAY_SETS
                .iter()
                .find(|(n, _)| name.eq_ignore_ascii_case(n))
            {
                // Flyway fills these from its connection and run: the
                // rehearsal cannot know what production's would be.
                Some((_, what)) => format!(
                    "Flyway fills the built-in ${{{name}}} with {what}, which pgrehearse cannot \
                     know for production: give its value in the scenario's Flyway placeholders \
                     (`placeholders = {{ \"{name}\" = \"...\" }}`)"
                ),
                None => format!(
                    "Flyway would fail: no value for the {} ${{{name}}}; give it in the \
                     scenario's Flyway placeholders, or turn placeholder replacement off",
                    if name.starts_with("flyway:") {
                        "built-in"
                    } else {
                        "placeholder"
                    }
                ),
            };
            return Err(MigrationError::at(src.location(p), message));
        };
        out.push_str(&text[i..p]);
        runs.push(Run {
            at: out.len(),
            from: p,
            substituted: true,
        });
        out.push_str(value);
        runs.push(Run {
            at: out.len(),
            from: close + 1,
            substituted: false,
        });
        i = close + 1;
    }
    out.push_str(&text[i..]);
    Ok(src.substituted(out, runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn versions_compare_like_flyway() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("1_10") > v("1.9"));
        assert!(v("2") > v("1.999"));
        assert_eq!(v("1"), v("1.0.0"));
        assert_eq!(v("001.02"), v("1.2"));
        assert!(v("20240101120000") > v("20240101115959"));
        // Beyond u64: compared as digit strings.
        assert!(v("123456789012345678901234567890") > v("99999999999999999999999999999"));
        for bad in ["", "1.a", "a", "1..2", "1.", "-1", "1 2"] {
            assert!(Version::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn names_as_flyway_reads_them() {
        let ok = |n: &str| classify_name(n).unwrap();
        assert_eq!(
            ok("V1_2__add_users.sql"),
            (Kind::Versioned, "1.2".into(), "add users".into())
        );
        assert_eq!(ok("V3.sql"), (Kind::Versioned, "3".into(), String::new()));
        assert_eq!(
            ok("B5__baseline.SQL"),
            (Kind::Baseline, "5".into(), "baseline".into())
        );
        assert_eq!(
            ok("R__views.sql"),
            (Kind::Repeatable, String::new(), "views".into())
        );
        let ignored = |n: &str| classify_name(n).unwrap_err();
        assert!(ignored("U2__undo.sql").contains("undo"));
        assert!(ignored("afterMigrate.sql").contains("callback"));
        assert!(ignored("beforeEachMigrate__log.sql").contains("callback"));
        assert!(ignored("R1__view.sql").contains("cannot have a version"));
        assert!(ignored("Vx__bad.sql").contains("not a Flyway version"));
        assert!(ignored("init.sql").contains("not a Flyway migration name"));
        assert!(ignored("V1__x.txt").contains("not a .sql file"));
    }

    #[test]
    fn the_latest_baseline_replaces_older_versions_on_an_empty_database() {
        let dir = tempfile::tempdir().unwrap();
        for (name, sql) in [
            ("V1__a.sql", "SELECT 1;"),
            ("V2__b.sql", "SELECT 2;"),
            ("B2__base.sql", "SELECT 'b2';"),
            ("B1__old_base.sql", "SELECT 'b1';"),
            ("V3__c.sql", "SELECT 3;"),
        ] {
            std::fs::write(dir.path().join(name), sql).unwrap();
        }
        let set = load(dir.path(), &FlywayOptions::default()).unwrap();
        let names: Vec<&str> = set.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["B2__base.sql", "V3__c.sql"]);
        assert_eq!(set.ignored.len(), 3);
        assert!(set.ignored.iter().all(|i| i.reason.contains("baseline")));
    }

    /// flyway.executeInTransaction=false does not lift the rule against a
    /// file mixing transactional and non-transactional statements; mixed
    /// does.
    #[test]
    fn execute_in_transaction_off_still_refuses_a_mixed_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("V1__a.sql"),
            "ALTER TABLE t ADD COLUMN c int;\nVACUUM t;\n",
        )
        .unwrap();
        let options = FlywayOptions {
            execute_in_transaction: false,
            ..FlywayOptions::default()
        };
        let err = load(dir.path(), &options).unwrap_err().to_string();
        assert!(
            err.contains("Flyway refuses a migration that mixes"),
            "{err}"
        );
        let mixed = FlywayOptions {
            mixed: true,
            ..options
        };
        let set = load(dir.path(), &mixed).unwrap();
        assert_eq!(
            set.files[0].single_execution(),
            Some(super::super::model::Execution::Autocommit)
        );
    }

    #[test]
    fn execute_in_transaction_off_runs_every_file_in_autocommit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("V1__a.sql"), "CREATE TABLE a (x int);").unwrap();
        let options = FlywayOptions {
            execute_in_transaction: false,
            ..FlywayOptions::default()
        };
        let set = load(dir.path(), &options).unwrap();
        assert_eq!(
            set.files[0].single_execution(),
            Some(super::super::model::Execution::Autocommit)
        );
    }
}
