//! Users' migration directories, without a database: each layout's fixture
//! loads in its tool's order with its tool's transaction rules, selections
//! split it, and every check-time problem is reported where it is, with
//! its fix. (tests/migrations.rs runs the same fixtures on PostgreSQL.)

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::migrations::{
    self, At, Execution, Kind, Layout, MigrationFile, MigrationSet, Selection, Setting, Spec,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/migrations")
        .join(name)
}

fn load(dir: &Path) -> MigrationSet {
    migrations::load(&Spec::new(dir)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Every error of loading `dir`, as displayed, paths relative to the
/// fixtures directory.
fn errors(spec: &Spec) -> Vec<String> {
    let root = format!(
        "{}/",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/migrations")
            .display()
    );
    match migrations::load(spec) {
        Ok(set) => panic!("{} loaded ({} files)", spec.dir.display(), set.files.len()),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }
}

fn names<'a>(files: impl IntoIterator<Item = &'a MigrationFile>) -> Vec<&'a str> {
    files.into_iter().map(|f| f.name.as_str()).collect()
}

/// Each file's segments: execution and number of statements.
fn shape(set: &MigrationSet) -> Vec<Vec<(Execution, usize)>> {
    set.files
        .iter()
        .map(|f| {
            f.segments
                .iter()
                .map(|s| (s.execution, s.statements.len()))
                .collect()
        })
        .collect()
}

use Execution::{Autocommit as A, Transaction as T};

/// A fixture: its layout, its files in order, each file's segments.
type Expected = (
    &'static str,
    Layout,
    &'static [&'static str],
    Vec<Vec<(Execution, usize)>>,
);

#[test]
fn each_layout_loads_in_its_tools_order_with_its_tools_transactions() {
    let cases: [Expected; 7] = [
        (
            "flyway",
            Layout::Flyway,
            // 1.9 before 1.10; a subdirectory's file in version order;
            // the repeatable last.
            &[
                "V1__accounts_and_orders.sql",
                "V1.9__order_status.sql",
                "V1.10__order_status_index.sql",
                "release2/V2__orders_account_index.sql",
                "R__order_totals_view.sql",
            ],
            vec![
                vec![(T, 6)],
                vec![(T, 2)],
                vec![(T, 1)],
                vec![(A, 1)],
                vec![(T, 1)],
            ],
        ),
        (
            "golang-migrate",
            Layout::GolangMigrate,
            &[
                "1_accounts_and_orders.up.sql",
                "9_order_status.up.sql",
                "10_order_status_index.up.sql",
                "11_orders_account_index.up.sql",
            ],
            vec![vec![(T, 6)], vec![(T, 2)], vec![(T, 1)], vec![(A, 1)]],
        ),
        (
            "dbmate",
            Layout::Dbmate,
            // Byte order of the names: 2024020112 before 20240201.
            &[
                "20240101000000_accounts_and_orders.sql",
                "2024020112_order_status.sql",
                "20240201_order_status_index.sql",
                "20240301000000_orders_account_index.sql",
            ],
            vec![vec![(T, 6)], vec![(T, 2)], vec![(T, 2)], vec![(A, 1)]],
        ),
        (
            "sqitch",
            Layout::Sqitch,
            // Plan order, the reworked change's first instance from its @tag script.
            &[
                "deploy/accounts_and_orders.sql",
                "deploy/touch_updated_at@v1.1.sql",
                "deploy/order_status.sql",
                "deploy/order_status_index.sql",
                "deploy/touch_updated_at.sql",
                "deploy/orders_account_index.sql",
            ],
            vec![
                vec![(T, 4)],
                vec![(T, 2)],
                vec![(T, 2)],
                vec![(T, 1)],
                vec![(T, 1)],
                vec![(T, 1), (A, 1)],
            ],
        ),
        (
            "goose",
            Layout::Goose,
            // Version order; the Go migration is not applied.
            &[
                "00001_accounts_and_orders.sql",
                "00009_order_status.sql",
                "00010_order_status_index.sql",
                "00011_orders_account_index.sql",
            ],
            vec![vec![(T, 6)], vec![(T, 2)], vec![(T, 1)], vec![(A, 1)]],
        ),
        (
            "prisma",
            Layout::Prisma,
            // Byte order of the directory names: "_C" before "_a".
            &[
                "20240101000000_init/migration.sql",
                "20240201000000_Create_order_status/migration.sql",
                "20240201000000_add_order_status_index/migration.sql",
                "20240301000000_orders_account_index/migration.sql",
            ],
            vec![vec![(T, 6)], vec![(T, 2)], vec![(T, 1)], vec![(A, 1)]],
        ),
        (
            "plain",
            Layout::Plain,
            &[
                "1_accounts_and_orders.sql",
                "2_order_status.sql",
                "10_order_status_index.sql",
                "11_orders_account_index.sql",
            ],
            vec![vec![(T, 6)], vec![(T, 2)], vec![(T, 1)], vec![(A, 2)]],
        ),
    ];
    for (dir, layout, order, segments) in cases {
        let set = load(&fixture(dir));
        assert_eq!(set.layout, layout, "{dir}");
        assert_eq!(migrations::detect(&fixture(dir)).unwrap(), layout, "{dir}");
        assert_eq!(names(&set.files), order, "{dir}");
        assert_eq!(shape(&set), segments, "{dir}");
    }
}

