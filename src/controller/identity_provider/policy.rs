//! The IdentityProvider reconciler's decisions, without I/O.
//!
//! The reconciler in the parent module reads the facts (the IdentityProvider, the text of the
//! certificates it references, the fetched metadata or why it could not be had, the
//! service-provider keys, the last good compiled configuration and `now`); the small checks
//! here turn them into conditions, Warning events, whether to compile, and when to look
//! again. The reconciler then writes what was decided.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{self as cond, Desired, reason};
use crate::api::identity_provider::{
    CertificateInfo, DigestAlgorithm, IdentityProviderSpec, IdpSettings, Provider, SamlSettings,
    ServiceProviderUrls, SignatureAlgorithm, SingleLogoutBinding,
};
use crate::api::{IdentityProvider, IdentityProviderStatus};
use crate::config::{CompiledIdentityProvider, CompiledIdp, SingleLogoutService, SloBinding, Urls};
use crate::controller::certs::{self, CertificateFacts};
use crate::controller::metadata::{self, MetadataError};
use crate::controller::sp_keys::SpKeySet;

/// Warn this long before the last IdP certificate expires.
const EXPIRY_WARNING: SignedDuration = SignedDuration::from_hours(24 * 30);
/// Retry a failed metadata fetch after this long (or the refresh interval, if shorter).
const METADATA_RETRY: SignedDuration = SignedDuration::from_secs(60);

/// How soon a Secret left by a deleted resource of the same name is looked at again, should
/// its removal by the garbage collector not be seen through the Secret watch.
pub(crate) const GARBAGE_COLLECTION_RECHECK: SignedDuration = SignedDuration::from_secs(2);

/// What one reconciliation has decided so far: the conditions in the order they are reported
/// (for a type listed twice, the later one wins), the Warning events to emit, and the earliest
/// time at which something changes by itself.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) conditions: Vec<Desired>,
    pub(super) events: Vec<Warning>,
    pub(super) requeue_at: Option<Timestamp>,
}

impl Outcome {
    /// Looks again at `at`, unless something asks for an earlier time.
    pub(super) fn requeue(&mut self, at: Timestamp) {
        self.requeue_at = Some(self.requeue_at.map_or(at, |r| r.min(at)));
    }

    /// The condition of type `type_` decided last, if any.
    #[cfg(test)]
    fn condition(&self, type_: &str) -> Option<&Desired> {
        self.conditions.iter().rev().find(|c| c.type_ == type_)
    }
}

/// A Warning event on the IdentityProvider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Warning {
    pub(super) reason: &'static str,
    pub(super) message: String,
}

/// A failed metadata fetch, remembered until the next attempt so that reconciles in between
/// report it instead of hammering the IdP.
#[derive(Clone, Debug)]
pub struct MetadataFailure {
    url: String,
    retry_at: Timestamp,
    condition: Desired,
}

/// The IdP side as resolved: where sign-in goes and which certificates sign its responses.
pub(super) struct IdpSide {
    pub(super) entity_id: String,
    pub(super) sso_url: String,
    pub(super) single_logout: Option<SingleLogoutService>,
    /// Certificates with where each came from.
    pub(super) certificates: Vec<(String, CertificateFacts)>,
    pub(super) metadata_url: Option<String>,
    pub(super) metadata_fetched_at: Option<Timestamp>,
}

/// A reason the IdentityProvider cannot be served as specified.
#[derive(Clone, Debug)]
pub(super) struct Problem {
    condition: Desired,
    ready_reason: &'static str,
}

impl Problem {
    fn new(condition: Desired) -> Self {
        Problem {
            ready_reason: condition.reason,
            condition,
        }
    }
}

/// Why the service-provider keys cannot be stored, as the ServiceProviderKeysReady condition,
/// and when to look again (the Secret watch also triggers a new look).
pub(super) struct KeysBlocked {
    condition: Desired,
    recheck_at: Option<Timestamp>,
}

/// Why the Secret `secret_name` meant for the keys of IdentityProvider `ns/name` cannot hold
/// them: it belongs to a deleted IdentityProvider of the same name (`left_by_previous`, which
/// the garbage collector is about to remove), or to something else.
pub(super) fn keys_blocked(
    secret_name: &str,
    ns: &str,
    name: &str,
    left_by_previous: bool,
    now: Timestamp,
) -> KeysBlocked {
    if left_by_previous {
        KeysBlocked {
            condition: Desired::no(
                cond::SERVICE_PROVIDER_KEYS_READY,
                reason::WAITING_FOR_GARBAGE_COLLECTION,
                format!(
                    "Secret {secret_name} holds the keys of the deleted IdentityProvider {name} this one replaces; new keys are generated as soon as Kubernetes' garbage collector removes it (the deleted one's keys are never reused). If it stays, delete it: kubectl delete secret {secret_name} -n {ns}"
                ),
            ),
            recheck_at: Some(now + GARBAGE_COLLECTION_RECHECK),
        }
    } else {
        KeysBlocked {
            condition: Desired::no(
                cond::SERVICE_PROVIDER_KEYS_READY,
                reason::SECRET_CONFLICT,
                format!(
                    "Secret {secret_name} already exists and is not managed by this IdentityProvider: delete or rename it so that the service-provider keys can be stored there"
                ),
            ),
            recheck_at: None,
        }
    }
}

/// Reports the service-provider keys (stored, with the time they change next, or blocked) and
/// returns them when they can be served. `renew_before` is the rotation policy's.
pub(super) fn assess_keys(
    keys: Result<(SpKeySet, Timestamp), KeysBlocked>,
    renew_before: SignedDuration,
    out: &mut Outcome,
) -> Option<SpKeySet> {
    match keys {
        Ok((set, next_event)) => {
            out.requeue(next_event);
            out.conditions.push(match &set.next {
                Some(next) => Desired::yes(
                    cond::SERVICE_PROVIDER_KEYS_READY,
                    reason::NEXT_CERTIFICATE_PUBLISHED,
                    format!(
                        "The next service-provider certificate is published in the SP metadata and becomes active after {}; IdPs that read the SP metadata pick it up by themselves. Current certificate valid until {}",
                        next.not_before + renew_before / 2,
                        set.current.not_after
                    ),
                ),
                None => Desired::yes(
                    cond::SERVICE_PROVIDER_KEYS_READY,
                    reason::KEYS_READY,
                    format!(
                        "Service-provider certificate valid until {}, renewed automatically",
                        set.current.not_after
                    ),
                ),
            });
            Some(set)
        }
        Err(blocked) => {
            if let Some(at) = blocked.recheck_at {
                out.requeue(at);
            }
            out.conditions.push(blocked.condition);
            None
        }
    }
}

/// The status fields the reconciler always writes, before anything is assessed.
pub(super) fn initial_status(
    idp: &IdentityProvider,
    urls: &Urls,
    entity_id: &str,
    previous: &IdentityProviderStatus,
) -> IdentityProviderStatus {
    IdentityProviderStatus {
        observed_generation: Some(idp.metadata.generation.unwrap_or(0)),
        conditions: Vec::new(),
        service_provider: Some(ServiceProviderUrls {
            entity_id: entity_id.to_owned(),
            metadata_url: urls.metadata.clone(),
            acs_url: urls.acs.clone(),
            login_url: urls.login.clone(),
            single_logout_url: idp
                .spec
                .session
                .single_logout
                .then(|| urls.single_logout.clone()),
        }),
        scim_base_url: Some(urls.scim_base.clone()),
        certificates: Vec::new(),
        certificate_not_after: None,
        metadata_fetch_time: previous.metadata_fetch_time.clone(),
        // Written by the server under its own field manager; never set here.
        scim: None,
        sign_in: None,
    }
}

/// A disabled IdentityProvider: nothing is served, everything else is kept.
pub(super) fn disabled(out: &mut Outcome) {
    out.conditions.push(Desired::no(
        cond::CONFIG_PUBLISHED,
        reason::NOT_SERVING,
        "Nothing is served while spec.disabled is true",
    ));
    out.conditions.push(Desired::no(
        cond::READY,
        reason::DISABLED,
        "Disabled: sign-in and SCIM are refused. Set spec.disabled: false to serve again",
    ));
}

/// How the IdP console calls the certificate field, for messages.
fn certificate_field(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => "the Signing Certificate from Okta (Sign On > SAML 2.0 > More details)",
        Provider::Entra => "Certificate (Base64) from Entra (SAML Certificates)",
        Provider::Google => {
            "the Certificate from Google Workspace (Google Identity Provider details)"
        }
        Provider::JumpCloud => "the IdP Certificate from JumpCloud",
        Provider::OneLogin => "the X.509 Certificate from OneLogin (SSO tab)",
        Provider::Auth0 => "the Signing Certificate from Auth0",
        Provider::Keycloak => "the realm's RS256 certificate from Keycloak (Realm settings > Keys)",
        Provider::Generic => "the IdP's signing certificate",
    }
}

/// The marker of every placeholder in the examples (IdP URLs, the Issuer, the placeholder
/// certificate's subject), matched without regard to case: an example applied as it is never
/// turns Ready.
const PLACEHOLDER: &str = "replace-me";

fn is_placeholder(value: &str) -> bool {
    value.to_ascii_lowercase().contains(PLACEHOLDER)
}

