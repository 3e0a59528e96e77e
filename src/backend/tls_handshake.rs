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
//! few fields of the certificate, read by the small DER reader at the end.

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
    type Stream = RustlsStream;
    type TlsConnect = Handshake;
    type Error = HandshakeError;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, HandshakeError> {
        // A host that is neither a DNS name nor an address (`db_1`) can still
        // be encrypted to when the name is not checked (Tls::resolve refuses
        // verify-full for it): no SNI then.
        let name = ServerName::try_from(host.to_string()).unwrap_or(ServerName::IpAddress(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
        ));
        Ok(Handshake {
            config: self.config.clone(),
            name,
            host: host.to_string(),
            context: self.context.clone(),
        })
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

impl TlsConnect<Socket> for Handshake {
    type Stream = RustlsStream;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream, HandshakeError>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
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
    fn explain(e: &std::io::Error, host: &str, cx: &HandshakeContext) -> HandshakeError {
        let message = match rustls_error(e) {
            Some(rustls::Error::InvalidCertificate(c)) => certificate_problem(c, host, cx),
            Some(rustls::Error::AlertReceived(alert)) => alert_meaning(*alert, cx),
            Some(rustls::Error::PeerIncompatible(p)) => format!(
                "the server and pgrehearse share no TLS version or cipher ({p:?}); pgrehearse \
                 speaks TLS 1.2 and 1.3 (see ssl_min_protocol_version on the server)"
            ),
            Some(other) => format!("TLS handshake failed: {other}"),
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
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
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

impl TlsStream for RustlsStream {
    /// RFC 5929 `tls-server-end-point`: the hash of the server's certificate
    /// with the hash of its signature algorithm (SHA-256 for SHA-1 and MD5).
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        match session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| der::end_point_hash(cert))
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
        let self_signed = der::is_self_signed(end_entity);
        if self_signed && self.in_ca_file.iter().any(|c| c == end_entity) {
            let (not_before, not_after) = der::validity(end_entity).ok_or(
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
                let by_cn = !der::has_dns_alt_name(end_entity)
                    && der::common_name(end_entity).is_some_and(|cn| name_matches(&cn, &host));
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

/// Just enough DER to read the certificate fields the checks above need.
mod der {
    use sha2::Digest;

    /// One element of `input`: (tag, contents, what follows).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// The elements inside `contents`, as (tag, contents).
    fn children(mut contents: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        std::iter::from_fn(move || {
            let (tag, inner, rest) = element(contents)?;
            contents = rest;
            Some((tag, inner))
        })
    }

    const SEQUENCE: u8 = 0x30;

    /// The fields of a certificate's TBSCertificate we read.
    struct Tbs<'a> {
        issuer: &'a [u8],
        validity: &'a [u8],
        subject: &'a [u8],
        extensions: Option<&'a [u8]>,
    }

    /// (tbsCertificate contents, signatureAlgorithm contents).
    fn certificate(der: &[u8]) -> Option<(&[u8], &[u8])> {
        let (SEQUENCE, cert, _) = element(der)? else {
            return None;
        };
        let mut parts = children(cert);
        let (SEQUENCE, tbs) = parts.next()? else {
            return None;
        };
        let (SEQUENCE, alg) = parts.next()? else {
            return None;
        };
        Some((tbs, alg))
    }

    fn tbs(der: &[u8]) -> Option<Tbs<'_>> {
        let (tbs, _) = certificate(der)?;
        let mut fields = children(tbs).peekable();
        if fields.peek()?.0 == 0xa0 {
            fields.next(); // version
        }
        fields.next()?; // serialNumber
        fields.next()?; // signature
        let issuer = fields.next()?.1;
        let validity = fields.next()?.1;
        let subject = fields.next()?.1;
        let extensions = fields
            .find(|(tag, _)| *tag == 0xa3)
            .and_then(|(_, explicit)| element(explicit))
            .map(|(_, seq, _)| seq);
        Some(Tbs {
            issuer,
            validity,
            subject,
            extensions,
        })
    }

    pub fn is_self_signed(der: &[u8]) -> bool {
        tbs(der).is_some_and(|t| t.issuer == t.subject)
    }

    /// (notBefore, notAfter) in Unix seconds.
    pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
        let t = tbs(der)?;
        let mut times = children(t.validity).map(|(tag, value)| {
            let s = std::str::from_utf8(value).ok()?;
            // UTCTime's two-digit years: 50-99 are 19xx (RFC 5280).
            let full = match tag {
                0x17 if s.get(..2)? >= "50" => format!("19{s}"),
                0x17 => format!("20{s}"),
                0x18 => s.to_string(),
                _ => return None,
            };
            chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%SZ")
                .ok()
                .map(|t| t.and_utc().timestamp())
        });
        Some((times.next()??, times.next()??))
    }

    /// The subject's (last) commonName.
    pub fn common_name(der: &[u8]) -> Option<String> {
        const CN: &[u8] = &[0x55, 0x04, 0x03];
        let t = tbs(der)?;
        children(t.subject)
            .flat_map(|(_, rdn)| children(rdn))
            .filter_map(|(_, attr)| {
                let mut parts = children(attr);
                let (0x06, oid) = parts.next()? else {
                    return None;
                };
                let (_, value) = parts.next()?;
                (oid == CN).then(|| String::from_utf8_lossy(value).into_owned())
            })
            .last()
    }

    /// Does the certificate have a subjectAltName with a dNSName?
    pub fn has_dns_alt_name(der: &[u8]) -> bool {
        const SAN: &[u8] = &[0x55, 0x1d, 0x11];
        let Some(exts) = tbs(der).and_then(|t| t.extensions) else {
            return false;
        };
        children(exts).any(|(_, ext)| {
            let mut parts = children(ext);
            let is_san = matches!(parts.next(), Some((0x06, oid)) if oid == SAN);
            // critical (optional BOOLEAN), then the OCTET STRING around GeneralNames.
            is_san
                && parts
                    .find(|(tag, _)| *tag == 0x04)
                    .and_then(|(_, octets)| element(octets))
                    .is_some_and(|(_, names, _)| children(names).any(|(tag, _)| tag == 0x82))
        })
    }

    /// RFC 5929 tls-server-end-point: the certificate hashed with its
    /// signature's hash (SHA-256 for MD5 and SHA-1); None when there is no
    /// single hash (Ed25519), as libpq.
    pub fn end_point_hash(der: &[u8]) -> Option<Vec<u8>> {
        let (_, alg) = certificate(der)?;
        let mut parts = children(alg);
        let (0x06, oid) = parts.next()? else {
            return None;
        };
        let bits = match oid {
            // {md5,sha1,sha256,sha384,sha512}WithRSAEncryption, RSASSA-PSS
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n] => match n {
                4 | 5 | 11 => 256,
                12 => 384,
                13 => 512,
                10 => pss_hash_bits(parts.next().map(|(_, params)| params))?,
                _ => return None,
            },
            // ecdsa-with-SHA1, ecdsa-with-SHA{256,384,512}
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01] => 256,
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, n] => match n {
                2 => 256,
                3 => 384,
                4 => 512,
                _ => return None,
            },
            _ => return None,
        };
        Some(match bits {
            256 => sha2::Sha256::digest(der).to_vec(),
            384 => sha2::Sha384::digest(der).to_vec(),
            _ => sha2::Sha512::digest(der).to_vec(),
        })
    }

    /// RSASSA-PSS parameters: the hash is in `[0]` (default SHA-1, hence SHA-256).
    fn pss_hash_bits(params: Option<&[u8]>) -> Option<u32> {
        let hash_oid = params
            .and_then(|p| children(p).find(|(tag, _)| *tag == 0xa0))
            .and_then(|(_, explicit)| element(explicit))
            .and_then(|(_, hash_alg, _)| element(hash_alg))
            .map(|(_, oid, _)| oid);
        match hash_oid {
            // id-sha{256,384,512} (2.16.840.1.101.3.4.2.x)
            Some([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n]) => match n {
                1 => Some(256),
                2 => Some(384),
                3 => Some(512),
                _ => None,
            },
            Some([0x2b, 0x0e, 0x03, 0x02, 0x1a]) | None => Some(256), // SHA-1
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};
    use sha2::Digest;

    fn cert(names: &[&str], cn: &str, key: &KeyPair) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = rcgen::date_time_ymd(2024, 1, 2);
        p.not_after = rcgen::date_time_ymd(2030, 1, 2);
        p.self_signed(key).unwrap().der().clone()
    }

    #[test]
    fn reads_the_certificate_fields_the_checks_need() {
        let key = KeyPair::generate().unwrap();
        let with_san = cert(&["db.example"], "db.example", &key);
        assert_eq!(der::common_name(&with_san).as_deref(), Some("db.example"));
        assert!(der::has_dns_alt_name(&with_san));
        assert!(der::is_self_signed(&with_san));
        assert_eq!(
            der::validity(&with_san),
            Some((1_704_153_600, 1_893_542_400))
        );

        let cn_only = cert(&[], "legacy.example", &key);
        assert!(!der::has_dns_alt_name(&cn_only));
        assert_eq!(
            der::common_name(&cn_only).as_deref(),
            Some("legacy.example")
        );
        let ip_only = cert(&["10.1.2.3"], "x", &key);
        assert!(
            !der::has_dns_alt_name(&ip_only),
            "an iPAddress is not a dNSName"
        );

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["db".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "db");
        let issued = leaf.signed_by(&key, &issuer).unwrap();
        assert!(!der::is_self_signed(issued.der()));
    }

    #[test]
    fn channel_binding_hashes_with_the_signature_hash() {
        let p256 = cert(&["db"], "db", &KeyPair::generate().unwrap());
        assert_eq!(
            der::end_point_hash(&p256),
            Some(sha2::Sha256::digest(&p256).to_vec())
        );
        let p384_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let p384 = cert(&["db"], "db", &p384_key);
        assert_eq!(
            der::end_point_hash(&p384),
            Some(sha2::Sha384::digest(&p384).to_vec())
        );
        // Ed25519 has no separate hash: no tls-server-end-point (libpq neither).
        let ed_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(der::end_point_hash(&cert(&["db"], "db", &ed_key)), None);
        assert_eq!(der::end_point_hash(b"not a certificate"), None);
    }

    #[test]
    fn names_match_like_libpq() {
        assert!(name_matches("DB.example.com", "db.EXAMPLE.com"));
        assert!(name_matches("*.example.com", "db.example.com"));
        assert!(!name_matches("*.example.com", "a.db.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("db.example.com", "db.example.org"));
    }
}
