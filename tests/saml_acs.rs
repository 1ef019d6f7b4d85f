//! The ACS validation against responses signed at test time by an independent implementation
//! (signxml): the valid Okta shape signs in; each rule of PROTOCOLS.md has a response that
//! breaks it and is refused with its reason.

mod support;

use jiff::{SignedDuration, Timestamp};
use openssl::pkey::{PKey, Private};
use serde_json::{Value, json};
use sso_operator::config::CompiledIdentityProvider;
use sso_operator::saml::acs::{self, AcsError};

const SP_ENTITY: &str = "https://sso.example.test/saml/ns/okta/metadata";
const ACS: &str = "https://sso.example.test/saml/ns/okta/acs";
const IDP_ENTITY: &str = "http://www.okta.com/exk1";

fn keypair(cn: &str) -> (PKey<Private>, String) {
    support::self_signed(cn, 0, 30 * 86_400)
}

fn config(idp_cert: &str, allow_idp_initiated: bool) -> CompiledIdentityProvider {
    let (sp_key, sp_cert) = keypair("sp");
    serde_json::from_value(json!({
        "namespace": "ns", "name": "okta", "generation": 1, "provider": "okta",
        "serviceProvider": { "entityId": SP_ENTITY, "metadataUrl": SP_ENTITY, "acsUrl": ACS, "loginUrl": "https://sso.example.test/saml/ns/okta/login",
            "current": { "certificatePem": sp_cert, "privateKeyPem": String::from_utf8(sp_key.private_key_to_pem_pkcs8().unwrap()).unwrap() },
            "next": null, "previous": null },
        "idp": { "entityId": IDP_ENTITY, "ssoUrl": "https://idp.example.com/sso", "certificates": [idp_cert], "metadataUrl": null, "metadataFetchedAt": null },
        "allowIdpInitiated": allow_idp_initiated, "defaultRelayState": null, "allowedRedirects": [],
        "saml": {}, "attributeMapping": {}, "users": {}, "session": {}, "scimBaseUrl": "s", "scimTokens": []
    }))
    .unwrap()
}

fn random_id(prefix: &str) -> String {
    let mut v = [0u8; 16];
    openssl::rand::rand_bytes(&mut v).unwrap();
    format!("{prefix}{}", hex::encode(v))
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An Okta-shaped response (assertion signed) answering `_req1`, with `overrides` applied.
fn response(key: &PKey<Private>, cert: &str, overrides: Value) -> String {
    let now = Timestamp::now();
    let mut spec = json!({
        "keyPem": String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        "certPem": cert,
        "issuer": IDP_ENTITY, "destination": ACS, "audience": SP_ENTITY, "recipient": ACS,
        "inResponseTo": "_req1",
        "nameId": "ada@example.com", "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "attributes": { "email": ["ada@example.com"], "groups": ["eng", "admins"] },
        "sign": "assertion",
        "notBefore": rfc3339(now - SignedDuration::from_secs(30)),
        "notOnOrAfter": rfc3339(now + SignedDuration::from_mins(5)),
        "assertionId": random_id("_a"), "responseId": random_id("_r"),
    });
    for (k, v) in overrides.as_object().unwrap() {
        spec[k] = v.clone();
    }
    support::signed_response(&spec)
}

fn refused(result: Result<acs::SignIn, AcsError>) -> &'static str {
    match result {
        Ok(s) => panic!("accepted a response that must be refused: {s:?}"),
        Err(e) => e.reason(),
    }
}

