//! The first gate of the ACS: what a posted SAMLResponse must look like before any signature
//! is checked. Fails closed on size, base64, DTDs (no entity expansion), a root that is not a
//! samlp:Response, and anything but exactly one Assertion or EncryptedAssertion in the whole
//! document, as a direct child of the Response (signature-wrapping attacks XSW1–8 need a
//! second assertion somewhere).

use base64::Engine;

const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Largest accepted base64 `SAMLResponse` form value.
pub const MAX_ENCODED: usize = 512 * 1024;

/// Why a response was refused before signature verification. The text is for admins (status
/// and logs); it never includes the response itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    /// Larger than [`MAX_ENCODED`].
    #[error("the SAMLResponse is larger than {MAX_ENCODED} bytes")]
    TooLarge,
    /// Not base64 or not UTF-8.
    #[error("the SAMLResponse is not base64-encoded UTF-8 XML")]
    NotBase64,
    /// Not well-formed, or carries a DTD.
    #[error("the SAMLResponse is not well-formed XML without a DTD")]
    Malformed,
    /// The root is not a SAML protocol Response.
    #[error("the SAMLResponse is not a samlp:Response")]
    NotAResponse,
    /// No assertion at all.
    #[error("the SAMLResponse carries no assertion")]
    NoAssertion,
    /// More than one assertion anywhere, or one that is not a direct child of the Response.
    #[error("the SAMLResponse must carry exactly one assertion, directly inside the Response")]
    AssertionPlacement,
    /// A signature that is not a plain enveloped signature of its parent: misplaced, with
    /// several references, a reference to anything but its parent's ID, transforms other than
    /// enveloped-signature and exclusive canonicalisation, or key retrieval.
    #[error(
        "the SAMLResponse carries a signature that is not an enveloped signature of the Response or the Assertion (one reference to the signed element's ID, exclusive canonicalisation)"
    )]
    SignatureShape,
}

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

