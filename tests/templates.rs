//! Seed once, rehearse many, through the binary on real Postgres with small
//! data: a batch seeds each data set once and clones it, scenarios with the
//! same data share a template, the url backend drops its templates, `--reuse`
//! keeps servers and templates between invocations (listed and removed by
//! `cache ls|clean`), a corrupt cache is rebuilt, two invocations share a
//! cache at once, and an unusable cache directory is run around.
//!
//! The fixtures' only step fails on purpose (exit 4) with an md5 of every
//! seeded value as its error: run.json's failure shows which data a
//! rehearsal had, so a clone can be compared with a seed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pgrehearse::record::{DataOrigin, RunInfo, RunRecord};

fn tpl(name: &str) -> PathBuf {
    common::fixture(&format!("templates/{name}"))
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Every run directory under `out` with its run.json, by scenario name and
/// then in the order they were made.
fn runs(out: &Path) -> Vec<(String, RunInfo)> {
    let mut dirs: Vec<PathBuf> = common::entries_in(out)
        .into_iter()
        .flat_map(|d| common::entries_in(&d))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            let rec = RunRecord::read(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            let info = rec.info.expect("run.json");
            (info.scenario.clone(), info)
        })
        .collect()
}

fn origin(info: &RunInfo) -> &DataOrigin {
    info.database.as_ref().expect("run.json database")
}

/// The md5 of the data the step saw (see the module docs).
fn checksum(info: &RunInfo) -> String {
    let failure = info.failure.as_deref().unwrap_or_default();
    let at = failure
        .find("data checksum ")
        .unwrap_or_else(|| panic!("no checksum in the failure: {failure}"));
    failure[at + 14..at + 14 + 32].to_string()
}

/// The template a run cloned, as recorded.
fn template_of(info: &RunInfo) -> String {
    let o = origin(info);
    assert_eq!(o.how, "cloned", "{o:?}");
    o.template.clone().expect("a template key")
}

