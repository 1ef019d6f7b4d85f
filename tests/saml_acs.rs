//! The ACS validation against responses signed at test time by an independent implementation
//! (signxml): the valid Okta shape signs in; each rule of docs/security.md has a response that
//! breaks it and is refused with its reason.

mod support;

use jiff::{SignedDuration, Timestamp};
use openssl::pkey::{PKey, Private};
use serde_json::{Value, json};
use sso_operator::config::CompiledIdentityProvider;
use sso_operator::saml::acs::{self, AcsError};
use support::{random_id, rfc3339};

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
        "ResponseNotSigned",
    );
    // Unsigned with wantAssertionsSigned off: refused all the same.
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    assert_eq!(
        refused(acs::verify(
            &lenient,
            &response(&key, &cert, json!({ "sign": "none" })),
            Some("_req1"),
            now
        )),
        "ResponseNotSigned"
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
        "WrongCertificate"
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
    // Times at the end of the calendar: refused, never a panic.
    let far = response(
        &key,
        &cert,
        json!({ "notOnOrAfter": "9999-12-30T21:59:59Z", "notBefore": "9999-12-30T21:00:00Z" }),
    );
    assert_eq!(
        refused(acs::verify(&cfg, &far, Some("_req1"), now)),
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
    // AES-CBC only where saml.allowCbcEncryption allows it.
    assert_eq!(
        refused(acs::verify(&cfg, &entra, Some("_req1"), now)),
        "CbcEncryptionRefused"
    );
    let mut cbc = cfg.clone();
    cbc.saml.allow_cbc_encryption = true;
    let signin = acs::verify(&cbc, &entra, Some("_req1"), now).unwrap();
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
        "EncryptedAssertionNotSigned"
    );
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    assert_eq!(
        refused(acs::verify(&lenient, &outer_only, Some("_req1"), now)),
        "EncryptedAssertionNotSigned",
        "after decryption nothing covers the assertion: never accepted"
    );
    // An unsigned assertion encrypted with the public SP certificate: anyone could make one.
    let forged = encrypted("none", "aes256-gcm", "rsa-oaep", "inside", &sp_cert);
    assert_eq!(
        refused(acs::verify(&lenient, &forged, Some("_req1"), now)),
        "EncryptedAssertionNotSigned"
    );

    // Rotation: the previous key still decrypts.
    let mut rotated = cbc.clone();
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

/// A key pair as the compiled configuration holds it.
fn compiled_key_pair(cn: &str) -> (sso_operator::config::KeyPair, String) {
    let (key, cert) = keypair(cn);
    let pair = serde_json::from_value(json!({
        "certificatePem": cert,
        "privateKeyPem": String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
    }))
    .unwrap();
    (pair, cert)
}

#[test]
fn aes_cbc_and_several_encrypted_keys_are_refused_with_the_idp_setting_to_change() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let sp_cert = cfg.service_provider.current.certificate_pem.clone();
    let now = Timestamp::now();
    let encrypted = |encrypt: Value| response(&key, &cert, json!({ "encrypt": encrypt }));

    // AES-CBC: refused by default with its own reason and the Okta field to change.
    for data in ["aes128-cbc", "aes256-cbc"] {
        let cbc = encrypted(json!({ "certPem": sp_cert, "data": data, "key": "rsa-oaep" }));
        let (reason, text) = message(acs::verify(&cfg, &cbc, Some("_req1"), now));
        assert_eq!(reason, "CbcEncryptionRefused", "{data}: {text}");
        assert!(text.contains("Encryption Algorithm: AES256-GCM"), "{text}");
        assert!(text.contains("saml.allowCbcEncryption: true"), "{text}");
        let mut allowed = cfg.clone();
        allowed.saml.allow_cbc_encryption = true;
        assert!(
            acs::verify(&allowed, &cbc, Some("_req1"), now).is_ok(),
            "{data}"
        );
    }
    // Entra cannot choose: the message says to turn Token encryption off instead.
    let mut entra = cfg.clone();
    entra.provider = sso_operator::api::identity_provider::Provider::Entra;
    let cbc =
        encrypted(json!({ "certPem": sp_cert, "data": "aes256-cbc", "keyPlacement": "sibling" }));
    let (reason, text) = message(acs::verify(&entra, &cbc, Some("_req1"), now));
    assert_eq!(reason, "CbcEncryptionRefused", "{text}");
    assert!(text.contains("Token encryption"), "{text}");

    // Exactly one EncryptedKey, inside the EncryptedData or next to it: a second one (for
    // another key, or the same one again) is refused before any key is tried.
    let (_, other_cert) = keypair("other-sp");
    for (placement, extra) in [
        ("inside", &other_cert),
        ("sibling", &other_cert),
        ("inside", &sp_cert),
    ] {
        let several = encrypted(
            json!({ "certPem": sp_cert, "data": "aes256-gcm", "key": "rsa-oaep",
            "keyPlacement": placement, "extraKeyCertPems": [extra] }),
        );
        let (reason, text) = message(acs::verify(&cfg, &several, Some("_req1"), now));
        assert_eq!(reason, "SeveralEncryptedKeys", "{placement}: {text}");
        assert!(text.contains("exactly one is accepted"), "{text}");
        assert!(
            text.contains("encryption certificate from the service-provider metadata"),
            "{text}"
        );
    }

    // Current, next and previous keys each open what was encrypted for them; nothing else
    // opens, and every failure gives the same answer.
    let mut rotating = cfg.clone();
    let (next, next_cert) = compiled_key_pair("sp-next");
    let (previous, previous_cert) = compiled_key_pair("sp-previous");
    rotating.service_provider.next = Some(next);
    rotating.service_provider.previous = Some(previous);
    for to in [&sp_cert, &next_cert, &previous_cert] {
        let gcm =
            encrypted(json!({ "certPem": to, "data": "aes128-gcm", "key": "rsa-oaep-mgf1p" }));
        assert!(acs::verify(&rotating, &gcm, Some("_req1"), now).is_ok());
    }
    let foreign = encrypted(json!({ "certPem": other_cert, "data": "aes256-gcm" }));
    let (reason, foreign_text) = message(acs::verify(&rotating, &foreign, Some("_req1"), now));
    assert_eq!(reason, "DecryptionFailed");
    // The right key, with the ciphertext altered: the same reason and words.
    let mine = decode(&encrypted(
        json!({ "certPem": sp_cert, "data": "aes256-gcm" }),
    ));
    let doc = roxmltree::Document::parse(&mine).unwrap();
    let content = doc
        .descendants()
        .rfind(|n| n.tag_name().name() == "CipherValue")
        .and_then(|n| n.text())
        .unwrap()
        .to_owned();
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &content).unwrap();
    bytes[20] ^= 1;
    let altered = mine.replace(
        &content,
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
    );
    let (reason, text) = message(acs::verify(
        &rotating,
        &encode(&altered),
        Some("_req1"),
        now,
    ));
    assert_eq!(reason, "DecryptionFailed");
    assert_eq!(text, foreign_text);
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
        "ResponseTampered"
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
        "SignatureAlgorithmRefused",
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

