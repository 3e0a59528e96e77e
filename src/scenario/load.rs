//! Loading a scenario file with source spans and validating it into a plan.
//!
//! Bytes → UTF-8 text → TOML (syntax) → the raw model (unknown keys, types) →
//! the validated [`Scenario`]. Each stage reports located errors; validation
//! reports every problem it finds, sorted by position.

use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::diag::Diags;
use super::keys::unknown_keys;
use super::model::ScenarioFile;
use super::span::{line_col, path_at, path_near, span_of_path};
use super::validate::{validate, CommandLine, RowOverrides};
use super::Scenario;
use crate::error::{Error, Result, ScenarioError};

pub use super::describe::describe;

/// Command-line overrides applied while validating.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// --rows N: the largest table gets N rows, the others scale with it.
    pub rows: Option<u64>,
    /// --scale F: every table's rows × F.
    pub scale: Option<f64>,
    /// --since-git REV: the `[migrations]` added since REV are rehearsed.
    pub since_git: Option<String>,
    /// --before D: traffic before the first step, instead of the file's
    /// `[workload] before` (scripts keep their `at`).
    pub before: Option<Duration>,
    /// --after D: traffic after the last step.
    pub after: Option<Duration>,
}

/// Read and validate `path`. Every problem is an `Error::Scenario` located at
/// file:line:column with the field named; a file that cannot be read is one
/// at line 0, column 0.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario> {
    match crate::input::read_bounded(path, crate::input::SCENARIO_LIMIT) {
        Ok(bytes) => load_str(path, &bytes, overrides),
        Err(e) => Err(one_error(
            path,
            0,
            0,
            String::new(),
            format!("cannot read the scenario file: {e}"),
        )),
    }
}

/// Validate a scenario file's bytes; `path` is used for messages and kept in
/// the plan.
pub fn load_str(path: &Path, bytes: &[u8], overrides: &Overrides) -> Result<Scenario> {
    let ov = check_overrides(overrides)?;
    let one = |line, column, field, message| one_error(path, line, column, field, message);
    let hash = hex::encode(Sha256::digest(bytes));
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = e.valid_up_to();
            // The prefix is valid UTF-8 by construction.
            let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or("");
            let (line, column) = line_col(prefix, good);
            let byte = bytes.get(good).copied().unwrap_or(0);
            return Err(one(
                line,
                column,
                String::new(),
                format!("invalid UTF-8 (byte 0x{byte:02x} at offset {good}); a scenario file must be UTF-8 text"),
            ));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(off) = text.find('\0') {
        let (line, column) = line_col(text, off);
        return Err(one(
            line,
            column,
            String::new(),
            "binary data (a NUL byte); a scenario file must be TOML text".to_string(),
        ));
    }
    // Unknown keys first, all of them: serde would stop at the first.
    if let Ok(doc) = toml_edit::ImDocument::parse(text) {
        let unknown = unknown_keys(&doc);
        if !unknown.is_empty() {
            let mut d = Diags::new(path, text);
            for u in unknown {
                d.err(u.span, u.field, u.message);
            }
            return Err(Error::Scenario(d.errors));
        }
        // A `\u0000` escape: Postgres text cannot hold it, and the server
        // would refuse the statement or the value only mid-run.
        let nuls = nul_strings(doc.as_item());
        if !nuls.is_empty() {
            let mut d = Diags::new(path, text);
            for span in nuls {
                let field = path_at(text, span.start);
                d.err(
                    span,
                    field,
                    "a NUL character (\\u0000) in a string: Postgres text cannot hold one",
                );
            }
            return Err(Error::Scenario(d.errors));
        }
    }
    let model: ScenarioFile = match toml::from_str(text) {
        Ok(m) => m,
        Err(e) => return Err(toml_error(path, text, &e)),
    };
    if is_blank(text) {
        return Err(one(
            1,
            1,
            String::new(),
            "the file is empty; expected a scenario with name, [[table]], [workload] and [[phase]]"
                .to_string(),
        ));
    }
    let mut d = Diags::new(path, text);
    let cli = CommandLine {
        rows: ov,
        since_git: overrides.since_git.as_deref(),
    };
    let mut scenario = validate(&mut d, &model, path, hash, &cli);
    if d.errors.is_empty() {
        if let Some(before) = overrides.before {
            scenario.workload.before = before;
        }
        if let Some(after) = overrides.after {
            scenario.workload.after = after;
        }
        Ok(scenario)
    } else {
        let mut errors = d.errors;
        // The scenario file's problems by position, then those in migration
        // files in the order their tool reads them.
        errors.sort_by_key(|e| match e.file == path {
            true => (0, e.line, e.column),
            false => (1, 0, 0),
        });
        Err(Error::Scenario(errors))
    }
}