#[test]
fn a_valid_okta_response_signs_in_with_its_attributes() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let signin = acs::verify(
        &cfg,
        &response(&key, &cert, json!({})),
        Some("_req1"),
        Timestamp::now(),
    )
    .unwrap();
    assert_eq!(signin.name_id, "ada@example.com");
    assert_eq!(signin.attributes["groups"], ["eng", "admins"]);
    assert!(signin.assertion_id.starts_with("_a"));
    assert!(signin.not_on_or_after > Timestamp::now());
    // Entra: assertion signed, response unsigned (the same shape); both signed.
    let both = response(&key, &cert, json!({ "sign": "both" }));
    assert!(acs::verify(&cfg, &both, Some("_req1"), Timestamp::now()).is_ok());
    // Only the Response signed: refused while wantAssertionsSigned is on (the default),
    // accepted when it is off (the Response's signature covers the assertion).
    let signed_response = response(&key, &cert, json!({ "sign": "response" }));
    assert_eq!(
        refused(acs::verify(
            &cfg,
            &signed_response,
            Some("_req1"),
            Timestamp::now()
        )),
        "AssertionNotSigned"
    );
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    assert!(acs::verify(&lenient, &signed_response, Some("_req1"), Timestamp::now()).is_ok());
}

#[test]
fn every_rule_refuses_the_response_that_breaks_it() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let now = Timestamp::now();
    let check = |overrides: Value, expected: Option<&str>, reason: &str| {
        let r = response(&key, &cert, overrides.clone());
        assert_eq!(
            refused(acs::verify(&cfg, &r, expected, now)),
            reason,
            "{overrides}"
        );
    };
    check(
        json!({ "issuer": "http://evil.example.com" }),
        Some("_req1"),
        "WrongIssuer",
    );
    check(
        json!({ "audience": "https://other-sp.example.com" }),
        Some("_req1"),
        "WrongAudience",
    );
    check(
        json!({ "recipient": "https://evil.example.com/acs" }),
        Some("_req1"),
        "WrongRecipient",
    );
    check(
        json!({ "destination": "https://evil.example.com/acs" }),
        Some("_req1"),
        "WrongRecipient",
    );
    check(
        json!({ "notBefore": rfc3339(now - SignedDuration::from_hours(2)), "notOnOrAfter": rfc3339(now - SignedDuration::from_hours(1)) }),
        Some("_req1"),
        "OutsideValidity",
    );
    check(
        json!({ "notBefore": rfc3339(now + SignedDuration::from_hours(1)), "notOnOrAfter": rfc3339(now + SignedDuration::from_hours(2)) }),
        Some("_req1"),
        "OutsideValidity",
    );
    check(
        json!({ "inResponseTo": "_someone_else" }),
        Some("_req1"),
        "InResponseToMismatch",
    );
    check(
        json!({ "statusCode": "Requester" }),
        Some("_req1"),
        "IdpStatus",
    );
    check(
        json!({ "sign": "none" }),
        Some("_req1"),
        "AssertionNotSigned",
    );
    // Unsigned with wantAssertionsSigned off: the signature check itself refuses it.
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    assert_eq!(
        refused(acs::verify(
            &lenient,
            &response(&key, &cert, json!({ "sign": "none" })),
            Some("_req1"),
            now
        )),
        "VerificationFailed"
    );
    // A failed status usually comes without an assertion: the status is still reported.
    let bare = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_r" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"/></samlp:StatusCode></samlp:Status></samlp:Response>"#,
    );
    let err = acs::verify(&cfg, &bare, Some("_req1"), now).unwrap_err();
    assert_eq!(err.reason(), "IdpStatus");
    assert_eq!(
        err.to_string(),
        "the IdP answered with status InvalidNameIDPolicy"
    );
    // IdP-initiated (no InResponseTo) while allowIdpInitiated is off.
    check(
        json!({ "inResponseTo": null }),
        None,
        "IdpInitiatedNotAllowed",
    );
    // Signed by another key that ships its own certificate: never trusted.
    let (other_key, other_cert) = keypair("evil");
    let foreign = response(&other_key, &other_cert, json!({}));
    assert_eq!(
        refused(acs::verify(&cfg, &foreign, Some("_req1"), now)),
        "VerificationFailed"
    );
    // No certificate configured: fail closed, never skip verification.
    let mut no_cert = cfg.clone();
    no_cert.idp.certificates.clear();
    assert_eq!(
        refused(acs::verify(
            &no_cert,
            &response(&key, &cert, json!({})),
            Some("_req1"),
            now
        )),
        "NoCertificate"
    );
    // Times at the end of the calendar, unsigned: refused, never a panic.
    let far = response(
        &key,
        &cert,
        json!({ "sign": "none", "notOnOrAfter": "9999-12-30T21:59:59Z", "notBefore": "9999-12-30T21:00:00Z" }),
    );
    assert_eq!(
        refused(acs::verify(&lenient, &far, Some("_req1"), now)),
        "OutsideValidity"
    );
    // An attacker-chosen status code is not echoed.
    let odd = response(&key, &cert, json!({ "statusCode": "Requester\" foo=\"x" }));
    let err = acs::verify(&cfg, &odd, Some("_req1"), now).unwrap_err();
    assert_eq!(err.to_string(), "the IdP answered with status Other");
    // Garbage.
    assert_eq!(
        refused(acs::verify(&cfg, "%%%", Some("_req1"), now)),
        "MalformedResponse"
    );
}

