//! Users as the identity store keeps them and as SCIM and sign-in speak of them.

use jiff::Timestamp;

/// A user as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Server-assigned identifier.
    pub id: String,
    /// `userName`, exactly as sent.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active`.
    pub active: bool,
    /// The SCIM resource's other attributes, exactly as received.
    pub resource: serde_json::Value,
    /// Created through SCIM (true) or just in time at sign-in (false).
    pub scim_managed: bool,
    /// Incremented on every change (the ETag).
    pub version: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub last_modified: Timestamp,
}

/// The fields of a user to create or replace.
#[derive(Clone, Debug, PartialEq)]
pub struct UserInput {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active`.
    pub active: bool,
    /// Other attributes.
    pub resource: serde_json::Value,
    /// Whether SCIM manages the user.
    pub scim_managed: bool,
}
