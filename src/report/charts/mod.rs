//! Charts with plotters, each drawn once as SVG and once as PNG from the same
//! code. Fonts are bundled (DejaVu Sans via the `dejavu` crate, rasterized by
//! ab_glyph), so no system font is needed.
//!
//! `frame` holds what every chart shares (data, axis, colours, shading,
//! label placement), `legend` the side panel; each chart is one file.

mod frame;
mod latency;
mod legend;
mod lock_bars;
mod locks;
mod replica;
mod throughput;

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::analyze::Analysis;
use crate::record::RunRecord;
use frame::{err, ChartData, FONT};

pub use latency::SIZE as LATENCY_SIZE;
pub use locks::SIZE as LOCKS_SIZE;
pub use replica::SIZE as REPLICA_SIZE;
pub use throughput::SIZE as THROUGHPUT_SIZE;

/// Chart base names; each is written as `.svg` and `.png` (`replica` only
/// when the run sampled a replica).
pub const CHARTS: [&str; 4] = ["latency", "locks", "throughput", "replica"];

pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Registration only fails on bytes that are not a font; these are.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Write latency, locks and throughput charts (and replica, with a replica)
/// as SVG and PNG into `dir`. Returns the file names written.
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
    if replica::sampled(&d) {
        both!("replica", REPLICA_SIZE, replica::draw);
    }
    Ok(files)
}
