//! Flag values from text: row counts (`250k`, `2M`), comma-separated lists,
//! `--pg-version` majors, rates, durations and `--budget KEY=VALUE`; every
//! error names its flag (exit 2).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::scenario;

/// Parse `250000`, `250_000`, `250k`, `2M`, `1.5M`, `1G` into a row count.
pub fn parse_rows(s: &str) -> std::result::Result<u64, String> {
    parse_count("--rows", s)
}

/// A row count (as [`parse_rows`]); errors name `flag`.
pub fn parse_count(flag: &str, s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G' | 'b' | 'B') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{flag}: `{s}` is not a row count (examples: 250000, 250k, 2M)"))?;
    let rows = v * mult;
    if !(1.0..=1e13).contains(&rows) || rows.fract() != 0.0 {
        return Err(format!(
            "{flag}: `{s}` must be a whole number of rows between 1 and 10^13"
        ));
    }
    Ok(rows as u64)
}

/// `--before` / `--after`: a duration such as `1s` or `500ms`.
pub(super) fn traffic_override(flag: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_deref()
        .map(|s| scenario::parse_duration(s).map_err(|e| Error::Usage(format!("{flag}: {e}"))))
        .transpose()
}

/// A comma-separated list, each item parsed by `one`; empty items and
/// repeats are errors naming `flag`.
pub(super) fn parse_list<T: PartialEq + std::fmt::Display>(
    flag: &str,
    raw: &str,
    one: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let mut out: Vec<T> = Vec::new();
    for item in raw.split(',') {
        if item.trim().is_empty() {
            return Err(Error::Usage(format!(
                "{flag}: `{raw}` has an empty item; expected values separated by commas, e.g. {flag} {}",
                if flag == "--rate" { "200,800" } else { "100k,400k,1.6M" }
            )));
        }
        let v = one(item.trim()).map_err(Error::Usage)?;
        if out.contains(&v) {
            return Err(Error::Usage(format!("{flag}: {v} is listed twice")));
        }
        out.push(v);
    }
    Ok(out)
}

/// `--pg-version 15,17,18`, checked for form only (exit 2): items separated
/// by commas, none empty or repeated, majors rather than minors. Whether
/// pgrehearse knows a version and the machine has it is decided later
/// (exit 3, with what is available).
pub fn parse_versions(raw: &str) -> std::result::Result<Vec<String>, String> {
    let bad = |why: String| {
        format!(
            "--pg-version: `{raw}`: {why}; expected major versions separated by commas, e.g. 15,17"
        )
    };
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',') {
        let v = item.trim();
        if v.is_empty() {
            return Err(bad("an empty item".into()));
        }
        if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return Err(bad(format!("`{v}` is not a version")));
        }
        if let Some((major, _)) = v.split_once('.').filter(|(m, _)| m.parse::<u32>().is_ok()) {
            return Err(bad(format!(
                "`{v}` is a minor version; give its major, {major}"
            )));
        }
        if out.iter().any(|o| o == v) {
            return Err(bad(format!("{v} is listed twice")));
        }
        out.push(v.to_string());
    }
    Ok(out)
}

/// A rate in queries/s: a positive number, `k` for thousands.
pub(super) fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    let (num, mult) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * mult),
        _ => Err(format!(
            "--rate: `{s}` is not a rate in queries/s (examples: 200, 1.5k)"
        )),
    }
}

pub(super) fn parse_budgets(raw: &[String]) -> Result<Vec<(String, f64)>> {
    raw.iter()
        .map(|s| {
            crate::analyze::parse_budget_override(s)
                .map_err(|e| Error::Usage(format!("--budget: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lists_are_checked_for_form_only() {
        assert_eq!(parse_versions("15,17,18").unwrap(), ["15", "17", "18"]);
        assert_eq!(parse_versions(" 15 , 17").unwrap(), ["15", "17"]);
        // Known or not is decided against the machine (exit 3), not here.
        assert_eq!(parse_versions("9,99,abc").unwrap(), ["9", "99", "abc"]);
        for (bad, says) in [
            ("", "an empty item"),
            ("15,,17", "an empty item"),
            ("15,", "an empty item"),
            ("15;17", "`15;17` is not a version"),
            ("15,15", "15 is listed twice"),
            ("17.2", "give its major, 17"),
        ] {
            let e = parse_versions(bad).unwrap_err();
            assert!(
                e.starts_with("--pg-version: ") && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn rows_accept_suffixes() {
        assert_eq!(parse_rows("250000"), Ok(250_000));
        assert_eq!(parse_rows("250_000"), Ok(250_000));
        assert_eq!(parse_rows("250k"), Ok(250_000));
        assert_eq!(parse_rows("1.5M"), Ok(1_500_000));
        assert!(parse_rows("0").is_err());
        assert!(parse_rows("-5").is_err());
        assert!(parse_rows("1.5").is_err());
        assert!(parse_rows("lots").is_err());
    }
}
