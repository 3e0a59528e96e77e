//! Latency per query over time: p50, p99 and max per window on a log scale,
//! with phases and statement spans shaded and blocking lock holds marked in
//! a strip along the bottom.

use plotters::prelude::*;

use super::frame::{
    err, header_labels, layout, over_white, series_color, shade_spans, style_mesh, text_px, Area,
    ChartData, Lines, TimeChart, FONT, STATEMENT_ALPHA, STATEMENT_FILL,
};
use super::legend::{Legend, Mark};
use crate::latency_hdr::WindowFigures;
use crate::record::Blocks;
use plotters::coord::combinators::LogCoord;

pub const SIZE: (u32, u32) = (1280, 640);

/// A hold that blocks reads and writes, and one that blocks writes.
const READS_WRITES: RGBColor = RGBColor(150, 0, 20);
const WRITES: RGBColor = RGBColor(220, 60, 30);

/// One query's points: (window middle s, p50 ms, p99 ms, max ms); runs of
/// consecutive windows with completions, split where a window had none.
struct QuerySeries {
    name: String,
    runs: Vec<Vec<(f64, f64, f64, f64)>>,
}

fn series(d: &ChartData<'_>) -> Vec<QuerySeries> {
    let mut names: Vec<&str> = Vec::new();
    for w in &d.rec.histograms.windows {
        if let Some(q) = w.query.as_deref() {
            if !names.contains(&q) {
                names.push(q);
            }
        }
    }
    names
        .into_iter()
        .map(|name| QuerySeries {
            name: name.to_string(),
            // Windows of this query, app versions merged (exactly).
            runs: runs(
                d.rec
                    .histograms
                    .windows
                    .iter()
                    .filter(|w| w.query.as_deref() == Some(name) && w.count > 0),
            ),
        })
        .collect()
}

/// Points of consecutive windows with completions.
fn runs<'a>(windows: impl Iterator<Item = &'a WindowFigures>) -> Vec<Vec<(f64, f64, f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64, f64, f64)>> = Vec::new();
    let mut last_end: Option<f64> = None;
    for w in windows {
        let wms = w.to_ms - w.from_ms;
        if !last_end.is_some_and(|e| w.from_ms - e < wms * 0.5) {
            runs.push(Vec::new());
        }
        let ms = |us: u64| us as f64 / 1000.0;
        runs.last_mut().expect("pushed").push((
            (w.from_ms + wms / 2.0) / 1000.0,
            ms(w.p50_us),
            ms(w.p99_us),
            ms(w.max_us),
        ));
        last_end = Some(w.to_ms);
    }
    runs
}

/// One app's oldest request in flight at each window's end: runs of
/// (window end s, age ms, all connections busy).
struct InflightSeries {
    app: String,
    runs: Vec<Vec<(f64, f64, bool)>>,
}

fn inflight(d: &ChartData<'_>) -> Vec<InflightSeries> {
    let mut out: Vec<InflightSeries> = Vec::new();
    for r in &d.rec.inflight {
        let i = match out.iter().position(|s| s.app == r.app) {
            Some(i) => i,
            None => {
                out.push(InflightSeries {
                    app: r.app.clone(),
                    runs: vec![Vec::new()],
                });
                out.len() - 1
            }
        };
        let runs = &mut out[i].runs;
        match r.oldest_ms.filter(|ms| *ms > 0.0) {
            Some(age) => runs.last_mut().expect("one run").push((
                (r.window_start_ms + r.window_ms) / 1000.0,
                age,
                r.connections > 0 && r.busy >= r.connections,
            )),
            None if runs.last().is_some_and(|l| !l.is_empty()) => runs.push(Vec::new()),
            None => {}
        }
    }
    out
}

