//! The `IdentityProvider` custom resource: one SAML 2.0 identity-provider connection.
// The lint misreads repeated `type_ = ...` keys of separate `printcolumn(...)` entries.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConfigMapKeyRef, SecretKeyRef};
use super::duration::Duration;

/// Connects one SAML 2.0 identity provider (Okta, Microsoft Entra ID, Google Workspace,
/// JumpCloud, OneLogin, Auth0, Keycloak or any SAML IdP) to this installation. The operator
/// generates the service-provider side and reports in `status` the URLs to paste into the IdP.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sso-operator.dev",
    version = "v1alpha1",
    kind = "IdentityProvider",
    namespaced,
    status = "IdentityProviderStatus",
    shortname = "idp",
    category = "sso",
    doc = "IdentityProvider connects one SAML 2.0 identity provider (Okta, Microsoft Entra ID, Google Workspace, JumpCloud, OneLogin, Auth0, Keycloak or any SAML IdP). The operator generates the service-provider side and reports in status the URLs to paste into the IdP.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "ACS URL",
        type_ = "string",
        json_path = ".status.serviceProvider.acsUrl"
    ),
    printcolumn(name = "Users", type_ = "integer", json_path = ".status.scim.users"),
    printcolumn(name = "Groups", type_ = "integer", json_path = ".status.scim.groups"),
    printcolumn(
        name = "Last SCIM Request",
        type_ = "date",
        priority = 1,
        json_path = ".status.scim.lastRequestTime"
    ),
    printcolumn(
        name = "Last Sign-In",
        type_ = "date",
        priority = 1,
        json_path = ".status.signIn.lastSuccessTime"
    ),
    printcolumn(
        name = "Entity ID",
        type_ = "string",
        priority = 1,
        json_path = ".status.serviceProvider.entityId"
    ),
    printcolumn(
        name = "Metadata URL",
        type_ = "string",
        priority = 1,
        json_path = ".status.serviceProvider.metadataUrl"
    ),
    // A future time in a `date` column reads `<invalid>` in kubectl (it shows ages): the
    // time is shown as written, typed by its format.
    printcolumn(
        name = "Certificate Expires",
        type_ = "string",
        format = "date-time",
        priority = 1,
        json_path = ".status.certificateNotAfter"
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
#[x_kube(validation = Rule::new(
    "has(self.serviceProviderEntityId) == has(oldSelf.serviceProviderEntityId) && (!has(self.serviceProviderEntityId) || self.serviceProviderEntityId == oldSelf.serviceProviderEntityId)"
).message("serviceProviderEntityId cannot be added, changed or removed after creation: the IdP (for example Okta's Audience URI or Entra's Identifier) is configured with it. Create a new IdentityProvider instead"))]
#[x_kube(validation = Rule::new(
    "!has(self.defaultRelayState) || self.allowIdpInitiated"
).message("defaultRelayState only applies to IdP-initiated sign-in: set allowIdpInitiated: true, or remove defaultRelayState"))]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderSpec {
    /// Which identity provider this is: okta, entra, google, jumpcloud, onelogin, auth0,
    /// keycloak or generic. It selects documentation hints and the field names used in
    /// messages; behaviour is always driven by the explicit fields below.
    #[serde(default)]
    pub provider: Provider,

    /// Stops this connection at once on every endpoint (SP- and IdP-initiated sign-in, SCIM)
    /// while keeping its keys, tokens and users.
    #[serde(default)]
    pub disabled: bool,

    /// The identity provider's side of the connection: either its metadata URL, or the Sign on
    /// URL, Issuer and Signing Certificate copied from its admin console.
    pub idp: IdpSettings,

    /// Overrides the service-provider entity ID (Okta: Audience URI, Entra: Identifier). By
    /// default it is the metadata URL shown in status. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub service_provider_entity_id: Option<String>,

    /// Accepts sign-in started at the IdP (an Okta tile click, the Entra My Apps portal), that
    /// is responses that answer no request of ours. Off by default: such responses are
    /// refused with "Authentication Failed".
    #[serde(default)]
    pub allow_idp_initiated: bool,

    /// Where IdP-initiated sign-ins land (Okta: Default RelayState): an absolute http(s) URL
    /// or a path on this installation starting with `/`. Requires `allowIdpInitiated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/') && !self.startsWith('//') || isURL(self) && (url(self).getScheme() == 'https' || url(self).getScheme() == 'http')").message("defaultRelayState must be an absolute http(s) URL or a path starting with '/'"))]
    #[schemars(length(min = 1, max = 2048))]
    pub default_relay_state: Option<String>,

    /// Where sign-in and sign-out of this IdentityProvider may return to (the `redirect` of the
    /// login URL, `rd` of /auth/signin and /auth/logout, the RelayState): absolute http(s)
    /// URLs, matched by scheme, host, port and path prefix; a `*.` host prefix matches
    /// subdomains. It only narrows the installation's list (Helm value
    /// `server.allowedRedirects`): an address must be in both. Paths on this installation
    /// (starting with `/`) are always allowed. Anything else shows "Invalid RelayState" and is
    /// never redirected to.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 2048)))]
    #[x_kube(validation = Rule::new("self.all(u, u.startsWith('https://') || u.startsWith('http://'))").message("every allowedRedirects entry must start with https:// or http://"))]
    pub allowed_redirects: Vec<AllowedRedirect>,

    /// SAML protocol settings: request signing, algorithms, NameID format, clock skew.
    #[serde(default)]
    pub saml: SamlSettings,

    /// Which SAML attributes carry the user's email, names, identity and groups.
    #[serde(default)]
    pub attribute_mapping: AttributeMapping,

    /// How users come to exist (SCIM, just-in-time at first sign-in, or both) and which
    /// groups they join.
    #[serde(default)]
    pub users: UserSettings,

    /// The browser session created after a successful sign-in.
    #[serde(default)]
    pub session: SessionSettings,

    /// The OpenID Provider served in front of this IdentityProvider once an OidcClient
    /// references it: how its tokens are signed.
    #[serde(default)]
    pub oidc: OidcSettings,
}

