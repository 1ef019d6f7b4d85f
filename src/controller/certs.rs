//! Parsing and checking X.509 certificates: IdP signing certificates and the operator's own
//! service-provider certificates. Pure functions, no I/O.

use base64::Engine;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::x509::X509;

use crate::api::identity_provider::SignatureAlgorithm;

/// Most certificates read from one source (a `pem` entry or one Secret or ConfigMap key).
pub const MAX_CERTIFICATES_PER_SOURCE: usize = 8;

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
    /// The type of the certificate's public key.
    pub key_type: KeyType,
    /// The certificate normalised to PEM.
    pub pem: String,
}

/// The type of a certificate's public key, which decides the signatures it can verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA with a modulus of this many bits.
    Rsa(u32),
    /// Elliptic curve on a NIST curve: `P-256`, `P-384` or `P-521`.
    Ec(&'static str),
    /// Any other key (another curve, Ed25519, DSA), named for messages.
    Other(String),
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyType::Rsa(bits) => write!(f, "RSA {bits}"),
            KeyType::Ec(curve) => write!(f, "EC {curve}"),
            KeyType::Other(name) => f.write_str(name),
        }
    }
}

impl KeyType {
    /// Whether a key of this type can verify signatures made with `algorithm`.
    pub fn can_verify(&self, algorithm: SignatureAlgorithm) -> bool {
        use SignatureAlgorithm as A;
        match self {
            KeyType::Rsa(_) => matches!(
                algorithm,
                A::RsaSha256 | A::RsaSha384 | A::RsaSha512 | A::RsaSha1
            ),
            KeyType::Ec(_) => matches!(algorithm, A::EcdsaSha256 | A::EcdsaSha384 | A::EcdsaSha512),
            KeyType::Other(_) => false,
        }
    }

    /// The `saml.signatureAlgorithm` value that suits a key of this type, as the CRD spells it.
    pub fn suited_algorithm(&self) -> Option<&'static str> {
        match self {
            KeyType::Rsa(_) => Some("rsa-sha256"),
            KeyType::Ec("P-256") => Some("ecdsa-sha256"),
            KeyType::Ec("P-384") => Some("ecdsa-sha384"),
            KeyType::Ec(_) => Some("ecdsa-sha512"),
            KeyType::Other(_) => None,
        }
    }
}

/// The `saml.signatureAlgorithm` value as the CRD spells it.
pub fn algorithm_name(algorithm: SignatureAlgorithm) -> &'static str {
    use SignatureAlgorithm as A;
    match algorithm {
        A::RsaSha256 => "rsa-sha256",
        A::RsaSha384 => "rsa-sha384",
        A::RsaSha512 => "rsa-sha512",
        A::EcdsaSha256 => "ecdsa-sha256",
        A::EcdsaSha384 => "ecdsa-sha384",
        A::EcdsaSha512 => "ecdsa-sha512",
        A::RsaSha1 => "rsa-sha1",
    }
}

/// Why a certificate could not be used. No variant carries text derived from the input (not
/// even a decoder's error, which may quote a byte or a PEM label): the input might be a
/// password or a private key stored in the wrong Secret key, and these messages reach status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    /// Not a PEM certificate, nor the base64 body of one: a password, a key, a PEM block of
    /// another kind, or a CERTIFICATE block that does not decode.
    #[error("it is not a PEM certificate")]
    NotACertificate,
    /// Text before, between or after the PEM blocks.
    #[error("it has text {where_} that is not part of a BEGIN/END CERTIFICATE block")]
    StrayText {
        /// Where the text is, e.g. `after certificate 2`.
        where_: String,
    },
    /// A BEGIN line without its END line.
    #[error("certificate {0} has no -----END CERTIFICATE----- line")]
    Unterminated(usize),
    /// More certificates than [`MAX_CERTIFICATES_PER_SOURCE`].
    #[error("it holds more than {MAX_CERTIFICATES_PER_SOURCE} certificates")]
    TooMany,
}

/// Parses a certificate given as PEM, or as the bare base64 body that IdP consoles often show
/// (Entra's "Certificate (Base64)" download, Okta's metadata `X509Certificate` element).
pub fn parse_certificate(text: &str) -> Result<CertificateFacts, CertificateError> {
    let trimmed = text.trim();
    let cert = if trimmed.contains("-----BEGIN") {
        X509::from_pem(trimmed.as_bytes()).map_err(|_| CertificateError::NotACertificate)?
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| CertificateError::NotACertificate)?;
        X509::from_der(&der).map_err(|_| CertificateError::NotACertificate)?
    };
    facts(&cert)
}

