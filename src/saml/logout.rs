//! SAML 2.0 Single Logout (SAML core §3.7; bindings §3.4 HTTP-Redirect and §3.5 HTTP-POST):
//! our signed LogoutRequest and LogoutResponse, and the IdP's, which are verified against the
//! pinned IdP certificates (for HTTP-Redirect, the query-string signature; for HTTP-POST, an
//! enveloped XML signature) before anything in them is read. Fails closed on size, encoding,
//! DTDs, a missing or foreign signature, Issuer, Destination and time.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode};

use super::response_shape::plain_enveloped_signature;
use crate::api::LogoutRefusal;
use crate::config::{CompiledIdentityProvider, SloBinding};
use crate::session::SamlSubject;

const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// Largest accepted raw query string of an HTTP-Redirect message.
pub const MAX_QUERY: usize = 32 * 1024;
/// Largest accepted base64 message of an HTTP-POST form.
pub const MAX_ENCODED: usize = 128 * 1024;
/// Largest accepted inflated HTTP-Redirect message (deflate bombs stop here).
pub const MAX_INFLATED: usize = 128 * 1024;
/// How old a LogoutRequest or LogoutResponse may be (plus the clock skew).
const MAX_AGE: SignedDuration = SignedDuration::from_mins(10);

/// Why a Single Logout message was refused or could not be built. `Display` is for admins
/// (logs and pages) and never contains the message itself.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// Larger than the limits above.
    #[error("the Single Logout message is too large")]
    TooLarge,
    /// Neither or both of SAMLRequest and SAMLResponse, or a parameter twice.
    #[error(
        "the request must carry exactly one SAMLRequest or SAMLResponse (and each parameter once)"
    )]
    NoMessage,
    /// Not base64, not deflated (HTTP-Redirect) or not UTF-8.
    #[error(
        "the Single Logout message is not base64-encoded (and, for HTTP-Redirect, deflated) UTF-8"
    )]
    Encoding,
    /// Not well-formed, or carries a DTD.
    #[error("the Single Logout message is not well-formed XML without a DTD")]
    Malformed,
    /// The root is not a LogoutRequest or LogoutResponse (or not the one the field names).
    #[error("the message is not a SAML LogoutRequest or LogoutResponse")]
    NotLogout,
    /// No signature.
    #[error(
        "the Single Logout message is not signed: configure the IdP to sign its logout requests and responses"
    )]
    Unsigned,
    /// A signature algorithm outside the allowed list.
    #[error(
        "the Single Logout message is signed with an algorithm that saml.signatureAlgorithm does not allow"
    )]
    Algorithm,
    /// A signature that is not a plain enveloped signature of the message.
    #[error(
        "the Single Logout message carries a signature that is not an enveloped signature of the message (one reference to its ID, exclusive canonicalisation)"
    )]
    SignatureShape,
    /// The signature does not verify against the IdP certificates.
    #[error(
        "the signature of the Single Logout message does not verify against the IdP signing certificates (spec.idp.certificates or the IdP metadata)"
    )]
    Signature,
    /// Issuer is not the configured IdP entity ID.
    #[error("the Issuer {0:?} is not the configured IdP entity ID")]
    Issuer(String),
    /// Destination is not our Single Logout URL.
    #[error("the message is addressed to {0:?}, not this Single Logout URL")]
    Destination(String),
    /// Too old, from the future, or past its NotOnOrAfter.
    #[error(
        "the Single Logout message is not valid at this time (check the clocks of the IdP and this server)"
    )]
    Time,
    /// A LogoutRequest without a usable NameID.
    #[error(
        "the LogoutRequest names no NameID (an encrypted NameID is not supported: configure the IdP to send it in clear)"
    )]
    NoNameId,
    /// Our message could not be built or signed.
    #[error("could not build the Single Logout message: {0}")]
    Build(String),
}

impl LogoutError {
    /// Which refusal this is, for the log.
    pub fn refusal(&self) -> LogoutRefusal {
        match self {
            LogoutError::TooLarge => LogoutRefusal::RequestTooLarge,
            LogoutError::NoMessage => LogoutRefusal::NoMessage,
            LogoutError::Encoding | LogoutError::Malformed | LogoutError::NotLogout => {
                LogoutRefusal::MalformedMessage
            }
            LogoutError::Unsigned => LogoutRefusal::Unsigned,
            LogoutError::Algorithm => LogoutRefusal::SignatureAlgorithmRefused,
            LogoutError::SignatureShape => LogoutRefusal::SignatureShape,
            LogoutError::Signature => LogoutRefusal::VerificationFailed,
            LogoutError::Issuer(_) => LogoutRefusal::WrongIssuer,
            LogoutError::Destination(_) => LogoutRefusal::WrongDestination,
            LogoutError::Time => LogoutRefusal::OutsideValidity,
            LogoutError::NoNameId => LogoutRefusal::NoNameId,
            LogoutError::Build(_) => LogoutRefusal::BuildFailed,
        }
    }

