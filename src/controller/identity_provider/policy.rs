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

/// The IdP side as resolved, or the problem that keeps it from being used, and what to do
/// with the memory of failed metadata fetches.
pub(super) struct Resolution {
    pub(super) side: Option<IdpSide>,
    pub(super) problem: Option<Problem>,
    pub(super) memory: FailureMemory,
}

impl Resolution {
    fn side(side: IdpSide) -> Self {
        Resolution {
            side: Some(side),
            problem: None,
            memory: FailureMemory::Keep,
        }
    }

    fn problem(problem: Problem) -> Self {
        Resolution {
            side: None,
            problem: Some(problem),
            memory: FailureMemory::Keep,
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

/// `spec.idp.metadataRefreshInterval`, an hour if it cannot be read, and at least a minute.
fn refresh_interval(spec: &IdpSettings) -> SignedDuration {
    crate::api::parse_duration(&spec.metadata_refresh_interval)
        .unwrap_or(SignedDuration::from_hours(1))
        .max(SignedDuration::from_mins(1))
}

/// Whether the reconciler fetches the metadata URL now. An example's placeholder URL names no
/// IdP and is never fetched.
pub(super) fn should_fetch(spec: &IdentityProviderSpec, facts: &MetadataFacts) -> bool {
    placeholder_problem(spec, &[], &mut Outcome::default()).is_none() && facts.due()
}

/// The IdP side from its metadata URL. `fetched` is the fetched document, or why it could not
/// be had, when [`should_fetch`] said to fetch; otherwise `None`.
pub(super) fn metadata_side(
    spec: &IdentityProviderSpec,
    facts: MetadataFacts,
    fetched: Option<Result<String, MetadataError>>,
    out: &mut Outcome,
) -> Resolution {
    if let Some(problem) = placeholder_problem(spec, &[], out) {
        return Resolution::problem(problem);
    }
    match fetched {
        Some(fetched) => fetched_side(facts, fetched, out),
        None => remembered_side(facts, out),
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
            memory: FailureMemory::Keep,
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
) -> Resolution {
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
            return Resolution {
                memory: FailureMemory::Forget,
                ..Resolution::side(side)
            };
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
            Resolution {
                memory,
                ..Resolution::side(side_from_compiled(&good.idp, url))
            }
        }
        None => {
            let message = format!(
                "Could not use the metadata URL {url}: {e}. Check spec.idp.metadataUrl (the IdP's metadata URL); retrying"
            );
            let condition = Desired::no(cond::IDP_METADATA_RESOLVED, r, message);
            Resolution {
                memory: remember(&condition),
                ..Resolution::problem(Problem::new(condition))
            }
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
        memory: FailureMemory::Keep,
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
    let skew =
        crate::api::parse_duration(&spec.saml.clock_skew).unwrap_or(SignedDuration::from_mins(2));
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
