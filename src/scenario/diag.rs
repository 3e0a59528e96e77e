//! Collecting located validation errors, and the small value parsers every
//! part of the validator shares (durations, integers in range, unique item
//! names, SQL lists, app lists).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::model::{SqlText, S};
use super::span::line_col;
use crate::error::ScenarioError;
use crate::migrations::{Location, Statement, StatementOrigin};
use crate::sql;

/// A character that breaks a name's line or hides in it: a control
/// character, a Unicode line or paragraph separator, a zero-width or
/// direction-changing mark, a byte order mark.
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// Every problem found in one file, located by byte span.
pub struct Diags<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    pub errors: Vec<ScenarioError>,
}

impl<'a> Diags<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Diags {
            text,
            file,
            errors: Vec::new(),
        }
    }

    pub fn err(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = line_col(self.text, span.start);
        self.errors.push(ScenarioError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// The 1-based line of a span, to point at an earlier definition.
    pub fn line_of(&self, span: Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    /// A required field: its value, or an error at the enclosing section.
    pub fn required<'v, T>(
        &mut self,
        v: &'v Option<S<T>>,
        section: Range<usize>,
        field: &str,
        what: &str,
    ) -> Option<&'v S<T>> {
        if v.is_none() {
            self.err(section, field, format!("missing; expected {what}"));
        }
        v.as_ref()
    }

    /// A non-empty string (after trimming).
    pub fn nonempty(&mut self, v: &S<String>, field: &str, what: &str) -> Option<String> {
        let s = v.get_ref().trim();
        if s.is_empty() {
            self.err(v.span(), field, format!("is empty; expected {what}"));
            None
        } else {
            Some(s.to_string())
        }
    }

    /// A name: not empty, and on one line, as it labels rows of the CSVs,
    /// Markdown tables, chart legends and the lines of `check`'s plan.
    pub fn name(&mut self, v: &S<String>, field: &str, what: &str) -> Option<String> {
        let n = self.nonempty(v, field, what)?;
        if n.contains(unprintable) {
            self.err(
                v.span(),
                field,
                format!(
                    "{n:?} holds a line break, tab, or other control or invisible character; \
                     expected {what} on one line (it labels report rows and plan lines)"
                ),
            );
            return None;
        }
        Some(n)
    }

    /// An integer in `lo..=hi`.
    pub fn int_in(&mut self, v: &S<i64>, field: &str, lo: i64, hi: i64) -> Option<i64> {
        let x = *v.get_ref();
        if x < lo || x > hi {
            self.err(
                v.span(),
                field,
                format!("{x} is out of range; expected an integer in {lo}..={hi}"),
            );
            None
        } else {
            Some(x)
        }
    }

    /// A finite float in `lo..=hi`.
    pub fn float_in(&mut self, v: &S<f64>, field: &str, lo: f64, hi: f64) -> Option<f64> {
        let x = *v.get_ref();
        if !x.is_finite() || x < lo || x > hi {
            self.err(
                v.span(),
                field,
                format!("{x} is out of range; expected a number in {lo}..={hi}"),
            );
            None
        } else {
            Some(x)
        }
    }

    /// An optional duration string; `default` when absent or invalid.
    pub fn duration(&mut self, v: &Option<S<String>>, field: &str, default: Duration) -> Duration {
        self.opt_duration(v, field).unwrap_or(default)
    }

    pub fn opt_duration(&mut self, v: &Option<S<String>>, field: &str) -> Option<Duration> {
        let v = v.as_ref()?;
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(v.span(), field, m);
                None
            }
        }
    }

    /// Like `opt_duration`, but zero is rejected (a timeout of 0 disables it
    /// in Postgres, which is never what a rehearsal means).
    /// `omitted` says what leaving it out means ("no limit").
    pub fn positive_duration(
        &mut self,
        v: &Option<S<String>>,
        field: &str,
        omitted: &str,
    ) -> Option<Duration> {
        let d = self.opt_duration(v, field)?;
        if d.is_zero() {
            let span = v.as_ref().map(|v| v.span()).unwrap_or(0..0);
            self.err(
                span,
                field,
                format!("must be greater than zero; omit it for {omitted}"),
            );
            return None;
        }
        Some(d)
    }

    /// A timeout PostgreSQL is given in whole milliseconds (lock_timeout,
    /// statement_timeout): from 1 ms (less would be sent as 0, which
    /// disables it) to INT_MAX ms (about 596 hours; more is refused by the
    /// server mid-run).
    pub fn pg_timeout(
        &mut self,
        v: &Option<S<String>>,
        field: &str,
        omitted: &str,
    ) -> Option<Duration> {
        let d = self.positive_duration(v, field, omitted)?;
        let span = v.as_ref().map(|v| v.span()).unwrap_or(0..0);
        if d < Duration::from_millis(1) {
            self.err(
                span,
                field,
                "must be at least 1ms: PostgreSQL counts this timeout in whole milliseconds, and 0 disables it".to_string(),
            );
            return None;
        }
        if d.as_millis() > i32::MAX as u128 {
            self.err(
                span,
                field,
                format!(
                    "must be at most {} ms (about 596 hours): PostgreSQL refuses more",
                    i32::MAX
                ),
            );
            return None;
        }
        Some(d)
    }
}

