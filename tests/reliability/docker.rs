//! The docker backend: its generated password, and no container left behind.

use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::harness::*;

/// One docker test at a time: on the vfs storage driver every container
/// creation copies the whole image, and parallel copies make each one slow.
static DOCKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `test` with the image on a blocking thread, one docker test at a
/// time; None when there is no image or engine (see
/// `common::docker_image_or_notice`).
pub async fn on_docker<T: Send + 'static>(
    test: impl FnOnce(String) -> T + Send + 'static,
) -> Option<T> {
    let _one_at_a_time = DOCKER.lock().await;
    let image = common::docker_image_or_notice().await?;
    Some(
        tokio::task::spawn_blocking(move || test(image))
            .await
            .unwrap(),
    )
}

/// The POSTGRES_PASSWORD of the container a pgrehearse process started.
fn container_password(pid: u32) -> Option<String> {
    let id = common::containers_of_pid(pid)
        .first()?
        .split_whitespace()
        .next()?
        .to_string();
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{range .Config.Env}}{{println .}}{{end}}",
            &id,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_password_appears_nowhere_and_no_container_is_left() {
    let Some((run, password)) = on_docker(|image| {
        let mut r = Rehearsal::start(
            "sql-error.toml",
            &["--backend", "docker", "--image", &image, "-v"],
            &[],
        );
        let pid = r.pid();
        let mut password = None;
        r.wait_until("the container", Duration::from_secs(300), |_| {
            password = container_password(pid);
            password.is_some()
        });
        (r.finish(Duration::from_secs(300)), password.unwrap())
    })
    .await
    else {
        return;
    };
    assert!(password.len() >= 16, "a generated password");
    run.assert_code(4);
    let (dir, rec) = run.record();
    run.assert_report_written(&dir, "42P01");
    assert_eq!(rec.info.as_ref().unwrap().backend, "docker");
    let leaks = where_is(&password, &dir, &run);
    assert!(leaks.is_empty(), "the password appears in {leaks:?}");
    run.assert_nothing_left();
}

/// The 30 s step on the docker backend, quiet.
fn long_step_on_docker(image: &str) -> Rehearsal {
    Rehearsal::start(
        "long-step.toml",
        &["--backend", "docker", "--image", image, "-q"],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_docker_run_removes_the_container() {
    on_docker(|image| {
        let mut r = long_step_on_docker(&image);
        let pid = r.pid();
        // The container exists (it may still be starting), the rehearsal
        // has not begun: interrupt.
        r.wait_until("the container", Duration::from_secs(300), |_| {
            !common::containers_of_pid(pid).is_empty()
        });
        r.signal_in_stage("TERM", "the container", Duration::from_secs(300), |r| {
            !common::containers_of_pid(pid).is_empty() && !r.has_run_dir()
        });
        let run = interrupted(r, 143);
        assert!(run.run_dir().is_none(), "interrupted before the rehearsal");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_early_in_a_docker_start_leaves_no_container() {
    on_docker(|image| {
        let mut r = long_step_on_docker(&image);
        let pid = r.pid();
        // As soon as the run handles signals, before its container exists:
        // it is asking the engine for one, which the engine goes on creating
        // (seconds on vfs) after the client gave up.
        r.wait_until("the signal handlers", Duration::from_secs(60), |_| {
            catches_signals(pid)
        });
        r.signal_in_stage("INT", "no container yet", Duration::from_secs(5), |_| {
            common::containers_of_pid(pid).is_empty()
        });
        let run = interrupted(r, 130);
        assert!(run.run_dir().is_none(), "interrupted before the rehearsal");
    })
    .await;
}
