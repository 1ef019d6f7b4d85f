//! The versioned JSON document a compiled configuration is published as.
//!
//! Controller and server are upgraded one after the other, so for a while one reads what the
//! other release wrote. The document names its [`FORMAT_VERSION`]; the server reads the
//! versions it knows and refuses any other, loudly, rather than serve a tenant from a
//! document it misreads.
//!
//! Versions:
//! - 1 (no `formatVersion`): written by releases before versions existed. It holds the CRD's
//!   own settings, as written: durations not bounded. Read through [`from_v1`].
//! - 2: the settings the server applies, resolved and bounded by the controller. Names and
//!   duration text (`1h30m`) are those of version 1, so that a server of the release before,
//!   which ignores `formatVersion`, still reads it correctly during a rolling upgrade.

use serde::{Deserialize, Serialize};

use super::{CompiledIdentityProvider, LARGEST_CLOCK_SKEW, session_duration};

/// The version of the document this release writes.
pub const FORMAT_VERSION: u32 = 2;
/// The version of documents written before `formatVersion` existed.
const UNVERSIONED: u32 = 1;

/// Why a compiled configuration is not read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Written by another release in a format this one does not know.
    #[error(
        "written in format version {found}, which this release does not know (it reads versions 1 to {known}): upgrade the server to the controller's release"
    )]
    UnknownVersion {
        /// The document's version.
        found: u32,
        /// The newest version this release reads.
        known: u32,
    },
    /// Not a compiled configuration of a known version.
    #[error("does not parse: {0}")]
    Invalid(#[from] serde_json::Error),
}

impl FormatError {
    /// A stable label for metrics: `unknownFormatVersion` or `invalid`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnknownVersion { .. } => "unknownFormatVersion",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// The document with its version, as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    format_version: u32,
    #[serde(flatten)]
    config: &'a CompiledIdentityProvider,
}

/// Only the version of a document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    format_version: Option<u32>,
}

/// `config` as the JSON document the controller publishes, in [`FORMAT_VERSION`].
pub fn to_json(config: &CompiledIdentityProvider) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Document {
        format_version: FORMAT_VERSION,
        config,
    })
}

/// Reads a published document of any version this release knows.
pub fn parse(json: &[u8]) -> Result<CompiledIdentityProvider, FormatError> {
    let version = serde_json::from_slice::<Header>(json)?
        .format_version
        .unwrap_or(UNVERSIONED);
    match version {
        UNVERSIONED => Ok(from_v1(serde_json::from_slice(json)?)),
        FORMAT_VERSION => Ok(serde_json::from_slice(json)?),
        found => Err(FormatError::UnknownVersion {
            found,
            known: FORMAT_VERSION,
        }),
    }
}

