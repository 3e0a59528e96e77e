//! Statements that set a session setting, read the way the server reads
//! them: `SET [SESSION | LOCAL] name { = | TO } value`, `RESET name`,
//! `RESET ALL`, `SELECT set_config('name', 'value', is_local)`. A migration
//! file that sets its own `lock_timeout` this way has one, even though the
//! scenario gives its step none.

use super::{tokens, TokenKind};

/// What a statement does to setting `name` (lowercase): None when it does
/// not touch it; `Some(None)` when it turns it off (RESET, DEFAULT, 0);
/// `Some(Some(ms))` when it sets a time in milliseconds.
pub fn time_setting(sql: &str, name: &str) -> Option<Option<f64>> {
    // Most statements name neither: skip tokenizing them (a backfill step
    // has thousands).
    let lower = sql.to_ascii_lowercase();
    if !lower.contains(name) && !lower.contains("reset") {
        return None;
    }
    let toks: Vec<(TokenKind, &str)> = tokens(sql)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment))
        .map(|t| (t.kind, &sql[t.start..t.end]))
        .collect();
    let word = |i: usize| {
        toks.get(i)
            .filter(|t| t.0 == TokenKind::Word)
            .map(|t| t.1.to_ascii_lowercase())
    };
    match word(0).as_deref() {
        Some("reset") => match word(1).as_deref() {
            Some("all") => Some(None),
            Some(n) if n == name => Some(None),
            _ => None,
        },
        Some("set") => {
            let mut i = 1;
            if matches!(word(i).as_deref(), Some("session" | "local")) {
                i += 1;
            }
            if word(i).as_deref() != Some(name) {
                return None;
            }
            let is_to = word(i + 1).as_deref() == Some("to");
            let is_eq = toks.get(i + 1).is_some_and(|t| t.1 == "=");
            if !is_to && !is_eq {
                return None;
            }
            let rest = toks.get(i + 2)?;
            let value = sql[offset(sql, rest.1)..]
                .trim()
                .trim_end_matches(';')
                .trim();
            Some(time_value(value))
        }
        Some("do") => in_do_block(&toks, name).map(|(v, _)| v),
        Some("select") if word(1).as_deref() == Some("set_config") => {
            // set_config('lock_timeout', '1s', false): two string literals.
            let strings: Vec<&str> = toks
                .iter()
                .filter(|t| t.0 == TokenKind::String)
                .map(|t| t.1)
                .collect();
            let [n, v, ..] = strings.as_slice() else {
                return None;
            };
            (unquote(n).eq_ignore_ascii_case(name)).then(|| time_value(v))
        }
        _ => None,
    }
}

/// [`time_setting`] for what outlives the transaction it runs in: None for
/// `SET LOCAL` and `set_config(..., true)`, which end with it.
pub fn session_time_setting(sql: &str, name: &str) -> Option<Option<f64>> {
    let setting = time_setting(sql, name)?;
    if let Some((_, local)) = do_block_setting(sql, name) {
        return (!local).then_some(setting);
    }
    let words: Vec<String> = tokens(sql)
        .into_iter()
        .filter(|t| t.kind == TokenKind::Word)
        .map(|t| sql[t.start..t.end].to_ascii_lowercase())
        .collect();
    let local = match words.first().map(String::as_str) {
        Some("set") => words.get(1).is_some_and(|w| w == "local"),
        // set_config(name, value, is_local): its last word.
        Some("select") => words.last().is_some_and(|w| w == "true"),
        _ => false,
    };
    (!local).then_some(setting)
}

/// A DO block's body setting `name` (QA: a retry loop's
/// `set_config('lock_timeout', '100ms', true)` was read as no lock_timeout
/// at all, and a `no_lock_timeout` finding said the step would wait without
/// bound): the first `SET [LOCAL|SESSION] name = / TO value` or
/// `set_config('name', 'value', is_local)` in its body, as (the time, set
/// only for the transaction).
fn do_block_setting(sql: &str, name: &str) -> Option<(Option<f64>, bool)> {
    let toks: Vec<(TokenKind, &str)> = tokens(sql)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::Whitespace | TokenKind::Comment))
        .map(|t| (t.kind, &sql[t.start..t.end]))
        .collect();
    let first = toks.first().filter(|t| t.0 == TokenKind::Word)?;
    if !first.1.eq_ignore_ascii_case("do") {
        return None;
    }
    in_do_block(&toks, name)
}

