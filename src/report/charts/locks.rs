//! Locks as a Gantt chart, zoomed to the migration: one row per relation,
//! what the migration held as bars coloured by the strongest mode (see
//! `lock_bars`), its waits to be granted as outlined bars, and the app's
//! lock waits as thin bars under them, coloured by cause.

use plotters::prelude::*;

use super::frame::{
    err, header_labels, ink_on, layout, mode_color, over_white, shade_spans, style_mesh, text_px,
    Area, ChartData, Lines, TimeChart, FONT, LEGEND_W,
};
use super::legend::{Legend, Mark};
use super::lock_bars::{bars, short_mode, Bar};
use crate::record::{LockRow, WaitCause};
use plotters::coord::types::RangedCoordf64;

pub const SIZE: (u32, u32) = (1280, 560);

// A row is one unit high, split into bands around its tick y: the app's
// waits under it, the migration's bar on it, labels above the bar.
const WAITS: (f64, f64) = (-0.36, -0.04);
const BAR: (f64, f64) = (0.0, 0.28);
/// Up to the next row's waits.
const LABELS_TOP: f64 = 1.0 + WAITS.0;
/// Pixels per header or label line.
const LINE_PX: f64 = 15.0;
/// A busy row (a backfill's batches) labels only bars its labels fit in
/// or beside, and above the row only holds that block the app; stacking
/// every label above is for rows with few bars.
const STACK_LIMIT: usize = 6;

/// Room for relation names left of the plot: as wide as the longest
/// name needs, within bounds.
fn label_area(names: &[String]) -> u32 {
    let longest = names.iter().map(|n| text_px(n) + 6.0).fold(0.0, f64::max);
    (longest.clamp(90.0, 300.0)) as u32
}

fn cause_color(c: WaitCause) -> RGBColor {
    match c {
        WaitCause::Migration => RGBColor(214, 39, 40),
        WaitCause::QueuedBehindMigration => RGBColor(148, 103, 189),
        WaitCause::App => RGBColor(127, 127, 127),
    }
}

fn cause_words(c: WaitCause) -> &'static str {
    match c {
        WaitCause::Migration => "blocked by the migration's lock",
        WaitCause::QueuedBehindMigration => "queued behind the migration's pending request",
        WaitCause::App => "blocked by another app session",
    }
}

/// The relations drawn, top to bottom; a relation a step creates is marked
/// "(new)": nobody else can see it before commit.
struct Rows {
    names: Vec<String>,
    fresh: Vec<bool>,
}

impl Rows {
    fn of(d: &ChartData<'_>, locks: &[&LockRow]) -> Rows {
        let mut names: Vec<String> = Vec::new();
        for r in locks
            .iter()
            .map(|l| &l.relation)
            .chain(d.rec.waits.iter().map(|w| &w.relation))
        {
            if !names.contains(r) {
                names.push(r.clone());
            }
        }
        let fresh = names
            .iter()
            .map(|r| crate::analyze::created_by_any_step(d.rec, r))
            .collect();
        Rows { names, fresh }
    }

    fn len(&self) -> usize {
        self.names.len().max(1)
    }

    /// Row i sits at y = n-1-i so the first relation is at the top.
    fn y(&self, relation: &str) -> f64 {
        let i = self.names.iter().position(|r| r == relation).unwrap_or(0);
        (self.len() - 1 - i) as f64
    }

    fn is_fresh(&self, relation: &str) -> bool {
        self.names
            .iter()
            .position(|r| r == relation)
            .is_some_and(|i| self.fresh[i])
    }

    fn label(&self, i: usize) -> String {
        // locks.csv marks most new relations itself.
        if self.fresh[i] && !crate::locks::marked_new(&self.names[i]) {
            format!("{} (new)", self.names[i])
        } else {
            self.names[i].clone()
        }
    }
}

/// The time range drawn: from the first lock, wait or statement to the
/// last, with a margin; the latency chart shows the whole run.
fn x_range(d: &ChartData<'_>) -> (f64, f64) {
    let times = d
        .rec
        .locks
        .iter()
        .flat_map(|l| [Some(l.requested_ms), l.granted_ms, l.released_ms])
        .flatten()
        .chain(d.rec.waits.iter().flat_map(|w| [w.start_ms, w.end_ms]))
        .chain(d.rec.statements.iter().flat_map(|s| [s.start_ms, s.end_ms]));
    let (lo, hi) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    if !lo.is_finite() {
        return (0.0, d.end_s);
    }
    let (lo, hi) = (lo / 1000.0, hi / 1000.0);
    // At least 5 ms wide, so a 1 ms migration is not a full-width smear.
    let pad = ((hi - lo) * 0.06)
        .max((0.005 - (hi - lo)) / 2.0)
        .max(0.0005);
    ((lo - pad).max(0.0), (hi + pad * 1.5).min(d.end_s.max(hi)))
}