    /// A short, stable label for logs: the refusal's reason.
    pub fn reason(&self) -> &'static str {
        self.refusal().reason()
    }
}

/// An IdP's verified LogoutRequest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpLogoutRequest {
    /// Its ID (our LogoutResponse's InResponseTo).
    pub id: String,
    /// The NameID value whose sessions end.
    pub name_id: String,
    /// The SessionIndex values; empty: every session of the NameID.
    pub session_indexes: Vec<String>,
}

/// An IdP's verified LogoutResponse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpLogoutResponse {
    /// The LogoutRequest it answers.
    pub in_response_to: Option<String>,
    /// `None` for Success, else the short name of the (second-level, when given) status code.
    pub failed_status: Option<String>,
}

/// A verified Single Logout message from the IdP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The IdP ends a session (IdP-initiated, or another SP's logout).
    Request(IdpLogoutRequest),
    /// The IdP answers our LogoutRequest.
    Response(IdpLogoutResponse),
}

/// A verified message with the RelayState that came with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The message.
    pub message: Received,
    /// The RelayState, returned unchanged with our answer.
    pub relay_state: Option<String>,
}

/// A Single Logout message to deliver through the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// HTTP-Redirect: the URL to send the browser to.
    Redirect(String),
    /// HTTP-POST: a form for the browser to post.
    Post {
        /// Where the form posts.
        url: String,
        /// `SAMLRequest` or `SAMLResponse`.
        field: &'static str,
        /// The base64 signed message.
        message: String,
        /// The RelayState, if any.
        relay_state: Option<String>,
    },
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn sp_key(config: &CompiledIdentityProvider) -> Result<PKey<Private>, LogoutError> {
    PKey::private_key_from_pem(config.service_provider.current.private_key_pem.as_bytes())
        .map_err(|e| LogoutError::Build(e.to_string()))
}

/// The signature algorithm of our messages: SHA-256 with the key type of the SP key.
fn our_algorithm(key: &PKey<Private>) -> AllowedSignatureAlgorithm {
    if key.ec_key().is_ok() {
        AllowedSignatureAlgorithm::EcdsaSha256
    } else {
        AllowedSignatureAlgorithm::RsaSha256
    }
}

fn digest_of(algorithm: AllowedSignatureAlgorithm) -> Option<MessageDigest> {
    use AllowedSignatureAlgorithm as A;
    match algorithm {
        A::RsaSha256 | A::EcdsaSha256 => Some(MessageDigest::sha256()),
        A::RsaSha384 | A::EcdsaSha384 => Some(MessageDigest::sha384()),
        A::RsaSha512 | A::EcdsaSha512 => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// A unique ID for our messages: `_` and 160 random bits in hex.
pub fn new_message_id() -> String {
    super::login::new_request_id()
}

/// Our LogoutRequest for `subject`, signed, in the IdP's binding, carrying `relay_state`.
pub fn logout_request(
    config: &CompiledIdentityProvider,
    subject: &SamlSubject,
    id: &str,
    relay_state: &str,
    now: Timestamp,
) -> Result<Outgoing, LogoutError> {
    let slo = config
        .single_logout()
        .ok_or_else(|| LogoutError::Build("the IdP has no Single Logout endpoint".into()))?;
    let attr = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| format!(r#" {name}="{}""#, xml_escape(v)))
            .unwrap_or_default()
    };
    let body = format!(
        r#"<saml:NameID{}{}{}>{}</saml:NameID>{}"#,
        attr("Format", &subject.format),
        attr("NameQualifier", &subject.name_qualifier),
        attr("SPNameQualifier", &subject.sp_name_qualifier),
        xml_escape(&subject.name_id),
        subject
            .session_index
            .as_deref()
            .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(i)))
            .unwrap_or_default()
    );
    let message = Message {
        root: "LogoutRequest",
        field: "SAMLRequest",
        id,
        extra_attributes: String::new(),
        destination: &slo.location,
        body: &body,
    };
    message.render(config, slo.binding, Some(relay_state), now)
}