/// Where a field of `spec.idp` comes from in the IdP console, for messages.
fn console_field(provider: Provider, field: &str) -> String {
    let (sso, entity, metadata, logout) = match provider {
        Provider::Okta => ("Sign on URL", "Issuer", "Metadata URL", "Sign out URL"),
        Provider::Entra => (
            "Login URL",
            "Microsoft Entra Identifier",
            "App Federation Metadata Url",
            "Logout URL",
        ),
        Provider::Google => ("SSO URL", "Entity ID", "metadata URL", "logout URL"),
        Provider::JumpCloud => ("IDP URL", "IdP Entity ID", "metadata URL", "logout URL"),
        Provider::OneLogin => (
            "SAML 2.0 Endpoint (HTTP)",
            "Issuer URL",
            "Issuer URL",
            "SLO Endpoint (HTTP)",
        ),
        Provider::Auth0 => (
            "Identity Provider Login URL",
            "Issuer",
            "Identity Provider Metadata URL (Usage tab)",
            "logout URL",
        ),
        Provider::Keycloak => (
            "realm's SAML endpoint",
            "realm URL",
            "SAML 2.0 Identity Provider Metadata URL (Realm settings > General > Endpoints)",
            "realm's SAML endpoint",
        ),
        Provider::Generic => (
            "single sign-on URL",
            "entity ID",
            "metadata URL",
            "Single Logout URL",
        ),
    };
    let name = match field {
        "ssoUrl" => sso,
        "entityId" => entity,
        "metadataUrl" => metadata,
        _ => logout,
    };
    format!("the {name} from {}", provider_name(provider))
}

/// The IdP's product name, for messages.
fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Okta => "Okta",
        Provider::Entra => "Entra",
        Provider::Google => "Google Workspace",
        Provider::JumpCloud => "JumpCloud",
        Provider::OneLogin => "OneLogin",
        Provider::Auth0 => "Auth0",
        Provider::Keycloak => "Keycloak",
        Provider::Generic => "the IdP",
    }
}

/// The fields of `spec.idp` (and the certificates, by subject) that still hold an example's
/// placeholder, as a problem that names what to paste from the IdP console.
fn placeholder_problem(
    spec: &IdentityProviderSpec,
    certificates: &[(String, CertificateFacts)],
    out: &mut Outcome,
) -> Option<Problem> {
    let idp = &spec.idp;
    let provider = spec.provider;
    let mut fields: Vec<String> = [
        ("metadataUrl", &idp.metadata_url),
        ("ssoUrl", &idp.sso_url),
        ("entityId", &idp.entity_id),
        ("singleLogoutUrl", &idp.single_logout_url),
    ]
    .into_iter()
    .filter(|(_, value)| value.as_deref().is_some_and(is_placeholder))
    .map(|(field, _)| {
        format!(
            "spec.idp.{field} (paste {})",
            console_field(provider, field)
        )
    })
    .collect();
    let urls = !fields.is_empty();
    let url_fields = fields.len();
    for (source, f) in certificates {
        if is_placeholder(&f.subject) {
            fields.push(format!(
                "the certificate {source} (subject {}; paste {})",
                f.subject,
                certificate_field(provider)
            ));
        }
    }
    if fields.is_empty() {
        return None;
    }
    let message = format!(
        "The example's REPLACE-ME placeholders are still in {}. Fill them in from the IdP console; nothing is served until then",
        fields.join(", ")
    );
    // Each condition the placeholders touch says so; the problem itself is the last one.
    let mut types = Vec::new();
    if urls {
        types.push(cond::IDP_METADATA_RESOLVED);
    }
    if fields.len() > url_fields {
        types.push(cond::CERTIFICATES_VALID);
    }
    let last = types.pop().expect("at least one");
    for type_ in types {
        out.conditions
            .push(Desired::no(type_, reason::PLACEHOLDER, message.clone()));
    }
    Some(Problem::new(Desired::no(
        last,
        reason::PLACEHOLDER,
        message,
    )))
}

/// What to change when a certificate's key cannot verify the configured signature algorithm.
fn key_mismatch_message(
    source: &str,
    f: &CertificateFacts,
    algorithm: SignatureAlgorithm,
    field: &str,
) -> String {
    let what = format!(
        "Certificate cannot verify the IdP's signatures: {source} ({}, SHA-256 {}) holds an {} key",
        f.subject, f.sha256_fingerprint, f.key_type
    );
    let configured = certs::algorithm_name(algorithm);
    match f.key_type.suited_algorithm() {
        Some(suited) => {
            let other = if matches!(f.key_type, certs::KeyType::Rsa(_)) {
                "EC"
            } else {
                "RSA"
            };
            format!(
                "{what} but spec.saml.signatureAlgorithm is {configured}: set saml.signatureAlgorithm: {suited}, or paste {field} with an {other} key"
            )
        }
        None => format!(
            "{what}, which SAML signatures cannot use here: paste {field} with an RSA or EC (P-256, P-384, P-521) key"
        ),
    }
}

/// The IdP side as resolved, and the problem that keeps it from being served, if any.
pub(super) struct Resolution {
    pub(super) side: Option<IdpSide>,
    pub(super) problem: Option<Problem>,
}

impl Resolution {
    fn side(side: IdpSide) -> Self {
        Resolution {
            side: Some(side),
            problem: None,
        }
    }

    fn problem(problem: Problem) -> Self {
        Resolution {
            side: None,
            problem: Some(problem),
        }
    }
}

/// What to remember of this attempt to fetch the metadata.
#[derive(Debug)]
pub(super) enum FailureMemory {
    /// No fetch was made: what is remembered stays.
    Keep,
    /// The fetch succeeded: forget any earlier failure.
    Forget,
    /// The fetch failed: report this until the next attempt.
    Remember(MetadataFailure),
}

impl FailureMemory {
    /// Applies this decision to the failures remembered by IdentityProvider key.
    pub(super) fn apply_to(
        self,
        failures: &mut std::collections::HashMap<String, MetadataFailure>,
        key: &str,
    ) {
        match self {
            FailureMemory::Keep => {}
            FailureMemory::Forget => {
                failures.remove(key);
            }
            FailureMemory::Remember(failure) => {
                failures.insert(key.to_owned(), failure);
            }
        }
    }
}

/// What is known about the metadata URL of an IdentityProvider before it is fetched.
pub(super) struct MetadataFacts<'a> {
    url: &'a str,
    interval: SignedDuration,
    /// The last good configuration, when it was compiled from this very URL.
    last_good: Option<&'a CompiledIdentityProvider>,
    /// The spec changed since status was last written: fetch again at once, so that an admin
    /// can force a refresh.
    edited: bool,
    /// The last failed fetch of this URL, if it is remembered.
    failure: Option<MetadataFailure>,
    now: Timestamp,
}

impl<'a> MetadataFacts<'a> {
    /// The facts about `url`, the metadata URL of `idp`, given the last good configuration
    /// and the failure remembered for this IdentityProvider.
    pub(super) fn new(
        idp: &IdentityProvider,
        url: &'a str,
        existing: Option<&'a CompiledIdentityProvider>,
        remembered: Option<MetadataFailure>,
        now: Timestamp,
    ) -> Self {
        MetadataFacts {
            url,
            interval: refresh_interval(&idp.spec.idp),
            last_good: existing.filter(|c| c.idp.metadata_url.as_deref() == Some(url)),
            edited: idp.status.as_ref().and_then(|s| s.observed_generation)
                != idp.metadata.generation,
            failure: remembered.filter(|f| f.url == url),
            now,
        }
    }

    fn fetched_at(&self) -> Option<Timestamp> {
        self.last_good.and_then(|c| c.idp.metadata_fetched_at)
    }

    /// Whether the metadata is to be fetched now.
    fn due(&self) -> bool {
        self.edited
            || match &self.failure {
                // After a failure, wait for the retry time instead of hammering the IdP.
                Some(f) => self.now >= f.retry_at,
                None => self
                    .fetched_at()
                    .is_none_or(|t| self.now >= t + self.interval),
            }
    }
}

/// `spec.idp.metadataRefreshInterval`, at least a minute.
fn refresh_interval(spec: &IdpSettings) -> SignedDuration {
    crate::config::metadata_refresh_interval(spec)
}

/// Whether the reconciler fetches the metadata URL now. An example's placeholder URL names no
/// IdP and is never fetched.
pub(super) fn should_fetch(spec: &IdentityProviderSpec, facts: &MetadataFacts) -> bool {
    placeholder_problem(spec, &[], &mut Outcome::default()).is_none() && facts.due()
}

/// The IdP side from its metadata URL, and what to remember of the fetch. `fetched` is the
/// fetched document, or why it could not be had, when [`should_fetch`] said to fetch;
/// otherwise `None`.
pub(super) fn metadata_side(
    spec: &IdentityProviderSpec,
    facts: MetadataFacts,
    fetched: Option<Result<String, MetadataError>>,
    out: &mut Outcome,
) -> (Resolution, FailureMemory) {
    if let Some(problem) = placeholder_problem(spec, &[], out) {
        return (Resolution::problem(problem), FailureMemory::Keep);
    }
    match fetched {
        Some(fetched) => fetched_side(facts, fetched, out),
        None => (remembered_side(facts, out), FailureMemory::Keep),
    }
}

/// The IdP side while no fetch is due: the last good metadata, and the last failure if any.
fn remembered_side(facts: MetadataFacts, out: &mut Outcome) -> Resolution {
    let url = facts.url;
    if let Some(f) = facts.failure {
        out.requeue(f.retry_at);
        return match facts.last_good {
            Some(good) => {
                out.conditions.push(f.condition);
                Resolution::side(side_from_compiled(&good.idp, url))
            }
            None => Resolution::problem(Problem::new(f.condition)),
        };
    }
    let Some((good, fetched_at)) = facts
        .last_good
        .and_then(|good| Some((good, good.idp.metadata_fetched_at?)))
    else {
        // Not due means fetched before; without that, the side stays unresolved.
        return Resolution {
            side: None,
            problem: None,
        };
    };
    out.requeue(fetched_at + facts.interval);
    out.conditions.push(Desired::yes(
        cond::IDP_METADATA_RESOLVED,
        reason::METADATA_FETCHED,
        format!("Metadata fetched from {url} at {fetched_at}"),
    ));
    Resolution::side(side_from_compiled(&good.idp, url))
}

