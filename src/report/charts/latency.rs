//! Latency per query over time: p50, p99 and max per window on a log scale,
//! with phases and statement spans shaded and blocking lock holds marked.

use plotters::prelude::*;

use super::{
    err, fmt_seconds, legend_box, series_color, shade_spans, Area, ChartData, FONT, LATENCY_SIZE,
    STATEMENT_ALPHA, STATEMENT_FILL,
};
use crate::analyze::latency::merged_quantile;
use crate::record::{Blocks, LatencyRow};

/// One query's points: (window middle s, p50 ms, p99 ms, max ms); runs of
/// consecutive windows with completions, split where a window had none.
struct QuerySeries {
    name: String,
    runs: Vec<Vec<(f64, f64, f64, f64)>>,
}

fn series(d: &ChartData<'_>) -> Vec<QuerySeries> {
    let mut names: Vec<String> = Vec::new();
    for r in &d.rec.latency {
        if !names.contains(&r.query) {
            names.push(r.query.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            // Windows of this query, apps merged.
            let mut windows: Vec<(f64, f64, Vec<&LatencyRow>)> = Vec::new();
            for r in d.rec.latency.iter().filter(|r| r.query == name) {
                match windows.iter_mut().find(|w| w.0 == r.window_start_ms) {
                    Some(w) => w.2.push(r),
                    None => windows.push((r.window_start_ms, r.window_ms, vec![r])),
                }
            }
            windows.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut runs: Vec<Vec<(f64, f64, f64, f64)>> = Vec::new();
            let mut last_end: Option<f64> = None;
            for (ws, wms, rows) in windows {
                let rows: Vec<&LatencyRow> = rows.into_iter().filter(|r| r.count > 0).collect();
                if rows.is_empty() {
                    last_end = None;
                    continue;
                }
                let p50 = merged_quantile(&rows, 0.5).unwrap_or(0.0) / 1000.0;
                let p99 = merged_quantile(&rows, 0.99).unwrap_or(0.0) / 1000.0;
                let max = rows.iter().map(|r| r.max_us).max().unwrap_or(0) as f64 / 1000.0;
                let contiguous = last_end.is_some_and(|e| ws - e < wms * 0.5);
                if !contiguous {
                    runs.push(Vec::new());
                }
                runs.last_mut()
                    .expect("pushed")
                    .push(((ws + wms / 2.0) / 1000.0, p50, p99, max));
                last_end = Some(ws + wms);
            }
            QuerySeries { name, runs }
        })
        .collect()
}

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let qs = series(d);
    let pts = || qs.iter().flat_map(|q| q.runs.iter().flatten());
    let lo = pts()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = pts().map(|p| p.3).fold(0.0, f64::max);
    let (y0, y1) = if lo.is_finite() && hi > 0.0 {
        (
            10f64.powf((lo * 0.8).log10().floor()).max(0.001),
            10f64.powf((hi * 1.5).log10().ceil()),
        )
    } else {
        (0.1, 1000.0)
    };
    let window = d.rec.info.as_ref().map(|i| i.window_ms).unwrap_or(100.0);
    let title = format!(
        "App latency per query, {} — p50 / p99 / max per {window:.0} ms window",
        d.a.run.scenario
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22).into_font())
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..d.end_s, (y0..y1).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since run start (s)")
        .y_desc("latency (ms, log scale)")
        .x_labels(16)
        .y_labels(12)
        .x_label_formatter(&fmt_seconds)
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(err)?;

    shade_spans(&mut chart, d, (y0, y1), Some(y1 / 1.6))?;

    // Blocking lock holds: a red strip along the bottom, labelled; labels
    // that would overlap go one level up.
    let strip_top = y0 * 1.5;
    let px_per_s = (LATENCY_SIZE.0 as f64 - 110.0) / d.end_s.max(0.001);
    let mut taken: Vec<(f64, f64, usize)> = Vec::new();
    let mut any_hold = false;
    for l in d.rec.locks.iter().filter(|l| l.blocks != Blocks::None) {
        let (Some(g), rel) = (l.granted_ms, &l.relation) else {
            continue;
        };
        let r = l.released_ms.unwrap_or(g + l.held_ms);
        let color = if l.blocks == Blocks::ReadsWrites {
            RGBColor(150, 0, 20)
        } else {
            RGBColor(220, 60, 30)
        };
        let (a, b) = (g / 1000.0, (r / 1000.0).max(g / 1000.0 + d.end_s / 600.0));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y0), (b, strip_top)],
                color.filled(),
            )))
            .map_err(err)?;
        let text = format!(
            "{} on {rel}: {:.0} ms, blocks {}",
            l.mode, l.held_ms, l.blocks
        );
        let (x0, x1) = (
            a * px_per_s,
            a * px_per_s + text.chars().count() as f64 * 7.0 + 8.0,
        );
        let level = (0..)
            .find(|lv| !taken.iter().any(|(s, e, l)| l == lv && *s < x1 && x0 < *e))
            .unwrap_or(0);
        taken.push((x0, x1, level));
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (a, strip_top * 1.35 * 1.7f64.powi(level as i32)),
                (FONT, 12).into_font().color(&color),
            )))
            .map_err(err)?;
        any_hold = true;
    }

    for (i, q) in qs.iter().enumerate() {
        let c = series_color(i);
        for (k, run) in q.runs.iter().enumerate() {
            let p99 = chart
                .draw_series(LineSeries::new(
                    run.iter().map(|p| (p.0, p.2.max(y0))),
                    c.stroke_width(2),
                ))
                .map_err(err)?;
            if k == 0 {
                p99.label(format!("{} p99", q.name)).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            }
        }
        for (k, run) in q.runs.iter().enumerate() {
            let p50 = chart
                .draw_series(LineSeries::new(
                    run.iter().map(|p| (p.0, p.1.max(y0))),
                    c.mix(0.55).stroke_width(1),
                ))
                .map_err(err)?;
            if k == 0 {
                p50.label(format!("{} p50", q.name)).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.mix(0.55).stroke_width(1))
                });
            }
        }
        let all: Vec<(f64, f64)> = q
            .runs
            .iter()
            .flatten()
            .map(|p| (p.0, p.3.max(y0)))
            .collect();
        chart
            .draw_series(all.iter().map(|p| Circle::new(*p, 2, c.filled())))
            .map_err(err)?
            .label(format!("{} max", q.name))
            .legend(move |(x, y)| Circle::new((x + 9, y), 3, c.filled()));
    }

    legend_box(
        &mut chart,
        "statement running",
        STATEMENT_FILL.mix(STATEMENT_ALPHA).filled(),
    )?;
    if any_hold {
        legend_box(
            &mut chart,
            "blocking lock held",
            RGBColor(220, 60, 30).filled(),
        )?;
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