#[test]
fn idp_initiated_sign_in_works_only_where_allowed_and_never_answers_a_request() {
    let (key, cert) = keypair("idp");
    let allowed = config(&cert, true);
    let tile_click = response(&key, &cert, json!({ "inResponseTo": null }));
    let signin = acs::verify(&allowed, &tile_click, None, Timestamp::now()).unwrap();
    assert_eq!(signin.name_id, "ada@example.com");
    // A response that claims to answer a request cannot be used as IdP-initiated.
    let solicited = response(&key, &cert, json!({}));
    assert_eq!(
        refused(acs::verify(&allowed, &solicited, None, Timestamp::now())),
        "InResponseToMismatch"
    );
}

#[test]
fn a_comment_inside_the_name_id_cannot_truncate_the_identity() {
    // CVE-2017-11427 class: exclusive c14n ignores comments, so the signature still verifies
    // after `<!---->` is inserted; the identity must then be the whole text, never the part
    // before the comment.
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let signed = response(
        &key,
        &cert,
        json!({ "nameId": "alice@example.com.evil.com" }),
    );
    let xml = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, signed).unwrap(),
    )
    .unwrap();
    let injected = xml.replacen(
        "alice@example.com.evil.com",
        "alice@example.com<!---->.evil.com",
        1,
    );
    assert_ne!(injected, xml);
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, injected);
    match acs::verify(&cfg, &encoded, Some("_req1"), Timestamp::now()) {
        Ok(signin) => assert_eq!(
            signin.name_id, "alice@example.com.evil.com",
            "the NameID was truncated at the comment"
        ),
        Err(e) => eprintln!("refused: {e}"),
    }
}

