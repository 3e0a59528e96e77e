//! Locks as a Gantt chart: one row per relation, the migration's lock holds
//! as bars coloured by mode (the wait to acquire in a lighter shade), and the
//! app's lock waits as thin bars stacked under them, coloured by cause.

use plotters::prelude::*;

use super::{
    err, fmt_seconds, legend_box, mode_color, shade_spans, Area, ChartData, FONT, LOCKS_SIZE,
};
use crate::record::WaitCause;

fn cause_color(c: WaitCause) -> RGBColor {
    match c {
        WaitCause::Migration => RGBColor(214, 39, 40),
        WaitCause::QueuedBehindMigration => RGBColor(148, 103, 189),
        WaitCause::App => RGBColor(127, 127, 127),
    }
}

/// Is there room right of a bar (px from `x0`, `w` wide, before `limit`)
/// that no bar or label of the same row uses?
fn beside_is_free(bars: &[(i64, f64, f64)], row: i64, x0: f64, w: f64, limit: f64) -> bool {
    let x1 = x0 + w;
    x1 < limit && !bars.iter().any(|(r, a, b)| *r == row && *a < x1 && x0 < *b)
}

/// "Share 626 ms" → "626 ms".
fn short(label: &str) -> String {
    label
        .split_once(' ')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default()
}

/// Greedy interval lanes so overlapping waits do not hide each other.
fn lanes(spans: &[(f64, f64)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|a, b| spans[*a].0.total_cmp(&spans[*b].0));
    let mut lane_end: Vec<f64> = Vec::new();
    let mut lane = vec![0; spans.len()];
    for i in order {
        let (s, e) = spans[i];
        match lane_end.iter().position(|le| *le <= s) {
            Some(l) => {
                lane[i] = l;
                lane_end[l] = e;
            }
            None => {
                lane[i] = lane_end.len();
                lane_end.push(e);
            }
        }
    }
    let n = lane_end.len().max(1);
    (lane, n)
}

