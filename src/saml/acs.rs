//! Validation of a posted SAMLResponse against one IdentityProvider's compiled configuration.
//! The structural gate runs first, then samael verifies the signature against the pinned IdP
//! certificates only (never one carried in the message) with an explicit algorithm list, then
//! every remaining rule of docs/security.md is checked here again, failing closed. Identity is read
//! from the verified assertion samael returns, never from a re-parse.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::EntityDescriptor;
use samael::service_provider::ServiceProvider;

use super::response_shape::{self, ShapeError};
use super::signature_failure::{self, SignatureFailure};
use crate::api::SignInRefusal;
use crate::api::identity_provider::{AssertionEncryption, Provider, SignatureAlgorithm};
use crate::config::CompiledIdentityProvider;

const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// A verified sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    /// The NameID.
    pub name_id: String,
    /// The NameID's format, if given.
    pub name_id_format: Option<String>,
    /// The NameID's `NameQualifier` and `SPNameQualifier`, if given (for Single Logout).
    pub name_id_qualifiers: (Option<String>, Option<String>),
    /// The `SessionIndex` of the AuthnStatement, if given (for Single Logout).
    pub session_index: Option<String>,
    /// Attribute values by attribute name.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The assertion ID, for the replay cache.
    pub assertion_id: String,
    /// Until when the assertion may be used (the replay cache keeps its ID until then).
    pub not_on_or_after: Timestamp,
}

/// Why a response was refused. `Display` is for admins (status, logs) and never contains the
/// response.
#[derive(Debug, thiserror::Error)]
pub enum AcsError {
    /// The structural gate refused it.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// No IdP certificate is configured: nothing could be verified.
    #[error("no IdP signing certificate is configured")]
    NoCertificate,
    /// The response answers no request of ours and IdP-initiated sign-in is off.
    #[error(
        "IdP-initiated sign-in is not allowed for this IdentityProvider (set allowIdpInitiated)"
    )]
    Unsolicited,
    /// `wantAssertionsSigned` is on and only the Response is signed.
    #[error(
        "the assertion is not signed (only the Response is) and saml.wantAssertionsSigned is true: have the IdP sign the assertion ({}), or set saml.wantAssertionsSigned: false",
        signature_failure::assertion_signing(*.0)
    )]
    AssertionNotSigned(Provider),
    /// The signature is missing or did not verify; the variant says why.
    #[error(transparent)]
    Signature(#[from] SignatureFailure),
    /// The signed content is not a SAML Response or Assertion samael can read.
    #[error(
        "the signed content is not a SAML 2.0 assertion this service provider can read (a required element or attribute, such as Issuer, IssueInstant or Version, is missing or malformed)"
    )]
    Unreadable,
    /// `assertionEncryption: required` and the assertion is plain.
    #[error(
        "the assertion is not encrypted but saml.assertionEncryption is required: enable assertion encryption at the IdP with the encryption certificate from the service-provider metadata"
    )]
    EncryptionRequired,
    /// `assertionEncryption: disabled` and the assertion is encrypted.
    #[error(
        "the assertion is encrypted but saml.assertionEncryption is disabled: turn assertion encryption off at the IdP, or set saml.assertionEncryption to optional"
    )]
    EncryptionDisabled,
    /// The encrypted assertion could not be decrypted.
    #[error(transparent)]
    Decryption(#[from] super::decrypt::DecryptError),
    /// SHA-1 was allowed in the spec but this build verifies SHA-256 or stronger only.
    #[error("SHA-1 signatures are not supported: configure the IdP to sign with RSA-SHA256")]
    Sha1Unsupported,
    /// Verification failed for a reason without a more specific variant.
    #[error("the response failed verification: {0}")]
    Verification(&'static str),
    /// The IdP reported a failure.
    #[error("the IdP answered with status {0}")]
    Status(String),
    /// Issuer is not the configured IdP entity ID; the Issuer when the response's signature
    /// was checked (an unchecked value may come from anyone and is never shown).
    #[error("the Issuer{} is not the configured IdP entity ID (spec.idp.entityId){}", quoted(.0), unverified(.0))]
    Issuer(Option<String>),
    /// Destination or Recipient is not our ACS URL; the value as for `Issuer`.
    #[error("the response is addressed to{} another URL than this ACS URL{}", quoted(.0), unverified(.0))]
    Recipient(Option<String>),
    /// Our entity ID is not in the audience.
    #[error("the assertion's audience does not include this service provider's entity ID")]
    Audience,
    /// Outside its validity window (with skew).
    #[error(
        "the assertion is not valid at this time (check the clocks of the IdP and this server)"
    )]
    Time,
    /// InResponseTo does not match the request this browser made.
    #[error("the response does not answer the sign-in this browser started")]
    InResponseTo,
    /// No bearer subject confirmation.
    #[error("the assertion has no bearer SubjectConfirmation")]
    SubjectConfirmation,
}

