//! What every chart shares: the data it draws from, the time axis, the
//! colours, the shading of phases and statements, and placing labels so
//! they do not overlap.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analyze::Analysis;
use crate::record::RunRecord;

pub(crate) type Area<'a, DB> = DrawingArea<DB, Shift>;
pub(crate) type TimeChart<'a, DB, Y> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>;

pub(crate) const FONT: &str = "sans-serif";
/// Width of the legend panel right of the plot.
pub(crate) const LEGEND_W: u32 = 250;

pub(crate) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

/// Everything a chart needs, in seconds since run start.
pub(crate) struct ChartData<'a> {
    pub rec: &'a RunRecord,
    pub a: &'a Analysis,
    /// The end of the run.
    pub end_s: f64,
}

impl ChartData<'_> {
    /// Phase spans (name, start s, end s).
    pub fn phases(&self) -> Vec<(String, f64, f64)> {
        self.rec
            .info
            .iter()
            .flat_map(|i| i.phases.iter())
            .map(|p| (p.name.clone(), p.start_ms / 1000.0, p.end_ms / 1000.0))
            .collect()
    }

    /// Time spans (s) when a migration statement was running: statements
    /// closer than `gap` seconds (about a pixel) are merged, so a backfill of
    /// hundreds of batches shades one band instead of drawing hundreds of
    /// full-height rectangles.
    pub fn statement_spans(&self, gap: f64) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = self
            .rec
            .statements
            .iter()
            .map(|s| (s.start_ms / 1000.0, s.end_ms.max(s.start_ms) / 1000.0))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out: Vec<(f64, f64)> = Vec::new();
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1 + gap => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    }
}

/// Distinct, print-friendly series colours (Tableau 10, without its red,
/// which the charts keep for errors and blocking).
pub(crate) const SERIES: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn series_color(i: usize) -> RGBColor {
    SERIES[i % SERIES.len()]
}

/// Lock modes coloured from calm (share, green/blue) to harsh (exclusive, red).
pub(crate) fn mode_color(mode: &str) -> RGBColor {
    use crate::locks::LockMode::*;
    match crate::locks::LockMode::parse(mode) {
        Some(AccessShare) => RGBColor(161, 217, 155),
        Some(RowShare) => RGBColor(116, 196, 118),
        Some(RowExclusive) => RGBColor(65, 171, 93),
        Some(ShareUpdateExclusive) => RGBColor(66, 146, 198),
        Some(Share) => RGBColor(253, 141, 60),
        Some(ShareRowExclusive) => RGBColor(241, 105, 19),
        Some(Exclusive) => RGBColor(203, 24, 29),
        Some(AccessExclusive) => RGBColor(103, 0, 13),
        None => RGBColor(150, 150, 150),
    }
}

pub(crate) const PHASE_FILLS: [RGBColor; 2] = [RGBColor(232, 240, 250), RGBColor(244, 240, 228)];
pub(crate) const STATEMENT_FILL: RGBColor = RGBColor(255, 200, 120);
pub(crate) const STATEMENT_ALPHA: f64 = 0.35;
pub(crate) const PHASE_TEXT: RGBColor = RGBColor(60, 60, 90);
pub(crate) const STEP_TEXT: RGBColor = RGBColor(150, 80, 0);

/// `c` at `alpha` over white, as an opaque colour (for legend marks).
pub(crate) fn over_white(c: RGBColor, alpha: f64) -> RGBColor {
    let m = |v: u8| (255.0 * (1.0 - alpha) + v as f64 * alpha).round() as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

/// Text colour that reads on a fill of colour `c`.
pub(crate) fn ink_on(c: RGBColor) -> RGBColor {
    let lum = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if lum > 150.0 {
        RGBColor(20, 20, 20)
    } else {
        WHITE
    }
}

/// A chart's title on top, then the plot and the legend panel right of it.
pub(crate) fn layout<'a, DB: DrawingBackend>(
    root: &Area<'a, DB>,
    title: &str,
) -> anyhow::Result<(Area<'a, DB>, Area<'a, DB>)> {
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .margin(8, 0, 0, 0)
        .titled(title, (FONT, 22).into_font())
        .map_err(err)?;
    let w = body.dim_in_pixel().0;
    let (plot, side) = body.split_horizontally(w - LEGEND_W);
    Ok((plot, side.margin(12, 0, 0, 0)))
}

/// Seconds with as many decimals as the tick spacing needs.
pub(crate) fn fmt_seconds(v: &f64) -> String {
    // `+ 0.0` makes -0 (a tick a hair left of t = 0) plain 0.
    let r = (v * 1000.0).round() / 1000.0 + 0.0;
    if (r - r.round()).abs() < 1e-9 {
        format!("{r:.0}")
    } else if (r * 10.0 - (r * 10.0).round()).abs() < 1e-9 {
        format!("{r:.1}")
    } else if (r * 100.0 - (r * 100.0).round()).abs() < 1e-9 {
        format!("{r:.2}")
    } else {
        format!("{r:.3}")
    }
}

/// Axis styling shared by the charts: bold grid lines only (minor lines
/// turn a chart grey), readable tick labels.
pub(crate) fn style_mesh<DB: DrawingBackend, Y: Ranged>(
    mesh: &mut plotters::chart::MeshStyle<'_, '_, RangedCoordf64, Y, DB>,
) {
    mesh.x_labels(14)
        .x_label_formatter(&fmt_seconds)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(RGBColor(225, 225, 225));
}

