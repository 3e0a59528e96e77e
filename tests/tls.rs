//! TLS for url targets, against real servers: a local cluster this test
//! configures with its own CA (rcgen) and one without TLS. Every sslmode,
//! the CA and host-name checks, client certificates (PKCS#8, PKCS#1, SEC1),
//! channel binding, the environment variables and libpq's default files —
//! through the library, and through the real binary for the exit codes and
//! an end-to-end encrypted run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::backend::local::LocalCluster;
use pgrehearse::backend::url::{parse_database_url_with, redact_url};
use pgrehearse::backend::{BackendOptions, ConnInfo, ServerLog};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// The roles the test server's pg_hba.conf treats specially.
const HBA: &str = "\
hostssl   all certuser 127.0.0.1/32 cert
host      all certuser 127.0.0.1/32 reject
hostnossl all tlsonly  127.0.0.1/32 reject
host      all all      127.0.0.1/32 scram-sha-256
local     all all                   scram-sha-256
";

/// A CA, another CA, a server certificate for `localhost` only (not
/// 127.0.0.1), client certificates for `certuser`, a pg_hba.conf, and empty
/// home directories — in a directory the server (run as `postgres`) can read.
struct Pki {
    dir: tempfile::TempDir,
    /// The CA of ca.crt, to sign more server certificates.
    ca: Option<Issuer<'static, KeyPair>>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("pgrehearse-tls-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut pki = Pki { dir, ca: None };
        let ca = pki.ca("ca.crt", "pgrehearse test CA");
        let other_ca = pki.ca("other-ca.crt", "some other CA");

        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = server.signed_by(&server_key, &ca).unwrap();
        pki.serve(&cert.pem(), &server_key);

        // Client certificates for certuser: a key rcgen makes (PKCS#8), the
        // fixtures' RSA (PKCS#1) and EC (SEC1) keys, and one from another CA.
        let key = KeyPair::generate().unwrap();
        pki.write("client.key", &key.serialize_pem(), 0o600);
        pki.client_cert("client.crt", &key, &ca);
        for kind in ["rsa", "ec"] {
            let fixture = |name: &str| {
                std::fs::read_to_string(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/fixtures/tls")
                        .join(name),
                )
                .unwrap()
            };
            let public = KeyPair::from_pem(&fixture(&format!("client-{kind}.pkcs8.key"))).unwrap();
            pki.client_cert(&format!("client-{kind}.crt"), &public, &ca);
            let key_file = if kind == "rsa" {
                "client-rsa.pkcs1.key"
            } else {
                "client-ec.sec1.key"
            };
            pki.write(key_file, &fixture(key_file), 0o600);
        }
        pki.write(
            "client-ec.encrypted.key",
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/tls/client-ec.encrypted.key"),
            )
            .unwrap(),
            0o600,
        );
        pki.client_cert("stranger.crt", &key, &other_ca);
        pki.write("client-loose.key", &key.serialize_pem(), 0o644);

        pki.write("pg_hba.conf", HBA, 0o644);
        std::fs::create_dir(pki.path("home")).unwrap();
        pki.ca = Some(ca);
        pki
    }

    /// Make `cert` and `key` the server's (a running server takes them on reload).
    fn serve(&self, cert: &str, key: &KeyPair) {
        self.write("server.crt", cert, 0o644);
        self.write("server.key", &key.serialize_pem(), 0o600);
        self.give_to_postgres("server.key");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `name` (its path, as a string for URLs).
    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, contents: &str, mode: u32) {
        std::fs::write(self.path(name), contents).unwrap();
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A CA written to `file`; its issuer for signing.
    fn ca(&self, file: &str, name: &str) -> Issuer<'static, KeyPair> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        self.write(file, &params.self_signed(&key).unwrap().pem(), 0o644);
        Issuer::new(params, key)
    }

    fn client_cert(
        &self,
        file: &str,
        public: &impl rcgen::PublicKeyData,
        ca: &Issuer<'_, KeyPair>,
    ) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "certuser");
        self.write(file, &params.signed_by(public, ca).unwrap().pem(), 0o644);
    }

    /// The server refuses a key file it does not own (it runs as `postgres` under root).
    fn give_to_postgres(&self, name: &str) {
        let out = Command::new("id").args(["-u"]).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() != "0" {
            return;
        }
        let uid = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        std::os::unix::fs::chown(self.path(name), Some(uid("-u")), Some(uid("-g"))).unwrap();
    }

    /// A home directory whose `.postgresql` holds `files` (name in the PKI → name there).
    fn home_with(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name).join(".postgresql");
        std::fs::create_dir_all(&dir).unwrap();
        for (from, to) in files {
            std::fs::copy(self.path(from), dir.join(to)).unwrap();
        }
        self.path(name)
    }
}