/// Parses every certificate of a bundle: one or more PEM `CERTIFICATE` blocks separated by
/// nothing but whitespace (an IdP's old and new certificate during a rollover), or one bare
/// base64 body. Anything else around the blocks is refused rather than ignored.
pub fn parse_certificates(text: &str) -> Result<Vec<CertificateFacts>, CertificateError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    const END: &str = "-----END CERTIFICATE-----";
    let trimmed = text.trim();
    if !trimmed.contains(BEGIN) {
        return parse_certificate(trimmed).map(|f| vec![f]);
    }
    let mut out = Vec::new();
    let mut rest = trimmed;
    while !rest.is_empty() {
        let index = out.len() + 1;
        let stray = || CertificateError::StrayText {
            where_: match index {
                1 => "before the first certificate".to_owned(),
                n => format!("after certificate {}", n - 1),
            },
        };
        let Some(after_begin) = rest.strip_prefix(BEGIN) else {
            return Err(stray());
        };
        let label = after_begin
            .split_once(DASHES)
            .map(|(label, _)| label)
            .filter(|label| !label.contains('\n'))
            .ok_or_else(stray)?;
        if label != "CERTIFICATE" {
            return Err(CertificateError::NotACertificate);
        }
        if out.len() == MAX_CERTIFICATES_PER_SOURCE {
            return Err(CertificateError::TooMany);
        }
        let end = rest
            .find(END)
            .ok_or(CertificateError::Unterminated(index))?
            + END.len();
        let block = &rest[..end];
        if block[BEGIN.len()..].contains(BEGIN) {
            return Err(CertificateError::Unterminated(index));
        }
        let cert =
            X509::from_pem(block.as_bytes()).map_err(|_| CertificateError::NotACertificate)?;
        out.push(facts(&cert)?);
        rest = rest[end..].trim_start();
    }
    Ok(out)
}

/// Facts about an already parsed certificate.
pub fn facts(cert: &X509) -> Result<CertificateFacts, CertificateError> {
    let der = cert
        .to_der()
        .map_err(|_| CertificateError::NotACertificate)?;
    let digest = openssl::hash::hash(MessageDigest::sha256(), &der)
        .map_err(|_| CertificateError::NotACertificate)?;
    let sha256_fingerprint = digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let pem = String::from_utf8(
        cert.to_pem()
            .map_err(|_| CertificateError::NotACertificate)?,
    )
    .map_err(|_| CertificateError::NotACertificate)?;
    Ok(CertificateFacts {
        subject: subject_string(cert),
        sha256_fingerprint,
        not_before: asn1_to_timestamp(cert.not_before())?,
        not_after: asn1_to_timestamp(cert.not_after())?,
        key_type: key_type(cert),
        pem,
    })
}