#[test]
fn versions_descriptions_kinds_and_what_is_ignored() {
    let set = load(&fixture("flyway"));
    let v: Vec<(&str, &str, Kind)> = set
        .files
        .iter()
        .map(|f| (f.version.as_str(), f.description.as_str(), f.kind))
        .collect();
    assert_eq!(
        v,
        vec![
            ("1", "accounts and orders", Kind::Versioned),
            ("1.9", "order status", Kind::Versioned),
            ("1.10", "order status index", Kind::Versioned),
            ("2", "orders account index", Kind::Versioned),
            ("", "order totals view", Kind::Repeatable),
        ]
    );
    assert_eq!(set.ignored.len(), 1);
    assert!(set.ignored[0]
        .path
        .ends_with("U2__drop_orders_account_index.sql"));
    assert!(set.ignored[0].reason.contains("undo"));
    // Flyway's own advice for CONCURRENTLY in a non-transactional file.
    assert!(set.files[3].notes[0].contains("flyway.postgresql.transactional.lock=false"));
    assert!(set.files[3].segments[0]
        .reason
        .contains("CREATE INDEX CONCURRENTLY (line 2)"));

    let gm = load(&fixture("golang-migrate"));
    assert_eq!(
        gm.files
            .iter()
            .map(|f| f.version.as_str())
            .collect::<Vec<_>>(),
        vec!["1", "9", "10", "11"]
    );
    assert_eq!(gm.ignored.len(), 4, "the down migrations");

    let sq = load(&fixture("sqitch"));
    assert_eq!(sq.files[1].version, "touch_updated_at@v1.1");
    assert_eq!(sq.files[4].version, "touch_updated_at");
    assert_eq!(sq.files[4].description, "touch only changed rows");

    let dbm = load(&fixture("dbmate"));
    let last = dbm.files.last().unwrap();
    assert!(
        last.segments[0]
            .reason
            .starts_with("-- migrate:up transaction:false"),
        "{}",
        last.segments[0].reason
    );
}

#[test]
fn statements_keep_their_text_and_location() {
    let set = load(&fixture("flyway"));
    let v1 = &set.files[0];
    let st: Vec<_> = v1.statements().collect();
    // The leading comment (with its semicolon) belongs to the first statement.
    assert!(st[0]
        .sql
        .starts_with("-- Release 1: accounts and orders; this comment has a semicolon"));
    assert!(st[0].code().starts_with("CREATE TABLE accounts ("));
    assert_eq!((st[0].location.line, st[0].location.column), (2, 1));
    assert_eq!(
        st[1].code(),
        "COMMENT ON COLUMN accounts.email IS E'the account\\'s login; unique'"
    );
    assert!(st[2].code().starts_with("CREATE TABLE \"audit;log\" ("));
    assert_eq!(st[2].location.line, 10);
    assert!(st[4].code().ends_with("END;\n$fn$"), "{}", st[4].code());
    assert_eq!(
        st[4].location.to_string(),
        format!("{}:22:1", v1.path.display())
    );

    // A DO block after a nested comment stays one statement.
    let status = &set.files[1];
    let do_block = status.statements().nth(1).unwrap();
    assert!(do_block.sql.starts_with("/* A DO block"));
    assert!(do_block.code().starts_with("DO $do$") && do_block.code().ends_with("$do$"));
    assert_eq!(do_block.location.line, 5);

    // Sqitch: statements of an included file are located in it; the BEGIN
    // and COMMIT delimiting a segment are not statements of it.
    let sq = load(&fixture("sqitch"));
    let reworked = &sq.files[4];
    let only = reworked.statements().next().unwrap();
    assert_eq!(
        only.location.file,
        fixture("sqitch/lib/touch_updated_at.sql")
    );
    assert_eq!(only.location.line, 2);
    assert!(reworked
        .statements()
        .all(|s| !s.code().starts_with("BEGIN") && !s.code().starts_with("COMMIT")));
}

#[test]
fn from_and_last_split_setup_and_rehearsal_in_the_tools_order() {
    let from = |dir: &str, v: &str| -> (Vec<String>, Vec<String>) {
        let set = load(&fixture(dir));
        let plan = set
            .select(&Selection::From(v.into()))
            .unwrap_or_else(|e| panic!("{dir} {v}: {e}"));
        let n = |fs: &[&MigrationFile]| fs.iter().map(|f| f.name.clone()).collect();
        (n(&plan.setup), n(&plan.rehearse))
    };
    // Flyway compares numerically: from 1.10 is not from 1.1; 1.10.0 is 1.10.
    let (setup, rehearse) = from("flyway", "1.10");
    assert_eq!(
        setup,
        vec!["V1__accounts_and_orders.sql", "V1.9__order_status.sql"]
    );
    assert_eq!(
        rehearse,
        vec![
            "V1.10__order_status_index.sql",
            "release2/V2__orders_account_index.sql",
            "R__order_totals_view.sql"
        ]
    );
    assert_eq!(from("flyway", "1.10.0"), from("flyway", "1_10"));
    // A version between two files starts at the next one.
    assert_eq!(from("flyway", "1.5").0, vec!["V1__accounts_and_orders.sql"]);
    assert_eq!(
        from("golang-migrate", "10").0,
        vec!["1_accounts_and_orders.up.sql", "9_order_status.up.sql"]
    );
    // dbmate compares versions as strings, like its --strict check.
    assert_eq!(
        from("dbmate", "20240201").0,
        vec!["20240101000000_accounts_and_orders.sql"]
    );
    assert_eq!(from("prisma", "20240201000000_add").1.len(), 2);
    assert_eq!(
        from("plain", "10").0,
        vec!["1_accounts_and_orders.sql", "2_order_status.sql"]
    );
    // Sqitch change specs: the change after the v1.1 tag.
    assert_eq!(
        from("sqitch", "@v1.1~").1,
        vec![
            "deploy/touch_updated_at.sql",
            "deploy/orders_account_index.sql"
        ]
    );
    assert_eq!(from("sqitch", "order_status").0.len(), 2);

    let set = load(&fixture("flyway"));
    let plan = set.select(&Selection::Last(2)).unwrap();
    assert_eq!(
        names(plan.setup),
        vec!["V1__accounts_and_orders.sql", "V1.9__order_status.sql"]
    );
    assert_eq!(
        names(plan.rehearse),
        vec![
            "V1.10__order_status_index.sql",
            "release2/V2__orders_account_index.sql",
            "R__order_totals_view.sql"
        ]
    );
    let plan = set.select(&Selection::All).unwrap();
    assert!(plan.setup.is_empty());
    assert_eq!(plan.rehearse.len(), 5);
}

