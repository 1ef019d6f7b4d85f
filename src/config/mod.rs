//! The compiled runtime configuration: the single contract between the controller (which
//! validates, fetches and generates) and the server (which only serves what is compiled).
//!
//! The controller writes one Secret per serving IdentityProvider into the operator's own
//! namespace, labelled [`COMPILED_CONFIG_LABEL`], holding [`CompiledIdentityProvider`] as JSON
//! under [`CONFIG_KEY`]. Keeping these Secrets out of user namespaces lets the server read
//! exactly them and no ScimToken Secret.
//!
//! The controller resolves everything once (defaults applied, durations parsed and bounded,
//! tokens hashed); the server reads these typed values and never a CRD string. The document
//! carries a [`FORMAT_VERSION`] (see [`format`]), so that a server refuses what it cannot read.

pub mod format;
pub mod oidc;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::identity_provider::{
    AssertionEncryption, AttributeMapping, AuthnContextComparison, NameIdFormat, Provider,
    ProvisioningMode, SamlSettings, SessionSettings, SignatureAlgorithm, UserSettings,
};
use crate::session::LONGEST_SESSION;
use crate::tenant::Tenant;

pub use format::{FORMAT_VERSION, FormatError, parse, to_json};

/// Label carried by every compiled-config Secret; the server watches Secrets with it.
pub const COMPILED_CONFIG_LABEL: &str = "sso-operator.dev/compiled-config";
/// Annotation naming the IdentityProvider (`namespace/name`) a compiled Secret belongs to.
pub const SOURCE_ANNOTATION: &str = "sso-operator.dev/identity-provider";
/// Key of the JSON document inside a compiled-config Secret.
pub const CONFIG_KEY: &str = "config.json";

/// Everything the server needs to serve one IdentityProvider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledIdentityProvider {
    /// Namespace of the IdentityProvider.
    pub namespace: String,
    /// Name of the IdentityProvider.
    pub name: String,
    /// `metadata.uid` of the IdentityProvider: which incarnation of `namespace/name` this is.
    /// The server binds the tenant's stored data and every cookie to it, so nothing of a
    /// deleted IdentityProvider is accepted by one re-created under the same name. Empty in
    /// configurations compiled by releases before it existed; those are not served.
    #[serde(default)]
    pub uid: String,
    /// `metadata.generation` this configuration was compiled from.
    pub generation: i64,
    /// The IdP product, for messages.
    pub provider: Provider,
    /// The service-provider side: URLs and keys.
    pub service_provider: CompiledServiceProvider,
    /// The IdP side, resolved from metadata or explicit fields.
    pub idp: CompiledIdp,
    /// Whether responses that answer no request of ours are accepted.
    pub allow_idp_initiated: bool,
    /// Where IdP-initiated sign-ins land.
    pub default_relay_state: Option<String>,
    /// Allowed redirect targets after sign-in.
    pub allowed_redirects: Vec<String>,
    /// SAML protocol settings.
    #[serde(default)]
    pub saml: CompiledSaml,
    /// SAML attribute names.
    #[serde(default)]
    pub attribute_mapping: CompiledAttributeMapping,
    /// User provisioning settings.
    #[serde(default)]
    pub users: CompiledUsers,
    /// Session settings.
    #[serde(default)]
    pub session: CompiledSession,
    /// Base URL of the SCIM endpoint.
    pub scim_base_url: String,
    /// SCIM bearer tokens accepted, as hashes only.
    pub scim_tokens: Vec<CompiledScimToken>,
    /// The OpenID Provider in front of this IdentityProvider; none while no OidcClient uses
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<oidc::CompiledOidc>,
}

/// Service-provider URLs and key material.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledServiceProvider {
    /// SP entity ID.
    pub entity_id: String,
    /// SP metadata URL.
    pub metadata_url: String,
    /// Assertion Consumer Service URL.
    pub acs_url: String,
    /// SP-initiated login URL.
    pub login_url: String,
    /// The active key pair: signs AuthnRequests and decrypts assertions.
    pub current: KeyPair,
    /// The next key pair, published in metadata before it becomes current.
    pub next: Option<KeyPair>,
    /// The previous key pair, still accepted for decryption until it expires.
    pub previous: Option<KeyPair>,
}