impl AcsError {
    /// Which refusal this is, for status and metrics.
    pub fn refusal(&self) -> SignInRefusal {
        use super::decrypt::DecryptError;
        match self {
            AcsError::Shape(_) | AcsError::Unreadable => SignInRefusal::MalformedResponse,
            AcsError::NoCertificate => SignInRefusal::NoCertificate,
            AcsError::Unsolicited => SignInRefusal::IdpInitiatedNotAllowed,
            AcsError::Sha1Unsupported => SignInRefusal::Sha1Unsupported,
            AcsError::AssertionNotSigned(_) => SignInRefusal::AssertionNotSigned,
            AcsError::Signature(failure) => failure.refusal(),
            AcsError::EncryptionRequired => SignInRefusal::EncryptionRequired,
            AcsError::EncryptionDisabled => SignInRefusal::EncryptionDisabled,
            AcsError::Decryption(DecryptError::Algorithm(_)) => {
                SignInRefusal::EncryptionAlgorithmRefused
            }
            AcsError::Decryption(DecryptError::CbcRefused(_)) => {
                SignInRefusal::CbcEncryptionRefused
            }
            AcsError::Decryption(DecryptError::SeveralKeys(_)) => {
                SignInRefusal::SeveralEncryptedKeys
            }
            AcsError::Decryption(_) => SignInRefusal::DecryptionFailed,
            AcsError::Verification(_) => SignInRefusal::VerificationFailed,
            AcsError::Status(_) => SignInRefusal::IdpStatus,
            AcsError::Issuer(..) => SignInRefusal::WrongIssuer,
            AcsError::Recipient(..) => SignInRefusal::WrongRecipient,
            AcsError::Audience => SignInRefusal::WrongAudience,
            AcsError::Time => SignInRefusal::OutsideValidity,
            AcsError::InResponseTo => SignInRefusal::InResponseToMismatch,
            AcsError::SubjectConfirmation => SignInRefusal::NoBearerConfirmation,
        }
    }

    /// The refusal's stable reason, as in status and metrics.
    pub fn reason(&self) -> &'static str {
        self.refusal().reason()
    }
}

pub(crate) fn allowed_algorithms(
    config: &CompiledIdentityProvider,
) -> Result<Vec<AllowedSignatureAlgorithm>, AcsError> {
    use AllowedSignatureAlgorithm as A;
    if config.saml.signature_algorithm == SignatureAlgorithm::RsaSha1 {
        return Err(AcsError::Sha1Unsupported);
    }
    // The configured algorithm and anything stronger of the same key type.
    Ok(match config.saml.signature_algorithm {
        SignatureAlgorithm::RsaSha256 | SignatureAlgorithm::RsaSha1 => {
            vec![A::RsaSha256, A::RsaSha384, A::RsaSha512]
        }
        SignatureAlgorithm::RsaSha384 => vec![A::RsaSha384, A::RsaSha512],
        SignatureAlgorithm::RsaSha512 => vec![A::RsaSha512],
        SignatureAlgorithm::EcdsaSha256 => vec![A::EcdsaSha256, A::EcdsaSha384, A::EcdsaSha512],
        SignatureAlgorithm::EcdsaSha384 => vec![A::EcdsaSha384, A::EcdsaSha512],
        SignatureAlgorithm::EcdsaSha512 => vec![A::EcdsaSha512],
    })
}