/// A cluster with TLS on, the test's CA for client certificates and its
/// pg_hba.conf; roles `certuser` (certificate only) and `tlsonly` (TLS only).
async fn tls_server(pki: &Pki) -> LocalCluster {
    let files = [
        ("ssl_cert_file", pki.p("server.crt")),
        ("ssl_key_file", pki.p("server.key")),
        ("ssl_ca_file", pki.p("ca.crt")),
        ("hba_file", pki.p("pg_hba.conf")),
    ];
    let mut settings = vec![("ssl", "on"), ("log_connections", "on")];
    settings.extend(files.iter().map(|(k, v)| (*k, v.as_str())));
    // A local cluster even under PGREHEARSE_TEST_URL: these tests configure
    // the server themselves.
    let server = LocalCluster::start(&BackendOptions::local(&settings))
        .await
        .expect("a local cluster with TLS");
    common::connect(server.conn(), "postgres")
        .await
        .batch_execute(
            "CREATE ROLE certuser LOGIN CREATEDB; \
             CREATE ROLE tlsonly LOGIN PASSWORD 'tlsonly-pw'",
        )
        .await
        .unwrap();
    server
}

/// `postgres://postgres:PW@host:PORT/postgres?params` for `server`.
fn url(server: &LocalCluster, host: &str, params: &str) -> String {
    let c = server.conn();
    format!(
        "postgres://postgres:{}@{host}:{}/postgres?{params}",
        c.password.as_deref().unwrap(),
        c.port
    )
}

/// A session opened the way the url backend opens them, with only `vars`
/// (and HOME=`home`) in the environment; the error text on failure.
async fn session(
    raw: &str,
    home: &Path,
    vars: &[(&str, &str)],
) -> Result<(ConnInfo, tokio_postgres::Client), String> {
    let home = home.display().to_string();
    let env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| (name == "HOME").then(|| home.clone()))
    };
    let (conn, db) = parse_database_url_with(raw, &env).map_err(|e| e.to_string())?;
    let client = conn
        .session_on(&db, "pgrehearse-test")
        .await
        .map_err(|e| e.to_string())?;
    Ok((conn, client))
}