/// Our LogoutResponse to the IdP's LogoutRequest `in_response_to`: Success, or `failure` (a
/// top-level status code such as `Responder`). Goes to the IdP's ResponseLocation.
pub fn logout_response(
    config: &CompiledIdentityProvider,
    in_response_to: &str,
    failure: Option<&str>,
    relay_state: Option<&str>,
    now: Timestamp,
) -> Result<Option<Outgoing>, LogoutError> {
    let Some(slo) = config.single_logout() else {
        return Ok(None);
    };
    let code = failure
        .map(|f| format!("urn:oasis:names:tc:SAML:2.0:status:{f}"))
        .unwrap_or_else(|| SUCCESS.to_owned());
    let body = format!(r#"<samlp:Status><samlp:StatusCode Value="{code}"/></samlp:Status>"#);
    let message = Message {
        root: "LogoutResponse",
        field: "SAMLResponse",
        id: &new_message_id(),
        extra_attributes: format!(r#" InResponseTo="{}""#, xml_escape(in_response_to)),
        destination: slo.response_url(),
        body: &body,
    };
    message
        .render(config, slo.binding, relay_state, now)
        .map(Some)
}

struct Message<'a> {
    root: &'static str,
    field: &'static str,
    id: &'a str,
    extra_attributes: String,
    destination: &'a str,
    body: &'a str,
}

impl Message<'_> {
    fn xml(&self, config: &CompiledIdentityProvider, signature: &str, now: Timestamp) -> String {
        format!(
            r#"<samlp:{root} xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{destination}"{extra}><saml:Issuer>{issuer}</saml:Issuer>{signature}{body}</samlp:{root}>"#,
            root = self.root,
            id = xml_escape(self.id),
            instant = instant(now),
            destination = xml_escape(self.destination),
            extra = self.extra_attributes,
            issuer = xml_escape(&config.service_provider.entity_id),
            body = self.body,
        )
    }

    fn render(
        &self,
        config: &CompiledIdentityProvider,
        binding: SloBinding,
        relay_state: Option<&str>,
        now: Timestamp,
    ) -> Result<Outgoing, LogoutError> {
        let key = sp_key(config)?;
        let algorithm = our_algorithm(&key);
        match binding {
            SloBinding::Redirect => {
                let xml = self.xml(config, "", now);
                let mut deflated = Vec::new();
                flate2::read::DeflateEncoder::new(xml.as_bytes(), flate2::Compression::default())
                    .read_to_end(&mut deflated)
                    .map_err(|e| LogoutError::Build(e.to_string()))?;
                let enc =
                    |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                // Bindings §3.4.4.1: the signature covers exactly these parameters, in this order.
                let mut signed = format!("{}={}", self.field, enc(&STANDARD.encode(deflated)));
                if let Some(r) = relay_state {
                    signed.push_str(&format!("&RelayState={}", enc(r)));
                }
                signed.push_str(&format!("&SigAlg={}", enc(algorithm.signature_uri())));
                let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key)
                    .map_err(|e| LogoutError::Build(e.to_string()))?;
                let signature = signer
                    .sign_oneshot_to_vec(signed.as_bytes())
                    .map_err(|e| LogoutError::Build(e.to_string()))?;
                let separator = if self.destination.contains('?') {
                    '&'
                } else {
                    '?'
                };
                Ok(Outgoing::Redirect(format!(
                    "{}{separator}{signed}&Signature={}",
                    self.destination,
                    enc(&STANDARD.encode(signature))
                )))
            }
            SloBinding::Post => {
                let certificate: String = config
                    .service_provider
                    .current
                    .certificate_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .map(str::trim)
                    .collect();
                let template = format!(
                    r##"<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
                    method = algorithm.signature_uri(),
                    id = xml_escape(self.id),
                );
                let der = key
                    .private_key_to_der()
                    .map_err(|e| LogoutError::Build(e.to_string()))?;
                let signed =
                    samael::crypto::Crypto::sign_xml(self.xml(config, &template, now), &der)
                        .map_err(|e| LogoutError::Build(e.to_string()))?;
                Ok(Outgoing::Post {
                    url: self.destination.to_owned(),
                    field: self.field,
                    message: STANDARD.encode(signed),
                    relay_state: relay_state.map(str::to_owned),
                })
            }
        }
    }
}