/// A PEM certificate with its PEM private key.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPair {
    /// Certificate, PEM.
    pub certificate_pem: String,
    /// Private key, PKCS#8 PEM.
    pub private_key_pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys, even in debug output.
        f.debug_struct("KeyPair")
            .field("private_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The IdP side of the connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledIdp {
    /// IdP entity ID (expected Issuer).
    pub entity_id: String,
    /// IdP SSO URL for the HTTP-Redirect binding.
    pub sso_url: String,
    /// Valid IdP signing certificates, PEM. Never empty.
    pub certificates: Vec<String>,
    /// The metadata URL this was resolved from; none for explicit fields.
    pub metadata_url: Option<String>,
    /// When the metadata was fetched.
    pub metadata_fetched_at: Option<jiff::Timestamp>,
    /// The IdP's SingleLogoutService (from its metadata or `idp.singleLogoutUrl`); none when
    /// the IdP offers no Single Logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_logout: Option<SingleLogoutService>,
}

/// A SAML binding of a Single Logout endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SloBinding {
    /// HTTP-Redirect: the message deflated in the query string, signed with `SigAlg` and
    /// `Signature` parameters.
    Redirect,
    /// HTTP-POST: the message in a self-posting form, with an enveloped XML signature.
    Post,
}

/// The IdP's Single Logout endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SingleLogoutService {
    /// The binding our LogoutRequests and LogoutResponses use.
    pub binding: SloBinding,
    /// Where LogoutRequests go (`Location`).
    pub location: String,
    /// Where LogoutResponses go (`ResponseLocation`, else `Location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_location: Option<String>,
}

impl SingleLogoutService {
    /// Where our LogoutResponses go.
    pub fn response_url(&self) -> &str {
        self.response_location.as_deref().unwrap_or(&self.location)
    }
}

impl CompiledServiceProvider {
    /// Our SingleLogoutService URL (both bindings), next to the ACS URL.
    pub fn single_logout_url(&self) -> String {
        format!(
            "{}/slo",
            self.acs_url
                .strip_suffix("/acs")
                .unwrap_or(self.acs_url.trim_end_matches('/'))
        )
    }
}

impl CompiledIdentityProvider {
    /// The IdentityProvider this configuration was compiled from: its tenant.
    pub fn tenant(&self) -> Tenant {
        Tenant::new(&self.namespace, &self.name)
    }

    /// The IdP's Single Logout endpoint, when `session.singleLogout` is on and the IdP has
    /// one: where SP-initiated logout sends its LogoutRequest.
    pub fn single_logout(&self) -> Option<&SingleLogoutService> {
        self.idp
            .single_logout
            .as_ref()
            .filter(|_| self.session.single_logout)
    }
}

/// The shortest session (`session.duration`); the CRD refuses shorter ones.
pub const SHORTEST_SESSION: SignedDuration = SignedDuration::from_mins(5);
/// The largest tolerated clock difference with the IdP (`saml.clockSkew`); the CRD refuses
/// larger ones.
pub const LARGEST_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(10);
/// The shortest interval between two fetches of an IdP's metadata
/// (`idp.metadataRefreshInterval`); the CRD refuses shorter ones.
pub const SHORTEST_METADATA_REFRESH: SignedDuration = SignedDuration::from_mins(1);

/// The SAML protocol settings the server applies (from `spec.saml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompiledSaml {
    /// Sign AuthnRequests with the service-provider key.
    pub sign_authn_requests: bool,
    /// Require the Assertion itself to be signed.
    pub want_assertions_signed: bool,
    /// Ask the IdP to authenticate the user again.
    pub force_authn: bool,
    /// Authentication context classes to request.
    pub requested_authn_context: Vec<String>,
    /// How the IdP compares `requested_authn_context`.
    pub requested_authn_context_comparison: AuthnContextComparison,
    /// The NameID format requested.
    pub name_id_format: NameIdFormat,
    /// The signature algorithm accepted and used.
    pub signature_algorithm: SignatureAlgorithm,
    /// Whether assertions may, must or must not be encrypted.
    pub assertion_encryption: AssertionEncryption,
    /// Whether AES-CBC encrypted assertions are accepted.
    pub allow_cbc_encryption: bool,
    /// Tolerated clock difference with the IdP, at most [`LARGEST_CLOCK_SKEW`].
    #[serde(with = "crate::api::duration::text")]
    pub clock_skew: SignedDuration,
}