/// Remember the first span of each name; report later duplicates.
pub struct Names {
    kind: &'static str,
    seen: HashMap<String, Range<usize>>,
}

impl Names {
    pub fn new(kind: &'static str) -> Self {
        Names {
            kind,
            seen: HashMap::new(),
        }
    }

    fn add(&mut self, d: &mut Diags, name: &S<String>, field: &str) {
        self.add_at(d, name.get_ref(), name.span(), field);
    }

    /// A name that is not written where `span` is (a default taken from
    /// elsewhere, such as a step's file name).
    pub fn add_at(&mut self, d: &mut Diags, name: &str, span: Range<usize>, field: &str) {
        let n = name.trim().to_string();
        if let Some(first) = self.seen.get(&n) {
            let line = d.line_of(first.clone());
            d.err(
                span,
                field,
                format!(
                    "duplicate {} name `{n}` (first defined on line {line}); names must be unique",
                    self.kind
                ),
            );
        } else {
            self.seen.insert(n, span);
        }
    }
}

/// Required, non-empty, unique name of an item.
pub fn item_name(
    d: &mut Diags,
    v: &Option<S<String>>,
    section: Range<usize>,
    field: &str,
    names: &mut Names,
) -> String {
    match d.required(v, section, field, &format!("a {} name", names.kind)) {
        Some(v) => {
            let n = d.name(v, field, &format!("a {} name", names.kind));
            if n.is_some() {
                names.add(d, v, field);
            }
            n.unwrap_or_default()
        }
        None => String::new(),
    }
}

/// Each string of SQL text (a string or a list of strings) with its span.
fn sql_texts(v: &S<SqlText>) -> Vec<(&str, Range<usize>)> {
    match v.get_ref() {
        SqlText::One(s) => vec![(s.as_str(), v.span())],
        SqlText::Many(list) => list
            .iter()
            .map(|s| (s.get_ref().as_str(), s.span()))
            .collect(),
    }
}

/// [`sql_list`]'s statements, each with where it is written in the
/// scenario file, so that a server error's position in one is placed at
/// its line and column there: each stretch of a statement copied as it is
/// from the file (escapes such as `\n` and a multi-line string's opening
/// newline break the stretches) knows where it starts. A statement whose
/// string does not decode again to its text is placed at its string.
pub fn sql_located(d: &Diags, v: &S<SqlText>) -> Vec<Statement> {
    let mut out = Vec::new();
    for (text, span) in sql_texts(v) {
        let offsets = offsets_in_source(d.text, &span, text);
        let at = |offset: usize| {
            let (line, column) = line_col(d.text, offset);
            Location::new(d.file, line, column)
        };
        for s in sql::statement_spans(text).spans {
            let sql = &text[s.start..s.end];
            let source: Option<Vec<usize>> = offsets
                .as_ref()
                .and_then(|o| o.get(s.start..s.end))
                .map(<[usize]>::to_vec);
            let Some(source) = source else {
                out.push(Statement {
                    sql: sql.to_string(),
                    location: at(span.start),
                    code_offset: s.code_start - s.start,
                    origins: vec![StatementOrigin {
                        at: 0,
                        from: at(span.start),
                        substituted: true,
                    }],
                });
                continue;
            };
            // A new stretch wherever the next byte is not the next one in
            // the file.
            let origins = (0..source.len())
                .filter(|&i| i == 0 || source[i] != source[i - 1] + 1)
                .map(|i| StatementOrigin {
                    at: i,
                    from: at(source[i]),
                    substituted: false,
                })
                .collect();
            out.push(Statement {
                sql: sql.to_string(),
                location: at(source[s.code_start - s.start]),
                code_offset: s.code_start - s.start,
                origins,
            });
        }
    }
    out
}

/// SQL text (a string or a list of strings) split into statements.
pub fn sql_list(d: &mut Diags, v: &S<SqlText>, field: &str) -> Vec<String> {
    let texts = sql_texts(v);
    // A quote or comment never closed swallows the rest of the text: the
    // server would say only "syntax error at end of input", mid-run.
    for (text, span) in &texts {
        if let Some(u) = sql::statement_spans(text).unclosed {
            let at = offset_in_source(d.text, span, text, u.start).unwrap_or(span.start);
            d.err(
                at..span.end,
                field,
                format!(
                    "a {} opened at `{}` is never closed",
                    u.kind.describe(),
                    text[u.start..]
                        .chars()
                        .take_while(|c| *c != '\n')
                        .take(20)
                        .collect::<String>()
                ),
            );
        }
    }
    let out: Vec<String> = texts.iter().flat_map(|(s, _)| sql::split(s)).collect();
    if out.is_empty() {
        d.err(
            v.span(),
            field,
            "has no SQL statements; expected at least one",
        );
    }
    out
}