#[test]
fn a_batch_seeds_each_data_set_once_and_clones_it() {
    let (small, same, other) = (
        tpl("small.toml"),
        tpl("same-data.toml"),
        tpl("other-gen.toml"),
    );
    let run = common::run(
        &small,
        &[arg(&same), arg(&small), arg(&other), "--backend", "local"],
        &[],
    );
    // The step fails on purpose in every scenario.
    run.assert_code(4);
    let got = runs(run.out());
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["tpl-other-gen", "tpl-same-data", "tpl-small", "tpl-small"],
        "{}",
        run.stderr
    );
    let (other, same, first, second) = (&got[0].1, &got[1].1, &got[2].1, &got[3].1);

    // The first rehearsal of the shared data seeds the template ...
    let key = template_of(first);
    let o = origin(first);
    assert_eq!(o.template_source.as_deref(), Some("seeded"), "{o:?}");
    assert!(o.seed_ms > 0.0 && o.clone_ms.unwrap() > 0.0, "{o:?}");
    assert_eq!(o.clone_strategy.as_deref(), Some("file_copy"), "{o:?}");
    // The template was checkpointed once, when made (we are superuser).
    assert!(o.checkpoint_ms.is_some_and(|c| c > 0.0), "{o:?}");
    // ... the others clone it without seeding, another scenario too.
    for later in [same, second] {
        assert_eq!(template_of(later), key);
        let o = origin(later);
        assert_eq!(o.template_source.as_deref(), Some("earlier"), "{o:?}");
        assert_eq!(o.seed_ms, 0.0, "{o:?}");
        assert_eq!(o.checkpoint_ms, None, "{o:?}");
        // Its wait for data was the clone. (How much a clone saves over a
        // seed is a benchmark's figure, `cargo bench --bench seed`: at 2 000
        // rows the two are within a busy machine's noise.)
        assert!(later.seed_ms >= o.clone_ms.unwrap(), "{later:?}");
    }
    assert!(
        run.stderr
            .contains(&format!("tpl-small — cloned from template {}", &key[..16])),
        "{}",
        run.stderr
    );
    // Data nobody else needs are seeded in place; other data, other sums.
    assert_eq!(origin(other).how, "seeded", "{:?}", origin(other));
    assert_eq!(origin(other).template, None);
    assert_eq!(checksum(first), checksum(second));
    assert_eq!(checksum(first), checksum(same));
    assert_ne!(checksum(first), checksum(other));

    // A clone holds exactly what seeding in place makes.
    let alone = common::run(&small, &["--backend", "local", "-q"], &[]);
    alone.assert_code(4);
    let info = the_run(&alone);
    assert_eq!(origin(&info).how, "seeded");
    assert_eq!(checksum(&info), checksum(first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_on_the_url_backend_are_scratch_databases_and_go() {
    let (server, sc, url) = common::own_server(&[]).await;
    let small = tpl("small.toml");
    let run = tokio::task::spawn_blocking(move || {
        common::run(
            &small,
            &[
                arg(&small),
                "--backend",
                "url",
                "--database-url",
                &url,
                "-q",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    run.assert_code(4);
    let got = runs(run.out());
    assert_eq!(got.len(), 2, "{}", run.stderr);
    assert_eq!(template_of(&got[0].1), template_of(&got[1].1));
    assert!(
        got[1]
            .1
            .target
            .contains("rehearsed in database pgrehearse_"),
        "{}",
        got[1].1.target
    );
    assert_eq!(checksum(&got[0].1), checksum(&got[1].1));
    // Templates and clones were scratch databases: all dropped.
    assert_eq!(common::scratch_databases(&sc).await, Vec::<String>::new());
    server.teardown().await.unwrap();
}

/// A cache directory of a test's own, and `pgrehearse` commands that use it.
struct CacheDir {
    dir: tempfile::TempDir,
}

impl CacheDir {
    fn new() -> CacheDir {
        CacheDir {
            dir: common::isolated_tmpdir(),
        }
    }

    fn env(&self) -> [(&str, &str); 1] {
        [("XDG_CACHE_HOME", arg(self.dir.path()))]
    }

    /// `run SCENARIO --backend local --reuse ARGS`.
    fn run(&self, scenario: &Path, args: &[&str]) -> common::Ran {
        let mut all = vec!["--backend", "local", "--reuse"];
        all.extend_from_slice(args);
        common::run(scenario, &all, &self.env())
    }

    /// `pgrehearse cache ARGS`: (exit code, stdout, stderr).
    fn cache(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(common::bin())
            .arg("cache")
            .args(args)
            .env("XDG_CACHE_HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run pgrehearse cache");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn servers(&self) -> Vec<PathBuf> {
        common::entries_in(&self.dir.path().join("pgrehearse/servers"))
    }

    /// The one server entry's directory.
    fn entry(&self) -> PathBuf {
        let servers = self.servers();
        assert_eq!(servers.len(), 1, "{servers:?}");
        servers[0].clone()
    }

    fn manifest(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.entry().join("manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// `cache clean` removes everything, and no server of it still runs.
    fn clean(&self) {
        let (code, stdout, stderr) = self.cache(&["clean"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(self.servers().is_empty(), "{stdout}");
        assert_eq!(
            common::postgres_processes_under(self.dir.path()),
            Vec::<String>::new()
        );
    }
}

/// The one run of `ran` (a single scenario).
fn the_run(ran: &common::Ran) -> RunInfo {
    ran.record().1.info.expect("run.json")
}

#[test]
fn reuse_keeps_the_server_and_its_templates_between_invocations() {
    let cache = CacheDir::new();
    let small = tpl("small.toml");
    let first = cache.run(&small, &["-q"]);
    first.assert_code(4);
    let first = the_run(&first);
    let key = template_of(&first);
    assert_eq!(origin(&first).template_source.as_deref(), Some("seeded"));
    let created = cache.manifest()["created"].clone();
    assert!(cache.entry().join("cluster/data/PG_VERSION").is_file());
    // Stopped between invocations.
    assert_eq!(
        common::postgres_processes_under(cache.dir.path()),
        Vec::<String>::new()
    );

    // The same data again: the kept template, nothing seeded.
    let again = cache.run(&small, &[]);
    again.assert_code(4);
    assert!(
        again.stderr.contains("kept in the cache"),
        "{}",
        again.stderr
    );
    let again = the_run(&again);
    assert_eq!(template_of(&again), key);
    assert_eq!(origin(&again).template_source.as_deref(), Some("cache"));
    assert_eq!(origin(&again).seed_ms, 0.0);
    assert_eq!(checksum(&again), checksum(&first));
    assert_eq!(cache.manifest()["created"], created, "the same server");

    // Other rows, another generator: templates of their own, same server.
    let rows = cache.run(&small, &["--rows", "1000", "-q"]);
    rows.assert_code(4);
    let rows = the_run(&rows);
    let other = cache.run(&tpl("other-gen.toml"), &["-q"]);
    other.assert_code(4);
    let other = the_run(&other);
    let keys = [key.clone(), template_of(&rows), template_of(&other)];
    assert!(
        keys[0] != keys[1] && keys[1] != keys[2] && keys[0] != keys[2],
        "{keys:?}"
    );
    for info in [&rows, &other] {
        assert_eq!(origin(info).template_source.as_deref(), Some("seeded"));
    }

    let (code, ls, stderr) = cache.cache(&["ls"]);
    assert_eq!(code, 0, "{stderr}");
    let entry = cache.entry();
    let entry_name = entry.file_name().unwrap().to_str().unwrap();
    assert!(ls.contains(entry_name) && ls.contains("local"), "{ls}");
    for k in &keys {
        assert!(ls.contains(k.as_str()), "{k} in\n{ls}");
    }
    assert!(
        ls.contains("tpl-small") && ls.contains("tpl-other-gen"),
        "{ls}"
    );
    cache.clean();
}

#[test]
fn a_corrupt_cache_is_rebuilt_not_used() {
    let cache = CacheDir::new();
    let small = tpl("small.toml");
    let seeded = cache.run(&small, &["-q"]);
    seeded.assert_code(4);
    let sum = checksum(&the_run(&seeded));

    // The cluster's data directory is gone: a new cluster, seeded again.
    std::fs::remove_dir_all(cache.entry().join("cluster/data")).unwrap();
    let run = cache.run(&small, &["-q"]);
    run.assert_code(4);
    let info = the_run(&run);
    assert_eq!(origin(&info).template_source.as_deref(), Some("seeded"));
    assert_eq!(checksum(&info), sum);

    // A manifest that names a template the database does not carry the
    // marker of: the template is dropped and seeded again.
    let mut m = cache.manifest();
    m["templates"][0]["key"] = serde_json::Value::String("ab".repeat(32));
    std::fs::write(cache.entry().join("manifest.json"), m.to_string()).unwrap();
    let run = cache.run(&small, &["-q"]);
    run.assert_code(4);
    assert_eq!(
        origin(&the_run(&run)).template_source.as_deref(),
        Some("seeded")
    );

    // A manifest that is not JSON: the whole entry is rebuilt.
    std::fs::write(cache.entry().join("manifest.json"), "{ garbage").unwrap();
    let run = cache.run(&small, &[]);
    run.assert_code(4);
    assert!(
        run.stderr.contains("is rebuilt") && run.stderr.contains("corrupt"),
        "{}",
        run.stderr
    );
    let info = the_run(&run);
    assert_eq!(origin(&info).template_source.as_deref(), Some("seeded"));
    assert_eq!(checksum(&info), sum);
    cache.clean();
}

#[test]
fn two_invocations_sharing_the_cache_both_succeed() {
    let cache = CacheDir::new();
    let small = common::fixture("cli/small.toml");
    let both: Vec<common::Ran> = std::thread::scope(|s| {
        let a = s.spawn(|| cache.run(&small, &[]));
        let b = s.spawn(|| cache.run(&small, &[]));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    for ran in &both {
        ran.assert_code(0);
    }
    // One waited for the other, then found its template.
    assert!(
        both.iter().any(|r| r.stderr.contains("waiting for it")),
        "{}\n---\n{}",
        both[0].stderr,
        both[1].stderr
    );
    let mut sources: Vec<String> = both
        .iter()
        .map(|r| origin(&the_run(r)).template_source.clone().unwrap())
        .collect();
    sources.sort();
    assert_eq!(sources, ["cache", "seeded"]);
    cache.clean();
}

#[test]
fn an_unusable_cache_directory_is_run_around_and_said() {
    // A path below a file: nobody, root included, can create it.
    let run = common::run(
        &common::fixture("cli/small.toml"),
        &["--backend", "local", "--reuse"],
        &[("XDG_CACHE_HOME", "/dev/null/cache")],
    );
    run.assert_code(0);
    assert!(
        run.stderr.contains("/dev/null/cache") && run.stderr.contains("running without the cache"),
        "{}",
        run.stderr
    );
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_keeps_a_container_and_cache_clean_removes_it() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let cache = CacheDir::new();
    let small = tpl("small.toml");
    let docker_run = |cache: &CacheDir| {
        common::run(
            &small,
            &["--backend", "docker", "--image", &image, "--reuse", "-q"],
            &cache.env(),
        )
    };
    let first = tokio::task::block_in_place(|| docker_run(&cache));
    first.assert_code(4);
    let second = tokio::task::block_in_place(|| docker_run(&cache));
    second.assert_code(4);
    let (first, second) = (the_run(&first), the_run(&second));
    assert_eq!(template_of(&first), template_of(&second));
    assert_eq!(origin(&second).template_source.as_deref(), Some("cache"));
    assert_eq!(checksum(&first), checksum(&second));
    let container = cache.manifest()["container"]
        .as_str()
        .expect("a container name")
        .to_string();
    let exists = |name: &str| {
        let out = Command::new("docker")
            .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
            .arg(format!("name=^{name}$"))
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    assert!(exists(&container), "{container} kept");
    tokio::task::block_in_place(|| cache.clean());
    assert!(!exists(&container), "{container} removed");
}

/// As root the kept cluster runs as `postgres`: a cache that user cannot
/// reach is said plainly up front, the run goes on without it, and no entry
/// is left for `cache ls` to list.
#[test]
fn reuse_as_root_with_a_cache_postgres_cannot_reach_runs_without_it_and_keeps_nothing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        common::unavailable("root (only then does the cluster run as `postgres`)");
        return;
    }
    let cache = CacheDir::new();
    let private = cache.dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let xdg = private.join("cache");
    let ran = common::run(
        &tpl("small.toml"),
        &["--backend", "local", "--reuse", "-q"],
        &[("XDG_CACHE_HOME", arg(&xdg))],
    );
    ran.assert_code(4);
    assert!(
        ran.stderr
            .contains("--reuse cannot keep a local cluster in")
            && ran
                .stderr
                .contains(&format!("{} is not searchable by it", private.display()))
            && ran.stderr.contains("XDG_CACHE_HOME"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("rebuilding it"), "{}", ran.stderr);
    assert_eq!(
        origin(&the_run(&ran)).template_source.as_deref(),
        Some("seeded"),
        "it ran, without the cache"
    );
    assert!(
        !xdg.join("pgrehearse").exists(),
        "no cache directory is made for a cache that cannot be used"
    );
}
