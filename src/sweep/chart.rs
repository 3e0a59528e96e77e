//! sweep.svg / sweep.png: one panel per key figure (longest blocking hold,
//! duration, WAL), size on a log axis, value on a log axis (the target is
//! often 1000× the sizes measured: on linear axes the measured points would
//! sit in one corner). Per step, version and rate (a colour each): the
//! measured points (dots; with `--pg-version`, a marker shape per version:
//! circle, triangle, diamond), the fitted curve (a line, dashed beyond the
//! largest measured size), and the extrapolated point (a cross) with its
//! interval (a vertical bar).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::answer::{Answer, FigureFit};
use super::collect::{self, Measured, Unit, FIGURES};
use super::rate_label;
use super::render::{count, human};
use crate::error::Result;

/// The figures drawn, one panel each.
pub const PANELS: [&str; 3] = ["blocking_hold_ms", "duration_ms", "wal_bytes"];
const SIZE: (u32, u32) = (1000, 1050);
const FONT: &str = "sans-serif";

/// Write sweep.svg and sweep.png into `dir`.
pub fn write(dir: &Path, answer: &Answer, _measured: &[Measured]) -> Result<()> {
    crate::report::charts::register_fonts();
    let (svg, png) = (dir.join("sweep.svg"), dir.join("sweep.png"));
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        draw(&root, answer)?;
        root.present().map_err(err)?;
    }
    let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
    draw(&root, answer)?;
    root.present().map_err(err)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> crate::Error {
    anyhow::anyhow!("drawing the sweep chart: {e:?}").into()
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, answer: &Answer) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let body = root
        .titled(
            &format!(
                "{}: measured (dots), fit (line), extrapolated (dashed, × with its 95% interval)",
                answer.scenario
            ),
            (FONT, 18),
        )
        .map_err(err)?;
    let panels = body.split_evenly((PANELS.len(), 1));
    // One colour per step × version × rate in every panel.
    let mut series: Vec<Series> = Vec::new();
    for f in &answer.fits {
        let key = series_of(f);
        if !series.contains(&key) {
            series.push(key);
        }
    }
    for (area, key) in panels.iter().zip(PANELS) {
        let i = collect::figure(key);
        let fits: Vec<&FigureFit> = answer.fits.iter().filter(|f| f.figure == i).collect();
        panel(area, key, &fits, &series, &answer.versions, answer.target)?;
    }
    Ok(())
}

/// What a colour stands for: a step, at a version and a rate.
type Series = (String, String, Option<String>, Option<u64>);

fn series_of(f: &FigureFit) -> Series {
    (
        f.phase.clone(),
        f.step.clone(),
        f.version.clone(),
        f.rate.map(f64::to_bits),
    )
}

/// The diamond marker (a version's third shape), in pixels around a point.
const DIAMOND: [(i32, i32); 4] = [(0, -6), (6, 0), (0, 6), (-6, 0)];

/// The x and y ranges that hold every point, curve and interval (y > 0).
/// None when nothing is above 0: no run measured any.
fn ranges(fits: &[&FigureFit], target: Option<u64>) -> Option<((f64, f64), (f64, f64))> {
    let mut xs: Vec<f64> = fits
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.0))
        .collect();
    xs.extend(target.map(|t| t as f64));
    let mut ys: Vec<f64> = fits
        .iter()
        .flat_map(|f| f.points.iter().map(|p| p.1))
        .collect();
    for f in fits {
        if let Some(p) = &f.prediction {
            ys.extend([p.value, p.low, p.high].into_iter().flatten());
        }
    }
    let pos = |v: &f64| *v > 0.0 && v.is_finite();
    let lo = |v: &[f64]| v.iter().copied().filter(pos).fold(f64::INFINITY, f64::min);
    let hi = |v: &[f64]| v.iter().copied().filter(pos).fold(0.0, f64::max);
    let (x0, x1, y0, y1) = (lo(&xs), hi(&xs), lo(&ys), hi(&ys));
    if !x0.is_finite() || !y0.is_finite() {
        return None;
    }
    Some(((x0 / 1.5, x1 * 1.5), (y0 / 2.0, y1 * 2.0)))
}