/// The IdP certificates as DER.
fn certificates(config: &CompiledIdentityProvider) -> Vec<openssl::x509::X509> {
    config
        .idp
        .certificates
        .iter()
        .filter_map(|pem| openssl::x509::X509::from_pem(pem.as_bytes()).ok())
        .collect()
}

/// The raw (still percent-encoded) value of each SAML parameter of a query string; a
/// parameter given twice is refused.
#[derive(Default)]
struct RawParams<'a> {
    message: Option<(&'static str, &'a str)>,
    relay_state: Option<&'a str>,
    sig_alg: Option<&'a str>,
    signature: Option<&'a str>,
}

fn decode(raw: &str) -> String {
    form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn raw_params(query: &str) -> Result<RawParams<'_>, LogoutError> {
    let mut p = RawParams::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match decode(k).as_str() {
            "SAMLRequest" | "SAMLResponse" => {
                let field = if decode(k) == "SAMLRequest" {
                    "SAMLRequest"
                } else {
                    "SAMLResponse"
                };
                if p.message.replace((field, v)).is_some() {
                    return Err(LogoutError::NoMessage);
                }
                continue;
            }
            "RelayState" => &mut p.relay_state,
            "SigAlg" => &mut p.sig_alg,
            "Signature" => &mut p.signature,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(LogoutError::NoMessage);
        }
    }
    Ok(p)
}

/// The public keys of the IdP certificates.
fn public_keys(config: &CompiledIdentityProvider) -> Vec<PKey<Public>> {
    certificates(config)
        .iter()
        .filter_map(|c| c.public_key().ok())
        .collect()
}

/// Whether `signature` over `data` verifies with `key`. ECDSA signatures are accepted as DER
/// and as the `r || s` concatenation XML Signature defines.
fn verifies(key: &PKey<Public>, digest: MessageDigest, data: &[u8], signature: &[u8]) -> bool {
    let check = |sig: &[u8]| {
        openssl::sign::Verifier::new(digest, key)
            .and_then(|mut v| v.verify_oneshot(sig, data))
            .unwrap_or(false)
    };
    if check(signature) {
        return true;
    }
    if key.ec_key().is_ok() && signature.len().is_multiple_of(2) && !signature.is_empty() {
        let (r, s) = signature.split_at(signature.len() / 2);
        if let (Ok(r), Ok(s)) = (
            openssl::bn::BigNum::from_slice(r),
            openssl::bn::BigNum::from_slice(s),
        ) && let Ok(der) =
            openssl::ecdsa::EcdsaSig::from_private_components(r, s).and_then(|s| s.to_der())
        {
            return check(&der);
        }
    }
    false
}