#[test]
fn encrypted_assertions_are_decrypted_then_their_own_signature_is_verified() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let sp_cert = cfg.service_provider.current.certificate_pem.clone();
    let encrypted = |sign: &str, data: &str, transport: &str, placement: &str, to: &str| {
        response(
            &key,
            &cert,
            json!({ "sign": sign, "encrypt": { "certPem": to, "data": data, "key": transport, "keyPlacement": placement } }),
        )
    };
    let now = Timestamp::now();
    // Entra: AES-256-CBC, RSA-OAEP (MGF1-SHA1), EncryptedKey next to the EncryptedData.
    let entra = encrypted(
        "assertion",
        "aes256-cbc",
        "rsa-oaep-mgf1p",
        "sibling",
        &sp_cert,
    );
    let signin = acs::verify(&cfg, &entra, Some("_req1"), now).unwrap();
    assert_eq!(signin.name_id, "ada@example.com");
    // Okta: AES-256-GCM, RSA-OAEP with SHA-256, EncryptedKey inside; the Response is signed
    // too (over the ciphertext).
    let okta = encrypted("both", "aes256-gcm", "rsa-oaep", "inside", &sp_cert);
    assert!(acs::verify(&cfg, &okta, Some("_req1"), now).is_ok());
    let gcm128 = encrypted(
        "assertion",
        "aes128-gcm",
        "rsa-oaep-mgf1p",
        "inside",
        &sp_cert,
    );
    assert!(acs::verify(&cfg, &gcm128, Some("_req1"), now).is_ok());

    // RSA PKCS#1 v1.5 key transport is refused (Bleichenbacher).
    let v15 = encrypted("assertion", "aes256-gcm", "rsa-1_5", "inside", &sp_cert);
    assert_eq!(
        refused(acs::verify(&cfg, &v15, Some("_req1"), now)),
        "EncryptionAlgorithmRefused"
    );
    // Encrypted for someone else.
    let (_, other_cert) = keypair("other-sp");
    let foreign = encrypted("assertion", "aes256-gcm", "rsa-oaep", "inside", &other_cert);
    assert_eq!(
        refused(acs::verify(&cfg, &foreign, Some("_req1"), now)),
        "DecryptionFailed"
    );
    // Only the Response signed (over the ciphertext): the assertion itself is unsigned.
    let outer_only = encrypted("response", "aes256-gcm", "rsa-oaep", "inside", &sp_cert);
    assert_eq!(
        refused(acs::verify(&cfg, &outer_only, Some("_req1"), now)),
        "AssertionNotSigned"
    );
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    assert_eq!(
        refused(acs::verify(&lenient, &outer_only, Some("_req1"), now)),
        "VerificationFailed",
        "after decryption nothing covers the assertion: never accepted"
    );
    // An unsigned assertion encrypted with the public SP certificate: anyone could make one.
    let forged = encrypted("none", "aes256-gcm", "rsa-oaep", "inside", &sp_cert);
    assert_eq!(
        refused(acs::verify(&lenient, &forged, Some("_req1"), now)),
        "VerificationFailed"
    );

    // Rotation: the previous key still decrypts.
    let mut rotated = cfg.clone();
    let (new_key, new_cert) = keypair("sp-next");
    rotated.service_provider.previous = Some(rotated.service_provider.current.clone());
    rotated.service_provider.current = serde_json::from_value(json!({
        "certificatePem": new_cert,
        "privateKeyPem": String::from_utf8(new_key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    }))
    .unwrap();
    assert!(acs::verify(&rotated, &entra, Some("_req1"), now).is_ok());

    // assertionEncryption: required refuses plain assertions; disabled refuses encrypted ones.
    let mut required = cfg.clone();
    required.saml.assertion_encryption =
        sso_operator::api::identity_provider::AssertionEncryption::Required;
    assert_eq!(
        refused(acs::verify(
            &required,
            &response(&key, &cert, json!({})),
            Some("_req1"),
            now
        )),
        "EncryptionRequired"
    );
    assert!(acs::verify(&required, &okta, Some("_req1"), now).is_ok());
    let mut disabled = cfg.clone();
    disabled.saml.assertion_encryption =
        sso_operator::api::identity_provider::AssertionEncryption::Disabled;
    assert_eq!(
        refused(acs::verify(&disabled, &okta, Some("_req1"), now)),
        "EncryptionDisabled"
    );
}

fn decode(encoded: &str) -> String {
    String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap(),
    )
    .unwrap()
}

fn encode(xml: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, xml)
}