/// Where byte `at` of a TOML string's value lies in the file: the string's
/// source is decoded again (escapes, a multi-line string's first newline
/// and its line-ending backslashes), keeping where each value byte came
/// from. None when the source does not decode to `value`.
fn offset_in_source(source: &str, span: &Range<usize>, value: &str, at: usize) -> Option<usize> {
    offsets_in_source(source, span, value)?.get(at).copied()
}

/// [`offset_in_source`] of every byte of `value`, decoded once: a statement
/// of 100 kB is placed in linear time, not a decode per byte.
fn offsets_in_source(source: &str, span: &Range<usize>, value: &str) -> Option<Vec<usize>> {
    let raw = source.get(span.clone())?;
    let quote = ["'''", "\"\"\"", "'", "\""]
        .into_iter()
        .find(|q| raw.starts_with(q) && raw.ends_with(q) && raw.len() >= 2 * q.len())?;
    let mut body = &raw[quote.len()..raw.len() - quote.len()];
    let mut start = span.start + quote.len();
    if quote.len() == 3 {
        for nl in ["\r\n", "\n"] {
            if let Some(rest) = body.strip_prefix(nl) {
                body = rest;
                start += nl.len();
                break;
            }
        }
    }
    // A multi-line string's CRLF line endings may reach the value as LF
    // (the parser normalizes them): try the body as written, then so.
    let multiline = quote.len() == 3;
    let decoded = |crlf_as_lf: bool| decode(body, quote.starts_with('"'), crlf_as_lf);
    let from = [false, true]
        .into_iter()
        .filter(|&lf| !lf || (multiline && body.contains("\r\n")))
        .filter_map(decoded)
        .find(|from| from.len() == value.len())?;
    Some(from.into_iter().map(|f| start + f).collect())
}

/// For each byte of a TOML string's value, the offset in `body` (the text
/// between the quotes) it was decoded from: a basic string's (`escapes`)
/// escapes decoded, None on a bad one; a literal string's bytes as they
/// are. With `crlf_as_lf`, a CRLF is the one LF byte of the value.
fn decode(body: &str, escapes: bool, crlf_as_lf: bool) -> Option<Vec<usize>> {
    let bytes = body.as_bytes();
    let mut from = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < bytes.len() {
        if crlf_as_lf && bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
        }
        if !escapes || bytes[i] != b'\\' {
            from.push(i);
            i += 1;
            continue;
        }
        let escape = *bytes.get(i + 1)?;
        let decoded = match escape {
            b'b' | b't' | b'n' | b'f' | b'r' | b'"' | b'\\' | b'e' => {
                from.push(i);
                i += 2;
                continue;
            }
            b'u' | b'U' => {
                let len = if escape == b'u' { 4 } else { 8 };
                let hex = body.get(i + 2..i + 2 + len)?;
                let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                (c.len_utf8(), 2 + len)
            }
            b'x' => {
                let c = char::from_u32(u32::from_str_radix(body.get(i + 2..i + 4)?, 16).ok()?)?;
                (c.len_utf8(), 4)
            }
            // A line-ending backslash (multi-line strings): it and the
            // whitespace and newlines after it are not in the value.
            _ => {
                let rest = &body[i + 1..];
                let skipped = rest.len() - rest.trim_start().len();
                rest[..skipped].contains('\n').then_some(())?;
                i += 1 + skipped;
                continue;
            }
        };
        from.extend(std::iter::repeat_n(i, decoded.0));
        i += decoded.1;
    }
    Some(from)
}