/// The IdP side from a metadata document fetched at `now`.
fn parse_metadata(xml: &str, url: &str, now: Timestamp) -> Result<IdpSide, MetadataError> {
    let md = metadata::parse(xml)?;
    let mut certificates = Vec::new();
    for (i, c) in md.certificates.iter().enumerate() {
        let facts = certs::parse_certificate(c).map_err(|e| {
            MetadataError::Invalid(format!(
                "signing certificate #{} in the metadata: {e}",
                i + 1
            ))
        })?;
        certificates.push((format!("metadata[{i}]"), facts));
    }
    Ok(IdpSide {
        entity_id: md.entity_id,
        sso_url: md.sso_url,
        single_logout: md.single_logout,
        certificates,
        metadata_url: Some(url.to_owned()),
        metadata_fetched_at: Some(now),
    })
}

/// The IdP side after a fetch: the new metadata, or on failure the last good one while it
/// lasts.
fn fetched_side(
    facts: MetadataFacts,
    fetched: Result<String, MetadataError>,
    out: &mut Outcome,
) -> (Resolution, FailureMemory) {
    let (url, now) = (facts.url, facts.now);
    let retry_at = now + METADATA_RETRY.min(facts.interval);
    let e = match fetched.and_then(|xml| parse_metadata(&xml, url, now)) {
        Ok(side) => {
            out.requeue(now + facts.interval);
            out.conditions.push(Desired::yes(
                cond::IDP_METADATA_RESOLVED,
                reason::METADATA_FETCHED,
                format!(
                    "Metadata fetched from {url} at {now}: entity ID {}, {} signing certificate(s)",
                    side.entity_id,
                    side.certificates.len()
                ),
            ));
            return (Resolution::side(side), FailureMemory::Forget);
        }
        Err(e) => e,
    };
    out.requeue(retry_at);
    let r = match &e {
        MetadataError::Refused(_) => reason::METADATA_URL_REFUSED,
        MetadataError::Fetch(_) => reason::METADATA_FETCH_FAILED,
        MetadataError::Invalid(_) => reason::INVALID_METADATA,
    };
    let remember = |condition: &Desired| {
        FailureMemory::Remember(MetadataFailure {
            url: url.to_owned(),
            retry_at,
            condition: condition.clone(),
        })
    };
    match facts.last_good {
        Some(good) => {
            let when = good
                .idp
                .metadata_fetched_at
                .map(|t| t.to_string())
                .unwrap_or_default();
            out.events.push(Warning {
                reason: r,
                message: format!("Could not refresh the metadata from {url}: {e}"),
            });
            let condition = Desired::no(
                cond::IDP_METADATA_RESOLVED,
                r,
                format!(
                    "Could not refresh the metadata from {url}: {e}. The last good metadata (fetched {when}) keeps serving; retrying"
                ),
            );
            let memory = remember(&condition);
            out.conditions.push(condition);
            (Resolution::side(side_from_compiled(&good.idp, url)), memory)
        }
        None => {
            let message = format!(
                "Could not use the metadata URL {url}: {e}. Check spec.idp.metadataUrl (the IdP's metadata URL); retrying"
            );
            let condition = Desired::no(cond::IDP_METADATA_RESOLVED, r, message);
            let memory = remember(&condition);
            (Resolution::problem(Problem::new(condition)), memory)
        }
    }
}

fn side_from_compiled(c: &CompiledIdp, url: &str) -> IdpSide {
    IdpSide {
        entity_id: c.entity_id.clone(),
        sso_url: c.sso_url.clone(),
        single_logout: c.single_logout.clone(),
        certificates: c
            .certificates
            .iter()
            .enumerate()
            .filter_map(|(i, pem)| {
                certs::parse_certificate(pem)
                    .ok()
                    .map(|f| (format!("metadata[{i}]"), f))
            })
            .collect(),
        metadata_url: Some(url.to_owned()),
        metadata_fetched_at: c.metadata_fetched_at,
    }
}

/// Whether the reconciler reads the certificates `spec.idp.certificates` references: only
/// for an IdP configured by explicit fields, once the URL and Issuer are there.
pub(super) fn reads_certificates(spec: &IdpSettings) -> bool {
    spec.metadata_url.is_none() && spec.sso_url.is_some() && spec.entity_id.is_some()
}

/// The text of `spec.idp.certificates` entries as read, in order, up to the first one that
/// could not be read: where each came from and its text, or a message saying what is missing.
pub(super) type LoadedCertificates = Vec<Result<(String, String), String>>;

/// The IdP side from the explicit fields of `spec.idp` and the certificates read for them.
pub(super) fn explicit_side(
    spec: &IdentityProviderSpec,
    loaded: &[Result<(String, String), String>],
    out: &mut Outcome,
) -> Resolution {
    let idp = &spec.idp;
    let (Some(sso_url), Some(entity_id)) = (&idp.sso_url, &idp.entity_id) else {
        out.conditions.push(Desired::yes(
            cond::IDP_METADATA_RESOLVED,
            reason::EXPLICIT_CONFIGURATION,
            "Using spec.idp.ssoUrl, entityId and certificates",
        ));
        let message =
            "Set spec.idp.metadataUrl, or spec.idp.ssoUrl and spec.idp.entityId".to_owned();
        return Resolution::problem(Problem::new(Desired::no(
            cond::READY,
            reason::INVALID_CONFIGURATION,
            message,
        )));
    };
    // The values as compiled (trimmed), so that a mismatch with the IdP is visible in status.
    out.conditions.push(Desired::yes(
        cond::IDP_METADATA_RESOLVED,
        reason::EXPLICIT_CONFIGURATION,
        format!(
            "Using spec.idp.ssoUrl {sso_url}, entityId {entity_id} (the Issuer every response must carry) and certificates"
        ),
    ));
    let field = certificate_field(spec.provider);
    if idp.certificates.as_ref().is_none_or(Vec::is_empty) {
        let message = format!(
            "No IdP signing certificate is configured, so no response could be verified: paste {field} into spec.idp.certificates"
        );
        return Resolution::problem(Problem::new(Desired::no(
            cond::CERTIFICATES_VALID,
            reason::NO_CERTIFICATE,
            message,
        )));
    }
    let certificates = match parse_explicit_certificates(loaded, field) {
        Ok(certificates) => certificates,
        Err(problem) => return Resolution::problem(problem),
    };
    // A placeholder certificate is listed in status, and trusted nowhere.
    let problem = placeholder_problem(spec, &certificates, out);
    Resolution {
        side: Some(IdpSide {
            entity_id: entity_id.clone(),
            sso_url: sso_url.clone(),
            single_logout: idp
                .single_logout_url
                .as_ref()
                .map(|url| SingleLogoutService {
                    binding: match idp.single_logout_binding {
                        SingleLogoutBinding::HttpRedirect => SloBinding::Redirect,
                        SingleLogoutBinding::HttpPost => SloBinding::Post,
                    },
                    location: url.clone(),
                    response_location: None,
                }),
            certificates,
            metadata_url: None,
            metadata_fetched_at: None,
        }),
        problem,
    }
}

/// Every certificate of the entries read, labelled by where it came from, or the problem with
/// the first entry that is missing or holds no usable certificate. `field` names the
/// certificate in the IdP console.
fn parse_explicit_certificates(
    loaded: &[Result<(String, String), String>],
    field: &str,
) -> Result<Vec<(String, CertificateFacts)>, Problem> {
    let mut certificates = Vec::new();
    for (i, entry) in loaded.iter().enumerate() {
        let (label, text) = entry.as_ref().map_err(|message| {
            Problem::new(Desired::no(
                cond::CERTIFICATES_VALID,
                reason::REFERENCE_NOT_FOUND,
                message.clone(),
            ))
        })?;
        match certs::parse_certificates(text) {
            Ok(bundle) if bundle.len() == 1 => {
                certificates.extend(bundle.into_iter().map(|f| (label.clone(), f)));
            }
            // A bundle (an IdP's old and new certificate): every one is trusted.
            Ok(bundle) => certificates.extend(
                bundle
                    .into_iter()
                    .enumerate()
                    .map(|(j, f)| (format!("{label}#{}", j + 1), f)),
            ),
            Err(e) => {
                let hint = match e {
                    certs::CertificateError::TooMany => format!(
                        "list at most {} certificates per entry, or split them into several spec.idp.certificates entries",
                        certs::MAX_CERTIFICATES_PER_SOURCE
                    ),
                    certs::CertificateError::NotACertificate => format!(
                        "it must hold only the IdP's public certificate(s), never a key or a password: paste {field}, including the BEGIN/END CERTIFICATE lines"
                    ),
                    _ => format!(
                        "paste {field} including the BEGIN/END CERTIFICATE lines; several certificates may follow one another with nothing but line breaks between them"
                    ),
                };
                let message = format!("spec.idp.certificates[{i}] ({label}): {e}. {hint}");
                return Err(Problem::new(Desired::no(
                    cond::CERTIFICATES_VALID,
                    reason::CERTIFICATE_INVALID,
                    message,
                )));
            }
        }
    }
    Ok(certificates)
}

/// The certificates of the IdP side as status lists them, and those trusted now.
#[derive(Default)]
pub(super) struct CertificateAssessment {
    /// Every certificate, for `status.certificates`.
    pub(super) listed: Vec<CertificateInfo>,
    /// The earliest expiry, for `status.certificateNotAfter`.
    pub(super) not_after: Option<Time>,
    /// The certificates valid now whose key can verify the configured algorithm.
    pub(super) valid: Vec<CertificateFacts>,
}

/// Everything decided before compiling: the IdP side, the certificates trusted, and the
/// problem that keeps the IdentityProvider from being compiled, if any.
pub(super) struct Assessment {
    pub(super) side: Option<IdpSide>,
    pub(super) certificates: CertificateAssessment,
    pub(super) problem: Option<Problem>,
}

