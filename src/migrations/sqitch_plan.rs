//! sqitch.plan, as Sqitch parses it (App::Sqitch::Plan): pragmas, a blank
//! line, then changes (`name [deps] timestamp planner <email> # note`) and
//! tags (`@tag timestamp planner <email>`). Plan order is deploy order;
//! dependencies are checked, not used to reorder. A change may appear again
//! after a tag (reworked): the earlier instance's script is then
//! `deploy/<name>@<tag>.sql`.

use std::collections::HashMap;
use std::path::Path;

use super::error::MigrationError;
use super::model::Location;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    /// 1-based line in the plan.
    pub line: usize,
    pub note: String,
    pub requires: Vec<String>,
    /// Tags placed right after this change.
    pub tags: Vec<String>,
    /// For an instance reworked later: the tags whose `name@tag` script may
    /// hold it, in Sqitch's lookup order.
    pub rework_tags: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub project: String,
    pub changes: Vec<Change>,
}

fn is_punct(c: char) -> bool {
    "-!\"#$%&'()*+,./:;<=>?@[\\]^`{|}~".contains(c)
}

/// Sqitch's name rule, simplified: no blanks or `:@#\`, not starting or
/// ending with punctuation.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(|c: char| c.is_whitespace() || ":@#\\".contains(c))
        && !name.starts_with(is_punct)
        && !name.ends_with(is_punct)
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// One line of the plan after the pragmas: `[+|@]name [deps] timestamp planner <email> # note`.
struct Entry<'a> {
    head: &'a str,
    requires: Vec<String>,
    note: &'a str,
}

/// The pragmas up to the first blank line; returns the project's name.
fn read_pragmas<'a>(
    path: &Path,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<String, MigrationError> {
    let mut project = String::new();
    for (n, line) in lines {
        let t = line.trim();
        if t.is_empty() {
            break;
        }
        if t.starts_with('#') {
            continue;
        }
        let Some(pragma) = t.strip_prefix('%') else {
            return Err(MigrationError::at(
                Location::new(path, n, 1),
                "invalid pragma; a blank line must come between pragmas and changes",
            ));
        };
        let (key, value) = pragma.split_once('=').unwrap_or((pragma, ""));
        if key.trim() == "project" {
            project = value.split('#').next().unwrap_or("").trim().to_string();
        }
    }
    if project.is_empty() {
        return Err(MigrationError::at(
            Location::file(path),
            "missing %project pragma in sqitch.plan",
        ));
    }
    Ok(project)
}

/// Splits a change or tag line into its parts, checking the timestamp and
/// planner; `None` for a blank or comment-only line.
fn read_entry(line: &str) -> Result<Option<Entry<'_>>, String> {
    let (body, note) = match line.find('#') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let body = body.trim();
    if body.is_empty() {
        return Ok(None);
    }
    let (head, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    let mut rest = rest.trim_start();
    let mut requires = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let Some((deps, after)) = r.split_once(']') else {
            return Err("unclosed [ of dependencies".into());
        };
        requires = deps.split_whitespace().map(str::to_string).collect();
        rest = after.trim_start();
    }
    let (ts, planner) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !is_timestamp(ts) {
        return Err("missing timestamp (YYYY-MM-DDTHH:MM:SSZ) after the name".into());
    }
    if !(planner.contains('<') && planner.trim_end().ends_with('>')) {
        return Err("missing planner name and <email>".into());
    }
    Ok(Some(Entry {
        head,
        requires,
        note,
    }))
}

