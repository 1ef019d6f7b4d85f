//! The `OidcClient` custom resource: a relying party (Argo CD, Grafana, oauth2-proxy, kubectl)
//! of the OpenID Provider that sso-operator runs in front of one IdentityProvider.
// The lint misreads repeated `type_ = ...` keys of separate `printcolumn(...)` entries.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::scim_token::{IdentityProviderRef, Rotation};

/// The CEL rule of a list of redirect URIs: absolute URLs without a fragment, `https`, or
/// `http` only for a loopback address (RFC 8252 §7.3).
const REDIRECT_URIS_RULE: &str = "self.all(u, isURL(u) && !u.contains('#') && (url(u).getScheme() == 'https' || url(u).getScheme() == 'http' && (url(u).getHostname() == '127.0.0.1' || url(u).getHostname() == '::1' || url(u).getHostname() == 'localhost')))";

/// A relying party of one IdentityProvider's OpenID Provider. The operator writes the client
/// ID, the client secret and the issuer URL into a Secret: the three values Argo CD, Grafana,
/// oauth2-proxy or the API server's JWT authenticator ask for.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sso-operator.dev",
    version = "v1alpha1",
    kind = "OidcClient",
    namespaced,
    status = "OidcClientStatus",
    shortname = "oidcc",
    category = "sso",
    doc = "OidcClient is a relying party (Argo CD, Grafana, oauth2-proxy, kubectl) of the OpenID Provider sso-operator runs in front of one IdentityProvider. The operator writes the client ID, client secret and issuer URL into a Secret.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Identity Provider",
        type_ = "string",
        json_path = ".spec.identityProviderRef.name"
    ),
    printcolumn(name = "Client ID", type_ = "string", json_path = ".status.clientId"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        priority = 1,
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.public) || !self.public || !has(self.rotation)").message("rotation cannot be combined with public: true, as a public client has no secret to rotate. Remove spec.rotation"))]
#[x_kube(validation = Rule::new("has(self.redirectUris) && size(self.redirectUris) > 0 || has(self.grantTypes) && size(self.grantTypes) > 0 && self.grantTypes.all(g, g == 'device_code')").message("redirectUris is required (the URLs the client receives its authorization code at) unless grantTypes is only device_code"))]
#[x_kube(validation = Rule::new("has(self.clientId) == has(oldSelf.clientId) && (!has(self.clientId) || self.clientId == oldSelf.clientId)").message("clientId cannot be changed: relying parties and issued tokens know the client by it. Create a new OidcClient for another client ID"))]
#[serde(rename_all = "camelCase")]
pub struct OidcClientSpec {
    /// The IdentityProvider, in the same namespace, whose users sign in to this client.
    /// Cannot be changed after creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("identityProviderRef cannot be changed: create a new OidcClient for the other IdentityProvider"))]
    pub identity_provider_ref: IdentityProviderRef,

    /// The OAuth 2.0 `client_id`, unique among the OidcClients of one IdentityProvider (the
    /// oldest one keeps it). Empty: the OidcClient's name. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        pattern(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    )]
    pub client_id: Option<String>,

    /// A public client (kubectl with kubelogin, a native or single-page app) keeps no secret:
    /// none is issued, and every authorization request must use PKCE with `S256`.
    #[serde(default)]
    pub public: bool,

    /// Where the authorization code may be sent, matched exactly: absolute URLs without a
    /// fragment, `https`, or `http` only for a loopback address (`127.0.0.1`, `[::1]`,
    /// `localhost`), which matches with any port (RFC 8252 §7.3). Required unless grantTypes
    /// is only `device_code`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    #[x_kube(validation = Rule::new(REDIRECT_URIS_RULE).message("every redirectUris entry must be an absolute https URL without a fragment; http is allowed only for 127.0.0.1, [::1] and localhost"))]
    pub redirect_uris: Vec<String>,

    /// Where RP-initiated logout (the `end_session_endpoint`) may return to, matched exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    #[x_kube(validation = Rule::new(REDIRECT_URIS_RULE).message("every postLogoutRedirectUris entry must be an absolute https URL without a fragment; http is allowed only for 127.0.0.1, [::1] and localhost"))]
    pub post_logout_redirect_uris: Vec<String>,