impl IdentityProviderSpec {
    /// The spec with surrounding whitespace removed from every value copied from an IdP
    /// console or typed by hand (URLs, entity IDs, attribute names, domains): a stray space
    /// or line break would otherwise never match what the IdP sends. A value that is only
    /// whitespace counts as unset.
    pub fn trimmed(&self) -> Self {
        fn t(s: &str) -> String {
            s.trim().to_owned()
        }
        fn opt(s: &Option<String>) -> Option<String> {
            s.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        }
        fn list(v: &[String]) -> Vec<String> {
            v.iter().map(|s| t(s)).collect()
        }
        let mut spec = self.clone();
        spec.idp.metadata_url = opt(&self.idp.metadata_url);
        spec.idp.sso_url = opt(&self.idp.sso_url);
        spec.idp.single_logout_url = opt(&self.idp.single_logout_url);
        spec.idp.entity_id = opt(&self.idp.entity_id);
        spec.service_provider_entity_id = opt(&self.service_provider_entity_id);
        spec.default_relay_state = opt(&self.default_relay_state);
        spec.allowed_redirects = list(&self.allowed_redirects);
        spec.saml.requested_authn_context = list(&self.saml.requested_authn_context);
        let a = &self.attribute_mapping;
        spec.attribute_mapping = AttributeMapping {
            email: t(&a.email),
            first_name: t(&a.first_name),
            last_name: t(&a.last_name),
            real_name: opt(&a.real_name),
            identity: opt(&a.identity),
            groups: t(&a.groups),
        };
        spec.users.allowed_email_domains = list(&self.users.allowed_email_domains);
        spec.users.default_groups = list(&self.users.default_groups);
        spec.session.cookie_domain = opt(&self.session.cookie_domain);
        spec
    }
}

/// An allowed redirect target: an absolute http(s) URL prefix.
pub type AllowedRedirect = String;