pub fn parse(path: &Path, text: &str) -> Result<Plan, MigrationError> {
    let err = |line: usize, msg: String| MigrationError::at(Location::new(path, line, 1), msg);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut plan = Plan {
        project: read_pragmas(path, &mut lines)?,
        ..Plan::default()
    };
    // Since the last tag: change name → line (a duplicate there is an error).
    let mut since_tag: HashMap<String, usize> = HashMap::new();
    let mut tag_lines: HashMap<String, usize> = HashMap::new();
    let mut last_by_name: HashMap<String, usize> = HashMap::new();
    for (n, line) in lines {
        let Some(Entry {
            head,
            requires,
            note,
        }) = read_entry(line).map_err(|msg| err(n, msg))?
        else {
            continue;
        };
        if let Some(tag) = head.strip_prefix('@') {
            if !valid_name(tag) || tag.contains('/') {
                return Err(err(n, format!("invalid tag name \"{tag}\"")));
            }
            if !requires.is_empty() {
                return Err(err(n, "tags may not specify dependencies".into()));
            }
            if let Some(prev) = tag_lines.insert(tag.to_string(), n) {
                return Err(err(
                    n,
                    format!("tag \"{tag}\" duplicates earlier declaration on line {prev}"),
                ));
            }
            let Some(change) = plan.changes.last_mut() else {
                return Err(err(
                    n,
                    format!("tag \"{tag}\" declared without a preceding change"),
                ));
            };
            change.tags.push(tag.to_string());
            since_tag.clear();
            continue;
        }
        let name = match head.strip_prefix('+') {
            Some(name) => name,
            None if head.starts_with('-') => {
                return Err(err(
                    n,
                    "a `-change` (revert) line in the plan is not supported".into(),
                ))
            }
            None => head,
        };
        if !valid_name(name) || matches!(name, "HEAD" | "ROOT") {
            return Err(err(n, format!("invalid change name \"{name}\"")));
        }
        if let Some(prev) = since_tag.insert(name.to_string(), n) {
            return Err(err(
                n,
                format!("change \"{name}\" duplicates earlier declaration on line {prev}"),
            ));
        }
        if let Some(&earlier) = last_by_name.get(name) {
            // Reworked: the earlier instance's script is name@<tag>, the
            // tags after it (latest first), then its own.
            let mut tags: Vec<String> = plan.changes[earlier + 1..]
                .iter()
                .rev()
                .flat_map(|c| c.tags.clone())
                .collect();
            tags.extend(plan.changes[earlier].tags.clone());
            plan.changes[earlier].rework_tags = tags;
        }
        last_by_name.insert(name.to_string(), plan.changes.len());
        plan.changes.push(Change {
            name: name.to_string(),
            line: n,
            note: note.to_string(),
            requires,
            tags: Vec::new(),
            rework_tags: Vec::new(),
        });
    }
    check_dependencies(path, &plan)?;
    Ok(plan)
}

/// Sqitch's check_changes: a required change (of this project) must come
/// earlier in the plan; `change@tag` must come before that tag.
fn check_dependencies(path: &Path, plan: &Plan) -> Result<(), MigrationError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut tag_at: HashMap<&str, usize> = HashMap::new();
    for (i, c) in plan.changes.iter().enumerate() {
        for dep in &c.requires {
            if dep.starts_with('!') {
                continue; // a conflict, not checked (as Sqitch)
            }
            let dep = match dep.split_once(':') {
                Some((project, _)) if project != plan.project => continue,
                Some((_, d)) => d,
                None => dep.as_str(),
            };
            if dep.len() == 40 && dep.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue; // a change ID
            }
            let ok = match dep.split_once('@') {
                Some((change, tag)) => match (seen.get(change), tag_at.get(tag)) {
                    (Some(c), Some(t)) => c <= t,
                    (None, Some(_)) if change.is_empty() => true,
                    _ => false,
                },
                None => seen.contains_key(dep),
            };
            if !ok {
                let later = plan.changes[i..].iter().any(|x| x.name == dep);
                let why = if later {
                    format!("change \"{}\" is planned before the change \"{dep}\" it requires: move it below", c.name)
                } else {
                    format!("unknown change \"{dep}\" required by change \"{}\"", c.name)
                };
                return Err(MigrationError::at(Location::new(path, c.line, 1), why));
            }
        }
        seen.insert(&c.name, i);
        for t in &c.tags {
            tag_at.insert(t, i);
        }
    }
    Ok(())
}

/// The index of the change a Sqitch change spec names: `name`,
/// `name@tag` (the instance as of that tag), `@tag` (the change the tag is
/// on), `@HEAD`, `@ROOT`, each optionally followed by `~`/`^` (next /
/// previous: `~~`, `^3`).
pub fn resolve(plan: &Plan, spec: &str) -> Result<usize, String> {
    let (base, offset) = split_offset(spec);
    let idx = match base.split_once('@') {
        Some(("", "HEAD")) => plan.changes.len().checked_sub(1),
        Some(("", "ROOT")) => (!plan.changes.is_empty()).then_some(0),
        Some(("", tag)) => plan
            .changes
            .iter()
            .position(|c| c.tags.iter().any(|t| t == tag)),
        Some((name, tag)) => {
            let tag_idx = match tag {
                "HEAD" => plan.changes.len().checked_sub(1),
                "ROOT" => Some(0),
                _ => plan
                    .changes
                    .iter()
                    .position(|c| c.tags.iter().any(|t| t == tag)),
            }
            .ok_or_else(|| format!("unknown tag \"@{tag}\""))?;
            plan.changes[..=tag_idx]
                .iter()
                .rposition(|c| c.name == name)
        }
        None => {
            let all: Vec<usize> = (0..plan.changes.len())
                .filter(|&i| plan.changes[i].name == base)
                .collect();
            if all.len() > 1 {
                let qualified: Vec<String> = all
                    .iter()
                    .map(|&i| {
                        let tag = plan.changes[i..].iter().find_map(|c| c.tags.first());
                        format!("{base}@{}", tag.map_or("HEAD", String::as_str))
                    })
                    .collect();
                return Err(format!(
                    "change \"{base}\" is reworked, so ambiguous: name one instance with a tag ({})",
                    qualified.join(", ")
                ));
            }
            all.first().copied()
        }
    };
    let idx = idx.ok_or_else(|| format!("\"{base}\" is not in sqitch.plan"))?;
    let moved = idx as i64 + offset;
    usize::try_from(moved)
        .ok()
        .filter(|&i| i < plan.changes.len())
        .ok_or_else(|| format!("\"{spec}\" points outside sqitch.plan"))
}