fn is(n: &roxmltree::Node<'_, '_>, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

/// Only exclusive c14n, optionally with an InclusiveNamespaces prefix list.
fn exc_c14n_only(method: roxmltree::Node<'_, '_>) -> bool {
    method.attribute("Algorithm") == Some(EXC_C14N)
        && elements(method).all(|c| {
            c.tag_name().namespace() == Some(EXC_C14N)
                && c.tag_name().name() == "InclusiveNamespaces"
                && elements(c).next().is_none()
        })
}

/// Whether `sig` is a plain enveloped signature of its parent. xmlsec computes reference
/// digests (running any transform, fetching any URI) before it checks the signature value, so
/// everything else is refused before xmlsec sees the document.
pub(crate) fn plain_enveloped_signature(sig: roxmltree::Node<'_, '_>) -> bool {
    let Some(parent) = sig.parent_element() else {
        return false;
    };
    let Some(id) = parent.attribute("ID").filter(|id| !id.is_empty()) else {
        return false;
    };
    let children: Vec<_> = elements(sig).collect();
    let mut names = children
        .iter()
        .map(|c| (c.tag_name().namespace(), c.tag_name().name()));
    // SignedInfo, SignatureValue, then at most a KeyInfo; no Object (Manifests, XSLT).
    let shape_ok = names.next() == Some((Some(DS), "SignedInfo"))
        && names.next() == Some((Some(DS), "SignatureValue"))
        && names.all(|n| n == (Some(DS), "KeyInfo"));
    if !shape_ok || children.len() > 3 {
        return false;
    }
    // No key retrieval from elsewhere: the pinned certificates are used anyway.
    if let Some(key_info) = children.get(2)
        && key_info
            .descendants()
            .any(|d| d.is_element() && d.tag_name().name() == "RetrievalMethod")
    {
        return false;
    }
    let signed_info = children[0];
    let mut parts = elements(signed_info);
    let (Some(c14n), Some(_method)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is(&c14n, DS, "CanonicalizationMethod") || !exc_c14n_only(c14n) {
        return false;
    }
    let references: Vec<_> = parts.collect();
    let [reference] = references.as_slice() else {
        return false;
    };
    if !is(reference, DS, "Reference") || reference.attribute("URI") != Some(&format!("#{id}")) {
        return false;
    }
    elements(*reference).all(|c| {
        if is(&c, DS, "Transforms") {
            elements(c).all(|t| {
                is(&t, DS, "Transform")
                    && match t.attribute("Algorithm") {
                        Some(ENVELOPED) => elements(t).next().is_none(),
                        Some(EXC_C14N) => exc_c14n_only(t),
                        _ => false,
                    }
            })
        } else {
            is(&c, DS, "DigestMethod") || is(&c, DS, "DigestValue")
        }
    })
}

/// What the gate learnt about a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// The decoded XML.
    pub xml: String,
    /// Whether the assertion is encrypted.
    pub encrypted: bool,
    /// Whether the (plain) assertion carries its own signature.
    pub assertion_signed: bool,
    /// Whether the Response itself carries a signature.
    pub response_signed: bool,
}

/// Decodes and inspects a posted `SAMLResponse`.
pub fn inspect(encoded: &str) -> Result<Shape, ShapeError> {
    if encoded.len() > MAX_ENCODED {
        return Err(ShapeError::TooLarge);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| ShapeError::NotBase64)?;
    let xml = String::from_utf8(bytes).map_err(|_| ShapeError::NotBase64)?;
    inspect_xml(xml)
}

/// Inspects a decoded response (also used again after an assertion was decrypted).
pub fn inspect_xml(xml: String) -> Result<Shape, ShapeError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&xml, options)
        .map_err(|_| ShapeError::Malformed)?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(SAMLP) || root.tag_name().name() != "Response" {
        return Err(ShapeError::NotAResponse);
    }
    let is_assertion = |n: &roxmltree::Node| {
        n.is_element()
            && n.tag_name().namespace() == Some(SAML)
            && matches!(n.tag_name().name(), "Assertion" | "EncryptedAssertion")
    };
    let everywhere: Vec<roxmltree::Node> = doc.descendants().filter(is_assertion).collect();
    let direct: Vec<roxmltree::Node> = root.children().filter(is_assertion).collect();
    match (everywhere.len(), direct.len()) {
        (0, _) => Err(ShapeError::NoAssertion),
        (1, 1) => {
            // Signatures only on the Response and the Assertion, each a plain enveloped one.
            for sig in doc.descendants().filter(|n| is(n, DS, "Signature")) {
                let parent_ok = sig
                    .parent_element()
                    .is_some_and(|p| p == root || (p == direct[0] && is(&p, SAML, "Assertion")));
                if !parent_ok || !plain_enveloped_signature(sig) {
                    return Err(ShapeError::SignatureShape);
                }
            }
            let encrypted = direct[0].tag_name().name() == "EncryptedAssertion";
            let signed = |n: roxmltree::Node<'_, '_>| n.children().any(|c| is(&c, DS, "Signature"));
            let assertion_signed = signed(direct[0]);
            let response_signed = signed(root);
            drop(doc);
            Ok(Shape {
                xml,
                encrypted,
                assertion_signed,
                response_signed,
            })
        }
        _ => Err(ShapeError::AssertionPlacement),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(xml: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(xml)
    }

    const HEAD: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_r">"#;

    #[test]
    fn one_direct_assertion_passes() {
        let shape = inspect(&b64(&format!(
            "{HEAD}<saml:Issuer>i</saml:Issuer><saml:Assertion ID=\"_a\"/></samlp:Response>"
        )))
        .unwrap();
        assert!(!shape.encrypted);
        let shape = inspect(&b64(&format!(
            "{HEAD}<saml:EncryptedAssertion/></samlp:Response>"
        )))
        .unwrap();
        assert!(shape.encrypted);
    }

    #[test]
    fn signature_wrapping_shapes_are_refused() {
        for body in [
            // XSW: a second assertion next to the signed one.
            r#"<saml:Assertion ID="_evil"/><saml:Assertion ID="_a"/>"#,
            // Wrapped inside Extensions.
            r#"<samlp:Extensions><saml:Assertion ID="_a"/></samlp:Extensions><saml:Assertion ID="_evil"/>"#,
            // Wrapped inside the signature's Object.
            r#"<ds:Signature><ds:Object><saml:Assertion ID="_a"/></ds:Object></ds:Signature><saml:Assertion ID="_evil"/>"#,
            // Nested inside the assertion.
            r#"<saml:Assertion ID="_evil"><saml:Advice><saml:Assertion ID="_a"/></saml:Advice></saml:Assertion>"#,
            // Only a wrapped one.
            r#"<samlp:Extensions><saml:Assertion ID="_a"/></samlp:Extensions>"#,
        ] {
            assert_eq!(
                inspect(&b64(&format!("{HEAD}{body}</samlp:Response>"))),
                Err(ShapeError::AssertionPlacement),
                "{body}"
            );
        }
    }

    fn signature(reference_uri: &str, transforms: &str, extra: &str) -> String {
        format!(
            r#"<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="{reference_uri}"><ds:Transforms>{transforms}</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>x</ds:DigestValue></ds:Reference>{extra}</ds:SignedInfo><ds:SignatureValue>x</ds:SignatureValue></ds:Signature>"#
        )
    }

    const PLAIN: &str = r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform>"#;

    fn with_assertion_signature(sig: &str) -> Result<Shape, ShapeError> {
        inspect(&b64(&format!(
            r#"{HEAD}<saml:Issuer>i</saml:Issuer><saml:Assertion ID="_a"><saml:Issuer>i</saml:Issuer>{sig}</saml:Assertion></samlp:Response>"#
        )))
    }

    #[test]
    fn only_plain_enveloped_signatures_reach_xmlsec() {
        let ok = with_assertion_signature(&signature("#_a", PLAIN, "")).unwrap();
        assert!(ok.assertion_signed);
        for (what, sig) in [
            ("reference to another element", signature("#_r", PLAIN, "")),
            ("external reference (SSRF)", signature("http://127.0.0.1:1/x", PLAIN, "")),
            ("empty reference", signature("", PLAIN, "")),
            (
                "XPath transform (CPU)",
                signature(
                    "#_a",
                    r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>count(//*)</ds:XPath></ds:Transform>"#,
                    "",
                ),
            ),
            (
                "XSLT transform",
                signature("#_a", r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>"#, ""),
            ),
            (
                "c14n with comments",
                signature("#_a", r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments"/>"#, ""),
            ),
            (
                "two references",
                signature(
                    "#_a",
                    PLAIN,
                    r##"<ds:Reference URI="#_a"><ds:DigestMethod Algorithm="x"/><ds:DigestValue>x</ds:DigestValue></ds:Reference>"##,
                ),
            ),
            (
                "key retrieval",
                signature("#_a", PLAIN, "").replace(
                    "</ds:SignatureValue>",
                    r#"</ds:SignatureValue><ds:KeyInfo><ds:RetrievalMethod URI="http://127.0.0.1:1/key"/></ds:KeyInfo>"#,
                ),
            ),
            (
                "an Object",
                signature("#_a", PLAIN, "")
                    .replace("</ds:SignatureValue>", "</ds:SignatureValue><ds:Object/>"),
            ),
        ] {
            assert_eq!(
                with_assertion_signature(&sig),
                Err(ShapeError::SignatureShape),
                "{what}"
            );
        }
        // A signature anywhere but on the Response or the Assertion.
        let misplaced = inspect(&b64(&format!(
            r#"{HEAD}<samlp:Extensions ID="_e">{}</samlp:Extensions><saml:Assertion ID="_a"/></samlp:Response>"#,
            signature("#_e", PLAIN, "")
        )));
        assert_eq!(misplaced, Err(ShapeError::SignatureShape));
    }

    #[test]
    fn garbage_dtds_and_other_roots_are_refused() {
        assert_eq!(inspect("not base64!"), Err(ShapeError::NotBase64));
        assert_eq!(
            inspect(&base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])),
            Err(ShapeError::NotBase64)
        );
        assert_eq!(inspect(&b64("<unclosed")), Err(ShapeError::Malformed));
        let bomb = format!(
            r#"<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>{HEAD}<saml:Assertion>&b;</saml:Assertion></samlp:Response>"#
        );
        assert_eq!(inspect(&b64(&bomb)), Err(ShapeError::Malformed));
        assert_eq!(
            inspect(&b64(
                r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"/>"#
            )),
            Err(ShapeError::NotAResponse)
        );
        assert_eq!(
            inspect(&b64(&format!("{HEAD}</samlp:Response>"))),
            Err(ShapeError::NoAssertion)
        );
        assert_eq!(
            inspect(&"A".repeat(MAX_ENCODED + 4)),
            Err(ShapeError::TooLarge)
        );
        assert_eq!(inspect(""), Err(ShapeError::Malformed));
    }
}