pub fn app_list(d: &mut Diags, v: &S<Vec<S<String>>>, field: &str) -> Vec<String> {
    if v.get_ref().is_empty() {
        d.err(
            v.span(),
            field,
            "is empty; expected at least one app version, or omit it for all",
        );
    }
    let mut out: Vec<String> = Vec::new();
    for (k, a) in v.get_ref().iter().enumerate() {
        if let Some(a) = d.name(a, &format!("{field}[{k}]"), "an app version name") {
            if !crate::latency::is_the_apps(&a) {
                d.err(
                    v.get_ref()[k].span(),
                    format!("{field}[{k}]"),
                    format!(
                        "`{a}` is reserved: the reports label scripts' and other sessions' \
                         requests and waits `{}` and `{}`; name the app version otherwise",
                        crate::latency::SCRIPT_APP,
                        crate::latency::OTHER_APP
                    ),
                );
            }
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// Longest duration we accept anywhere: a year is beyond any rehearsal, and
/// the cap keeps arithmetic on durations far from overflow.
const MAX_DURATION_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// "250ms", "5s", "1.5s", "2m", "1h", "1m30s", "500us", "0". Units: us, ms,
/// s, m (or min), h.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXPECTED: &str =
        "expected a duration like \"250ms\", \"5s\", \"1.5s\" or \"2m\" (units: us, ms, s, m, h)";
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(format!("empty duration; {EXPECTED}"));
    }
    if t.contains('_') {
        return Err(format!(
            "`{s}`: a duration's digits cannot be grouped with `_` (write `{}`); {EXPECTED}",
            t.replace('_', "")
        ));
    }
    let mut total = 0.0f64;
    let mut rest = t;
    // Each part's unit smaller than the one before: "1h30m", never
    // "30m1h" or "1s1s".
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        // "5 s" reads as "5s"; "5 parsecs" then names its unknown unit.
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let value: f64 = match num.parse() {
            Ok(v) if !num.is_empty() => v,
            _ => return Err(format!("`{s}` is not a duration; {EXPECTED}")),
        };
        let (secs_per_unit, rank) = match unit {
            "us" | "µs" => (1e-6, 0),
            "ms" => (1e-3, 1),
            "s" => (1.0, 2),
            "m" | "min" => (60.0, 3),
            "h" => (3600.0, 4),
            "" => return Err(format!("`{s}` has no unit; {EXPECTED}")),
            _ => return Err(format!("`{s}` has an unknown unit `{unit}`; {EXPECTED}")),
        };
        if rank >= last_rank {
            return Err(format!(
                "`{s}` repeats a unit or gives a larger one after a smaller; write each unit once, \
                 largest first (\"1h30m\"); {EXPECTED}"
            ));
        }
        last_rank = rank;
        total += value * secs_per_unit;
        rest = after.trim_start();
    }
    if !total.is_finite() || total > MAX_DURATION_SECS {
        return Err(format!("`{s}` is longer than a year; {EXPECTED}"));
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("`{s}` is not a duration; {EXPECTED}"))
}

/// Human form of a duration for messages and `describe`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if d.is_zero() {
        "0".into()
    } else if ms < 1.0 {
        format!("{}us", d.as_micros())
    } else if ms < 1000.0 {
        format!("{}ms", trim_float(ms))
    } else {
        format!("{}s", trim_float(ms / 1000.0))
    }
}

pub fn trim_float(x: f64) -> String {
    // Very large or very small: scientific, not 300 digits or a false 0.
    if x != 0.0 && !(1e-3..1e15).contains(&x.abs()) {
        return format!("{x:e}");
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_reads_as_written_however_large_or_small() {
        assert_eq!(trim_float(200.0), "200");
        assert_eq!(trim_float(0.25), "0.25");
        assert_eq!(trim_float(1e300), "1e300");
        assert_eq!(trim_float(0.0001), "1e-4");
        assert_eq!(trim_float(0.0), "0");
    }

    #[test]
    fn a_value_byte_is_found_in_the_source_through_escapes() {
        let check = |source: &str, value: &str, needle: &str| {
            let span = source.find('=').unwrap() + 2..source.len();
            let at = value.find(needle).unwrap();
            let found = offset_in_source(source, &span, value, at).expect(source);
            assert!(source[found..].starts_with(needle), "{source}: at {found}");
        };
        check(
            r#"sql = "SELECT 1 WHERE a = 'x""#,
            "SELECT 1 WHERE a = 'x",
            "'x",
        );
        check(
            r#"sql = "SELECT \"Col\" FROM t WHERE a = 'x""#,
            "SELECT \"Col\" FROM t WHERE a = 'x",
            "'x",
        );
        check(
            r#"sql = "SELECT '\u00e9t\u00E9', \t'x""#,
            "SELECT 'été', \t'x",
            "'x",
        );
        check(
            "sql = \"\"\"\nSELECT 1, \\\n    'x\"\"\"",
            "SELECT 1, 'x",
            "'x",
        );
        check("sql = '''\nSELECT \\n 'x'''", "SELECT \\n 'x", "'x");
        // A source that does not decode to the value is not guessed at.
        let source = r#"sql = "SELECT 'x""#;
        assert_eq!(
            offset_in_source(source, &(6..source.len()), "SELECT 'y2", 7),
            None
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "s",
            "5 parsecs",
            "-1s",
            "1..2s",
            "1e400s",
            "99999999h",
            "5s5",
            "1s1s1s",
            "30m1h",
            "1_000ms",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("1_000ms")
            .unwrap_err()
            .contains("cannot be grouped with `_` (write `1000ms`)"));
        assert!(parse_duration("30m1h")
            .unwrap_err()
            .contains("largest first"));
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(100)), "100ms");
    }
}
