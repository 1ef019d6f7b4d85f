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
            let encrypted = direct[0].tag_name().name() == "EncryptedAssertion";
            let assertion_signed = direct[0].children().any(|n| {
                n.is_element()
                    && n.tag_name().namespace() == Some(DS)
                    && n.tag_name().name() == "Signature"
            });
            drop(doc);
            Ok(Shape {
                xml,
                encrypted,
                assertion_signed,
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
