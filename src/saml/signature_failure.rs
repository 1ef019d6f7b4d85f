//! Why a response's signature was refused, in the admin's terms. xmlsec (through samael) only
//! answers "invalid"; after a refusal the signatures are looked at again to tell a missing
//! signature, an algorithm outside the allowed list, a certificate that is not configured and a
//! response changed after signing apart. Nothing here accepts anything: it only chooses the
//! message of a refusal that has already happened.

use openssl::rsa::Padding;
use openssl::x509::X509;
use samael::crypto::AllowedSignatureAlgorithm;

use crate::api::SignInRefusal;
use crate::api::identity_provider::Provider;

const DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Why a signature was refused. `Display` is for admins and never contains the response.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureFailure {
    /// Neither the Response nor the assertion is signed.
    #[error(
        "the response is not signed (neither the Response nor the assertion carries a signature): the IdP must sign the assertion or the response ({})",
        assertion_signing(*.0)
    )]
    Unsigned(Provider),
    /// The assertion was encrypted without a signature of its own (only the Response, over the
    /// ciphertext, may be signed).
    #[error(
        "the encrypted assertion carries no signature of its own: a Response signature covers only the ciphertext, not the decrypted assertion, so an encrypted assertion must be signed itself ({})",
        assertion_signing(*.0)
    )]
    EncryptedAssertionUnsigned(Provider),
    /// Signed with an algorithm outside the allowed list.
    #[error(
        "the IdP signed with {signature} and digest {digest}, which saml.signatureAlgorithm does not allow ({allowed}): {}",
        algorithm_setting(*provider)
    )]
    Algorithm {
        /// The signature method, shortened.
        signature: String,
        /// The digest method, shortened.
        digest: String,
        /// The allowed signature methods, shortened.
        allowed: String,
        /// Where the algorithm is set at the IdP.
        provider: Provider,
    },
    /// Signed with a key that none of the configured certificates holds.
    #[error(
        "the response is signed with a certificate that is not in spec.idp.certificates (configured: {configured}{}): {}",
        signed_by.as_deref().map(|s| format!("; the response names the certificate {s}")).unwrap_or_default(),
        certificate_action(*provider, *from_metadata)
    )]
    WrongCertificate {
        /// Short fingerprints of the configured certificates.
        configured: String,
        /// Short fingerprint of the certificate the response names (not trusted; shown to help
        /// find it).
        signed_by: Option<String>,
        /// Whether the certificates come from `spec.idp.metadataUrl`.
        from_metadata: bool,
        /// Names the IdP's field in the action.
        provider: Provider,
    },
    /// Signed with a configured certificate, but the content no longer matches.
    #[error(
        "the signature was made with a certificate in spec.idp.certificates but does not match the signed content: the response was changed after the IdP signed it (tampering, or something between the IdP and this server rewriting it)"
    )]
    Tampered,
    /// Neither a wrong certificate nor a change could be told apart (for example an ECDSA
    /// signature without a certificate in KeyInfo).
    #[error(
        "the signature does not verify with spec.idp.certificates (configured: {configured}): either the IdP signs with another certificate ({}), or the response was changed after signing",
        certificate_action(*provider, *from_metadata)
    )]
    Invalid {
        /// Short fingerprints of the configured certificates.
        configured: String,
        /// Whether the certificates come from `spec.idp.metadataUrl`.
        from_metadata: bool,
        /// Names the IdP's field in the action.
        provider: Provider,
    },
}

impl SignatureFailure {
    /// Which refusal this is, for status and metrics.
    pub fn refusal(&self) -> SignInRefusal {
        match self {
            SignatureFailure::Unsigned(_) => SignInRefusal::ResponseNotSigned,
            SignatureFailure::EncryptedAssertionUnsigned(_) => {
                SignInRefusal::EncryptedAssertionNotSigned
            }
            SignatureFailure::Algorithm { .. } => SignInRefusal::SignatureAlgorithmRefused,
            SignatureFailure::WrongCertificate { .. } => SignInRefusal::WrongCertificate,
            SignatureFailure::Tampered => SignInRefusal::ResponseTampered,
            SignatureFailure::Invalid { .. } => SignInRefusal::SignatureInvalid,
        }
    }

    /// The refusal's stable reason, as in status and metrics.
    pub fn reason(&self) -> &'static str {
        self.refusal().reason()
    }
}

/// The IdP's switch that signs the assertion, in its console's words.
pub(super) fn assertion_signing(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => {
            "Okta: SAML Settings > Show Advanced Settings > Assertion Signature: Signed"
        }
        Provider::Entra => {
            "Entra: SAML Certificates > Signing Option: Sign SAML assertion, or Sign SAML response and assertion"
        }
        Provider::Google => {
            "Google Workspace: Service provider details > Signed response unchecked (the default) signs the assertion"
        }
        Provider::JumpCloud => "JumpCloud: SSO tab > Sign: Assertion",
        Provider::OneLogin => "OneLogin: SSO tab > SAML signature element: Assertion or Both",
        Provider::Auth0 => {
            "Auth0: SAML2 Web App addon settings, \"signResponse\": false (the default) signs the assertion"
        }
        Provider::Keycloak => {
            "Keycloak: client Settings > Signature and Encryption > Sign assertions: On"
        }
        Provider::Generic => "the IdP's setting that signs assertions",
    }
}

