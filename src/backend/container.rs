//! What every container pgrehearse starts shares (the primary in
//! `docker.rs`, the replica in `docker_standby.rs`): its label, how long its
//! start may take, its removal (quick once interrupted), the guard that
//! removes a container whose start did not finish, and image references.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testcontainers::{ContainerAsync, GenericImage};

use crate::error::{Error, Result};

/// Every container we start carries `pgrehearse.pid=<our pid>`, so leftovers
/// can be traced to the process that made them.
pub const PID_LABEL: &str = "pgrehearse.pid";
/// Container creation on a vfs storage driver copies the whole image.
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// Set when the process was interrupted (Ctrl-C, SIGTERM): it has seconds to
/// exit, and removing a container can take that long (the vfs storage
/// driver deletes a full copy of the image). A removal the engine has
/// received is completed by the engine, so from then on we request removals
/// and wait for them at most [`INTERRUPTED_REMOVAL_WAIT`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
const INTERRUPTED_REMOVAL_WAIT: Duration = Duration::from_secs(2);

/// Was the process interrupted? (Removals are then requested, not awaited.)
pub(super) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// See `INTERRUPTED`: called by the signal handler.
pub fn stop_waiting_for_removals() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Remove a container; once interrupted, without waiting for the engine to
/// finish. (If we stop waiting, `ContainerAsync`'s own drop asks again and
/// gets a quick "removal already in progress".)
pub(super) async fn remove(container: Box<ContainerAsync<GenericImage>>) -> Result<()> {
    let id = container.id().to_string();
    let rm = container.rm();
    let done = if INTERRUPTED.load(Ordering::SeqCst) {
        match tokio::time::timeout(INTERRUPTED_REMOVAL_WAIT, rm).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    } else {
        rm.await
    };
    done.map_err(|e| Error::Other(anyhow::anyhow!("could not remove container {id}: {e}")))
}

/// Removes the container called `name` when dropped armed.
///
/// testcontainers removes a container only once it has handed it back, so a
/// start that fails or times out after the creation, or that is abandoned
/// (Ctrl-C), would leave it. Worse, an abandoned creation keeps running in
/// the engine: the container may appear a moment later (seconds on the vfs
/// storage driver). So while a creation may be pending, wait for it — unless
/// the engine's events show the container was already destroyed (the start
/// got as far as testcontainers' own drop guard).
pub(super) struct CreatedGuard {
    name: String,
    pub(super) armed: bool,
    /// `start` has not returned yet: a creation may be in flight.
    pub(super) pending: bool,
    /// When the start began (unix seconds), for the events query.
    since: i64,
}

impl CreatedGuard {
    /// Armed, with a creation of container `name` about to be in flight.
    pub(super) fn new(name: String) -> CreatedGuard {
        CreatedGuard {
            name,
            armed: true,
            pending: true,
            since: chrono::Utc::now().timestamp() - 1,
        }
    }
}

/// How long an abandoned creation may take to produce its container: a
/// vfs copy of the image on a busy disk takes seconds. Bounded so that a
/// Ctrl-C still ends the process within 10 s.
const ABANDONED_CREATE_WAIT: Duration = Duration::from_secs(8);

impl Drop for CreatedGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (name, pending, since) = (self.name.clone(), self.pending, self.since);
        // Own thread and runtime: we may be inside or outside a runtime.
        super::block_on_own_thread(remove_created(name, pending, since));
    }
}

async fn remove_created(name: String, pending: bool, since: i64) {
    use testcontainers::bollard::errors::Error as DockerError;
    use testcontainers::bollard::query_parameters::RemoveContainerOptions;
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() else {
        return;
    };
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    let deadline = Instant::now() + ABANDONED_CREATE_WAIT;
    loop {
        // Once the engine has the request it completes the removal even if
        // we stop waiting (which on vfs can take seconds): don't wait long.
        let removed = tokio::time::timeout(
            Duration::from_secs(2),
            docker.remove_container(&name, Some(options.clone())),
        )
        .await;
        if removed.is_err() {
            return;
        }
        let missing = matches!(
            removed,
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 404,
                ..
            }))
        );
        if !missing || !pending || was_destroyed(&docker, &name, since).await {
            return;
        }
        if Instant::now() > deadline {
            crate::say!(
                "pgrehearse: warning: the Docker engine was still creating container {name} \
                 when we gave up waiting; if it appears, remove it with `docker rm -f {name}`"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Did the engine destroy a container called `name` since `since`?
async fn was_destroyed(docker: &testcontainers::bollard::Docker, name: &str, since: i64) -> bool {
    use futures_util::StreamExt;
    let options = testcontainers::bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        // Fractional "now": a whole second would make the engine hold the
        // stream open until that second has passed.
        until: Some(format!(
            "{:.6}",
            chrono::Utc::now().timestamp_micros() as f64 / 1e6
        )),
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("container".to_string(), vec![name.to_string()]),
            ("event".to_string(), vec!["destroy".to_string()]),
        ])),
    };
    let first = tokio::time::timeout(
        Duration::from_secs(3),
        docker.events(Some(options)).boxed().next(),
    )
    .await;
    matches!(first, Ok(Some(Ok(_))))
}

/// `registry:5000/team/pg:15` → (`registry:5000/team/pg`, `15`); no tag → `latest`.
pub(super) fn split_image(image: &str) -> (String, String) {
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            image[last_slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn splits_image_references() {
        let s = |i: &str| {
            let (n, t) = split_image(i);
            format!("{n} {t}")
        };
        assert_eq!(s("postgres:17"), "postgres 17");
        assert_eq!(s("pgrehearse/postgres:15"), "pgrehearse/postgres 15");
        assert_eq!(
            s("registry:5000/team/pg:15.4"),
            "registry:5000/team/pg 15.4"
        );
        assert_eq!(s("registry:5000/team/pg"), "registry:5000/team/pg latest");
        assert_eq!(s("postgres"), "postgres latest");
    }
}