impl Assessment {
    /// Whether a configuration is compiled and published, given the service-provider keys.
    pub(super) fn compiles(&self, keys_ready: bool) -> bool {
        self.problem.is_none() && keys_ready && self.side.is_some()
    }
}

/// Checks the resolved IdP side: certificates, settings that would fail open, and the AES-CBC
/// warning.
pub(super) fn assess(
    spec: &IdentityProviderSpec,
    resolution: Resolution,
    now: Timestamp,
    out: &mut Outcome,
) -> Assessment {
    let mut problem = resolution.problem;
    let certificates = match &resolution.side {
        Some(side) => assess_certificates(spec, side, &mut problem, now, out),
        None => CertificateAssessment::default(),
    };
    if problem.is_none() {
        problem = sha1_problem(&spec.saml);
    }
    out.conditions.push(cbc_encryption_condition(&spec.saml));
    Assessment {
        side: resolution.side,
        certificates,
        problem,
    }
}

/// Settings that would fail open (the CRD rejects them too; older CRDs might not).
fn sha1_problem(saml: &SamlSettings) -> Option<Problem> {
    (!saml.allow_sha1
        && (saml.signature_algorithm == SignatureAlgorithm::RsaSha1
            || saml.digest_algorithm == DigestAlgorithm::Sha1))
        .then(|| {
            Problem::new(Desired::no(
                cond::READY,
                reason::INVALID_CONFIGURATION,
                "SHA-1 is refused: choose rsa-sha256 and sha256, or set saml.allowSha1: true",
            ))
        })
}

/// The certificates of `side`: listed for status, checked against the algorithm and the
/// clock. Sets `problem`, unless one is already known, when none can be trusted.
fn assess_certificates(
    spec: &IdentityProviderSpec,
    side: &IdpSide,
    problem: &mut Option<Problem>,
    now: Timestamp,
    out: &mut Outcome,
) -> CertificateAssessment {
    let skew = crate::config::clock_skew(&spec.saml);
    let listed = side
        .certificates
        .iter()
        .map(|(source, f)| CertificateInfo {
            source: source.clone(),
            subject: f.subject.clone(),
            sha256_fingerprint: f.sha256_fingerprint.clone(),
            not_before: Time(f.not_before),
            not_after: Time(f.not_after),
            key_type: Some(f.key_type.to_string()),
        })
        .collect();
    let not_after = side
        .certificates
        .iter()
        .map(|(_, f)| f.not_after)
        .min()
        .map(Time);
    let field = certificate_field(spec.provider);
    // Only a certificate whose key can verify the configured algorithm is of any use.
    let algorithm = spec.saml.signature_algorithm;
    let (usable, unusable): (Vec<_>, Vec<_>) = side
        .certificates
        .iter()
        .partition(|(_, f)| f.key_type.can_verify(algorithm));
    if usable.is_empty()
        && problem.is_none()
        && let Some((source, f)) = unusable.first()
    {
        *problem = Some(Problem::new(Desired::no(
            cond::CERTIFICATES_VALID,
            reason::CERTIFICATE_INVALID,
            key_mismatch_message(source, f, algorithm, field),
        )));
    }
    let mut valid = Vec::new();
    for (_, f) in &usable {
        if f.not_before <= now + skew && now < f.not_after {
            valid.push(f.clone());
            out.requeue(f.not_after);
        } else if f.not_before > now + skew {
            out.requeue(f.not_before - skew);
        }
    }
    if valid.is_empty() {
        if problem.is_none() {
            *problem = Some(no_valid_certificate(&usable, now, field));
        }
    } else {
        let skipped = usable.len() - valid.len();
        valid_certificates_conditions(&valid, skipped, &unusable, algorithm, now, out);
    }
    CertificateAssessment {
        listed,
        not_after,
        valid,
    }
}

/// Why none of the `usable` certificates (whose key suits the algorithm) is valid now.
fn no_valid_certificate(
    usable: &[&(String, CertificateFacts)],
    now: Timestamp,
    field: &str,
) -> Problem {
    let expired = usable
        .iter()
        .map(|(_, f)| f)
        .filter(|f| f.not_after <= now)
        .max_by_key(|f| f.not_after);
    let (r, message) = if let Some(f) = expired {
        (
            reason::CERTIFICATE_EXPIRED,
            format!(
                "Certificate is no longer valid: the IdP signing certificate {} (SHA-256 {}) expired on {}. Paste {} into spec.idp.certificates",
                f.subject, f.sha256_fingerprint, f.not_after, field
            ),
        )
    } else {
        (
            reason::CERTIFICATE_NOT_YET_VALID,
            format!(
                "Certificate is not valid yet: no IdP signing certificate is valid before {}. Check the clocks, or paste {}",
                usable
                    .iter()
                    .map(|(_, f)| f.not_before)
                    .min()
                    .unwrap_or(now),
                field
            ),
        )
    };
    Problem::new(Desired::no(cond::CERTIFICATES_VALID, r, message))
}

/// CertificatesValid and CertificatesExpiringSoon while at least one certificate is `valid`;
/// `skipped` more are out of their validity and `unusable` cannot verify `algorithm`.
fn valid_certificates_conditions(
    valid: &[CertificateFacts],
    skipped: usize,
    unusable: &[&(String, CertificateFacts)],
    algorithm: SignatureAlgorithm,
    now: Timestamp,
    out: &mut Outcome,
) {
    let mut message = format!("{} IdP signing certificate(s) valid", valid.len());
    if skipped > 0 {
        message.push_str(&format!(
            "; {skipped} expired or not yet valid and not trusted"
        ));
    }
    for (source, f) in unusable {
        message.push_str(&format!(
            "; {source} holds an {} key, which cannot verify {} signatures, and is not trusted",
            f.key_type,
            certs::algorithm_name(algorithm)
        ));
    }
    out.conditions.push(Desired::yes(
        cond::CERTIFICATES_VALID,
        reason::CERTIFICATES_VALID,
        message,
    ));
    let last = valid.iter().map(|f| f.not_after).max().unwrap_or(now);
    if last - EXPIRY_WARNING <= now {
        out.conditions.push(Desired::yes(
            cond::CERTIFICATES_EXPIRING_SOON,
            reason::EXPIRES_SOON,
            format!("The IdP signing certificate expires on {last}: add the IdP's new certificate to spec.idp.certificates before then (several may be listed during a rollover)"),
        ));
    } else {
        out.conditions.push(Desired::no(
            cond::CERTIFICATES_EXPIRING_SOON,
            reason::NOT_EXPIRING_SOON,
            format!("Valid until {last}"),
        ));
        out.requeue(last - EXPIRY_WARNING);
    }
}

/// The warning shown while `saml.allowCbcEncryption` accepts unauthenticated AES-CBC.
fn cbc_encryption_condition(saml: &SamlSettings) -> Desired {
    if saml.allow_cbc_encryption {
        Desired::yes(
            cond::CBC_ENCRYPTION_ALLOWED,
            reason::CBC_ENCRYPTION_ALLOWED,
            "saml.allowCbcEncryption is true: AES-CBC encrypted assertions are accepted, and anyone who can post to the ACS URL may learn the content of an encrypted assertion from the answers to altered copies. Choose AES-GCM at the IdP and remove saml.allowCbcEncryption as soon as it can",
        )
    } else {
        Desired::no(
            cond::CBC_ENCRYPTION_ALLOWED,
            reason::GCM_ONLY,
            "Only AES-GCM encrypted assertions are accepted",
        )
    }
}

/// What serves after this reconciliation.
#[derive(Clone, Copy, Debug)]
pub(super) enum Served {
    /// The configuration of this generation was just compiled and published.
    Published { generation: i64 },
    /// The last good configuration, of this generation, keeps serving.
    LastGood { generation: i64 },
    /// Nothing.
    Nothing,
}

