//! The run directory contract (reports/README.md, and README.md "Reading a
//! run directory"): one struct per CSV row, the run.json header, and
//! reading/writing them. The report module reads these back, so
//! `pgrehearse report RUN_DIR` needs nothing else.
//!
//! All times are milliseconds since run start on one monotonic clock.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::Result;
use crate::latency_hdr::{Entry, HdrWriter, Histograms};

mod info;
mod rows;

pub use info::*;
pub use rows::*;

pub const RUN_JSON: &str = "run.json";
pub const STATEMENTS_CSV: &str = "statements.csv";
pub const LOCKS_CSV: &str = "locks.csv";
pub const WAITS_CSV: &str = "waits.csv";
pub const LATENCY_CSV: &str = "latency.csv";
pub const ERRORS_CSV: &str = "errors.csv";
pub const SERVER_CSV: &str = "server.csv";
pub const STEPS_CSV: &str = "steps.csv";
pub const LATENCY_HDR: &str = "latency.hdr";
pub const INFLIGHT_CSV: &str = "inflight.csv";

/// Every file of the record: what even a partial run directory holds.
pub const FILES: &[&str] = &[
    RUN_JSON,
    STATEMENTS_CSV,
    LOCKS_CSV,
    WAITS_CSV,
    LATENCY_CSV,
    ERRORS_CSV,
    SERVER_CSV,
    STEPS_CSV,
];

/// Everything one rehearsal recorded.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub info: Option<RunInfo>,
    pub statements: Vec<StatementRow>,
    pub locks: Vec<LockRow>,
    pub waits: Vec<WaitRow>,
    pub latency: Vec<LatencyRow>,
    /// latency.hdr: segment histograms and per-window figures.
    pub histograms: Histograms,
    pub inflight: Vec<InflightRow>,
    pub errors: Vec<ErrorRow>,
    pub server: Vec<ServerRow>,
    pub steps: Vec<StepRow>,
}

/// The latency files, streamed into the run directory by the recorder as
/// windows close (so a long run's rows are never all in memory):
/// latency.csv, inflight.csv and latency.hdr.
pub struct LatencyFiles {
    latency: csv::Writer<File>,
    inflight: csv::Writer<File>,
    hdr: HdrWriter<BufWriter<File>>,
}

impl LatencyFiles {
    /// Create the three files in `dir`, headers written; the run started at
    /// `started` (latency.hdr's base time).
    pub fn create(dir: &Path, started: SystemTime) -> Result<LatencyFiles> {
        fn csv_with_header<T: DeserializeOwned>(path: &Path) -> Result<csv::Writer<File>> {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_path(path)
                .map_err(anyhow::Error::new)?;
            w.write_record(header::<T>()).map_err(anyhow::Error::new)?;
            Ok(w)
        }
        Ok(LatencyFiles {
            latency: csv_with_header::<LatencyRow>(&dir.join(LATENCY_CSV))?,
            inflight: csv_with_header::<InflightRow>(&dir.join(INFLIGHT_CSV))?,
            hdr: HdrWriter::new(
                BufWriter::new(File::create(dir.join(LATENCY_HDR))?),
                started,
            )?,
        })
    }

    pub fn latency_row(&mut self, r: &LatencyRow) -> Result<()> {
        self.latency.serialize(r).map_err(anyhow::Error::new)?;
        Ok(())
    }

    pub fn inflight_row(&mut self, r: &InflightRow) -> Result<()> {
        self.inflight.serialize(r).map_err(anyhow::Error::new)?;
        Ok(())
    }

    pub fn histogram(&mut self, e: &Entry) -> Result<()> {
        Ok(self.hdr.write(e)?)
    }

    /// Flush everything to disk.
    pub fn finish(mut self) -> Result<()> {
        self.latency.flush()?;
        self.inflight.flush()?;
        self.hdr.flush()?;
        Ok(())
    }
}

/// `<out>/<scenario>/<UTC timestamp>/`, created; a numeric suffix avoids
/// clobbering a run that started in the same second.
pub fn create_run_dir(out: &Path, scenario: &str) -> Result<PathBuf> {
    create_stamped_dir(out, scenario, "")
}

