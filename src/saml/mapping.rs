//! From a verified sign-in to the user it describes: the attribute mapping of the
//! IdentityProvider, and the allowed email domains.

use std::collections::BTreeMap;

use crate::api::SignInRefusal;
use crate::api::identity_provider::NameIdFormat;
use crate::config::CompiledIdentityProvider;

use super::acs::SignIn;

/// The user a sign-in describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedUser {
    /// The identity that links the sign-in to a user (`userName`).
    pub identity: String,
    /// Email address, if any.
    pub email: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Group names from the groups attribute.
    pub groups: Vec<String>,
}

/// Why a sign-in maps to no allowed user.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The identity is empty.
    #[error("the assertion names no user: the NameID (or the identity attribute) is empty")]
    NoIdentity,
    /// `attributeMapping.identity` names an attribute the assertion does not carry.
    #[error(
        "the assertion has no {0:?} attribute, which attributeMapping.identity names: add it to the IdP's attribute statements (claims)"
    )]
    NoIdentityAttribute(String),
    /// Allowed email domains are configured and the sign-in has no email.
    #[error(
        "the assertion carries no email address: add an attribute statement for the email attribute, or set the Name ID format to EmailAddress"
    )]
    NoEmail,
    /// The email's domain is not allowed.
    #[error("the email domain {0:?} is not in users.allowedEmailDomains")]
    DomainNotAllowed(String),
}

impl MappingError {
    /// Which refusal this is, for status and metrics.
    pub fn refusal(&self) -> SignInRefusal {
        match self {
            MappingError::NoIdentity | MappingError::NoIdentityAttribute(_) => {
                SignInRefusal::NoIdentity
            }
            MappingError::NoEmail => SignInRefusal::NoEmail,
            MappingError::DomainNotAllowed(_) => SignInRefusal::EmailDomainNotAllowed,
        }
    }

    /// The refusal's stable reason, as in status and metrics.
    pub fn reason(&self) -> &'static str {
        self.refusal().reason()
    }
}

fn shown(s: &str) -> String {
    crate::text::shown(s, 128)
}

