//! The streaming replica's lag over the run, drawn only when a replica was
//! sampled: replay lag in ms on top (pg_stat_replication.replay_lag, 0 once
//! the replica has replayed all the primary wrote), WAL not yet replayed
//! below. Phases and statement spans are shaded; each step's name marks
//! where it started, and its peak lag is dotted.

use plotters::prelude::*;

use super::frame::{
    err, header_labels, layout, over_white, series_color, shade_spans, style_mesh, Area, ChartData,
    STATEMENT_ALPHA, STATEMENT_FILL,
};
use super::legend::{Legend, Mark};

pub const SIZE: (u32, u32) = (1280, 560);

const MIB: f64 = 1024.0 * 1024.0;

/// Did the run sample a replica at all?
pub(super) fn sampled(d: &ChartData<'_>) -> bool {
    d.rec
        .server
        .iter()
        .any(|s| s.replica_lag_ms.is_some() || s.replica_lag_bytes.is_some())
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    let title = format!("Replica lag, {}", d.a.run.scenario);
    let (plot, side) = layout(root, &title)?;
    let h = plot.dim_in_pixel().1;
    let (upper, lower) = plot.split_vertically((h as f64 * 0.6) as u32);
    let ms: Vec<(f64, f64)> = d
        .rec
        .server
        .iter()
        .filter_map(|s| Some((s.t_ms / 1000.0, s.replica_lag_ms?)))
        .collect();
    let bytes: Vec<(f64, f64)> = d
        .rec
        .server
        .iter()
        .filter_map(|s| Some((s.t_ms / 1000.0, s.replica_lag_bytes? as f64 / MIB)))
        .collect();
    let peaks: Vec<(f64, f64)> =
        d.a.steps
            .iter()
            .filter_map(|s| {
                let l = s.replica_lag?;
                Some((l.at_ms / 1000.0, l.peak_ms?))
            })
            .collect();
    panel(&upper, d, &ms, &peaks, "replay lag (ms)", 0, false)?;
    panel(&lower, d, &bytes, &[], "WAL behind (MiB)", 1, true)?;

    let mut legend = Legend::default();
    legend
        .heading("replica")
        .add(Mark::Line(series_color(0), 2), "replay lag (ms)")
        .add(Mark::Line(series_color(1), 2), "WAL not yet replayed (MiB)")
        .add(Mark::Dot(series_color(0)), "a step's peak");
    legend.note("sampled on the primary every 250 ms");
    legend.heading("migration").add(
        Mark::Fill(over_white(STATEMENT_FILL, STATEMENT_ALPHA + 0.2)),
        "statement running",
    );
    legend.draw(&side)
}

/// One series over time, a line through the samples.
fn panel<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    d: &ChartData<'_>,
    points: &[(f64, f64)],
    peaks: &[(f64, f64)],
    y_desc: &str,
    color: usize,
    last: bool,
) -> anyhow::Result<()> {
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max);
    // Room above the highest value for the phase and step names.
    let ytop = (top * 1.35).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .margin_left(16)
        .margin_right(16)
        .margin_top(if last { 6 } else { 16 })
        .margin_bottom(if last { 8 } else { 4 })
        .x_label_area_size(if last { 44 } else { 0 })
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..d.end_s, 0f64..ytop)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh);
    mesh.y_desc(y_desc).y_labels(5);
    if last {
        mesh.x_desc("time since run start (s)");
    } else {
        mesh.disable_x_axis();
    }
    mesh.draw().map_err(err)?;
    shade_spans(&mut chart, d, (0.0, ytop))?;
    if !last {
        let steps: Vec<(String, f64)> =
            d.a.steps
                .iter()
                .map(|s| (s.step.clone(), s.start_ms / 1000.0))
                .collect();
        header_labels(&chart, d, &steps)?;
    }
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            series_color(color).stroke_width(2),
        ))
        .map_err(err)?;
    chart
        .draw_series(
            peaks
                .iter()
                .map(|p| Circle::new(*p, 5, series_color(color).filled())),
        )
        .map_err(err)?;
    Ok(())
}
