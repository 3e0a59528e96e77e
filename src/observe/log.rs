//! The server log of a server we own, followed for the `log_lock_waits`
//! "acquired ... after X ms" lines of the migration's session: the exact
//! moment a lock it waited for was granted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{LogAcquired, ObserverCtx};
use crate::clock::ServerClock;

/// Follow the server log for `log_lock_waits` "acquired" lines.
pub(super) async fn tail_log(file: tokio::fs::File, ctx: Arc<ObserverCtx>) -> Vec<LogAcquired> {
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) => {
                if ctx.stop.is_cancelled() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => {
                // Only the migration's own lines are used (lock_rows); app
                // waits log one line each, so keeping those too would grow
                // with the run. The migration pid is known before it waits.
                let mig_pid = ctx.migration.pid.load(Ordering::Relaxed);
                if let Some(a) = parse_acquired(&line, &ctx.server_clock)
                    .filter(|a| mig_pid != 0 && a.pid == mig_pid)
                {
                    out.push(a);
                }
            }
            Err(_) => break,
        }
    }
    out
}

/// Parse `2026-01-01 10:00:00.123 UTC [123] LOG:  process 123 acquired
/// ShareLock on relation 16385 of database 5 after 1500.250 ms`.
pub fn parse_acquired(line: &str, sc: &ServerClock) -> Option<LogAcquired> {
    let idx = line.find("acquired ")?;
    let head = &line[..idx];
    let rest = &line[idx + "acquired ".len()..];
    let pid: i32 = head.rsplit("process ").next()?.trim().parse().ok()?;
    let (mode, rest) = rest.split_once(" on ")?;
    let (tag, after) = rest.rsplit_once(" after ")?;
    let after_ms: f64 = after.trim().trim_end_matches("ms").trim().parse().ok()?;
    let relation_oid = tag
        .strip_prefix("relation ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|o| o.parse().ok());
    // The line prefix starts with %m: "YYYY-MM-DD HH:MM:SS.mmm UTC".
    let ts = line.get(..23)?;
    let naive = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.3f").ok()?;
    let epoch_ms = naive.and_utc().timestamp_micros() as f64 / 1000.0;
    Some(LogAcquired {
        pid,
        mode: mode.trim().to_string(),
        relation_oid,
        locktag: tag.trim().to_string(),
        at_ms: sc.to_run_ms(epoch_ms),
        after_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn parses_acquired_lines() {
        let clock = Clock::start();
        let sc = ServerClock::identity(&clock);
        let l = "2026-01-01 10:00:00.123 UTC [4242] LOG:  process 4242 acquired AccessExclusiveLock on relation 16385 of database 5 after 1500.250 ms\n";
        let a = parse_acquired(l, &sc).unwrap();
        assert_eq!(a.pid, 4242);
        assert_eq!(a.mode, "AccessExclusiveLock");
        assert_eq!(a.relation_oid, Some(16385));
        assert!((a.after_ms - 1500.25).abs() < 1e-9);
        let t = "2026-01-01 10:00:00.123 UTC [77] LOG:  process 77 acquired ShareLock on transaction 1234 after 12.000 ms";
        let b = parse_acquired(t, &sc).unwrap();
        assert_eq!(b.relation_oid, None);
        assert_eq!(b.locktag, "transaction 1234");
        assert!(parse_acquired(
            "2026-01-01 10:00:00.123 UTC [77] LOG:  checkpoint starting",
            &sc
        )
        .is_none());
        assert!(parse_acquired("garbage acquired", &sc).is_none());
    }
}