impl CompiledSaml {
    /// The settings of `spec.saml`, resolved.
    pub fn new(saml: &SamlSettings) -> Self {
        Self {
            sign_authn_requests: saml.sign_authn_requests,
            want_assertions_signed: saml.want_assertions_signed,
            force_authn: saml.force_authn,
            requested_authn_context: saml.requested_authn_context.clone(),
            requested_authn_context_comparison: saml.requested_authn_context_comparison,
            name_id_format: saml.name_id_format,
            signature_algorithm: saml.signature_algorithm,
            assertion_encryption: saml.assertion_encryption,
            allow_cbc_encryption: saml.allow_cbc_encryption,
            clock_skew: clock_skew(saml),
        }
    }
}

impl Default for CompiledSaml {
    fn default() -> Self {
        Self::new(&SamlSettings::default())
    }
}

/// `saml.clockSkew`, bounded by [`LARGEST_CLOCK_SKEW`] (the CRD refuses more; an object
/// stored under an older CRD might not).
pub fn clock_skew(saml: &SamlSettings) -> SignedDuration {
    saml.clock_skew.get().min(LARGEST_CLOCK_SKEW)
}

/// `idp.metadataRefreshInterval`, at least [`SHORTEST_METADATA_REFRESH`].
pub fn metadata_refresh_interval(
    idp: &crate::api::identity_provider::IdpSettings,
) -> SignedDuration {
    idp.metadata_refresh_interval
        .get()
        .max(SHORTEST_METADATA_REFRESH)
}

/// Names of the SAML attributes that carry user details (from `spec.attributeMapping`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompiledAttributeMapping {
    /// Attribute holding the email address.
    pub email: String,
    /// Attribute holding the first name.
    pub first_name: String,
    /// Attribute holding the last name.
    pub last_name: String,
    /// Attribute holding the display name; none: first and last name joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_name: Option<String>,
    /// Attribute holding the user's identity; none: the NameID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Attribute holding group names.
    pub groups: String,
}

impl CompiledAttributeMapping {
    /// The names of `spec.attributeMapping`.
    pub fn new(m: &AttributeMapping) -> Self {
        Self {
            email: m.email.clone(),
            first_name: m.first_name.clone(),
            last_name: m.last_name.clone(),
            real_name: m.real_name.clone(),
            identity: m.identity.clone(),
            groups: m.groups.clone(),
        }
    }
}

impl Default for CompiledAttributeMapping {
    fn default() -> Self {
        Self::new(&AttributeMapping::default())
    }
}

/// How users are provisioned and which groups they join (from `spec.users`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompiledUsers {
    /// How users come to exist.
    pub provisioning: ProvisioningMode,
    /// Email domains whose users may sign in; empty: any.
    pub allowed_email_domains: Vec<String>,
    /// Groups every user created just in time joins.
    pub default_groups: Vec<String>,
    /// Replace sign-in group memberships with the SAML groups at each sign-in.
    pub sync_groups_from_saml: bool,
    /// Link a sign-in to the one user with the same work email.
    pub link_by_email: bool,
}

impl CompiledUsers {
    /// The settings of `spec.users`.
    pub fn new(u: &UserSettings) -> Self {
        Self {
            provisioning: u.provisioning,
            allowed_email_domains: u.allowed_email_domains.clone(),
            default_groups: u.default_groups.clone(),
            sync_groups_from_saml: u.sync_groups_from_saml,
            link_by_email: u.link_by_email,
        }
    }
}

impl Default for CompiledUsers {
    fn default() -> Self {
        Self::new(&UserSettings::default())
    }
}

/// The browser session created after a sign-in (from `spec.session`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompiledSession {
    /// How long a session lasts, between [`SHORTEST_SESSION`] and [`LONGEST_SESSION`].
    #[serde(with = "crate::api::duration::text")]
    pub duration: SignedDuration,
    /// Restart the session's duration each time it is used.
    pub extend_when_used: bool,
    /// Domain attribute of the session cookie; none: the external URL's host only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// SAML Single Logout on.
    pub single_logout: bool,
}

impl CompiledSession {
    /// The settings of `spec.session`, resolved.
    pub fn new(s: &SessionSettings) -> Self {
        Self {
            duration: session_duration(s.duration.get()),
            extend_when_used: s.extend_when_used,
            cookie_domain: s.cookie_domain.clone(),
            single_logout: s.single_logout,
        }
    }
}

impl Default for CompiledSession {
    fn default() -> Self {
        Self::new(&SessionSettings::default())
    }
}

