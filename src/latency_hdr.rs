//! latency.hdr: the run's latency histograms, in HdrHistogram's interval-log
//! format (histograms in the V2 deflate encoding, base64), so HdrHistogram's
//! own tools (HistogramLogProcessor, the hdrhistogram crate's
//! `IntervalLogIterator`) read it too. reports/README.md documents it.
//!
//! Two kinds of histogram, told apart by the line's tag:
//!
//! - `window;query=Q;app=A`: the requests of query Q from app A that
//!   completed in one latency window (start and length in the line's
//!   timestamps, seconds since the run started). A tag is the same on every
//!   line of a series, so a tool can follow one query × app over time.
//! - `segment;query=Q;app=A;from_ms=F;to_ms=T;errors=E;completed=C;completed_errors=CE`:
//!   the requests that were *due* (intended start) in `[F, T)`, a segment of
//!   the run between two consecutive boundaries the migration marked (a
//!   phase or step starting or ending), E of them failed; and, counted
//!   apart, the C requests that *completed* in `[F, T)`, CE of them failed.
//!   A run stopped hard adds `;unfinished=U`: U of the requests due were
//!   still in flight (or due and unsent) at the stop; the histogram holds
//!   their age at the stop, a lower bound of their latency.
//!   Every span the reports show (before, during, after, a step, a phase)
//!   is a union of segments, so its figures are an exact merge.
//!
//! Values are latencies in microseconds (completion − intended start), kept
//! to [`SIGFIG`] significant digits. Names are percent-encoded in tags.

use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Significant decimal digits every latency histogram keeps: a value is
/// known to within 0.1%.
pub const SIGFIG: u8 = 3;

/// The largest latency tracked (1 hour, µs); larger values are recorded as
/// this.
pub const MAX_US: u64 = 3_600_000_000;

/// A new latency histogram (µs, [`SIGFIG`] digits, growing as needed).
pub fn histogram() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("valid precision")
}

/// Record one latency (µs), clamped to 1..=[`MAX_US`].
pub fn record(h: &mut Histogram<u64>, us: u64) {
    // Cannot fail: the value is in range and the histogram grows.
    let _ = h.record(us.clamp(1, MAX_US));
}

/// Everything but letters, digits and `-_.` is percent-encoded in a tag.
const TAG_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// What a histogram line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    /// A latency window.
    Window,
    /// A segment between two marked boundaries: its histogram holds the
    /// requests due in it, `errors` of them failed and `unfinished` of them
    /// cut off by a hard stop (their age then); `completed` requests
    /// completed in it, `completed_errors` of them failed.
    Segment {
        errors: u64,
        completed: u64,
        completed_errors: u64,
        unfinished: u64,
    },
}

/// One histogram of latency.hdr.
#[derive(Debug, Clone)]
pub struct Entry {
    pub span: Span,
    pub query: String,
    pub app: String,
    /// Run-clock ms: the window's or segment's start (inclusive) and end
    /// (exclusive), by completion time.
    pub from_ms: f64,
    pub to_ms: f64,
    pub hist: Histogram<u64>,
}

impl Entry {
    fn tag(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, TAG_VALUE).to_string();
        let (q, a) = (enc(&self.query), enc(&self.app));
        match self.span {
            Span::Window => format!("window;query={q};app={a}"),
            Span::Segment {
                errors,
                completed,
                completed_errors,
                unfinished,
            } => {
                let mut tag = format!(
                    "segment;query={q};app={a};from_ms={:.3};to_ms={:.3};errors={errors};completed={completed};completed_errors={completed_errors}",
                    self.from_ms, self.to_ms
                );
                // Only a run stopped hard has any: other runs' files stay
                // as they were.
                if unfinished > 0 {
                    tag.push_str(&format!(";unfinished={unfinished}"));
                }
                tag
            }
        }
    }
}

/// Writes latency.hdr line by line, as windows and segments close.
pub struct HdrWriter<W: Write> {
    out: W,
    ser: V2DeflateSerializer,
}