/// Reads an HTTP-Redirect message from the raw query string: the query-string signature is
/// checked before the message is inflated and parsed.
pub fn read_redirect(
    config: &CompiledIdentityProvider,
    query: &str,
    now: Timestamp,
) -> Result<Incoming, LogoutError> {
    if query.len() > MAX_QUERY {
        return Err(LogoutError::TooLarge);
    }
    let p = raw_params(query)?;
    let (field, raw_message) = p.message.ok_or(LogoutError::NoMessage)?;
    let (Some(raw_alg), Some(raw_signature)) = (p.sig_alg, p.signature) else {
        return Err(LogoutError::Unsigned);
    };
    let sig_alg = decode(raw_alg);
    let algorithm = super::acs::allowed_algorithms(config)
        .map_err(|_| LogoutError::Algorithm)?
        .into_iter()
        .find(|a| a.signature_uri() == sig_alg)
        .ok_or(LogoutError::Algorithm)?;
    let digest = digest_of(algorithm).ok_or(LogoutError::Algorithm)?;
    // Bindings §3.4.4.1: the parameters as they arrived (their original URL-encoding).
    let mut signed = format!("{field}={raw_message}");
    if let Some(r) = p.relay_state {
        signed.push_str(&format!("&RelayState={r}"));
    }
    signed.push_str(&format!("&SigAlg={raw_alg}"));
    let compact: String = decode(raw_signature)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let signature = STANDARD
        .decode(compact)
        .map_err(|_| LogoutError::Signature)?;
    if !public_keys(config)
        .iter()
        .any(|k| verifies(k, digest, signed.as_bytes(), &signature))
    {
        return Err(LogoutError::Signature);
    }
    let compact: String = decode(raw_message)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let deflated = STANDARD
        .decode(compact)
        .map_err(|_| LogoutError::Encoding)?;
    let mut xml = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(MAX_INFLATED as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(|_| LogoutError::Encoding)?;
    if xml.len() > MAX_INFLATED {
        return Err(LogoutError::TooLarge);
    }
    let xml = String::from_utf8(xml).map_err(|_| LogoutError::Encoding)?;
    let doc = parse(&xml)?;
    let message = read_message(config, doc.root_element(), field, now)?;
    Ok(Incoming {
        message,
        relay_state: p.relay_state.map(decode),
    })
}

/// Reads an HTTP-POST message from the posted form: the enveloped signature is checked, and
/// the message is read from what the signature covers.
pub fn read_post(
    config: &CompiledIdentityProvider,
    form: &[u8],
    now: Timestamp,
) -> Result<Incoming, LogoutError> {
    let mut message: Option<(&'static str, String)> = None;
    let mut relay_state: Option<String> = None;
    for (k, v) in form_urlencoded::parse(form) {
        let twice = match k.as_ref() {
            "SAMLRequest" => message.replace(("SAMLRequest", v.into_owned())).is_some(),
            "SAMLResponse" => message.replace(("SAMLResponse", v.into_owned())).is_some(),
            "RelayState" => relay_state.replace(v.into_owned()).is_some(),
            _ => false,
        };
        if twice {
            return Err(LogoutError::NoMessage);
        }
    }
    let (field, encoded) = message.ok_or(LogoutError::NoMessage)?;
    if encoded.len() > MAX_ENCODED {
        return Err(LogoutError::TooLarge);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let xml = STANDARD
        .decode(compact)
        .map_err(|_| LogoutError::Encoding)
        .and_then(|b| String::from_utf8(b).map_err(|_| LogoutError::Encoding))?;
    let doc = parse(&xml)?;
    let root = doc.root_element();
    expect_root(root, field)?;
    // One signature, a plain enveloped signature of the root; nothing else is signed here.
    let signatures: Vec<_> = doc
        .descendants()
        .filter(|n| {
            n.is_element()
                && n.tag_name().namespace() == Some(DS)
                && n.tag_name().name() == "Signature"
        })
        .collect();
    match signatures.as_slice() {
        [] => return Err(LogoutError::Unsigned),
        [sig] if sig.parent_element() == Some(root) && plain_enveloped_signature(*sig) => {}
        _ => return Err(LogoutError::SignatureShape),
    }
    let root_id = root.attribute("ID").unwrap_or_default().to_owned();
    let allowed = super::acs::allowed_algorithms(config).map_err(|_| LogoutError::Algorithm)?;
    let certificates: Vec<CertificateDer> = certificates(config)
        .iter()
        .filter_map(|c| c.to_der().ok())
        .map(CertificateDer::from)
        .collect();
    if certificates.is_empty() {
        return Err(LogoutError::Signature);
    }
    // xmlsec returns the canonical form of exactly what the verified reference covers.
    let verified = samael::crypto::Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &xml,
        &certificates,
        ReduceMode::PreDigest,
        Some(&allowed),
    )
    .map_err(|_| LogoutError::Signature)?;
    drop(doc);
    let doc = parse(&verified)?;
    let root = doc.root_element();
    if root.attribute("ID") != Some(root_id.as_str()) {
        return Err(LogoutError::SignatureShape);
    }
    let message = read_message(config, root, field, now)?;
    Ok(Incoming {
        message,
        relay_state,
    })
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>, LogoutError> {
    roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..Default::default()
        },
    )
    .map_err(|_| LogoutError::Malformed)
}

fn expect_root(root: roxmltree::Node<'_, '_>, field: &str) -> Result<(), LogoutError> {
    let want = if field == "SAMLRequest" {
        "LogoutRequest"
    } else {
        "LogoutResponse"
    };
    if root.tag_name().namespace() == Some(SAMLP) && root.tag_name().name() == want {
        Ok(())
    } else {
        Err(LogoutError::NotLogout)
    }
}

fn child<'a, 'i>(
    parent: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    parent.children().find(|n| {
        n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
    })
}

/// A value of a verified message, shortened and cleaned for messages.
fn shown(value: &str) -> String {
    crate::text::shown(value, 128)
}

/// The rules every verified message obeys, then its content.
fn read_message(
    config: &CompiledIdentityProvider,
    root: roxmltree::Node<'_, '_>,
    field: &str,
    now: Timestamp,
) -> Result<Received, LogoutError> {
    expect_root(root, field)?;
    if root.attribute("Version") != Some("2.0") {
        return Err(LogoutError::NotLogout);
    }
    let issuer = child(root, SAML, "Issuer")
        .and_then(|i| i.text())
        .map(str::trim)
        .unwrap_or_default();
    if issuer != config.idp.entity_id {
        return Err(LogoutError::Issuer(shown(issuer)));
    }
    // Bindings §3.4.5.2 and §3.5.5.2: a signed message names where it was sent.
    let destination = root.attribute("Destination").unwrap_or_default();
    if destination != config.service_provider.single_logout_url() {
        return Err(LogoutError::Destination(shown(destination)));
    }
    let skew = config.saml.clock_skew;
    let time = |attr: &str| {
        root.attribute(attr)
            .and_then(|v| v.parse::<Timestamp>().ok())
    };
    let issued = time("IssueInstant").ok_or(LogoutError::Time)?;
    let earliest = now.checked_sub(MAX_AGE + skew).unwrap_or(Timestamp::MIN);
    let latest = now.checked_add(skew).unwrap_or(Timestamp::MAX);
    if issued < earliest || issued > latest {
        return Err(LogoutError::Time);
    }
    if field == "SAMLRequest" {
        if time("NotOnOrAfter")
            .is_some_and(|t| t <= now.checked_sub(skew).unwrap_or(Timestamp::MIN))
        {
            return Err(LogoutError::Time);
        }
        let id = root
            .attribute("ID")
            .filter(|id| !id.is_empty())
            .ok_or(LogoutError::NotLogout)?;
        let name_id = child(root, SAML, "NameID")
            .and_then(|n| n.text())
            .filter(|v| !v.is_empty())
            .ok_or(LogoutError::NoNameId)?;
        let session_indexes = root
            .children()
            .filter(|n| {
                n.is_element()
                    && n.tag_name().namespace() == Some(SAMLP)
                    && n.tag_name().name() == "SessionIndex"
            })
            .filter_map(|n| n.text())
            .map(str::to_owned)
            .collect();
        Ok(Received::Request(IdpLogoutRequest {
            id: id.to_owned(),
            name_id: name_id.to_owned(),
            session_indexes,
        }))
    } else {
        let status = child(root, SAMLP, "Status").and_then(|s| child(s, SAMLP, "StatusCode"));
        let top = status.and_then(|c| c.attribute("Value")).unwrap_or("");
        let failed_status = (top != SUCCESS).then(|| {
            let second = status
                .and_then(|c| child(c, SAMLP, "StatusCode"))
                .and_then(|c| c.attribute("Value"));
            short_status(second.unwrap_or(top))
        });
        Ok(Received::Response(IdpLogoutResponse {
            in_response_to: root.attribute("InResponseTo").map(str::to_owned),
            failed_status,
        }))
    }
}

/// The last segment of a status URN, limited to letters (the value is attacker-controlled).
fn short_status(code: &str) -> String {
    let short = code.rsplit(':').next().unwrap_or_default();
    if !short.is_empty() && short.len() <= 40 && short.chars().all(|c| c.is_ascii_alphabetic()) {
        short.to_owned()
    } else {
        "Other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_given_twice_are_refused() {
        assert!(matches!(
            raw_params("SAMLRequest=a&SAMLResponse=b"),
            Err(LogoutError::NoMessage)
        ));
        assert!(matches!(
            raw_params("SAMLRequest=a&RelayState=1&RelayState=2"),
            Err(LogoutError::NoMessage)
        ));
        let p = raw_params("SAMLRequest=a%2Bb&RelayState=x&SigAlg=s&Signature=t&other=1").unwrap();
        assert_eq!(p.message, Some(("SAMLRequest", "a%2Bb")));
        assert_eq!(decode("a%2Bb"), "a+b");
        assert_eq!(
            (p.relay_state, p.sig_alg, p.signature),
            (Some("x"), Some("s"), Some("t"))
        );
    }

    #[test]
    fn status_codes_are_shortened_safely() {
        assert_eq!(
            short_status("urn:oasis:names:tc:SAML:2.0:status:PartialLogout"),
            "PartialLogout"
        );
        assert_eq!(short_status("urn:x:<script>"), "Other");
        assert_eq!(short_status(""), "Other");
    }
}