/// Approximate height of the plotting area (chart minus caption, margins
/// and x labels); used to size the header for phase and step names.
const PLOT_H_EST: f64 = LOCKS_SIZE.1 as f64 - 32.0 - 40.0 - 48.0;
const LINE_PX: f64 = 16.0;

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    // One row per relation (other lock types — transactionid, virtualxid —
    // block nothing the app does by themselves). A relation a step creates
    // is marked "(new)": nobody else can see it before commit.
    let locks: Vec<_> = d
        .rec
        .locks
        .iter()
        .filter(|l| l.locktype == "relation")
        .collect();
    let mut rows: Vec<String> = Vec::new();
    for r in locks
        .iter()
        .map(|l| l.relation.clone())
        .chain(d.rec.waits.iter().map(|w| w.relation.clone()))
    {
        if !rows.contains(&r) {
            rows.push(r);
        }
    }
    let names: Vec<String> = rows
        .iter()
        .map(|r| {
            if crate::analyze::created_by_any_step(d.rec, r) {
                format!("{r} (new)")
            } else {
                r.clone()
            }
        })
        .collect();
    let n = rows.len().max(1);
    // Row i sits at y = n-1-i so the first relation is at the top.
    let y_of = |name: &str| (n - 1 - rows.iter().position(|r| r == name).unwrap_or(0)) as f64;

    let px_per_s = (LOCKS_SIZE.0 as f64 - 180.0) / d.end_s.max(0.001);
    let text_px = |t: &str| t.chars().count() as f64 * 7.0 + 10.0;
    // A label starting at `x` (s) that would run off the right edge is moved
    // left so it ends at the edge.
    let fit = |x: f64, w_px: f64| x.min(d.end_s - w_px / px_per_s).max(0.0);
    // Labels that would overlap go one line further; `row` keeps the
    // header (-1) and each relation row apart.
    let mut taken: Vec<(f64, f64, usize, i64)> = Vec::new();
    let mut level_for = |x: f64, w: f64, row: i64| {
        let (x0, x1) = (x * px_per_s, x * px_per_s + w);
        let lv = (0..)
            .find(|lv| {
                !taken
                    .iter()
                    .any(|(s, e, l, r)| *r == row && l == lv && *s < x1 && x0 < *e)
            })
            .unwrap_or(0);
        taken.push((x0, x1, lv, row));
        lv
    };
    let step_levels: Vec<(String, f64, usize)> =
        d.a.steps
            .iter()
            .map(|st| {
                let text = format!("step {}", st.step);
                let x = fit(st.start_ms / 1000.0, text_px(&text));
                let lv = level_for(x, text_px(&text), -1);
                (text, x, lv)
            })
            .collect();
    let levels = step_levels.iter().map(|s| s.2 + 1).max().unwrap_or(0);
    // Header: the phase line, the step lines, and room for labels above the
    // top row's bars.
    let header_px = LINE_PX * (1 + levels) as f64 + 2.0 * LINE_PX;
    let y0 = -0.55;
    let rows_units = n as f64;
    let total = rows_units / (1.0 - (header_px / PLOT_H_EST).min(0.6));
    let y1 = y0 + total;

    let title = format!(
        "Locks held by the migration and app lock waits, {}",
        d.a.run.scenario
    );
    let names_for_fmt = names.clone();
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22).into_font())
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(170)
        .build_cartesian_2d(0f64..d.end_s, y0..y1)
        .map_err(err)?;
    let per_px = (y1 - y0) / chart.plotting_area().dim_in_pixel().1.max(1) as f64;
    chart
        .configure_mesh()
        .x_desc("time since run start (s)")
        .x_labels(16)
        .y_labels(((y1 - y0) * 2.0) as usize + 2)
        .x_label_formatter(&fmt_seconds)
        .y_label_formatter(&move |v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names_for_fmt.len() {
                names_for_fmt[names_for_fmt.len() - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .disable_y_mesh()
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;

    shade_spans(&mut chart, d, (y0, y1), Some(y1 - 2.0 * per_px))?;
    // Step names over their statement spans, under the phase names.
    for (text, x, lv) in step_levels {
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (x, y1 - per_px * (2.0 + LINE_PX * (1 + lv) as f64)),
                (FONT, 12).into_font().color(&RGBColor(150, 80, 0)),
            )))
            .map_err(err)?;
    }

    // Lock holds: the upper half of each row; bars first, then labels.
    let min_w = d.end_s / 700.0;
    let mut modes: Vec<String> = Vec::new();
    let mut labels: Vec<(String, f64, f64, f64, f64)> = Vec::new();
    // Bars per row in px, so a label beside a bar does not cover another.
    let mut bars: Vec<(i64, f64, f64)> = Vec::new();
    let mut any_fresh = false;
    for l in &locks {
        let y = y_of(&l.relation);
        let c = mode_color(&l.mode);
        let req = l.requested_ms / 1000.0;
        let granted = l.granted_ms.map(|g| g / 1000.0);
        let released = l
            .released_ms
            .or(l.granted_ms.map(|g| g + l.held_ms))
            .map(|r| r / 1000.0)
            .unwrap_or(req + (l.wait_ms + l.held_ms) / 1000.0);
        let wait_end = granted.unwrap_or(released);
        if wait_end > req {
            let rect = [(req, y + 0.10), (wait_end.max(req + min_w), y + 0.32)];
            chart
                .draw_series(std::iter::once(Rectangle::new(rect, c.mix(0.3).filled())))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(rect, c.stroke_width(2))))
                .map_err(err)?;
        }
        if let Some(g) = granted {
            let e = released.max(g + min_w);
            // A lock on a relation the step creates blocks nobody: drawn pale.
            let fresh = crate::analyze::created_by_any_step(d.rec, &l.relation);
            let style = if fresh {
                c.mix(0.35).filled()
            } else {
                c.filled()
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(g, y + 0.02), (e, y + 0.40)],
                    style,
                )))
                .map_err(err)?;
            any_fresh |= fresh;
            bars.push((y as i64, g * px_per_s, e * px_per_s));
            let text = format!("{} {:.0} ms", l.mode.trim_end_matches("Lock"), l.held_ms);
            labels.push((text, req, g, e, y));
        }
        if !modes.contains(&l.mode) {
            modes.push(l.mode.clone());
        }
    }
    for (text, req, g, e, y) in labels {
        if (e - g) * px_per_s > text_px(&text) {
            // Inside the bar, vertically centred.
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (g + 6.0 / px_per_s, y + 0.21 + 7.0 * per_px),
                    (FONT, 12).into_font().color(&WHITE),
                )))
                .map_err(err)?;
        } else if beside_is_free(
            &bars,
            y as i64,
            e * px_per_s + 4.0,
            text_px(&text),
            px_per_s * d.end_s,
        ) {
            // Beside the bar, where nothing else is drawn.
            let x0 = e * px_per_s + 4.0;
            bars.push((y as i64, x0, x0 + text_px(&text)));
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (e + 4.0 / px_per_s, y + 0.21 + 7.0 * per_px),
                    (FONT, 12).into_font().color(&BLACK),
                )))
                .map_err(err)?;
        } else if (e - g) * px_per_s > text_px(&short(&text)) {
            // Inside, the hold only: the colour says the mode.
            chart
                .draw_series(std::iter::once(Text::new(
                    short(&text),
                    (g + 6.0 / px_per_s, y + 0.21 + 7.0 * per_px),
                    (FONT, 12).into_font().color(&WHITE),
                )))
                .map_err(err)?;
        } else {
            // Above the bar (text hangs from its anchor), staggered upwards.
            let x = fit(req, text_px(&text));
            let lv = level_for(x, text_px(&text), y as i64);
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x, y + 0.40 + per_px * (LINE_PX + 1.0 + LINE_PX * lv as f64)),
                    (FONT, 12).into_font().color(&BLACK),
                )))
                .map_err(err)?;
        }
    }

    // App waits: thin bars in the lower half, one lane per overlap.
    let mut causes: Vec<WaitCause> = Vec::new();
    for rel in &rows {
        let ws: Vec<_> = d.rec.waits.iter().filter(|w| &w.relation == rel).collect();
        let spans: Vec<(f64, f64)> = ws
            .iter()
            .map(|w| (w.start_ms, w.end_ms.max(w.start_ms + 1.0)))
            .collect();
        let (lane, nl) = lanes(&spans);
        let h = 0.46 / nl as f64;
        let y = y_of(rel);
        for (w, l) in ws.iter().zip(lane) {
            let top = y - 0.04 - l as f64 * h;
            let bot = top - h * 0.7;
            let (a, b) = (
                w.start_ms / 1000.0,
                (w.end_ms / 1000.0).max(w.start_ms / 1000.0 + min_w),
            );
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, top), (b, bot)],
                    cause_color(w.cause).filled(),
                )))
                .map_err(err)?;
            if !causes.contains(&w.cause) {
                causes.push(w.cause);
            }
        }
    }

    modes.sort_by_key(|m| crate::locks::LockMode::parse(m));
    for m in &modes {
        legend_box(&mut chart, &format!("held: {m}"), mode_color(m).filled())?;
    }
    if any_fresh {
        legend_box(
            &mut chart,
            "held on a relation the step creates (blocks nobody)",
            RGBColor(103, 0, 13).mix(0.35).filled(),
        )?;
    }
    if d.rec.locks.iter().any(|l| l.wait_ms > 0.0) {
        legend_box(
            &mut chart,
            "migration waiting for its lock (outlined)",
            RGBColor(90, 90, 90).stroke_width(2),
        )?;
    }
    for c in causes {
        legend_box(
            &mut chart,
            &format!("app wait: {c}"),
            cause_color(c).filled(),
        )?;
    }
    chart
        .configure_series_labels()
        // Before the migration starts (the left) there is nothing to hide.
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn overlapping_spans_get_separate_lanes() {
        let (lane, n) = super::lanes(&[(0.0, 10.0), (5.0, 15.0), (10.0, 20.0), (16.0, 17.0)]);
        assert_eq!(n, 2);
        assert_ne!(lane[0], lane[1]);
        assert_eq!(lane[2], lane[0]);
    }
}
