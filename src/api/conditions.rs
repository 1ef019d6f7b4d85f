//! Condition types and reasons reported in `status.conditions`, and the helper that keeps
//! `lastTransitionTime` stable while a condition's status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// One documented condition type or reason: its value, the resources that report it and what
/// it means (the constant's doc comment). `docs/reference.md` lists them from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Documented {
    /// The Rust constant's name.
    pub constant: &'static str,
    /// The CamelCase value written to `type` or `reason`.
    pub value: &'static str,
    /// The kinds whose `status.conditions` can carry it.
    pub kinds: &'static [&'static str],
    /// What it means, from the constant's doc comment.
    pub doc: &'static str,
}

/// Declares constants with their doc comments, and a list of all of them, so that a constant
/// can never be missing from the generated reference.
macro_rules! documented {
    ($all:ident; $( $(#[doc = $doc:literal])+ $name:ident = $value:literal for [$($kind:ident),+]; )*) => {
        $( $(#[doc = $doc])+ pub const $name: &str = $value; )*
        /// Every constant of this list, in declaration order.
        pub const $all: &[Documented] = &[$(Documented {
            constant: stringify!($name),
            value: $value,
            kinds: &[$(stringify!($kind)),+],
            doc: concat!($($doc),+),
        }),*];
    };
}

documented! {
    TYPES;
    /// Summary condition: the resource is fully working. Argo CD and
    /// `kubectl wait --for=condition=Ready` read it.
    READY = "Ready" for [IdentityProvider, ScimToken, OidcClient];
    /// The service-provider signing/encryption key pair exists and is valid.
    SERVICE_PROVIDER_KEYS_READY = "ServiceProviderKeysReady" for [IdentityProvider];
    /// The IdP side (metadata URL or explicit fields) is resolved.
    IDP_METADATA_RESOLVED = "IdpMetadataResolved" for [IdentityProvider];
    /// At least one IdP signing certificate is valid now.
    CERTIFICATES_VALID = "CertificatesValid" for [IdentityProvider];
    /// Every IdP signing certificate expires within 30 days.
    CERTIFICATES_EXPIRING_SOON = "CertificatesExpiringSoon" for [IdentityProvider];
    /// The compiled runtime configuration the server uses is up to date.
    CONFIG_PUBLISHED = "ConfigPublished" for [IdentityProvider];
    /// A warning while True: `saml.allowCbcEncryption` accepts AES-CBC encrypted assertions,
    /// which are not authenticated.
    CBC_ENCRYPTION_ALLOWED = "CbcEncryptionAllowed" for [IdentityProvider];
    /// The token has passed its `expiresAt` and no longer works.
    EXPIRED = "Expired" for [ScimToken];
}

/// Condition reasons (CamelCase) of every kind.
pub mod reason {
    use super::Documented;

    documented! {
        ALL;
        /// Everything is in order.
        READY = "Ready" for [IdentityProvider, ScimToken];
        /// `spec.disabled` is true.
        DISABLED = "Disabled" for [IdentityProvider];
        /// The spec asks for something that would fail open or cannot work.
        INVALID_CONFIGURATION = "InvalidConfiguration" for [IdentityProvider];
        /// Keys were generated or loaded.
        KEYS_READY = "KeysReady" for [IdentityProvider];
        /// The next service-provider certificate is published ahead of the switch.
        NEXT_CERTIFICATE_PUBLISHED = "NextCertificatePublished" for [IdentityProvider];
        /// A generated Secret's name is taken by a Secret the operator does not own.
        SECRET_CONFLICT = "SecretConflict" for [IdentityProvider, ScimToken, OidcClient];
        /// A generated Secret's name is still taken by the Secret of a deleted resource of the same
        /// name, which Kubernetes' garbage collector is about to remove; new keys or a new token
        /// follow, never the deleted resource's.
        WAITING_FOR_GARBAGE_COLLECTION = "WaitingForGarbageCollection" for [IdentityProvider, ScimToken, OidcClient];
        /// The IdP's explicit fields are used (no metadata URL).
        EXPLICIT_CONFIGURATION = "ExplicitConfiguration" for [IdentityProvider];
        /// The metadata URL was fetched and parsed.
        METADATA_FETCHED = "MetadataFetched" for [IdentityProvider];
        /// The metadata URL could not be fetched or parsed; the last good metadata is kept.
        METADATA_FETCH_FAILED = "MetadataFetchFailed" for [IdentityProvider];
        /// The metadata URL has never been fetched successfully.
        METADATA_UNAVAILABLE = "MetadataUnavailable" for [IdentityProvider];
        /// The metadata URL points to a refused address or scheme.
        METADATA_URL_REFUSED = "MetadataUrlRefused" for [IdentityProvider];
        /// The metadata lacks something required (entity ID, SSO URL, signing certificate).
        INVALID_METADATA = "InvalidMetadata" for [IdentityProvider];
        /// Certificates are valid.
        CERTIFICATES_VALID = "CertificatesValid" for [IdentityProvider];
        /// No signing certificate is configured.
        NO_CERTIFICATE = "NoCertificate" for [IdentityProvider];
        /// A certificate could not be parsed, or its key cannot verify the configured signature
        /// algorithm.
        CERTIFICATE_INVALID = "CertificateInvalid" for [IdentityProvider];
        /// Every certificate is past its end of validity.
        CERTIFICATE_EXPIRED = "CertificateExpired" for [IdentityProvider];
        /// No certificate is valid yet.
        CERTIFICATE_NOT_YET_VALID = "CertificateNotYetValid" for [IdentityProvider];
        /// A referenced Secret or ConfigMap (or key in it) does not exist.
        REFERENCE_NOT_FOUND = "ReferenceNotFound" for [IdentityProvider];
        /// Certificates expire within 30 days.
        EXPIRES_SOON = "ExpiresSoon" for [IdentityProvider];
        /// Certificates are valid for more than 30 days.
        NOT_EXPIRING_SOON = "NotExpiringSoon" for [IdentityProvider];
        /// The compiled configuration was written.
        PUBLISHED = "Published" for [IdentityProvider];
        /// The last good compiled configuration keeps serving while the spec is invalid.
        LAST_GOOD_CONFIG_SERVING = "LastGoodConfigServing" for [IdentityProvider];
        /// Nothing is served for this IdentityProvider.
        NOT_SERVING = "NotServing" for [IdentityProvider];
        /// `saml.allowCbcEncryption` is on: AES-CBC encrypted assertions are accepted.
        CBC_ENCRYPTION_ALLOWED = "CbcEncryptionAllowed" for [IdentityProvider];
        /// Only AES-GCM encrypted assertions are accepted.
        GCM_ONLY = "GcmOnly" for [IdentityProvider];
        /// The spec still holds an example's `REPLACE-ME` placeholder (in an IdP URL, the
        /// Issuer or the certificate's subject): the message names the fields to fill in from
        /// the IdP console.
        PLACEHOLDER = "Placeholder" for [IdentityProvider];
        /// The named IdentityProvider does not exist.
        IDENTITY_PROVIDER_NOT_FOUND = "IdentityProviderNotFound" for [ScimToken, OidcClient];
        /// The named IdentityProvider is disabled.
        IDENTITY_PROVIDER_DISABLED = "IdentityProviderDisabled" for [ScimToken, OidcClient];
        /// The token is past `expiresAt`.
        EXPIRED = "Expired" for [ScimToken];
        /// The token is not expired.
        NOT_EXPIRED = "NotExpired" for [ScimToken];
        /// The token from `tokenSecretRef` is missing or too short.
        TOKEN_INVALID = "TokenInvalid" for [ScimToken];
        /// The Secret of `tokenSecretRef` does not carry the annotation
        /// `sso-operator.dev/scim-token` naming this ScimToken, or is managed by sso-operator.
        TOKEN_SECRET_REFUSED = "TokenSecretRefused" for [ScimToken];
        /// The client secret (or, for a public client, the client ID and issuer URL) is in
        /// the OidcClient's Secret, and the IdentityProvider serves the client.
        ISSUED = "Issued" for [OidcClient];
        /// Another OidcClient of the same IdentityProvider, created earlier, has the same
        /// client ID: set `spec.clientId` to another value, or delete one of the two.
        CLIENT_ID_CONFLICT = "ClientIdConflict" for [OidcClient];
    }
}

/// A condition as the reconcilers compute it, before times and generations are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, one of the constants of this module.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// CamelCase reason from [`reason`].
    pub reason: &'static str,
    /// Human-readable message saying what to do next.
    pub message: String,
}

impl Desired {
    /// A condition with status True.
    pub fn yes(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }
    /// A condition with status False.
    pub fn no(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

/// Builds the full condition list: `lastTransitionTime` is kept from `previous` when the
/// status of a condition did not change, and set to `now` otherwise.
pub fn merge(
    previous: &[Condition],
    desired: &[Desired],
    generation: i64,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    // When a type appears more than once, the last one wins: each type appears once in status.
    let unique: Vec<&Desired> = desired
        .iter()
        .enumerate()
        .filter(|(i, d)| !desired[i + 1..].iter().any(|later| later.type_ == d.type_))
        .map(|(_, d)| d)
        .collect();
    unique
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_owned(),
                status: status.to_owned(),
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                observed_generation: Some(generation),
                last_transition_time,
            }
        })
        .collect()
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names after `prefix` (such as `reason::`) in `source`.
    fn used(source: &str, prefix: &str) -> std::collections::BTreeSet<String> {
        source
            .match_indices(prefix)
            .map(|(i, _)| {
                source[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect::<String>()
            })
            .filter(|name| !name.is_empty())
            .collect()
    }

    #[test]
    fn the_documented_lists_say_which_kind_sets_what() {
        let sources = [
            (
                "IdentityProvider",
                concat!(
                    include_str!("../controller/identity_provider.rs"),
                    include_str!("../controller/identity_provider/policy.rs")
                ),
            ),
            ("ScimToken", include_str!("../controller/scim_token.rs")),
            ("OidcClient", include_str!("../controller/oidc_client.rs")),
        ];
        for (list, prefix) in [(TYPES, "cond::"), (reason::ALL, "reason::")] {
            for d in list {
                assert!(!d.doc.trim().is_empty(), "{} has no description", d.value);
                let name = d.constant.to_owned();
                for (kind, source) in sources {
                    assert_eq!(
                        used(source, prefix).contains(&name),
                        d.kinds.contains(&kind),
                        "{prefix}{name}: the `for [...]` list must name exactly the kinds whose controller sets it ({kind})"
                    );
                }
            }
            for (kind, source) in sources {
                for name in used(source, prefix) {
                    assert!(
                        list.iter().any(|d| d.constant == name),
                        "{kind} sets {prefix}{name}, which is not documented"
                    );
                }
            }
        }
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let first = merge(&[], &[Desired::yes(READY, reason::READY, "ok")], 1, t0);
        let same = merge(
            &first,
            &[Desired::yes(READY, reason::READY, "still ok")],
            2,
            t1,
        );
        assert_eq!(same[0].last_transition_time, Time(t0));
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, &[Desired::no(READY, reason::DISABLED, "off")], 2, t1);
        assert_eq!(flipped[0].last_transition_time, Time(t1));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn a_type_listed_twice_appears_once_with_the_last_value() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let desired = [
            Desired::yes(READY, reason::READY, "first"),
            Desired::yes(EXPIRED, reason::NOT_EXPIRED, "x"),
            Desired::no(READY, reason::EXPIRED, "last"),
        ];
        let merged = merge(&[], &desired, 1, now);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged.iter().find(|c| c.type_ == READY).unwrap().message,
            "last"
        );
    }
}