/// The identity provider product. Values: okta, entra, google, jumpcloud, onelogin, auth0,
/// keycloak, generic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Okta Workforce Identity.
    Okta,
    /// Microsoft Entra ID (formerly Azure AD).
    Entra,
    /// Google Workspace.
    Google,
    /// JumpCloud.
    JumpCloud,
    /// OneLogin.
    OneLogin,
    /// Auth0.
    Auth0,
    /// Keycloak.
    Keycloak,
    /// Any other SAML 2.0 identity provider.
    #[default]
    Generic,
}

/// The identity provider's side of the connection.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("has(self.metadataUrl) || has(self.ssoUrl) && has(self.entityId)").message("set either idp.metadataUrl, or idp.ssoUrl and idp.entityId (Okta: Sign on URL and Issuer; Entra: Login URL and Microsoft Entra Identifier)"))]
#[x_kube(validation = Rule::new("!has(self.metadataUrl) || !has(self.ssoUrl) && !has(self.entityId) && !has(self.certificates)").message("idp.metadataUrl cannot be combined with idp.ssoUrl, idp.entityId or idp.certificates: the metadata provides them. Remove either the metadata URL or the explicit fields"))]
#[x_kube(validation = Rule::new("!has(self.ssoUrl) || has(self.certificates) && size(self.certificates) > 0").message("idp.certificates is required with idp.ssoUrl: paste the IdP's Signing Certificate (Okta: Signing Certificate; Entra: Certificate (Base64)) or reference a Secret or ConfigMap holding it"))]
#[serde(rename_all = "camelCase")]
pub struct IdpSettings {
    /// The IdP's SAML metadata URL (Okta: Metadata URL; Entra: App Federation Metadata Url).
    /// Fetched over HTTPS and refreshed every `metadataRefreshInterval`; every signing
    /// certificate in it is trusted, so IdP certificate rollover needs no change here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() == 'https'").message("idp.metadataUrl must be an https:// URL"))]
    pub metadata_url: Option<String>,

    /// How often the metadata URL is fetched again, as a duration such as `1h` (at least `1m`).
    #[serde(default = "default_metadata_refresh_interval")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("idp.metadataRefreshInterval must be at least 1m"))]
    pub metadata_refresh_interval: Duration,

    /// The IdP's single sign-on URL for the HTTP-Redirect binding (Okta: Sign on URL;
    /// Entra: Login URL; Google: SSO URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() == 'https'").message("idp.ssoUrl must be an https:// URL (Okta: Sign on URL)"))]
    pub sso_url: Option<String>,

    /// The IdP's Single Logout URL for the HTTP-Redirect binding (Okta: Identity Provider
    /// Single Logout URL; Entra: Logout URL; Keycloak and most IdPs publish it in their
    /// metadata instead, as SingleLogoutService). With it, signing out here also ends the
    /// session at the IdP, and the IdP can end sessions here (see `session.singleLogout`).
    /// Ignored with `metadataUrl`: the metadata provides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() == 'https'").message("idp.singleLogoutUrl must be an https:// URL (Okta: Identity Provider Single Logout URL; Entra: Logout URL)"))]
    pub single_logout_url: Option<String>,

    /// The SAML binding of `singleLogoutUrl`: `HTTP-Redirect` (the default) or `HTTP-POST`
    /// (Okta takes logout requests only by POST).
    #[serde(default)]
    pub single_logout_binding: SingleLogoutBinding,

    /// The IdP's entity ID, which must equal the Issuer of every response (Okta: Issuer;
    /// Entra: Microsoft Entra Identifier; Google: Entity ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub entity_id: Option<String>,

    /// The IdP's signing certificates. Responses are verified only against these; several
    /// may be listed during a certificate rollover, as separate entries or as PEM blocks one
    /// after another in one entry or key. Each key must suit `saml.signatureAlgorithm` (RSA
    /// keys for rsa-*, EC keys for ecdsa-*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub certificates: Option<Vec<CertificateSource>>,
}

impl Default for IdpSettings {
    fn default() -> Self {
        Self {
            metadata_url: None,
            metadata_refresh_interval: default_metadata_refresh_interval(),
            sso_url: None,
            single_logout_url: None,
            single_logout_binding: SingleLogoutBinding::default(),
            entity_id: None,
            certificates: None,
        }
    }
}

