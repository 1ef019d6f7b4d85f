//! The `ScimToken` custom resource: a bearer token an IdP uses to push users and groups.
// The lint misreads repeated `type_ = ...` keys of separate `printcolumn(...)` entries.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretKeyRef;
use super::duration::Duration;

/// A bearer token for one IdentityProvider's SCIM 2.0 endpoint. The operator writes the token
/// and the SCIM base URL into a Secret: the two values Okta's Provisioning > Integration
/// (SCIM connector base URL; the token under Authentication Mode HTTP Header) and Entra's provisioning page (Secret Token, Tenant
/// URL) ask for.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sso-operator.dev",
    version = "v1alpha1",
    kind = "ScimToken",
    namespaced,
    status = "ScimTokenStatus",
    shortname = "scimtok",
    category = "sso",
    doc = "ScimToken is a bearer token for one IdentityProvider's SCIM 2.0 endpoint. The operator writes the token and the SCIM base URL into a Secret: the values Okta's Provisioning > Integration (SCIM connector base URL, HTTP Header token) and Entra's provisioning page ask for.",
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
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    // A future time in a `date` column reads `<invalid>` in kubectl (it shows ages): the
    // time is shown as written, typed by its format.
    printcolumn(
        name = "Expires",
        type_ = "string",
        format = "date-time",
        json_path = ".status.expiresAt"
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
#[x_kube(validation = Rule::new("!has(self.tokenSecretRef) || !has(self.rotation)").message("rotation cannot be combined with tokenSecretRef: a token you bring is rotated by changing its Secret. Remove one of the two"))]
#[serde(rename_all = "camelCase")]
pub struct ScimTokenSpec {
    /// The IdentityProvider, in the same namespace, whose SCIM endpoint this token opens.
    /// Cannot be changed after creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("identityProviderRef cannot be changed: create a new ScimToken for the other IdentityProvider"))]
    pub identity_provider_ref: IdentityProviderRef,

    /// Free text shown to admins, for example which IdP tenant uses the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// When the token stops working, as an RFC 3339 time. Empty: it does not expire (unless
    /// rotated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// Issues a new token on a schedule. A new token is also issued whenever the annotation
    /// `sso-operator.dev/rotate` changes value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,

    /// Name of the Secret the operator writes (keys `token` and `scimBaseUrl`). Empty:
    /// `<name>-scim-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Uses a token you provide (for example from sealed-secrets) instead of generating one.
    /// It must be at least 32 characters long, and the Secret must allow this ScimToken with
    /// the annotation `sso-operator.dev/scim-token: <this ScimToken's name>`. Secrets the
    /// operator manages are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
}

/// A reference to an IdentityProvider in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderRef {
    /// Name of the IdentityProvider.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Scheduled token rotation.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("!has(self.every) || duration(self.overlap) < duration(self.every)").message("rotation.overlap must be shorter than rotation.every"))]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// How often a new token is issued, as a duration such as `720h` (at least `1m`). Empty:
    /// only when the `sso-operator.dev/rotate` annotation changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("rotation.every must be at least 1m"))]
    pub every: Option<Duration>,
    /// How long the previous token keeps working after a new one is issued, so the IdP can be
    /// updated without downtime, as a duration such as `24h`.
    #[serde(default = "default_overlap")]
    pub overlap: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            every: None,
            overlap: default_overlap(),
        }
    }
}

fn default_overlap() -> Duration {
    Duration::of("1h")
}

/// Observed state of a ScimToken, written by the operator: a report rebuilt from the spec and
/// the token's Secret, never read back. It never holds the token or its hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimTokenStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state, one entry per type: `Ready` (the summary) and `Expired` (True once the
    /// token has stopped working). The reference (docs/reference.md, Conditions) lists every
    /// reason.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The Secret holding the current token and the SCIM base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The SCIM base URL the token works with (Okta: SCIM connector base URL; Entra: Tenant
    /// URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_base_url: Option<String>,
    /// A non-secret identifier of the current token (its prefix), to match it in audit logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// When the current token stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// When the current token was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// Identifier of the previous token while it still works after a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token_id: Option<String>,
    /// When the previous token stops working (the end of the rotation overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token_expires_at: Option<Time>,
}
