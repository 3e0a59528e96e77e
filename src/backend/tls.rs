//! TLS for sessions to a server we do not own (the url backend), with libpq's
//! parameters and semantics — so that a `--database-url` that works with psql
//! is just as safe here, and one that asks for encryption never gets less.
//!
//! A parameter comes from the URL / conninfo (url.rs takes the TLS keys out
//! before tokio-postgres sees the rest), else from libpq's environment
//! variable, else from libpq's default file under `~/.postgresql`. All of it
//! is resolved and every file read once, when the backend starts, so a bad
//! file fails before anything is created. Any problem is exit 3.
//!
//! Where pgrehearse is stricter than libpq (README "TLS"): a certificate or
//! key file that is *named* (URL or environment) must exist, and
//! `ssl_min_protocol_version` below TLSv1.2 means TLSv1.2 (rustls speaks 1.2
//! and 1.3 only).
//!
//! This file is one concern read top to bottom — libpq's parameters, how
//! they resolve, how a session opens and is described — hence its length;
//! the rustls side is tls_handshake.rs, files and certificate fields certs.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_postgres::config::{ChannelBinding, SslMode as WireMode, SslNegotiation};
use tokio_postgres::CancelToken;

use super::certs::{read_certs, read_key};
use super::tls_handshake::{Check, Handshake, HandshakeContext, RustlsConnect, ServerCheck};
use super::wire_stream::{self, OpenError, SessionStream};
use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    /// Plain text; TLS only if the server refuses plain text.
    Allow,
    /// TLS if the server offers it (libpq's default).
    Prefer,
    /// TLS or nothing; the certificate is not checked (unless a root
    /// certificate file is there: then as verify-ca, as libpq does).
    Require,
    /// TLS, the certificate chain checked against the trusted CAs.
    VerifyCa,
    /// verify-ca, and the certificate names the host we connect to.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The connection parameters pgrehearse reads itself (all about TLS), each