fn default_metadata_refresh_interval() -> Duration {
    Duration::of("1h")
}

/// Where one IdP signing certificate comes from: exactly one of `pem`, `secretKeyRef` or
/// `configMapKeyRef`.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("[has(self.pem), has(self.secretKeyRef), has(self.configMapKeyRef)].exists_one(x, x)").message("each idp.certificates entry needs exactly one of pem, secretKeyRef or configMapKeyRef"))]
#[serde(rename_all = "camelCase")]
pub struct CertificateSource {
    /// The certificate in PEM form (Okta: Signing Certificate, Entra: Certificate (Base64)).
    /// A bare base64 body without the BEGIN/END lines is accepted too, and so are up to 8
    /// PEM certificates one after another; any other text is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16384))]
    pub pem: Option<String>,
    /// A key in a Secret holding the certificate in PEM form (or up to 8, one after another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A key in a ConfigMap holding the certificate in PEM form (or up to 8, one after
    /// another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,
}

/// The SAML binding of the IdP's Single Logout URL. Values: HTTP-Redirect, HTTP-POST.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SingleLogoutBinding {
    /// The message deflated into the URL's query string, signed there.
    #[default]
    #[serde(rename = "HTTP-Redirect")]
    HttpRedirect,
    /// The message in a form the browser posts, with an XML signature.
    #[serde(rename = "HTTP-POST")]
    HttpPost,
}

/// SAML protocol settings.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("self.allowSha1 || self.signatureAlgorithm != 'rsa-sha1' && self.digestAlgorithm != 'sha1'").message("SHA-1 is broken: choose rsa-sha256 and sha256 (Okta: Signature Algorithm RSA-SHA256, Digest Algorithm SHA256), or set saml.allowSha1: true if the IdP cannot do better"))]
#[serde(rename_all = "camelCase")]
pub struct SamlSettings {
    /// Signs AuthnRequests with the service-provider key (Okta: Signed Requests). The signing
    /// certificate is published in the service-provider metadata.
    #[serde(default)]
    pub sign_authn_requests: bool,

    /// Requires the Assertion itself to be signed. When false, a signed Response that covers
    /// the assertion is accepted as well. Unsigned responses are never accepted, and an
    /// encrypted assertion always needs its own signature whatever this says: the Response's
    /// signature covers only the ciphertext, not the decrypted assertion.
    #[serde(default = "default_true")]
    pub want_assertions_signed: bool,

    /// Asks the IdP to authenticate the user again even if they have a session there.
    #[serde(default)]
    pub force_authn: bool,

    /// Authentication context classes to request, for example
    /// `urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport`. Empty: none requested.
    #[serde(default)]
    #[schemars(length(max = 16), inner(length(min = 1, max = 512)))]
    pub requested_authn_context: Vec<String>,

    /// How the IdP compares `requestedAuthnContext`: exact, minimum, maximum or better.
    #[serde(default)]
    pub requested_authn_context_comparison: AuthnContextComparison,

    /// The NameID format requested from the IdP (Okta: Name ID format): emailAddress,
    /// unspecified, persistent or transient.
    #[serde(default)]
    pub name_id_format: NameIdFormat,

    /// The signature algorithm accepted on responses and used for signed requests:
    /// rsa-sha256 (default), rsa-sha384, rsa-sha512, ecdsa-sha256, ecdsa-sha384,
    /// ecdsa-sha512, or rsa-sha1 (requires allowSha1). It must suit the key of the IdP's
    /// signing certificate: rsa-* for an RSA key, ecdsa-* for an EC key.
    #[serde(default)]
    pub signature_algorithm: SignatureAlgorithm,

    /// The digest algorithm accepted in signature references: sha256 (default), sha384,
    /// sha512, or sha1 (requires allowSha1).
    #[serde(default)]
    pub digest_algorithm: DigestAlgorithm,

    /// Explicit opt-in to SHA-1 signatures or digests, for IdPs that cannot do better.
    #[serde(default)]
    pub allow_sha1: bool,