fn message(result: Result<acs::SignIn, AcsError>) -> (&'static str, String) {
    match result {
        Ok(s) => panic!("accepted a response that must be refused: {s:?}"),
        Err(e) => (e.reason(), e.to_string()),
    }
}

/// The first bytes of a certificate's SHA-256 fingerprint, as the messages show them.
fn short_fingerprint(pem: &str) -> String {
    let der = openssl::x509::X509::from_pem(pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    let digest = openssl::sha::sha256(&der);
    digest[..6]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn a_response_signed_with_another_certificate_names_both_certificates_and_the_field_to_fix() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let (other_key, other_cert) = keypair("rotated-idp-key");
    let foreign = response(&other_key, &other_cert, json!({}));
    let (reason, text) = message(acs::verify(&cfg, &foreign, Some("_req1"), Timestamp::now()));
    assert_eq!(reason, "WrongCertificate", "{text}");
    assert!(text.contains("spec.idp.certificates"), "{text}");
    assert!(text.contains(&short_fingerprint(&cert)), "{text}");
    assert!(text.contains(&short_fingerprint(&other_cert)), "{text}");
    // The refused response's certificate is named by fingerprint, never by its subject: the
    // subject is text anyone can choose.
    assert!(!text.contains("rotated-idp-key"), "{text}");
    assert!(text.contains("Okta's active Signing Certificate"), "{text}");
    // Both signatures present, the Response's by the right key and the assertion's not.
    let both = response(&other_key, &other_cert, json!({ "sign": "both" }));
    assert_eq!(
        refused(acs::verify(&cfg, &both, Some("_req1"), Timestamp::now())),
        "WrongCertificate"
    );
    // Certificates from a metadata URL: the message points at the URL and its refresh.
    let mut from_metadata = cfg.clone();
    from_metadata.idp.metadata_url = Some("https://idp.example.com/metadata".into());
    let (reason, text) = message(acs::verify(
        &from_metadata,
        &foreign,
        Some("_req1"),
        Timestamp::now(),
    ));
    assert_eq!(reason, "WrongCertificate");
    assert!(text.contains("spec.idp.metadataUrl"), "{text}");
    assert!(text.contains("metadataRefreshInterval"), "{text}");
    // The right key still signs in.
    assert!(
        acs::verify(
            &cfg,
            &response(&key, &cert, json!({})),
            Some("_req1"),
            Timestamp::now()
        )
        .is_ok()
    );
}

#[test]
fn an_encrypted_assertion_signed_only_at_the_response_asks_for_the_assertion_signing_switch() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let sp_cert = cfg.service_provider.current.certificate_pem.clone();
    let outer_only = response(
        &key,
        &cert,
        json!({ "sign": "response", "encrypt": { "certPem": sp_cert, "data": "aes256-gcm", "key": "rsa-oaep" } }),
    );
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    for c in [&cfg, &lenient] {
        let (reason, text) = message(acs::verify(c, &outer_only, Some("_req1"), Timestamp::now()));
        assert_eq!(reason, "EncryptedAssertionNotSigned", "{text}");
        assert!(text.contains("Assertion Signature: Signed"), "{text}");
        assert!(text.contains("encrypted assertion"), "{text}");
    }
    // Entra's console words for the same switch.
    let mut entra = cfg.clone();
    entra.provider = sso_operator::api::identity_provider::Provider::Entra;
    let (_, text) = message(acs::verify(
        &entra,
        &outer_only,
        Some("_req1"),
        Timestamp::now(),
    ));
    assert!(text.contains("Signing Option"), "{text}");
}