#[test]
fn bad_selections_name_the_setting() {
    let set = load(&fixture("flyway"));
    let err = |s: Selection| set.select(&s).unwrap_err();
    let e = err(Selection::From("v5".into()));
    assert_eq!(e.at, At::Setting(Setting::From));
    assert!(e.message.contains("\"v5\" is not a Flyway version"), "{e}");
    let e = err(Selection::From("3".into()));
    assert_eq!(
        e.to_string(),
        "migrations.rehearse.from: no migration at or after version \"3\" (the last one is 2)"
    );
    assert_eq!(err(Selection::Last(0)).at, At::Setting(Setting::Last));
    assert!(err(Selection::Last(9))
        .message
        .contains("has only 4 migrations"));
    let sq = load(&fixture("sqitch"));
    let e = sq
        .select(&Selection::From("touch_updated_at".into()))
        .unwrap_err();
    assert!(
        e.message
            .contains("(touch_updated_at@v1.0, touch_updated_at@HEAD)"),
        "{e}"
    );
}

/// A git repository in a temp dir holding a copy of a fixture.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let r = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.dir.path())
            .args([
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.org",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Copy fixture files into `db/` (relative paths kept).
    fn copy(&self, fixture_dir: &str, files: &[&str]) {
        for f in files {
            let to = self.path("db").join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(fixture(fixture_dir).join(f), to).unwrap();
        }
    }

    fn commit(&self) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "c"]);
        self.git(&["rev-parse", "HEAD"])
    }
}

#[test]
fn since_git_rehearses_the_added_files_committed_or_not() {
    let repo = Repo::new();
    repo.copy(
        "golang-migrate",
        &["1_accounts_and_orders.up.sql", "9_order_status.up.sql"],
    );
    let base = repo.commit();
    // One new migration committed on the branch, one not even added yet.
    repo.copy("golang-migrate", &["10_order_status_index.up.sql"]);
    repo.commit();
    repo.copy("golang-migrate", &["11_orders_account_index.up.sql"]);
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit(base.clone())).unwrap();
    assert_eq!(
        names(plan.setup),
        vec!["1_accounts_and_orders.up.sql", "9_order_status.up.sql"]
    );
    assert_eq!(
        names(plan.rehearse),
        vec![
            "10_order_status_index.up.sql",
            "11_orders_account_index.up.sql"
        ]
    );

    // A new migration older than one production has: refused, with what
    // golang-migrate would do.
    std::fs::write(repo.path("db/5_late.up.sql"), "SELECT 1;\n").unwrap();
    let set = load(&repo.path("db"));
    let e = set.select(&Selection::SinceGit(base.clone())).unwrap_err();
    assert!(
        e.to_string()
            .contains("5_late.up.sql: 5_late.up.sql is new since"),
        "{e}"
    );
    assert!(
        e.message
            .contains("comes before 9_order_status.up.sql, which is not"),
        "{e}"
    );
    assert!(e.message.contains("golang-migrate never applies it"), "{e}");

    // Nothing new: everything is setup.
    std::fs::remove_file(repo.path("db/5_late.up.sql")).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]);
    repo.commit();
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit(head)).unwrap();
    assert_eq!(names(plan.rehearse), vec!["11_orders_account_index.up.sql"]);

    // The directory as a scenario next to it names it (`..` resolved, so
    // that messages and reports show the directory's own path).
    std::fs::create_dir(repo.path("scenarios")).unwrap();
    let spec = Spec::relative_to(&repo.path("scenarios/release.toml"), "../db");
    assert_eq!(spec.dir, repo.path("db"));
    assert_eq!(migrations::load(&spec).unwrap().files.len(), 4);

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("1_a.up.sql"), "SELECT 1;").unwrap();
    let e = load(outside.path())
        .select(&Selection::SinceGit("main".into()))
        .unwrap_err();
    assert!(e.message.ends_with("is not inside a git repository"), "{e}");

    let e = set
        .select(&Selection::SinceGit("no-such-branch".into()))
        .unwrap_err();
    assert_eq!(e.at, At::Setting(Setting::SinceGit));
    assert!(
        e.message.contains("not a commit") && e.message.contains("fetch-depth"),
        "{e}"
    );
}

