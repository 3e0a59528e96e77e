//! One monotonic clock for the whole run, and the mapping of server
//! timestamps (pg_locks.waitstart, log lines) onto it.

use std::time::{Duration, Instant, SystemTime};

/// Milliseconds since run start. Cheap to copy into every task.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_wall: SystemTime,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
            start_wall: SystemTime::now(),
        }
    }

    /// A clock whose run started `ago`: tests replay a run's past.
    #[cfg(test)]
    pub(crate) fn started_ago(ago: Duration) -> Clock {
        Clock {
            start: Instant::now() - ago,
            start_wall: SystemTime::now() - ago,
        }
    }

    pub fn now_ms(&self) -> f64 {
        self.ms_of(Instant::now())
    }

    /// An instant as ms since run start (negative before the start).
    pub fn ms_of(&self, t: Instant) -> f64 {
        if t >= self.start {
            t.duration_since(self.start).as_secs_f64() * 1e3
        } else {
            -(self.start.duration_since(t).as_secs_f64() * 1e3)
        }
    }

    pub fn instant_at(&self, ms: f64) -> Instant {
        self.start + Duration::from_secs_f64(ms.max(0.0) / 1e3)
    }

    pub fn start_instant(&self) -> Instant {
        self.start
    }

    /// Wall time of the run start.
    pub fn start_wall(&self) -> SystemTime {
        self.start_wall
    }

    /// UTC wall time of the run start, RFC 3339 to the microsecond (other
    /// processes on this machine can put their own readings on the run
    /// clock with it, as the lock tests' witness does).
    pub fn started_at(&self) -> String {
        chrono::DateTime::<chrono::Utc>::from(self.start_wall)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }
}

/// Maps server wall-clock timestamps onto the run clock.
///
/// Measured, not assumed: the server and this process may disagree on wall
/// time (a container, a remote server). We ask the server for
/// `clock_timestamp()` several times and keep the sample with the shortest
/// round trip; the server read happened somewhere inside that round trip, so
/// the offset is known to ± half of it.
#[derive(Debug, Clone, Copy)]
pub struct ServerClock {
    /// server epoch-ms minus run-ms at the same instant.
    offset_ms: f64,
    /// Half the best round trip: the uncertainty of the mapping.
    pub uncertainty_ms: f64,
}

impl ServerClock {
    pub async fn measure(
        client: &tokio_postgres::Client,
        clock: &Clock,
    ) -> crate::Result<ServerClock> {
        let stmt = client
            .prepare("SELECT (extract(epoch from clock_timestamp()) * 1000)::float8")
            .await?;
        let mut best: Option<(f64, f64)> = None; // (rtt, offset)
                                                 // The best of many round trips: on a loaded machine most take
                                                 // several ms, and the best one bounds the offset's uncertainty
                                                 // (every lock time carries it). Enough once one is this quick.
        for _ in 0..100 {
            if best.is_some_and(|(r, _)| r < 0.2) {
                break;
            }
            let t0 = clock.now_ms();
            let row = client.query_one(&stmt, &[]).await?;
            let t1 = clock.now_ms();
            let server_ms: f64 = row.get(0);
            let rtt = t1 - t0;
            let offset = server_ms - (t0 + t1) / 2.0;
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset_ms) = best.expect("at least one sample");
        Ok(ServerClock {
            offset_ms,
            uncertainty_ms: rtt / 2.0,
        })
    }

    /// A server timestamp (ms since the Unix epoch) as run-ms.
    pub fn to_run_ms(&self, server_epoch_ms: f64) -> f64 {
        server_epoch_ms - self.offset_ms
    }

    /// For tests and for targets where server and client share a clock.
    pub fn identity(clock: &Clock) -> ServerClock {
        let wall = clock
            .start_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3;
        ServerClock {
            offset_ms: wall,
            uncertainty_ms: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_are_monotonic_and_relative() {
        let c = Clock::start();
        let a = c.now_ms();
        std::thread::sleep(Duration::from_millis(5));
        let b = c.now_ms();
        assert!(a >= 0.0 && b >= a + 4.0, "{a} {b}");
        let i = c.instant_at(b);
        assert!((c.ms_of(i) - b).abs() < 0.01);
    }

    #[test]
    fn identity_maps_wall_time_to_run_time() {
        let c = Clock::start();
        let sc = ServerClock::identity(&c);
        let now_wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1e3;
        let mapped = sc.to_run_ms(now_wall);
        assert!((mapped - c.now_ms()).abs() < 50.0, "{mapped}");
    }
}
