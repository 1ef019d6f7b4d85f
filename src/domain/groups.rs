//! Groups as the identity store keeps them and as SCIM and sign-in speak of them.

use jiff::Timestamp;

/// A group as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Server-assigned identifier.
    pub id: String,
    /// `displayName`, exactly as sent.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Other attributes.
    pub resource: serde_json::Value,
    /// Created through SCIM (true) or from SAML group sync (false).
    pub scim_managed: bool,
    /// Member user IDs, sorted.
    pub members: Vec<String>,
    /// Incremented on every change (the ETag).
    pub version: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub last_modified: Timestamp,
}

/// The fields of a group to create or replace.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInput {
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Other attributes.
    pub resource: serde_json::Value,
    /// Whether SCIM manages the group.
    pub scim_managed: bool,
}