/// The server's view: (encrypted?, TLS version, client certificate DN, user).
async fn ssl_of(client: &tokio_postgres::Client) -> (bool, String, String, String) {
    let r = client
        .query_one(
            "SELECT ssl, coalesce(version, ''), coalesce(client_dn, ''), current_user::text \
             FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Connect; the TLS version the server sees the session use, None if plain
/// text (panics with the error if connecting fails).
async fn tls_version(raw: &str, home: &Path, vars: &[(&str, &str)]) -> Option<String> {
    let (_, client) = session(raw, home, vars)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", redact_url(raw)));
    let (ssl, version, _, _) = ssl_of(&client).await;
    ssl.then_some(version)
}

/// Connect; is the session encrypted, as the server sees it?
async fn encrypted(raw: &str, home: &Path, vars: &[(&str, &str)]) -> bool {
    tls_version(raw, home, vars).await.is_some()
}

/// Connecting fails; the message.
async fn refused(raw: &str, home: &Path, vars: &[(&str, &str)]) -> String {
    match session(raw, home, vars).await {
        Ok(_) => panic!("{} connected", redact_url(raw)),
        Err(e) => {
            assert!(e.starts_with("no usable Postgres"), "exit 3: {e}");
            assert!(!e.contains("tlsonly-pw"), "{e}");
            e
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_certificate_is_checked_as_libpq_checks_it() {
    let pki = Pki::new();
    let server = tls_server(&pki).await;
    let at = |host: &str, params: &str| url(&server, host, params);
    let home = pki.path("home");
    let ca = format!("sslrootcert={}", pki.p("ca.crt"));
    let other = format!("sslrootcert={}", pki.p("other-ca.crt"));

    // verify-full: the CA, and the host name the certificate names.
    let full = format!("sslmode=verify-full&{ca}");
    let version = tls_version(&at("localhost", &full), &home, &[]).await;
    assert_eq!(version.as_deref(), Some("TLSv1.3"));
    let e = refused(&at("127.0.0.1", &full), &home, &[]).await;
    assert!(
        e.contains("not valid for the host name 127.0.0.1") && e.contains("sslmode=verify-ca"),
        "{e}"
    );
    let full_other = format!("sslmode=verify-full&{other}");
    let e = refused(&at("localhost", &full_other), &home, &[]).await;
    assert!(
        e.contains(&format!("not signed by a CA in {other}"))
            && e.contains("sslrootcert=PATH")
            && e.contains("sslmode=require"),
        "{e}"
    );
    let e = refused(&at("localhost", "sslmode=verify-full"), &home, &[]).await;
    assert!(e.contains("root.crt does not exist"), "{e}");

    // verify-ca: the CA, not the host name.
    let verify_ca = format!("sslmode=verify-ca&{ca}");
    assert!(encrypted(&at("127.0.0.1", &verify_ca), &home, &[]).await);
    let e = refused(
        &at("127.0.0.1", &verify_ca.replace(&ca, &other)),
        &home,
        &[],
    )
    .await;
    assert!(e.contains("not signed by a CA"), "{e}");

    // libpq's default root.crt serves verify-full without sslrootcert ...
    let home_ca = pki.home_with("home-ca", &[("ca.crt", "root.crt")]);
    assert!(encrypted(&at("localhost", "sslmode=verify-full"), &home_ca, &[]).await);
    // ... and, as in libpq, makes require check the chain ...
    let home_other = pki.home_with("home-other", &[("other-ca.crt", "root.crt")]);
    assert!(encrypted(&at("127.0.0.1", "sslmode=require"), &home, &[]).await);
    let e = refused(&at("127.0.0.1", "sslmode=require"), &home_other, &[]).await;
    assert!(
        e.contains("not signed by a CA in the default root certificate file"),
        "{e}"
    );
    // ... while prefer falls back to plain text when the handshake fails.
    assert!(!encrypted(&at("127.0.0.1", "sslmode=prefer"), &home_other, &[]).await);

    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sslmodes_environment_channel_binding_and_cancel() {
    let pki = Pki::new();
    let server = tls_server(&pki).await;
    let at = |host: &str, params: &str| url(&server, host, params);
    let home = pki.path("home");
    let ca = format!("sslrootcert={}", pki.p("ca.crt"));

    // prefer (the default) encrypts when offered; disable never does; allow
    // starts in plain text and takes TLS when the server refuses plain text.
    assert!(encrypted(&at("127.0.0.1", ""), &home, &[]).await);
    assert!(!encrypted(&at("127.0.0.1", "sslmode=disable"), &home, &[]).await);
    assert!(!encrypted(&at("127.0.0.1", "sslmode=allow"), &home, &[]).await);
    let port = server.conn().port;
    let tlsonly = format!("postgres://tlsonly:tlsonly-pw@127.0.0.1:{port}/postgres?sslmode=allow");
    assert!(encrypted(&tlsonly, &home, &[]).await);
    let e = refused(&tlsonly.replace("allow", "disable"), &home, &[]).await;
    assert!(e.contains("no encryption"), "{e}");

    // Protocol versions; the environment, which the URL overrides.
    let tls12 = at("127.0.0.1", "ssl_max_protocol_version=TLSv1.2");
    assert_eq!(
        tls_version(&tls12, &home, &[]).await.as_deref(),
        Some("TLSv1.2")
    );
    let ca_file = pki.p("ca.crt");
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", ca_file.as_str()),
    ];
    assert!(encrypted(&at("localhost", ""), &home, &env).await);
    let e = refused(&at("127.0.0.1", ""), &home, &env).await;
    assert!(e.contains("not valid for the host name"), "{e}");
    assert!(!encrypted(&at("127.0.0.1", "sslmode=disable"), &home, &env).await);

    // SCRAM-SHA-256-PLUS: channel binding over TLS needs our tls-server-end-point.
    let bound = format!("sslmode=verify-full&{ca}&channel_binding=require");
    assert!(encrypted(&at("localhost", &bound), &home, &[]).await);
    let unbound = "sslmode=disable&channel_binding=require";
    let e = refused(&at("127.0.0.1", unbound), &home, &[]).await;
    assert!(e.contains("channel binding"), "{e}");

    // Direct TLS (no SSLRequest) is PostgreSQL 17's; this server is older.
    let direct = format!("sslmode=verify-full&{ca}&sslnegotiation=direct");
    let e = refused(&at("localhost", &direct), &home, &[]).await;
    assert!(e.contains("PostgreSQL 17"), "{e}");

    // A cancel request travels over TLS too.
    let (conn, client) = session(&at("127.0.0.1", "sslmode=require"), &home, &[])
        .await
        .unwrap();
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
    let watcher = common::connect(server.conn(), "postgres").await;
    let sleeping = "SELECT count(*) FROM pg_stat_activity \
                    WHERE state = 'active' AND query = 'SELECT pg_sleep(60)'";
    while watcher
        .query_one(sleeping, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    conn.cancel(&token).await;
    let err = sleeper.await.unwrap().unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
    assert!(started.elapsed().as_secs() < 20);

    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_in_every_key_format() {
    let pki = Pki::new();
    let server = tls_server(&pki).await;
    let home = pki.path("home");
    let port = server.conn().port;
    let as_certuser = |cert: &str, key: &str| {
        format!(
            "postgres://certuser@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}\
             &sslcert={}&sslkey={}",
            pki.p("ca.crt"),
            pki.p(cert),
            pki.p(key)
        )
    };
    for (cert, key) in [
        ("client.crt", "client.key"),
        ("client-rsa.crt", "client-rsa.pkcs1.key"),
        ("client-ec.crt", "client-ec.sec1.key"),
    ] {
        let (_, client) = session(&as_certuser(cert, key), &home, &[])
            .await
            .unwrap_or_else(|e| panic!("{cert} {key}: {e}"));
        let (ssl, _, dn, user) = ssl_of(&client).await;
        assert!(
            ssl && dn == "/CN=certuser" && user == "certuser",
            "{dn} {user}"
        );
    }
    // libpq's default files, and the environment variables.
    let home_id = pki.home_with(
        "home-id",
        &[
            ("ca.crt", "root.crt"),
            ("client.crt", "postgresql.crt"),
            ("client.key", "postgresql.key"),
        ],
    );
    std::fs::set_permissions(
        home_id.join(".postgresql/postgresql.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let bare = format!("postgres://certuser@localhost:{port}/postgres?sslmode=verify-full");
    assert!(session(&bare, &home_id, &[]).await.is_ok());
    let env = [
        ("PGSSLROOTCERT", pki.p("ca.crt")),
        ("PGSSLCERT", pki.p("client-ec.crt")),
        ("PGSSLKEY", pki.p("client-ec.sec1.key")),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(session(&bare, &home, &env).await.is_ok());

    // Without a certificate, with one from another CA, with a bad key file.
    let e = refused(&bare, &home, &[("PGSSLROOTCERT", &pki.p("ca.crt"))]).await;
    assert!(
        e.contains("requires a valid client certificate") && e.contains("sslcert=PATH"),
        "{e}"
    );
    let e = refused(&as_certuser("stranger.crt", "client.key"), &home, &[]).await;
    assert!(e.contains("rejected our client certificate"), "{e}");
    let e = refused(&as_certuser("client.crt", "client-loose.key"), &home, &[]).await;
    assert!(
        e.contains("has group or world access") && e.contains("chmod 600"),
        "{e}"
    );
    let e = refused(
        &as_certuser("client-ec.crt", "client-ec.encrypted.key"),
        &home,
        &[],
    )
    .await;
    assert!(
        e.contains("is encrypted") && e.contains("openssl pkey"),
        "{e}"
    );
    let e = refused(&as_certuser("client-rsa.crt", "client.key"), &home, &[]).await;
    assert!(e.contains("does sslkey belong to sslcert"), "{e}");

    server.teardown().await.unwrap();
}

/// `pgrehearse run tiny.toml --backend url --database-url URL`, HOME=`home`
/// and no TLS variable in the environment but `vars`: (exit code, stderr,
/// run.json if written).
/// The exit code, stderr, and the run's run.json and summary.json.
fn run_binary(
    home: &Path,
    url: &str,
    vars: &[(&str, String)],
) -> (i32, String, Option<(String, String)>) {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.arg("run")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/tiny.toml"))
        .args(["-q", "--backend", "url", "--database-url", url, "--out"])
        .arg(out.path())
        .env("HOME", home);
    for var in [
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGPASSWORD",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    let done = cmd.output().unwrap();
    let run_json = std::fs::read_dir(out.path().join("tiny"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| {
            let dir = e.unwrap().path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            Some((read("run.json")?, read("summary.json")?))
        });
    (
        done.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&done.stderr).into_owned(),
        run_json,
    )
}

/// [`run_binary`] off the async runtime.
async fn run_binary_async(
    home: &Path,
    url: String,
    vars: Vec<(&'static str, String)>,
) -> (i32, String, Option<(String, String)>) {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || run_binary(&home, &url, &vars))
        .await
        .unwrap()
}

/// A run with PGSSLMODE=verify-full and PGSSLROOTCERT from the environment:
/// run.json says how the target was secured, and the server saw every one
/// of the run's sessions arrive over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_over_verify_full_is_encrypted_end_to_end() {
    let pki = Pki::new();
    let server = tls_server(&pki).await;
    let Some(ServerLog::File(log)) = server.server_log() else {
        panic!("the local cluster has a log file");
    };
    let logged_before = std::fs::read_to_string(&log).unwrap().len();
    let ca = pki.p("ca.crt");
    let (code, stderr, run) = run_binary_async(
        &pki.path("home"),
        url(&server, "localhost", ""),
        vec![
            ("PGSSLMODE", "verify-full".into()),
            ("PGSSLROOTCERT", ca.clone()),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let (run, summary) = run.unwrap();
    let run: serde_json::Value = serde_json::from_str(&run).unwrap();
    let described = run["target"].as_str().unwrap();
    assert!(
        described.contains("@localhost:")
            && described.contains("?sslmode=verify-full")
            && described.contains("TLS: TLSv1.3")
            && described.contains(&format!(
                "certificate and host name verified against sslrootcert={ca}"
            )),
        "{described}"
    );
    assert!(!described.contains(server.conn().password.as_deref().unwrap()));

    let log = std::fs::read_to_string(&log).unwrap();
    let sessions: Vec<&str> = log[logged_before..]
        .lines()
        .filter(|l| l.contains("connection authorized"))
        .collect();
    assert!(sessions.len() >= 5, "{sessions:?}");
    let plain: Vec<&&str> = sessions
        .iter()
        .filter(|l| !l.contains("SSL enabled"))
        .collect();
    assert!(plain.is_empty(), "sessions without TLS: {plain:?}");
    // The app connections hand their TLS stream over to the load driver
    // (backend::wire_stream); they must have been among them, and served.
    assert!(
        sessions.iter().any(|l| l.contains("pgrehearse/app/")),
        "no app session: {sessions:?}"
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    for app in summary["apps"].as_array().unwrap() {
        assert!(app["latency"]["requests"].as_u64().unwrap() > 0, "{app}");
        assert_eq!(app["latency"]["errors"].as_u64(), Some(0), "{app}");
    }
    server.teardown().await.unwrap();
}

/// TLS failures are exit 3 with a message saying what to do, and a server
/// without TLS never gets a plain-text session from sslmode=require.
#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_are_exit_3_through_the_binary() {
    let pki = Pki::new();
    let plain = LocalCluster::start(&BackendOptions::local(&[]))
        .await
        .unwrap();
    let home = pki.path("home");

    let check = |url: String, vars: Vec<(&'static str, String)>, expect: &'static [&str]| {
        let home = home.clone();
        async move {
            let (code, stderr, _) = run_binary_async(&home, url, vars).await;
            assert_eq!(code, 3, "{stderr}");
            for e in expect {
                assert!(stderr.contains(e), "{e:?} not in {stderr}");
            }
        }
    };
    check(
        url(&plain, "127.0.0.1", "sslmode=require"),
        vec![],
        &["does not accept TLS connections", "sslmode=prefer"],
    )
    .await;
    check(
        url(&plain, "127.0.0.1", ""),
        vec![("PGSSLMODE", "require".into())],
        &["sslmode=require refuses plain text"],
    )
    .await;
    assert!(common::scratch_databases(plain.conn()).await.is_empty());
    // prefer and disable work in plain text against it.
    assert!(!encrypted(&url(&plain, "127.0.0.1", "sslmode=prefer"), &home, &[]).await);
    assert!(!encrypted(&url(&plain, "127.0.0.1", "sslmode=disable"), &home, &[]).await);

    let server = tls_server(&pki).await;
    check(
        url(
            &server,
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={}", pki.p("ca.crt")),
        ),
        vec![],
        &["not valid for the host name 127.0.0.1", "sslmode=verify-ca"],
    )
    .await;
    check(
        url(&server, "localhost", "sslmode=verify-full"),
        vec![],
        &["root.crt does not exist", "sslrootcert=PATH"],
    )
    .await;
    check(
        url(&server, "localhost", ""),
        vec![
            ("PGSSLMODE", "verify-ca".into()),
            ("PGSSLROOTCERT", pki.p("other-ca.crt")),
        ],
        &["not signed by a CA in sslrootcert=", "other-ca.crt"],
    )
    .await;
    check(
        url(
            &server,
            "localhost",
            "sslmode=verify-ca&sslrootcert=/no/such/ca.pem",
        ),
        vec![],
        &["cannot read sslrootcert=/no/such/ca.pem"],
    )
    .await;
    assert!(common::scratch_databases(server.conn()).await.is_empty());
    plain.teardown().await.unwrap();
    server.teardown().await.unwrap();
}

/// Have `server` reload its configuration (and so its certificate) and
/// wait until the postmaster has done so.
async fn reload(server: &LocalCluster) {
    let Some(ServerLog::File(log)) = server.server_log() else {
        panic!("the local cluster has a log file");
    };
    let reloads = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("received SIGHUP")
            .count()
    };
    let before = reloads();
    common::connect(server.conn(), "postgres")
        .await
        .execute("SELECT pg_reload_conf()", &[])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reloads() == before {
        assert!(std::time::Instant::now() < deadline, "no reload logged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Certificates that OpenSSL (hence libpq) accepts and webpki alone would
/// not: a self-signed CA certificate as the server's own (what `openssl req
/// -x509` makes, the PostgreSQL docs' recipe) and a name only in the CN.
/// And an expired one, refused with a message saying so.
#[tokio::test(flavor = "multi_thread")]
async fn certificates_libpq_accepts_are_accepted() {
    let pki = Pki::new();
    let server = tls_server(&pki).await;
    let home = pki.path("home");
    let ca = pki.ca.as_ref().unwrap();
    let with = |params: &str, ca_file: &str| format!("{params}&sslrootcert={}", pki.p(ca_file));

    let key = KeyPair::generate().unwrap();
    let mut own = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    own.distinguished_name.push(DnType::CommonName, "localhost");
    own.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let own = own.self_signed(&key).unwrap().pem();
    pki.write("self.crt", &own, 0o644);
    pki.serve(&own, &key);
    reload(&server).await;
    let full = with("sslmode=verify-full", "self.crt");
    assert!(encrypted(&url(&server, "localhost", &full), &home, &[]).await);
    let verify_ca = with("sslmode=verify-ca", "self.crt");
    assert!(encrypted(&url(&server, "127.0.0.1", &verify_ca), &home, &[]).await);
    let e = refused(&url(&server, "127.0.0.1", &full), &home, &[]).await;
    assert!(e.contains("not valid for the host name 127.0.0.1"), "{e}");
    let e = refused(
        &url(&server, "127.0.0.1", &with("sslmode=verify-ca", "ca.crt")),
        &home,
        &[],
    )
    .await;
    assert!(e.contains("not signed by a CA"), "{e}");

    let mut cn_only = CertificateParams::new(Vec::<String>::new()).unwrap();
    cn_only
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    pki.serve(&cn_only.signed_by(&key, ca).unwrap().pem(), &key);
    reload(&server).await;
    let full = with("sslmode=verify-full", "ca.crt");
    assert!(encrypted(&url(&server, "localhost", &full), &home, &[]).await);
    let e = refused(&url(&server, "127.0.0.1", &full), &home, &[]).await;
    assert!(e.contains("not valid for the host name 127.0.0.1"), "{e}");

    let mut expired = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    expired.not_before = rcgen::date_time_ymd(2020, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2021, 1, 1);
    pki.serve(&expired.signed_by(&key, ca).unwrap().pem(), &key);
    reload(&server).await;
    let e = refused(&url(&server, "localhost", &full), &home, &[]).await;
    assert!(
        e.contains("outside its validity period") && e.contains("renew"),
        "{e}"
    );
    assert!(encrypted(&url(&server, "localhost", "sslmode=require"), &home, &[]).await);

    server.teardown().await.unwrap();
}