/// The log axis's ticks are the powers of this: bytes at powers of 4 (1 KiB,
/// 4 KiB, ... 1 MiB: labels that read as written, not 97.7 KiB), and a
/// range of less than two decades at powers of 2, so it has ticks at all.
fn tick_base(unit: Unit, lo: f64, hi: f64) -> f64 {
    if hi / lo < 100.0 {
        2.0
    } else if unit == Unit::Bytes {
        4.0
    } else {
        10.0
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    key: &str,
    fits: &[&FigureFit],
    series: &[Series],
    versions: &[Option<String>],
    target: Option<u64>,
) -> Result<()> {
    let figure = FIGURES[collect::figure(key)];
    let Some(((x0, x1), (y0, y1))) = ranges(fits, target) else {
        // No axes made up for nothing: say so.
        let inner = area.margin(8, 8, 8, 8);
        let inner = inner.titled(figure.title, (FONT, 17)).map_err(err)?;
        let (w, h) = inner.dim_in_pixel();
        inner
            .draw(&Text::new(
                "none in any rehearsal of the sweep: nothing to fit",
                (w as i32 / 2 - 180, h as i32 / 2),
                (FONT, 15).into_font().color(&RGBColor(110, 110, 110)),
            ))
            .map_err(err)?;
        return Ok(());
    };
    let mut chart = ChartBuilder::on(&area.margin(8, 8, 8, 8))
        .caption(figure.title, (FONT, 17))
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (x0..x1).log_scale(),
            (y0..y1).log_scale().base(tick_base(figure.unit, y0, y1)),
        )
        .map_err(err)?;
    let ylabel = |v: &f64| human(*v, figure.unit);
    chart
        .configure_mesh()
        .x_desc("rows (log)")
        .x_label_formatter(&|v: &f64| count(*v))
        .y_label_formatter(&ylabel)
        .label_style((FONT, 12))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(err)?;
    if fits.is_empty() {
        return Ok(());
    }
    for f in fits {
        let c = series.iter().position(|k| *k == series_of(f)).unwrap_or(0);
        let color = Palette99::pick(c).to_rgba();
        let label = match &f.version {
            Some(v) => format!("{} · PG {v} @ {}", f.step, rate_label(f.rate)),
            None => format!("{} @ {}", f.step, rate_label(f.rate)),
        };
        let shape = versions.iter().position(|v| v == &f.version).unwrap_or(0) % 3;
        // A circle, a triangle or a diamond: the version's shape.
        let dots = f.points.iter().copied().filter(|p| p.1 > 0.0);
        let style = color.filled();
        let series = match shape {
            0 => chart.draw_series(dots.map(|p| Circle::new(p, 5, style))),
            1 => chart.draw_series(dots.map(|p| TriangleMarker::new(p, 6, style))),
            _ => chart.draw_series(
                dots.map(|p| EmptyElement::at(p) + Polygon::new(DIAMOND.to_vec(), style)),
            ),
        }
        .map_err(err)?;
        series.label(label);
        match shape {
            0 => series.legend(move |p| Circle::new(p, 5, style)),
            1 => series.legend(move |p| TriangleMarker::new(p, 6, style)),
            _ => {
                series.legend(move |p| EmptyElement::at(p) + Polygon::new(DIAMOND.to_vec(), style))
            }
        };
        let Ok(fit) = &f.fit else { continue };
        let largest = f.points.last().map(|p| p.0).unwrap_or(x0);
        // Dashed out to the target only when there is a value there: a
        // fit that falls with size is not drawn beyond what was measured.
        let end = f
            .prediction
            .as_ref()
            .filter(|p| p.value.is_some())
            .map(|p| p.n)
            .unwrap_or(largest)
            .max(largest);
        let first = f.points.first().map(|p| p.0).unwrap_or(x0);
        let curve = |a: f64, b: f64| {
            (0..=60)
                .map(move |k| a * (b / a).powf(k as f64 / 60.0))
                .map(|x| (x, fit.value_at(x)))
                .filter(|p| p.1 > 0.0)
                .collect::<Vec<_>>()
        };
        chart
            .draw_series(LineSeries::new(
                curve(first, largest),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        if end > largest {
            chart
                .draw_series(DashedLineSeries::new(
                    curve(largest, end),
                    6,
                    4,
                    color.into(),
                ))
                .map_err(err)?;
        }
        if let Some(p) = &f.prediction {
            if let Some(value) = p.value.filter(|v| *v > 0.0) {
                chart
                    .draw_series([Cross::new((p.n, value), 7, color.stroke_width(3))])
                    .map_err(err)?;
            }
            if let (Some(lo), Some(hi)) = (p.low, p.high) {
                let lo = lo.max(y0);
                chart
                    .draw_series(LineSeries::new(
                        [(p.n, lo), (p.n, hi)],
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 12))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_no_run_measured_has_no_made_up_axes() {
        assert_eq!(ranges(&[], None), None);
        assert_eq!(ranges(&[], Some(1_000_000)), None);
    }

    #[test]
    fn byte_axes_tick_at_binary_sizes_and_a_narrow_range_still_ticks() {
        assert_eq!(tick_base(Unit::Bytes, 1e3, 1e7), 4.0);
        assert_eq!(tick_base(Unit::Ms, 1.0, 1e4), 10.0);
        // Less than two decades: powers of 2, or there may be no tick.
        assert_eq!(tick_base(Unit::Ms, 400.0, 3000.0), 2.0);
    }
}
