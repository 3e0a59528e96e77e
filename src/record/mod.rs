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
    let mut dir = base.join(&stamp);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = base.join(format!("{stamp}-{n}"));
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for row in r.deserialize() {
        rows.push(row.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    }
    Ok(rows)
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
                Some(read_info(&s).map_err(|e| anyhow::anyhow!("{}: {e}", info_path.display()))?)
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
        let latency: Vec<LatencyRow> = rows(opt(LATENCY_CSV)?)?;
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
        Ok(RunRecord {
            info,
            statements: rows(opt(STATEMENTS_CSV)?)?,
            locks: rows(opt(LOCKS_CSV)?)?,
            waits: rows(opt(WAITS_CSV)?)?,
            latency,
            histograms,
            inflight: rows(opt(INFLIGHT_CSV)?)?,
            errors: rows(opt(ERRORS_CSV)?)?,
            server: rows(opt(SERVER_CSV)?)?,
            steps: rows(opt(STEPS_CSV)?)?,
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

/// run.json parsed, a problem named by its field (`steps[2].outcome`) and
/// in JSON's words: "expected an object", not a Rust type's name.
fn read_info(text: &str) -> std::result::Result<RunInfo, String> {
    if !text.trim_start().starts_with('{') {
        return Err("not a JSON object, as every run.json is".into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let info: RunInfo = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = regex::Regex::new(r"expected struct \w+( with \d+ elements?)?")
            .map(|re| {
                re.replace_all(&inner.to_string(), "expected an object")
                    .into_owned()
            })
            .unwrap_or_else(|_| inner.to_string());
        let message = message
            .replace("expected a sequence", "expected an array")
            .replace("invalid type: sequence", "invalid type: array")
            .replace("invalid type: map", "invalid type: object")
            .replace("expected a map", "expected an object");
        if path == "." {
            message
        } else {
            format!("field `{path}`: {message}")
        }
    })?;
    check_times(&info)?;
    Ok(info)
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

/// Times a real run writes: finite, not negative, within [`MAX_RUN_MS`],
/// a window longer than zero, and every span in order. A damaged run.json
/// is named by its field, as a type error is.
fn check_times(info: &RunInfo) -> std::result::Result<(), String> {
    let time = |field: &str, v: f64| match v.is_finite() && (0.0..=MAX_RUN_MS).contains(&v) {
        true => Ok(()),
        false => Err(format!(
            "field `{field}`: {} is not a time of a run (expected ms from 0 to {MAX_RUN_MS})",
            shown(v)
        )),
    };
    let span = |field: &str, start: f64, end: f64| {
        time(&format!("{field}.start_ms"), start)?;
        time(&format!("{field}.end_ms"), end)?;
        match start <= end {
            true => Ok(()),
            false => Err(format!(
                "field `{field}`: it ends ({end} ms) before it starts ({start} ms)"
            )),
        }
    };
    time("end_ms", info.end_ms)?;
    time("seed_ms", info.seed_ms)?;
    time("lock_precision_ms", info.lock_precision_ms)?;
    if let Some(t) = info.traffic_started_ms {
        time("traffic_started_ms", t)?;
    }
    if !(info.window_ms.is_finite() && info.window_ms > 0.0 && info.window_ms <= 3_600_000.0) {
        return Err(format!(
            "field `window_ms`: {} is not a window length (expected more than 0 ms, at most an hour)",
            shown(info.window_ms)
        ));
    }
    if let Some(rate) = info.rate.filter(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(format!(
            "field `rate`: {} is not a rate (expected requests per second above 0)",
            shown(rate)
        ));
    }
    for (i, p) in info.phases.iter().enumerate() {
        span(&format!("phases[{i}]"), p.start_ms, p.end_ms)?;
    }
    for (i, s) in info.steps.iter().enumerate() {
        span(&format!("steps[{i}]"), s.start_ms, s.end_ms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ["t_ms", "query", "app", "sqlstate", "message"]
        );
    }
}