/// A branch behind main (a push build, a local run): main gained a
/// migration after the branch forked. What the branch changed is its own
/// (QA: main's new file read as one the branch deleted, "Restore the
/// file"); main's is set up as main has it, and said as merged after the
/// fork.
#[test]
fn since_git_goes_by_where_the_branch_forked() {
    let repo = Repo::new();
    repo.copy("golang-migrate", &["1_accounts_and_orders.up.sql"]);
    repo.commit();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.copy("golang-migrate", &["10_order_status_index.up.sql"]);
    repo.commit();
    repo.git(&["checkout", "-q", "main"]);
    repo.copy("golang-migrate", &["9_order_status.up.sql"]);
    repo.commit();
    repo.git(&["checkout", "-q", "feature"]);
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit("main".into())).unwrap();
    assert_eq!(
        names(plan.rehearse.clone()),
        vec!["10_order_status_index.up.sql"]
    );
    let changes: Vec<_> = plan
        .edited
        .iter()
        .map(|c| (c.name.as_str(), c.change.kind()))
        .collect();
    assert_eq!(changes, [("9_order_status.up.sql", "merged_after_fork")]);
    let setup: Vec<String> = plan
        .setup_with(Vec::new())
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert!(
        setup.iter().any(|n| n == "9_order_status.up.sql@main"),
        "main's migration is set up as main has it: {setup:?}"
    );
    let says = migrations::edited_warning(set.layout, &plan.edited[0], "main");
    assert!(
        says.contains("after this branch forked") && says.contains("Rebase"),
        "{says}"
    );

    // main renames a migration both have after the fork: the branch's copy
    // under its old name is set up, once (QA: both were, and the run
    // failed on "already exists").
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&[
        "mv",
        "db/1_accounts_and_orders.up.sql",
        "db/1_accounts.up.sql",
    ]);
    repo.commit();
    repo.git(&["checkout", "-q", "feature"]);
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit("main".into())).unwrap();
    let setup: Vec<String> = plan
        .setup_with(Vec::new())
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert_eq!(
        setup.iter().filter(|n| n.starts_with("1_")).count(),
        1,
        "{setup:?}"
    );

    // main moves past the branch's new version after the fork: production
    // applies 11 first and golang-migrate never applies the branch's 10.
    repo.git(&["checkout", "-q", "main"]);
    repo.copy("golang-migrate", &["11_orders_account_index.up.sql"]);
    repo.commit();
    repo.git(&["checkout", "-q", "feature"]);
    let set = load(&repo.path("db"));
    let e = set.select(&Selection::SinceGit("main".into())).unwrap_err();
    assert!(
        e.message
            .contains("main gained 11_orders_account_index.up.sql after the branch forked")
            && e.message.contains("give it a version after"),
        "{e}"
    );

    // Both add a file of one name, with different SQL: production has
    // main's (QA: neither set up nor said).
    let repo = Repo::new();
    repo.copy("golang-migrate", &["1_accounts_and_orders.up.sql"]);
    repo.commit();
    repo.git(&["checkout", "-q", "-b", "feature"]);
    std::fs::write(
        repo.path("db/2_x.up.sql"),
        "ALTER TABLE orders ADD a int;\n",
    )
    .unwrap();
    repo.commit();
    repo.git(&["checkout", "-q", "main"]);
    std::fs::write(
        repo.path("db/2_x.up.sql"),
        "ALTER TABLE orders ADD b int;\n",
    )
    .unwrap();
    repo.commit();
    repo.git(&["checkout", "-q", "feature"]);
    let e = load(&repo.path("db"))
        .select(&Selection::SinceGit("main".into()))
        .unwrap_err();
    assert!(e.message.contains("with the same version"), "{e}");
}