type LocksChart<'a, DB> = TimeChart<'a, DB, RangedCoordf64>;

pub(super) fn draw<DB: DrawingBackend>(
    root: &Area<'_, DB>,
    d: &ChartData<'_>,
) -> anyhow::Result<()> {
    let title = format!(
        "Locks held by the migration and app lock waits, {}",
        d.a.run.scenario
    );
    let (plot, side) = layout(root, &title)?;
    // Other lock types (transactionid, virtualxid) block nothing the app
    // does by themselves.
    let locks: Vec<&LockRow> = d
        .rec
        .locks
        .iter()
        .filter(|l| l.locktype == "relation")
        .collect();
    let rows = Rows::of(d, &locks);
    let (x0, x1) = x_range(d);
    let steps: Vec<(String, f64)> =
        d.a.steps
            .iter()
            .map(|st| (format!("step {}", st.step), st.start_ms / 1000.0))
            .collect();
    let labels: Vec<String> = (0..rows.names.len()).map(|i| rows.label(i)).collect();
    let label_w = label_area(&labels);
    let header = header_lines(d, &steps, (x0, x1), label_w);
    // Rows from the lowest waits to the top row's labels, then the header
    // lines (phase and step names) above them.
    let plot_h = (SIZE.1 - 40 - 32 - 48) as f64;
    let rows_top = rows.len() as f64 - 1.0 + LABELS_TOP;
    let header_px = LINE_PX * header as f64 + 10.0;
    let y0 = WAITS.0 - 0.1;
    let y1 = y0 + (rows_top - y0) / (1.0 - (header_px / plot_h).min(0.6));

    let mut chart = ChartBuilder::on(&plot)
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(label_w)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    style_mesh(&mut mesh);
    mesh.x_desc("time since run start (s), zoomed to the migration")
        .y_labels((y1 - y0).ceil() as usize + 1)
        .y_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[labels.len() - 1 - i as usize].clone()
            } else {
                String::new()
            }
        })
        .label_style((FONT, 14))
        .disable_y_mesh()
        .draw()
        .map_err(err)?;
    shade_spans(&mut chart, d, (y0, y1))?;
    header_labels(&chart, d, &steps)?;

    let bars = bars(&locks);
    let waited = draw_lock_waits(&mut chart, &locks, &rows)?;
    draw_bars(&mut chart, &bars, &rows)?;
    let causes = draw_app_waits(&mut chart, d, &rows)?;
    legend(&bars, &rows, waited, &causes).draw(&side)
}

/// How many header lines the phase and step names need at this zoom.
fn header_lines(
    d: &ChartData<'_>,
    steps: &[(String, f64)],
    (x0, x1): (f64, f64),
    label_w: u32,
) -> usize {
    let w = (SIZE.0 - LEGEND_W - label_w - 32) as f64;
    let px = w / (x1 - x0).max(1e-9);
    let mut phases = Lines::default();
    for (name, a, _) in d.phases() {
        let x = (a.max(x0) - x0) * px;
        phases.place(x, x + text_px(&format!("phase {name}")));
    }
    let mut st = Lines::default();
    for (t, a) in steps {
        let x = ((a.max(x0) - x0) * px).min(w - text_px(t)).max(0.0);
        st.place(x, x + text_px(t));
    }
    phases.count().max(1) + st.count()
}

/// The migration's waits to be granted: outlined, lightly filled, in the
/// upper half of the row. Returns whether there were any.
fn draw_lock_waits<DB: DrawingBackend>(
    chart: &mut LocksChart<'_, DB>,
    locks: &[&LockRow],
    rows: &Rows,
) -> anyhow::Result<bool> {
    let min_w = min_width(chart);
    let mut any = false;
    for l in locks.iter().filter(|l| l.wait_ms > 0.0) {
        let y = rows.y(&l.relation);
        let req = l.requested_ms / 1000.0;
        let end = l
            .granted_ms
            .or(l.released_ms)
            .unwrap_or(l.requested_ms + l.wait_ms)
            / 1000.0;
        let c = mode_color(&l.mode);
        let rect = [
            (req, y + BAR.0 + 0.06),
            (end.max(req + min_w), y + BAR.1 - 0.06),
        ];
        chart
            .draw_series([
                Rectangle::new(rect, c.mix(0.3).filled()),
                Rectangle::new(rect, c.stroke_width(2)),
            ])
            .map_err(err)?;
        any = true;
    }
    Ok(any)
}

/// Seconds that make two pixels.
fn min_width<DB: DrawingBackend>(chart: &LocksChart<'_, DB>) -> f64 {
    let r = chart.x_range();
    2.0 * (r.end - r.start) / chart.plotting_area().dim_in_pixel().0.max(1) as f64
}