fn idp_metadata(config: &CompiledIdentityProvider) -> Result<EntityDescriptor, AcsError> {
    let keys: String = config
        .idp
        .certificates
        .iter()
        .map(|pem| {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
            format!(r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#)
        })
        .collect();
    let entity = xml_escape(&config.idp.entity_id);
    let sso = xml_escape(&config.idp.sso_url);
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
    .parse()
    .map_err(|_| {
        AcsError::Verification(
            "the IdP certificates in spec.idp.certificates could not be read: paste them again in PEM form",
        )
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The note added to messages that quote a response whose signature was not checked yet.
fn quoted(verified: &Option<String>) -> String {
    verified
        .as_deref()
        .map(|v| format!(" {v:?}"))
        .unwrap_or_default()
}

fn unverified(verified: &Option<String>) -> &'static str {
    if verified.is_some() {
        ""
    } else {
        " (the response's signature was not checked, so it may not come from the IdP and its value is not shown)"
    }
}

/// The short name of a SAML status code; anything unknown is "Other" (the value is
/// attacker-controlled and ends up in status).
fn known_status(code: &str) -> &'static str {
    const KNOWN: [&str; 22] = [
        "Requester",
        "Responder",
        "VersionMismatch",
        "AuthnFailed",
        "InvalidAttrNameOrValue",
        "InvalidNameIDPolicy",
        "NoAuthnContext",
        "NoAvailableIDP",
        "NoPassive",
        "NoSupportedIDP",
        "PartialLogout",
        "ProxyCountExceeded",
        "RequestDenied",
        "RequestUnsupported",
        "RequestVersionDeprecated",
        "RequestVersionTooHigh",
        "RequestVersionTooLow",
        "ResourceNotRecognized",
        "TooManyResponses",
        "UnknownAttrProfile",
        "UnknownPrincipal",
        "UnsupportedBinding",
    ];
    let short = code
        .strip_prefix("urn:oasis:names:tc:SAML:2.0:status:")
        .unwrap_or("");
    KNOWN
        .iter()
        .find(|k| **k == short)
        .copied()
        .unwrap_or("Other")
}

/// A value of a verified assertion, shortened and cleaned for messages.
fn shown(value: &str) -> String {
    crate::text::shown(value, 128)
}

fn child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent.children().find(|n| {
        n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
    })
}

/// `now - skew` and `now + skew`: times are compared with these, never shifted themselves
/// (an attacker-chosen time near the end of the calendar must not overflow).
fn window(now: Timestamp, skew: SignedDuration) -> (Timestamp, Timestamp) {
    (
        now.checked_sub(skew).unwrap_or(Timestamp::MIN),
        now.checked_add(skew).unwrap_or(Timestamp::MAX),
    )
}

fn precheck(
    doc: &roxmltree::Document<'_>,
    config: &CompiledIdentityProvider,
    expected: Option<&str>,
    now: Timestamp,
    skew: SignedDuration,
) -> Result<(), AcsError> {
    let Some(assertion) = child(doc.root_element(), SAML, "Assertion") else {
        return Ok(());
    };
    let text = |n: Option<roxmltree::Node<'_, '_>>| {
        n.and_then(|n| n.text()).map(str::trim).map(str::to_owned)
    };
    if let Some(issuer) = text(child(assertion, SAML, "Issuer"))
        && issuer != config.idp.entity_id
    {
        return Err(AcsError::Issuer(None));
    }
    let time = |n: roxmltree::Node<'_, '_>, attr: &str| {
        n.attribute(attr).and_then(|v| v.parse::<Timestamp>().ok())
    };
    if let Some(conditions) = child(assertion, SAML, "Conditions") {
        let audiences: Vec<String> = conditions
            .children()
            .filter(|n| n.tag_name().name() == "AudienceRestriction")
            .flat_map(|r| {
                r.children()
                    .filter(|n| n.tag_name().name() == "Audience")
                    .filter_map(|a| a.text().map(|t| t.trim().to_owned()))
            })
            .collect();
        if !audiences.is_empty() && !audiences.contains(&config.service_provider.entity_id) {
            return Err(AcsError::Audience);
        }
        let (earliest, latest) = window(now, skew);
        if time(conditions, "NotBefore").is_some_and(|t| t > latest)
            || time(conditions, "NotOnOrAfter").is_some_and(|t| t <= earliest)
        {
            return Err(AcsError::Time);
        }
    }
    if let Some(subject) = child(assertion, SAML, "Subject")
        && !subject.children().any(|c| {
            c.tag_name().namespace() == Some(SAML)
                && c.tag_name().name() == "SubjectConfirmation"
                && c.attribute("Method") == Some(BEARER)
        })
    {
        return Err(AcsError::SubjectConfirmation);
    }
    let data = child(assertion, SAML, "Subject")
        .and_then(|s| child(s, SAML, "SubjectConfirmation"))
        .and_then(|c| child(c, SAML, "SubjectConfirmationData"));
    if let Some(data) = data {
        if let Some(recipient) = data.attribute("Recipient")
            && recipient != config.service_provider.acs_url
        {
            return Err(AcsError::Recipient(None));
        }
        match (data.attribute("InResponseTo"), expected) {
            (Some(got), Some(want)) if got != want => return Err(AcsError::InResponseTo),
            (Some(_), None) => return Err(AcsError::InResponseTo),
            _ => {}
        }
        if time(data, "NotOnOrAfter").is_some_and(|t| t <= window(now, skew).0) {
            return Err(AcsError::Time);
        }
    }
    Ok(())
}

/// The short name of a non-success status (the second-level code when there is one).
fn status_code(root: roxmltree::Node<'_, '_>) -> Option<&'static str> {
    let status = child(root, SAMLP, "Status").and_then(|s| child(s, SAMLP, "StatusCode"));
    let top = status.and_then(|c| c.attribute("Value")).unwrap_or("");
    if top == SUCCESS {
        return None;
    }
    let second = status
        .and_then(|c| child(c, SAMLP, "StatusCode"))
        .and_then(|c| c.attribute("Value"));
    Some(known_status(second.unwrap_or(top)))
}