fn split_offset(spec: &str) -> (&str, i64) {
    let trimmed = spec.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &spec[trimmed.len()..];
    for (sym, sign) in [('~', 1), ('^', -1)] {
        if let Some(base) = trimmed.strip_suffix(sym) {
            if !digits.is_empty() {
                return (base, sign * digits.parse::<i64>().unwrap_or(0));
            }
            let n = 1 + base.chars().rev().take_while(|&c| c == sym).count();
            return (base.trim_end_matches(sym), sign * n as i64);
        }
    }
    (spec, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "%syntax-version=1.0.0\n%project=shop\n\naccounts 2024-01-01T00:00:00Z Ann <ann@x.org> # the accounts\norders [accounts] 2024-01-02T00:00:00Z Ann <ann@x.org>\n@v1.0 2024-01-03T00:00:00Z Ann <ann@x.org>\n\ntouch [orders] 2024-02-01T00:00:00Z Ann <ann@x.org>\n@v1.1 2024-02-02T00:00:00Z Ann <ann@x.org>\ntouch [touch@v1.1] 2024-03-01T00:00:00Z Ann <ann@x.org>\n";

    #[test]
    fn parses_changes_tags_and_reworks() {
        let p = parse(Path::new("sqitch.plan"), PLAN).unwrap();
        assert_eq!(p.project, "shop");
        let names: Vec<&str> = p.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["accounts", "orders", "touch", "touch"]);
        assert_eq!(p.changes[0].note, "the accounts");
        assert_eq!(p.changes[1].requires, vec!["accounts"]);
        assert_eq!(p.changes[1].tags, vec!["v1.0"]);
        assert_eq!(p.changes[2].rework_tags, vec!["v1.1"]);
        assert!(p.changes[3].rework_tags.is_empty());
        assert_eq!(p.changes[3].line, 10);
    }

    #[test]
    fn resolves_change_specs_like_sqitch() {
        let p = parse(Path::new("sqitch.plan"), PLAN).unwrap();
        assert_eq!(resolve(&p, "orders"), Ok(1));
        assert_eq!(resolve(&p, "@v1.0"), Ok(1));
        assert_eq!(resolve(&p, "@v1.0~"), Ok(2));
        assert_eq!(resolve(&p, "@HEAD^^"), Ok(1));
        assert_eq!(resolve(&p, "@ROOT~2"), Ok(2));
        assert_eq!(resolve(&p, "touch@v1.1"), Ok(2));
        assert_eq!(resolve(&p, "touch@HEAD"), Ok(3));
        assert!(resolve(&p, "touch")
            .unwrap_err()
            .contains("ambiguous: name one instance with a tag (touch@v1.1, touch@HEAD)"));
        assert!(resolve(&p, "nothing")
            .unwrap_err()
            .contains("not in sqitch.plan"));
        assert!(resolve(&p, "@HEAD~").unwrap_err().contains("outside"));
    }

    #[test]
    fn plan_errors_name_the_line() {
        let bad = [
            ("%project=p\nx 2024-01-01T00:00:00Z A <a@b>\n", "sqitch.plan:2:1: invalid pragma"),
            ("%syntax-version=1.0.0\n\nx 2024-01-01T00:00:00Z A <a@b>\n", "sqitch.plan: missing %project"),
            ("%project=p\n\nx A <a@b>\n", "sqitch.plan:3:1: missing timestamp"),
            ("%project=p\n\nx 2024-01-01T00:00:00Z\n", "sqitch.plan:3:1: missing planner"),
            ("%project=p\n\n@t 2024-01-01T00:00:00Z A <a@b>\n", "sqitch.plan:3:1: tag \"t\" declared without a preceding change"),
            ("%project=p\n\nx 2024-01-01T00:00:00Z A <a@b>\nx 2024-01-01T00:00:00Z A <a@b>\n", "sqitch.plan:4:1: change \"x\" duplicates earlier declaration on line 3"),
            ("%project=p\n\nx [y] 2024-01-01T00:00:00Z A <a@b>\ny 2024-01-01T00:00:00Z A <a@b>\n", "sqitch.plan:3:1: change \"x\" is planned before the change \"y\""),
            ("%project=p\n\nx [nope] 2024-01-01T00:00:00Z A <a@b>\n", "sqitch.plan:3:1: unknown change \"nope\""),
        ];
        for (text, want) in bad {
            let e = parse(Path::new("sqitch.plan"), text)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        // Other projects' changes and conflicts are not checked.
        let ok = "%project=p\n\nx [other:y !z] 2024-01-01T00:00:00Z A <a@b>\n";
        assert!(parse(Path::new("sqitch.plan"), ok).is_ok());
    }
}