impl<W: Write> HdrWriter<W> {
    /// Start a log whose timestamps count from `started` (the run's start).
    pub fn new(mut out: W, started: SystemTime) -> std::io::Result<HdrWriter<W>> {
        let mut ser = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment("[Histogram log format version 1.3]")
            .add_comment("pgrehearse latency histograms: values in microseconds (completion - intended start)")
            .add_comment("tags: window;query=Q;app=A  |  segment;query=Q;app=A;from_ms=F;to_ms=T;errors=E;completed=C;completed_errors=CE[;unfinished=U] (see reports/README.md)")
            .with_start_time(started)
            .with_base_time(started)
            .begin_log_with(&mut out, &mut ser)?;
        out.write_all(b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")?;
        Ok(HdrWriter { out, ser })
    }

    /// Append one histogram (empty ones are skipped: no line says nothing).
    pub fn write(&mut self, e: &Entry) -> std::io::Result<()> {
        // A segment no request was due in can still have some complete in
        // it (a backlog draining when a lock goes): its line carries them.
        let carries = match e.span {
            Span::Segment { completed, .. } => completed > 0,
            Span::Window => false,
        };
        if e.hist.is_empty() && !carries {
            return Ok(());
        }
        let tag = e.tag();
        let secs = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1e3);
        let mut log =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.out, &mut self.ser)?;
        log.write_histogram(
            &e.hist,
            secs(e.from_ms),
            secs(e.to_ms - e.from_ms),
            Tag::new(&tag),
        )
        .map_err(|err| std::io::Error::other(err.to_string()))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Read latency.hdr line by line, handing each histogram to `each` (a long
/// run's windows are never all in memory at once). Errors name the line.
pub fn read(input: impl BufRead, mut each: impl FnMut(Entry)) -> Result<(), String> {
    let mut de = Deserializer::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        if line.is_empty() || line.starts_with('#') || line.starts_with('"') {
            continue;
        }
        let bytes = format!("{line}\n");
        let entry = match IntervalLogIterator::new(bytes.as_bytes()).next() {
            Some(Ok(LogEntry::Interval(h))) => parse(&h, &mut de),
            _ => Err("not an interval histogram".to_string()),
        };
        each(entry.map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(())
}

fn parse(
    h: &hdrhistogram::serialization::interval_log::IntervalLogHistogram<'_>,
    de: &mut Deserializer,
) -> Result<Entry, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(h.encoded_histogram())
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let hist: Histogram<u64> = de
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e}"))?;
    let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
    let mut parts = tag.split(';').peekable();
    let kind = parts.next().unwrap_or("");
    // `name=` and what follows; the optional ones (`unfinished`) are read
    // when they come next, as 0 when they do not.
    let mut field = |name: &str| -> Result<String, String> {
        if name == "unfinished" && parts.peek().is_none() {
            return Ok("0".into());
        }
        let v = parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .and_then(|p| p.strip_prefix('='))
            .ok_or_else(|| format!("tag `{tag}`: expected {name}=..."))?;
        percent_decode_str(v)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|e| format!("tag `{tag}`: {e}"))
    };
    let query = field("query")?;
    let app = field("app")?;
    let from = h.start_timestamp().as_secs_f64() * 1e3;
    let (span, from_ms, to_ms) = match kind {
        "window" => (Span::Window, from, from + h.duration().as_secs_f64() * 1e3),
        "segment" => {
            let num = |s: String| {
                s.parse::<f64>()
                    .map_err(|_| format!("tag `{tag}`: `{s}` is not a number"))
            };
            let from_ms = num(field("from_ms")?)?;
            let to_ms = num(field("to_ms")?)?;
            let mut count = |name: &str| {
                field(name)?
                    .parse::<u64>()
                    .map_err(|_| format!("tag `{tag}`: {name} is not a count"))
            };
            let errors = count("errors")?;
            let completed = count("completed")?;
            let completed_errors = count("completed_errors")?;
            let unfinished = count("unfinished")?;
            let span = Span::Segment {
                errors,
                completed,
                completed_errors,
                unfinished,
            };
            (span, from_ms, to_ms)
        }
        other => return Err(format!("tag `{tag}`: unknown kind `{other}`")),
    };
    Ok(Entry {
        span,
        query,
        app,
        from_ms,
        to_ms,
        hist,
    })
}