/// The holds: one bar per span in its strongest mode (pale on a relation
/// the step creates), then their labels.
fn draw_bars<DB: DrawingBackend>(
    chart: &mut LocksChart<'_, DB>,
    bars: &[Bar],
    rows: &Rows,
) -> anyhow::Result<()> {
    let min_w = min_width(chart);
    for b in bars {
        let y = rows.y(&b.relation);
        let c = mode_color(&b.mode);
        let style = if rows.is_fresh(&b.relation) {
            c.mix(0.35).filled()
        } else {
            c.filled()
        };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (b.start_s, y + BAR.0),
                    (b.end_s.max(b.start_s + min_w), y + BAR.1),
                ],
                style,
            )))
            .map_err(err)?;
    }
    label_bars(chart, bars, rows)
}

/// Each bar's label where it reads: inside the bar, else beside it where
/// nothing else is, else its hold alone inside, else on a line above the
/// row while there is room. Holds that block the app are labelled first,
/// longest first; a busy row's small bars get one summary label instead.
fn label_bars<DB: DrawingBackend>(
    chart: &mut LocksChart<'_, DB>,
    bars: &[Bar],
    rows: &Rows,
) -> anyhow::Result<()> {
    let (x0, x1) = (chart.x_range().start, chart.x_range().end);
    let (w, h) = chart.plotting_area().dim_in_pixel();
    let (w, px_per_s) = (w as f64, w as f64 / (x1 - x0));
    let per_px = (chart.y_range().end - chart.y_range().start) / h.max(1) as f64;
    let px = |t: f64| (t - x0) * px_per_s;
    let lines_above = (((LABELS_TOP - BAR.1) / per_px / LINE_PX).floor() as usize).max(1);
    // What each row already shows, in pixels: bars, then labels beside.
    let mut used: Vec<(f64, (f64, f64))> = bars
        .iter()
        .map(|b| (rows.y(&b.relation), (px(b.start_s), px(b.end_s) + 2.0)))
        .collect();
    let mut above: Vec<(f64, Lines)> = Vec::new();
    let mut texts: Vec<(String, (f64, f64), RGBColor)> = Vec::new();
    let mut place_above = |y: f64, x: f64, text: &str| {
        let lines = match above.iter_mut().find(|(r, _)| *r == y) {
            Some((_, l)) => l,
            None => {
                above.push((y, Lines::default()));
                &mut above.last_mut().expect("pushed").1
            }
        };
        let xs = x.min(w - text_px(text)).max(0.0);
        let line = lines.place(xs, xs + text_px(text));
        (line < lines_above).then(|| {
            let ty = y + BAR.1 + per_px * (LINE_PX + 2.0 + LINE_PX * line as f64);
            (x0 + xs / px_per_s, ty)
        })
    };
    for b in by_importance(bars, rows) {
        let y = rows.y(&b.relation);
        let (a, e) = (px(b.start_s), px(b.end_s));
        let (full, short) = (b.label(), b.short_label());
        let inside = (
            b.start_s + 5.0 / px_per_s,
            y + (BAR.0 + BAR.1) / 2.0 + 6.0 * per_px,
        );
        let ink = if rows.is_fresh(&b.relation) {
            BLACK
        } else {
            ink_on(mode_color(&b.mode))
        };
        let beside_free = e + 4.0 + text_px(&full) < w
            && !used
                .iter()
                .any(|(r, (s, f))| *r == y && *s < e + 4.0 + text_px(&full) && e + 4.0 < *f);
        let busy = bars.iter().filter(|o| o.relation == b.relation).count() > STACK_LIMIT;
        if e - a > text_px(&full) {
            texts.push((full, inside, ink));
        } else if beside_free {
            used.push((y, (e + 4.0, e + 4.0 + text_px(&full))));
            texts.push((full, (b.end_s + 4.0 / px_per_s, inside.1), BLACK));
        } else if e - a > text_px(&short) {
            texts.push((short, inside, ink));
        } else if !busy || blocks_app(b, rows) {
            if let Some(at) = place_above(y, a, &full) {
                texts.push((full, at, BLACK));
            }
        }
    }
    // A busy row says what its many small bars are, above its first one.
    for ((rel, start), summary) in busy_summaries(bars, rows) {
        if let Some(at) = place_above(rows.y(&rel), px(start), &summary) {
            texts.push((summary, at, BLACK));
        }
    }
    for (text, at, color) in texts {
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                at,
                (FONT, 12).into_font().color(&color),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Does the bar's mode block app reads or writes (on a relation others see)?
fn blocks_app(b: &Bar, rows: &Rows) -> bool {
    !rows.is_fresh(&b.relation)
        && crate::locks::LockMode::parse(&b.mode)
            .is_some_and(|m| m.blocks() != crate::record::Blocks::None)
}

/// Bars in the order their labels are placed: holds that block the app
/// first, then the rest, each longest first.
fn by_importance<'a>(bars: &'a [Bar], rows: &Rows) -> Vec<&'a Bar> {
    let mut v: Vec<&Bar> = bars.iter().collect();
    v.sort_by(|a, b| {
        blocks_app(b, rows)
            .cmp(&blocks_app(a, rows))
            .then((b.end_s - b.start_s).total_cmp(&(a.end_s - a.start_s)))
    });
    v
}

