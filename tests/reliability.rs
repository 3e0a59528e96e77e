//! Failures, interruptions and safety, through the real binary against real
//! Postgres: a failing migration, a server that dies mid-run, SIGINT/SIGTERM
//! at different moments, the url backend on a server with data of its own,
//! secrets, and how exposed a local cluster is. After every run: nothing
//! left behind (no postgres process, no temp dir, no container, no scratch
//! database).

mod common;
#[path = "reliability/harness.rs"]
mod harness;

#[cfg(feature = "docker")]
#[path = "reliability/docker.rs"]
mod docker;
#[path = "reliability/exposure.rs"]
mod exposure;
#[path = "reliability/failures.rs"]
mod failures;
#[path = "reliability/replica.rs"]
mod replica;
#[path = "reliability/signals.rs"]
mod signals;
#[path = "reliability/url.rs"]
mod url;