#[test]
fn since_git_for_flyway_repeatables_and_sqitch_plans() {
    // Flyway: a modified repeatable is rehearsed again; an unchanged one
    // ends the setup.
    let repo = Repo::new();
    repo.copy(
        "flyway",
        &[
            "V1__accounts_and_orders.sql",
            "V1.9__order_status.sql",
            "R__order_totals_view.sql",
        ],
    );
    let base = repo.commit();
    repo.copy("flyway", &["V1.10__order_status_index.sql"]);
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit(base.clone())).unwrap();
    assert_eq!(
        names(plan.setup),
        vec![
            "V1__accounts_and_orders.sql",
            "V1.9__order_status.sql",
            "R__order_totals_view.sql"
        ]
    );
    assert_eq!(names(plan.rehearse), vec!["V1.10__order_status_index.sql"]);
    std::fs::write(
        repo.path("db/R__order_totals_view.sql"),
        "CREATE OR REPLACE VIEW order_totals AS SELECT 1 AS one;\n",
    )
    .unwrap();
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit(base)).unwrap();
    assert_eq!(
        names(plan.rehearse),
        vec!["V1.10__order_status_index.sql", "R__order_totals_view.sql"]
    );

    // Sqitch: the changes the plan gained, a reworked change included (its
    // new script is modified, not added: the plan says it is new).
    let repo = Repo::new();
    let all = [
        "sqitch.plan",
        "deploy/accounts_and_orders.sql",
        "deploy/touch_updated_at.sql",
        "deploy/order_status.sql",
        "deploy/order_status_index.sql",
        "lib/touch_updated_at.sql",
        "deploy/touch_updated_at@v1.1.sql",
        "deploy/orders_account_index.sql",
    ];
    repo.copy("sqitch", &all);
    let full_plan = std::fs::read_to_string(repo.path("db/sqitch.plan")).unwrap();
    let v1_1: String = full_plan
        .split("\ntouch_updated_at [touch_updated_at@v1.1]")
        .next()
        .unwrap()
        .to_string()
        + "\n";
    std::fs::write(repo.path("db/sqitch.plan"), &v1_1).unwrap();
    std::fs::copy(
        fixture("sqitch/deploy/touch_updated_at@v1.1.sql"),
        repo.path("db/deploy/touch_updated_at.sql"),
    )
    .unwrap();
    std::fs::remove_file(repo.path("db/deploy/touch_updated_at@v1.1.sql")).unwrap();
    let base = repo.commit();
    repo.copy("sqitch", &all);
    let set = load(&repo.path("db"));
    let plan = set.select(&Selection::SinceGit(base)).unwrap();
    assert_eq!(
        names(plan.rehearse),
        vec![
            "deploy/touch_updated_at.sql",
            "deploy/orders_account_index.sql"
        ]
    );
    assert_eq!(plan.setup.len(), 4);
}

#[test]
fn every_check_time_error_names_its_file_and_line_and_the_fix() {
    let bad = |case: &str| errors(&Spec::new(fixture(&format!("bad/{case}"))));
    let one = |case: &str| -> String {
        let e = bad(case);
        assert_eq!(e.len(), 1, "{case}: {e:?}");
        e[0].clone()
    };
    let e = one("flyway-duplicate");
    assert_eq!(e, "bad/flyway-duplicate/V2__first.sql: version 2 is the same as bad/flyway-duplicate/V2.0__second.sql: Flyway refuses two migrations with one version; renumber one of them");

    let e = one("flyway-mixed");
    assert!(
        e.starts_with("bad/flyway-mixed/V1__mixed.sql:3:1: Flyway refuses a migration that mixes"),
        "{e}"
    );
    assert!(
        e.contains("CREATE INDEX CONCURRENTLY at line 3 and the transactional statement at line 2"),
        "{e}"
    );
    assert!(e.contains("set mixed = true"), "{e}");

    let e = one("flyway-reindex");
    assert!(e.starts_with("bad/flyway-reindex/V1__reindex.sql:3:1: REINDEX CONCURRENTLY cannot run inside a transaction block, and Flyway runs this file in a transaction"), "{e}");
    assert!(
        e.contains("add V1__reindex.sql.conf with the line executeInTransaction=false"),
        "{e}"
    );

    let e = one("golang-migrate-duplicate");
    assert!(
        e.starts_with("bad/golang-migrate-duplicate/2_first.up.sql: version 2 is the same as "),
        "{e}"
    );
    assert!(e.contains("002_second.up.sql"), "{e}");

    let e = one("golang-migrate-concurrently");
    assert!(e.starts_with("bad/golang-migrate-concurrently/1_note.up.sql:3:1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and golang-migrate sends the whole file as one query"), "{e}");
    assert!(
        e.contains("put it alone in a migration file of its own"),
        "{e}"
    );

    let e = one("dbmate-concurrently");
    assert!(e.starts_with("bad/dbmate-concurrently/20240101000000_note_index.sql:2:1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block, and dbmate runs this file in a transaction"), "{e}");
    assert!(e.contains("`-- migrate:up transaction:false`"), "{e}");

    let e = one("unterminated");
    assert!(
        e.starts_with(
            "bad/unterminated/1_function.sql:3:53: this dollar-quoted string is never closed"
        ),
        "{e}"
    );

    let e = one("sqitch-meta");
    assert!(e.starts_with("bad/sqitch-meta/deploy/switch_db.sql:5:1: psql meta-command `\\connect` is not supported"), "{e}");

    // All problems at once, in order; the good file does not hide them.
    let e = bad("many");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("bad/many/1_quote.sql:2:23: this quoted string is never closed"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("bad/many/2_comment.sql:2:1: this block comment is never closed"),
        "{e:?}"
    );

    let e = errors(&Spec::new(fixture("bad/ambiguous")));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("migrations.layout: "), "{e:?}");
    assert!(
        e[0].contains("flyway (V1__flyway_style.sql)")
            && e[0].contains("golang-migrate (2_golang_migrate_style.up.sql)"),
        "{e:?}"
    );
    // Naming the layout settles it.
    let set =
        migrations::load(&Spec::new(fixture("bad/ambiguous")).layout(Layout::Flyway)).unwrap();
    assert_eq!(names(&set.files), vec!["V1__flyway_style.sql"]);

    let e = errors(&Spec::new(fixture("no-such-dir")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("migrations.dir: the migrations directory ")
            && e[0].contains("no-such-dir"),
        "{e:?}"
    );

    let e = migrations::parse_layout("liquibase").unwrap_err();
    assert_eq!(e.to_string(), "migrations.layout: unknown layout \"liquibase\"; known: flyway, golang-migrate, dbmate, goose, sqitch, prisma, plain");
}