    /// The grant types the client may use: `authorization_code`, `refresh_token` and
    /// `device_code` (RFC 8628, for command-line tools without a browser).
    #[serde(default = "default_grant_types")]
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(validation = Rule::new("self.all(g, self.exists_one(h, h == g))").message("grantTypes must not name a grant type twice"))]
    pub grant_types: Vec<GrantType>,

    /// The scopes the client may ask for; `openid` is always allowed. Scopes asked for but not
    /// listed here are left out of the grant.
    #[serde(default = "default_scopes")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub scopes: Vec<String>,

    /// The claim of ID tokens and userinfo that lists the user's group names. It cannot be a
    /// claim the provider sets itself (`sub`, `email`, `name`, …).
    #[serde(default = "default_groups_claim")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("!(self in ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'auth_time', 'nonce', 'acr', 'amr', 'azp', 'at_hash', 'c_hash', 'sid', 'email', 'email_verified', 'name', 'preferred_username', 'client_id', 'scope', 'fam', 'cnf'])").message("groupsClaim cannot be a claim the provider sets itself (sub, email, name, …): choose another name, such as groups or roles"))]
    pub groups_claim: String,

    /// The user must be in one of these groups to sign in to this client (any user, when
    /// empty); anyone else is refused with `access_denied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub required_groups: Vec<String>,

    /// How long the tokens issued to this client last.
    #[serde(default)]
    pub token_lifetimes: TokenLifetimes,

    /// Name of the Secret the operator writes (keys `clientId`, `clientSecret` and
    /// `issuerUrl`; no `clientSecret` for a public client). Empty: `<name>-oidc-client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Issues a new client secret on a schedule; the previous one keeps working for the
    /// overlap. A new secret is also issued whenever the annotation `sso-operator.dev/rotate`
    /// changes value. Not for public clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,

    /// Free text shown to admins, for example which application uses the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

/// An OAuth 2.0 grant type an OidcClient may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// The authorization code flow, for sign-in through a browser.
    AuthorizationCode,
    /// Refresh tokens, so the client renews its tokens without a new sign-in.
    RefreshToken,
    /// The device authorization grant (RFC 8628): the user approves the sign-in on another
    /// device.
    DeviceCode,
}

fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "groups", "offline_access"]
        .map(str::to_owned)
        .to_vec()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

/// Lifetimes of the tokens issued to one client.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenLifetimes {
    /// Lifetime of ID tokens, as a duration such as `1h` (between `1m` and `24h`).
    #[serde(default = "default_token_lifetime")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('24h')").message("tokenLifetimes.idToken must be between 1m and 24h"))]
    pub id_token: Duration,
    /// Lifetime of access tokens, as a duration such as `1h` (between `1m` and `24h`).
    #[serde(default = "default_token_lifetime")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('24h')").message("tokenLifetimes.accessToken must be between 1m and 24h"))]
    pub access_token: Duration,
    /// The longest a chain of refresh tokens lasts from the sign-in, as a duration such as
    /// `720h` (between `1m` and `2160h`); the user then signs in again.
    #[serde(default = "default_refresh_lifetime")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('2160h')").message("tokenLifetimes.refreshToken must be between 1m and 2160h"))]
    pub refresh_token: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            id_token: default_token_lifetime(),
            access_token: default_token_lifetime(),
            refresh_token: default_refresh_lifetime(),
        }
    }
}

fn default_token_lifetime() -> Duration {
    Duration::of("1h")
}

fn default_refresh_lifetime() -> Duration {
    Duration::of("720h")
}

/// Observed state of an OidcClient, written by the operator: a report rebuilt from the spec
/// and the client's Secret, never read back. It never holds the client secret or its hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcClientStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state: `Ready`. The reference (docs/reference.md, Conditions) lists every
    /// reason.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `client_id` relying parties use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The issuer URL relying parties are configured with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    /// The OpenID discovery document of the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    /// The Secret holding the client ID, the client secret and the issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// When the current client secret was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// When the previous client secret stops working (the end of the rotation overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<Time>,
}

impl OidcClient {
    /// The `client_id`: `spec.clientId`, or the resource's name.
    pub fn client_id(&self) -> String {
        self.spec
            .client_id
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    #[test]
    fn the_groups_claim_rule_refuses_every_claim_the_provider_sets() {
        let crd = serde_json::to_string(&super::OidcClient::crd()).unwrap();
        let rule = crd
            .split("\"rule\":\"")
            .map(|r| r.split('"').next().unwrap_or_default())
            .find(|r| r.starts_with("!(self in ["))
            .expect("the groupsClaim rule");
        for claim in crate::oidc::claims::RESERVED_CLAIMS {
            assert!(
                rule.contains(&format!("'{claim}'")),
                "{claim} missing from {rule}"
            );
        }
    }
}