#[test]
fn an_unsigned_response_asks_the_idp_to_sign_whatever_want_assertions_signed_says() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let unsigned = response(&key, &cert, json!({ "sign": "none" }));
    let mut lenient = cfg.clone();
    lenient.saml.want_assertions_signed = false;
    for c in [&cfg, &lenient] {
        let (reason, text) = message(acs::verify(c, &unsigned, Some("_req1"), Timestamp::now()));
        assert_eq!(reason, "ResponseNotSigned", "{text}");
        assert!(
            text.contains("must sign the assertion or the response"),
            "{text}"
        );
    }
    // Only the Response signed while the assertion's own signature is required: the message
    // says exactly that.
    let (reason, text) = message(acs::verify(
        &cfg,
        &response(&key, &cert, json!({ "sign": "response" })),
        Some("_req1"),
        Timestamp::now(),
    ));
    assert_eq!(reason, "AssertionNotSigned");
    assert!(text.contains("only the Response is"), "{text}");
}

#[test]
fn tampering_and_refused_algorithms_have_their_own_reasons_and_never_the_libraries_words() {
    let (key, cert) = keypair("idp");
    let cfg = config(&cert, false);
    let now = Timestamp::now();
    // Changed after signing, the Response signed too: the configured key made both signatures.
    for sign in ["assertion", "both"] {
        let xml = decode(&response(&key, &cert, json!({ "sign": sign })));
        let tampered = xml.replacen("ada@example.com", "eve@example.com", 1);
        let (reason, text) = message(acs::verify(&cfg, &encode(&tampered), Some("_req1"), now));
        assert_eq!(reason, "ResponseTampered", "{sign}: {text}");
        assert!(text.contains("changed after the IdP signed it"), "{text}");
    }
    // RSA-SHA256 where saml.signatureAlgorithm asks for RSA-SHA512.
    let mut strict = cfg.clone();
    strict.saml.signature_algorithm =
        sso_operator::api::identity_provider::SignatureAlgorithm::RsaSha512;
    let (reason, text) = message(acs::verify(
        &strict,
        &response(&key, &cert, json!({})),
        Some("_req1"),
        now,
    ));
    assert_eq!(reason, "SignatureAlgorithmRefused", "{text}");
    assert!(
        text.contains("signed with rsa-sha256 and digest sha256"),
        "{text}"
    );
    assert!(text.contains("(rsa-sha512)"), "{text}");
    assert!(text.contains("Okta's Signature Algorithm"), "{text}");
    // No refusal passes samael's own text through.
    assert!(!text.contains("all assertions must be signed"), "{text}");
}

