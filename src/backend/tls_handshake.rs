//! One session's TLS handshake with rustls: the `MakeTlsConnect` tokio-postgres
//! calls, the server-certificate check each sslmode asks for (verify-ca checks
//! the chain but not the host name, which rustls' own verifier cannot do),
//! the `tls-server-end-point` channel binding that SCRAM-SHA-256-PLUS needs,
//! and failure messages that say what to do.
//!
//! Where libpq (through OpenSSL) accepts what webpki alone would not, the
//! check follows libpq: a self-signed server certificate that is itself in
//! the CA file is trusted as is, and verify-full falls back to the subject's
//! common name when the certificate has no DNS subjectAltName. Both need a
//! few fields of the certificate (certs.rs).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;

use super::certs;

/// What the server's certificate is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing (sslmode=require, prefer, allow without a CA file): encrypt only.
    Nothing,
    /// Signed by a trusted CA (verify-ca; require with a CA file, as libpq).
    Chain,
    /// Signed by a trusted CA and naming the host (verify-full).
    ChainAndHostName,
}

/// What a failure message needs to say what failed and what to do.
#[derive(Debug, Clone)]
pub struct HandshakeContext {
    pub mode: &'static str,
    /// sslnegotiation=direct.
    pub direct: bool,
    /// Where the trusted CAs come from, e.g. `sslrootcert=/etc/ca.pem`.
    pub trust: String,
    pub client_cert: Option<String>,
}

/// tokio-postgres' TLS connector for our sessions (cloned per session).
#[derive(Clone)]
pub struct RustlsConnect {
    config: Option<Arc<rustls::ClientConfig>>,
    context: Arc<HandshakeContext>,
}

impl RustlsConnect {
    /// For sessions that never use TLS.
    pub fn none() -> RustlsConnect {
        RustlsConnect {
            config: None,
            context: Arc::new(HandshakeContext {
                mode: "disable",
                direct: false,
                trust: String::new(),
                client_cert: None,
            }),
        }
    }

    pub fn new(config: Arc<rustls::ClientConfig>, context: HandshakeContext) -> RustlsConnect {
        RustlsConnect {
            config: Some(config),
            context: Arc::new(context),
        }
    }
}

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream<Socket>;
    type TlsConnect = Handshake;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, HandshakeError> {
        Ok(self.handshake(host))
    }
}

impl RustlsConnect {
    /// The handshake for one session with `host`.
    pub fn handshake(&self, host: &str) -> Handshake {
        // A host that is neither a DNS name nor an address (`db_1`) can still
        // be encrypted to when the name is not checked (Tls::resolve refuses
        // verify-full for it): no SNI then.
        let name = ServerName::try_from(host.to_string()).unwrap_or(ServerName::IpAddress(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
        ));
        Handshake {
            config: self.config.clone(),
            name,
            host: host.to_string(),
            context: self.context.clone(),
        }
    }
}

/// One session's handshake; tokio-postgres makes one for every session and
/// uses it only when the session takes TLS.
pub struct Handshake {
    config: Option<Arc<rustls::ClientConfig>>,
    name: ServerName<'static>,
    host: String,
    context: Arc<HandshakeContext>,
}

/// Over tokio-postgres' own socket, or over one the load driver keeps (see
/// `wire_stream`).
impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, HandshakeError>> + Send>>;

    fn connect(self, socket: S) -> Self::Future {
        Box::pin(async move {
            let config = self.config.ok_or_else(|| HandshakeError {
                message: "TLS is off for this connection (sslmode=disable)".into(),
            })?;
            tokio_rustls::TlsConnector::from(config)
                .connect(self.name, socket)
                .await
                .map(RustlsStream)
                .map_err(|e| HandshakeError::explain(&e, &self.host, &self.context))
        })
    }
}

/// A failed handshake, in words that say what to do.
#[derive(Debug)]
pub struct HandshakeError {
    message: String,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HandshakeError {}

impl HandshakeError {
    pub fn new(message: impl Into<String>) -> HandshakeError {
        HandshakeError {
            message: message.into(),
        }
    }

