//! Kubernetes API types of sso-operator (group `sso-operator.dev`, version `v1alpha1`).
//!
//! These are pure data types with their OpenAPI schema, defaults and CEL validation rules; no
//! I/O happens here.

#[macro_use]
mod reasons;

pub mod common;
pub mod conditions;
pub mod duration;
pub mod identity_provider;
pub mod logout_refusal;
pub mod oidc_client;
pub mod reference;
pub mod scim_token;
pub mod sign_in_refusal;

pub use common::{ConfigMapKeyRef, SecretKeyRef};
pub use duration::{Duration, parse_duration};
pub use identity_provider::{IdentityProvider, IdentityProviderSpec, IdentityProviderStatus};
pub use logout_refusal::LogoutRefusal;
pub use oidc_client::{OidcClient, OidcClientSpec, OidcClientStatus};
pub use scim_token::{ScimToken, ScimTokenSpec, ScimTokenStatus};
pub use sign_in_refusal::SignInRefusal;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every sso-operator resource.
pub const GROUP: &str = "sso-operator.dev";
/// The served and stored API version.
pub const VERSION: &str = "v1alpha1";

/// Every CustomResourceDefinition, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![IdentityProvider::crd(), ScimToken::crd(), OidcClient::crd()]
}

/// Every CRD as one multi-document YAML stream, exactly as committed under `crds/`.
pub fn crds_yaml() -> Result<String, serde_saphyr::ser::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_like_the_schema_pattern() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("720h").unwrap().as_secs(), 720 * 3600);
        for bad in ["", "5", "1d", "h", "1h-", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }
}
