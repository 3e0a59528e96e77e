//! The two charts of a compare directory, drawn like a run's charts (the
//! same plotters setup, bundled fonts, layout, colours and legend panel):
//!
//! - `latency`: the app's p99 per window (scripts left out) of A and B
//!   overlaid, on a time axis whose zero is each side's first statement,
//!   so the migrations line up;
//! - `locks`: every hold of a lock that blocks app reads or writes, of A
//!   and B, as bars, longest first.
//!
//! Each is written as SVG and PNG. Only the run directories are read.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::table::{fmt_ms, Comparison, SideRun};
use crate::analyze::normalize;
use crate::record::{Blocks, RunRecord};
use crate::report::charts::frame::{err, layout, series_color, style_mesh, FONT};
use crate::report::charts::legend::{Legend, Mark};
use crate::report::charts::register_fonts;

pub const LATENCY_SIZE: (u32, u32) = (1280, 560);
/// Bars at most: the longest holds; the rest are in the run directories.
const MAX_BARS: usize = 24;

type Area<'a, DB> = DrawingArea<DB, Shift>;

/// What both charts draw from: each side's name and run record.
struct Sides {
    names: [String; 2],
    recs: [Option<RunRecord>; 2],
}

/// One blocking-lock hold: side (0 = A), label, ms.
type Hold = (usize, String, f64);

/// Write both charts into `dir`; returns the file names written. A side
/// without a run directory is left out of the charts, not an error.
pub fn write_all(dir: &Path, runs: [&SideRun; 2], c: &Comparison) -> anyhow::Result<Vec<String>> {
    register_fonts();
    let read = |r: &SideRun| {
        r.run_dir
            .as_ref()
            .and_then(|d| RunRecord::read(d).ok())
            .map(|r| normalize(&r))
    };
    let d = Sides {
        names: [c.sides[0].scenario.clone(), c.sides[1].scenario.clone()],
        recs: [read(runs[0]), read(runs[1])],
    };
    let bars = holds(&d);
    let locks_size = (1280, 150 + 30 * bars.len().max(2) as u32);
    macro_rules! both {
        ($name:literal, $size:expr, $draw:expr) => {{
            let svg = dir.join(concat!($name, ".svg"));
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw(&root)?;
            root.present().map_err(err)?;
            drop(root);
            let png = dir.join(concat!($name, ".png"));
            let root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw(&root)?;
            root.present().map_err(err)?;
        }};
    }
    both!("latency", LATENCY_SIZE, |root| latency(root, &d));
    both!("locks", locks_size, |root| locks(root, &d, &bars));
    Ok(["latency.svg", "latency.png", "locks.svg", "locks.png"]
        .map(String::from)
        .to_vec())
}

/// One side's p99 per window (all queries and app versions merged), at the
/// window's middle, in seconds since its first statement.
fn p99_series(rec: &RunRecord) -> Vec<(f64, f64)> {
    let zero = rec
        .statements
        .iter()
        .map(|s| s.start_ms)
        .reduce(f64::min)
        .unwrap_or(0.0);
    // Exact per window: latency.hdr's figures of the app's queries together.
    let mut windows: Vec<(f64, f64, f64)> = rec
        .histograms
        .windows
        .iter()
        .filter(|w| w.query.is_none() && w.count > 0)
        .map(|w| (w.from_ms, w.to_ms, w.p99_us as f64 / 1000.0))
        .collect();
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    windows
        .into_iter()
        .map(|(from, to, p99_ms)| {
            let mid = (from + to) / 2.0;
            ((mid - zero) / 1000.0, p99_ms.max(0.001))
        })
        .collect()
}

