//! Engine smoke test on an in-code scenario (no loader involved).

use std::time::Duration;

use pgrehearse::backend::BackendKind;
use pgrehearse::options::{OutputMode, RunOptions, ServerOptions};
use pgrehearse::record::RunRecord;
use pgrehearse::rehearsal::rehearse_one;
use pgrehearse::scenario::*;
use pgrehearse::signals::Signals;

fn scenario() -> Scenario {
    Scenario {
        path: "smoke.toml".into(),
        name: "smoke".into(),
        description: None,
        pair: None,
        variant: None,
        hash: "x".into(),
        postgres: PostgresPlan::default(),
        tables: vec![TablePlan {
            name: "t".into(),
            rows: 10_000,
            create: "CREATE TABLE t (id bigint PRIMARY KEY, v int)".into(),
            after_seed: vec![],
            columns: vec![ColumnPlan {
                name: "id".into(),
                gen: ColumnGen {
                    kind: Gen::Sequence { start: 1 },
                    null_fraction: 0.0,
                },
            }],
        }],
        seed_sql: vec![],
        workload: WorkloadPlan {
            clients: 4,
            rate: Some(500.0),
            before: Duration::from_millis(500),
            after: Duration::from_millis(500),
            window: Duration::from_millis(100),
            query_timeout: None,
            queries: vec![
                QueryPlan {
                    name: "read".into(),
                    weight: 70,
                    apps: vec!["app".into()],
                    sql: "SELECT * FROM t WHERE id = $1".into(),
                    params: vec![ColumnGen {
                        kind: Gen::ForeignKey {
                            table: "t".into(),
                            rows: 10_000,
                        },
                        null_fraction: 0.0,
                    }],
                },
                QueryPlan {
                    name: "write".into(),
                    weight: 30,
                    apps: vec!["app".into()],
                    sql: "UPDATE t SET v = coalesce(v, 0) + 1 WHERE id = $1".into(),
                    params: vec![ColumnGen {
                        kind: Gen::ForeignKey {
                            table: "t".into(),
                            rows: 10_000,
                        },
                        null_fraction: 0.0,
                    }],
                },
            ],
            scripts: vec![],
        },
        phases: vec![PhasePlan {
            name: "migrate".into(),
            apps: vec!["app".into()],
            steps: vec![StepPlan {
                name: "lock".into(),
                action: StepAction::Sql(vec![
                    "LOCK TABLE t IN ACCESS EXCLUSIVE MODE".into(),
                    "SELECT pg_sleep(1.5)".into(),
                ]),
                transaction: true,
                lock_timeout: None,
                statement_timeout: None,
                retries: 0,
                retry_backoff: Duration::from_millis(100),
                pause_after: Duration::ZERO,
            }],
        }],
        budget: Budget::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ground_truth_lock_smoke() {
    let out = tempfile::tempdir().unwrap();
    let out = Box::leak(Box::new(out));
    eprintln!("out {}", out.path().display());
    let opts = RunOptions {
        server: ServerOptions {
            backend: BackendKind::Local,
            image: None,
            database_url: None,
        },
        out: out.path().to_path_buf(),
        seed: 1,
        budgets: vec![],
        output: OutputMode::quiet(),
    };
    let code = rehearse_one(&scenario(), &opts, &Signals::install())
        .await
        .result
        .unwrap();
    assert_eq!(code, 0);
    let dir = std::fs::read_dir(out.path().join("smoke"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rec = RunRecord::read(&dir).unwrap();
    for l in &rec.locks {
        eprintln!("{l:?}");
    }
    for w in rec.waits.iter().take(5) {
        eprintln!("{w:?}");
    }
    eprintln!("waits: {}", rec.waits.len());
    eprintln!("info: {:?}", rec.info.as_ref().unwrap().lock_precision_ms);
    let ae = rec
        .locks
        .iter()
        .find(|l| l.relation == "t" && l.mode == "AccessExclusiveLock")
        .unwrap();
    assert!((ae.held_ms - 1500.0).abs() < 25.0, "{ae:?}");
}