    /// Encrypted assertions: optional (default; the encryption certificate is published and
    /// encrypted assertions are decrypted), required (plain assertions are refused), or
    /// disabled (no encryption certificate is published).
    #[serde(default)]
    pub assertion_encryption: AssertionEncryption,

    /// Explicit opt-in to AES-CBC encrypted assertions, for IdPs that cannot encrypt with
    /// AES-GCM: Microsoft Entra ID token encryption (AES-256-CBC, no choice), and by default
    /// Shibboleth IdP 3 and older Keycloak releases. AES-CBC is not authenticated: whoever can post to the
    /// ACS URL can learn the content of an encrypted assertion by sending altered copies of
    /// it (an XML Encryption padding oracle), so a `CbcEncryptionAllowed` warning condition is
    /// True while this is on. Default false: AES-CBC is refused with the reason
    /// `CbcEncryptionRefused`; choose AES-GCM at the IdP instead (Okta: Encryption Algorithm
    /// AES256-GCM), or turn assertion encryption off there.
    #[serde(default)]
    pub allow_cbc_encryption: bool,

    /// Tolerated clock difference with the IdP when checking NotBefore and NotOnOrAfter, as a
    /// duration such as `2m` (at most `10m`).
    #[serde(default = "default_clock_skew")]
    #[x_kube(validation = Rule::new("duration(self) <= duration('10m')").message("saml.clockSkew must be at most 10m"))]
    pub clock_skew: Duration,
}

impl Default for SamlSettings {
    fn default() -> Self {
        Self {
            sign_authn_requests: false,
            want_assertions_signed: true,
            force_authn: false,
            requested_authn_context: Vec::new(),
            requested_authn_context_comparison: AuthnContextComparison::default(),
            name_id_format: NameIdFormat::default(),
            signature_algorithm: SignatureAlgorithm::default(),
            digest_algorithm: DigestAlgorithm::default(),
            allow_sha1: false,
            assertion_encryption: AssertionEncryption::default(),
            allow_cbc_encryption: false,
            clock_skew: default_clock_skew(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_clock_skew() -> Duration {
    Duration::of("2m")
}

/// How the IdP compares requested authentication contexts. Values: exact, minimum,
/// maximum, better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthnContextComparison {
    /// The IdP must use one of the listed contexts.
    #[default]
    Exact,
    /// At least as strong as one of the listed contexts.
    Minimum,
    /// At most as strong as one of the listed contexts.
    Maximum,
    /// Stronger than any of the listed contexts.
    Better,
}

/// The SAML NameID format. Values: emailAddress, unspecified, persistent, transient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NameIdFormat {
    /// urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress
    #[default]
    EmailAddress,
    /// urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified
    Unspecified,
    /// urn:oasis:names:tc:SAML:2.0:nameid-format:persistent
    Persistent,
    /// urn:oasis:names:tc:SAML:2.0:nameid-format:transient
    Transient,
}

impl NameIdFormat {
    /// The SAML URN of this format.
    pub fn urn(self) -> &'static str {
        match self {
            Self::EmailAddress => "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            Self::Unspecified => "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            Self::Persistent => "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            Self::Transient => "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        }
    }
}

/// XML signature algorithm. Values: rsa-sha256, rsa-sha384, rsa-sha512, ecdsa-sha256,
/// ecdsa-sha384, ecdsa-sha512, rsa-sha1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureAlgorithm {
    /// http://www.w3.org/2001/04/xmldsig-more#rsa-sha256
    #[default]
    RsaSha256,
    /// http://www.w3.org/2001/04/xmldsig-more#rsa-sha384
    RsaSha384,
    /// http://www.w3.org/2001/04/xmldsig-more#rsa-sha512
    RsaSha512,
    /// http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256
    EcdsaSha256,
    /// http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384
    EcdsaSha384,
    /// http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512
    EcdsaSha512,
    /// http://www.w3.org/2000/09/xmldsig#rsa-sha1 (only with allowSha1)
    RsaSha1,
}

