//! Throughput and errors per window, by app version: successful requests
//! per second on top (a failed request is not throughput), and below, one
//! lane per app version that had errors, its failed requests per second in
//! red. Phases and statement spans are shaded in both.

use plotters::prelude::*;

use super::frame::{
    err, header_labels, layout, over_white, series_color, shade_spans, style_mesh, Area, ChartData,
    FONT, STATEMENT_ALPHA, STATEMENT_FILL,
};
use super::legend::{Legend, Mark};

pub const SIZE: (u32, u32) = (1280, 640);

const ERROR_RED: RGBColor = RGBColor(214, 39, 40);

/// One window of one app: start s, width s, successful/s, failed/s.
#[derive(Clone, Copy)]
struct Window {
    start: f64,
    width: f64,
    ok: f64,
    errors: f64,
}

/// Per app, its windows sorted by time.
fn per_app(d: &ChartData<'_>) -> Vec<(String, Vec<Window>)> {
    let mut apps: Vec<(String, Vec<Window>)> = Vec::new();
    // Traffic began and ended inside a window: a rate is over the part of
    // the window that had traffic, or the first and last windows drop.
    let info = d.rec.info.as_ref();
    let from = info.and_then(|i| i.traffic_started_ms).unwrap_or(0.0);
    let to = info.map_or(f64::INFINITY, |i| i.end_ms).max(from);
    for r in &d.rec.latency {
        let i = match apps.iter().position(|(a, _)| *a == r.app) {
            Some(i) => i,
            None => {
                apps.push((r.app.clone(), Vec::new()));
                apps.len() - 1
            }
        };
        let (start, width) = (r.window_start_ms / 1000.0, r.window_ms / 1000.0);
        let lived = (r.window_start_ms + r.window_ms).min(to) - r.window_start_ms.max(from);
        // At least a tenth of the window: a sliver would make a spike.
        let per = (lived / 1000.0).clamp(width / 10.0, width);
        let (ok, errors) = (
            r.count.saturating_sub(r.errors) as f64 / per,
            r.errors as f64 / per,
        );
        let v = &mut apps[i].1;
        match v.iter_mut().find(|p| p.start == start) {
            Some(p) => {
                p.ok += ok;
                p.errors += errors;
            }
            None => v.push(Window {
                start,
                width,
                ok,
                errors,
            }),
        }
    }
    for (_, v) in &mut apps {
        v.sort_by(|a, b| a.start.total_cmp(&b.start));
    }
    apps
}

/// How an app version is named in the chart: latency.csv calls the one app
/// of a scenario without versions "app", and one-off sessions "script".
fn app_label(app: &str) -> String {
    match app {
        "app" => "app".into(),
        "script" => "scripts (one-off sessions)".into(),
        v => format!("app {v}"),
    }
}

/// A step line through the windows' rates; a window missing from
/// latency.csv had no completions, so the line drops to zero there.
fn steps(v: &[Window], rate: impl Fn(&Window) -> f64) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = Vec::new();
    let mut prev_end: Option<f64> = None;
    for p in v {
        if let Some(e) = prev_end {
            if p.start > e + p.width * 0.5 {
                pts.push((e, 0.0));
                pts.push((p.start, 0.0));
            }
        }
        pts.push((p.start, rate(p)));
        pts.push((p.start + p.width, rate(p)));
        prev_end = Some(p.start + p.width);
    }
    pts
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    let title = format!(
        "Throughput (successful requests) and errors by app version, {}",
        d.a.run.scenario
    );
    let (plot, side) = layout(root, &title)?;
    let apps = per_app(d);
    let failing: Vec<(usize, &(String, Vec<Window>))> = apps
        .iter()
        .enumerate()
        .filter(|(_, (_, v))| v.iter().any(|p| p.errors > 0.0))
        .collect();
    // Without errors the lower panel only has to say so.
    let share = if failing.is_empty() { 0.8 } else { 0.58 };
    let h = plot.dim_in_pixel().1;
    let (upper, lower) = plot.split_vertically((h as f64 * share) as u32);
    draw_ok(&upper, d, &apps)?;
    draw_errors(&lower, d, &failing)?;

    let mut legend = Legend::default();
    legend.heading("successful requests/s (ok/s)");
    for (i, (app, _)) in apps.iter().enumerate() {
        legend.add(Mark::Line(series_color(i), 2), app_label(app));
    }
    legend.heading("failed requests/s (errors/s)");
    if failing.is_empty() {
        legend.note("no app errors");
    } else {
        legend.add(
            Mark::Fill(ERROR_RED),
            "one lane per app version with errors",
        );
    }
    legend.heading("migration").add(
        Mark::Fill(over_white(STATEMENT_FILL, STATEMENT_ALPHA + 0.2)),
        "statement running",
    );
    legend.draw(&side)
}