#[test]
fn wrapping_tampering_weak_algorithms_and_other_confirmations_are_refused() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let now = Timestamp::now();
    let xml = decode(&response(&key, &cert, json!({})));
    let start = xml.find("<saml:Assertion").unwrap();
    let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let signed_assertion = &xml[start..end];
    let evil = signed_assertion
        .replace("ada@example.com", "admin@example.com")
        .replacen("ID=\"_a", "ID=\"_evil", 1);

    // Tampering with the signed assertion breaks its signature.
    let tampered = xml.replacen("ada@example.com", "admin@example.com", 1);
    assert_eq!(
        refused(acs::verify(&cfg, &encode(&tampered), Some("_req1"), now)),
        "VerificationFailed"
    );
    // XSW: the evil assertion next to the signed one, before it, or with the signed one
    // hidden in Extensions or in the evil assertion's Advice.
    let wrapped = [
        format!("{}{evil}{}", &xml[..end], &xml[end..]),
        format!("{}{evil}{}", &xml[..start], &xml[start..]),
        format!(
            "{}<samlp:Extensions>{signed_assertion}</samlp:Extensions>{evil}{}",
            &xml[..start],
            &xml[end..]
        ),
        format!(
            "{}{}",
            &xml[..start],
            evil.replacen(
                "<saml:Subject>",
                &format!("<saml:Advice>{signed_assertion}</saml:Advice><saml:Subject>"),
                1
            ) + &xml[end..]
        ),
    ];
    for (i, w) in wrapped.iter().enumerate() {
        assert_eq!(
            refused(acs::verify(&cfg, &encode(w), Some("_req1"), now)),
            "MalformedResponse",
            "wrapping #{i}"
        );
    }
    // The evil assertion alone, unsigned, in place of the signed one.
    let replaced = format!("{}{evil}{}", &xml[..start], &xml[end..]);
    assert_ne!(
        acs::verify(&cfg, &encode(&replaced), Some("_req1"), now)
            .err()
            .map(|e| e.reason()),
        None
    );

    // A confirmation method other than bearer.
    assert_eq!(
        refused(acs::verify(
            &cfg,
            &response(
                &key,
                &cert,
                json!({ "confirmationMethod": "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key" })
            ),
            Some("_req1"),
            now
        )),
        "NoBearerConfirmation"
    );
    // Stronger algorithms than the configured one are fine; a weaker digest is not.
    assert!(
        acs::verify(
            &cfg,
            &response(
                &key,
                &cert,
                json!({ "signatureAlgorithm": "rsa-sha512", "digestAlgorithm": "sha512" })
            ),
            Some("_req1"),
            now
        )
        .is_ok()
    );
    let mut strict = cfg.clone();
    strict.saml.signature_algorithm =
        sso_operator::api::identity_provider::SignatureAlgorithm::RsaSha512;
    assert_eq!(
        refused(acs::verify(
            &strict,
            &response(&key, &cert, json!({})),
            Some("_req1"),
            now
        )),
        "VerificationFailed",
        "RSA-SHA256 is below the configured RSA-SHA512"
    );
    // Several IdP certificates during a rollover: any one of them verifies.
    let (_, other_cert) = keypair("idp-next");
    let mut rollover = cfg.clone();
    rollover.idp.certificates = vec![other_cert, cert.clone()];
    assert!(
        acs::verify(
            &rollover,
            &response(&key, &cert, json!({})),
            Some("_req1"),
            now
        )
        .is_ok()
    );
}

#[test]
fn signatures_with_costly_transforms_or_outside_references_never_reach_xmlsec() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let xml = decode(&response(&key, &cert, json!({})));
    let xpath = r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>count(//*[count(//*) &gt; 0])</ds:XPath></ds:Transform>"#;
    let with_xpath = xml.replacen("<ds:Transforms>", &format!("<ds:Transforms>{xpath}"), 1);
    assert_ne!(with_xpath, xml);
    let external = {
        let start = xml.find("<ds:Reference URI=\"").unwrap() + "<ds:Reference URI=\"".len();
        let end = start + xml[start..].find('"').unwrap();
        format!("{}http://127.0.0.1:9/ssrf{}", &xml[..start], &xml[end..])
    };
    // Refused by the structural gate (MalformedResponse), before xmlsec could run the transform
    // or fetch the URI.
    for (what, doc) in [
        ("XPath transform", with_xpath),
        ("external reference", external),
    ] {
        assert_eq!(
            refused(acs::verify(
                &cfg,
                &encode(&doc),
                Some("_req1"),
                Timestamp::now()
            )),
            "MalformedResponse",
            "{what}"
        );
    }
}