/// The y range (ms) in decades around the smallest p50 and the largest max
/// (or in-flight age).
fn y_range(qs: &[QuerySeries], fl: &[InflightSeries]) -> (f64, f64) {
    let pts = || qs.iter().flat_map(|q| q.runs.iter().flatten());
    let lo = pts()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = pts()
        .map(|p| p.3)
        .chain(fl.iter().flat_map(|s| s.runs.iter().flatten()).map(|p| p.1))
        .fold(0.0, f64::max);
    if lo.is_finite() && hi > 0.0 {
        (
            10f64.powf((lo * 0.8).log10().floor()).max(0.001),
            // A decade of headroom above the largest max for the phase
            // names.
            10f64.powf((hi * 1.5).log10().ceil() + 1.0),
        )
    } else {
        (0.1, 1000.0)
    }
}

type LatencyChart<'a, DB> = TimeChart<'a, DB, LogCoord<f64>>;

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    let window = d.rec.info.as_ref().map(|i| i.window_ms).unwrap_or(100.0);
    let title = format!(
        "App latency per query, {} — p50 / p99 / max per {window:.0} ms window",
        d.a.run.scenario
    );
    let (plot, side) = layout(root, &title)?;
    let qs = series(d);
    let fl = inflight(d);
    let (y0, y1) = y_range(&qs, &fl);
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..d.end_s, (y0..y1).log_scale())
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh);
    mesh.x_desc("time since run start (s)")
        .y_desc("latency (ms, log scale)")
        .y_labels(12)
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .draw()
        .map_err(err)?;
    shade_spans(&mut chart, d, (y0, y1))?;
    header_labels(&chart, d, &[])?;
    let holds = draw_holds(&mut chart, d, y0)?;
    draw_queries(&mut chart, &qs, y0)?;
    draw_inflight(&mut chart, &fl, y0)?;

    let mut legend = Legend::default();
    legend.heading("query");
    for (i, q) in qs.iter().enumerate() {
        legend.add(Mark::Line(series_color(i), 3), q.name.clone());
    }
    let grey = RGBColor(90, 90, 90);
    legend
        .heading("per window")
        .add(Mark::Line(grey, 2), "p99 (thick)")
        .add(Mark::Line(over_white(grey, 0.55), 1), "p50 (thin)")
        .add(Mark::Dot(grey), "max (dots)")
        .heading("in flight (window's end)");
    for (i, s) in fl.iter().enumerate() {
        legend.add(
            Mark::Dashed(inflight_color(i), 2),
            format!("{}: oldest request's age", s.app),
        );
    }
    if fl.iter().flat_map(|s| s.runs.iter().flatten()).any(|p| p.2) {
        legend.add(
            Mark::Line(inflight_color(0), 5),
            "thick: every connection busy",
        );
    }
    legend.heading("migration").add(
        Mark::Fill(over_white(STATEMENT_FILL, STATEMENT_ALPHA + 0.2)),
        "statement running",
    );
    if holds.reads_writes {
        legend.add(
            Mark::Fill(READS_WRITES),
            "lock held that blocks reads and writes",
        );
    }
    if holds.writes {
        legend.add(Mark::Fill(WRITES), "lock held that blocks writes");
    }
    if holds.pending {
        legend.add(
            Mark::Outline(READS_WRITES),
            "waiting for such a lock: app queries queue behind it",
        );
    }
    legend.draw(&side)
}

/// What the strip along the bottom showed.
#[derive(Default)]
struct Strip {
    writes: bool,
    reads_writes: bool,
    pending: bool,
}