/// Successful requests per second, a line per app version.
fn draw_ok<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    d: &ChartData<'_>,
    apps: &[(String, Vec<Window>)],
) -> anyhow::Result<()> {
    let top = apps
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.ok))
        .fold(0.0, f64::max);
    // Room above the highest rate for the phase names.
    let ytop = (top * 1.3).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .margin(16)
        .margin_bottom(4)
        .x_label_area_size(28)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..d.end_s, 0f64..ytop)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh);
    mesh.y_desc("ok/s")
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    shade_spans(&mut chart, d, (0.0, ytop))?;
    header_labels(&chart, d, &[])?;
    for (i, (_, v)) in apps.iter().enumerate() {
        chart
            .draw_series(LineSeries::new(
                steps(v, |p| p.ok),
                series_color(i).stroke_width(2),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// Failed requests per second, one lane per failing app version (named in
/// its colour), on one scale; "no app errors" when there were none.
fn draw_errors<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    d: &ChartData<'_>,
    failing: &[(usize, &(String, Vec<Window>))],
) -> anyhow::Result<()> {
    let top = failing
        .iter()
        .flat_map(|(_, (_, v))| v.iter().map(|p| p.errors))
        .fold(0.0, f64::max);
    // Room above the highest bar for the lane's name.
    let etop = (top * 1.3).max(1.0).ceil();
    let n = failing.len().max(1);
    let lanes = area.split_evenly((n, 1));
    for (k, lane) in lanes.iter().enumerate() {
        let last = k + 1 == n;
        let mut chart = ChartBuilder::on(lane)
            .margin_left(16)
            .margin_right(16)
            .margin_top(if k == 0 { 4 } else { 10 })
            .margin_bottom(if last { 8 } else { 0 })
            .x_label_area_size(if last { 44 } else { 0 })
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..d.end_s, 0f64..etop)
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        style_mesh(&mut mesh);
        mesh.y_desc("errors/s")
            .y_labels(if failing.is_empty() { 0 } else { 3 })
            .y_label_formatter(&|v| format!("{v:.0}"));
        if last {
            mesh.x_desc("time since run start (s)");
        } else {
            mesh.disable_x_axis();
        }
        mesh.draw().map_err(err)?;
        shade_spans(&mut chart, d, (0.0, etop))?;
        match failing.get(k) {
            Some((i, (app, v))) => {
                // The lane's app version, in its colour, top left.
                chart
                    .plotting_area()
                    .strip_coord_spec()
                    .draw(&Text::new(
                        app_label(app),
                        (6, 4),
                        (FONT, 13, FontStyle::Bold)
                            .into_font()
                            .color(&series_color(*i)),
                    ))
                    .map_err(err)?;
                chart
                    .draw_series(v.iter().filter(|p| p.errors > 0.0).map(|p| {
                        Rectangle::new(
                            [(p.start, 0.0), (p.start + p.width * 0.85, p.errors)],
                            ERROR_RED.filled(),
                        )
                    }))
                    .map_err(err)?;
            }
            None => {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "no app errors",
                        (d.end_s * 0.45, etop * 0.6),
                        (FONT, 16).into_font().color(&RGBColor(90, 90, 90)),
                    )))
                    .map_err(err)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Traffic from 1250 ms to 1840 ms at 400/s: the first and last windows
    /// rate over the part of them that had traffic, not their whole 100 ms.
    #[test]
    fn partial_windows_at_the_ends_are_no_drops() {
        let mut rec = crate::analyze::testkit::record();
        rec.latency.clear();
        for (start, count) in [(1200.0, 20), (1300.0, 40), (1800.0, 16)] {
            let mut row = crate::analyze::testkit::latency_row("q", "v1", start, 1000);
            row.count = count;
            rec.latency.push(row);
        }
        let info = rec.info.as_mut().unwrap();
        info.traffic_started_ms = Some(1250.0);
        info.end_ms = 1840.0;
        let a = crate::analyze::analyze(&rec);
        let d = ChartData {
            rec: &rec,
            a: &a,
            end_s: 1.84,
        };
        let apps = per_app(&d);
        let rates: Vec<f64> = apps[0].1.iter().map(|w| w.ok.round()).collect();
        assert_eq!(rates, [400.0, 400.0, 400.0]);
    }
}