/// A session duration bounded to what the CRD admits: [`SHORTEST_SESSION`] to
/// [`LONGEST_SESSION`].
pub fn session_duration(d: SignedDuration) -> SignedDuration {
    d.clamp(SHORTEST_SESSION, LONGEST_SESSION)
}

/// The hash under which a SCIM bearer token is compiled and compared: SHA-256, hex. The
/// controller and the server use this one function, so they never disagree.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// One accepted SCIM bearer token, as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompiledScimToken {
    /// The ScimToken resource it comes from.
    pub scim_token: String,
    /// Non-secret token identifier.
    pub token_id: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// When the token stops working; none: no expiry.
    pub not_after: Option<jiff::Timestamp>,
}

/// Name of the compiled-config Secret of IdentityProvider `namespace/name`. Deterministic,
/// unambiguous (a namespace never contains a dot, so the first dot separates the two) and
/// within the 253-character limit: long names are shortened with a hash suffix.
pub fn compiled_secret_name(namespace: &str, name: &str) -> String {
    tenant_secret_name("idp-", namespace, name)
}

/// The name `{prefix}{namespace}.{name}` of a Secret about IdentityProvider `namespace/name`
/// in the configuration namespace, shortened with a hash like [`compiled_secret_name`].
pub fn tenant_secret_name(prefix: &str, namespace: &str, name: &str) -> String {
    let plain = format!("{prefix}{namespace}.{name}");
    if plain.len() <= 253 {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(
        Tenant::new(namespace, name).to_string().as_bytes(),
    ));
    format!(
        "{}-{}",
        &plain[..200].trim_end_matches(['-', '.']),
        &digest[..16]
    )
}

/// The URLs of one IdentityProvider under the installation's external base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Urls {
    /// SP metadata URL, also the default SP entity ID.
    pub metadata: String,
    /// Assertion Consumer Service URL.
    pub acs: String,
    /// SP-initiated login URL.
    pub login: String,
    /// SCIM base URL.
    pub scim_base: String,
    /// Single Logout service URL.
    pub single_logout: String,
    /// OpenID Connect issuer URL (discovery is under it).
    pub oidc_issuer: String,
}

impl Urls {
    /// URLs of IdentityProvider `namespace/name` under `external_url` (no trailing slash needed).
    pub fn new(external_url: &str, namespace: &str, name: &str) -> Self {
        let base = external_url.trim_end_matches('/');
        let saml = format!("{base}/saml/{namespace}/{name}");
        Self {
            metadata: format!("{saml}/metadata"),
            acs: format!("{saml}/acs"),
            login: format!("{saml}/login"),
            scim_base: format!("{base}/scim/v2/{namespace}/{name}"),
            single_logout: format!("{saml}/slo"),
            oidc_issuer: format!("{base}/oidc/{namespace}/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_from_the_external_url_not_a_request() {
        let u = Urls::new("https://sso.example.com/", "team-a", "okta");
        assert_eq!(
            u.metadata,
            "https://sso.example.com/saml/team-a/okta/metadata"
        );
        assert_eq!(u.acs, "https://sso.example.com/saml/team-a/okta/acs");
        assert_eq!(u.login, "https://sso.example.com/saml/team-a/okta/login");
        assert_eq!(u.scim_base, "https://sso.example.com/scim/v2/team-a/okta");
        assert_eq!(
            u.single_logout,
            "https://sso.example.com/saml/team-a/okta/slo"
        );
        assert_eq!(u.oidc_issuer, "https://sso.example.com/oidc/team-a/okta");
    }

    #[test]
    fn compiled_secret_names_are_deterministic_and_short_enough() {
        assert_eq!(compiled_secret_name("ns", "okta"), "idp-ns.okta");
        assert_ne!(
            compiled_secret_name("a-b", "c"),
            compiled_secret_name("a", "b-c")
        );
        let long = "a".repeat(253);
        let n1 = compiled_secret_name("ns", &long);
        assert!(n1.len() <= 253);
        assert_eq!(n1, compiled_secret_name("ns", &long));
        assert_ne!(n1, compiled_secret_name("ns2", &long));
    }

    #[test]
    fn key_pairs_never_print_their_private_key() {
        let kp = KeyPair {
            certificate_pem: "CERT".into(),
            private_key_pem: "SECRET-KEY".into(),
        };
        assert!(!format!("{kp:?}").contains("SECRET-KEY"));
    }
}