/// Where the IdP's signature algorithm is chosen.
fn algorithm_setting(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => {
            "set Okta's Signature Algorithm to RSA-SHA256 and Digest Algorithm to SHA256, or change saml.signatureAlgorithm"
        }
        Provider::Entra => {
            "set Entra's SAML Certificates > Signing Algorithm to SHA-256, or change saml.signatureAlgorithm"
        }
        Provider::JumpCloud => {
            "set JumpCloud's Signature Algorithm to RSA-SHA256, or change saml.signatureAlgorithm"
        }
        Provider::Auth0 => {
            "set \"signatureAlgorithm\": \"rsa-sha256\" and \"digestAlgorithm\": \"sha256\" in Auth0's SAML2 Web App addon settings, or change saml.signatureAlgorithm"
        }
        _ => "set the IdP's signature algorithm to RSA-SHA256, or change saml.signatureAlgorithm",
    }
}

/// What to do when the IdP signs with a certificate that is not configured.
fn certificate_action(provider: Provider, from_metadata: bool) -> &'static str {
    if from_metadata {
        return "check that spec.idp.metadataUrl is this application's metadata; it is fetched again every spec.idp.metadataRefreshInterval, so a certificate the IdP switched to only just now is trusted after the next fetch";
    }
    match provider {
        Provider::Okta => {
            "paste Okta's active Signing Certificate (Sign On tab) into spec.idp.certificates"
        }
        Provider::Entra => {
            "paste Entra's active Certificate (Base64) (SAML Certificates) into spec.idp.certificates"
        }
        Provider::Google => {
            "paste the Certificate from Google Identity Provider details into spec.idp.certificates"
        }
        Provider::JumpCloud => "paste JumpCloud's IdP Certificate into spec.idp.certificates",
        _ => "paste the IdP's current signing certificate into spec.idp.certificates",
    }
}

/// The short name of an algorithm URI (`rsa-sha256`); the response's own URIs are never quoted.
fn short_algorithm(uri: &str) -> String {
    super::algorithm_names::algorithm_name(uri).to_owned()
}

/// The first bytes of a certificate's SHA-256 fingerprint, in the form of
/// `status.certificates[].sha256Fingerprint`.
fn short_fingerprint(der: &[u8]) -> String {
    let digest = openssl::sha::sha256(der);
    let head: Vec<String> = digest[..6].iter().map(|b| format!("{b:02X}")).collect();
    format!("SHA-256 {}…", head.join(":"))
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| {
        c.is_element() && c.tag_name().namespace() == Some(DS) && c.tag_name().name() == name
    })
}

fn base64(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, compact).ok()
}

/// The certificate a signature names in its KeyInfo, if any (never trusted).
fn named_certificate(signature: roxmltree::Node<'_, '_>) -> Option<X509> {
    let text = child(signature, "KeyInfo")
        .and_then(|k| child(k, "X509Data"))
        .and_then(|d| child(d, "X509Certificate"))
        .and_then(|c| c.text())?;
    X509::from_der(&base64(text)?).ok()
}

/// The certificate a refused response names, by fingerprint only: its subject is text anyone
/// can choose, and the fingerprint is what `status.certificates` shows for comparison.
fn describe(cert: &X509) -> String {
    short_fingerprint(&cert.to_der().unwrap_or_default())
}

/// How one signature relates to the configured certificates.
enum KeyMatch {
    Configured,
    Other,
    Unknown,
}

fn key_match(signature: roxmltree::Node<'_, '_>, method: &str, configured: &[X509]) -> KeyMatch {
    let named = named_certificate(signature);
    if method.contains("#rsa-") {
        // An RSA PKCS#1 v1.5 signature opens, with correct padding, only under the public key
        // that made it: this tells the signing key without canonicalising anything.
        let value = child(signature, "SignatureValue")
            .and_then(|v| v.text())
            .and_then(base64);
        if let Some(value) = value {
            let opens = configured.iter().any(|cert| {
                cert.public_key().and_then(|k| k.rsa()).is_ok_and(|rsa| {
                    let mut out = vec![0u8; rsa.size() as usize];
                    rsa.public_decrypt(&value, &mut out, Padding::PKCS1).is_ok()
                })
            });
            return if opens {
                KeyMatch::Configured
            } else {
                KeyMatch::Other
            };
        }
    }
    match named {
        Some(named) => {
            let der = named.to_der().unwrap_or_default();
            if configured
                .iter()
                .any(|c| c.to_der().is_ok_and(|d| d == der))
            {
                KeyMatch::Configured
            } else {
                KeyMatch::Other
            }
        }
        None => KeyMatch::Unknown,
    }
}