/// XML digest algorithm. Values: sha256, sha384, sha512, sha1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// http://www.w3.org/2001/04/xmlenc#sha256
    #[default]
    Sha256,
    /// http://www.w3.org/2001/04/xmldsig-more#sha384
    Sha384,
    /// http://www.w3.org/2001/04/xmlenc#sha512
    Sha512,
    /// http://www.w3.org/2000/09/xmldsig#sha1 (only with allowSha1)
    Sha1,
}

/// Whether assertions may, must or must not be encrypted. Values: optional, required,
/// disabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AssertionEncryption {
    /// Publish the encryption certificate; accept encrypted and plain assertions.
    #[default]
    Optional,
    /// Refuse assertions that are not encrypted.
    Required,
    /// Publish no encryption certificate; refuse encrypted assertions.
    Disabled,
}

/// Names of the SAML attributes that carry user details. Okta sends the names set in its
/// Attribute Statements; Entra sends claim URIs such as
/// `http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeMapping {
    /// Attribute holding the email address. When the attribute is absent and the NameID
    /// format is emailAddress, the NameID is used.
    #[serde(default = "default_email_attribute")]
    #[schemars(length(min = 1, max = 512))]
    pub email: String,
    /// Attribute holding the first (given) name.
    #[serde(default = "default_first_name_attribute")]
    #[schemars(length(min = 1, max = 512))]
    pub first_name: String,
    /// Attribute holding the last (family) name.
    #[serde(default = "default_last_name_attribute")]
    #[schemars(length(min = 1, max = 512))]
    pub last_name: String,
    /// Attribute holding the full display name. When absent, first and last name are joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub real_name: Option<String>,
    /// Attribute holding the stable user identity used to link the sign-in to a user (its
    /// `userName`). When set, every assertion must carry it; when unset, the NameID is the
    /// identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub identity: Option<String>,
    /// Attribute holding group names (Okta: a Group Attribute Statement; Entra: the groups
    /// claim).
    #[serde(default = "default_groups_attribute")]
    #[schemars(length(min = 1, max = 512))]
    pub groups: String,
}

impl Default for AttributeMapping {
    fn default() -> Self {
        Self {
            email: default_email_attribute(),
            first_name: default_first_name_attribute(),
            last_name: default_last_name_attribute(),
            real_name: None,
            identity: None,
            groups: default_groups_attribute(),
        }
    }
}

fn default_email_attribute() -> String {
    "email".to_owned()
}
fn default_first_name_attribute() -> String {
    "firstName".to_owned()
}
fn default_last_name_attribute() -> String {
    "lastName".to_owned()
}
fn default_groups_attribute() -> String {
    "groups".to_owned()
}

/// How users are provisioned and which groups they join.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSettings {
    /// How users come to exist: scim (pushed by the IdP before they can sign in; default),
    /// justInTime (created at first sign-in), or scimAndJustInTime (both).
    #[serde(default)]
    pub provisioning: ProvisioningMode,
    /// Email domains whose users may sign in, for example `example.com`. Empty: any domain.
    #[serde(default)]
    #[schemars(
        length(max = 64),
        inner(
            length(max = 253),
            pattern(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
        )
    )]
    pub allowed_email_domains: Vec<EmailDomain>,
    /// Groups every user created just in time joins.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub default_groups: Vec<String>,
    /// Replaces the user's memberships in sign-in groups (groups not managed by SCIM) with the
    /// groups in the SAML groups attribute, plus `defaultGroups`, at each sign-in. Memberships
    /// of SCIM-managed groups are left to SCIM.
    #[serde(default)]
    pub sync_groups_from_saml: bool,
    /// Links a sign-in whose identity matches no `userName` to the one user whose work email
    /// equals the sign-in's email. Off by default: turn it on only if the IdP verifies email
    /// addresses and users cannot edit them, or one user could take over another's account.
    #[serde(default)]
    pub link_by_email: bool,
}

/// A DNS domain name such as `example.com`.
pub type EmailDomain = String;

