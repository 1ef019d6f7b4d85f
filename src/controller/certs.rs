//! Parsing and checking X.509 certificates: IdP signing certificates and the operator's own
//! service-provider certificates. Pure functions, no I/O.

use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::x509::X509;

/// What the operator knows about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Subject distinguished name, e.g. `CN=example, O=Okta`.
    pub subject: String,
    /// SHA-256 fingerprint of the DER encoding, colon-separated upper-case hex.
    pub sha256_fingerprint: String,
    /// Start of validity.
    pub not_before: jiff::Timestamp,
    /// End of validity.
    pub not_after: jiff::Timestamp,
    /// The certificate normalised to PEM.
    pub pem: String,
}

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    /// Not PEM, not base64 DER, or not a certificate.
    #[error("it is not a PEM or base64 X.509 certificate ({0})")]
    Unparseable(String),
}

/// Parses a certificate given as PEM, or as the bare base64 body that IdP consoles often show
/// (Entra's "Certificate (Base64)" download, Okta's metadata `X509Certificate` element).
pub fn parse_certificate(text: &str) -> Result<CertificateFacts, CertificateError> {
    let trimmed = text.trim();
    let cert = if trimmed.contains("-----BEGIN") {
        X509::from_pem(trimmed.as_bytes())
            .map_err(|e| CertificateError::Unparseable(first_line(&e.to_string())))?
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| CertificateError::Unparseable(format!("invalid base64: {e}")))?;
        X509::from_der(&der)
            .map_err(|e| CertificateError::Unparseable(first_line(&e.to_string())))?
    };
    facts(&cert)
}

/// Facts about an already parsed certificate.
pub fn facts(cert: &X509) -> Result<CertificateFacts, CertificateError> {
    let der = cert
        .to_der()
        .map_err(|e| CertificateError::Unparseable(e.to_string()))?;
    let digest = openssl::hash::hash(MessageDigest::sha256(), &der)
        .map_err(|e| CertificateError::Unparseable(e.to_string()))?;
    let sha256_fingerprint = digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let pem = String::from_utf8(
        cert.to_pem()
            .map_err(|e| CertificateError::Unparseable(e.to_string()))?,
    )
    .map_err(|e| CertificateError::Unparseable(e.to_string()))?;
    Ok(CertificateFacts {
        subject: subject_string(cert),
        sha256_fingerprint,
        not_before: asn1_to_timestamp(cert.not_before())?,
        not_after: asn1_to_timestamp(cert.not_after())?,
        pem,
    })
}

fn subject_string(cert: &X509) -> String {
    let parts: Vec<String> = cert
        .subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_owned();
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect();
    parts.join(", ")
}

fn asn1_to_timestamp(t: &openssl::asn1::Asn1TimeRef) -> Result<jiff::Timestamp, CertificateError> {
    let epoch = Asn1Time::from_unix(0).map_err(|e| CertificateError::Unparseable(e.to_string()))?;
    let diff = epoch
        .diff(t)
        .map_err(|e| CertificateError::Unparseable(e.to_string()))?;
    let seconds = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    jiff::Timestamp::from_second(seconds).map_err(|e| CertificateError::Unparseable(e.to_string()))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).chars().take(200).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openssl::bn::BigNum;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;

    /// A self-signed certificate valid from `not_before` to `not_after` (Unix seconds).
    pub(crate) fn make_cert(cn: &str, not_before: i64, not_after: i64) -> X509 {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(not_before).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(not_after).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    #[test]
    fn parses_pem_and_bare_base64_to_the_same_facts() {
        let cert = make_cert("idp.example.com", 1_700_000_000, 2_000_000_000);
        let pem = String::from_utf8(cert.to_pem().unwrap()).unwrap();
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("\n");
        let a = parse_certificate(&pem).unwrap();
        let b = parse_certificate(&body).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.subject, "CN=idp.example.com");
        assert_eq!(a.not_before.as_second(), 1_700_000_000);
        assert_eq!(a.not_after.as_second(), 2_000_000_000);
        assert_eq!(a.sha256_fingerprint.len(), 32 * 3 - 1);
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            parse_certificate("hello"),
            Err(CertificateError::Unparseable(_))
        ));
        assert!(matches!(
            parse_certificate("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
            Err(CertificateError::Unparseable(_))
        ));
        assert!(matches!(
            parse_certificate(""),
            Err(CertificateError::Unparseable(_))
        ));
    }
}