/// The failed status of a response that passed every structural rule but carries no
/// assertion.
fn failed_status(encoded: &str) -> Option<String> {
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, compact).ok()?;
    let xml = String::from_utf8(bytes).ok()?;
    let doc = roxmltree::Document::parse_with_options(
        &xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .ok()?;
    status_code(doc.root_element()).map(str::to_owned)
}

/// samael's refusal in this module's terms: its own messages never reach the admin.
fn samael_refusal(
    error: samael::service_provider::Error,
    config: &CompiledIdentityProvider,
    xml: &str,
) -> AcsError {
    use samael::service_provider::Error as E;
    match error {
        E::FailedToValidateSignature => match allowed_algorithms(config) {
            Ok(allowed) => signature_failure::diagnose(
                xml,
                &config.idp.certificates,
                &allowed,
                config.idp.metadata_url.is_some(),
                config.provider,
            )
            .into(),
            Err(e) => e,
        },
        // The values below come from the verified part of the response.
        E::DestinationValidationError {
            response_destination: value,
            ..
        }
        | E::AssertionRecipientMismatch {
            assertion_recipient: value,
            ..
        } => AcsError::Recipient(Some(shown(value.as_deref().unwrap_or_default()))),
        E::AssertionIssuerMismatch { issuer, .. } | E::ResponseIssuerMismatch { issuer, .. } => {
            AcsError::Issuer(Some(shown(issuer.as_deref().unwrap_or_default())))
        }
        E::AssertionExpired { .. }
        | E::ResponseExpired { .. }
        | E::AssertionConditionExpired { .. }
        | E::AssertionConditionExpiredBefore { .. }
        | E::AssertionSubjectConfirmationExpired { .. }
        | E::AssertionSubjectConfirmationExpiredBefore { .. } => AcsError::Time,
        E::AssertionConditionAudienceRestrictionFailed { .. } => AcsError::Audience,
        E::AssertionInResponseToInvalid { .. } | E::ResponseInResponseToInvalid { .. } => {
            AcsError::InResponseTo
        }
        E::AssertionBearerSubjectConfirmationMissing | E::AssertionSubjectConfirmationMissing => {
            AcsError::SubjectConfirmation
        }
        E::ResponseBadStatusCode { code } => AcsError::Status(known_status(&code).to_owned()),
        E::FailedToParseSamlResponse(_)
        | E::FailedToParseSamlAssertion(_)
        | E::DeserializeResponseError => AcsError::Unreadable,
        E::FailedToParseCert { .. } => AcsError::Verification(
            "a certificate in spec.idp.certificates could not be read: paste it again in PEM form",
        ),
        // Encryption is handled before samael; anything else is unexpected.
        _ => {
            AcsError::Verification("the SAML library refused the response for an unexpected reason")
        }
    }
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Verifies `encoded` (the posted SAMLResponse). `expected_request` is the AuthnRequest ID of
/// the sign-in this browser started, or `None` for an IdP-initiated sign-in.
pub fn verify(
    config: &CompiledIdentityProvider,
    encoded: &str,
    expected_request: Option<&str>,
    now: Timestamp,
) -> Result<SignIn, AcsError> {
    let shape = gate(config, encoded)?;
    if expected_request.is_none() && !config.allow_idp_initiated {
        return Err(AcsError::Unsolicited);
    }
    let skew = config.saml.clock_skew;

    // The envelope (unsigned when only the assertion is signed): status, issuer, destination,
    // InResponseTo.
    let doc = roxmltree::Document::parse_with_options(
        &shape.xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .map_err(|_| AcsError::Shape(ShapeError::Malformed))?;
    let root = doc.root_element();
    check_envelope(root, config, expected_request)?;
    // Early refusals from the not-yet-verified assertion, so that the admin sees which rule
    // failed. They can only refuse: everything is checked again on the verified assertion.
    precheck(&doc, config, expected_request, now, skew)?;
    let qualified = qualified_name_id(root);
    drop(doc);

    let assertion = samael_verify(config, &shape.xml, expected_request, skew)?;
    verified_sign_in(assertion, config, expected_request, qualified, now, skew)
}

/// The structural gate, decryption and the signing rules: the response, decrypted, that
/// samael may verify.
fn gate(
    config: &CompiledIdentityProvider,
    encoded: &str,
) -> Result<response_shape::Shape, AcsError> {
    let shape = match response_shape::inspect(encoded) {
        Ok(shape) => shape,
        // IdPs answer failures (InvalidNameIDPolicy, AuthnFailed) without an assertion: report
        // the status they sent rather than the missing assertion.
        Err(ShapeError::NoAssertion) => {
            return Err(failed_status(encoded)
                .map(AcsError::Status)
                .unwrap_or(AcsError::Shape(ShapeError::NoAssertion)));
        }
        Err(e) => return Err(e.into()),
    };
    if config.idp.certificates.is_empty() {
        return Err(AcsError::NoCertificate);
    }
    let encrypted = shape.encrypted;
    let shape = match (shape.encrypted, config.saml.assertion_encryption) {
        (true, AssertionEncryption::Disabled) => return Err(AcsError::EncryptionDisabled),
        (true, _) => decrypted(config, &shape.xml)?,
        (false, AssertionEncryption::Required) => return Err(AcsError::EncryptionRequired),
        (false, _) => shape,
    };
    // An encrypted assertion arrives here decrypted, without the Response signature (which
    // covered only the ciphertext): it must carry its own.
    if encrypted && !shape.assertion_signed {
        return Err(SignatureFailure::EncryptedAssertionUnsigned(config.provider).into());
    }
    if !shape.assertion_signed && !shape.response_signed {
        return Err(SignatureFailure::Unsigned(config.provider).into());
    }
    if config.saml.want_assertions_signed && !shape.assertion_signed {
        return Err(AcsError::AssertionNotSigned(config.provider));
    }
    Ok(shape)
}

/// Decrypts with any current, next or previous SP key, then inspects the result like a plain
/// response: its assertion must carry its own valid signature.
fn decrypted(
    config: &CompiledIdentityProvider,
    xml: &str,
) -> Result<response_shape::Shape, AcsError> {
    let keys: Vec<_> = [
        Some(&config.service_provider.current),
        config.service_provider.next.as_ref(),
        config.service_provider.previous.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|k| openssl::pkey::PKey::private_key_from_pem(k.private_key_pem.as_bytes()).ok())
    .collect();
    let xml = super::decrypt::decrypt_response(
        xml,
        &keys,
        config.saml.allow_cbc_encryption,
        config.provider,
    )?;
    let plain = response_shape::inspect_xml(xml)?;
    if plain.encrypted {
        return Err(AcsError::Shape(ShapeError::AssertionPlacement));
    }
    Ok(plain)
}

/// The Response element's own rules: success status, issuer, destination and InResponseTo.
fn check_envelope(
    root: roxmltree::Node<'_, '_>,
    config: &CompiledIdentityProvider,
    expected_request: Option<&str>,
) -> Result<(), AcsError> {
    if let Some(code) = status_code(root) {
        return Err(AcsError::Status(code.to_owned()));
    }
    if let Some(issuer) = child(root, SAML, "Issuer")
        .and_then(|i| i.text())
        .map(str::trim)
        && issuer != config.idp.entity_id
    {
        return Err(AcsError::Issuer(None));
    }
    if let Some(destination) = root.attribute("Destination")
        && destination != config.service_provider.acs_url
    {
        return Err(AcsError::Recipient(None));
    }
    match (root.attribute("InResponseTo"), expected_request) {
        (Some(got), Some(want)) if got == want => {}
        (None, Some(_)) => {}
        (None, None) => {}
        _ => return Err(AcsError::InResponseTo),
    }
    Ok(())
}

/// A NameID value with its `NameQualifier` and `SPNameQualifier`.
type QualifiedNameId = (String, (Option<String>, Option<String>));

/// The assertion's NameID with its qualifiers, which samael drops. The gate allowed exactly one
/// assertion, so this is the one samael verifies (its NameID value is compared with the
/// verified one).
fn qualified_name_id(root: roxmltree::Node<'_, '_>) -> Option<QualifiedNameId> {
    child(root, SAML, "Assertion")
        .and_then(|a| child(a, SAML, "Subject"))
        .and_then(|s| child(s, SAML, "NameID"))
        .map(|n| {
            let attr = |a: &str| n.attribute(a).map(str::to_owned);
            (
                n.text().unwrap_or_default().to_owned(),
                (attr("NameQualifier"), attr("SPNameQualifier")),
            )
        })
}

/// samael's verification: the signature against the pinned certificates with the allowed
/// algorithms, and its own checks.
fn samael_verify(
    config: &CompiledIdentityProvider,
    xml: &str,
    expected_request: Option<&str>,
    skew: SignedDuration,
) -> Result<samael::schema::Assertion, AcsError> {
    let sp = ServiceProvider {
        entity_id: Some(config.service_provider.entity_id.clone()),
        acs_url: Some(config.service_provider.acs_url.clone()),
        idp_metadata: idp_metadata(config)?,
        allow_idp_initiated: expected_request.is_none(),
        max_clock_skew: chrono::Duration::seconds(skew.as_secs()),
        allowed_signature_algorithms: Some(allowed_algorithms(config)?),
        // Assertions are decrypted above; samael never sees an encrypted one.
        key: None,
        ..Default::default()
    };
    let ids: Vec<&str> = expected_request.into_iter().collect();
    sp.parse_xml_response(xml, expected_request.map(|_| ids.as_slice()))
        .map_err(|e| samael_refusal(e, config, xml))
}

/// Every rule again on the verified assertion, then the sign-in it carries.
fn verified_sign_in(
    assertion: samael::schema::Assertion,
    config: &CompiledIdentityProvider,
    expected_request: Option<&str>,
    qualified: Option<QualifiedNameId>,
    now: Timestamp,
    skew: SignedDuration,
) -> Result<SignIn, AcsError> {
    if assertion.issuer.value.as_deref().map(str::trim) != Some(config.idp.entity_id.as_str()) {
        return Err(AcsError::Issuer(Some(shown(
            &assertion.issuer.value.unwrap_or_default(),
        ))));
    }
    let conditions = assertion.conditions.as_ref().ok_or(AcsError::Audience)?;
    let audience_ok = conditions.audience_restrictions.iter().flatten().any(|r| {
        r.audience
            .iter()
            .any(|a| a.trim() == config.service_provider.entity_id)
    });
    if !audience_ok {
        return Err(AcsError::Audience);
    }
    let (earliest, latest) = window(now, skew);
    if conditions.not_before.is_some_and(|t| ts(t) > latest)
        || conditions
            .not_on_or_after
            .is_some_and(|t| ts(t) <= earliest)
    {
        return Err(AcsError::Time);
    }
    let subject = assertion
        .subject
        .as_ref()
        .ok_or(AcsError::SubjectConfirmation)?;
    let until = check_bearer(subject, config, expected_request, (earliest, latest))?;
    let name_id = subject
        .name_id
        .as_ref()
        .ok_or(AcsError::SubjectConfirmation)?;
    let last_use = conditions
        .not_on_or_after
        .map(ts)
        .unwrap_or(until)
        .min(until);
    let not_on_or_after = last_use.checked_add(skew).unwrap_or(Timestamp::MAX);
    let name_id_qualifiers = qualified
        .filter(|(value, _)| *value == name_id.value)
        .map(|(_, q)| q)
        .unwrap_or_default();
    let session_index = assertion
        .authn_statements
        .iter()
        .flatten()
        .find_map(|a| a.session_index.clone());
    Ok(SignIn {
        name_id: name_id.value.clone(),
        name_id_format: name_id.format.clone(),
        name_id_qualifiers,
        session_index,
        attributes: attributes(&assertion),
        assertion_id: assertion.id,
        not_on_or_after,
    })
}

/// The verified bearer SubjectConfirmation's rules (recipient, validity window within
/// `(earliest, latest)`, InResponseTo); returns its `NotOnOrAfter`.
fn check_bearer(
    subject: &samael::schema::Subject,
    config: &CompiledIdentityProvider,
    expected_request: Option<&str>,
    (earliest, latest): (Timestamp, Timestamp),
) -> Result<Timestamp, AcsError> {
    let bearer = subject
        .subject_confirmations
        .iter()
        .flatten()
        .find(|c| c.method.as_deref() == Some(BEARER))
        .ok_or(AcsError::SubjectConfirmation)?;
    let data = bearer
        .subject_confirmation_data
        .as_ref()
        .ok_or(AcsError::SubjectConfirmation)?;
    if data.recipient.as_deref() != Some(config.service_provider.acs_url.as_str()) {
        return Err(AcsError::Recipient(Some(shown(
            data.recipient.as_deref().unwrap_or_default(),
        ))));
    }
    let until = data.not_on_or_after.map(ts).ok_or(AcsError::Time)?;
    if until <= earliest || data.not_before.is_some_and(|t| ts(t) > latest) {
        return Err(AcsError::Time);
    }
    match (data.in_response_to.as_deref(), expected_request) {
        (Some(got), Some(want)) if got == want => {}
        (None, None) => {}
        _ => return Err(AcsError::InResponseTo),
    }
    Ok(until)
}

/// The verified assertion's attribute values by attribute name.
fn attributes(assertion: &samael::schema::Assertion) -> BTreeMap<String, Vec<String>> {
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in assertion.attribute_statements.iter().flatten() {
        for attribute in &statement.attributes {
            if let Some(name) = &attribute.name {
                attributes
                    .entry(name.clone())
                    .or_default()
                    .extend(attribute.values.iter().filter_map(|v| v.value.clone()));
            }
        }
    }
    attributes
}