/// latency.hdr as the analysis reads it: the segments' histograms (a few
/// per step) and, per window, the figures of the app's queries together
/// (scripts left out: a one-off session's `pg_sleep` is not the app being
/// slow) and of each query or script (app versions merged), computed while
/// reading, so a long run's windows are never all decoded at once.
#[derive(Debug, Clone, Default)]
pub struct Histograms {
    /// In the order written (by segment, then query × app).
    pub segments: Vec<Entry>,
    pub windows: Vec<WindowFigures>,
}

/// One window's latency over some of its requests.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFigures {
    pub from_ms: f64,
    pub to_ms: f64,
    /// None: every query of every app version together, scripts left out.
    pub query: Option<String>,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl WindowFigures {
    fn of(from_ms: f64, to_ms: f64, query: Option<String>, h: &Histogram<u64>) -> WindowFigures {
        WindowFigures {
            from_ms,
            to_ms,
            query,
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// The window being read: its span, the app's queries together, each query.
struct OpenWindow {
    from_ms: f64,
    to_ms: f64,
    all: Histogram<u64>,
    by_query: Vec<(String, Histogram<u64>)>,
}

impl OpenWindow {
    fn add(&mut self, e: Entry) {
        // Our histograms grow: adding never fails.
        if e.app != crate::latency::SCRIPT_APP {
            let _ = self.all.add(&e.hist);
        }
        match self.by_query.iter_mut().find(|(q, _)| *q == e.query) {
            Some((_, h)) => {
                let _ = h.add(&e.hist);
            }
            None => {
                // A histogram of our own: a decoded one may not grow.
                let mut h = histogram();
                let _ = h.add(&e.hist);
                self.by_query.push((e.query, h));
            }
        }
    }

    fn figures(self, out: &mut Vec<WindowFigures>) {
        out.push(WindowFigures::of(self.from_ms, self.to_ms, None, &self.all));
        for (q, h) in self.by_query {
            out.push(WindowFigures::of(self.from_ms, self.to_ms, Some(q), &h));
        }
    }
}

/// Read latency.hdr (see [`read`]) into [`Histograms`].
pub fn load(input: impl BufRead) -> Result<Histograms, String> {
    let mut out = Histograms::default();
    let mut open: Option<OpenWindow> = None;
    read(input, |e| match e.span {
        Span::Segment { .. } => out.segments.push(e),
        Span::Window => {
            if open.as_ref().is_some_and(|w| w.from_ms != e.from_ms) {
                if let Some(w) = open.take() {
                    w.figures(&mut out.windows);
                }
            }
            open.get_or_insert_with(|| OpenWindow {
                from_ms: e.from_ms,
                to_ms: e.to_ms,
                all: histogram(),
                by_query: Vec::new(),
            })
            .add(e);
        }
    })?;
    if let Some(w) = open {
        w.figures(&mut out.windows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(span: Span, query: &str, from_ms: f64, to_ms: f64, values: &[u64]) -> Entry {
        let mut hist = histogram();
        for v in values {
            record(&mut hist, *v);
        }
        Entry {
            span,
            query: query.into(),
            app: "v1".into(),
            from_ms,
            to_ms,
            hist,
        }
    }

    #[test]
    fn entries_round_trip_with_awkward_names() {
        let mut buf = Vec::new();
        let mut w = HdrWriter::new(&mut buf, SystemTime::UNIX_EPOCH).unwrap();
        let win = entry(
            Span::Window,
            "read, order; 100%",
            1200.0,
            1300.0,
            &[900, 1500, 4_000_000],
        );
        let seg = entry(
            Span::Segment {
                errors: 2,
                completed: 3,
                completed_errors: 1,
                unfinished: 0,
            },
            "q",
            2000.123,
            2154.456,
            &[1000, 2000],
        );
        // A run stopped hard: requests due and cut off, none completed.
        let cut = entry(
            Span::Segment {
                errors: 0,
                completed: 0,
                completed_errors: 0,
                unfinished: 2,
            },
            "q",
            2154.456,
            2900.0,
            &[500_000, 700_000],
        );
        w.write(&win).unwrap();
        w.write(&seg).unwrap();
        w.write(&cut).unwrap();
        w.write(&entry(Span::Window, "empty", 0.0, 100.0, &[]))
            .unwrap();
        w.flush().unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains("#[BaseTime: 0.000"), "{text}");
        assert!(
            text.contains("Tag=window;query=read%2C%20order%3B%20100%25;app=v1,1.200,0.100,"),
            "{text}"
        );

        let mut got = Vec::new();
        read(buf.as_slice(), |e| got.push(e)).unwrap();
        assert_eq!(got.len(), 3, "the empty histogram is not written");
        assert!(
            text.contains(";completed_errors=1,")
                && text.contains(";completed_errors=0;unfinished=2,"),
            "unfinished is written only when there are some: {text}"
        );
        assert_eq!(got[0].query, "read, order; 100%");
        assert_eq!((got[0].from_ms, got[0].to_ms), (1200.0, 1300.0));
        assert_eq!(got[0].hist, win.hist);
        assert_eq!(
            got[1].span,
            Span::Segment {
                errors: 2,
                completed: 3,
                completed_errors: 1,
                unfinished: 0,
            }
        );
        assert_eq!((got[1].from_ms, got[1].to_ms), (2000.123, 2154.456));
        assert_eq!(got[1].hist.len(), 2);
        assert_eq!(got[2].span, cut.span);
        assert_eq!(got[2].hist, cut.hist);
    }

    #[test]
    fn the_crates_own_reader_reads_it() {
        let mut buf = Vec::new();
        let mut w = HdrWriter::new(&mut buf, SystemTime::UNIX_EPOCH).unwrap();
        w.write(&entry(Span::Window, "q", 100.0, 200.0, &[5, 6, 7]))
            .unwrap();
        let intervals: Vec<_> = IntervalLogIterator::new(&buf)
            .filter_map(|e| match e.unwrap() {
                LogEntry::Interval(h) => Some(h.tag().unwrap().as_str().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(intervals, ["window;query=q;app=v1"]);
    }

    #[test]
    fn a_windows_app_figures_leave_scripts_out_and_a_scripts_own_keep_them() {
        let mut buf = Vec::new();
        let mut w = HdrWriter::new(&mut buf, SystemTime::UNIX_EPOCH).unwrap();
        w.write(&entry(Span::Window, "read", 100.0, 200.0, &[1000, 2000]))
            .unwrap();
        let mut report = entry(Span::Window, "report", 100.0, 200.0, &[4_000_000]);
        report.app = crate::latency::SCRIPT_APP.into();
        w.write(&report).unwrap();
        w.flush().unwrap();
        let h = load(buf.as_slice()).unwrap();
        let of = |q: Option<&str>| h.windows.iter().find(|w| w.query.as_deref() == q).unwrap();
        assert_eq!(of(None).count, 2);
        assert!(of(None).max_us < 3000, "{:?}", of(None));
        assert_eq!(of(Some("report")).count, 1);
        assert!(of(Some("report")).max_us >= 3_990_000);
    }

    #[test]
    fn a_bad_line_is_named() {
        let text = "#c\nTag=window;query=q;app=v1,0.100,0.100,1.0,notbase64!\n";
        let e = read(text.as_bytes(), |_| {}).unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        let mut buf = Vec::new();
        let mut w = HdrWriter::new(&mut buf, SystemTime::UNIX_EPOCH).unwrap();
        w.write(&entry(Span::Window, "q", 100.0, 200.0, &[5]))
            .unwrap();
        let text = String::from_utf8(buf)
            .unwrap()
            .replace("Tag=window;", "Tag=odd;");
        let e = read(text.as_bytes(), |_| {}).unwrap_err();
        assert!(e.contains("unknown kind `odd`"), "{e}");
    }
}