/// How users come to exist. Values: scim, justInTime, scimAndJustInTime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningMode {
    /// Users are pushed by the IdP over SCIM; unknown users cannot sign in.
    #[default]
    Scim,
    /// Users are created at their first successful sign-in.
    JustInTime,
    /// Both: SCIM-pushed users are linked, unknown users are created at first sign-in.
    ScimAndJustInTime,
}

/// The browser session created after a successful sign-in.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSettings {
    /// How long a session lasts, as a duration such as `8h` (between `5m` and `720h`).
    #[serde(default = "default_session_duration")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5m') && duration(self) <= duration('720h')").message("session.duration must be between 5m and 720h"))]
    pub duration: Duration,
    /// Restarts the session's duration each time it is used, so active users stay signed in.
    #[serde(default)]
    pub extend_when_used: bool,
    /// Domain attribute of the session cookie, for example `.example.com` to share the
    /// session across subdomains (the cookie is then named `sso_session_…`). Empty: the host
    /// of the external URL only, under a `__Host-sso_session_…` name that no other host can
    /// set. Changing it renames the cookie: users sign in again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub cookie_domain: Option<String>,
    /// SAML Single Logout. On (the default): the service-provider metadata and
    /// `status.serviceProvider.singleLogoutUrl` publish the Single Logout URL, where a
    /// LogoutRequest from the IdP ends every session of that user here at once; and when the
    /// IdP has a Single Logout endpoint (a SingleLogoutService in its metadata, or
    /// `idp.singleLogoutUrl`), signing out at `/auth/logout` also ends the user's session at
    /// the IdP with a signed LogoutRequest, so the next sign-in asks for their password
    /// again. False: signing out ends only the session here, and no Single Logout URL is
    /// published or served.
    #[serde(default = "default_true")]
    pub single_logout: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            duration: default_session_duration(),
            extend_when_used: false,
            cookie_domain: None,
            single_logout: true,
        }
    }
}

fn default_session_duration() -> Duration {
    Duration::of("8h")
}

/// Observed state of an IdentityProvider, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state, one entry per type: `Ready` (the summary; `kubectl wait
    /// --for=condition=Ready`), `ServiceProviderKeysReady`, `IdpMetadataResolved`,
    /// `CertificatesValid`, `CertificatesExpiringSoon`, `ConfigPublished` and
    /// `CbcEncryptionAllowed` (a warning while True). The reference (docs/reference.md,
    /// Conditions) lists every reason.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The values to paste into the identity provider's admin console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_provider: Option<ServiceProviderUrls>,
    /// Base URL of the SCIM 2.0 endpoint (Okta: SCIM connector base URL; Entra: Tenant URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_base_url: Option<String>,
    /// The IdP signing certificates in use, with subject, fingerprint and validity.
    #[serde(default)]
    pub certificates: Vec<CertificateInfo>,
    /// The earliest end of validity (`notAfter`) of the IdP signing certificates above: the
    /// IdP's next certificate must be in `spec.idp.certificates` (or its metadata) by then.
    /// `kubectl get idp -o wide` shows it as CERTIFICATE EXPIRES.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<Time>,
    /// When the metadata URL was last fetched successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_fetch_time: Option<Time>,
    /// Provisioning figures, written by the server: provisioning works when these move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimFigures>,
    /// Sign-in figures, written by the server: the last successful sign-in and the reason of
    /// the last refused one (never the SAML response itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in: Option<SignInFigures>,
}

/// What the ACS has seen, so an admin can debug sign-in without a browser extension or logs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInFigures {
    /// When a user last signed in successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// When a sign-in was last refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// Why the last refused sign-in was refused, as a stable CamelCase reason such as
    /// `WrongAudience`, `IdpStatus` or `UserDeactivated` (the table "Sign-in refusal reasons"
    /// in docs/reference.md lists every reason and what to change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
    /// What to do about the last refused sign-in, in the IdP console's terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_message: Option<String>,
}