/// Problems found after loading — against the live schema, once the
/// setup migrations ran — name their field (`table[1].columns.total`) but
/// no position: locate them in their scenario file, read again. Errors that
/// have a position, or whose field is not in the file, stay as they are.
pub fn locate_fields(errors: Vec<ScenarioError>) -> Vec<ScenarioError> {
    let mut texts: Vec<(std::path::PathBuf, Option<String>)> = Vec::new();
    errors
        .into_iter()
        .map(|mut e| {
            if e.line != 0 || e.field.is_empty() {
                return e;
            }
            if !texts.iter().any(|(p, _)| *p == e.file) {
                texts.push((e.file.clone(), std::fs::read_to_string(&e.file).ok()));
            }
            let text = texts
                .iter()
                .find(|(p, _)| *p == e.file)
                .and_then(|(_, t)| t.as_deref());
            if let Some((text, span)) = text.and_then(|t| Some((t, span_of_path(t, &e.field)?))) {
                (e.line, e.column) = line_col(text, span.start);
            }
            e
        })
        .collect()
}

fn check_overrides(o: &Overrides) -> Result<RowOverrides> {
    if o.rows == Some(0) {
        return Err(Error::Usage("--rows must be at least 1".into()));
    }
    if let Some(f) = o.scale {
        if !f.is_finite() || f <= 0.0 {
            return Err(Error::Usage(format!(
                "--scale must be a number above 0, got {f}"
            )));
        }
    }
    Ok(RowOverrides {
        rows: o.rows,
        scale: o.scale,
    })
}

/// The spans of the string values holding a NUL, anywhere in the document.
fn nul_strings(root: &toml_edit::Item) -> Vec<std::ops::Range<usize>> {
    use toml_edit::{Item, Value};
    fn value(v: &Value, out: &mut Vec<std::ops::Range<usize>>) {
        match v {
            Value::String(s) if s.value().contains('\0') => out.extend(s.span()),
            Value::Array(a) => a.iter().for_each(|v| value(v, out)),
            Value::InlineTable(t) => t.iter().for_each(|(_, v)| value(v, out)),
            _ => {}
        }
    }
    fn item(i: &Item, out: &mut Vec<std::ops::Range<usize>>) {
        match i {
            Item::Value(v) => value(v, out),
            Item::Table(t) => t.iter().for_each(|(_, i)| item(i, out)),
            Item::ArrayOfTables(a) => a
                .iter()
                .for_each(|t| t.iter().for_each(|(_, i)| item(i, out))),
            Item::None => {}
        }
    }
    let mut out = Vec::new();
    item(root, &mut out);
    out
}

/// Only whitespace and comments.
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

/// A TOML syntax error or a serde error (unknown key, wrong type), located,
/// with the dotted path of the key it is about.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let span = e.span().unwrap_or(0..0);
    let (line, column) = line_col(text, span.start);
    let syntax = toml_edit::ImDocument::parse(text).is_err();
    let field = if syntax {
        path_near(text, span.start)
    } else {
        path_at(text, span.start)
    };
    let raw = e.message().trim();
    let message = if raw.is_empty() {
        if text.get(span.start..).unwrap_or("").trim().is_empty() {
            "the file ends in the middle of a value (truncated?); expected a complete TOML value"
                .to_string()
        } else {
            "TOML syntax error".to_string()
        }
    } else {
        let m = raw.replace('\n', "; ");
        let m = m
            .replace("expected i64", "expected an integer")
            .replace("expected f64", "expected a number")
            .replace("expected a boolean", "expected true or false");
        if m.contains("number too large to fit in target type") {
            // TOML's integers are 64-bit signed: a valid-looking number.
            "the number is too large: a TOML integer is at most 9223372036854775807".to_string()
        } else if syntax {
            format!("TOML syntax error: {m}")
        } else {
            m
        }
    };
    one_error(path, line, column, field, message)
}

/// A file with one problem that stops loading (unreadable, not UTF-8, not
/// TOML): there is nothing further to validate.
fn one_error(path: &Path, line: usize, column: usize, field: String, message: String) -> Error {
    Error::Scenario(vec![ScenarioError {
        file: path.to_path_buf(),
        line,
        column,
        field,
        message,
    }])
}