/// with libpq's environment variable.
const PARAMS: &[(&str, Option<&str>)] = &[
    ("sslmode", Some("PGSSLMODE")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslpassword", None),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslsni", Some("PGSSLSNI")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("channel_binding", Some("PGCHANNELBINDING")),
];

/// The TLS parameters as given: from the URL / conninfo, then (for those
/// not given there) from the environment. Empty values count as not given.
#[derive(Debug, Clone, Default)]
pub struct TlsParams {
    values: BTreeMap<&'static str, String>,
}

impl TlsParams {
    /// The canonical name of `key` if it is a parameter this module reads.
    pub fn known_key(key: &str) -> Option<&'static str> {
        PARAMS.iter().map(|(k, _)| *k).find(|k| *k == key)
    }

    /// Set `key` (one of [`TlsParams::known_key`]); a later value wins, as in libpq.
    pub fn set(&mut self, key: &'static str, value: String) {
        self.values.insert(key, value);
    }

    /// Fill what the URL did not give from libpq's environment variables.
    pub fn or_env(mut self, env: &dyn Fn(&str) -> Option<String>) -> TlsParams {
        for (key, var) in PARAMS {
            let given = self.values.get(key).is_some_and(|v| !v.is_empty());
            if let (false, Some(value)) = (given, var.and_then(env)) {
                self.values.insert(key, value);
            }
        }
        self
    }

    #[cfg(test)]
    pub fn get_for_test(&self, key: &str) -> Option<&str> {
        self.get(key)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// What the server's certificate is trusted through.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    /// No CA given: the certificate cannot be checked.
    Nothing,
    /// A CA file: `sslrootcert=PATH`, or libpq's default `~/.postgresql/root.crt`.
    File { path: PathBuf, named: bool },
    /// `sslrootcert=system`: the operating system's trusted roots.
    System,
}

impl Trust {
    fn label(&self) -> String {
        match self {
            Trust::Nothing => "no CA".into(),
            Trust::File { path, named: true } => format!("sslrootcert={}", path.display()),
            Trust::File { path, named: false } => {
                format!("the default root certificate file {}", path.display())
            }
            Trust::System => "the system's trusted roots (sslrootcert=system)".into(),
        }
    }
}

/// How every session to one server is secured. Resolved once; cheap to clone.
#[derive(Clone)]
pub struct Tls {
    /// What the user asked for (or libpq's default).
    mode: SslMode,
    /// The server is reached over a Unix socket: no TLS there (as libpq).
    unix_socket: bool,
    /// Built from user parameters (shown in descriptions), not a server we own.
    from_user: bool,
    negotiation: SslNegotiation,
    channel_binding: Option<ChannelBinding>,
    check: Check,
    trust: Trust,
    client_cert: Option<PathBuf>,
    connect: RustlsConnect,
}

impl Tls {
    /// Plain text: for the servers pgrehearse starts itself and reaches over loopback.
    pub fn plaintext() -> Tls {
        Tls {
            mode: SslMode::Disable,
            unix_socket: false,
            from_user: false,
            negotiation: SslNegotiation::Postgres,
            channel_binding: None,
            check: Check::Nothing,
            trust: Trust::Nothing,
            client_cert: None,
            connect: RustlsConnect::none(),
        }
    }

    /// Resolve `params` for a server at `host` (a name, an address, or a
    /// socket directory); `home` is where `~/.postgresql` is looked for.
    pub fn resolve(params: &TlsParams, host: &str, home: Option<&Path>) -> Result<Tls> {
        let system_roots = params.get("sslrootcert") == Some("system");
        let mode = match params.get("sslmode") {
            Some(s) => SslMode::parse(s).ok_or_else(|| {
                bad(format!(
                    "invalid sslmode value \"{s}\": use disable, allow, prefer, require, \
                     verify-ca or verify-full"
                ))
            })?,
            // libpq: the system's roots are only meaningful with a host name check.
            None if system_roots => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system_roots && mode != SslMode::VerifyFull {
            return Err(bad(format!(
                "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                mode.as_str()
            )));
        }
        let negotiation = match params.get("sslnegotiation") {
            None | Some("postgres") => SslNegotiation::Postgres,
            Some("direct") if mode >= SslMode::Require => SslNegotiation::Direct,
            Some("direct") => {
                return Err(bad(format!(
                    "weak sslmode \"{}\" may not be used with sslnegotiation=direct \
                     (use \"require\", \"verify-ca\" or \"verify-full\")",
                    mode.as_str()
                )))
            }
            Some(s) => return Err(bad(invalid("sslnegotiation", s, "postgres or direct"))),
        };
        let channel_binding = match params.get("channel_binding") {
            None => None,
            Some("disable") => Some(ChannelBinding::Disable),
            Some("prefer") => Some(ChannelBinding::Prefer),
            Some("require") => Some(ChannelBinding::Require),
            Some(s) => {
                return Err(bad(invalid(
                    "channel_binding",
                    s,
                    "disable, prefer or require",
                )))
            }
        };
        let mut tls = Tls {
            mode,
            unix_socket: host.starts_with('/'),
            from_user: true,
            negotiation,
            channel_binding,
            ..Tls::plaintext()
        };
        // libpq never uses TLS over a Unix socket, and reads no file for sslmode=disable.
        if tls.wire_off() {
            return Ok(tls);
        }
        refuse_unsupported(params)?;
        if mode == SslMode::VerifyFull && ServerName::try_from(host).is_err() {
            return Err(bad(format!(
                "sslmode=verify-full needs a host name or an IP address to check the \
                 certificate against, and \"{host}\" is neither"
            )));
        }
        let (roots, pinned) = tls.load_trust(params, home)?;
        tls.check = match (&tls.trust, mode) {
            (Trust::Nothing, _) => Check::Nothing,
            (_, SslMode::VerifyFull) => Check::ChainAndHostName,
            // libpq: with a root certificate there, require (and prefer, allow) verify the chain.
            _ => Check::Chain,
        };
        let identity = tls.load_client_identity(params, home)?;
        let config = client_config(params, tls.check, roots, pinned, identity)?;
        tls.connect = RustlsConnect::new(
            Arc::new(config),
            HandshakeContext {
                mode: mode.as_str(),
                direct: negotiation == SslNegotiation::Direct,
                trust: tls.trust.label(),
                client_cert: tls.client_cert.as_ref().map(|p| p.display().to_string()),
            },
        );
        Ok(tls)
    }

    /// The sslmode in force (libpq's default: prefer).
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// No TLS on the wire at all (sslmode=disable, or a Unix socket).
    fn wire_off(&self) -> bool {
        self.mode == SslMode::Disable || self.unix_socket
    }

    /// The roots to check the server's certificate against, and the
    /// certificates of the CA file as given (a self-signed server
    /// certificate placed there is trusted as is, as OpenSSL does).
    fn load_trust(
        &mut self,
        params: &TlsParams,
        home: Option<&Path>,
    ) -> Result<(rustls::RootCertStore, Vec<CertificateDer<'static>>)> {
        let mut roots = rustls::RootCertStore::empty();
        let default = home.map(|h| h.join(".postgresql/root.crt"));
        let (path, named) = match params.get("sslrootcert") {
            Some("system") => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(bad(format!(
                        "sslrootcert=system: no trusted root certificates found on this system{}: \
                         install the CA certificates (Debian: ca-certificates) or set SSL_CERT_FILE",
                        found
                            .errors
                            .first()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )));
                }
                self.trust = Trust::System;
                return Ok((roots, Vec::new()));
            }
            Some(p) => (PathBuf::from(p), true),
            None => match default {
                Some(p) if p.exists() => (p, false),
                _ if self.mode >= SslMode::VerifyCa => {
                    return Err(bad(format!(
                        "sslmode={} needs the CA that signed the server's certificate, and the \
                         root certificate file {} does not exist: pass the CA with \
                         sslrootcert=PATH, use sslrootcert=system for the system's trusted \
                         roots, or use sslmode=require to encrypt without verifying",
                        self.mode.as_str(),
                        default
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "~/.postgresql/root.crt (HOME is not set)".into())
                    )))
                }
                _ => return Ok((roots, Vec::new())),
            },
        };
        let what = if named {
            format!("sslrootcert={}", path.display())
        } else {
            format!("the root certificate file {}", path.display())
        };
        let certs = read_certs(&path, &what).map_err(bad)?;
        for c in &certs {
            roots.add(c.clone()).map_err(|e| {
                bad(format!(
                    "{what}: a certificate in it cannot be used as a CA: {e}"
                ))
            })?;
        }
        self.trust = Trust::File { path, named };
        Ok((roots, certs))
    }

    /// The client certificate chain and key, if any: `sslcert`/`sslkey`, or
    /// libpq's default `~/.postgresql/postgresql.crt` / `.key` when present.
    fn load_client_identity(
        &mut self,
        params: &TlsParams,
        home: Option<&Path>,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        if params.get("sslcertmode") == Some("disable") {
            return Ok(None);
        }
        let cert_path = match params.get("sslcert") {
            Some(p) => PathBuf::from(p),
            None => match home.map(|h| h.join(".postgresql/postgresql.crt")) {
                Some(p) if p.exists() => p,
                _ => return Ok(None),
            },
        };
        let chain =
            read_certs(&cert_path, &format!("sslcert={}", cert_path.display())).map_err(bad)?;
        let key_path = match params.get("sslkey") {
            Some(p) => PathBuf::from(p),
            None => match home.map(|h| h.join(".postgresql/postgresql.key")) {
                Some(p) if p.exists() => p,
                _ => {
                    return Err(bad(format!(
                        "certificate present, but not private key file: sslcert={} needs \
                         sslkey=PATH (or ~/.postgresql/postgresql.key)",
                        cert_path.display()
                    )))
                }
            },
        };
        let key = read_key(&key_path, params.get("sslpassword").is_some()).map_err(bad)?;
        self.client_cert = Some(cert_path);
        Ok(Some((chain, key)))
    }

    /// Put the sslmode and friends on a session's config.
    pub fn apply(&self, cfg: &mut tokio_postgres::Config) {
        cfg.ssl_mode(match self.mode {
            _ if self.wire_off() => WireMode::Disable,
            SslMode::Disable | SslMode::Allow => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        })
        .ssl_negotiation(self.negotiation);
        if let Some(cb) = self.channel_binding {
            cfg.channel_binding(cb);
        }
    }

    /// Open a session with `cfg` (see [`Tls::apply`]); its connection is
    /// driven by a spawned task. `allow` and `prefer` retry as libpq does:
    /// allow with TLS when the server refuses plain text, prefer in plain
    /// text when the TLS handshake fails.
    pub async fn open(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
        match self.open_once(cfg).await {
            Err(e) => match self.retry_after(&e) {
                Some(wire) => self.open_once(&Tls::with_wire(cfg, wire)).await,
                None => Err(e),
            },
            ok => ok,
        }
    }

    /// Like [`Tls::open`], but the session's stream is handed to the caller
    /// (see `wire_stream`), with the key that cancels what it runs.
    pub async fn open_wire(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> std::result::Result<(SessionStream, CancelToken), OpenError> {
        match wire_stream::open(cfg, self.handshake(cfg)).await {
            Err(OpenError::Session(e)) => match self.retry_after(&e) {
                Some(wire) => {
                    let cfg = Tls::with_wire(cfg, wire);
                    wire_stream::open(&cfg, self.handshake(&cfg)).await
                }
                None => Err(OpenError::Session(e)),
            },
            r => r,
        }
    }

    /// Cancel what a session from [`Tls::open_wire`] runs; best effort.
    pub async fn cancel_wire(&self, cfg: &tokio_postgres::Config, token: &CancelToken) {
        wire_stream::cancel(cfg, token, self.handshake(cfg)).await;
    }

    fn handshake(&self, cfg: &tokio_postgres::Config) -> Handshake {
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.as_str(),
            _ => "",
        };
        self.connect.handshake(host)
    }

    /// `allow` and `prefer` retry as libpq does: allow with TLS when the
    /// server refuses plain text, prefer in plain text when the TLS
    /// handshake fails. The wire mode to retry with, after `e`.
    fn retry_after(&self, e: &tokio_postgres::Error) -> Option<WireMode> {
        let wire = match self.mode {
            _ if self.wire_off() => return None,
            SslMode::Allow if e.as_db_error().is_some() => WireMode::Require,
            SslMode::Prefer if super::tls_handshake::is_handshake_failure(e) => WireMode::Disable,
            _ => return None,
        };
        tracing::debug!(
            "sslmode={}: retrying {} after: {}",
            self.mode.as_str(),
            if wire == WireMode::Disable {
                "in plain text"
            } else {
                "with TLS"
            },
            crate::pg::error_text(e)
        );
        Some(wire)
    }

    fn with_wire(cfg: &tokio_postgres::Config, wire: WireMode) -> tokio_postgres::Config {
        let mut cfg = cfg.clone();
        cfg.ssl_mode(wire);
        cfg
    }

    async fn open_once(
        &self,
        cfg: &tokio_postgres::Config,
    ) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = cfg.connect(self.connect.clone()).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Send a cancel request the way the session was opened; best effort.
    pub async fn cancel(&self, token: &tokio_postgres::CancelToken) {
        let _ = token.cancel_query(self.connect.clone()).await;
    }

    /// `?sslmode=...` for a redacted URL, for connections the user configured.
    pub fn url_suffix(&self) -> String {
        if self.from_user {
            format!("?sslmode={}", self.mode.as_str())
        } else {
            String::new()
        }
    }

    /// What secured a session, for run.json's target: `observed` is the
    /// server's view of it (pg_stat_ssl, see [`observe`]).
    pub fn describe(&self, observed: &Observed) -> String {
        match observed {
            Observed::Encrypted { version, cipher } => {
                let mut s = format!("TLS: {version} {cipher}, ");
                s.push_str(&match self.check {
                    Check::Nothing => "server certificate not verified".to_string(),
                    Check::Chain => {
                        format!("certificate chain verified against {}", self.trust.label())
                    }
                    Check::ChainAndHostName => format!(
                        "certificate and host name verified against {}",
                        self.trust.label()
                    ),
                });
                if let Some(c) = &self.client_cert {
                    s.push_str(&format!(", client certificate {}", c.display()));
                }
                s
            }
            Observed::Plain if self.unix_socket => "not encrypted (Unix socket)".into(),
            Observed::Plain if self.mode == SslMode::Disable => {
                "not encrypted (sslmode=disable)".into()
            }
            Observed::Plain => format!(
                "not encrypted (sslmode={}: the server did not take TLS)",
                self.mode.as_str()
            ),
            Observed::Unknown(why) => format!(
                "sslmode={}; whether the session is encrypted is unknown ({why})",
                self.mode.as_str()
            ),
        }
    }

    /// What to do about a failed connection, when TLS is the reason.
    pub fn advice(&self, e: &tokio_postgres::Error) -> Option<String> {
        let refused = std::error::Error::source(e)
            .is_some_and(|s| s.to_string().contains("does not support TLS"));
        if refused {
            return Some(format!(
                "the server does not accept TLS connections and sslmode={} refuses plain text: \
                 turn ssl on in the server's postgresql.conf, or use sslmode=prefer (encrypt \
                 when offered) or sslmode=disable",
                self.mode.as_str()
            ));
        }
        let server_says = e.as_db_error().map(|db| db.message()).unwrap_or_default();
        if server_says.contains("requires a valid client certificate") {
            return Some(match &self.client_cert {
                None => "pass a client certificate with sslcert=PATH sslkey=PATH (or put them \
                         in ~/.postgresql/postgresql.crt and .key)"
                    .to_string(),
                Some(c) => format!("the server did not accept sslcert={}", c.display()),
            });
        }
        if server_says.contains("certificate authentication failed") {
            return Some(
                "the client certificate's CN must be the user name, or be mapped to it in the \
                 server's pg_ident.conf"
                    .into(),
            );
        }
        self.connect.advice(e)
    }
}