fn first(attributes: &BTreeMap<String, Vec<String>>, name: &str) -> Option<String> {
    attributes
        .get(name)?
        .iter()
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Maps `sign_in` with the IdentityProvider's attribute mapping and checks the allowed email
/// domains.
pub fn map(
    config: &CompiledIdentityProvider,
    sign_in: &SignIn,
) -> Result<MappedUser, MappingError> {
    let m = &config.attribute_mapping;
    let attrs = &sign_in.attributes;
    // A configured identity attribute must be there: falling back to the NameID would mix two
    // kinds of identifier.
    let identity = match m.identity.as_deref() {
        Some(a) => first(attrs, a).ok_or_else(|| MappingError::NoIdentityAttribute(shown(a)))?,
        None => sign_in.name_id.trim().to_owned(),
    };
    if identity.is_empty() {
        return Err(MappingError::NoIdentity);
    }
    let name_id_is_email = sign_in
        .name_id_format
        .as_deref()
        .is_some_and(|f| f == NameIdFormat::EmailAddress.urn())
        || (config.saml.name_id_format == NameIdFormat::EmailAddress
            && sign_in.name_id_format.is_none());
    let email = first(attrs, &m.email).or_else(|| {
        (name_id_is_email && sign_in.name_id.contains('@'))
            .then(|| sign_in.name_id.trim().to_owned())
    });
    let allowed = &config.users.allowed_email_domains;
    if !allowed.is_empty() {
        let email = email.as_deref().ok_or(MappingError::NoEmail)?;
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&domain)) {
            return Err(MappingError::DomainNotAllowed(crate::text::shown(
                &domain, 253,
            )));
        }
    }
    let given_name = first(attrs, &m.first_name);
    let family_name = first(attrs, &m.last_name);
    let display_name = m
        .real_name
        .as_deref()
        .and_then(|a| first(attrs, a))
        .or_else(|| {
            let joined = [given_name.as_deref(), family_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        });
    let mut groups: Vec<String> = attrs
        .get(&m.groups)
        .into_iter()
        .flatten()
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty() && g.len() <= 256)
        .collect();
    groups.sort();
    groups.dedup();
    groups.truncate(1000);
    Ok(MappedUser {
        identity,
        email,
        given_name,
        family_name,
        display_name,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> CompiledIdentityProvider {
        let mut v = json!({
            "namespace": "ns", "name": "okta", "generation": 1, "provider": "okta",
            "serviceProvider": { "entityId": "e", "metadataUrl": "m", "acsUrl": "a", "loginUrl": "l",
                "current": { "certificatePem": "", "privateKeyPem": "" }, "next": null, "previous": null },
            "idp": { "entityId": "i", "ssoUrl": "s", "certificates": ["c"], "metadataUrl": null, "metadataFetchedAt": null },
            "allowIdpInitiated": false, "defaultRelayState": null, "allowedRedirects": [],
            "saml": {}, "attributeMapping": {}, "users": {}, "session": {}, "scimBaseUrl": "s", "scimTokens": []
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn sign_in(name_id: &str, format: Option<&str>, attrs: &[(&str, &[&str])]) -> SignIn {
        SignIn {
            name_id: name_id.into(),
            name_id_format: format.map(str::to_owned),
            name_id_qualifiers: (None, None),
            session_index: None,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
            assertion_id: "_a".into(),
            not_on_or_after: jiff::Timestamp::now(),
        }
    }

    #[test]
    fn okta_defaults_map_name_id_email_and_names() {
        let email_format = NameIdFormat::EmailAddress.urn();
        let m = map(
            &config(json!({})),
            &sign_in(
                "ada@example.com",
                Some(email_format),
                &[
                    ("firstName", &["Ada"]),
                    ("lastName", &["Lovelace"]),
                    ("groups", &["eng", "admins", "eng", ""]),
                ],
            ),
        )
        .unwrap();
        assert_eq!(m.identity, "ada@example.com");
        assert_eq!(m.email.as_deref(), Some("ada@example.com"));
        assert_eq!(m.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(m.groups, vec!["admins", "eng"]);
    }

    #[test]
    fn entra_claim_uris_and_an_identity_attribute() {
        let cfg = config(json!({ "attributeMapping": {
            "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            "firstName": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
            "lastName": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
            "identity": "http://schemas.microsoft.com/identity/claims/objectidentifier",
            "groups": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
            "realName": "http://schemas.microsoft.com/identity/claims/displayname" } }));
        let m = map(
            &cfg,
            &sign_in(
                "opaque-persistent-id",
                Some(NameIdFormat::Persistent.urn()),
                &[
                    (
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                        &["grace@example.com"],
                    ),
                    (
                        "http://schemas.microsoft.com/identity/claims/objectidentifier",
                        &["0f1e2d"],
                    ),
                    (
                        "http://schemas.microsoft.com/identity/claims/displayname",
                        &["Grace Hopper"],
                    ),
                    (
                        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
                        &["g-1"],
                    ),
                ],
            ),
        )
        .unwrap();
        assert_eq!(m.identity, "0f1e2d");
        assert_eq!(m.email.as_deref(), Some("grace@example.com"));
        assert_eq!(m.display_name.as_deref(), Some("Grace Hopper"));
        assert_eq!(m.groups, vec!["g-1"]);
        // The configured identity attribute missing: refused, never the NameID instead.
        let without = map(
            &cfg,
            &sign_in(
                "someone@example.com",
                Some(NameIdFormat::EmailAddress.urn()),
                &[],
            ),
        )
        .unwrap_err();
        assert!(
            matches!(without, MappingError::NoIdentityAttribute(_)),
            "{without:?}"
        );
    }

    #[test]
    fn allowed_domains_are_enforced() {
        let cfg = config(json!({ "users": { "allowedEmailDomains": ["example.com"] } }));
        let fmt = Some(NameIdFormat::EmailAddress.urn());
        assert!(map(&cfg, &sign_in("a@EXAMPLE.com", fmt, &[])).is_ok());
        assert_eq!(
            map(&cfg, &sign_in("a@evil.com", fmt, &[]))
                .unwrap_err()
                .reason(),
            "EmailDomainNotAllowed"
        );
        // A look-alike subdomain is not the domain.
        assert!(map(&cfg, &sign_in("a@example.com.evil.com", fmt, &[])).is_err());
        // A persistent NameID is not an email.
        assert_eq!(
            map(
                &cfg,
                &sign_in("a@example.com", Some(NameIdFormat::Persistent.urn()), &[])
            )
            .unwrap_err(),
            MappingError::NoEmail
        );
        assert_eq!(
            map(&cfg, &sign_in("  ", fmt, &[])).unwrap_err(),
            MappingError::NoIdentity
        );
    }
}