fn key_type(cert: &X509) -> KeyType {
    let Ok(key) = cert.public_key() else {
        return KeyType::Other("unreadable".to_owned());
    };
    match key.id() {
        Id::RSA => KeyType::Rsa(key.bits()),
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
            match curve {
                Some(Nid::X9_62_PRIME256V1) => KeyType::Ec("P-256"),
                Some(Nid::SECP384R1) => KeyType::Ec("P-384"),
                Some(Nid::SECP521R1) => KeyType::Ec("P-521"),
                Some(nid) => KeyType::Other(format!(
                    "EC {}",
                    nid.short_name().unwrap_or("unnamed curve")
                )),
                None => KeyType::Other("EC (unnamed curve)".to_owned()),
            }
        }
        Id::ED25519 => KeyType::Other("Ed25519".to_owned()),
        Id::ED448 => KeyType::Other("Ed448".to_owned()),
        Id::DSA => KeyType::Other("DSA".to_owned()),
        _ => KeyType::Other("unsupported".to_owned()),
    }
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
    let epoch = Asn1Time::from_unix(0).map_err(|_| CertificateError::NotACertificate)?;
    let diff = epoch
        .diff(t)
        .map_err(|_| CertificateError::NotACertificate)?;
    let seconds = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    jiff::Timestamp::from_second(seconds).map_err(|_| CertificateError::NotACertificate)
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

    fn ec_cert(curve: Nid) -> X509 {
        let group = openssl::ec::EcGroup::from_curve_name(curve).unwrap();
        let key = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "ec").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(1_700_000_000).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(2_000_000_000).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha384()).unwrap();
        b.build()
    }

    fn pem(cert: &X509) -> String {
        String::from_utf8(cert.to_pem().unwrap()).unwrap()
    }

    #[test]
    fn a_bundle_yields_every_certificate_in_order() {
        let old = pem(&make_cert("old", 1_700_000_000, 1_900_000_000));
        let new = pem(&make_cert("new", 1_800_000_000, 2_000_000_000));
        for text in [
            format!("{old}{new}"),
            format!("\n{old}\n\n{new}\n"),
            format!("{}\r\n{}", old.replace('\n', "\r\n"), new),
        ] {
            let all = parse_certificates(&text).unwrap();
            let subjects: Vec<&str> = all.iter().map(|f| f.subject.as_str()).collect();
            assert_eq!(subjects, ["CN=old", "CN=new"]);
        }
        // One PEM block or a bare base64 body is a bundle of one.
        assert_eq!(parse_certificates(&old).unwrap().len(), 1);
        let body: String = old.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(parse_certificates(&body).unwrap().len(), 1);
    }

    #[test]
    fn text_around_a_bundle_and_other_blocks_are_refused_not_ignored() {
        let a = pem(&make_cert("a", 1_700_000_000, 2_000_000_000));
        let b = pem(&make_cert("b", 1_700_000_000, 2_000_000_000));
        let stray = |text: String, where_: &str| {
            assert_eq!(
                parse_certificates(&text),
                Err(CertificateError::StrayText {
                    where_: where_.to_owned()
                }),
                "{text}"
            );
        };
        stray(format!("{a}garbage\n{b}"), "after certificate 1");
        stray(format!("{a}{b}trailing"), "after certificate 2");
        stray(format!("subject=CN=a\n{a}"), "before the first certificate");
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let err = parse_certificates(&format!("{a}{key_pem}")).unwrap_err();
        assert_eq!(err, CertificateError::NotACertificate);
        let unterminated = a.replace("-----END CERTIFICATE-----", "");
        assert_eq!(
            parse_certificates(&format!("{unterminated}{b}")),
            Err(CertificateError::Unterminated(1))
        );
        assert_eq!(
            parse_certificates(&a.repeat(MAX_CERTIFICATES_PER_SOURCE + 1)),
            Err(CertificateError::TooMany)
        );
        assert_eq!(
            parse_certificates(&a.repeat(MAX_CERTIFICATES_PER_SOURCE))
                .unwrap()
                .len(),
            MAX_CERTIFICATES_PER_SOURCE
        );
    }

    #[test]
    fn key_types_decide_the_algorithms_a_certificate_can_verify() {
        use SignatureAlgorithm as A;
        let rsa = parse_certificate(&pem(&make_cert("r", 1_700_000_000, 2_000_000_000))).unwrap();
        assert_eq!(rsa.key_type, KeyType::Rsa(2048));
        assert_eq!(rsa.key_type.to_string(), "RSA 2048");
        assert!(rsa.key_type.can_verify(A::RsaSha256));
        assert!(!rsa.key_type.can_verify(A::EcdsaSha256));
        for (curve, name, suited) in [
            (Nid::X9_62_PRIME256V1, "P-256", "ecdsa-sha256"),
            (Nid::SECP384R1, "P-384", "ecdsa-sha384"),
            (Nid::SECP521R1, "P-521", "ecdsa-sha512"),
        ] {
            let ec = parse_certificate(&pem(&ec_cert(curve))).unwrap();
            assert_eq!(ec.key_type, KeyType::Ec(name));
            assert_eq!(ec.key_type.to_string(), format!("EC {name}"));
            assert_eq!(ec.key_type.suited_algorithm(), Some(suited));
            assert!(!ec.key_type.can_verify(A::RsaSha256));
            assert!(ec.key_type.can_verify(A::EcdsaSha384));
        }
        let odd = parse_certificate(&pem(&ec_cert(Nid::SECP256K1))).unwrap();
        assert!(matches!(odd.key_type, KeyType::Other(_)));
        assert!(!odd.key_type.can_verify(A::EcdsaSha256));
        assert_eq!(odd.key_type.suited_algorithm(), None);
    }

    #[test]
    fn what_is_not_a_certificate_gets_one_message_that_quotes_nothing_of_it() {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let key_body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let key_in_certificate_lines =
            format!("-----BEGIN CERTIFICATE-----\n{key_body}\n-----END CERTIFICATE-----\n");
        for input in [
            "correct horse battery staple!".to_owned(),
            "hunter2".to_owned(),
            key_pem.clone(),
            key_body,
            key_in_certificate_lines,
            "-----BEGIN hunter2 password-----\nabc\n-----END hunter2 password-----".to_owned(),
        ] {
            for err in [
                parse_certificate(&input).unwrap_err(),
                parse_certificates(&input).unwrap_err(),
            ] {
                assert_eq!(err.to_string(), "it is not a PEM certificate", "{input}");
            }
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            parse_certificate("hello"),
            Err(CertificateError::NotACertificate)
        ));
        assert!(matches!(
            parse_certificate("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
            Err(CertificateError::NotACertificate)
        ));
        assert!(matches!(
            parse_certificate(""),
            Err(CertificateError::NotACertificate)
        ));
    }
}