/// Whether a session is encrypted, as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Encrypted { version: String, cipher: String },
    Plain,
    Unknown(String),
}

/// The server's view of `client`'s session (pg_stat_ssl, 9.5+).
pub async fn observe(client: &tokio_postgres::Client) -> Observed {
    let row = client
        .query_opt(
            "SELECT ssl, coalesce(version, ''), coalesce(cipher, '') \
             FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await;
    match row {
        Ok(Some(r)) if r.get::<_, bool>(0) => Observed::Encrypted {
            version: r.get(1),
            cipher: r.get(2),
        },
        Ok(Some(_)) => Observed::Plain,
        Ok(None) => Observed::Unknown("no pg_stat_ssl row for this session".into()),
        Err(e) => Observed::Unknown(crate::pg::error_text(&e)),
    }
}

/// TLS parameters libpq knows and pgrehearse cannot honour: refusing them
/// beats connecting less safely than asked.
fn refuse_unsupported(params: &TlsParams) -> Result<()> {
    for key in ["sslcrl", "sslcrldir"] {
        if params.get(key).is_some() {
            return Err(bad(format!(
                "{key} (certificate revocation lists) is not supported by pgrehearse; \
                 remove it (and PGSSLCRL/PGSSLCRLDIR) to connect without revocation checks"
            )));
        }
    }
    match params.get("sslcertmode") {
        None | Some("allow") | Some("disable") => {}
        Some("require") => {
            return Err(bad(
                "sslcertmode=require is not supported by pgrehearse (use allow or disable)".into(),
            ))
        }
        Some(s) => return Err(bad(invalid("sslcertmode", s, "disable, allow or require"))),
    }
    match params.get("sslsni") {
        None | Some("0") | Some("1") => {}
        Some(s) => return Err(bad(invalid("sslsni", s, "0 or 1"))),
    }
    // Compression has been a no-op since libpq 16 (and OpenSSL refuses it): accept, ignore.
    match params.get("sslcompression") {
        None | Some("0") | Some("1") => Ok(()),
        Some(s) => Err(bad(invalid("sslcompression", s, "0 or 1"))),
    }
}

/// A rustls client config for `check`, with the protocol versions asked for.
fn client_config(
    params: &TlsParams,
    check: Check,
    roots: rustls::RootCertStore,
    pinned: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = protocol_versions(params)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| bad(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServerCheck::new(
            check, roots, pinned, provider,
        )));
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            bad(format!(
                "the client certificate and key cannot be used together \
                 (does sslkey belong to sslcert?): {e}"
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = params.get("sslsni") != Some("0");
    // What libpq 17 sends; required by PostgreSQL 17 with sslnegotiation=direct.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(config)
}

/// `ssl_min_protocol_version` (default TLSv1.2, as libpq) and
/// `ssl_max_protocol_version` within what rustls speaks: TLS 1.2 and 1.3.
fn protocol_versions(params: &TlsParams) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |key: &str, default: u8| -> Result<u8> {
        match params.get(key) {
            None => Ok(default),
            Some("TLSv1") => Ok(0),
            Some("TLSv1.1") => Ok(1),
            Some("TLSv1.2") => Ok(2),
            Some("TLSv1.3") => Ok(3),
            Some(s) => Err(bad(invalid(key, s, "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"))),
        }
    };
    let (min, max) = (
        rank("ssl_min_protocol_version", 2)?,
        rank("ssl_max_protocol_version", 3)?,
    );
    if min > max {
        return Err(bad(
            "ssl_min_protocol_version is above ssl_max_protocol_version".into(),
        ));
    }
    if max < 2 {
        return Err(bad(
            "ssl_max_protocol_version below TLSv1.2: pgrehearse speaks TLS 1.2 and 1.3 only".into(),
        ));
    }
    let mut versions = Vec::new();
    if min <= 3 && max >= 3 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= 2 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(versions)
}

fn invalid(key: &str, value: &str, expected: &str) -> String {
    format!("invalid {key} value \"{value}\": use {expected}")
}

fn bad(msg: String) -> Error {
    Error::NoPostgres(format!("TLS: {msg}"))
}
