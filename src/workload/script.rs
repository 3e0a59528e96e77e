//! A one-off session at a set time: each statement is reported as a request
//! of the script (query label = script name, app = `script`).

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{PidOwner, PidRegistry, SessionLost, SCRIPT_NAME_PREFIX};
use crate::backend::ConnInfo;
use crate::clock::Clock;
use crate::latency::{AppError, ClientLog};
use crate::scenario::ScriptPlan;

pub(super) struct ScriptTask {
    pub script: ScriptPlan,
    /// Its index among the recorder's queries.
    pub index: u16,
    pub conn: ConnInfo,
    pub clock: Clock,
    pub log: Arc<ClientLog>,
    pub stop: CancellationToken,
    pub abort: CancellationToken,
    pub pids: PidRegistry,
    pub lost: SessionLost,
}

impl ScriptTask {
    pub async fn run(self) {
        let at = self.clock.instant_at(0.0) + self.script.at;
        tokio::select! {
            _ = self.stop.cancelled() => {
                // Said, not silently skipped: its `at` was later than the
                // traffic lasted.
                crate::say!(
                    "pgrehearse: script `{}` (at {}) never ran: the traffic ended at {} ms, before its time",
                    self.script.name,
                    crate::scenario::fmt_duration(self.script.at),
                    self.clock.now_ms().round()
                );
                return;
            }
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let mut cfg = self.conn.config();
        cfg.application_name(format!("{SCRIPT_NAME_PREFIX}{}", self.script.name));
        let client = match self.conn.open(&cfg).await {
            Ok(c) => c,
            Err(e) => {
                // Not an app error: the rehearsal would go on without the
                // session the scenario is about (a long reader, say) and
                // report another scenario. It stops, saying why.
                self.lost.set(format!(
                    "script `{}` could not connect at {}: {}; the rehearsal without it \
                     would not be the scenario's",
                    self.script.name,
                    crate::scenario::fmt_duration(self.script.at),
                    crate::pg::error_text(&e)
                ));
                self.abort.cancel();
                return;
            }
        };
        if let Ok(row) = client.query_one("SELECT pg_backend_pid()", &[]).await {
            self.pids
                .insert(row.get(0), PidOwner::Script(self.script.name.clone()));
        }
        let cancel = client.cancel_token();
        for sql in &self.script.sql {
            let sent = Instant::now();
            self.log.begin(sent, sent);
            let r = tokio::select! {
                r = client.simple_query(sql) => Some(r),
                _ = self.abort.cancelled() => None,
            };
            let Some(r) = r else {
                self.log.abandon(self.index, Instant::now());
                self.conn.cancel(&cancel).await;
                return;
            };
            let err = r.err().map(|e| AppError::from_pg(&e));
            self.log.end(self.index, sent, sent, Instant::now(), err);
        }
    }
}