#[test]
fn not_utf8_and_script_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("V1__latin1.sql"),
        b"-- caf\xe9\nSELECT 1;\n",
    )
    .unwrap();
    let e = migrations::load(&Spec::new(dir.path())).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert!(e.0[0].to_string().ends_with("V1__latin1.sql:1:7: not UTF-8 (byte 0xe9 at offset 6): migration tools read SQL as UTF-8; convert the file (e.g. iconv -f LATIN1 -t UTF-8)"), "{e}");

    // The .conf fix the REINDEX error suggests does work.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("bad/flyway-reindex/V1__reindex.sql"),
        dir.path().join("V1__reindex.sql"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("V1__reindex.sql.conf"),
        "# script configuration\nexecuteInTransaction=false\n",
    )
    .unwrap();
    let set = load(dir.path());
    assert_eq!(set.files[0].single_execution(), Some(Execution::Autocommit));
    assert_eq!(
        set.files[0].segments[0].reason,
        "executeInTransaction=false in V1__reindex.sql.conf"
    );
    std::fs::write(
        dir.path().join("V1__reindex.sql.conf"),
        "shouldExecute=true\n",
    )
    .unwrap();
    let e = migrations::load(&Spec::new(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("V1__reindex.sql.conf:1:1: script configuration shouldExecute is not supported"),
        "{e}"
    );

    // mixed = true runs the whole mixed file in autocommit.
    let mut spec = Spec::new(fixture("bad/flyway-mixed"));
    spec.options.flyway.mixed = true;
    let set = migrations::load(&spec).unwrap();
    assert_eq!(set.files[0].single_execution(), Some(Execution::Autocommit));
    assert_eq!(set.files[0].segments[0].statements.len(), 2);
    assert!(set.files[0].segments[0].reason.starts_with("mixed = true"));
}