/// What the SCIM endpoint has seen, so an admin can check provisioning with `kubectl get idp`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimFigures {
    /// Users in the identity store for this IdentityProvider.
    pub users: i64,
    /// SCIM-managed groups.
    pub groups: i64,
    /// When the IdP last made an authenticated SCIM request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_time: Option<Time>,
}

/// The service-provider values an admin copies into the identity provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceProviderUrls {
    /// Service-provider entity ID (Okta: Audience URI (SP Entity ID); Entra: Identifier).
    pub entity_id: String,
    /// Service-provider metadata URL (Okta: Metadata URL).
    pub metadata_url: String,
    /// Assertion Consumer Service URL (Okta: Single sign-on URL; Entra: Reply URL).
    pub acs_url: String,
    /// URL that starts SP-initiated sign-in (Entra: Sign on URL).
    pub login_url: String,
    /// Single Logout URL, for both the HTTP-Redirect and HTTP-POST bindings (Okta: Single
    /// Logout URL; Entra: Logout URL); shown while `session.singleLogout` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_logout_url: Option<String>,
}

/// One IdP signing certificate, as the operator understood it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// Where it came from: `spec.idp.certificates[0]`, `secret/NAME/KEY`, `configmap/NAME/KEY`
    /// or `metadata[0]`; `#2` after it numbers the certificates of a bundle (several PEM
    /// blocks in one entry or key).
    pub source: String,
    /// Subject distinguished name.
    pub subject: String,
    /// SHA-256 fingerprint of the DER certificate, as colon-separated hex.
    pub sha256_fingerprint: String,
    /// Start of validity.
    pub not_before: Time,
    /// End of validity.
    pub not_after: Time,
    /// The public key's type, such as `RSA 2048` or `EC P-256`: it must suit
    /// `spec.saml.signatureAlgorithm` (RSA keys for rsa-*, EC keys for ecdsa-*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_values_are_trimmed_and_blank_ones_unset() {
        let mut spec: IdentityProviderSpec = serde_json::from_value(serde_json::json!({
            "idp": {
                "ssoUrl": "https://example.okta.com/app/x/sso/saml \n",
                "entityId": "  http://www.okta.com/exk1\n",
            },
            "serviceProviderEntityId": " urn:sp ",
            "allowedRedirects": [" https://app.example.com/ "],
            "attributeMapping": { "email": " mail ", "identity": "   " },
            "session": { "cookieDomain": ".example.com\t" },
        }))
        .unwrap();
        spec = spec.trimmed();
        assert_eq!(
            spec.idp.sso_url.as_deref(),
            Some("https://example.okta.com/app/x/sso/saml")
        );
        assert_eq!(
            spec.idp.entity_id.as_deref(),
            Some("http://www.okta.com/exk1")
        );
        assert_eq!(spec.service_provider_entity_id.as_deref(), Some("urn:sp"));
        assert_eq!(spec.allowed_redirects, ["https://app.example.com/"]);
        assert_eq!(spec.attribute_mapping.email, "mail");
        assert_eq!(spec.attribute_mapping.identity, None);
        assert_eq!(spec.session.cookie_domain.as_deref(), Some(".example.com"));
        assert_eq!(spec.trimmed(), spec, "trimming twice changes nothing");
    }
}

/// The OpenID Provider of one IdentityProvider (`/oidc/NAMESPACE/NAME`).
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcSettings {
    /// The algorithm ID and access tokens are signed with: `RS256` (what every relying
    /// party accepts) or `ES256`. Changing it brings a new key at once.
    #[serde(default)]
    pub signing_algorithm: SigningAlgorithm,
    /// How often a new signing key is made, as a duration such as `720h` (at least `1h`). The
    /// new key is published before it signs; the old one stays published until the tokens it
    /// signed have expired.
    #[serde(default = "default_key_rotation")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("oidc.keyRotation must be at least 1h"))]
    pub key_rotation: Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            signing_algorithm: SigningAlgorithm::default(),
            key_rotation: default_key_rotation(),
        }
    }
}

fn default_key_rotation() -> Duration {
    Duration::of("720h")
}

/// A JWS algorithm of the OpenID Provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, on a 2048-bit RSA key.
    #[default]
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}