/// The SP's encryption certificate, read from its published metadata.
fn encryption_certificate(metadata: &str) -> String {
    let doc = roxmltree::Document::parse(metadata).unwrap();
    let descriptor = doc
        .descendants()
        .find(|n| {
            n.tag_name().name() == "KeyDescriptor" && n.attribute("use") == Some("encryption")
        })
        .expect("an encryption KeyDescriptor");
    let body: String = descriptor
        .descendants()
        .find(|n| n.tag_name().name() == "X509Certificate")
        .and_then(|n| n.text())
        .unwrap()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// Applies IdentityProvider `okta` (IdP-initiated sign-in allowed) trusting `cert`.
async fn apply_okta(api: &kube::Api<sso_operator::api::IdentityProvider>, cert: &str) {
    use kube::api::{Patch, PatchParams};
    let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": "okta" },
        "spec": { "provider": "okta", "allowIdpInitiated": true,
            "idp": { "ssoUrl": "https://idp.example.test/sso", "entityId": IDP_ENTITY, "certificates": [{ "pem": cert }] } } });
    api.patch(
        "okta",
        &PatchParams::apply("tests").force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap();
}

/// The SP metadata at `metadata_url` once the server serves it (within a minute).
async fn served_metadata(
    http: &reqwest::Client,
    metadata_url: &str,
    server: &support::operator::Operator,
) -> String {
    support::wait_for(std::time::Duration::from_secs(60), || async move {
        let r = http.get(metadata_url).send().await.ok()?;
        if r.status() != reqwest::StatusCode::OK {
            return None;
        }
        r.text().await.ok()
    })
    .await
    .unwrap_or_else(|| panic!("never served\nserver log:\n{}", server.log_text()))
}

/// An IdP-initiated response (no InResponseTo) for `acs` and audience `entity`, signed with
/// `key`, with `extra` overriding the test IdP's fields.
fn idp_initiated_response(
    acs: &str,
    entity: &str,
    key: &PKey<Private>,
    cert: &str,
    extra: Value,
) -> String {
    let mut overrides =
        json!({ "destination": acs, "recipient": acs, "audience": entity, "inResponseTo": null });
    for (k, v) in extra.as_object().unwrap() {
        overrides[k] = v.clone();
    }
    response(key, cert, overrides)
}

/// `status.signIn` of IdentityProvider `okta` once its last failure is `reason` (within a
/// minute).
async fn sign_in_failure(
    api: &kube::Api<sso_operator::api::IdentityProvider>,
    reason: &str,
    server: &support::operator::Operator,
) -> Value {
    support::wait_for(std::time::Duration::from_secs(60), || async move {
        let idp = api.get("okta").await.ok()?;
        let s = serde_json::to_value(idp.status?).ok()?;
        (s["signIn"]["lastFailureReason"] == reason).then(|| s["signIn"].clone())
    })
    .await
    .unwrap_or_else(|| panic!("{reason} never reached status\n{}", server.log_text()))
}