/// Sqitch runs psql from the project's directory, where sqitch.conf is:
/// a deploy script's `\i` is relative to it, not to top_dir (QA: with
/// top_dir = sql, `\i sql/lib/common.sql` was looked for in sql/sql/lib).
#[test]
fn a_sqitch_include_is_relative_to_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sql/deploy")).unwrap();
    std::fs::create_dir_all(root.join("sql/lib")).unwrap();
    std::fs::write(
        root.join("sqitch.conf"),
        "[core]\n\tengine = pg\n\ttop_dir = sql\n",
    )
    .unwrap();
    std::fs::write(
        root.join("sql/sqitch.plan"),
        "%syntax-version=1.0.0\n%project=p\n\nnote 2024-01-01T00:00:00Z A <a@b.c> # note\n",
    )
    .unwrap();
    std::fs::write(
        root.join("sql/deploy/note.sql"),
        "BEGIN;\n\\i sql/lib/common.sql\nCOMMIT;\n",
    )
    .unwrap();
    std::fs::write(
        root.join("sql/lib/common.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let set = load(root);
    let sql: Vec<&str> = set.files[0].segments[0]
        .statements
        .iter()
        .map(|s| s.sql.as_str())
        .collect();
    assert!(sql.iter().any(|s| s.contains("CREATE TABLE t")), "{sql:?}");
}

/// A Flyway baseline (`B2__`) takes the place of V1 and V2 on an empty
/// database only. A rehearsal of later versions stands for a database
/// migrated before the baseline existed: it rehearses V2 and V3 after V1,
/// never the baseline (QA: `last = 2` rehearsed B2 and V3 on an empty
/// setup); one from V3 sets up the baseline.
#[test]
fn a_flyway_baseline_is_set_up_never_rehearsed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in [
        ("V1__init.sql", "CREATE TABLE items (id int);\n"),
        ("V2__a.sql", "ALTER TABLE items ADD COLUMN a int;\n"),
        ("B2__baseline.sql", "CREATE TABLE items (id int, a int);\n"),
        ("V3__b.sql", "ALTER TABLE items ADD COLUMN b int;\n"),
    ] {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let set = load(dir.path());
    let split = |sel: Selection| {
        let plan = set.select(&sel).unwrap();
        (names(plan.setup), names(plan.rehearse))
    };
    let both = (vec!["V1__init.sql"], vec!["V2__a.sql", "V3__b.sql"]);
    assert_eq!(split(Selection::Last(2)), both);
    assert_eq!(split(Selection::From("2".into())), both);
    assert_eq!(
        split(Selection::From("3".into())),
        (vec!["B2__baseline.sql"], vec!["V3__b.sql"])
    );
    // An empty database: what Flyway applies there.
    assert_eq!(
        split(Selection::All),
        (vec![], vec!["B2__baseline.sql", "V3__b.sql"])
    );
}

/// A migration whose file name is not UTF-8 was dropped without a word, and
/// the file before it rehearsed in its place (QA); a plain file holding
/// another tool's down section ran it right after its up statements.
#[test]
fn unnamed_files_and_down_sections_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("V1__init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"V2__caf\xe9.sql");
    std::fs::write(dir.path().join(odd), "ALTER TABLE t ADD a int;\n").unwrap();
    let e = migrations::load(&Spec::new(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has a name that is not UTF-8") && e.contains("rename it"),
        "{e}"
    );
    // Other files with such names (not SQL) are none of the tools' business.
    std::fs::remove_file(dir.path().join(odd)).unwrap();
    std::fs::write(
        dir.path()
            .join(std::ffi::OsStr::from_bytes(b"notes\xe9.txt")),
        "x",
    )
    .unwrap();
    assert_eq!(load(dir.path()).files.len(), 1);

    for (marker, tool) in [
        ("-- +migrate Down", "sql-migrate's"),
        ("-- +goose Down", "goose's"),
        ("-- migrate:down", "dbmate's"),
        ("-- Down Migration", "node-pg-migrate's"),
        ("-- !Downs", "Play evolutions'"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("001_add.sql"),
            format!("ALTER TABLE t ADD note text;\n\n{marker}\nALTER TABLE t DROP note;\n"),
        )
        .unwrap();
        let mut spec = Spec::new(dir.path());
        spec.layout = Some(migrations::Layout::Plain);
        let e = errors(&spec).join("\n");
        assert!(
            e.contains("001_add.sql:3:1:") && e.contains(&format!("starts {tool} down section")),
            "{e}"
        );
    }
}

/// A sqlx project read as plain ran each `.down.sql` before its `.up.sql`
/// (QA: natural order puts "down" first), exit 0; its files in a
/// subdirectory were skipped without a word; a file name with a line break
/// broke the plan's layout.
#[test]
fn plain_refuses_down_files_and_names_what_it_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in [
        (
            "20240101000000_init.up.sql",
            "CREATE TABLE t (id int);
",
        ),
        (
            "20240101000000_init.down.sql",
            "DROP TABLE t;
",
        ),
        (
            "20240102000000_b.up.sql",
            "ALTER TABLE t ADD b int;
",
        ),
        (
            "20240102000000_b.down.sql",
            "ALTER TABLE t DROP b;
",
        ),
    ] {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let mut spec = Spec::new(dir.path());
    spec.layout = Some(migrations::Layout::Plain);
    let e = errors(&spec).join("\n");
    assert!(
        e.contains("named as a down migration (20240101000000_init.down.sql and 1 more)")
            && e.contains("layout = \"golang-migrate\""),
        "{e}"
    );
    // As golang-migrate (which it is detected as), the pairs are read.
    spec.layout = Some(migrations::Layout::GolangMigrate);
    assert_eq!(migrations::load(&spec).unwrap().files.len(), 2);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_a.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::create_dir(dir.path().join("later")).unwrap();
    std::fs::write(
        dir.path().join("later/002_b.sql"),
        "ALTER TABLE t ADD b int;\n",
    )
    .unwrap();
    let mut spec = Spec::new(dir.path());
    spec.layout = Some(migrations::Layout::Plain);
    let set = migrations::load(&spec).unwrap();
    assert_eq!(set.files.len(), 1);
    assert_eq!(set.ignored.len(), 1, "{:?}", set.ignored);
    assert!(set.ignored[0].path.ends_with("later/002_b.sql"));
    assert!(set.ignored[0].reason.contains("in a subdirectory"));

    std::fs::write(dir.path().join("003_new\nline.sql"), "SELECT 1;\n").unwrap();
    let e = migrations::load(&spec).unwrap_err().to_string();
    assert!(
        e.contains("a line break or another control character in its name"),
        "{e}"
    );
}

/// The server's error position is in the text it was sent, placeholders
/// substituted: it is placed in the file as written, whatever the values'
/// lengths and lines.
#[test]
fn a_server_error_position_after_a_placeholder_is_placed_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("V1__p.sql"),
        "ALTER TABLE ${tbl}\n  ADD COLUMN ${cols},\n  ADD COLUMN d int NOT NUL;\n",
    )
    .unwrap();
    let mut spec = Spec::new(dir.path());
    let values = [
        ("tbl", "orders"),
        ("cols", "a int,\n  ADD COLUMN b int,\n  ADD COLUMN c int"),
    ];
    for (k, v) in values {
        spec.options.flyway.placeholders.insert(k.into(), v.into());
    }
    let set = migrations::load(&spec).unwrap();
    let st = set.files[0].statements().next().unwrap().clone();
    // The server counts characters from 1.
    let at = |needle: &str| {
        let byte = st.sql.find(needle).unwrap();
        let loc = st.location_at(Some(st.sql[..byte].chars().count() + 1));
        (loc.line, loc.column)
    };
    assert_eq!(at("NUL"), (3, 24), "after both placeholders");
    assert_eq!(at("b int"), (2, 14), "inside a value: the placeholder");
    assert_eq!(at("orders"), (1, 13));
    assert_eq!(at("ALTER"), (1, 1));
    assert_eq!(at("ADD COLUMN a"), (2, 3), "between them");
}

