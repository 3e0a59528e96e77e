//! Charts with plotters, each drawn once as SVG and once as PNG from the same
//! code. Fonts are bundled (DejaVu Sans via the `dejavu` crate, rasterized by
//! ab_glyph), so no system font is needed.

mod latency;
mod locks;
mod throughput;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analyze::Analysis;
use crate::record::RunRecord;

pub const LATENCY_SIZE: (u32, u32) = (1280, 640);
pub const LOCKS_SIZE: (u32, u32) = (1280, 560);
pub const THROUGHPUT_SIZE: (u32, u32) = (1280, 640);

/// Chart base names; each is written as `.svg` and `.png`.
pub const CHARTS: [&str; 3] = ["latency", "locks", "throughput"];

pub(crate) const FONT: &str = "sans-serif";

pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Registration only fails on bytes that are not a font; these are.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

pub(crate) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

/// Everything a chart needs, in seconds since run start.
pub(crate) struct ChartData<'a> {
    pub rec: &'a RunRecord,
    pub a: &'a Analysis,
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

    /// Statement spans (step, start s, end s).
    pub fn statements(&self) -> Vec<(String, f64, f64)> {
        self.rec
            .statements
            .iter()
            .map(|s| (s.step.clone(), s.start_ms / 1000.0, s.end_ms / 1000.0))
            .collect()
    }
}

/// Write latency, locks and throughput charts as SVG and PNG into `dir`.
/// Returns the file names written.
pub fn write_all(dir: &Path, rec: &RunRecord, a: &Analysis) -> anyhow::Result<Vec<String>> {
    register_fonts();
    let end_ms = rec
        .latency
        .iter()
        .map(|r| r.window_start_ms + r.window_ms)
        .chain(rec.statements.iter().map(|s| s.end_ms))
        .chain(rec.info.iter().map(|i| i.end_ms))
        .fold(1.0, f64::max);
    let d = ChartData {
        rec,
        a,
        end_s: end_ms / 1000.0,
    };
    let mut files = Vec::new();
    macro_rules! both {
        ($name:literal, $size:expr, $draw:path) => {{
            let svg = dir.join(concat!($name, ".svg"));
            {
                let root = SVGBackend::new(&svg, $size).into_drawing_area();
                $draw(&root, &d)?;
                root.present().map_err(err)?;
            }
            let png = dir.join(concat!($name, ".png"));
            {
                let root = BitMapBackend::new(&png, $size).into_drawing_area();
                $draw(&root, &d)?;
                root.present().map_err(err)?;
            }
            files.push(concat!($name, ".svg").to_string());
            files.push(concat!($name, ".png").to_string());
        }};
    }
    both!("latency", LATENCY_SIZE, latency::draw);
    both!("locks", LOCKS_SIZE, locks::draw);
    both!("throughput", THROUGHPUT_SIZE, throughput::draw);
    Ok(files)
}

/// Distinct, print-friendly series colours (Tableau 10).
pub(crate) const SERIES: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(214, 39, 40),
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

/// Shade phases (alternating light bands, name at the top) and statement
/// spans (orange) over the full height of a chart whose y range is `y`.
pub(crate) fn shade_spans<DB: DrawingBackend, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    d: &ChartData<'_>,
    y: (Y::ValueType, Y::ValueType),
    label_y: Option<Y::ValueType>,
) -> anyhow::Result<()>
where
    Y: Ranged,
    Y::ValueType: Clone + 'static,
{
    let phases = d.phases();
    for (i, (_, a, b)) in phases.iter().enumerate() {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*a, y.0.clone()), (*b, y.1.clone())],
                PHASE_FILLS[i % 2].filled(),
            )))
            .map_err(err)?;
    }
    for (_, a, b) in d.statements() {
        // A statement shorter than a pixel still shows as a sliver.
        let b = b.max(a + d.end_s / 1500.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y.0.clone()), (b, y.1.clone())],
                STATEMENT_FILL.mix(STATEMENT_ALPHA).filled(),
            )))
            .map_err(err)?;
    }
    if let Some(ly) = &label_y {
        for (name, a, _) in &phases {
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(" phase {name}"),
                    (*a, ly.clone()),
                    (FONT, 13).into_font().color(&RGBColor(60, 60, 90)),
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A legend entry for something drawn as a band, not a series.
pub(crate) fn legend_box<DB: DrawingBackend, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    label: &str,
    style: ShapeStyle,
) -> anyhow::Result<()>
where
    Y: Ranged,
    Y::ValueType: 'static,
{
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, Y::ValueType)>>())
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], style));
    Ok(())
}

/// Seconds with as many decimals as the tick spacing needs.
pub(crate) fn fmt_seconds(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub(crate) type Area<'a, DB> = DrawingArea<DB, Shift>;
