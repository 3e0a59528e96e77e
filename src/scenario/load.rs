//! Loading a scenario file with source spans and validating it into a plan.

use std::path::Path;

use super::Scenario;
use crate::error::Result;

/// Command-line overrides applied while validating.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// --rows N: the largest table gets N rows, the others scale with it.
    pub rows: Option<u64>,
    /// --scale F: every table's rows × F.
    pub scale: Option<f64>,
}

/// Read and validate `path`. Every problem is an `Error::Scenario` located at
/// file:line:column with the field named.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario> {
    let bytes = std::fs::read(path).map_err(anyhow::Error::new)?;
    load_str(path, &bytes, overrides)
}

pub fn load_str(_path: &Path, _bytes: &[u8], _overrides: &Overrides) -> Result<Scenario> {
    unimplemented!("scenario loader")
}

/// The plan, human-readable (interim).
pub fn describe(s: &Scenario) -> String {
    format!("{s:#?}")
}