/// For each busy row ((relation, start of its first bar)): "24× RowExclusive,
/// 2–54 ms each" for its most frequent mode.
fn busy_summaries(bars: &[Bar], rows: &Rows) -> Vec<((String, f64), String)> {
    let mut out = Vec::new();
    for rel in &rows.names {
        let mine: Vec<&Bar> = bars.iter().filter(|b| &b.relation == rel).collect();
        if mine.len() <= STACK_LIMIT {
            continue;
        }
        let mut modes: Vec<(&str, usize)> = Vec::new();
        for b in &mine {
            match modes.iter_mut().find(|(m, _)| *m == b.mode) {
                Some(e) => e.1 += 1,
                None => modes.push((&b.mode, 1)),
            }
        }
        let (mode, n) = modes.into_iter().max_by_key(|e| e.1).expect("busy");
        let ms: Vec<f64> = mine
            .iter()
            .filter(|b| b.mode == mode)
            .map(|b| (b.end_s - b.start_s) * 1000.0)
            .collect();
        let (lo, hi) = (
            ms.iter().copied().fold(f64::INFINITY, f64::min),
            ms.iter().copied().fold(0.0, f64::max),
        );
        let start = mine
            .iter()
            .find(|b| b.mode == mode)
            .map_or(0.0, |b| b.start_s);
        out.push((
            (rel.clone(), start),
            format!("{n}× {}, {lo:.0}–{hi:.0} ms each", short_mode(mode)),
        ));
    }
    out
}

/// App lock waits: thin bars in the lower half of the row, one lane per
/// overlap. Returns the causes drawn.
fn draw_app_waits<DB: DrawingBackend>(
    chart: &mut LocksChart<'_, DB>,
    d: &ChartData<'_>,
    rows: &Rows,
) -> anyhow::Result<Vec<WaitCause>> {
    let min_w = min_width(chart);
    let mut causes: Vec<WaitCause> = Vec::new();
    for rel in &rows.names {
        let ws: Vec<_> = d.rec.waits.iter().filter(|w| &w.relation == rel).collect();
        let spans: Vec<(f64, f64)> = ws
            .iter()
            .map(|w| (w.start_ms, w.end_ms.max(w.start_ms + 1.0)))
            .collect();
        let (lane, nl) = lanes(&spans);
        // Thin bars, however few: a single wait is not a block.
        let h = ((WAITS.1 - WAITS.0) / nl as f64).min(0.1);
        let y = rows.y(rel);
        for (w, l) in ws.iter().zip(lane) {
            let top = y + WAITS.1 - l as f64 * h;
            let (a, b) = (w.start_ms / 1000.0, w.end_ms / 1000.0);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, top), (b.max(a + min_w), top - h * 0.7)],
                    cause_color(w.cause).filled(),
                )))
                .map_err(err)?;
            if !causes.contains(&w.cause) {
                causes.push(w.cause);
            }
        }
    }
    Ok(causes)
}

fn legend(bars: &[Bar], rows: &Rows, waited: bool, causes: &[WaitCause]) -> Legend {
    // Modes as drawn at full strength; on a relation the step creates,
    // every mode is pale.
    let mut modes: Vec<&str> = Vec::new();
    for b in bars.iter().filter(|b| !rows.is_fresh(&b.relation)) {
        if !modes.contains(&b.mode.as_str()) {
            modes.push(&b.mode);
        }
    }
    modes.sort_by_key(|m| crate::locks::LockMode::parse(m));
    let mut legend = Legend::default();
    legend.heading("held by the migration");
    for m in &modes {
        legend.add(Mark::Fill(mode_color(m)), *m);
    }
    if bars.iter().any(|b| !b.others.is_empty()) {
        legend.note("(+Mode): weaker modes held at the same time; the bar shows the strongest");
    }
    if let Some(b) = bars.iter().find(|b| rows.is_fresh(&b.relation)) {
        legend.add(
            Mark::Fill(over_white(mode_color(&b.mode), 0.35)),
            "pale: held on a relation the step creates (blocks nobody)",
        );
    }
    if waited {
        legend.add(
            Mark::Outline(RGBColor(90, 90, 90)),
            "outlined: the migration waiting for its lock",
        );
    }
    if !causes.is_empty() {
        legend.heading("app lock waits (thin bars)");
        for c in causes {
            legend.add(Mark::Fill(cause_color(*c)), cause_words(*c));
        }
    }
    legend
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