/// A version 1 document, read with the version 2 types, made what the controller now
/// compiles. Its settings have the same names and forms (it also holds some the server does
/// not use, which are ignored), but its durations were never bounded: bound them as
/// [`super::CompiledSaml::new`] and [`super::CompiledSession::new`] do.
fn from_v1(mut config: CompiledIdentityProvider) -> CompiledIdentityProvider {
    config.saml.clock_skew = config.saml.clock_skew.min(LARGEST_CLOCK_SKEW);
    config.session.duration = session_duration(config.session.duration);
    config
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::identity_provider::{AssertionEncryption, ProvisioningMode};

    /// A document as the release before format versions wrote it: the CRD's settings copied
    /// as they are, every field present.
    fn v1() -> Value {
        json!({
            "namespace": "ns", "name": "okta", "uid": "uid-1", "generation": 3, "provider": "okta",
            "serviceProvider": { "entityId": "e", "metadataUrl": "m", "acsUrl": "https://sso/saml/ns/okta/acs", "loginUrl": "l",
                "current": { "certificatePem": "C", "privateKeyPem": "K" }, "next": null, "previous": null },
            "idp": { "entityId": "i", "ssoUrl": "https://idp/sso", "certificates": ["c"], "metadataUrl": null, "metadataFetchedAt": null },
            "allowIdpInitiated": true, "defaultRelayState": "/home", "allowedRedirects": ["https://app.example.com/"],
            "saml": { "signAuthnRequests": true, "wantAssertionsSigned": false, "forceAuthn": true,
                "requestedAuthnContext": ["urn:ctx"], "requestedAuthnContextComparison": "minimum",
                "nameIdFormat": "persistent", "signatureAlgorithm": "rsa-sha512", "digestAlgorithm": "sha512",
                "allowSha1": false, "assertionEncryption": "required", "allowCbcEncryption": true,
                "clockSkew": "1m30s" },
            "attributeMapping": { "email": "mail", "firstName": "gn", "lastName": "sn", "identity": "uid", "groups": "memberOf" },
            "users": { "provisioning": "justInTime", "allowedEmailDomains": ["example.com"], "defaultGroups": ["staff"],
                "syncGroupsFromSaml": true, "linkByEmail": true },
            "session": { "duration": "1h30m", "extendWhenUsed": true, "cookieDomain": ".example.com", "singleLogout": false },
            "scimBaseUrl": "https://sso/scim/v2/ns/okta",
            "scimTokens": [{ "scimToken": "t", "tokenId": "abc", "sha256": "abcdef", "notAfter": null }]
        })
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn a_document_of_the_release_before_versions_reads_with_every_setting() {
        let c = parse(&bytes(&v1())).unwrap();
        assert_eq!(c.generation, 3);
        assert!(c.saml.sign_authn_requests && !c.saml.want_assertions_signed);
        assert_eq!(c.saml.assertion_encryption, AssertionEncryption::Required);
        assert_eq!(c.saml.clock_skew, SignedDuration::from_secs(90));
        assert_eq!(c.attribute_mapping.groups, "memberOf");
        assert_eq!(c.attribute_mapping.identity.as_deref(), Some("uid"));
        assert_eq!(c.users.provisioning, ProvisioningMode::JustInTime);
        assert_eq!(c.users.default_groups, ["staff"]);
        assert_eq!(c.session.duration, SignedDuration::from_mins(90));
        assert!(c.session.extend_when_used && !c.session.single_logout);
        assert_eq!(c.scim_tokens[0].sha256, "abcdef");
    }

    #[test]
    fn a_document_of_the_release_before_versions_is_bounded_like_a_compiled_one() {
        let mut v = v1();
        v["saml"]["clockSkew"] = json!("1h");
        v["session"]["duration"] = json!("1000h");
        let c = parse(&bytes(&v)).unwrap();
        assert_eq!(c.saml.clock_skew, LARGEST_CLOCK_SKEW);
        assert_eq!(c.session.duration, crate::session::LONGEST_SESSION);
        v["session"]["duration"] = json!("1s");
        let c = parse(&bytes(&v)).unwrap();
        assert_eq!(c.session.duration, super::super::SHORTEST_SESSION);
    }

    #[test]
    fn a_written_document_names_its_version_and_reads_back_the_same() {
        let c = parse(&bytes(&v1())).unwrap();
        let written: Value = serde_json::from_slice(&to_json(&c).unwrap()).unwrap();
        assert_eq!(written["formatVersion"], FORMAT_VERSION);
        assert_eq!(written["session"]["duration"], "1h30m");
        assert_eq!(written["saml"]["clockSkew"], "1m30s");
        assert_eq!(parse(&bytes(&written)).unwrap(), c);
    }

    #[test]
    fn a_written_document_reads_with_the_settings_of_the_release_before() {
        use crate::api::identity_provider::{
            AttributeMapping, SamlSettings, SessionSettings, UserSettings,
        };
        let c = parse(&bytes(&v1())).unwrap();
        let written: Value = serde_json::from_slice(&to_json(&c).unwrap()).unwrap();
        // The release before read these parts as the CRD's settings, durations with
        // `parse_duration`, and ignored `formatVersion`.
        let saml: SamlSettings = serde_json::from_value(written["saml"].clone()).unwrap();
        assert_eq!(saml.clock_skew.as_str(), "1m30s");
        assert_eq!(saml.assertion_encryption, c.saml.assertion_encryption);
        assert!(saml.sign_authn_requests && !saml.want_assertions_signed);
        let session: SessionSettings = serde_json::from_value(written["session"].clone()).unwrap();
        assert_eq!(
            crate::api::parse_duration(session.duration.as_str()),
            Some(c.session.duration)
        );
        assert!(!session.single_logout);
        let users: UserSettings = serde_json::from_value(written["users"].clone()).unwrap();
        assert_eq!(users.default_groups, c.users.default_groups);
        let mapping: AttributeMapping =
            serde_json::from_value(written["attributeMapping"].clone()).unwrap();
        assert_eq!(mapping.groups, c.attribute_mapping.groups);
    }

    #[test]
    fn a_document_of_an_unknown_version_is_refused_naming_both_versions() {
        let mut written: Value =
            serde_json::from_slice(&to_json(&parse(&bytes(&v1())).unwrap()).unwrap()).unwrap();
        for unknown in [0, FORMAT_VERSION + 1, 99] {
            written["formatVersion"] = json!(unknown);
            let e = parse(&bytes(&written)).unwrap_err();
            assert!(
                matches!(e, FormatError::UnknownVersion { found, known } if found == unknown && known == FORMAT_VERSION),
                "{e:?}"
            );
            assert!(e.to_string().contains(&format!("version {unknown}")), "{e}");
            assert_eq!(e.metric_label(), "unknownFormatVersion");
        }
    }

    #[test]
    fn a_document_that_is_not_a_configuration_is_refused() {
        for bad in [
            json!("x"),
            json!({ "formatVersion": "2" }),
            json!({ "formatVersion": 2 }),
        ] {
            let e = parse(&bytes(&bad)).unwrap_err();
            assert_eq!(e.metric_label(), "invalid", "{bad}");
        }
    }
}