/// ConfigPublished and Ready, from what serves and what is wrong. `keys_ready` says whether the
/// service-provider keys are in place; the Ready message names what to paste into the IdP.
pub(super) fn conclude(
    problem: Option<&Problem>,
    served: Served,
    keys_ready: bool,
    urls: &Urls,
    entity_id: &str,
    out: &mut Outcome,
) {
    let serving = match served {
        Served::Published { generation } => {
            out.conditions.push(Desired::yes(
                cond::CONFIG_PUBLISHED,
                reason::PUBLISHED,
                format!("Serving generation {generation}"),
            ));
            true
        }
        Served::LastGood { generation } => {
            if let Some(p) = problem {
                out.conditions.push(p.condition.clone());
            }
            out.conditions.push(Desired::no(cond::CONFIG_PUBLISHED, reason::LAST_GOOD_CONFIG_SERVING, format!("The last good configuration (generation {generation}) keeps serving until the problem above is fixed")));
            true
        }
        Served::Nothing => {
            if let Some(p) = problem {
                out.conditions.push(p.condition.clone());
            }
            out.conditions.push(Desired::no(
                cond::CONFIG_PUBLISHED,
                reason::NOT_SERVING,
                "Nothing is served until the problem above is fixed",
            ));
            false
        }
    };
    let ready = match (problem, serving, keys_ready) {
        (None, true, true) => Desired::yes(
            cond::READY,
            reason::READY,
            format!(
                "Serving. Paste into the IdP: ACS URL {}, SP entity ID {entity_id}, or the metadata URL {}",
                urls.acs, urls.metadata
            ),
        ),
        (Some(p), _, _) => Desired::no(cond::READY, p.ready_reason, p.condition.message.clone()),
        (None, _, false) => {
            let keys = out
                .conditions
                .iter()
                .find(|c| c.type_ == cond::SERVICE_PROVIDER_KEYS_READY);
            Desired::no(
                cond::READY,
                keys.map_or(reason::SECRET_CONFLICT, |c| c.reason),
                keys.map(|c| c.message.clone()).unwrap_or_default(),
            )
        }
        (None, false, true) => Desired::no(
            cond::READY,
            reason::METADATA_UNAVAILABLE,
            "The IdP side is not resolved yet",
        ),
    };
    // A problem reported through the Ready condition itself is not listed twice.
    out.conditions.retain(|c| c.type_ != cond::READY);
    out.conditions.push(ready);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyPair;
    use crate::controller::sp_keys::SpKey;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const URL: &str = "https://idp.example.com/metadata";

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn now() -> Timestamp {
        at(NOW)
    }

    /// A certificate's PEM, valid from `not_before` to `not_after` (Unix seconds).
    fn pem(cn: &str, not_before: i64, not_after: i64) -> String {
        let cert = certs::tests::make_cert(cn, not_before, not_after);
        String::from_utf8(cert.to_pem().unwrap()).unwrap()
    }

    fn cert(cn: &str, not_before: i64, not_after: i64) -> CertificateFacts {
        certs::parse_certificate(&pem(cn, not_before, not_after)).unwrap()
    }

    fn spec(value: serde_json::Value) -> IdentityProviderSpec {
        serde_json::from_value(value).unwrap()
    }

    /// An IdP configured by explicit fields, with `extra` merged into `spec.idp`.
    fn explicit(extra: serde_json::Value) -> IdentityProviderSpec {
        let mut idp = json!({
            "ssoUrl": "https://idp.example.com/sso",
            "entityId": "https://idp.example.com",
            "certificates": [{"pem": "pasted"}],
        });
        for (k, v) in extra.as_object().unwrap() {
            idp[k] = v.clone();
        }
        spec(json!({ "provider": "okta", "idp": idp }))
    }

    fn metadata_spec() -> IdentityProviderSpec {
        spec(json!({ "provider": "okta", "idp": { "metadataUrl": URL } }))
    }

    /// An IdentityProvider of generation 2; `observed` is the generation its status saw.
    fn resource(spec: IdentityProviderSpec, observed: i64) -> IdentityProvider {
        let mut idp = IdentityProvider::new("corp", spec);
        idp.metadata.generation = Some(2);
        idp.status = Some(IdentityProviderStatus {
            observed_generation: Some(observed),
            ..Default::default()
        });
        idp
    }

    /// A last good configuration compiled from `URL`'s metadata fetched at `fetched_at`.
    fn last_good(fetched_at: i64, certificate: &str) -> CompiledIdentityProvider {
        serde_json::from_value(json!({
            "namespace": "team", "name": "corp", "generation": 1, "provider": "okta",
            "serviceProvider": { "entityId": "e", "metadataUrl": "m", "acsUrl": "a", "loginUrl": "l",
                "current": { "certificatePem": "", "privateKeyPem": "" }, "next": null, "previous": null },
            "idp": { "entityId": "https://idp.example.com", "ssoUrl": "https://idp.example.com/sso",
                "certificates": [certificate], "metadataUrl": URL,
                "metadataFetchedAt": at(fetched_at).to_string() },
            "allowIdpInitiated": false, "defaultRelayState": null, "allowedRedirects": [],
            "saml": {}, "attributeMapping": {}, "users": {}, "session": {}, "scimBaseUrl": "s", "scimTokens": []
        }))
        .unwrap()
    }

    fn failure(retry_at: i64) -> MetadataFailure {
        MetadataFailure {
            url: URL.to_owned(),
            retry_at: at(retry_at),
            condition: Desired::no(
                cond::IDP_METADATA_RESOLVED,
                reason::METADATA_FETCH_FAILED,
                "remembered",
            ),
        }
    }

    fn metadata_xml(certificate_pem: &str) -> String {
        let body: String = certificate_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        format!(
            r#"<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="http://www.okta.com/exk1"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    fn side(certificates: Vec<CertificateFacts>) -> IdpSide {
        IdpSide {
            entity_id: "https://idp.example.com".into(),
            sso_url: "https://idp.example.com/sso".into(),
            single_logout: None,
            certificates: certificates
                .into_iter()
                .enumerate()
                .map(|(i, f)| (format!("spec.idp.certificates[{i}]"), f))
                .collect(),
            metadata_url: None,
            metadata_fetched_at: None,
        }
    }

    /// Status, reason and message of a condition.
    fn said<'a>(out: &'a Outcome, type_: &str) -> (bool, &'static str, &'a str) {
        let c = out.condition(type_).expect(type_);
        (c.status, c.reason, c.message.as_str())
    }

    fn sp_key(not_before: i64, not_after: i64) -> SpKey {
        SpKey {
            pair: KeyPair {
                certificate_pem: String::new(),
                private_key_pem: String::new(),
            },
            not_before: at(not_before),
            not_after: at(not_after),
        }
    }

    // Service-provider keys.

    #[test]
    fn keys_in_place_are_ready_and_requeue_at_the_next_rotation_step() {
        let set = SpKeySet {
            current: sp_key(NOW - DAY, NOW + 365 * DAY),
            next: None,
            previous: None,
        };
        let mut out = Outcome::default();
        let kept = assess_keys(
            Ok((set, at(NOW + 300 * DAY))),
            SignedDuration::from_hours(24 * 30),
            &mut out,
        );
        assert!(kept.is_some());
        assert_eq!(
            said(&out, cond::SERVICE_PROVIDER_KEYS_READY),
            (
                true,
                reason::KEYS_READY,
                "Service-provider certificate valid until 2028-01-15T08:00:00Z, renewed automatically"
            )
        );
        assert_eq!(out.requeue_at, Some(at(NOW + 300 * DAY)));
    }

    #[test]
    fn a_published_next_key_says_when_it_becomes_active() {
        let set = SpKeySet {
            current: sp_key(NOW - 300 * DAY, NOW + 20 * DAY),
            next: Some(sp_key(NOW - 5 * DAY, NOW + 360 * DAY)),
            previous: None,
        };
        let mut out = Outcome::default();
        assess_keys(
            Ok((set, at(NOW + 10 * DAY))),
            SignedDuration::from_hours(24 * 30),
            &mut out,
        );
        assert_eq!(
            said(&out, cond::SERVICE_PROVIDER_KEYS_READY),
            (
                true,
                reason::NEXT_CERTIFICATE_PUBLISHED,
                "The next service-provider certificate is published in the SP metadata and becomes active after 2027-01-25T08:00:00Z; IdPs that read the SP metadata pick it up by themselves. Current certificate valid until 2027-02-04T08:00:00Z"
            )
        );
    }

    #[test]
    fn a_foreign_secret_blocks_the_keys_until_it_goes() {
        let mut out = Outcome::default();
        let blocked = keys_blocked("corp-saml-sp", "team", "corp", false, now());
        assert!(assess_keys(Err(blocked), SignedDuration::ZERO, &mut out).is_none());
        assert_eq!(
            said(&out, cond::SERVICE_PROVIDER_KEYS_READY),
            (
                false,
                reason::SECRET_CONFLICT,
                "Secret corp-saml-sp already exists and is not managed by this IdentityProvider: delete or rename it so that the service-provider keys can be stored there"
            )
        );
        assert_eq!(out.requeue_at, None);
    }

    #[test]
    fn a_deleted_namesakes_secret_is_rechecked_soon() {
        let mut out = Outcome::default();
        let blocked = keys_blocked("corp-saml-sp", "team", "corp", true, now());
        assess_keys(Err(blocked), SignedDuration::ZERO, &mut out);
        assert_eq!(
            said(&out, cond::SERVICE_PROVIDER_KEYS_READY),
            (
                false,
                reason::WAITING_FOR_GARBAGE_COLLECTION,
                "Secret corp-saml-sp holds the keys of the deleted IdentityProvider corp this one replaces; new keys are generated as soon as Kubernetes' garbage collector removes it (the deleted one's keys are never reused). If it stays, delete it: kubectl delete secret corp-saml-sp -n team"
            )
        );
        assert_eq!(out.requeue_at, Some(now() + GARBAGE_COLLECTION_RECHECK));
    }

    #[test]
    fn ready_without_keys_repeats_why_the_keys_are_blocked() {
        let mut out = Outcome::default();
        assess_keys(
            Err(keys_blocked("corp-saml-sp", "team", "corp", false, now())),
            SignedDuration::ZERO,
            &mut out,
        );
        let urls = Urls::new("https://sso.example.com", "team", "corp");
        conclude(None, Served::Nothing, false, &urls, "e", &mut out);
        let (status, r, message) = said(&out, cond::READY);
        assert_eq!(
            (
                status,
                r,
                message.starts_with("Secret corp-saml-sp already exists")
            ),
            (false, reason::SECRET_CONFLICT, true)
        );
    }

    // Disabled.

    #[test]
    fn a_disabled_idp_serves_nothing() {
        let mut out = Outcome::default();
        disabled(&mut out);
        assert_eq!(
            said(&out, cond::CONFIG_PUBLISHED),
            (
                false,
                reason::NOT_SERVING,
                "Nothing is served while spec.disabled is true"
            )
        );
        assert_eq!(
            said(&out, cond::READY),
            (
                false,
                reason::DISABLED,
                "Disabled: sign-in and SCIM are refused. Set spec.disabled: false to serve again"
            )
        );
    }

    // Placeholders.

    #[test]
    fn a_placeholder_url_names_the_console_field_of_each_provider() {
        let expected = [
            ("okta", "the Sign on URL from Okta"),
            ("entra", "the Login URL from Entra"),
            ("google", "the SSO URL from Google Workspace"),
            ("jumpcloud", "the IDP URL from JumpCloud"),
            ("onelogin", "the SAML 2.0 Endpoint (HTTP) from OneLogin"),
            ("auth0", "the Identity Provider Login URL from Auth0"),
            ("keycloak", "the realm's SAML endpoint from Keycloak"),
            ("generic", "the single sign-on URL from the IdP"),
        ];
        for (provider, field) in expected {
            let spec = spec(json!({ "provider": provider, "idp": {
                "ssoUrl": "https://REPLACE-ME.example.com/sso", "entityId": "https://idp.example.com",
                "certificates": [{"pem": "x"}] } }));
            let mut out = Outcome::default();
            let p = placeholder_problem(&spec, &[], &mut out).unwrap();
            assert_eq!(
                (p.condition.type_, p.ready_reason, p.condition.message),
                (
                    cond::IDP_METADATA_RESOLVED,
                    reason::PLACEHOLDER,
                    format!(
                        "The example's REPLACE-ME placeholders are still in spec.idp.ssoUrl (paste {field}). Fill them in from the IdP console; nothing is served until then"
                    )
                ),
                "{provider}"
            );
        }
    }

    #[test]
    fn a_placeholder_certificate_names_the_console_field_of_each_provider() {
        for (provider, field) in [
            (
                "okta",
                "the Signing Certificate from Okta (Sign On > SAML 2.0 > More details)",
            ),
            (
                "entra",
                "Certificate (Base64) from Entra (SAML Certificates)",
            ),
            (
                "google",
                "the Certificate from Google Workspace (Google Identity Provider details)",
            ),
            ("jumpcloud", "the IdP Certificate from JumpCloud"),
            ("onelogin", "the X.509 Certificate from OneLogin (SSO tab)"),
            ("auth0", "the Signing Certificate from Auth0"),
            (
                "keycloak",
                "the realm's RS256 certificate from Keycloak (Realm settings > Keys)",
            ),
            ("generic", "the IdP's signing certificate"),
        ] {
            assert_eq!(
                certificate_field(spec(json!({"provider": provider, "idp": {}})).provider),
                field
            );
        }
        let placeholder = pem("REPLACE-ME", NOW - DAY, NOW + 365 * DAY);
        let spec = explicit(json!({}));
        let mut out = Outcome::default();
        let resolved = explicit_side(
            &spec,
            &[Ok(("spec.idp.certificates[0]".into(), placeholder))],
            &mut out,
        );
        let p = resolved.problem.unwrap();
        assert_eq!(
            (p.condition.type_, p.ready_reason, p.condition.message),
            (
                cond::CERTIFICATES_VALID,
                reason::PLACEHOLDER,
                "The example's REPLACE-ME placeholders are still in the certificate spec.idp.certificates[0] (subject CN=REPLACE-ME; paste the Signing Certificate from Okta (Sign On > SAML 2.0 > More details)). Fill them in from the IdP console; nothing is served until then".to_owned()
            )
        );
        assert!(
            resolved.side.is_some(),
            "a placeholder certificate is still listed"
        );
    }

    #[test]
    fn placeholders_in_urls_and_certificates_mark_both_conditions() {
        let spec = explicit(json!({ "entityId": "https://replace-me.example.com" }));
        let placeholder = pem("REPLACE-ME", NOW - DAY, NOW + 365 * DAY);
        let mut out = Outcome::default();
        let resolved = explicit_side(
            &spec,
            &[Ok(("secret/idp/tls.crt".into(), placeholder))],
            &mut out,
        );
        let message = "The example's REPLACE-ME placeholders are still in spec.idp.entityId (paste the Issuer from Okta), the certificate secret/idp/tls.crt (subject CN=REPLACE-ME; paste the Signing Certificate from Okta (Sign On > SAML 2.0 > More details)). Fill them in from the IdP console; nothing is served until then";
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (false, reason::PLACEHOLDER, message)
        );
        assert_eq!(
            resolved.problem.map(|p| (p.condition, p.ready_reason)),
            Some((
                Desired::no(cond::CERTIFICATES_VALID, reason::PLACEHOLDER, message),
                reason::PLACEHOLDER
            ))
        );
    }

    #[test]
    fn a_placeholder_metadata_url_is_never_fetched() {
        let spec = spec(json!({ "provider": "entra", "idp": {
            "metadataUrl": "https://login.microsoftonline.com/REPLACE-ME/federationmetadata.xml" } }));
        let idp = resource(spec.clone(), 1);
        let url = idp.spec.idp.metadata_url.clone().unwrap();
        let facts = MetadataFacts::new(&idp, &url, None, None, now());
        assert!(!should_fetch(&spec, &facts));
        let mut out = Outcome::default();
        let p = metadata_side(&spec, facts, None, &mut out)
            .0
            .problem
            .unwrap();
        assert_eq!(
            (p.condition.type_, p.ready_reason, p.condition.message),
            (
                cond::IDP_METADATA_RESOLVED,
                reason::PLACEHOLDER,
                "The example's REPLACE-ME placeholders are still in spec.idp.metadataUrl (paste the App Federation Metadata Url from Entra). Fill them in from the IdP console; nothing is served until then".to_owned()
            )
        );
    }

    // Explicit fields.

    #[test]
    fn explicit_fields_without_sso_url_are_an_invalid_configuration() {
        let spec = spec(json!({ "idp": { "entityId": "https://idp.example.com" } }));
        assert!(!reads_certificates(&spec.idp));
        let mut out = Outcome::default();
        let p = explicit_side(&spec, &[], &mut out).problem.unwrap();
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (
                true,
                reason::EXPLICIT_CONFIGURATION,
                "Using spec.idp.ssoUrl, entityId and certificates"
            )
        );
        assert_eq!(
            (p.condition, p.ready_reason),
            (
                Desired::no(
                    cond::READY,
                    reason::INVALID_CONFIGURATION,
                    "Set spec.idp.metadataUrl, or spec.idp.ssoUrl and spec.idp.entityId"
                ),
                reason::INVALID_CONFIGURATION
            )
        );
    }

    #[test]
    fn explicit_fields_are_reported_as_compiled() {
        let spec = explicit(json!({}));
        assert!(reads_certificates(&spec.idp));
        let mut out = Outcome::default();
        let resolved = explicit_side(
            &spec,
            &[Ok((
                "spec.idp.certificates[0]".into(),
                pem("okta", NOW - DAY, NOW + 365 * DAY),
            ))],
            &mut out,
        );
        assert!(resolved.problem.is_none());
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (
                true,
                reason::EXPLICIT_CONFIGURATION,
                "Using spec.idp.ssoUrl https://idp.example.com/sso, entityId https://idp.example.com (the Issuer every response must carry) and certificates"
            )
        );
    }

    #[test]
    fn explicit_fields_without_a_certificate_say_what_to_paste() {
        let spec = explicit(json!({ "certificates": [] }));
        let mut out = Outcome::default();
        let p = explicit_side(&spec, &[], &mut out).problem.unwrap();
        assert_eq!(
            (p.condition, p.ready_reason),
            (
                Desired::no(
                    cond::CERTIFICATES_VALID,
                    reason::NO_CERTIFICATE,
                    "No IdP signing certificate is configured, so no response could be verified: paste the Signing Certificate from Okta (Sign On > SAML 2.0 > More details) into spec.idp.certificates"
                ),
                reason::NO_CERTIFICATE
            )
        );
    }

    #[test]
    fn a_missing_certificate_reference_is_reported_as_read() {
        let mut out = Outcome::default();
        let p = explicit_side(
            &explicit(json!({})),
            &[Err("Secret idp does not exist".into())],
            &mut out,
        )
        .problem
        .unwrap();
        assert_eq!(
            (p.condition, p.ready_reason),
            (
                Desired::no(
                    cond::CERTIFICATES_VALID,
                    reason::REFERENCE_NOT_FOUND,
                    "Secret idp does not exist"
                ),
                reason::REFERENCE_NOT_FOUND
            )
        );
    }

    #[test]
    fn a_key_instead_of_a_certificate_is_refused_with_a_hint() {
        let mut out = Outcome::default();
        let text = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let p = explicit_side(
            &explicit(json!({})),
            &[Ok(("spec.idp.certificates[0]".into(), text.into()))],
            &mut out,
        )
        .problem
        .unwrap();
        assert_eq!(
            (p.condition.reason, p.condition.message.ends_with("it must hold only the IdP's public certificate(s), never a key or a password: paste the Signing Certificate from Okta (Sign On > SAML 2.0 > More details), including the BEGIN/END CERTIFICATE lines")),
            (reason::CERTIFICATE_INVALID, true),
            "{}",
            p.condition.message
        );
    }

    #[test]
    fn too_many_certificates_in_one_entry_are_refused_with_a_hint() {
        let one = pem("okta", NOW - DAY, NOW + 365 * DAY);
        let text = one.repeat(certs::MAX_CERTIFICATES_PER_SOURCE + 1);
        let mut out = Outcome::default();
        let p = explicit_side(
            &explicit(json!({})),
            &[Ok(("spec.idp.certificates[0]".into(), text))],
            &mut out,
        )
        .problem
        .unwrap();
        assert!(
            p.condition.message.ends_with(&format!("list at most {} certificates per entry, or split them into several spec.idp.certificates entries", certs::MAX_CERTIFICATES_PER_SOURCE)),
            "{}",
            p.condition.message
        );
    }

    #[test]
    fn a_bundle_lists_each_certificate_by_position() {
        let text = pem("old", NOW - DAY, NOW + DAY) + &pem("new", NOW - DAY, NOW + 365 * DAY);
        let mut out = Outcome::default();
        let resolved = explicit_side(
            &explicit(json!({})),
            &[Ok(("configmap/idp/ca.crt".into(), text))],
            &mut out,
        );
        let labels: Vec<_> = resolved
            .side
            .unwrap()
            .certificates
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(labels, ["configmap/idp/ca.crt#1", "configmap/idp/ca.crt#2"]);
    }

    // Metadata URL.

    #[test]
    fn fresh_metadata_is_not_fetched_again_until_the_refresh_interval() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 2);
        let good = last_good(NOW - 600, &pem("okta", NOW - DAY, NOW + 365 * DAY));
        let facts = MetadataFacts::new(&idp, URL, Some(&good), None, now());
        assert!(!should_fetch(&spec, &facts));
        let mut out = Outcome::default();
        let (resolved, _) = metadata_side(&spec, facts, None, &mut out);
        assert!(resolved.side.is_some());
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (
                true,
                reason::METADATA_FETCHED,
                "Metadata fetched from https://idp.example.com/metadata at 2027-01-15T07:50:00Z"
            )
        );
        assert_eq!(out.requeue_at, Some(at(NOW - 600 + 3600)));
    }

    #[test]
    fn metadata_is_fetched_after_the_refresh_interval_or_an_edit() {
        let spec = metadata_spec();
        let good = last_good(NOW - 600, "x");
        let idp = resource(spec.clone(), 2);
        let stale = MetadataFacts::new(
            &idp,
            URL,
            Some(&good),
            None,
            now() + SignedDuration::from_secs(3000),
        );
        assert!(should_fetch(&spec, &stale));
        let edited = resource(spec.clone(), 1);
        let facts = MetadataFacts::new(&edited, URL, Some(&good), None, now());
        assert!(should_fetch(&spec, &facts));
        let unchanged = MetadataFacts::new(&idp, URL, Some(&good), None, now());
        assert!(!should_fetch(&spec, &unchanged));
    }

    #[test]
    fn fetched_metadata_resolves_the_idp_and_forgets_failures() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 1);
        let facts = MetadataFacts::new(&idp, URL, None, Some(failure(NOW - 1)), now());
        assert!(should_fetch(&spec, &facts));
        let xml = metadata_xml(&pem("okta", NOW - DAY, NOW + 365 * DAY));
        let mut out = Outcome::default();
        let (resolved, memory) = metadata_side(&spec, facts, Some(Ok(xml)), &mut out);
        assert!(matches!(memory, FailureMemory::Forget));
        assert_eq!(resolved.side.unwrap().metadata_fetched_at, Some(now()));
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (
                true,
                reason::METADATA_FETCHED,
                "Metadata fetched from https://idp.example.com/metadata at 2027-01-15T08:00:00Z: entity ID http://www.okta.com/exk1, 1 signing certificate(s)"
            )
        );
        assert_eq!(out.requeue_at, Some(at(NOW + 3600)));
    }

    #[test]
    fn a_failed_refresh_keeps_the_last_good_metadata_and_warns() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 1);
        let good = last_good(NOW - 7200, &pem("okta", NOW - DAY, NOW + 365 * DAY));
        let facts = MetadataFacts::new(&idp, URL, Some(&good), None, now());
        let mut out = Outcome::default();
        let (resolved, memory) = metadata_side(
            &spec,
            facts,
            Some(Err(MetadataError::Fetch("connection refused".into()))),
            &mut out,
        );
        let message = "Could not refresh the metadata from https://idp.example.com/metadata: connection refused. The last good metadata (fetched 2027-01-15T06:00:00Z) keeps serving; retrying";
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (false, reason::METADATA_FETCH_FAILED, message)
        );
        assert_eq!(
            out.events,
            [Warning {
                reason: reason::METADATA_FETCH_FAILED,
                message: "Could not refresh the metadata from https://idp.example.com/metadata: connection refused".into()
            }]
        );
        assert!(resolved.problem.is_none() && resolved.side.is_some());
        let FailureMemory::Remember(remembered) = memory else {
            panic!("the failure is remembered")
        };
        assert_eq!(
            (remembered.retry_at, remembered.condition.message.as_str()),
            (at(NOW + 60), message)
        );
        assert_eq!(out.requeue_at, Some(at(NOW + 60)));
    }

    #[test]
    fn a_failed_first_fetch_is_a_problem_named_by_its_cause() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 1);
        for (error, r) in [
            (
                MetadataError::Refused("the metadata URL must use https://".into()),
                reason::METADATA_URL_REFUSED,
            ),
            (
                MetadataError::Fetch("timed out".into()),
                reason::METADATA_FETCH_FAILED,
            ),
            (
                MetadataError::Invalid("no IDPSSODescriptor".into()),
                reason::INVALID_METADATA,
            ),
        ] {
            let cause = error.to_string();
            let facts = MetadataFacts::new(&idp, URL, None, None, now());
            let mut out = Outcome::default();
            let (resolved, memory) = metadata_side(&spec, facts, Some(Err(error)), &mut out);
            let p = resolved.problem.unwrap();
            assert_eq!(
                (p.condition, p.ready_reason, out.events.len()),
                (
                    Desired::no(
                        cond::IDP_METADATA_RESOLVED,
                        r,
                        format!(
                            "Could not use the metadata URL https://idp.example.com/metadata: {cause}. Check spec.idp.metadataUrl (the IdP's metadata URL); retrying"
                        )
                    ),
                    r,
                    0
                )
            );
            assert!(matches!(memory, FailureMemory::Remember(_)));
        }
    }

    #[test]
    fn an_unreadable_certificate_in_the_metadata_is_invalid_metadata() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 1);
        let facts = MetadataFacts::new(&idp, URL, None, None, now());
        let xml = metadata_xml("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----");
        let mut out = Outcome::default();
        let p = metadata_side(&spec, facts, Some(Ok(xml)), &mut out)
            .0
            .problem
            .unwrap();
        assert_eq!(
            (p.ready_reason, p.condition.message.starts_with("Could not use the metadata URL https://idp.example.com/metadata: signing certificate #1 in the metadata: ")),
            (reason::INVALID_METADATA, true),
            "{}",
            p.condition.message
        );
    }

    #[test]
    fn a_remembered_failure_waits_for_its_retry_time() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 2);
        let good = last_good(NOW - 7200, &pem("okta", NOW - DAY, NOW + 365 * DAY));
        let facts = MetadataFacts::new(&idp, URL, Some(&good), Some(failure(NOW + 30)), now());
        assert!(!should_fetch(&spec, &facts));
        let mut out = Outcome::default();
        let (resolved, _) = metadata_side(&spec, facts, None, &mut out);
        assert!(resolved.side.is_some() && resolved.problem.is_none());
        assert_eq!(
            said(&out, cond::IDP_METADATA_RESOLVED),
            (false, reason::METADATA_FETCH_FAILED, "remembered")
        );
        assert_eq!(out.requeue_at, Some(at(NOW + 30)));

        let facts = MetadataFacts::new(&idp, URL, None, Some(failure(NOW + 30)), now());
        let mut out = Outcome::default();
        let p = metadata_side(&spec, facts, None, &mut out)
            .0
            .problem
            .unwrap();
        assert_eq!(
            (p.ready_reason, p.condition.message.as_str()),
            (reason::METADATA_FETCH_FAILED, "remembered")
        );
    }

    #[test]
    fn a_failure_of_another_url_is_not_remembered() {
        let spec = metadata_spec();
        let idp = resource(spec.clone(), 2);
        let mut other = failure(NOW + 30);
        other.url = "https://old.example.com/metadata".into();
        let facts = MetadataFacts::new(&idp, URL, None, Some(other), now());
        assert!(should_fetch(&spec, &facts));
    }

    // Certificates.

    fn assessed(
        spec: &IdentityProviderSpec,
        certificates: Vec<CertificateFacts>,
    ) -> (Assessment, Outcome) {
        let mut out = Outcome::default();
        let resolution = Resolution::side(side(certificates));
        (assess(spec, resolution, now(), &mut out), out)
    }

    fn problem_of(a: &Assessment) -> (&'static str, &'static str, &str) {
        let p = a.problem.as_ref().expect("a problem");
        (
            p.condition.type_,
            p.ready_reason,
            p.condition.message.as_str(),
        )
    }

    #[test]
    fn a_valid_certificate_is_trusted_and_requeues_a_month_before_it_expires() {
        let f = cert("okta", NOW - DAY, NOW + 365 * DAY);
        let (a, out) = assessed(&explicit(json!({})), vec![f.clone()]);
        assert!(a.compiles(true));
        assert_eq!(a.certificates.valid, [f]);
        assert_eq!(
            said(&out, cond::CERTIFICATES_VALID),
            (
                true,
                reason::CERTIFICATES_VALID,
                "1 IdP signing certificate(s) valid"
            )
        );
        assert_eq!(
            said(&out, cond::CERTIFICATES_EXPIRING_SOON),
            (
                false,
                reason::NOT_EXPIRING_SOON,
                "Valid until 2028-01-15T08:00:00Z"
            )
        );
        assert_eq!(out.requeue_at, Some(at(NOW + 335 * DAY)));
        assert_eq!(a.certificates.listed[0].source, "spec.idp.certificates[0]");
        assert_eq!(a.certificates.not_after, Some(Time(at(NOW + 365 * DAY))));
    }

    #[test]
    fn a_certificate_expiring_within_a_month_warns_and_requeues_at_expiry() {
        let (_, out) = assessed(
            &explicit(json!({})),
            vec![cert("okta", NOW - DAY, NOW + 10 * DAY)],
        );
        assert_eq!(
            said(&out, cond::CERTIFICATES_EXPIRING_SOON),
            (
                true,
                reason::EXPIRES_SOON,
                "The IdP signing certificate expires on 2027-01-25T08:00:00Z: add the IdP's new certificate to spec.idp.certificates before then (several may be listed during a rollover)"
            )
        );
        assert_eq!(out.requeue_at, Some(at(NOW + 10 * DAY)));
    }

    #[test]
    fn an_expired_certificate_says_what_to_paste() {
        let f = cert("okta", NOW - 400 * DAY, NOW - DAY);
        let (a, _) = assessed(&explicit(json!({})), vec![f.clone()]);
        assert_eq!(
            problem_of(&a),
            (cond::CERTIFICATES_VALID, reason::CERTIFICATE_EXPIRED, format!("Certificate is no longer valid: the IdP signing certificate CN=okta (SHA-256 {}) expired on 2027-01-14T08:00:00Z. Paste the Signing Certificate from Okta (Sign On > SAML 2.0 > More details) into spec.idp.certificates", f.sha256_fingerprint).as_str())
        );
    }

    #[test]
    fn a_certificate_not_yet_valid_requeues_when_it_becomes_valid() {
        let (a, out) = assessed(
            &explicit(json!({})),
            vec![cert("okta", NOW + DAY, NOW + 365 * DAY)],
        );
        assert_eq!(
            problem_of(&a),
            (
                cond::CERTIFICATES_VALID,
                reason::CERTIFICATE_NOT_YET_VALID,
                "Certificate is not valid yet: no IdP signing certificate is valid before 2027-01-16T08:00:00Z. Check the clocks, or paste the Signing Certificate from Okta (Sign On > SAML 2.0 > More details)"
            )
        );
        assert_eq!(out.requeue_at, Some(at(NOW + DAY - 120)));
    }

    #[test]
    fn certificates_out_of_validity_or_of_another_key_type_are_counted_but_not_trusted() {
        let mut ec = cert("ec", NOW - DAY, NOW + 365 * DAY);
        ec.key_type = certs::KeyType::Ec("P-256");
        let old = cert("old", NOW - 400 * DAY, NOW - DAY);
        let (a, out) = assessed(
            &explicit(json!({})),
            vec![cert("okta", NOW - DAY, NOW + 365 * DAY), old, ec],
        );
        assert_eq!(a.certificates.valid.len(), 1);
        assert_eq!(
            said(&out, cond::CERTIFICATES_VALID),
            (
                true,
                reason::CERTIFICATES_VALID,
                "1 IdP signing certificate(s) valid; 1 expired or not yet valid and not trusted; spec.idp.certificates[2] holds an EC P-256 key, which cannot verify rsa-sha256 signatures, and is not trusted"
            )
        );
    }

    #[test]
    fn a_key_that_cannot_verify_the_algorithm_is_a_problem() {
        let mut ec = cert("ec", NOW - DAY, NOW + 365 * DAY);
        ec.key_type = certs::KeyType::Ec("P-384");
        let (a, _) = assessed(&explicit(json!({})), vec![ec.clone()]);
        assert_eq!(
            problem_of(&a),
            (
                cond::CERTIFICATES_VALID,
                reason::CERTIFICATE_INVALID,
                key_mismatch_message(
                    "spec.idp.certificates[0]",
                    &ec,
                    SignatureAlgorithm::RsaSha256,
                    certificate_field(Provider::Okta)
                )
                .as_str()
            )
        );
    }

    #[test]
    fn a_key_that_cannot_verify_the_algorithm_says_what_to_change() {
        let mut f = cert("okta", 1_700_000_000, 2_000_000_000);
        f.key_type = certs::KeyType::Ec("P-384");
        let m = key_mismatch_message(
            "spec.idp.certificates[0]",
            &f,
            SignatureAlgorithm::RsaSha256,
            certificate_field(Provider::Okta),
        );
        assert!(m.contains("holds an EC P-384 key but spec.saml.signatureAlgorithm is rsa-sha256: set saml.signatureAlgorithm: ecdsa-sha384, or paste the Signing Certificate from Okta"), "{m}");
        assert!(m.contains("with an RSA key"), "{m}");
        f.key_type = certs::KeyType::Rsa(2048);
        let m = key_mismatch_message("x", &f, SignatureAlgorithm::EcdsaSha256, "the cert");
        assert!(
            m.contains("set saml.signatureAlgorithm: rsa-sha256, or paste the cert with an EC key"),
            "{m}"
        );
        f.key_type = certs::KeyType::Other("Ed25519".into());
        let m = key_mismatch_message("x", &f, SignatureAlgorithm::RsaSha256, "the cert");
        assert!(
            m.contains("holds an Ed25519 key, which SAML signatures cannot use here"),
            "{m}"
        );
    }

    #[test]
    fn an_earlier_problem_is_not_replaced_by_the_certificate_check() {
        let mut out = Outcome::default();
        let resolution = Resolution {
            problem: Some(Problem::new(Desired::no(
                cond::CERTIFICATES_VALID,
                reason::PLACEHOLDER,
                "p",
            ))),
            ..Resolution::side(side(vec![cert("okta", NOW - 400 * DAY, NOW - DAY)]))
        };
        let a = assess(&explicit(json!({})), resolution, now(), &mut out);
        assert_eq!(
            problem_of(&a),
            (cond::CERTIFICATES_VALID, reason::PLACEHOLDER, "p")
        );
    }

    // Settings.

    #[test]
    fn sha1_is_refused_unless_allowed() {
        let f = cert("okta", NOW - DAY, NOW + 365 * DAY);
        let (a, _) = assessed(
            &explicit(json!({})).tap_saml(json!({"digestAlgorithm": "sha1"})),
            vec![f.clone()],
        );
        assert_eq!(
            problem_of(&a),
            (
                cond::READY,
                reason::INVALID_CONFIGURATION,
                "SHA-1 is refused: choose rsa-sha256 and sha256, or set saml.allowSha1: true"
            )
        );
        let allowed =
            explicit(json!({})).tap_saml(json!({"digestAlgorithm": "sha1", "allowSha1": true}));
        assert!(assessed(&allowed, vec![f]).0.problem.is_none());
    }

    #[test]
    fn cbc_encryption_is_a_standing_warning() {
        let (_, out) = assessed(
            &explicit(json!({})).tap_saml(json!({"allowCbcEncryption": true})),
            vec![],
        );
        let (status, r, message) = said(&out, cond::CBC_ENCRYPTION_ALLOWED);
        assert_eq!(
            (
                status,
                r,
                message.starts_with(
                    "saml.allowCbcEncryption is true: AES-CBC encrypted assertions are accepted"
                )
            ),
            (true, reason::CBC_ENCRYPTION_ALLOWED, true)
        );
        let (_, out) = assessed(&explicit(json!({})), vec![]);
        assert_eq!(
            said(&out, cond::CBC_ENCRYPTION_ALLOWED),
            (
                false,
                reason::GCM_ONLY,
                "Only AES-GCM encrypted assertions are accepted"
            )
        );
    }

    trait TapSaml {
        fn tap_saml(self, saml: serde_json::Value) -> Self;
    }

    impl TapSaml for IdentityProviderSpec {
        fn tap_saml(mut self, saml: serde_json::Value) -> Self {
            self.saml = serde_json::from_value(saml).unwrap();
            self
        }
    }

    // ConfigPublished and Ready.

    fn urls() -> Urls {
        Urls::new("https://sso.example.com", "team", "corp")
    }

    #[test]
    fn a_published_configuration_is_ready_and_says_what_to_paste() {
        let mut out = Outcome::default();
        conclude(
            None,
            Served::Published { generation: 3 },
            true,
            &urls(),
            "https://sp.example.com",
            &mut out,
        );
        assert_eq!(
            said(&out, cond::CONFIG_PUBLISHED),
            (true, reason::PUBLISHED, "Serving generation 3")
        );
        let u = urls();
        assert_eq!(
            said(&out, cond::READY),
            (true, reason::READY, format!("Serving. Paste into the IdP: ACS URL {}, SP entity ID https://sp.example.com, or the metadata URL {}", u.acs, u.metadata).as_str())
        );
    }

    #[test]
    fn a_problem_keeps_the_last_good_configuration_serving() {
        let p = Problem::new(Desired::no(
            cond::CERTIFICATES_VALID,
            reason::CERTIFICATE_EXPIRED,
            "expired",
        ));
        let mut out = Outcome::default();
        conclude(
            Some(&p),
            Served::LastGood { generation: 1 },
            true,
            &urls(),
            "e",
            &mut out,
        );
        assert_eq!(
            said(&out, cond::CERTIFICATES_VALID),
            (false, reason::CERTIFICATE_EXPIRED, "expired")
        );
        assert_eq!(
            said(&out, cond::CONFIG_PUBLISHED),
            (
                false,
                reason::LAST_GOOD_CONFIG_SERVING,
                "The last good configuration (generation 1) keeps serving until the problem above is fixed"
            )
        );
        assert_eq!(
            said(&out, cond::READY),
            (false, reason::CERTIFICATE_EXPIRED, "expired")
        );
    }

    #[test]
    fn a_problem_without_a_last_good_configuration_serves_nothing() {
        let p = Problem::new(Desired::no(
            cond::READY,
            reason::INVALID_CONFIGURATION,
            "fix it",
        ));
        let mut out = Outcome::default();
        conclude(Some(&p), Served::Nothing, true, &urls(), "e", &mut out);
        assert_eq!(
            said(&out, cond::CONFIG_PUBLISHED),
            (
                false,
                reason::NOT_SERVING,
                "Nothing is served until the problem above is fixed"
            )
        );
        assert_eq!(
            out.conditions
                .iter()
                .filter(|c| c.type_ == cond::READY)
                .count(),
            1,
            "Ready is listed once"
        );
        assert_eq!(
            said(&out, cond::READY),
            (false, reason::INVALID_CONFIGURATION, "fix it")
        );
    }

    #[test]
    fn an_unresolved_idp_side_is_not_ready() {
        let mut out = Outcome::default();
        conclude(None, Served::Nothing, true, &urls(), "e", &mut out);
        assert_eq!(
            said(&out, cond::READY),
            (
                false,
                reason::METADATA_UNAVAILABLE,
                "The IdP side is not resolved yet"
            )
        );
    }

    #[test]
    fn remembered_failures_follow_the_decision() {
        let mut failures = std::collections::HashMap::new();
        FailureMemory::Remember(failure(NOW)).apply_to(&mut failures, "team/corp");
        FailureMemory::Keep.apply_to(&mut failures, "team/corp");
        assert!(failures.contains_key("team/corp"));
        FailureMemory::Forget.apply_to(&mut failures, "team/corp");
        assert!(failures.is_empty());
    }
}
