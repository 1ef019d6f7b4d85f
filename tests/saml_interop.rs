//! Signatures from an independent SAML implementation (Python signxml, tests/idp/) verify with
//! the samael configuration the service provider uses — pinned IdP certificate, RSA-SHA256 only,
//! InResponseTo checked — and tampering or a foreign certificate is refused.

mod support;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use openssl::pkey::{PKey, Private};
use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::EntityDescriptor;
use samael::service_provider::ServiceProvider;
use serde_json::{Value, json};
use support::{random_id, rfc3339};

const SP_ENTITY: &str = "https://sso.example.test/saml/ns/okta/metadata";
const ACS: &str = "https://sso.example.test/saml/ns/okta/acs";
const IDP_ENTITY: &str = "http://www.okta.com/exk1";

fn idp_key() -> (PKey<Private>, String) {
    support::self_signed("test-idp", 0, 30 * 86_400)
}

fn service_provider(idp_cert_pem: &str) -> ServiceProvider {
    let body: String = idp_cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let metadata = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    );
    ServiceProvider {
        entity_id: Some(SP_ENTITY.into()),
        acs_url: Some(ACS.into()),
        idp_metadata: metadata.parse::<EntityDescriptor>().unwrap(),
        allow_idp_initiated: false,
        allowed_signature_algorithms: Some(vec![AllowedSignatureAlgorithm::RsaSha256]),
        ..Default::default()
    }
}

fn spec(key: &PKey<Private>, cert: &str, sign: &str, request_id: &str) -> Value {
    let now = Timestamp::now();
    json!({
        "keyPem": String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        "certPem": cert,
        "issuer": IDP_ENTITY,
        "destination": ACS,
        "audience": SP_ENTITY,
        "recipient": ACS,
        "inResponseTo": request_id,
        "nameId": "ada@example.com",
        "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "attributes": { "email": ["ada@example.com"], "firstName": ["Ada"], "groups": ["eng", "admins"] },
        "sign": sign,
        "notBefore": rfc3339(now - SignedDuration::from_secs(30)),
        "notOnOrAfter": rfc3339(now + SignedDuration::from_mins(5)),
        "assertionId": random_id("_a"),
        "responseId": random_id("_r"),
    })
}

#[test]
fn okta_entra_and_signed_response_shapes_verify_with_the_pinned_certificate() {
    let (key, cert) = idp_key();
    let sp = service_provider(&cert);
    // Okta and Entra sign the assertion; some IdPs sign only the response, some both.
    for sign in ["assertion", "response", "both"] {
        let encoded = support::signed_response(&spec(&key, &cert, sign, "_req1"));
        // The ACS's structural gate lets real IdP output through.
        sso_operator::saml::response_shape::inspect(&encoded)
            .unwrap_or_else(|e| panic!("{sign}: {e}"));
        let assertion = sp
            .parse_base64_response(&encoded, Some(&["_req1"]))
            .unwrap_or_else(|e| panic!("a {sign}-signed response from signxml must verify: {e}"));
        let subject = assertion.subject.and_then(|s| s.name_id).map(|n| n.value);
        assert_eq!(subject.as_deref(), Some("ada@example.com"), "{sign}");
    }
}

#[test]
fn tampering_unsigned_foreign_certificates_and_wrong_request_ids_are_refused() {
    let (key, cert) = idp_key();
    let sp = service_provider(&cert);

    // The NameID changed after signing.
    let encoded = support::signed_response(&spec(&key, &cert, "assertion", "_req1"));
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .unwrap(),
    )
    .unwrap();
    let tampered = xml.replace(
        "ada@example.com</saml:NameID>",
        "mallory@example.com</saml:NameID>",
    );
    assert_ne!(tampered, xml);
    let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
    assert!(
        sp.parse_base64_response(&tampered, Some(&["_req1"]))
            .is_err(),
        "a tampered assertion must be refused"
    );

    // Not signed at all.
    let unsigned = support::signed_response(&spec(&key, &cert, "none", "_req1"));
    assert!(
        sp.parse_base64_response(&unsigned, Some(&["_req1"]))
            .is_err(),
        "an unsigned response must be refused"
    );

    // Signed by another key, with its own certificate in KeyInfo: never trusted.
    let (other_key, other_cert) = idp_key();
    let foreign = support::signed_response(&spec(&other_key, &other_cert, "assertion", "_req1"));
    assert!(
        sp.parse_base64_response(&foreign, Some(&["_req1"]))
            .is_err(),
        "a certificate carried in the message must not be trusted"
    );

    // An answer to a request this browser did not make.
    let other_request = support::signed_response(&spec(&key, &cert, "assertion", "_someone_else"));
    assert!(
        sp.parse_base64_response(&other_request, Some(&["_req1"]))
            .is_err(),
        "InResponseTo must match a request of ours"
    );
}