    fn explain(e: &std::io::Error, host: &str, cx: &HandshakeContext) -> HandshakeError {
        let message = match rustls_error(e) {
            Some(rustls::Error::InvalidCertificate(c)) => certificate_problem(c, host, cx),
            Some(rustls::Error::AlertReceived(alert)) => alert_meaning(*alert, cx),
            Some(rustls::Error::PeerIncompatible(p)) => format!(
                "the server and pgrehearse share no TLS version or cipher ({p:?}); pgrehearse \
                 speaks TLS 1.2 and 1.3 (see ssl_min_protocol_version on the server)"
            ),
            Some(other) => format!("TLS handshake failed: {other}"),
            // Before PostgreSQL 17 a server takes direct TLS for a garbled
            // startup packet and hangs up.
            None if cx.direct => format!(
                "TLS handshake failed ({e}): sslnegotiation=direct needs PostgreSQL 17 or later; \
                 remove it for older servers"
            ),
            None => format!("TLS handshake failed: {e}"),
        };
        HandshakeError { message }
    }
}

impl RustlsConnect {
    /// What an alert the server sent after the handshake means: with TLS
    /// 1.3 a server that refuses our client certificate says so only then.
    pub fn advice(&self, e: &tokio_postgres::Error) -> Option<String> {
        let io = std::error::Error::source(e)?.downcast_ref::<std::io::Error>()?;
        match rustls_error(io)? {
            rustls::Error::AlertReceived(alert) => Some(alert_meaning(*alert, &self.context)),
            _ => None,
        }
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn alert_meaning(alert: AlertDescription, cx: &HandshakeContext) -> String {
    match (&cx.client_cert, rejects_client_cert(alert)) {
        (Some(cert), true) => format!(
            "the server rejected our client certificate sslcert={cert} ({alert:?}): it must be \
             signed by a CA in the server's ssl_ca_file"
        ),
        (None, true) => format!(
            "the server asks for a client certificate ({alert:?}): pass one with sslcert=PATH \
             sslkey=PATH"
        ),
        _ => format!("the server aborted the TLS session ({alert:?})"),
    }
}

/// Why the server's certificate was not accepted, and what to do.
fn certificate_problem(c: &CertificateError, host: &str, cx: &HandshakeContext) -> String {
    let weaker = match cx.mode {
        "verify-full" | "verify-ca" => ", or use sslmode=require to encrypt without verifying",
        // libpq: with a CA file present, require/prefer/allow verify the chain too.
        _ => " (with a CA file present, sslmode=require checks the chain, as libpq does)",
    };
    match c {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not signed by a CA in {}: pass the server's CA with \
             sslrootcert=PATH{weaker}",
            cx.trust
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "the server's certificate is not valid for the host name {host} ({c}): connect \
                 with a host name the certificate names, or use sslmode=verify-ca to verify the \
                 CA but not the host name"
            )
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => format!(
            "the server's certificate is outside its validity period ({c}): renew it on the \
             server (or check this machine's clock)"
        ),
        other => format!(
            "the server's certificate failed verification against {} ({other}){weaker}",
            cx.trust
        ),
    }
}

/// Alerts a server sends when it does not accept (or missed) our certificate.
fn rejects_client_cert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
    )
}

/// Did opening a session fail in the TLS handshake itself (libpq's
/// sslmode=prefer then retries in plain text)?
pub fn is_handshake_failure(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<HandshakeError>())
}

/// A session's TLS stream.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// RFC 5929 `tls-server-end-point`: the hash of the server's certificate
    /// with the hash of its signature algorithm (SHA-256 for SHA-1 and MD5).
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        match session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| certs::end_point_hash(cert))
        {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The check on the server's certificate (see [`Check`]).
#[derive(Debug)]
pub struct ServerCheck {
    check: Check,
    roots: rustls::RootCertStore,
    /// The CA file's certificates as given.
    in_ca_file: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCheck {
    pub fn new(
        check: Check,
        roots: rustls::RootCertStore,
        in_ca_file: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> ServerCheck {
        ServerCheck {
            check,
            roots,
            in_ca_file,
            provider,
        }
    }

    /// The chain: webpki's, or — as OpenSSL — the certificate itself when it
    /// is self-signed and in the CA file (webpki refuses a CA certificate as
    /// the server's own, which is what `openssl req -x509` makes).
    fn check_chain(
        &self,
        cert: &ParsedCertificate<'_>,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let self_signed = certs::is_self_signed(end_entity);
        if self_signed && self.in_ca_file.iter().any(|c| c == end_entity) {
            let (not_before, not_after) = certs::validity(end_entity).ok_or(
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
            )?;
            let now = now.as_secs() as i64;
            return if now < not_before {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidYet,
                ))
            } else if now > not_after {
                Err(rustls::Error::InvalidCertificate(CertificateError::Expired))
            } else {
                Ok(())
            };
        }
        verify_server_cert_signed_by_trust_anchor(
            cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )
        .map_err(|e| match e {
            // webpki's complaint about a self-signed CA certificate not in the
            // CA file: for the user, it is signed by no CA they trust.
            rustls::Error::InvalidCertificate(CertificateError::Other(_)) if self_signed => {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            }
            e => e,
        })
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        self.check_chain(&cert, end_entity, intermediates, now)?;
        if self.check == Check::ChainAndHostName {
            if let Err(e) = verify_server_name(&cert, server_name) {
                // libpq: without a DNS subjectAltName, the common name is the name.
                let host = server_name.to_str();
                let by_cn = !certs::has_dns_alt_name(end_entity)
                    && certs::common_name(end_entity).is_some_and(|cn| name_matches(&cn, &host));
                if !by_cn {
                    return Err(e);
                }
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// libpq's name match: case-insensitive, `*.` matching one leftmost label.
fn name_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_like_libpq() {
        assert!(name_matches("DB.example.com", "db.EXAMPLE.com"));
        assert!(name_matches("*.example.com", "db.example.com"));
        assert!(!name_matches("*.example.com", "a.db.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("db.example.com", "db.example.org"));
    }
}
