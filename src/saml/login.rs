//! SP-initiated sign-in: the AuthnRequest (HTTP-Redirect binding, signed when configured) and
//! the redirect allow-list that guards where a sign-in may return to.

use chrono::Utc;
use samael::schema::{
    AuthnContextClassRef, AuthnContextComparison, AuthnRequest, Issuer, NameIdPolicy,
    RequestedAuthnContext,
};

use crate::api::identity_provider::AuthnContextComparison as Comparison;
use crate::config::CompiledIdentityProvider;

const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// Why a sign-in cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The AuthnRequest could not be built or signed.
    #[error("could not build the AuthnRequest: {0}")]
    Build(String),
}

/// A new AuthnRequest ID: `_` and 160 random bits in hex (a valid xs:ID; Entra rejects IDs
/// that start with a digit).
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    format!("_{}", hex::encode(bytes))
}

/// The URL of the IdP's SSO endpoint carrying the AuthnRequest `id`, and `relay_state`.
pub fn redirect_url(
    config: &CompiledIdentityProvider,
    id: &str,
    relay_state: &str,
) -> Result<String, LoginError> {
    let sp = &config.service_provider;
    let saml = &config.saml;
    let requested_authn_context =
        (!saml.requested_authn_context.is_empty()).then(|| RequestedAuthnContext {
            authn_context_class_refs: Some(
                saml.requested_authn_context
                    .iter()
                    .map(|c| AuthnContextClassRef {
                        value: Some(c.clone()),
                    })
                    .collect(),
            ),
            authn_context_decl_refs: None,
            comparison: Some(match saml.requested_authn_context_comparison {
                Comparison::Exact => AuthnContextComparison::Exact,
                Comparison::Minimum => AuthnContextComparison::Minimum,
                Comparison::Maximum => AuthnContextComparison::Maximum,
                Comparison::Better => AuthnContextComparison::Better,
            }),
        });
    let request = AuthnRequest {
        id: id.to_owned(),
        version: "2.0".to_owned(),
        issue_instant: Utc::now(),
        destination: Some(config.idp.sso_url.clone()),
        issuer: Some(Issuer {
            value: Some(sp.entity_id.clone()),
            ..Default::default()
        }),
        name_id_policy: Some(NameIdPolicy {
            format: Some(saml.name_id_format.urn().to_owned()),
            sp_name_qualifier: None,
            allow_create: Some(true),
        }),
        requested_authn_context,
        force_authn: saml.force_authn.then_some(true),
        assertion_consumer_service_url: Some(sp.acs_url.clone()),
        protocol_binding: Some(HTTP_POST.to_owned()),
        ..Default::default()
    };
    let url = if saml.sign_authn_requests {
        let key = openssl::pkey::PKey::private_key_from_pem(sp.current.private_key_pem.as_bytes())
            .map_err(|e| LoginError::Build(e.to_string()))?;
        request
            .signed_redirect(relay_state, &key)
            .map_err(|e| LoginError::Build(e.to_string()))?
    } else {
        request
            .redirect(relay_state)
            .map_err(|e| LoginError::Build(e.to_string()))?
    };
    url.map(|u| u.to_string())
        .ok_or_else(|| LoginError::Build("the IdP has no SSO URL".into()))
}

/// Why a redirect target is refused: what an administrator adds, and where, to allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectRefusal {
    /// Not a path on this installation nor an absolute http(s) URL without user info (or it
    /// holds control characters or whitespace, or is longer than 2048 characters).
    Malformed,
    /// Not under the installation's allow-list (the server's `--allowed-redirect`).
    Installation {
        /// The target's `scheme://host[:port]`.
        origin: String,
    },
    /// Allowed by the installation, but not by the IdentityProvider's own `allowedRedirects`.
    IdentityProvider {
        /// The target's `scheme://host[:port]`.
        origin: String,
        /// `namespace/name` of the IdentityProvider.
        tenant: String,
    },
}

