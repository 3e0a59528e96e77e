//! A run with a streaming replica tears both servers down on every exit
//! path: a signal while the replica is made and during the migration, a
//! failing migration, and a replica that cannot be made at all (exit 3).
//! Nothing is left: no postgres process (the standby runs from the same
//! temp dir), no temp dir, no container, no Docker network.

use std::time::Duration;

use crate::harness::*;

fn with_replica(fixture: &str) -> Rehearsal {
    Rehearsal::start(fixture, &["--backend", "local", "-q", "--replica"], &[])
}

#[test]
fn sigint_during_the_migration_stops_primary_and_replica() {
    let mut r = with_replica("long-step.toml");
    let sleep_sent = |tmp: &std::path::Path| server_log_has(tmp, "statement: SELECT pg_sleep(30)");
    r.wait_until(
        "the 30 s sleep on the server",
        Duration::from_secs(120),
        sleep_sent,
    );
    // Both postmasters run from the temp dir while the step sleeps.
    let running = crate::common::postgres_processes_under(r.tmp.path());
    assert!(
        running.iter().filter(|p| p.contains(" -D ")).count() >= 2,
        "a primary and a standby: {running:#?}"
    );
    r.signal_in_stage("INT", "the sleep", Duration::from_secs(5), |r| {
        sleep_sent(r.tmp.path())
    });
    let run = interrupted(r, 130);
    let (dir, rec) = run.record();
    run.assert_report_written(&dir, "interrupted by SIGINT");
    let replica = rec
        .info
        .unwrap()
        .replica
        .expect("run.json names the replica");
    assert!(replica.contains("hot standby"), "{replica}");
}

#[test]
fn sigterm_while_the_replica_is_made_exits_143_and_leaves_nothing() {
    let mut r = with_replica("long-step.toml");
    // pg_basebackup has begun writing the replica's directory; the standby
    // has not started.
    r.signal_in_stage("TERM", "pg_basebackup", Duration::from_secs(60), |r| {
        cluster_dir(r.tmp.path())
            .is_some_and(|d| d.join("replica").exists() && !d.join("replica.log").exists())
    });
    let run = interrupted(r, 143);
    assert!(run.run_dir().is_none(), "interrupted before the rehearsal");
}

#[test]
fn a_failing_migration_with_a_replica_exits_4_and_leaves_nothing() {
    let run = with_replica("sql-error.toml").finish(Duration::from_secs(180));
    run.assert_code(4);
    let (dir, _) = run.record();
    run.assert_report_written(&dir, "42P01");
    run.assert_nothing_left();
}

#[test]
fn a_replica_that_cannot_be_made_exits_3_and_leaves_nothing() {
    let run = Rehearsal::local("no-wal-senders.toml").finish(Duration::from_secs(120));
    run.assert_code(3);
    assert!(
        run.stderr.contains("pg_basebackup") && run.stderr.contains("max_wal_senders"),
        "{}",
        run.stderr
    );
    assert!(
        run.run_dir().is_none(),
        "nothing rehearsed, no run directory"
    );
    run.assert_nothing_left();
}

#[cfg(feature = "docker")]
mod docker {
    use super::*;
    use crate::common;
    use crate::docker::on_docker;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_during_a_docker_run_with_a_replica_removes_both_and_the_network() {
        on_docker(|image| {
            let mut r = Rehearsal::start(
                "long-step.toml",
                &["--backend", "docker", "--image", &image, "-q", "--replica"],
                &[],
            );
            let pid = r.pid();
            // Both containers and the network exist (the replica may still
            // be catching up): interrupt then.
            r.signal_in_stage(
                "TERM",
                "primary and replica",
                Duration::from_secs(300),
                |_| {
                    common::containers_of_pid(pid).len() >= 2
                        && common::networks_of_pid(pid).len() == 1
                },
            );
            interrupted(r, 143);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_docker_replica_that_cannot_be_made_exits_3_and_leaves_nothing() {
        let Some(run) = on_docker(|image| {
            Rehearsal::start(
                "no-wal-senders.toml",
                &["--backend", "docker", "--image", &image, "-q"],
                &[],
            )
            .finish(Duration::from_secs(300))
        })
        .await
        else {
            return;
        };
        run.assert_code(3);
        assert!(run.stderr.contains("max_wal_senders"), "{}", run.stderr);
        run.assert_nothing_left();
    }
}