/// `<out>/<scenario>/<prefix><UTC timestamp>/`, created, beside the
/// scenario's run directories (e.g. `versions-20260101T120000Z`).
pub fn create_stamped_dir(out: &Path, scenario: &str, prefix: &str) -> Result<PathBuf> {
    let stamp = format!("{prefix}{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let base = out.join(sanitize(scenario));
    std::fs::create_dir_all(&base)?;
    // `create_dir` fails on a directory that exists: whoever creates one
    // owns it, however many runs (tests, processes) start in one second.
    let mut n = 1;
    loop {
        let dir = match n {
            1 => base.join(&stamp),
            _ => base.join(format!("{stamp}-{n}")),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `name` as a folder name: anything but `[A-Za-z0-9._-]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        // A file name has at most 255 bytes; a stamp and a version go
        // below or beside it.
        .take(MAX_NAME)
        .collect();
    // `.` and `..` would be this directory or its parent.
    if s.bytes().all(|b| b == b'.') {
        s = s.replace('.', "_");
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// The longest directory name a scenario's name becomes.
const MAX_NAME: usize = 120;

pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(anyhow::Error::new)?;
    for r in rows {
        w.serialize(r).map_err(anyhow::Error::new)?;
    }
    w.flush()?;
    Ok(())
}

pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    Ok(read_csv_lines(path)?.into_iter().map(|(_, r)| r).collect())
}

/// [`read_csv`], each row with the line it starts on. A problem is named
/// `file:line: column `name`: what is there, and what was expected`.
pub fn read_csv_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<(u64, T)>> {
    let name = path.display();
    let mut r =
        csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    let headers = r
        .headers()
        .map_err(|e| anyhow::anyhow!("{name}{}", csv_problem(&e, None)))?
        .clone();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match r.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(anyhow::anyhow!("{name}{}", csv_problem(&e, Some(&headers))).into())
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let row = record
            .deserialize::<T>(Some(&headers))
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => {
                    anyhow::anyhow!("{name}:{line}: {}", cell_problem(err, &headers, &record))
                }
                _ => anyhow::anyhow!("{name}{}", csv_problem(&e, Some(&headers))),
            })?;
        rows.push((line, row));
    }
    Ok(rows)
}

/// A CSV error other than a cell's value, as `:line: what` (the file's
/// name goes before it).
fn csv_problem(e: &csv::Error, headers: Option<&csv::StringRecord>) -> String {
    let at = |pos: &Option<csv::Position>| {
        pos.as_ref()
            .map_or(String::new(), |p| format!(":{}", p.line()))
    };
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => format!(
            "{}: {len} cells, but the header has {expected_len} columns{}",
            at(pos),
            headers.map_or(String::new(), |h| format!(
                " ({})",
                h.iter().collect::<Vec<_>>().join(", ")
            ))
        ),
        csv::ErrorKind::Utf8 { pos, err } => format!(
            "{}: {}: not UTF-8 text",
            at(pos),
            headers
                .and_then(|h| h.get(err.field()))
                .map_or_else(|| "the header".to_string(), |c| format!("column `{c}`"))
        ),
        csv::ErrorKind::Io(err) => format!(": cannot read it: {err}"),
        _ => format!(": not CSV as a run writes it: {e}"),
    }
}

/// A cell (or the row) that does not read as its column's kind: the column
/// by its header name, what is in it, and what was expected — never a Rust
/// type's name.
fn cell_problem(
    e: &csv::DeserializeError,
    headers: &csv::StringRecord,
    row: &csv::StringRecord,
) -> String {
    use csv::DeserializeErrorKind as K;
    // A value serde names (`unknown variant `sometimes``) without its
    // column: the cell that holds it.
    let holding = |said: &str| {
        let value = regex::Regex::new(r"`([^`]+)`")
            .ok()?
            .captures(said)
            .map(|c| c[1].to_string())?;
        row.iter().position(|cell| cell == value)
    };
    let said = plain_words(&e.to_string());
    let Some(i) = e.field().map(|i| i as usize).or_else(|| holding(&said)) else {
        return match regex::Regex::new(r"missing field `(\w+)`")
            .ok()
            .and_then(|re| re.captures(&said).map(|c| c[1].to_string()))
        {
            Some(col) => format!(
                "the header has no column `{col}` (every run writes it): the run directory is damaged"
            ),
            None => said,
        };
    };
    let column = headers.get(i).unwrap_or("?");
    let value = row.get(i).unwrap_or("");
    let expected = match e.kind() {
        K::ParseFloat(_) => "a number".to_string(),
        K::ParseInt(_) if value.trim_start().starts_with('-') => {
            "a whole number, 0 or more".to_string()
        }
        K::ParseInt(_) => "a whole number".to_string(),
        K::ParseBool(_) => "`true` or `false`".to_string(),
        K::UnexpectedEndOfRow => return format!("column `{column}`: the row ends before it"),
        K::InvalidUtf8(_) => return format!("column `{column}`: not UTF-8 text"),
        K::Message(m) | K::Unsupported(m) => {
            return format!("column `{column}`: {}", plain_words(m))
        }
    };
    match value.is_empty() {
        true => format!("column `{column}`: empty, expected {expected}"),
        false => format!("column `{column}`: `{value}`, expected {expected}"),
    }
}

/// serde's words for a value's kind in JSON's and a reader's: "an object",
/// "a number", "a whole number", never a Rust type's name (f64, u64,
/// struct RunInfo, Option).
pub(crate) fn plain_words(message: &str) -> String {
    let mut m = message.to_string();
    for (pattern, plain) in [
        (r"struct \w+( with \d+ elements?)?", "an object"),
        (r"a tuple of size (\d+)", "an array of $1"),
        (r"\bf(32|64)\b", "a number"),
        (r"\bu8\b", "a whole number from 0 to 255"),
        (r"\bu16\b", "a whole number from 0 to 65535"),
        (r"\bu32\b", "a whole number from 0 to 4294967295"),
        (r"\b(u64|u128|usize)\b", "a whole number, 0 or more"),
        (r"\b(i8|i16|i32|i64|i128|isize)\b", "a whole number"),
        (r"\bfloating point `", "number `"),
        (r"\binteger `", "number `"),
        (r"\bexpected option\b", "expected a value or null"),
        (r"\bunit value\b", "null"),
        (r"\b(String|Vec|Option|BTreeMap|HashMap)\b", "a value"),
    ] {
        if let Ok(re) = regex::Regex::new(pattern) {
            m = re.replace_all(&m, plain).into_owned();
        }
    }
    m.replace("expected a sequence", "expected an array")
        .replace("invalid type: sequence", "invalid type: array")
        .replace("invalid type: map", "invalid type: object")
        .replace("expected a map", "expected an object")
}

impl RunRecord {
    /// Write run.json and every CSV into `dir`. Header rows are written even
    /// for empty tables so readers can rely on the columns. The latency
    /// files the recorder streamed ([`LatencyFiles`]) are left as they are
    /// when this record has no rows of its own for them.
    pub fn write(&self, dir: &Path) -> Result<()> {
        if let Some(info) = &self.info {
            let json = serde_json::to_string_pretty(info).map_err(anyhow::Error::new)?;
            std::fs::write(dir.join(RUN_JSON), json + "\n")?;
        }
        write_csv_with_header::<StatementRow>(&dir.join(STATEMENTS_CSV), &self.statements)?;
        write_csv_with_header::<LockRow>(&dir.join(LOCKS_CSV), &self.locks)?;
        write_csv_with_header::<WaitRow>(&dir.join(WAITS_CSV), &self.waits)?;
        for (file, empty) in [
            (LATENCY_CSV, self.latency.is_empty()),
            (INFLIGHT_CSV, self.inflight.is_empty()),
        ] {
            if empty && dir.join(file).exists() {
                continue;
            }
            match file {
                LATENCY_CSV => write_csv_with_header(&dir.join(file), &self.latency)?,
                _ => write_csv_with_header(&dir.join(file), &self.inflight)?,
            }
        }
        write_csv_with_header::<ErrorRow>(&dir.join(ERRORS_CSV), &self.errors)?;
        write_csv_with_header::<ServerRow>(&dir.join(SERVER_CSV), &self.server)?;
        write_csv_with_header::<StepRow>(&dir.join(STEPS_CSV), &self.steps)?;
        Ok(())
    }

    /// Read a run directory back. Every run that wrote run.json wrote its
    /// CSVs with it (header rows for empty tables), so one missing or
    /// without a header is an error, not "nothing happened" — `report`
    /// would pass a run that failed. Files added in later versions
    /// (inflight.csv, server.csv) read as empty when missing; without
    /// run.json (a run stopped before it) every CSV may be missing.
    pub fn read(dir: &Path) -> Result<RunRecord> {
        let info_path = dir.join(RUN_JSON);
        let info = match std::fs::read_to_string(&info_path) {
            Ok(s) => {
                Some(read_info(&s).map_err(|e| anyhow::anyhow!("{}{e}", info_path.display()))?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let complete = info.is_some();
        let opt = |name: &str| -> Result<Option<PathBuf>> {
            let p = dir.join(name);
            match std::fs::metadata(&p) {
                Ok(m) if m.len() == 0 => Err(crate::error::Error::Usage(format!(
                    "{}: empty (not even a header row): the run directory is damaged",
                    p.display()
                ))),
                Ok(_) => Ok(Some(p)),
                Err(_) if complete && ![INFLIGHT_CSV, SERVER_CSV].contains(&name) => {
                    Err(crate::error::Error::Usage(format!(
                        "{}: missing from a run directory with {RUN_JSON}: it is damaged (every run writes it)",
                        p.display()
                    )))
                }
                Err(_) => Ok(None),
            }
        };
        fn rows<T: DeserializeOwned>(p: Option<PathBuf>) -> Result<Vec<T>> {
            p.map_or(Ok(Vec::new()), |p| read_csv(&p))
        }
        fn lines<T: DeserializeOwned>(p: &Option<PathBuf>) -> Result<Vec<(u64, T)>> {
            p.as_ref().map_or(Ok(Vec::new()), |p| read_csv_lines(p))
        }
        // Windows no run writes (a negative start, a zero length) are refused.
        fn windows<T: DeserializeOwned>(
            p: Option<PathBuf>,
            window: fn(&T) -> (f64, f64),
        ) -> Result<Vec<T>> {
            let rows: Vec<(u64, T)> = lines(&p)?;
            if let Some(p) = &p {
                check_windows(
                    p,
                    rows.iter().map(|(l, r)| {
                        let (start, len) = window(r);
                        (*l, start, len)
                    }),
                )?;
            }
            Ok(rows.into_iter().map(|(_, r)| r).collect())
        }
        let latency: Vec<LatencyRow> = windows(opt(LATENCY_CSV)?, |r: &LatencyRow| {
            (r.window_start_ms, r.window_ms)
        })?;
        let inflight: Vec<InflightRow> = windows(opt(INFLIGHT_CSV)?, |r: &InflightRow| {
            (r.window_start_ms, r.window_ms)
        })?;
        let statements: Vec<(u64, StatementRow)> = lines(&opt(STATEMENTS_CSV)?)?;
        let steps: Vec<(u64, StepRow)> = lines(&opt(STEPS_CSV)?)?;
        if let Some(info) = &info {
            check_failure(dir, info, &steps, &statements)?;
        }
        let hdr = dir.join(LATENCY_HDR);
        let histograms = match File::open(&hdr) {
            Ok(f) => crate::latency_hdr::load(std::io::BufReader::new(f))
                .map_err(|e| anyhow::anyhow!("{}: {e}", hdr.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && latency.is_empty() => {
                Histograms::default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(crate::error::Error::Usage(format!(
                    "{}: missing, but {LATENCY_CSV} has rows: percentiles over a span are merged from its histograms (this run directory was written by an older pgrehearse; rehearse again)",
                    hdr.display()
                )))
            }
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", hdr.display()).into()),
        };
        if histograms.segments.is_empty() && latency.iter().any(|l| l.count > 0) {
            return Err(crate::error::Error::Usage(format!(
                "{}: holds no histogram, but {LATENCY_CSV} counts requests: the run directory is damaged",
                hdr.display()
            )));
        }
        check_segments(&hdr, &latency, &histograms)?;
        Ok(RunRecord {
            info,
            statements: statements.into_iter().map(|(_, r)| r).collect(),
            locks: rows(opt(LOCKS_CSV)?)?,
            waits: rows(opt(WAITS_CSV)?)?,
            latency,
            histograms,
            inflight,
            errors: rows(opt(ERRORS_CSV)?)?,
            server: rows(opt(SERVER_CSV)?)?,
            steps: steps.into_iter().map(|(_, r)| r).collect(),
        })
    }
}

/// csv's serializer only writes a header with the first row; an empty table
/// still needs one. Column names come from the struct's field names.
fn write_csv_with_header<T: Serialize + DeserializeOwned>(path: &Path, rows: &[T]) -> Result<()> {
    if rows.is_empty() {
        std::fs::write(path, header::<T>().join(",") + "\n")?;
        Ok(())
    } else {
        write_csv(path, rows)
    }
}

/// A CSV file's columns: the row struct's field names.
fn header<T: DeserializeOwned>() -> &'static [&'static str] {
    crate::fields::field_names::<T>()
}

/// run.json parsed, a problem named `run.json:line:column: field `steps[2].outcome`:`
/// and in JSON's words: "expected an object", "a number", not a Rust
/// type's name.
fn read_info(text: &str) -> std::result::Result<RunInfo, String> {
    if !text.trim_start().starts_with('{') {
        return Err(": not a JSON object, as every run.json is".into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let info: RunInfo = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_problem(&path, e.into_inner())
    })?;
    de.end().map_err(|e| json_problem(".", e))?;
    check_spans(&info)?;
    check_budget(&info.budget)?;
    Ok(info)
}

/// Budget limits as a scenario can set them (validation refuses others):
/// a damaged limit is the directory's fault, exit 2, not a breach.
fn check_budget(b: &crate::scenario::Budget) -> std::result::Result<(), String> {
    let limits = [
        ("max_blocking_lock_ms", b.max_blocking_lock_ms),
        ("max_app_wait_ms", b.max_app_wait_ms),
        ("p99_ms", b.p99_ms),
        ("max_error_rate", b.max_error_rate),
        ("max_duration_ms", b.max_duration_ms),
        ("max_recovery_ms", b.max_recovery_ms),
        ("max_replica_lag_ms", b.max_replica_lag_ms),
    ];
    for (name, v) in limits {
        let Some(v) = v else { continue };
        let most = if name == "max_error_rate" {
            1.0
        } else {
            MAX_RUN_MS
        };
        if !(v.is_finite() && (0.0..=most).contains(&v)) {
            return Err(format!(
                ": field `budget.{name}`: {} is not a limit a scenario can set (expected 0 to {}): the run directory is damaged",
                shown(v),
                shown(most)
            ));
        }
    }
    Ok(())
}

/// A serde_json error as `:line:column: field `path`: what` (the file's
/// name goes before it).
fn json_problem(path: &str, inner: serde_json::Error) -> String {
    let at = match inner.line() {
        0 => String::new(),
        line => format!(":{line}:{}", inner.column()),
    };
    // serde_json's own " at line 5 column 119", said once, up front.
    let said = inner.to_string();
    let said = regex::Regex::new(r" at line \d+ column \d+$")
        .map(|re| re.replace(&said, "").into_owned())
        .unwrap_or(said);
    let field = match path {
        "." | "?" | "" => None,
        p => Some(p),
    };
    let missing = regex::Regex::new(r"^missing field `(\w+)`$")
        .ok()
        .and_then(|re| re.captures(&said).map(|c| c[1].to_string()));
    match (inner.classify(), missing) {
        (serde_json::error::Category::Eof, _) => {
            format!("{at}: the file ends inside a JSON value: it is cut short")
        }
        // serde_json says so of an array longer than expected, too.
        (serde_json::error::Category::Syntax, _)
            if said == "trailing characters" && field.is_some() =>
        {
            format!(
                "{at}: field `{}`: more elements than expected",
                field.unwrap_or_default()
            )
        }
        (serde_json::error::Category::Syntax, _) => format!("{at}: not valid JSON: {said}"),
        (_, Some(key)) => {
            let key = field.map_or(key.clone(), |f| format!("{f}.{key}"));
            format!(
                "{at}: key `{key}` is missing: every run writes it, so the run directory is damaged"
            )
        }
        _ => match field {
            Some(f) => format!("{at}: field `{f}`: {}", plain_words(&said)),
            None => format!("{at}: {}", plain_words(&said)),
        },
    }
}

/// A number as a message shows it: 1e300 as written, not as 301 digits.
fn shown(v: f64) -> String {
    match v.abs() >= 1e15 {
        true => format!("{v:e}"),
        false => v.to_string(),
    }
}

/// The longest span a run.json time may give: a year, in ms. Far past any
/// rehearsal, and it keeps a damaged value (1e300) from sizing the windows
/// the report walks.
const MAX_RUN_MS: f64 = 365.0 * 24.0 * 3600.0 * 1000.0;

/// A time a real run writes: finite, not negative, within [`MAX_RUN_MS`].
/// run.json's times are checked as they are read (so named at their line);
/// the CSVs' window starts by [`check_windows`].
fn check_time(v: f64) -> std::result::Result<f64, String> {
    match v.is_finite() && (0.0..=MAX_RUN_MS).contains(&v) {
        true => Ok(v),
        false => Err(format!(
            "{} is not a time of a run (expected ms from 0 to {MAX_RUN_MS})",
            shown(v)
        )),
    }
}

/// A CSV's time or duration in ms: finite and within [`MAX_RUN_MS`] either
/// way. A damaged `inf` or `1e308` would size the windows and ticks the
/// report walks; it is named at its line and column instead.
pub(crate) fn bounded_ms<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<f64, D::Error> {
    let v = <f64 as serde::Deserialize>::deserialize(d)?;
    check_bounded(v).map_err(serde::de::Error::custom)
}

/// [`bounded_ms`], or an empty cell.
pub(crate) fn opt_bounded_ms<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    <Option<f64> as serde::Deserialize>::deserialize(d)?
        .map(check_bounded)
        .transpose()
        .map_err(serde::de::Error::custom)
}

fn check_bounded(v: f64) -> std::result::Result<f64, String> {
    match v.is_finite() && v.abs() <= MAX_RUN_MS {
        true => Ok(v),
        false => Err(format!(
            "{} is not a time of a run (expected ms within {MAX_RUN_MS})",
            shown(v)
        )),
    }
}

/// Every span in order (each time was checked as it was read).
fn check_spans(info: &RunInfo) -> std::result::Result<(), String> {
    let span = |field: &str, start: f64, end: f64| match start <= end {
        true => Ok(()),
        false => Err(format!(
            ": field `{field}`: it ends ({end} ms) before it starts ({start} ms)"
        )),
    };
    for (i, p) in info.phases.iter().enumerate() {
        span(&format!("phases[{i}]"), p.start_ms, p.end_ms)?;
    }
    for (i, s) in info.steps.iter().enumerate() {
        span(&format!("steps[{i}]"), s.start_ms, s.end_ms)?;
    }
    Ok(())
}

/// latency.csv's and inflight.csv's windows as a run writes them: a start
/// that is a time of the run, a length above 0. A negative start would
/// put requests before the run began, outside every span the report sums.
fn check_windows<'a>(path: &Path, rows: impl Iterator<Item = (u64, f64, f64)> + 'a) -> Result<()> {
    for (line, start, len) in rows {
        if let Err(why) = check_time(start) {
            return Err(crate::error::Error::Usage(format!(
                "{}:{line}: column `window_start_ms`: {why}: the run directory is damaged",
                path.display()
            )));
        }
        if !(len.is_finite() && len > 0.0 && len <= 3_600_000.0) {
            return Err(crate::error::Error::Usage(format!(
                "{}:{line}: column `window_ms`: {} is not a window length (expected more than 0 ms, at most an hour): the run directory is damaged",
                path.display(),
                shown(len)
            )));
        }
    }
    Ok(())
}

/// latency.hdr's segments against latency.csv: every request is in both —
/// in latency.csv's window and in the segment it completed in (counted
/// there as `completed`), and in the histogram of the segment it was due
/// in, unless a hard stop cut it off (`unfinished`: due, never
/// completed) — so per query × app the three totals are equal. A segment line
/// missing (the file cut short at a line boundary, by a run killed while
/// it wrote them or a truncated artifact) makes them differ: read as it
/// is, the spans it covered would have had no traffic, and a run that
/// failed its p99 would pass.
fn check_segments(hdr: &Path, latency: &[LatencyRow], h: &Histograms) -> Result<()> {
    use std::collections::BTreeMap;
    // (in latency.csv, completed per segments, due per segments)
    let mut totals: BTreeMap<(&str, &str), [u64; 3]> = BTreeMap::new();
    for r in latency {
        totals.entry((&r.query, &r.app)).or_default()[0] += r.count;
    }
    for e in &h.segments {
        if let crate::latency_hdr::Span::Segment {
            completed,
            unfinished,
            ..
        } = e.span
        {
            let t = totals.entry((&e.query, &e.app)).or_default();
            t[1] += completed;
            // Requests a hard stop cut off are due but never completed.
            t[2] += e.hist.len().saturating_sub(unfinished);
        }
    }
    match totals.iter().find(|(_, [csv, done, due])| csv != done || done != due) {
        None => Ok(()),
        Some(((query, app), [csv, done, due])) => Err(crate::error::Error::Usage(format!(
            "{}: its segments hold {due} requests of query `{query}` app `{app}` by when they were due and {done} by when they completed, {LATENCY_CSV} {csv}: a segment is missing (the file is cut short) or the run directory is otherwise damaged",
            hdr.display()
        ))),
    }
}

/// What a run that finished cannot hold: a step that failed (not `ok`,
/// not `expected_error`), or a step whose last statement failed, with
/// run.json's `failure` null. Every run whose step fails records why in
/// `failure` (an interrupted or aborted one too), so this is a run.json
/// edited by hand, or damaged — read as it stands it would pass a run
/// that failed.
fn check_failure(
    dir: &Path,
    info: &RunInfo,
    steps: &[(u64, StepRow)],
    statements: &[(u64, StatementRow)],
) -> Result<()> {
    if info.failure.is_some() {
        return Ok(());
    }
    let failed = |outcome: &str| !matches!(outcome, "ok" | "expected_error");
    let damaged = |what: String, failure: &str| {
        Err(crate::error::Error::Usage(format!(
            "{what}, but {failure} `failure` is null (a run whose step failed says why there): the run directory is damaged"
        )))
    };
    if let Some((i, s)) = info
        .steps
        .iter()
        .enumerate()
        .find(|(_, s)| failed(&s.outcome))
    {
        return damaged(
            format!(
                "{}: field `steps[{i}].outcome` is `{}` (step {} / {})",
                dir.join(RUN_JSON).display(),
                s.outcome,
                s.phase,
                s.step
            ),
            "its field",
        );
    }
    if let Some((line, s)) = steps.iter().find(|(_, s)| failed(&s.outcome)) {
        return damaged(
            format!(
                "{}:{line}: column `outcome` is `{}` (step {} / {})",
                dir.join(STEPS_CSV).display(),
                s.outcome,
                s.phase,
                s.step
            ),
            "run.json field",
        );
    }
    // A statement may fail and the step go on (a lock timeout retried, an
    // expected error): the step's last one says how it ended.
    let mut last: Vec<&(u64, StatementRow)> = Vec::new();
    for row in statements {
        match last
            .iter_mut()
            .find(|l| l.1.phase == row.1.phase && l.1.step == row.1.step)
        {
            Some(l) => *l = row,
            None => last.push(row),
        }
    }
    let expected = |s: &StatementRow| {
        info.steps
            .iter()
            .any(|i| i.phase == s.phase && i.step == s.step && i.outcome == "expected_error")
    };
    if let Some((line, s)) = last
        .into_iter()
        .find(|(_, s)| s.outcome != "ok" && !expected(s))
    {
        return damaged(
            format!(
                "{}:{line}: column `outcome` of the last statement of step {} / {} is `{}`",
                dir.join(STATEMENTS_CSV).display(),
                s.phase,
                s.step,
                s.outcome
            ),
            "run.json field",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs started together (parallel tests, processes) each get a run
    /// directory of their own (QA: 8 threads shared one in 109 of 300
    /// rounds, when the name was checked before it was created).
    #[test]
    fn runs_started_at_once_get_directories_of_their_own() {
        let out = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let dirs: Vec<PathBuf> = (0..8)
                .map(|_| {
                    let (b, out) = (barrier.clone(), out.path().to_path_buf());
                    std::thread::spawn(move || {
                        b.wait();
                        create_run_dir(&out, "s").unwrap()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            let mut unique = dirs.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 8, "{dirs:?}");
        }
    }

    #[test]
    fn a_name_stays_one_directory_of_a_sane_length() {
        assert_eq!(sanitize("orders/v2 é"), "orders_v2__");
        assert_eq!(sanitize(".."), "__");
        assert_eq!(sanitize("."), "_");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("a..b"), "a..b");
        assert_eq!(sanitize(&"x".repeat(300)).len(), MAX_NAME);
    }

    #[test]
    fn unknown_reasons_read_back_as_written() {
        let mut u = Unknown::default();
        u.add("seq_scans", "counted only inside a transaction");
        u.add("wal_bytes", "the probe failed: permission denied; hint: x");
        u.add("seq_scans", "a second reason is not kept");
        let text = u.to_string();
        assert_eq!(
            text,
            "seq_scans: counted only inside a transaction; wal_bytes: the probe failed: permission denied, hint: x"
        );
        let back = Unknown::parse(&text);
        assert_eq!(
            back.why("seq_scans"),
            Some("counted only inside a transaction")
        );
        assert_eq!(
            back.why("wal_bytes"),
            Some("the probe failed: permission denied, hint: x")
        );
        assert_eq!(back.why("rewrote"), None);
        assert_eq!(Unknown::parse(""), Unknown::default());
    }

    #[test]
    fn unknown_figures_are_empty_cells() {
        let dir = tempfile::tempdir().unwrap();
        let row = StatementRow {
            phase: "p".into(),
            step: "s".into(),
            attempt: 1,
            sql: "CREATE INDEX CONCURRENTLY i ON t (c)".into(),
            start_ms: 1.0,
            end_ms: 2.0,
            duration_ms: 1.0,
            outcome: "ok".into(),
            sqlstate: String::new(),
            rewrote: Some(false),
            seq_scans: None,
            scanned: String::new(),
            wal_bytes: None,
            cluster_wal_bytes: Some(4096),
            unknown:
                "seq_scans: counted only inside a transaction; wal_bytes: no pg_stat_statements"
                    .into(),
            file: String::new(),
            line: None,
        };
        let path = dir.path().join(STATEMENTS_CSV);
        write_csv(&path, std::slice::from_ref(&row)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(",ok,,false,,,4096,"), "{text}");
        let back: Vec<StatementRow> = read_csv(&path).unwrap();
        assert_eq!(back, [row]);
        // An empty file has the header a row brings with it.
        let first_line = text.lines().next().unwrap();
        assert_eq!(header::<StatementRow>().join(","), first_line);
        let empty = dir.path().join("empty.csv");
        write_csv_with_header::<StatementRow>(&empty, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&empty).unwrap(),
            format!("{first_line}\n")
        );
        assert_eq!(
            header::<ErrorRow>(),
            ["t_ms", "query", "app", "sqlstate", "message", "due_ms"]
        );
    }
}