impl RedirectRefusal {
    /// What the refusal page tells the user: the address (its origin only) and which value to
    /// add where.
    pub fn explanation(&self) -> String {
        match self {
            Self::Malformed => {
                "The address to return to is not a valid http(s) URL or a path on this site.".into()
            }
            Self::Installation { origin } => format!(
                "Returning to {origin} is not allowed by this sso-operator installation. An administrator allows it by adding its URL to the Helm value server.allowedRedirects (the server's --allowed-redirect flag)."
            ),
            Self::IdentityProvider { origin, tenant } => format!(
                "Returning to {origin} is not allowed for the IdentityProvider {tenant}. Its administrator allows it by adding the URL to spec.allowedRedirects of that IdentityProvider."
            ),
        }
    }
}

/// Whether a sign-in or sign-out may return to `target`: a path on this installation, or an
/// absolute http(s) URL under one of the installation's `allowed` prefixes and, when the
/// redirect belongs to an IdentityProvider, under one of its `allowedRedirects` too (a
/// tenant narrows the installation's list; it can never widen it).
pub fn check_redirect(
    allowed: &[String],
    config: Option<&CompiledIdentityProvider>,
    target: &str,
) -> Result<(), RedirectRefusal> {
    // Browsers drop tabs and newlines before parsing (`/\t/evil` becomes `//evil`): refuse any
    // control character or whitespace, and anything long.
    if target.len() > 2048 || target.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(RedirectRefusal::Malformed);
    }
    if target.starts_with('/') {
        return local_path_allowed(target)
            .then_some(())
            .ok_or(RedirectRefusal::Malformed);
    }
    let Ok(url) = reqwest::Url::parse(target) else {
        return Err(RedirectRefusal::Malformed);
    };
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.host_str().is_none()
    {
        return Err(RedirectRefusal::Malformed);
    }
    let origin = url.origin().ascii_serialization();
    if !allowed.iter().any(|a| under(a, &url)) {
        return Err(RedirectRefusal::Installation { origin });
    }
    match config {
        Some(c) if !c.allowed_redirects.iter().any(|a| under(a, &url)) => {
            Err(RedirectRefusal::IdentityProvider {
                origin,
                tenant: c.tenant().to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// [`check_redirect`] as a yes or no.
pub fn redirect_allowed(
    allowed: &[String],
    config: &CompiledIdentityProvider,
    target: &str,
) -> bool {
    check_redirect(allowed, Some(config), target).is_ok()
}

/// Whether an entry of an allow-list is a valid prefix: an absolute http(s) URL with a host
/// and no user info, query or fragment.
pub fn valid_redirect_prefix(prefix: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(prefix).map_err(|e| format!("{prefix:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{prefix:?} must be an absolute http(s) URL such as https://app.example.com/"
        ));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "{prefix:?} must have no user name, password, query or fragment"
        ));
    }
    Ok(())
}

/// Whether `url` is under the allow-list entry `allowed`: same scheme, host (`*.` matching
/// subdomains) and port, and a path at or below the allowed one.
fn under(allowed: &str, url: &reqwest::Url) -> bool {
    let Ok(a) = reqwest::Url::parse(allowed) else {
        return false;
    };
    let (Some(host), Some(allowed_host)) = (url.host_str(), a.host_str()) else {
        return false;
    };
    let host_ok = match allowed_host.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(&format!(".{suffix}")),
        None => host.eq_ignore_ascii_case(allowed_host),
    };
    let path_ok = {
        let base = a.path();
        url.path() == base
            || url
                .path()
                .starts_with(&format!("{}/", base.trim_end_matches('/')))
            || base == "/"
    };
    a.scheme() == url.scheme()
        && host_ok
        && a.port_or_known_default() == url.port_or_known_default()
        && path_ok
}

