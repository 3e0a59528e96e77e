//! pgrehearse as a library, as a user's own test would use it: a scenario
//! from a string, [`pgrehearse::rehearse`] on an ephemeral local cluster,
//! assertions on the typed result; and a stop the caller controls.

use std::time::Duration;

use pgrehearse::{rehearse, rehearse_until, scenario, Blocks, RunOptions};

const SCENARIO: &str = r#"
name = "library"
[[table]]
name = "orders"
rows = 5_000
create = "CREATE TABLE orders (id bigint PRIMARY KEY, status int NOT NULL)"
[table.columns]
id = { gen = "sequence" }
status = { gen = "int", min = 0, max = 5 }
[workload]
clients = 2
rate = 200
before = "300ms"
after = "300ms"
[[workload.query]]
name = "update_status"
sql = "UPDATE orders SET status = $2 WHERE id = $1"
params = [{ gen = "fk", table = "orders" }, { gen = "int", min = 0, max = 5 }]
[budget]
max_blocking_lock_ms = 100
[[phase]]
name = "expand"
[[phase.step]]
name = "naive index"
sql = "LOCK orders IN SHARE MODE; SELECT pg_sleep(0.3); CREATE INDEX orders_status ON orders (status)"
[[phase.step]]
name = "safe index"
sql = "CREATE INDEX CONCURRENTLY orders_status2 ON orders (status)"
transaction = false
"#;

fn load() -> scenario::Scenario {
    scenario::load_str(
        "library.toml".as_ref(),
        SCENARIO.as_bytes(),
        &Default::default(),
    )
    .unwrap()
}

/// The naive step holds a lock that blocks writes for 300 ms, and the app
/// waits behind it; the safe one blocks nobody. Both said in types.
#[tokio::test]
async fn a_test_asserts_on_what_each_step_did_to_the_app() {
    let out = tempfile::tempdir().unwrap();
    let r = rehearse(&load(), &RunOptions::local(out.path()))
        .await
        .unwrap();
    assert_eq!(r.exit_code, 1, "{}", r.summary());
    assert!(!r.passed());
    assert!(
        r.summary().contains("max_blocking_lock_ms"),
        "{}",
        r.summary()
    );
    let naive = r.step("expand", "naive index").unwrap();
    let hold = naive
        .longest_blocking_lock
        .as_ref()
        .expect("the naive step's SHARE lock");
    assert_eq!(
        (hold.relation.as_str(), hold.mode.as_str()),
        ("orders", "ShareLock")
    );
    assert!(hold.held_ms.unwrap() >= 250.0, "{hold:?}");
    assert!(naive.worst_app_wait.as_ref().unwrap().wait_ms >= 100.0);
    let safe = r.step("expand", "safe index").unwrap();
    assert!(safe.longest_blocking_lock.is_none(), "{safe:?}");
    assert!(r.locks_of(safe).all(|l| l.blocks == Blocks::None));
    assert!(r
        .locks_of(safe)
        .any(|l| l.mode == "ShareUpdateExclusiveLock"));
    assert!(!r.app_waits().is_empty());
    assert!(r.run_dir.join("summary.json").is_file());
}

/// The caller's stop ends the rehearsal as Ctrl-C ends `run`: a partial
/// report, exit 130, said as the caller's; the server is torn down.
#[tokio::test]
async fn a_callers_stop_ends_it_with_a_partial_report() {
    let out = tempfile::tempdir().unwrap();
    let mut s = load();
    // A long step to stop in.
    s.phases[0].steps.truncate(1);
    let stop = tokio_util::sync::CancellationToken::new();
    let cancel = stop.clone();
    let opts = RunOptions::local(out.path());
    let run = tokio::spawn(async move { rehearse_until(&s, &opts, stop).await });
    // Stop once the traffic runs (its latency.csv exists), in the traffic
    // before the step or in the step.
    let dir = out.path().join("library");
    let traffic = || {
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| d.path().join("latency.csv").is_file())
    };
    for _ in 0..600 {
        if traffic() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(traffic(), "the traffic never started");
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    let r = run.await.unwrap().unwrap();
    assert_eq!(r.exit_code, 130, "{}", r.summary());
    assert!(
        r.failure()
            .unwrap()
            .starts_with("interrupted by the caller's stop"),
        "{}",
        r.summary()
    );
    assert!(r.run_dir.join("summary.md").is_file());
}

/// A scenario built in code whose phase makes live an app version no query
/// sends would rehearse without traffic and pass every budget (QA): refused.
#[tokio::test]
async fn a_scenario_built_in_code_with_a_phase_of_no_traffic_is_refused() {
    let mut s = load();
    s.phases[0].apps = vec!["web".into()];
    let out = tempfile::tempdir().unwrap();
    let e = rehearse(&s, &RunOptions::local(out.path()))
        .await
        .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(
        e.to_string()
            .contains("makes app version `web` live, which no workload query sends"),
        "{e}"
    );
}