/// Width in pixels of `text` at 12–13 px DejaVu Sans (a safe estimate).
pub(crate) fn text_px(text: &str) -> f64 {
    text.chars().count() as f64 * 7.0 + 8.0
}

/// Labels on lines: each `(x0, x1)` pixel extent goes on the lowest line
/// where it overlaps nothing already placed there.
#[derive(Default)]
pub(crate) struct Lines {
    taken: Vec<(f64, f64, usize)>,
}

impl Lines {
    pub fn place(&mut self, x0: f64, x1: f64) -> usize {
        let line = (0..)
            .find(|l| {
                !self
                    .taken
                    .iter()
                    .any(|(s, e, tl)| tl == l && *s < x1 + 4.0 && x0 < *e + 4.0)
            })
            .unwrap_or(0);
        self.taken.push((x0, x1, line));
        line
    }

    pub fn count(&self) -> usize {
        self.taken.iter().map(|t| t.2 + 1).max().unwrap_or(0)
    }
}

/// Shade phases (alternating light bands) and statement spans (orange) over
/// the full height of a chart whose y range is `y`.
pub(crate) fn shade_spans<DB: DrawingBackend, Y>(
    chart: &mut TimeChart<'_, DB, Y>,
    d: &ChartData<'_>,
    y: (Y::ValueType, Y::ValueType),
) -> anyhow::Result<()>
where
    Y: Ranged,
    Y::ValueType: Clone + 'static,
{
    let (x0, x1) = (chart.x_range().start, chart.x_range().end);
    let px = (x1 - x0) / chart.plotting_area().dim_in_pixel().0.max(1) as f64;
    for (i, (_, a, b)) in d.phases().iter().enumerate() {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a.max(x0), y.0.clone()), (b.min(x1), y.1.clone())],
                PHASE_FILLS[i % 2].filled(),
            )))
            .map_err(err)?;
    }
    for (a, b) in d.statement_spans(px) {
        // A statement shorter than a pixel still shows as a sliver.
        let b = b.max(a + 1.5 * px);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a.max(x0), y.0.clone()), (b.min(x1), y.1.clone())],
                STATEMENT_FILL.mix(STATEMENT_ALPHA).filled(),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Names at the top of the plot, above their spans: the phases on the first
/// lines, then `more` (step names at their start, s), each on the lowest
/// line where it overlaps no other. Returns how many lines were used.
pub(crate) fn header_labels<DB: DrawingBackend, Y: Ranged>(
    chart: &TimeChart<'_, DB, Y>,
    d: &ChartData<'_>,
    more: &[(String, f64)],
) -> anyhow::Result<usize> {
    let (x0, x1) = (chart.x_range().start, chart.x_range().end);
    let area = chart.plotting_area().strip_coord_spec();
    let w = area.dim_in_pixel().0 as f64;
    let px_per_s = w / (x1 - x0).max(1e-9);
    let mut labels: Vec<(String, f64, RGBColor)> = d
        .phases()
        .into_iter()
        .filter(|(_, a, b)| *b > x0 && *a < x1)
        .map(|(name, a, _)| (format!("phase {name}"), a, PHASE_TEXT))
        .collect();
    let phase_count = labels.len();
    labels.extend(more.iter().map(|(t, x)| (t.clone(), *x, STEP_TEXT)));
    let (mut phase_lines, mut step_lines) = (Lines::default(), Lines::default());
    let mut placed = Vec::new();
    for (k, (text, x, color)) in labels.into_iter().enumerate() {
        // Inside the plot: a label that would run off the right edge ends
        // at it.
        let tw = text_px(&text);
        let xs = ((x.max(x0) - x0) * px_per_s + 3.0).min(w - tw).max(0.0);
        let line = if k < phase_count {
            (true, phase_lines.place(xs, xs + tw))
        } else {
            (false, step_lines.place(xs, xs + tw))
        };
        placed.push((text, xs, line, color));
    }
    let phase_n = phase_lines.count();
    for (text, xs, (is_phase, line), color) in placed {
        let line = if is_phase { line } else { phase_n + line };
        area.draw(&Text::new(
            text,
            (xs as i32, 3 + 15 * line as i32),
            (FONT, 12).into_font().color(&color),
        ))
        .map_err(err)?;
    }
    Ok(phase_n + step_lines.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_that_overlap_go_on_the_next_free_line() {
        let mut l = Lines::default();
        assert_eq!(l.place(0.0, 100.0), 0);
        assert_eq!(l.place(50.0, 150.0), 1);
        assert_eq!(l.place(200.0, 300.0), 0);
        assert_eq!(l.place(90.0, 120.0), 2);
        assert_eq!(l.count(), 3);
    }

    #[test]
    fn seconds_keep_the_decimals_the_ticks_need() {
        assert_eq!(fmt_seconds(&3.0), "3");
        assert_eq!(fmt_seconds(&3.5), "3.5");
        assert_eq!(fmt_seconds(&3.25), "3.25");
        assert_eq!(fmt_seconds(&3.0125), "3.013");
        // A tick a hair left of zero is 0, not -0.
        assert_eq!(fmt_seconds(&-0.0001), "0");
        assert_eq!(fmt_seconds(&-0.0), "0");
    }
}