fn latency<DB: DrawingBackend>(root: &Area<'_, DB>, d: &Sides) -> anyhow::Result<()> {
    let (plot, side) = layout(
        root,
        "App p99 latency per window — A and B overlaid, t = 0 at the first statement",
    )?;
    let series: Vec<(usize, Vec<(f64, f64)>)> = d
        .recs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, p99_series(r.as_ref()?))))
        .collect();
    let pts = || series.iter().flat_map(|(_, s)| s.iter());
    let x0 = pts().map(|p| p.0).fold(0.0, f64::min);
    let x1 = pts().map(|p| p.0).fold(1.0, f64::max);
    let lo = pts().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pts().map(|p| p.1).fold(0.0, f64::max);
    let (y0, y1) = if lo.is_finite() && hi > 0.0 {
        (
            10f64.powf((lo * 0.8).log10().floor()).max(0.001),
            10f64.powf((hi * 1.5).log10().ceil()),
        )
    } else {
        (0.1, 1000.0)
    };
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh);
    mesh.x_desc("time since the first statement (s)")
        .y_desc("p99 latency (ms, log scale)")
        .y_labels(12)
        .draw()
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, y0), (0.0, y1)],
            RGBColor(150, 80, 0).stroke_width(1),
        )))
        .map_err(err)?;
    for (i, s) in &series {
        chart
            .draw_series(LineSeries::new(
                s.iter().copied(),
                series_color(*i).stroke_width(2),
            ))
            .map_err(err)?;
    }
    let mut legend = Legend::default();
    legend.heading("app p99 per window");
    for (i, label) in ["A", "B"].iter().enumerate() {
        let drawn = series.iter().any(|(s, _)| *s == i);
        let text = format!("{label}: {}", d.names[i]);
        match drawn {
            true => legend.add(Mark::Line(series_color(i), 3), text),
            false => legend.note(format!("{text} (no run directory)")),
        };
    }
    legend.note("the vertical line is the first statement of each side");
    legend.draw(&side)
}

/// Every blocking-lock hold of both sides, longest first, at most
/// [`MAX_BARS`]. Locks on a relation the migration creates (the new index
/// of CREATE INDEX) block no app query: left out, as the analysis does.
fn holds(d: &Sides) -> Vec<Hold> {
    let mut out: Vec<Hold> = Vec::new();
    for (i, rec) in d.recs.iter().enumerate() {
        let Some(rec) = rec else { continue };
        for l in &rec.locks {
            if l.blocks == Blocks::None || l.granted_ms.is_none() {
                continue;
            }
            let side = ["A", "B"][i];
            let mode = l.mode.trim_end_matches("Lock");
            out.push((
                i,
                format!("{side} · {}: {mode} on {}", l.step, l.relation),
                l.held_ms.unwrap_or(0.0),
            ));
        }
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out.truncate(MAX_BARS);
    out
}

fn locks<DB: DrawingBackend>(root: &Area<'_, DB>, d: &Sides, bars: &[Hold]) -> anyhow::Result<()> {
    let (plot, side) = layout(
        root,
        "Blocking-lock holds of A and B (locks that block app reads or writes)",
    )?;
    let max = bars.iter().map(|b| b.2).fold(1.0, f64::max);
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(12)
        // Room right of the longest bar for its figure.
        .build_cartesian_2d(0f64..max * 1.7, 0f64..n as f64)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh);
    mesh.x_desc("held (ms)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .disable_y_mesh()
        .y_labels(0)
        .draw()
        .map_err(err)?;
    for (k, (i, label, held)) in bars.iter().enumerate() {
        let y = (n - k) as f64;
        let color = series_color(*i);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.8), (held.max(max * 0.002), y - 0.2)],
                color.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{label} — {}", fmt_ms(*held)),
                (held + max * 0.01, y - 0.35),
                (FONT, 13).into_font(),
            )))
            .map_err(err)?;
    }
    let mut legend = Legend::default();
    legend.heading("side");
    for (i, label) in ["A", "B"].iter().enumerate() {
        let count = bars.iter().filter(|b| b.0 == i).count();
        legend.add(
            Mark::Fill(series_color(i)),
            format!(
                "{label}: {} ({})",
                d.names[i],
                crate::report::plural(count, "blocking hold", "blocking holds")
            ),
        );
    }
    if bars.is_empty() {
        legend.note("neither side held a lock that blocks the app");
    }
    legend.draw(&side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency_hdr::WindowFigures;

    /// The latency chart's axis is in ms: a 131 ms p99 is drawn at 131.
    #[test]
    fn p99_points_are_in_milliseconds() {
        let mut rec = RunRecord::default();
        rec.histograms.windows.push(WindowFigures {
            from_ms: 0.0,
            to_ms: 100.0,
            query: None,
            count: 10,
            p50_us: 1_000,
            p99_us: 131_000,
            max_us: 131_000,
        });
        assert_eq!(p99_series(&rec), vec![(0.05, 131.0)]);
    }
}
