//! Analysis (interim: lands from the reports branch).

pub fn parse_budget_override(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let v: f64 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
    Ok((k.to_string(), v))
}