#[test]
fn flyway_placeholders_are_substituted_and_positions_stay_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("V1__p.sql"),
        "CREATE TABLE ${flyway:defaultSchema}.${Table} (x int);\nCOMMENT ON TABLE ${table} IS '${flyway:filename}';\n-- ${owner}\nSELECT 1;\n",
    )
    .unwrap();
    let mut spec = Spec::new(dir.path());
    spec.options
        .flyway
        .placeholders
        .insert("table".into(), "accounts_with_a_long_name".into());
    let e = migrations::load(&spec).unwrap_err().to_string();
    assert!(
        e.contains("V1__p.sql:3:4: Flyway would fail: no value for the placeholder ${owner}"),
        "{e}"
    );
    spec.options
        .flyway
        .placeholders
        .insert("OWNER".into(), "app".into());
    let set = migrations::load(&spec).unwrap();
    let st: Vec<_> = set.files[0].statements().collect();
    assert_eq!(
        st[0].sql,
        "CREATE TABLE public.accounts_with_a_long_name (x int)"
    );
    assert_eq!(
        st[1].sql,
        "COMMENT ON TABLE accounts_with_a_long_name IS 'V1__p.sql'"
    );
    assert_eq!((st[2].location.line, st[2].location.column), (4, 1));
    assert_eq!(st[2].sql, "-- app\nSELECT 1");
    // A built-in Flyway fills from its connection: no claim that Flyway
    // would fail, and the scenario's value is taken.
    std::fs::write(
        dir.path().join("V2__own.sql"),
        "ALTER TABLE accounts_with_a_long_name OWNER TO ${flyway:user};\n",
    )
    .unwrap();
    let e = migrations::load(&spec).unwrap_err().to_string();
    assert!(
        e.contains("V2__own.sql:1:48: Flyway fills the built-in ${flyway:user} with the user it connects as"),
        "{e}"
    );
    spec.options
        .flyway
        .placeholders
        .insert("flyway:user".into(), "app_owner".into());
    let set = migrations::load(&spec).unwrap();
    assert_eq!(
        set.files[1].statements().next().unwrap().sql,
        "ALTER TABLE accounts_with_a_long_name OWNER TO app_owner"
    );
    // Replacement off: the text stays as written.
    spec.options.flyway.placeholder_replacement = false;
    let set = migrations::load(&spec).unwrap();
    assert!(set.files[0]
        .statements()
        .next()
        .unwrap()
        .sql
        .contains("${Table}"));
}

#[test]
fn errors_map_onto_scenario_errors() {
    let e = migrations::load(&Spec::new(fixture("bad/ambiguous"))).unwrap_err();
    let scenario = Path::new("scenarios/release.toml");
    let mapped = e.to_scenario_errors(scenario, |s| match s {
        Setting::Layout => (7, 1),
        _ => (0, 0),
    });
    assert_eq!(mapped[0].file, scenario);
    assert_eq!((mapped[0].line, mapped[0].column), (7, 1));
    assert_eq!(mapped[0].field, "migrations.layout");
    let e = migrations::load(&Spec::new(fixture("bad/flyway-mixed"))).unwrap_err();
    let mapped = e.to_scenario_errors(scenario, |_| (0, 0));
    assert_eq!(mapped[0].file, fixture("bad/flyway-mixed/V1__mixed.sql"));
    assert_eq!((mapped[0].line, mapped[0].column), (3, 1));
    assert!(mapped[0].field.is_empty());
    assert!(mapped[0]
        .to_string()
        .starts_with(&format!("{}:3:1: Flyway refuses", mapped[0].file.display())));
}

/// A DO block that says COMMIT, in a file the tool runs in a transaction,
/// fails with 2D000 in production as in the rehearsal: `check` says so
/// before anything runs. One the tool runs outside a transaction (a
/// golang-migrate file holding only it) gets no note.
#[test]
fn a_do_block_that_commits_inside_the_files_transaction_is_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("V1__batches.sql"),
        "CREATE TABLE t (id int);\n\
         DO $$ BEGIN\n  UPDATE t SET id = id;\n  COMMIT;\nEND $$;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("V2__plain.sql"),
        "DO $$ BEGIN PERFORM 1; END $$;\n",
    )
    .unwrap();
    let set = load(dir);
    assert_eq!(set.files[0].notes.len(), 1, "{:?}", set.files[0].notes);
    assert!(
        set.files[0].notes[0].starts_with("the DO block at line 2 says COMMIT or ROLLBACK"),
        "{:?}",
        set.files[0].notes
    );
    assert!(set.files[1].notes.is_empty(), "{:?}", set.files[1].notes);
}

/// dbmate finds `-- migrate:up` by line: a byte order mark before it hides
/// it (dbmate refuses the file), one before a first comment goes nowhere
/// (dbmate runs the file). QA: both were refused, the first with a reason
/// dbmate never gets to.
#[test]
fn a_dbmate_files_byte_order_mark_matters_only_before_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("20240101000000_a.sql");
    std::fs::write(
        &path,
        "\u{feff}-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n",
    )
    .unwrap();
    let mut spec = Spec::new(dir.path());
    spec.layout = Some(migrations::Layout::Dbmate);
    let e = errors(&spec).join("\n");
    assert!(e.contains("does not see the `-- migrate:up` there"), "{e}");
    std::fs::write(
        &path,
        "\u{feff}-- the accounts table\n-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\n",
    )
    .unwrap();
    assert_eq!(migrations::load(&spec).unwrap().files.len(), 1);
}

/// A layout detected from the names, with no migration of it there: the
/// error says it was detected (QA: "leave it out to detect it", when it
/// had been left out).
#[test]
fn a_detected_layout_with_nothing_to_apply_says_it_was_detected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0002_add.down.sql"), "DROP TABLE t;\n").unwrap();
    let set = migrations::load(&Spec::new(dir.path())).unwrap();
    assert!(set.detected && set.files.is_empty());
    let e = set.select(&Selection::Last(1)).unwrap_err().to_string();
    assert!(
        e.contains("the layout was detected from the names there"),
        "{e}"
    );
}