#[tokio::test]
async fn each_signature_failure_reaches_the_status_metrics_and_log_with_its_own_reason() {
    use kube::api::Api;
    use support::operator::{EXTERNAL_URL, Stack};

    let Stack {
        client,
        ns,
        controller: _controller,
        server,
        url,
    } = Stack::start("saml-sig", &support::sqlite_url("saml-sig"), &[], &[]).await;
    let (key, cert) = support::self_signed("idp", -3600, 365 * 86_400);
    let api: Api<sso_operator::api::IdentityProvider> = Api::namespaced(client.clone(), &ns.name);
    apply_okta(&api, &cert).await;
    let http = reqwest::Client::new();
    let metadata_url = format!("{url}/saml/{}/okta/metadata", ns.name);
    let metadata = served_metadata(&http, &metadata_url, &server).await;
    let sp_cert = encryption_certificate(&metadata);

    let acs = format!("{EXTERNAL_URL}/saml/{}/okta/acs", ns.name);
    let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", ns.name);
    let tile_click = |key: &PKey<Private>, cert: &str, extra: Value| {
        idp_initiated_response(&acs, &entity, key, cert, extra)
    };
    let (other_key, other_cert) = support::self_signed("another-idp-key", -3600, 365 * 86_400);
    let cases = [
        (
            "WrongCertificate",
            tile_click(&other_key, &other_cert, json!({})),
            vec![
                "spec.idp.certificates",
                "the response names the certificate SHA-256",
            ],
        ),
        (
            "EncryptedAssertionNotSigned",
            tile_click(
                &key,
                &cert,
                json!({ "sign": "response", "encrypt": { "certPem": sp_cert, "data": "aes256-gcm", "key": "rsa-oaep" } }),
            ),
            vec!["Assertion Signature: Signed"],
        ),
        (
            "ResponseNotSigned",
            tile_click(&key, &cert, json!({ "sign": "none" })),
            vec!["must sign the assertion or the response"],
        ),
    ];
    let acs_post = format!("{url}/saml/{}/okta/acs", ns.name);
    for (reason, encoded, words) in &cases {
        let r = http
            .post(&acs_post)
            .form(&[("SAMLResponse", encoded.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN, "{reason}");
        assert!(r.text().await.unwrap().contains("Authentication Failed"));
        // The admin reads the reason and what to change in status.signIn.
        let sign_in = sign_in_failure(&api, reason, &server).await;
        let text = sign_in["lastFailureMessage"].as_str().unwrap_or_default();
        for w in words {
            assert!(text.contains(w), "{reason}: {text}");
        }
        assert!(!text.contains("all assertions must be signed"), "{text}");
    }
    let metrics = server.metrics().await;
    let log = server.log_text();
    for (reason, encoded, _) in &cases {
        let line = format!(
            "sso_operator_server_sign_ins_total{{outcome=\"failure\",reason=\"{reason}\"}}"
        );
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
        assert!(log.contains(reason), "{reason} missing from the log");
        assert!(!log.contains(&encoded[..64]), "the response is in the log");
    }
}

/// IdentityProvider `okta` (IdP-initiated, just-in-time users) served by the real controller
/// and server on SQLite, with the SP encryption certificate its metadata publishes.
struct Cbc {
    client: kube::Client,
    ns: support::TestNamespace,
    _controller: support::operator::Operator,
    server: support::operator::Operator,
    url: String,
    http: reqwest::Client,
    key: PKey<Private>,
    cert: String,
    sp_cert: String,
}

impl Cbc {
    /// Starts the stack and applies `okta` with AES-CBC not allowed (the default).
    async fn start() -> Self {
        use support::operator::Stack;
        let Stack {
            client,
            ns,
            controller,
            server,
            url,
        } = Stack::start("saml-cbc", &support::sqlite_url("saml-cbc"), &[], &[]).await;
        let (key, cert) = support::self_signed("idp", -3600, 365 * 86_400);
        let http = support::http_without_redirects();
        let mut me = Self {
            client,
            ns,
            _controller: controller,
            server,
            url,
            http,
            key,
            cert,
            sp_cert: String::new(),
        };
        me.apply(false).await;
        let metadata_url = format!("{}/saml/{}/okta/metadata", me.url, me.ns.name);
        let metadata = served_metadata(&me.http, &metadata_url, &me.server).await;
        me.sp_cert = encryption_certificate(&metadata);
        me
    }

    fn api(&self) -> kube::Api<sso_operator::api::IdentityProvider> {
        kube::Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// Applies `okta` with `saml.allowCbcEncryption` set to `allow_cbc`. Right after the CRD
    /// is installed the API server may still apply with the schema it had before: retry until
    /// it knows the field.
    async fn apply(&self, allow_cbc: bool) {
        use kube::api::{Patch, PatchParams};
        use std::time::Duration;
        let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": "okta" },
            "spec": { "provider": "okta", "allowIdpInitiated": true, "saml": { "allowCbcEncryption": allow_cbc },
                "users": { "provisioning": "justInTime" },
                "idp": { "ssoUrl": "https://idp.example.test/sso", "entityId": IDP_ENTITY, "certificates": [{ "pem": self.cert }] } } });
        support::wait_for(Duration::from_secs(60), || {
            let (api, obj) = (self.api(), obj.clone());
            async move {
                api.patch(
                    "okta",
                    &PatchParams::apply("tests").force(),
                    &Patch::Apply(&obj),
                )
                .await
                .ok()
            }
        })
        .await
        .expect("apply the IdentityProvider");
    }

    /// An IdP-initiated response encrypted as `encrypt` says.
    fn tile_click(&self, encrypt: Value) -> String {
        use support::operator::EXTERNAL_URL;
        let acs = format!("{EXTERNAL_URL}/saml/{}/okta/acs", self.ns.name);
        let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", self.ns.name);
        response(
            &self.key,
            &self.cert,
            json!({ "destination": acs, "recipient": acs, "audience": entity, "inResponseTo": null, "encrypt": encrypt }),
        )
    }

    /// A response encrypted with AES-256-CBC for the SP.
    fn cbc(&self) -> String {
        self.tile_click(json!({ "certPem": self.sp_cert, "data": "aes256-cbc", "key": "rsa-oaep" }))
    }

    /// Posts `encoded` to the ACS; the status of the answer.
    async fn post(&self, encoded: String) -> reqwest::StatusCode {
        self.http
            .post(format!("{}/saml/{}/okta/acs", self.url, self.ns.name))
            .form(&[("SAMLResponse", encoded.as_str())])
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Waits for condition CbcEncryptionAllowed with `status` on `okta`.
    async fn cbc_condition(
        &self,
        status: &str,
    ) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        support::wait_for(std::time::Duration::from_secs(60), || async {
            let idp = self.api().get("okta").await.ok()?;
            idp.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "CbcEncryptionAllowed" && c.status == status)
        })
        .await
    }

    /// Waits until `status.signIn.lastFailureReason` of `okta` is `reason`; `status.signIn`.
    async fn last_failure(&self, reason: &str) -> Value {
        support::wait_for(std::time::Duration::from_secs(60), || async {
            let idp = self.api().get("okta").await.ok()?;
            let s = serde_json::to_value(idp.status?).ok()?;
            (s["signIn"]["lastFailureReason"] == reason).then(|| s["signIn"].clone())
        })
        .await
        .unwrap_or_else(|| panic!("{reason} never reached status\n{}", self.server.log_text()))
    }

    /// Asserts that the server counted a failed sign-in for `reason`.
    async fn assert_failure_counted(&self, reason: &str) {
        let metrics = self.server.metrics().await;
        let line = format!(
            "sso_operator_server_sign_ins_total{{outcome=\"failure\",reason=\"{reason}\"}}"
        );
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn aes_cbc_is_refused_by_default_with_the_okta_field_to_change_and_no_warning() {
    let cbc = Cbc::start().await;
    // By default: no warning, and AES-CBC is refused with the Okta field to change.
    let off = cbc
        .cbc_condition("False")
        .await
        .expect("CbcEncryptionAllowed False by default");
    assert_eq!(off.reason, "GcmOnly");
    assert_eq!(cbc.post(cbc.cbc()).await, reqwest::StatusCode::FORBIDDEN);
    let sign_in = cbc.last_failure("CbcEncryptionRefused").await;
    let text = sign_in["lastFailureMessage"].as_str().unwrap_or_default();
    assert!(text.contains("Encryption Algorithm: AES256-GCM"), "{text}");
    assert!(text.contains("saml.allowCbcEncryption"), "{text}");
    cbc.assert_failure_counted("CbcEncryptionRefused").await;
}

#[tokio::test]
async fn several_encrypted_keys_are_refused_and_aes_gcm_signs_in() {
    let cbc = Cbc::start().await;
    // Several EncryptedKeys: refused with their own reason, whatever the algorithm.
    let (_, other_cert) = support::self_signed("another-sp", -3600, 365 * 86_400);
    let several = cbc.tile_click(
        json!({ "certPem": cbc.sp_cert, "data": "aes256-gcm", "key": "rsa-oaep", "extraKeyCertPems": [other_cert] }),
    );
    assert_eq!(cbc.post(several).await, reqwest::StatusCode::FORBIDDEN);
    cbc.last_failure("SeveralEncryptedKeys").await;
    cbc.assert_failure_counted("SeveralEncryptedKeys").await;
    // AES-GCM signs in.
    let gcm =
        cbc.tile_click(json!({ "certPem": cbc.sp_cert, "data": "aes256-gcm", "key": "rsa-oaep" }));
    let answer = cbc.post(gcm).await;
    // Signed in: without a RelayState or defaultRelayState the server answers with a page.
    assert_eq!(
        answer,
        reqwest::StatusCode::OK,
        "AES-GCM\n{}",
        cbc.server.log_text()
    );
}

#[tokio::test]
async fn opting_in_to_aes_cbc_lets_it_sign_in_and_the_controller_warns_while_it_is_on() {
    let cbc = Cbc::start().await;
    cbc.cbc_condition("False")
        .await
        .expect("CbcEncryptionAllowed False by default");
    // Opting in: the warning condition turns True and AES-CBC signs in.
    cbc.apply(true).await;
    let on = cbc
        .cbc_condition("True")
        .await
        .expect("CbcEncryptionAllowed True while saml.allowCbcEncryption is on");
    assert_eq!(on.reason, "CbcEncryptionAllowed");
    assert!(on.message.contains("AES-GCM"), "{}", on.message);
    // The server picks up the new configuration shortly after the controller publishes it.
    support::wait_for(std::time::Duration::from_secs(60), || async {
        (cbc.post(cbc.cbc()).await == reqwest::StatusCode::OK).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "AES-CBC never signed in after the opt-in\n{}",
            cbc.server.log_text()
        )
    });
}

/// Whether `text` holds a control or format character (bidi overrides, zero-width).
fn has_hidden_characters(text: &str) -> bool {
    text.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    })
}

