//! `compare --pair NAME`: the naive and the safe file of a pair, found in a
//! directory by their `pair` and `variant` keys (not by file name, so a
//! renamed file is still found).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The naive and the safe file of `pair` in `dir`, in that order.
pub fn find(dir: &Path, pair: &str) -> Result<(PathBuf, PathBuf)> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Usage(format!(
            "--pair: cannot read the scenario directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let (mut naive, mut safe, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    for path in files {
        // A file that does not parse is not this pair's; loading it later
        // would report it, but only the two files found are loaded.
        let Some((p, variant)) = keys(&path) else {
            continue;
        };
        if p != pair {
            if !pairs.contains(&p) {
                pairs.push(p);
            }
            continue;
        }
        match variant.as_deref() {
            Some("naive") => naive.push(path),
            Some("safe") => safe.push(path),
            _ => {}
        }
    }
    let one = |found: Vec<PathBuf>, variant: &str| match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Usage(format!(
            "--pair {pair}: no file in {} has pair = \"{pair}\" and variant = \"{variant}\"{}",
            dir.display(),
            if pairs.is_empty() {
                String::new()
            } else {
                format!(" (pairs there: {})", pairs.join(", "))
            }
        ))),
        many => Err(Error::Usage(format!(
            "--pair {pair}: {} files have variant = \"{variant}\": {}",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    };
    Ok((one(naive, "naive")?, one(safe, "safe")?))
}

/// The `pair` and `variant` keys of a scenario file, if it has a pair.
fn keys(path: &Path) -> Option<(String, Option<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    let pair = doc.get("pair")?.as_str()?.to_string();
    let variant = doc
        .get("variant")
        .and_then(|v| v.as_str())
        .map(String::from);
    Some((pair, variant))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
    }

    #[test]
    fn finds_both_files_of_a_library_pair() {
        let (naive, safe) = find(&library(), "create-index").unwrap();
        assert!(naive.ends_with("create-index-naive.toml"), "{naive:?}");
        assert!(safe.ends_with("create-index-safe.toml"), "{safe:?}");
    }

    #[test]
    fn an_unknown_pair_names_the_pairs_there() {
        let e = find(&library(), "no-such-pair").unwrap_err().to_string();
        assert!(e.contains("no-such-pair"), "{e}");
        assert!(e.contains("create-index"), "{e}");
    }
}