/// Why the signatures of `xml` (a response that passed the structural gate) did not verify
/// with `certificates` (PEM) under `allowed`. `from_metadata` says where the certificates came
/// from; `provider` names the IdP's fields in the message.
pub fn diagnose(
    xml: &str,
    certificates: &[String],
    allowed: &[AllowedSignatureAlgorithm],
    from_metadata: bool,
    provider: Provider,
) -> SignatureFailure {
    let configured: Vec<X509> = certificates
        .iter()
        .filter_map(|pem| X509::from_pem(pem.as_bytes()).ok())
        .collect();
    let fingerprints = configured
        .iter()
        .map(|c| short_fingerprint(&c.to_der().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ");
    let invalid = || SignatureFailure::Invalid {
        configured: fingerprints.clone(),
        from_metadata,
        provider,
    };
    let Ok(doc) = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    ) else {
        return invalid();
    };
    // The gate allows signatures only on the Response and on its assertion.
    let root = doc.root_element();
    let signatures: Vec<roxmltree::Node> = std::iter::once(root)
        .chain(root.children().filter(|c| {
            c.is_element()
                && c.tag_name().name() == "Assertion"
                && c.tag_name().namespace() == Some("urn:oasis:names:tc:SAML:2.0:assertion")
        }))
        .filter_map(|n| child(n, "Signature"))
        .collect();
    if signatures.is_empty() {
        return SignatureFailure::Unsigned(provider);
    }
    let methods = |sig: roxmltree::Node<'_, '_>| {
        let signed_info = child(sig, "SignedInfo");
        let method = signed_info
            .and_then(|s| child(s, "SignatureMethod"))
            .and_then(|m| m.attribute("Algorithm"))
            .unwrap_or_default()
            .to_owned();
        let digest = signed_info
            .and_then(|s| child(s, "Reference"))
            .and_then(|r| child(r, "DigestMethod"))
            .and_then(|m| m.attribute("Algorithm"))
            .unwrap_or_default()
            .to_owned();
        (method, digest)
    };
    for sig in &signatures {
        let (method, digest) = methods(*sig);
        let method_ok = allowed.iter().any(|a| a.signature_uri() == method);
        let digest_ok = allowed.iter().any(|a| a.digest_uri() == digest);
        if !method_ok || !digest_ok {
            return SignatureFailure::Algorithm {
                signature: short_algorithm(&method),
                digest: short_algorithm(&digest),
                allowed: allowed
                    .iter()
                    .map(|a| short_algorithm(a.signature_uri()))
                    .collect::<Vec<_>>()
                    .join(", "),
                provider,
            };
        }
    }
    let mut undetermined = false;
    for sig in &signatures {
        let (method, _) = methods(*sig);
        match key_match(*sig, &method, &configured) {
            KeyMatch::Configured => {}
            KeyMatch::Other => {
                return SignatureFailure::WrongCertificate {
                    configured: fingerprints.clone(),
                    signed_by: named_certificate(*sig).map(|c| describe(&c)),
                    from_metadata,
                    provider,
                };
            }
            KeyMatch::Unknown => undetermined = true,
        }
    }
    if undetermined {
        invalid()
    } else {
        SignatureFailure::Tampered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_are_shortened_and_unknown_ones_never_quoted() {
        assert_eq!(
            short_algorithm("http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
            "rsa-sha1"
        );
        assert_eq!(
            short_algorithm("http://www.w3.org/2001/04/xmlenc#sha256"),
            "sha256"
        );
        assert!(!short_algorithm("urn:x#chosen-text").contains("chosen"));
    }

    #[test]
    fn every_provider_has_a_switch_and_the_reasons_are_distinct() {
        let reasons = [
            SignatureFailure::Unsigned(Provider::Okta).reason(),
            SignatureFailure::EncryptedAssertionUnsigned(Provider::Okta).reason(),
            SignatureFailure::Tampered.reason(),
            SignatureFailure::Invalid {
                configured: String::new(),
                from_metadata: false,
                provider: Provider::Generic,
            }
            .reason(),
        ];
        let unique: std::collections::BTreeSet<_> = reasons.iter().collect();
        assert_eq!(unique.len(), reasons.len());
        let okta = SignatureFailure::EncryptedAssertionUnsigned(Provider::Okta).to_string();
        assert!(okta.contains("Assertion Signature: Signed"), "{okta}");
    }

    #[test]
    fn a_document_without_signatures_is_unsigned() {
        let xml = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r"><saml:Assertion ID="_a"/></samlp:Response>"#;
        assert_eq!(
            diagnose(
                xml,
                &[],
                &[AllowedSignatureAlgorithm::RsaSha256],
                false,
                Provider::Generic
            ),
            SignatureFailure::Unsigned(Provider::Generic)
        );
    }
}