fn in_do_block(toks: &[(TokenKind, &str)], name: &str) -> Option<(Option<f64>, bool)> {
    static SETS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(?is)\bset\s+(local\s+|session\s+)?([a-z_]+)\s*(?:=|\bto\b)\s*('[^']*'|[0-9.]+[a-z]*)|\bset_config\s*\(\s*'([a-z_]+)'\s*,\s*'([^']*)'\s*,\s*(true|false)",
        )
        .expect("a valid regex")
    });
    let body = toks.iter().find_map(|t| match t.0 {
        TokenKind::DollarString => {
            let open = t.1[1..].find('$')? + 2;
            Some(t.1.get(open..t.1.len().checked_sub(open)?)?.to_string())
        }
        TokenKind::String => Some(t.1.trim_matches('\'').replace("''", "'")),
        _ => None,
    })?;
    SETS.captures_iter(&body).find_map(|c| {
        if c.get(2)
            .is_some_and(|n| n.as_str().eq_ignore_ascii_case(name))
        {
            let local = c
                .get(1)
                .is_some_and(|l| l.as_str().trim().eq_ignore_ascii_case("local"));
            Some((time_value(c.get(3)?.as_str()), local))
        } else if c
            .get(4)
            .is_some_and(|n| n.as_str().eq_ignore_ascii_case(name))
        {
            let local = c
                .get(6)
                .is_some_and(|l| l.as_str().eq_ignore_ascii_case("true"));
            Some((time_value(c.get(5)?.as_str()), local))
        } else {
            None
        }
    })
}

/// The byte offset of `part` (a slice of `whole`) in `whole`.
fn offset(whole: &str, part: &str) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('\'')
}

/// A time setting's value in milliseconds (the server's default unit for
/// lock_timeout and statement_timeout); None for DEFAULT, 0 or a value the
/// server would refuse.
fn time_value(raw: &str) -> Option<f64> {
    let v = unquote(raw).trim();
    if v.eq_ignore_ascii_case("default") {
        return None;
    }
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "us" => 1e-3,
        "s" => 1e3,
        "min" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        _ => return None,
    };
    Some(n * scale).filter(|ms| *ms > 0.0)
}

#[cfg(test)]
mod tests {
    use super::{session_time_setting, time_setting};

    #[test]
    fn what_outlives_its_transaction() {
        let lt = |sql: &str| session_time_setting(sql, "lock_timeout");
        assert_eq!(lt("SET lock_timeout = '1s'"), Some(Some(1000.0)));
        assert_eq!(lt("SET SESSION lock_timeout TO 500"), Some(Some(500.0)));
        assert_eq!(lt("RESET lock_timeout"), Some(None));
        assert_eq!(
            lt("SELECT set_config('lock_timeout', '3s', false)"),
            Some(Some(3000.0))
        );
        assert_eq!(lt("SET LOCAL lock_timeout = '1s'"), None);
        assert_eq!(lt("SELECT set_config('lock_timeout', '3s', true)"), None);
        assert_eq!(lt("SET statement_timeout = '1s'"), None);
        // A DO block's: what it sets for the transaction only, and what
        // outlives it.
        let local = "DO $$ BEGIN PERFORM set_config('lock_timeout', '100ms', true); \
                     LOCK TABLE t; END $$";
        assert_eq!(time_setting(local, "lock_timeout"), Some(Some(100.0)));
        assert_eq!(lt(local), None);
        let session = "DO $body$ BEGIN SET lock_timeout TO '2s'; LOCK TABLE t; END $body$";
        assert_eq!(lt(session), Some(Some(2000.0)));
        let set_local = "DO 'BEGIN SET LOCAL lock_timeout = ''50ms''; END'";
        assert_eq!(time_setting(set_local, "lock_timeout"), Some(Some(50.0)));
        assert_eq!(
            time_setting("DO $$ BEGIN LOCK TABLE t; END $$", "lock_timeout"),
            None
        );
    }

    #[test]
    fn reads_the_forms_the_server_accepts() {
        let lt = |sql: &str| time_setting(sql, "lock_timeout");
        assert_eq!(lt("SET lock_timeout = '1s'"), Some(Some(1000.0)));
        assert_eq!(lt("set local LOCK_TIMEOUT to 500"), Some(Some(500.0)));
        assert_eq!(
            lt("SET SESSION lock_timeout TO '2min';"),
            Some(Some(120_000.0))
        );
        assert_eq!(
            lt("-- keep it short\nSET lock_timeout = '250ms'"),
            Some(Some(250.0))
        );
        assert_eq!(lt("SET lock_timeout = '1.5s'"), Some(Some(1500.0)));
        assert_eq!(lt("SET lock_timeout = 0"), Some(None));
        assert_eq!(lt("SET lock_timeout TO DEFAULT"), Some(None));
        assert_eq!(lt("RESET lock_timeout"), Some(None));
        assert_eq!(lt("RESET ALL"), Some(None));
        assert_eq!(
            lt("SELECT set_config('lock_timeout', '3s', true)"),
            Some(Some(3000.0))
        );
        // Not lock_timeout, or not a setting at all.
        assert_eq!(lt("SET statement_timeout = '1s'"), None);
        assert_eq!(lt("RESET statement_timeout"), None);
        assert_eq!(lt("SELECT set_config('search_path', 'x', false)"), None);
        assert_eq!(lt("ALTER TABLE t ADD COLUMN lock_timeout int"), None);
        assert_eq!(lt("UPDATE t SET lock_timeout = 5"), None);
        assert_eq!(lt("SET lock_timeout = '5 parsecs'"), Some(None));
    }
}