#[tokio::test]
async fn anonymous_responses_never_write_their_values_into_status_and_signed_values_are_cleaned() {
    use kube::api::Api;
    use support::operator::{EXTERNAL_URL, Stack};

    let Stack {
        client,
        ns,
        controller: _controller,
        server,
        url,
    } = Stack::start("saml-anon", &support::sqlite_url("saml-anon"), &[], &[]).await;
    let (key, cert) = support::self_signed("idp", -3600, 365 * 86_400);
    let api: Api<sso_operator::api::IdentityProvider> = Api::namespaced(client.clone(), &ns.name);
    apply_okta(&api, &cert).await;
    let http = reqwest::Client::new();
    let metadata_url = format!("{url}/saml/{}/okta/metadata", ns.name);
    served_metadata(&http, &metadata_url, &server).await;

    let acs = format!("{EXTERNAL_URL}/saml/{}/okta/acs", ns.name);
    let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", ns.name);
    let tile_click = |key: &PKey<Private>, cert: &str, extra: Value| {
        idp_initiated_response(&acs, &entity, key, cert, extra)
    };
    // Anyone can post these: signed by a key of their own, carrying text of their choice.
    let (anyone_key, anyone_cert) = support::self_signed("anyone", -3600, 365 * 86_400);
    let chosen = "PHONE-555-0100\u{202E}gnimoc\u{200B}";
    let identity = "ada\u{202E}moc.elpmaxe\u{200B}@example.com";
    let (chosen_key, chosen_cert) = support::self_signed("PHONE-555-0100", -3600, 365 * 86_400);
    let cases = [
        (
            "WrongIssuer",
            tile_click(&anyone_key, &anyone_cert, json!({ "issuer": chosen })),
        ),
        (
            "WrongRecipient",
            tile_click(
                &anyone_key,
                &anyone_cert,
                json!({ "destination": format!("https://{chosen}.example/acs") }),
            ),
        ),
        (
            "WrongCertificate",
            tile_click(&chosen_key, &chosen_cert, json!({})),
        ),
        // Signed by the IdP: its values may be quoted, cleaned of hidden characters.
        (
            "UserNotProvisioned",
            tile_click(
                &key,
                &cert,
                json!({ "nameId": identity, "attributes": { "email": [identity] } }),
            ),
        ),
    ];
    let acs_post = format!("{url}/saml/{}/okta/acs", ns.name);
    for (reason, encoded) in &cases {
        let r = http
            .post(&acs_post)
            .form(&[("SAMLResponse", encoded.as_str())])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{reason}: {}", r.status());
        let sign_in = sign_in_failure(&api, reason, &server).await;
        let text = sign_in["lastFailureMessage"].as_str().unwrap_or_default();
        assert!(!text.contains("555"), "{reason}: {text}");
        assert!(!text.contains("gnimoc"), "{reason}: {text}");
        assert!(!has_hidden_characters(text), "{reason}: {text:?}");
        assert!(!text.contains("\\u{"), "{reason}: {text}");
        if *reason == "UserNotProvisioned" {
            assert!(text.contains("\"adamoc.elpmaxe@example.com\""), "{text}");
        }
    }
}
