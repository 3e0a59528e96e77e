//! Reports (interim: lands from the reports branch).

use std::path::Path;

use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub budgets: Vec<(String, f64)>,
}

impl RenderOptions {
    pub fn with_budgets(budgets: Vec<(String, f64)>) -> RenderOptions {
        RenderOptions { budgets }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub passed: bool,
}

impl Summary {
    pub fn exit_code(&self) -> u8 {
        if self.passed {
            0
        } else {
            1
        }
    }
    pub fn verdict_line(&self) -> String {
        if self.passed {
            "PASS".into()
        } else {
            "FAIL".into()
        }
    }
    pub fn text(&self) -> String {
        self.verdict_line()
    }
}

pub fn render(_dir: &Path, _opts: &RenderOptions) -> Result<Summary> {
    Ok(Summary { passed: true })
}
