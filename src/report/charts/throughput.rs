//! Throughput and errors per window, by app version: requests/s on top,
//! errors per window below, phases and statement spans shaded in both.

use plotters::prelude::*;

use super::{
    err, fmt_seconds, legend_box, series_color, shade_spans, Area, ChartData, FONT,
    STATEMENT_ALPHA, STATEMENT_FILL,
};

/// One window of one app: (start s, width s, requests/s, errors).
type Window = (f64, f64, f64, u64);

/// Per app, its windows sorted by time.
fn per_app(d: &ChartData<'_>) -> Vec<(String, Vec<Window>)> {
    let mut apps: Vec<(String, Vec<Window>)> = Vec::new();
    for r in &d.rec.latency {
        let i = match apps.iter().position(|(a, _)| *a == r.app) {
            Some(i) => i,
            None => {
                apps.push((r.app.clone(), Vec::new()));
                apps.len() - 1
            }
        };
        let ws = r.window_start_ms / 1000.0;
        let w = r.window_ms / 1000.0;
        let v = &mut apps[i].1;
        match v.iter_mut().find(|p| p.0 == ws) {
            Some(p) => {
                p.2 += r.count as f64 / w;
                p.3 += r.errors;
            }
            None => v.push((ws, w, r.count as f64 / w, r.errors)),
        }
    }
    for (_, v) in &mut apps {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    apps
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let apps = per_app(d);
    let window_ms = d.rec.info.as_ref().map(|i| i.window_ms).unwrap_or(100.0);
    let title = format!("Throughput and errors by app version, {}", d.a.run.scenario);
    let root = root.titled(&title, (FONT, 22).into_font()).map_err(err)?;
    let (h, _) = (root.dim_in_pixel().1, ());
    let (upper, lower) = root.split_vertically((h as f64 * 0.62) as u32);

    // Requests per second.
    let qmax = apps
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.2))
        .fold(0.0, f64::max);
    let ytop = (qmax * 1.25).max(1.0);
    let mut chart = ChartBuilder::on(&upper)
        .margin(16)
        .margin_bottom(4)
        .x_label_area_size(28)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..d.end_s, 0f64..ytop)
        .map_err(err)?;
    chart
        .configure_mesh()
        .y_desc("completed requests/s")
        .x_labels(16)
        .y_labels(8)
        .x_label_formatter(&fmt_seconds)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(err)?;
    shade_spans(&mut chart, d, (0.0, ytop), Some(ytop * 0.97))?;
    for (i, (app, v)) in apps.iter().enumerate() {
        let c = series_color(i);
        // Steps: the rate is constant over a window. A window missing from
        // latency.csv had no completions: the line drops to zero there.
        let mut pts: Vec<(f64, f64)> = Vec::new();
        let mut prev_end: Option<f64> = None;
        for p in v {
            if let Some(e) = prev_end {
                if p.0 > e + p.1 * 0.5 {
                    pts.push((e, 0.0));
                    pts.push((p.0, 0.0));
                }
            }
            pts.push((p.0, p.2));
            pts.push((p.0 + p.1, p.2));
            prev_end = Some(p.0 + p.1);
        }
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(format!("app {app}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    legend_box(
        &mut chart,
        "statement running",
        STATEMENT_FILL.mix(STATEMENT_ALPHA).filled(),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.88))
        .border_style(RGBColor(160, 160, 160))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;

    // Errors per window, one bar per app side by side.
    let emax = apps
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.3))
        .max()
        .unwrap_or(0);
    let etop = (emax as f64 * 1.3).max(2.0).ceil();
    let mut chart = ChartBuilder::on(&lower)
        .margin(16)
        .margin_top(4)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..d.end_s, 0f64..etop)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since run start (s)")
        .y_desc(format!("errors / {window_ms:.0} ms"))
        .x_labels(16)
        .y_labels((etop as usize + 1).min(6))
        .x_label_formatter(&fmt_seconds)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(err)?;
    shade_spans(&mut chart, d, (0.0, etop), None)?;
    let napps = apps.len().max(1) as f64;
    for (i, (app, v)) in apps.iter().enumerate() {
        let c = series_color(i);
        // A bar at least a few pixels wide so a single error is visible.
        let min_w = d.end_s / 250.0;
        if v.iter().all(|p| p.3 == 0) {
            continue;
        }
        chart
            .draw_series(v.iter().filter(|p| p.3 > 0).map(|p| {
                let w = (p.1 / napps).max(min_w);
                let x = p.0 + i as f64 * w;
                Rectangle::new([(x, 0.0), (x + w, p.3 as f64)], c.filled())
            }))
            .map_err(err)?
            .label(format!("app {app} errors"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()));
    }
    if emax == 0 {
        chart
            .draw_series(std::iter::once(Text::new(
                "no app errors",
                (d.end_s * 0.45, etop * 0.5),
                (FONT, 16).into_font().color(&RGBColor(90, 90, 90)),
            )))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.88))
        .border_style(RGBColor(160, 160, 160))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    Ok(())
}
