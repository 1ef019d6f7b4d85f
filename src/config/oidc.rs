//! The compiled OpenID Provider of one IdentityProvider: its issuer, signing keys and relying
//! parties (one per `OidcClient`). The controller compiles it into the IdentityProvider's
//! configuration once at least one OidcClient uses that IdentityProvider; the server answers
//! the OIDC endpoints only from it.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::oidc::keys::SigningKeys;

/// The shortest ID and access token lifetime an OidcClient may ask for.
pub const SHORTEST_TOKEN: SignedDuration = SignedDuration::from_mins(1);
/// The longest ID and access token lifetime an OidcClient may ask for; a signing key stays
/// published at least this long after it stopped signing.
pub const LONGEST_TOKEN: SignedDuration = SignedDuration::from_hours(24);
/// The longest refresh token lifetime an OidcClient may ask for.
pub const LONGEST_REFRESH: SignedDuration = SignedDuration::from_hours(2160);

/// The OpenID Provider of one IdentityProvider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledOidc {
    /// The issuer URL: `EXTERNAL_URL/oidc/NAMESPACE/NAME`, without a trailing slash; the
    /// `iss` of every token and the base of every endpoint.
    pub issuer: String,
    /// Signing keys, newest first: every one is published in the JWKS document; the newest
    /// whose `signsFrom` has passed signs.
    pub signing_keys: SigningKeys,
    /// The relying parties, one per OidcClient of the IdentityProvider's namespace that
    /// references it, sorted by client ID.
    pub clients: Vec<CompiledOidcClient>,
}

impl CompiledOidc {
    /// The client with ID `client_id`.
    pub fn client(&self, client_id: &str) -> Option<&CompiledOidcClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// A grant type an OidcClient may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// The authorization code flow (`authorization_code`).
    AuthorizationCode,
    /// Refresh tokens (`refresh_token`).
    RefreshToken,
    /// The device authorization grant of RFC 8628
    /// (`urn:ietf:params:oauth:grant-type:device_code`).
    DeviceCode,
}

impl GrantType {
    /// The `grant_type` value of the token request.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }
}

/// One relying party (an `OidcClient`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledOidcClient {
    /// Name of the OidcClient resource.
    pub name: String,
    /// `metadata.uid` of the OidcClient: tokens of a deleted client are never accepted by one
    /// re-created under the same name.
    pub uid: String,
    /// The `client_id`.
    pub client_id: String,
    /// A public client (a native app, kubectl) has no secret and must use PKCE.
    pub public: bool,
    /// The client secrets accepted, as hashes ([`crate::config::token_hash`]); two during a
    /// rotation's overlap. Empty for public clients.
    pub secrets: Vec<CompiledClientSecret>,
    /// Redirect URIs, matched exactly; a loopback `http://127.0.0.1`, `http://[::1]` or
    /// `http://localhost` URI matches with any port (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// The scopes the client may ask for (`openid` always among them).
    pub scopes: Vec<String>,
    /// The claim of ID tokens and userinfo that carries the user's groups.
    pub groups_claim: String,
    /// The user must be in one of these groups (any, when empty); otherwise the sign-in is
    /// refused with `access_denied`.
    #[serde(default)]
    pub required_groups: Vec<String>,
    /// Lifetime of ID tokens.
    #[serde(with = "crate::api::duration::text")]
    pub id_token_lifetime: SignedDuration,
    /// Lifetime of access tokens.
    #[serde(with = "crate::api::duration::text")]
    pub access_token_lifetime: SignedDuration,
    /// The longest a chain of refresh tokens lasts from the sign-in.
    #[serde(with = "crate::api::duration::text")]
    pub refresh_token_lifetime: SignedDuration,
}

impl CompiledOidcClient {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// One accepted client secret, as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledClientSecret {
    /// Non-secret identifier of the secret (its first characters), for logs.
    pub secret_id: String,
    /// SHA-256 of the secret, hex.
    pub sha256: String,
    /// When the secret stops working (the end of a rotation's overlap); none: no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Timestamp>,
}
