//! Condition types and reasons reported in `status.conditions`, and the helper that keeps
//! `lastTransitionTime` stable while a condition's status does not change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Summary condition: the resource is fully working. Argo CD and
/// `kubectl wait --for=condition=Ready` read it.
pub const READY: &str = "Ready";
/// IdentityProvider: the service-provider signing/encryption key pair exists and is valid.
pub const SERVICE_PROVIDER_KEYS_READY: &str = "ServiceProviderKeysReady";
/// IdentityProvider: the IdP side (metadata URL or explicit fields) is resolved.
pub const IDP_METADATA_RESOLVED: &str = "IdpMetadataResolved";
/// IdentityProvider: at least one IdP signing certificate is valid now.
pub const CERTIFICATES_VALID: &str = "CertificatesValid";
/// IdentityProvider: every IdP signing certificate expires within 30 days.
pub const CERTIFICATES_EXPIRING_SOON: &str = "CertificatesExpiringSoon";
/// IdentityProvider: the compiled runtime configuration the server uses is up to date.
pub const CONFIG_PUBLISHED: &str = "ConfigPublished";
/// IdentityProvider (a warning while True): `saml.allowCbcEncryption` accepts AES-CBC encrypted
/// assertions, which are not authenticated.
pub const CBC_ENCRYPTION_ALLOWED: &str = "CbcEncryptionAllowed";
/// ScimToken: the token has passed its `expiresAt` and no longer works.
pub const EXPIRED: &str = "Expired";

/// Condition reasons (CamelCase), shared by both kinds.
pub mod reason {
    /// Everything is in order.
    pub const READY: &str = "Ready";
    /// `spec.disabled` is true.
    pub const DISABLED: &str = "Disabled";
    /// The spec asks for something that would fail open or cannot work.
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
    /// Keys were generated or loaded.
    pub const KEYS_READY: &str = "KeysReady";
    /// The next service-provider certificate is published ahead of the switch.
    pub const NEXT_CERTIFICATE_PUBLISHED: &str = "NextCertificatePublished";
    /// A generated Secret's name is taken by a Secret the operator does not own.
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// A generated Secret's name is still taken by the Secret of a deleted resource of the same
    /// name, which Kubernetes' garbage collector is about to remove; new keys or a new token
    /// follow, never the deleted resource's.
    pub const WAITING_FOR_GARBAGE_COLLECTION: &str = "WaitingForGarbageCollection";
    /// The IdP's explicit fields are used (no metadata URL).
    pub const EXPLICIT_CONFIGURATION: &str = "ExplicitConfiguration";
    /// The metadata URL was fetched and parsed.
    pub const METADATA_FETCHED: &str = "MetadataFetched";
    /// The metadata URL could not be fetched or parsed; the last good metadata is kept.
    pub const METADATA_FETCH_FAILED: &str = "MetadataFetchFailed";
    /// The metadata URL has never been fetched successfully.
    pub const METADATA_UNAVAILABLE: &str = "MetadataUnavailable";
    /// The metadata URL points to a refused address or scheme.
    pub const METADATA_URL_REFUSED: &str = "MetadataUrlRefused";
    /// The metadata lacks something required (entity ID, SSO URL, signing certificate).
    pub const INVALID_METADATA: &str = "InvalidMetadata";
    /// Certificates are valid.
    pub const CERTIFICATES_VALID: &str = "CertificatesValid";
    /// No signing certificate is configured.
    pub const NO_CERTIFICATE: &str = "NoCertificate";
    /// A certificate could not be parsed, or its key cannot verify the configured signature
    /// algorithm.
    pub const CERTIFICATE_INVALID: &str = "CertificateInvalid";
    /// Every certificate is past its end of validity.
    pub const CERTIFICATE_EXPIRED: &str = "CertificateExpired";
    /// No certificate is valid yet.
    pub const CERTIFICATE_NOT_YET_VALID: &str = "CertificateNotYetValid";
    /// A referenced Secret or ConfigMap (or key in it) does not exist.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    /// Certificates expire within 30 days.
    pub const EXPIRES_SOON: &str = "ExpiresSoon";
    /// Certificates are valid for more than 30 days.
    pub const NOT_EXPIRING_SOON: &str = "NotExpiringSoon";
    /// The compiled configuration was written.
    pub const PUBLISHED: &str = "Published";
    /// The last good compiled configuration keeps serving while the spec is invalid.
    pub const LAST_GOOD_CONFIG_SERVING: &str = "LastGoodConfigServing";
    /// Nothing is served for this IdentityProvider.
    pub const NOT_SERVING: &str = "NotServing";
    /// `saml.allowCbcEncryption` is on: AES-CBC encrypted assertions are accepted.
    pub const CBC_ENCRYPTION_ALLOWED: &str = "CbcEncryptionAllowed";
    /// Only AES-GCM encrypted assertions are accepted.
    pub const GCM_ONLY: &str = "GcmOnly";
    /// ScimToken: the named IdentityProvider does not exist.
    pub const IDENTITY_PROVIDER_NOT_FOUND: &str = "IdentityProviderNotFound";
    /// ScimToken: the named IdentityProvider is disabled.
    pub const IDENTITY_PROVIDER_DISABLED: &str = "IdentityProviderDisabled";
    /// ScimToken: the token is past `expiresAt`.
    pub const EXPIRED: &str = "Expired";
    /// ScimToken: the token is not expired.
    pub const NOT_EXPIRED: &str = "NotExpired";
    /// ScimToken: the token from `tokenSecretRef` is missing or too short.
    pub const TOKEN_INVALID: &str = "TokenInvalid";
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