/// Blocking lock holds as a strip along the bottom, the migration's waits
/// for such a lock outlined (the app queues behind them); the longest few
/// holds labelled, labels that would overlap one level up.
fn draw_holds<DB: DrawingBackend>(
    chart: &mut LatencyChart<'_, DB>,
    d: &ChartData<'_>,
    y0: f64,
) -> anyhow::Result<Strip> {
    let strip_top = y0 * 1.5;
    let px_per_s = chart.plotting_area().dim_in_pixel().0 as f64 / d.end_s.max(0.001);
    let mut lines = Lines::default();
    let mut drawn = Strip::default();
    for l in d
        .rec
        .locks
        .iter()
        .filter(|l| l.blocks != Blocks::None && l.wait_ms > 0.0)
    {
        let end = l
            .granted_ms
            .or(l.released_ms)
            .unwrap_or(l.requested_ms + l.wait_ms);
        let color = if l.blocks == Blocks::ReadsWrites {
            READS_WRITES
        } else {
            WRITES
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (l.requested_ms / 1000.0, y0 * 1.02),
                    (end / 1000.0, strip_top),
                ],
                color.stroke_width(2),
            )))
            .map_err(err)?;
        drawn.pending = true;
    }
    let mut blocking: Vec<_> = d
        .rec
        .locks
        .iter()
        .filter(|l| l.blocks != Blocks::None && l.granted_ms.is_some())
        .collect();
    let held = |l: &crate::record::LockRow| l.held_ms.unwrap_or(0.0);
    blocking.sort_by(|a, b| held(b).total_cmp(&held(a)));
    for (rank, l) in blocking.into_iter().enumerate() {
        let Some(g) = l.granted_ms else { continue };
        let r = l.released_ms.unwrap_or(g + held(l));
        let color = if l.blocks == Blocks::ReadsWrites {
            drawn.reads_writes = true;
            READS_WRITES
        } else {
            drawn.writes = true;
            WRITES
        };
        let (a, b) = (g / 1000.0, (r / 1000.0).max(g / 1000.0 + 2.0 / px_per_s));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y0), (b, strip_top)],
                color.filled(),
            )))
            .map_err(err)?;
        if rank >= 4 {
            continue;
        }
        let text = format!(
            "{} on {}: {:.0} ms, blocks {}",
            l.mode,
            l.relation,
            held(l),
            l.blocks
        );
        let a = a.min(d.end_s - text_px(&text) / px_per_s).max(0.0);
        let level = lines.place(a * px_per_s, a * px_per_s + text_px(&text));
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (a, strip_top * 1.35 * 1.7f64.powi(level as i32)),
                (FONT, 12).into_font().color(&color),
            )))
            .map_err(err)?;
    }
    Ok(drawn)
}

/// Dark, so the age lines stand apart from the queries' colours.
fn inflight_color(i: usize) -> RGBColor {
    [
        RGBColor(30, 30, 30),
        RGBColor(120, 70, 0),
        RGBColor(0, 80, 120),
    ][i % 3]
}

/// Per app: the age of its oldest request in flight, dashed; thick where
/// every connection of the app was busy (the pool exhausted). During a
/// stall no request completes, so this is the line that rises through it.
fn draw_inflight<DB: DrawingBackend>(
    chart: &mut LatencyChart<'_, DB>,
    fl: &[InflightSeries],
    y0: f64,
) -> anyhow::Result<()> {
    for (i, s) in fl.iter().enumerate() {
        let c = inflight_color(i);
        for run in &s.runs {
            chart
                .draw_series(DashedLineSeries::new(
                    run.iter().map(|p| (p.0, p.1.max(y0))),
                    6,
                    4,
                    c.stroke_width(2),
                ))
                .map_err(err)?;
            for pair in run.windows(2).filter(|p| p[0].2 && p[1].2) {
                chart
                    .draw_series(LineSeries::new(
                        pair.iter().map(|p| (p.0, p.1.max(y0))),
                        c.stroke_width(5),
                    ))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

/// Per query: p99 thick, p50 thin and pale, max as dots, in its colour.
fn draw_queries<DB: DrawingBackend>(
    chart: &mut LatencyChart<'_, DB>,
    qs: &[QuerySeries],
    y0: f64,
) -> anyhow::Result<()> {
    for (i, q) in qs.iter().enumerate() {
        let c = series_color(i);
        for run in &q.runs {
            chart
                .draw_series(LineSeries::new(
                    run.iter().map(|p| (p.0, p.1.max(y0))),
                    c.mix(0.55).stroke_width(1),
                ))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    run.iter().map(|p| (p.0, p.2.max(y0))),
                    c.stroke_width(2),
                ))
                .map_err(err)?;
        }
        chart
            .draw_series(
                q.runs
                    .iter()
                    .flatten()
                    .map(|p| Circle::new((p.0, p.3.max(y0)), 2, c.filled())),
            )
            .map_err(err)?;
    }
    Ok(())
}
