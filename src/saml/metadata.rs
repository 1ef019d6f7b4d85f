//! Service-provider metadata: entity ID, ACS (HTTP-POST), the Single Logout service (HTTP-Redirect
//! and HTTP-POST, while `session.singleLogout` is on), NameID format, and the signing and
//! encryption certificates — the next ones too while a rotation publishes them ahead of use.

use samael::key_info::{KeyInfo, X509Data};
use samael::metadata::{
    EncryptionMethod, Endpoint, EntityDescriptor, IndexedEndpoint, KeyDescriptor, SpSsoDescriptor,
};
use samael::traits::ToXml;

use crate::api::identity_provider::AssertionEncryption;
use crate::config::{CompiledIdentityProvider, KeyPair};

const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const HTTP_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// Key-transport and content-encryption algorithms the SP decrypts, strongest first.
const ENCRYPTION_METHODS: [&str; 4] = [
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

/// Errors rendering metadata.
#[derive(Debug, thiserror::Error)]
#[error("could not render the SP metadata: {0}")]
pub struct MetadataError(String);

/// The base64 DER body of a PEM certificate, as metadata carries it.
fn certificate_body(pair: &KeyPair) -> String {
    pair.certificate_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

fn key_descriptor(key_use: &str, pair: &KeyPair, methods: bool) -> KeyDescriptor {
    KeyDescriptor {
        key_use: Some(key_use.to_owned()),
        key_info: KeyInfo {
            id: None,
            x509_data: Some(X509Data {
                certificates: vec![certificate_body(pair)],
            }),
        },
        encryption_methods: methods.then(|| {
            ENCRYPTION_METHODS
                .iter()
                .map(|a| EncryptionMethod {
                    algorithm: (*a).to_owned(),
                })
                .collect()
        }),
    }
}

/// Renders the SP metadata of one IdentityProvider.
pub fn render(config: &CompiledIdentityProvider) -> Result<String, MetadataError> {
    let sp = &config.service_provider;
    let published: Vec<&KeyPair> = std::iter::once(&sp.current)
        .chain(sp.next.as_ref())
        .collect();
    let mut keys: Vec<KeyDescriptor> = published
        .iter()
        .map(|k| key_descriptor("signing", k, false))
        .collect();
    if config.saml.assertion_encryption != AssertionEncryption::Disabled {
        keys.extend(
            published
                .iter()
                .map(|k| key_descriptor("encryption", k, true)),
        );
    }
    // Redirect first: IdPs that take the first listed binding use the one we prefer.
    let single_logout_services = config.session.single_logout.then(|| {
        [HTTP_REDIRECT, HTTP_POST]
            .into_iter()
            .map(|binding| Endpoint {
                binding: binding.to_owned(),
                location: sp.single_logout_url(),
                response_location: None,
            })
            .collect()
    });
    let descriptor = SpSsoDescriptor {
        protocol_support_enumeration: Some(PROTOCOL.to_owned()),
        key_descriptors: Some(keys),
        single_logout_services,
        name_id_formats: Some(vec![config.saml.name_id_format.urn().to_owned()]),
        authn_requests_signed: Some(config.saml.sign_authn_requests),
        want_assertions_signed: Some(config.saml.want_assertions_signed),
        assertion_consumer_services: vec![IndexedEndpoint {
            binding: HTTP_POST.to_owned(),
            location: sp.acs_url.clone(),
            response_location: None,
            index: 0,
            is_default: Some(true),
        }],
        ..Default::default()
    };
    let entity = EntityDescriptor {
        entity_id: Some(sp.entity_id.clone()),
        sp_sso_descriptors: Some(vec![descriptor]),
        ..Default::default()
    };
    entity.to_string().map_err(|e| MetadataError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::identity_provider::Provider;
    use crate::config::{
        CompiledAttributeMapping, CompiledIdp, CompiledSaml, CompiledServiceProvider,
        CompiledSession, CompiledUsers,
    };
    use crate::controller::sp_keys::generate;

    fn config(next: bool, encryption: AssertionEncryption) -> CompiledIdentityProvider {
        let now = jiff::Timestamp::now();
        let key = || {
            generate("sp", now, jiff::SignedDuration::from_hours(1))
                .unwrap()
                .pair
        };
        CompiledIdentityProvider {
            namespace: "ns".into(),
            name: "okta".into(),
            uid: "uid-1".into(),
            generation: 1,
            provider: Provider::Okta,
            service_provider: CompiledServiceProvider {
                entity_id: "https://sso.example.com/saml/ns/okta/metadata".into(),
                metadata_url: "https://sso.example.com/saml/ns/okta/metadata".into(),
                acs_url: "https://sso.example.com/saml/ns/okta/acs".into(),
                login_url: "https://sso.example.com/saml/ns/okta/login".into(),
                current: key(),
                next: next.then(key),
                previous: None,
            },
            idp: CompiledIdp {
                entity_id: "idp".into(),
                sso_url: "https://idp/sso".into(),
                certificates: vec![],
                metadata_url: None,
                metadata_fetched_at: None,
                single_logout: None,
            },
            allow_idp_initiated: false,
            default_relay_state: None,
            allowed_redirects: vec![],
            saml: CompiledSaml {
                assertion_encryption: encryption,
                ..CompiledSaml::default()
            },
            attribute_mapping: CompiledAttributeMapping::default(),
            users: CompiledUsers::default(),
            session: CompiledSession::default(),
            scim_base_url: "https://sso.example.com/scim/v2/ns/okta".into(),
            scim_tokens: vec![],
            oidc: None,
        }
    }

    fn key_uses(xml: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(xml).expect("metadata is well-formed XML");
        doc.descendants()
            .filter(|n| n.tag_name().name() == "KeyDescriptor")
            .map(|n| n.attribute("use").unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn metadata_names_the_entity_acs_and_certificates() {
        let c = config(false, AssertionEncryption::Optional);
        let xml = render(&c).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "EntityDescriptor");
        assert_eq!(
            root.attribute("entityID"),
            Some("https://sso.example.com/saml/ns/okta/metadata")
        );
        let acs = doc
            .descendants()
            .find(|n| n.tag_name().name() == "AssertionConsumerService")
            .unwrap();
        assert_eq!(
            acs.attribute("Location"),
            Some("https://sso.example.com/saml/ns/okta/acs")
        );
        assert_eq!(acs.attribute("Binding"), Some(HTTP_POST));
        assert_eq!(key_uses(&xml), ["signing", "encryption"]);
        assert!(xml.contains(&certificate_body(&c.service_provider.current)));
        assert!(!xml.contains("PRIVATE KEY"));
    }

    #[test]
    fn the_single_logout_service_is_published_with_both_bindings_unless_switched_off() {
        let mut c = config(false, AssertionEncryption::Optional);
        let services = |xml: &str| -> Vec<(String, String)> {
            let doc = roxmltree::Document::parse(xml).unwrap();
            doc.descendants()
                .filter(|n| n.tag_name().name() == "SingleLogoutService")
                .map(|n| {
                    (
                        n.attribute("Binding").unwrap().to_owned(),
                        n.attribute("Location").unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let slo = "https://sso.example.com/saml/ns/okta/slo".to_owned();
        assert_eq!(
            services(&render(&c).unwrap()),
            [
                (HTTP_REDIRECT.to_owned(), slo.clone()),
                (HTTP_POST.to_owned(), slo)
            ]
        );
        c.session.single_logout = false;
        assert!(services(&render(&c).unwrap()).is_empty());
    }

    #[test]
    fn the_next_certificate_is_published_and_encryption_can_be_switched_off() {
        let c = config(true, AssertionEncryption::Optional);
        let xml = render(&c).unwrap();
        assert_eq!(
            key_uses(&xml),
            ["signing", "signing", "encryption", "encryption"]
        );
        assert!(xml.contains(&certificate_body(c.service_provider.next.as_ref().unwrap())));
        assert_eq!(
            key_uses(&render(&config(true, AssertionEncryption::Disabled)).unwrap()),
            ["signing", "signing"]
        );
    }
}
