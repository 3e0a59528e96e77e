//! Certificates and keys: PEM files read with libpq's rules, and the few
//! fields of a DER certificate that the server check and channel binding
//! need — read by a small DER walker rather than a full X.509 parser.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

/// What is wrong with a file, in words for the user (tls.rs makes it exit 3).
type Result<T> = std::result::Result<T, String>;

/// Every certificate in a PEM file (a CA bundle, or a client certificate
/// with its intermediates); none is an error.
pub fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {what}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// A PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC), refused — as libpq
/// does — when others may read it.
pub fn read_key(path: &Path, password_given: bool) -> Result<PrivateKeyDer<'static>> {
    use std::os::unix::fs::MetadataExt;
    let shown = format!("sslkey={}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    // libpq: root-owned keys may be 0640 (a group shares them); others 0600 or less.
    let loose = if meta.uid() == 0 {
        meta.mode() & 0o037
    } else {
        meta.mode() & 0o077
    };
    if loose != 0 {
        return Err(format!(
            "private key file {} has group or world access; it must have permissions u=rw \
             (0600) or less if owned by the current user, or u=rw,g=r (0640) or less if owned \
             by root: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if String::from_utf8_lossy(&pem).contains("ENCRYPTED") {
        let why = if password_given {
            "sslpassword is not supported by pgrehearse"
        } else {
            "pgrehearse cannot decrypt keys (no sslpassword support)"
        };
        return Err(format!(
            "{shown} is encrypted and {why}: decrypt it with \
             `openssl pkey -in KEY -out KEY.plain` (then chmod 600) and pass that"
        ));
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "{shown} holds no usable private key (PEM: PRIVATE KEY, RSA PRIVATE KEY or \
             EC PRIVATE KEY): {e}"
        )
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

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
        assert_eq!(common_name(&with_san).as_deref(), Some("db.example"));
        assert!(has_dns_alt_name(&with_san));
        assert!(is_self_signed(&with_san));
        assert_eq!(validity(&with_san), Some((1_704_153_600, 1_893_542_400)));

        let cn_only = cert(&[], "legacy.example", &key);
        assert!(!has_dns_alt_name(&cn_only));
        assert_eq!(common_name(&cn_only).as_deref(), Some("legacy.example"));
        let ip_only = cert(&["10.1.2.3"], "x", &key);
        assert!(!has_dns_alt_name(&ip_only), "an iPAddress is not a dNSName");

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["db".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "db");
        let issued = leaf.signed_by(&key, &issuer).unwrap();
        assert!(!is_self_signed(issued.der()));
    }

    #[test]
    fn channel_binding_hashes_with_the_signature_hash() {
        let p256 = cert(&["db"], "db", &KeyPair::generate().unwrap());
        assert_eq!(
            end_point_hash(&p256),
            Some(sha2::Sha256::digest(&p256).to_vec())
        );
        let p384_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let p384 = cert(&["db"], "db", &p384_key);
        assert_eq!(
            end_point_hash(&p384),
            Some(sha2::Sha384::digest(&p384).to_vec())
        );
        // Ed25519 has no separate hash: no tls-server-end-point (libpq neither).
        let ed_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(end_point_hash(&cert(&["db"], "db", &ed_key)), None);
        assert_eq!(end_point_hash(b"not a certificate"), None);
    }
}