/// Whether `target` is a path on this installation: `//host` and `/\host` are
/// protocol-relative in browsers, and control characters or whitespace are refused.
pub fn local_path_allowed(target: &str) -> bool {
    target.len() <= 2048
        && target.starts_with('/')
        && !target.starts_with("//")
        && !target.starts_with("/\\")
        && !target.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allowed: &[&str]) -> CompiledIdentityProvider {
        let mut c: CompiledIdentityProvider = serde_json::from_value(serde_json::json!({
            "namespace": "ns", "name": "okta", "generation": 1, "provider": "okta",
            "serviceProvider": { "entityId": "e", "metadataUrl": "m", "acsUrl": "a", "loginUrl": "l",
                "current": { "certificatePem": "", "privateKeyPem": "" }, "next": null, "previous": null },
            "idp": { "entityId": "i", "ssoUrl": "https://idp.example.com/sso", "certificates": [], "metadataUrl": null, "metadataFetchedAt": null },
            "allowIdpInitiated": false, "defaultRelayState": null, "allowedRedirects": [],
            "saml": {}, "attributeMapping": {}, "users": {}, "session": {}, "scimBaseUrl": "s", "scimTokens": []
        }))
        .unwrap();
        c.allowed_redirects = allowed.iter().map(|s| s.to_string()).collect();
        c
    }

    /// An installation list that allows every host the tests use.
    fn everything() -> Vec<String> {
        vec![
            "https://app.example.com/".into(),
            "https://a.corp.example.com/".into(),
            "https://evil.example.com/".into(),
            "http://app.example.com/".into(),
            "https://app.example.com:8443/".into(),
            "https://corp.example.com/".into(),
        ]
    }

    #[test]
    fn the_installation_list_bounds_every_identity_providers_list() {
        let tenant = config(&[
            "https://evil.example.com/",
            "https://app.example.com/portal",
        ]);
        let installation = vec!["https://app.example.com/".to_owned()];
        assert_eq!(
            check_redirect(&installation, Some(&tenant), "https://evil.example.com/x"),
            Err(RedirectRefusal::Installation {
                origin: "https://evil.example.com".into()
            })
        );
        assert_eq!(
            check_redirect(
                &installation,
                Some(&tenant),
                "https://app.example.com/other"
            ),
            Err(RedirectRefusal::IdentityProvider {
                origin: "https://app.example.com".into(),
                tenant: "ns/okta".into()
            })
        );
        assert_eq!(
            check_redirect(
                &installation,
                Some(&tenant),
                "https://app.example.com/portal/x"
            ),
            Ok(())
        );
        // Without an IdentityProvider (signing out with no session), the installation decides.
        assert_eq!(
            check_redirect(&installation, None, "https://app.example.com/x"),
            Ok(())
        );
        // Paths on this installation need no list.
        assert_eq!(check_redirect(&[], Some(&tenant), "/welcome"), Ok(()));
        assert_eq!(
            check_redirect(&[], None, "//evil.example.com/"),
            Err(RedirectRefusal::Malformed)
        );
        let text = RedirectRefusal::Installation {
            origin: "https://evil.example.com".into(),
        }
        .explanation();
        assert!(text.contains("server.allowedRedirects") && text.contains("--allowed-redirect"));
    }

    #[test]
    fn allow_list_entries_are_absolute_urls_without_user_info_or_query() {
        assert!(valid_redirect_prefix("https://app.example.com/").is_ok());
        assert!(valid_redirect_prefix("https://*.corp.example.com/").is_ok());
        for bad in [
            "app.example.com",
            "ftp://x.example.com/",
            "https://u@x.example.com/",
            "https://x.example.com/?a=1",
            "/path",
        ] {
            assert!(valid_redirect_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_ids_are_unique_xml_ids_with_160_bits() {
        let a = new_request_id();
        assert!(a.starts_with('_') && a.len() == 41);
        assert_ne!(a, new_request_id());
    }

    #[test]
    fn redirects_follow_the_allow_list_exactly() {
        let c = config(&[
            "https://app.example.com/portal",
            "https://*.corp.example.com/",
        ]);
        for ok in [
            "/",
            "/app?x=1",
            "https://app.example.com/portal",
            "https://app.example.com/portal/page",
            "https://a.corp.example.com/x",
        ] {
            assert!(
                redirect_allowed(&everything(), &c, ok),
                "{ok} must be allowed"
            );
        }
        for bad in [
            "//evil.example.com/",
            "/\\evil.example.com",
            "https://evil.example.com/",
            "https://app.example.com/portalx",
            "https://app.example.com/other",
            "http://app.example.com/portal",
            "https://app.example.com:8443/portal",
            "https://corp.example.com/",
            "https://user@app.example.com/portal",
            "javascript:alert(1)",
            "/\t/evil.example.com",
            "/\t\\evil.example.com",
            "/ok\nLocation: x",
            "app.example.com/portal",
            "",
        ] {
            assert!(
                !redirect_allowed(&everything(), &c, bad),
                "{bad} must be refused"
            );
        }
    }
}
