//! Reconciles an IdentityProvider: service-provider keys, the IdP side (explicit fields or
//! metadata URL), certificate checks, the compiled runtime configuration and status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::certs::{self, CertificateFacts};
use super::metadata::{self, MetadataError};
use super::scim_token;
use super::sp_keys::{self, SpKeySet};
use super::{
    Context, Error, FIELD_MANAGER, MANAGED_BY, is_controlled_by, is_left_by_previous_incarnation,
    names, object_key, owner_reference, publish_event,
};
use crate::api::conditions::{self as cond, Desired, reason};
use crate::api::identity_provider::{
    CertificateInfo, CertificateSource, DigestAlgorithm, Provider, ServiceProviderUrls,
    SignatureAlgorithm, SingleLogoutBinding,
};
use crate::api::{IdentityProvider, IdentityProviderStatus};
use crate::config::{
    self, CompiledAttributeMapping, CompiledIdentityProvider, CompiledIdp, CompiledSaml,
    CompiledScimToken, CompiledServiceProvider, CompiledSession, CompiledUsers,
    SingleLogoutService, SloBinding, Urls,
};
use crate::tenant::Tenant;

const KIND: &str = "IdentityProvider";
/// Finalizer that removes the compiled configuration, which lives in another namespace and so
/// cannot be garbage-collected through an owner reference.
pub const FINALIZER: &str = "sso-operator.dev/compiled-config";
/// Warn this long before the last IdP certificate expires.
const EXPIRY_WARNING: SignedDuration = SignedDuration::from_hours(24 * 30);
/// Retry a failed metadata fetch after this long (or the refresh interval, if shorter).
const METADATA_RETRY: SignedDuration = SignedDuration::from_secs(60);

/// A failed metadata fetch, remembered until the next attempt so that reconciles in between
/// report it instead of hammering the IdP.
#[derive(Clone, Debug)]
pub struct MetadataFailure {
    url: String,
    retry_at: Timestamp,
    condition: Desired,
}

/// Which kind of object a certificate reference points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// `secretKeyRef`.
    Secret,
    /// `configMapKeyRef`.
    ConfigMap,
}

/// IdentityProviders in the object's namespace that reference it for a certificate, and, for a
/// Secret, the IdentityProvider whose service-provider key Secret has its name: a Secret that
/// blocked the keys (a name conflict, or the Secret of a deleted IdentityProvider of the same
/// name) re-reconciles that IdentityProvider when it changes or goes away.
pub fn referencing<K: Resource>(
    idps: &Store<IdentityProvider>,
    obj: &K,
    kind: RefKind,
) -> Vec<ObjectRef<IdentityProvider>> {
    let (Some(ns), Some(name)) = (obj.meta().namespace.as_deref(), obj.meta().name.as_deref())
    else {
        return Vec::new();
    };
    idps.state()
        .iter()
        .filter(|idp| idp.namespace().as_deref() == Some(ns))
        .filter(|idp| {
            (kind == RefKind::Secret && sp_secret_name(&idp.name_any()) == name)
                || idp
                    .spec
                    .idp
                    .certificates
                    .iter()
                    .flatten()
                    .any(|c| match kind {
                        RefKind::Secret => {
                            c.secret_key_ref.as_ref().is_some_and(|r| r.name == name)
                        }
                        RefKind::ConfigMap => c
                            .config_map_key_ref
                            .as_ref()
                            .is_some_and(|r| r.name == name),
                    })
        })
        .map(|idp| ObjectRef::from_obj(idp.as_ref()))
        .collect()
}

/// The IdentityProvider a compiled-config Secret belongs to.
pub fn owner_of_compiled<K: Resource>(secret: &K) -> Option<ObjectRef<IdentityProvider>> {
    let source: Tenant = secret
        .annotations()
        .get(config::SOURCE_ANNOTATION)?
        .parse()
        .ok()?;
    Some(ObjectRef::new(&source.name).within(&source.namespace))
}

/// Reconcile entry point.
pub async fn reconcile(idp: Arc<IdentityProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key(idp.as_ref());
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<IdentityProvider> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer::finalizer(&api, FINALIZER, idp, |event| async {
        match event {
            Finalizer::Apply(idp) => apply(&idp, &ctx).await,
            Finalizer::Cleanup(idp) => cleanup(&idp, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Error::Kube(e),
        finalizer::Error::UnnamedObject => Error::MissingObjectKey("name"),
        finalizer::Error::InvalidFinalizer => Error::MissingObjectKey("finalizer"),
    });
    ctx.metrics.reconciled(
        KIND,
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// Retries failed reconciliations with exponential backoff.
pub fn error_policy(idp: Arc<IdentityProvider>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(idp.as_ref());
    let delay = ctx.backoff(&key);
    tracing::warn!(identity_provider = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn cleanup(idp: &IdentityProvider, ctx: &Context) -> Result<Action, Error> {
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    delete_compiled(ctx, &ns, &idp.name_any()).await?;
    ctx.metrics.set_ready(KIND, object_key(idp), None);
    ctx.metadata_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&object_key(idp));
    tracing::info!(identity_provider = %object_key(idp), "deleted; its compiled configuration was removed");
    Ok(Action::await_change())
}

async fn delete_compiled(ctx: &Context, ns: &str, name: &str) -> Result<bool, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let secret_name = config::compiled_secret_name(ns, name);
    ctx.legacy.remove(&secret_name).await?;
    match api.delete(&secret_name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The name of the Secret holding an IdentityProvider's service-provider keys:
/// `{name}-saml-sp`, shortened with a hash for names too long for that.
pub fn sp_secret_name(idp_name: &str) -> String {
    names::generated_name(idp_name, "-saml-sp")
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
    idp: &IdentityProvider,
    certificates: &[(String, CertificateFacts)],
    conditions: &mut Vec<Desired>,
) -> Option<Problem> {
    let spec = &idp.spec.idp;
    let provider = idp.spec.provider;
    let mut fields: Vec<String> = [
        ("metadataUrl", &spec.metadata_url),
        ("ssoUrl", &spec.sso_url),
        ("entityId", &spec.entity_id),
        ("singleLogoutUrl", &spec.single_logout_url),
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
        conditions.push(Desired::no(type_, reason::PLACEHOLDER, message.clone()));
    }
    Some(Problem {
        condition: Desired::no(last, reason::PLACEHOLDER, message),
        ready_reason: reason::PLACEHOLDER,
    })
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

/// Outcome of resolving the IdP side.
struct IdpSide {
    entity_id: String,
    sso_url: String,
    single_logout: Option<SingleLogoutService>,
    /// Certificates with where each came from.
    certificates: Vec<(String, CertificateFacts)>,
    metadata_url: Option<String>,
    metadata_fetched_at: Option<Timestamp>,
}

/// A reason the IdentityProvider cannot be served as specified.
struct Problem {
    condition: Desired,
    ready_reason: &'static str,
}

async fn apply(idp: &IdentityProvider, ctx: &Context) -> Result<Action, Error> {
    // Values pasted from an IdP console often carry a stray space or newline, which would
    // never match what the IdP sends: everything below sees them trimmed.
    let idp = &IdentityProvider {
        spec: idp.spec.trimmed(),
        ..idp.clone()
    };
    let now = Timestamp::now();
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let name = idp.name_any();
    let generation = idp.metadata.generation.unwrap_or(0);
    let urls = Urls::new(&ctx.settings.external_url, &ns, &name);
    let entity_id = idp
        .spec
        .service_provider_entity_id
        .clone()
        .unwrap_or_else(|| urls.metadata.clone());
    let previous_status = idp.status.clone().unwrap_or_default();
    let mut conditions: Vec<Desired> = Vec::new();
    let mut requeue_at: Option<Timestamp> = None;
    let mut soonest = |t: Timestamp| {
        requeue_at = Some(requeue_at.map_or(t, |r: Timestamp| r.min(t)));
    };

    let mut status = IdentityProviderStatus {
        observed_generation: Some(generation),
        conditions: Vec::new(),
        service_provider: Some(ServiceProviderUrls {
            entity_id: entity_id.clone(),
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
        metadata_fetch_time: previous_status.metadata_fetch_time.clone(),
        // Written by the server under its own field manager; never set here.
        scim: None,
        sign_in: None,
    };

    // 1. Service-provider keys (kept while disabled, so re-enabling changes nothing in the IdP).
    let keys = match ensure_sp_keys(idp, ctx, &ns, &name, now).await? {
        Ok((set, next_event)) => {
            soonest(next_event);
            let message = match &set.next {
                Some(next) => {
                    conditions.push(Desired::yes(
                        cond::SERVICE_PROVIDER_KEYS_READY,
                        reason::NEXT_CERTIFICATE_PUBLISHED,
                        format!(
                            "The next service-provider certificate is published in the SP metadata and becomes active after {}; IdPs that read the SP metadata pick it up by themselves. Current certificate valid until {}",
                            next.not_before + ctx.settings.sp_rotation.renew_before / 2,
                            set.current.not_after
                        ),
                    ));
                    None
                }
                None => Some(format!(
                    "Service-provider certificate valid until {}, renewed automatically",
                    set.current.not_after
                )),
            };
            if let Some(message) = message {
                conditions.push(Desired::yes(
                    cond::SERVICE_PROVIDER_KEYS_READY,
                    reason::KEYS_READY,
                    message,
                ));
            }
            Some(set)
        }
        Err(blocked) => {
            if let Some(at) = blocked.recheck_at {
                soonest(at);
            }
            conditions.push(blocked.condition);
            None
        }
    };

    // 2. Disabled: stop serving at once, report, keep everything else.
    if idp.spec.disabled {
        delete_compiled(ctx, &ns, &name).await?;
        conditions.push(Desired::no(
            cond::CONFIG_PUBLISHED,
            reason::NOT_SERVING,
            "Nothing is served while spec.disabled is true",
        ));
        conditions.push(Desired::no(
            cond::READY,
            reason::DISABLED,
            "Disabled: sign-in and SCIM are refused. Set spec.disabled: false to serve again",
        ));
        finish(idp, ctx, status, conditions, &previous_status, now).await?;
        return Ok(Action::await_change());
    }

    // 3. The IdP side.
    let existing = own_compiled(ctx, idp, &ns, &name).await?;
    let (idp_side, idp_problem) = resolve_idp_side(
        idp,
        ctx,
        &ns,
        existing.as_ref(),
        now,
        &mut conditions,
        &mut soonest,
    )
    .await?;
    if let Some(fetched) = idp_side.as_ref().and_then(|s| s.metadata_fetched_at) {
        status.metadata_fetch_time = Some(Time(fetched));
    }

    // 4. Certificate validity.
    let mut problem = idp_problem;
    let mut valid_certificates = Vec::new();
    if let Some(side) = &idp_side {
        let skew = config::clock_skew(&idp.spec.saml);
        status.certificates = side
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
        status.certificate_not_after = side
            .certificates
            .iter()
            .map(|(_, f)| f.not_after)
            .min()
            .map(Time);
        let field = certificate_field(idp.spec.provider);
        // Only a certificate whose key can verify the configured algorithm is of any use.
        let algorithm = idp.spec.saml.signature_algorithm;
        let (usable, unusable): (Vec<_>, Vec<_>) = side
            .certificates
            .iter()
            .partition(|(_, f)| f.key_type.can_verify(algorithm));
        if usable.is_empty()
            && problem.is_none()
            && let Some((source, f)) = unusable.first()
        {
            problem = Some(Problem {
                condition: Desired::no(
                    cond::CERTIFICATES_VALID,
                    reason::CERTIFICATE_INVALID,
                    key_mismatch_message(source, f, algorithm, field),
                ),
                ready_reason: reason::CERTIFICATE_INVALID,
            });
        }
        for (_, f) in &usable {
            if f.not_before <= now + skew && now < f.not_after {
                valid_certificates.push(f.clone());
                soonest(f.not_after);
            } else if f.not_before > now + skew {
                soonest(f.not_before - skew);
            }
        }
        if valid_certificates.is_empty() && problem.is_none() {
            let expired: Vec<&CertificateFacts> = usable
                .iter()
                .map(|(_, f)| f)
                .filter(|f| f.not_after <= now)
                .collect();
            let (r, message) = if let Some(f) = expired.iter().max_by_key(|f| f.not_after) {
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
            problem = Some(Problem {
                condition: Desired::no(cond::CERTIFICATES_VALID, r, message),
                ready_reason: r,
            });
        } else if !valid_certificates.is_empty() {
            let skipped = usable.len() - valid_certificates.len();
            let mut message = format!(
                "{} IdP signing certificate(s) valid",
                valid_certificates.len()
            );
            if skipped > 0 {
                message.push_str(&format!(
                    "; {skipped} expired or not yet valid and not trusted"
                ));
            }
            for (source, f) in &unusable {
                message.push_str(&format!(
                    "; {source} holds an {} key, which cannot verify {} signatures, and is not trusted",
                    f.key_type,
                    certs::algorithm_name(algorithm)
                ));
            }
            conditions.push(Desired::yes(
                cond::CERTIFICATES_VALID,
                reason::CERTIFICATES_VALID,
                message,
            ));
            let last = valid_certificates
                .iter()
                .map(|f| f.not_after)
                .max()
                .unwrap_or(now);
            if last - EXPIRY_WARNING <= now {
                conditions.push(Desired::yes(
                    cond::CERTIFICATES_EXPIRING_SOON,
                    reason::EXPIRES_SOON,
                    format!("The IdP signing certificate expires on {last}: add the IdP's new certificate to spec.idp.certificates before then (several may be listed during a rollover)"),
                ));
            } else {
                conditions.push(Desired::no(
                    cond::CERTIFICATES_EXPIRING_SOON,
                    reason::NOT_EXPIRING_SOON,
                    format!("Valid until {last}"),
                ));
                soonest(last - EXPIRY_WARNING);
            }
        }
    }

    // 5. Settings that would fail open (the CRD rejects them too; older CRDs might not).
    if problem.is_none()
        && !idp.spec.saml.allow_sha1
        && (idp.spec.saml.signature_algorithm == SignatureAlgorithm::RsaSha1
            || idp.spec.saml.digest_algorithm == DigestAlgorithm::Sha1)
    {
        problem = Some(Problem {
            condition: Desired::no(
                cond::READY,
                reason::INVALID_CONFIGURATION,
                "SHA-1 is refused: choose rsa-sha256 and sha256, or set saml.allowSha1: true",
            ),
            ready_reason: reason::INVALID_CONFIGURATION,
        });
    }

    conditions.push(cbc_encryption_condition(&idp.spec.saml));

    // 6. Compile and publish, or keep the last good configuration.
    let serving;
    match (&problem, &keys, &idp_side) {
        (None, Some(keys), Some(side)) => {
            let scim_tokens = token_hashes(ctx, &ns, &name, now, &mut soonest).await?;
            let compiled = compile(
                idp,
                &ns,
                &name,
                &urls,
                entity_id,
                keys,
                side,
                &valid_certificates,
                scim_tokens,
            );
            publish_compiled(ctx, &compiled).await?;
            conditions.push(Desired::yes(
                cond::CONFIG_PUBLISHED,
                reason::PUBLISHED,
                format!("Serving generation {generation}"),
            ));
            serving = true;
        }
        _ => {
            serving = existing.is_some();
            if let Some(p) = &problem {
                conditions.push(p.condition.clone());
            }
            conditions.push(if let Some(old) = &existing {
                Desired::no(cond::CONFIG_PUBLISHED, reason::LAST_GOOD_CONFIG_SERVING, format!("The last good configuration (generation {}) keeps serving until the problem above is fixed", old.generation))
            } else {
                Desired::no(cond::CONFIG_PUBLISHED, reason::NOT_SERVING, "Nothing is served until the problem above is fixed")
            });
        }
    }

    let ready = match (&problem, serving, keys.is_some()) {
        (None, true, true) => Desired::yes(
            cond::READY,
            reason::READY,
            format!(
                "Serving. Paste into the IdP: ACS URL {}, SP entity ID {}, or the metadata URL {}",
                urls.acs,
                status
                    .service_provider
                    .as_ref()
                    .map(|s| s.entity_id.as_str())
                    .unwrap_or(""),
                urls.metadata
            ),
        ),
        (Some(p), _, _) => Desired::no(cond::READY, p.ready_reason, p.condition.message.clone()),
        (None, _, false) => {
            let keys = conditions
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
    conditions.retain(|c| c.type_ != cond::READY);
    conditions.push(ready);
    finish(idp, ctx, status, conditions, &previous_status, now).await?;

    Ok(super::requeue_until(requeue_at))
}

/// The warning shown while `saml.allowCbcEncryption` accepts unauthenticated AES-CBC.
fn cbc_encryption_condition(saml: &crate::api::identity_provider::SamlSettings) -> Desired {
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

/// Why the service-provider keys cannot be stored, as the ServiceProviderKeysReady condition,
/// and when to look again (the Secret watch also triggers a new look).
struct KeysBlocked {
    condition: Desired,
    recheck_at: Option<Timestamp>,
}

/// How soon a Secret left by a deleted resource of the same name is looked at again, should
/// its removal by the garbage collector not be seen through the Secret watch.
pub(crate) const GARBAGE_COLLECTION_RECHECK: SignedDuration = SignedDuration::from_secs(2);

/// Loads, creates or rotates the SP keys. The inner `Err` says why they cannot be stored.
async fn ensure_sp_keys(
    idp: &IdentityProvider,
    ctx: &Context,
    ns: &str,
    name: &str,
    now: Timestamp,
) -> Result<Result<(SpKeySet, Timestamp), KeysBlocked>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret_name = sp_secret_name(name);
    let uid = idp.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let existing = api.get_opt(&secret_name).await?;
    if let Some(s) = &existing
        && !is_controlled_by(&s.metadata, &uid)
    {
        return Ok(Err(if is_left_by_previous_incarnation(&s.metadata, idp) {
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
        }));
    }
    let current = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(sp_keys::from_secret_data);
    let policy = ctx.settings.sp_rotation;
    let cn = Tenant::new(ns, name).to_string();
    // RSA key generation is CPU-bound (~0.2 s a key on one core): at most one per CPU at a
    // time, so a cold start of many IdentityProviders neither spawns hundreds of blocking
    // threads (each with its own allocator arena) nor starves the watchers.
    let _permit = sp_keys::generation_permit().await;
    let advanced =
        tokio::task::spawn_blocking(move || sp_keys::advance(current, now, policy, &cn)).await??;
    if !advanced.changes.is_empty() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(ns.to_owned()),
                labels: Some(labels(name, "saml-service-provider-keys")),
                owner_references: Some(vec![owner_reference(idp)?]),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(sp_keys::to_secret_data(&advanced.set)),
            ..Default::default()
        };
        api.patch(
            &secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
        for change in &advanced.changes {
            publish_event(
                ctx,
                idp,
                EventType::Normal,
                "ServiceProviderKeys",
                change.to_string(),
            )
            .await;
        }
    }
    Ok(Ok((advanced.set, advanced.next_event)))
}

fn labels(idp_name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (
            "app.kubernetes.io/name".to_owned(),
            "sso-operator".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            component.to_owned(),
        ),
        (
            "sso-operator.dev/identity-provider".to_owned(),
            names::label_value(idp_name),
        ),
    ])
}

#[allow(clippy::too_many_arguments)]
async fn resolve_idp_side(
    idp: &IdentityProvider,
    ctx: &Context,
    ns: &str,
    existing: Option<&CompiledIdentityProvider>,
    now: Timestamp,
    conditions: &mut Vec<Desired>,
    soonest: &mut impl FnMut(Timestamp),
) -> Result<(Option<IdpSide>, Option<Problem>), Error> {
    let spec = &idp.spec.idp;
    let field = certificate_field(idp.spec.provider);
    if let Some(url) = &spec.metadata_url {
        // Never fetched: an example's placeholder URL names no IdP.
        if let Some(problem) = placeholder_problem(idp, &[], conditions) {
            return Ok((None, Some(problem)));
        }
        let interval = config::metadata_refresh_interval(spec);
        let last_good = existing.filter(|c| c.idp.metadata_url.as_deref() == Some(url.as_str()));
        let fetched_at = last_good.and_then(|c| c.idp.metadata_fetched_at);
        // An edited spec is fetched again at once, so an admin can force a refresh.
        let edited =
            idp.status.as_ref().and_then(|s| s.observed_generation) != idp.metadata.generation;
        let key = object_key(idp);
        let failure = ctx
            .metadata_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|f| f.url == *url)
            .cloned();
        let due = edited
            || match &failure {
                // After a failure, wait for the retry time instead of hammering the IdP.
                Some(f) => now >= f.retry_at,
                None => fetched_at.is_none_or(|t| now >= t + interval),
            };
        if !due && let Some(f) = failure {
            soonest(f.retry_at);
            return Ok(match last_good {
                Some(good) => {
                    conditions.push(f.condition);
                    (Some(side_from_compiled(&good.idp, url)), None)
                }
                None => (
                    None,
                    Some(Problem {
                        ready_reason: f.condition.reason,
                        condition: f.condition,
                    }),
                ),
            });
        }
        if !due {
            let good = last_good.expect("fetched_at implies last_good");
            soonest(fetched_at.expect("checked") + interval);
            conditions.push(Desired::yes(
                cond::IDP_METADATA_RESOLVED,
                reason::METADATA_FETCHED,
                format!(
                    "Metadata fetched from {url} at {}",
                    fetched_at.expect("checked")
                ),
            ));
            return Ok((Some(side_from_compiled(&good.idp, url)), None));
        }
        let result = match metadata::fetch(url, &ctx.settings.metadata_fetch).await {
            Ok(xml) => metadata::parse(&xml),
            Err(e) => Err(e),
        };
        let parsed = result.and_then(|md| {
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
                metadata_url: Some(url.clone()),
                metadata_fetched_at: Some(now),
            })
        });
        let remember = |condition: Option<&Desired>| {
            let mut failures = ctx
                .metadata_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match condition {
                Some(c) => failures.insert(
                    key.clone(),
                    MetadataFailure {
                        url: url.clone(),
                        retry_at: now + METADATA_RETRY.min(interval),
                        condition: c.clone(),
                    },
                ),
                None => failures.remove(&key),
            };
        };
        return Ok(match parsed {
            Ok(side) => {
                remember(None);
                soonest(now + interval);
                conditions.push(Desired::yes(cond::IDP_METADATA_RESOLVED, reason::METADATA_FETCHED, format!("Metadata fetched from {url} at {now}: entity ID {}, {} signing certificate(s)", side.entity_id, side.certificates.len())));
                (Some(side), None)
            }
            Err(e) => {
                soonest(now + METADATA_RETRY.min(interval));
                let r = match &e {
                    MetadataError::Refused(_) => reason::METADATA_URL_REFUSED,
                    MetadataError::Fetch(_) => reason::METADATA_FETCH_FAILED,
                    MetadataError::Invalid(_) => reason::INVALID_METADATA,
                };
                if let Some(good) = last_good {
                    let when = good
                        .idp
                        .metadata_fetched_at
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    publish_event(
                        ctx,
                        idp,
                        EventType::Warning,
                        r,
                        format!("Could not refresh the metadata from {url}: {e}"),
                    )
                    .await;
                    let condition = Desired::no(
                        cond::IDP_METADATA_RESOLVED,
                        r,
                        format!(
                            "Could not refresh the metadata from {url}: {e}. The last good metadata (fetched {when}) keeps serving; retrying"
                        ),
                    );
                    remember(Some(&condition));
                    conditions.push(condition);
                    (Some(side_from_compiled(&good.idp, url)), None)
                } else {
                    let message = format!(
                        "Could not use the metadata URL {url}: {e}. Check spec.idp.metadataUrl (the IdP's metadata URL); retrying"
                    );
                    let condition = Desired::no(cond::IDP_METADATA_RESOLVED, r, message);
                    remember(Some(&condition));
                    (
                        None,
                        Some(Problem {
                            condition,
                            ready_reason: r,
                        }),
                    )
                }
            }
        });
    }

    // Explicit fields.
    let (Some(sso_url), Some(entity_id)) = (&spec.sso_url, &spec.entity_id) else {
        conditions.push(Desired::yes(
            cond::IDP_METADATA_RESOLVED,
            reason::EXPLICIT_CONFIGURATION,
            "Using spec.idp.ssoUrl, entityId and certificates",
        ));
        let message =
            "Set spec.idp.metadataUrl, or spec.idp.ssoUrl and spec.idp.entityId".to_owned();
        return Ok((
            None,
            Some(Problem {
                condition: Desired::no(cond::READY, reason::INVALID_CONFIGURATION, message),
                ready_reason: reason::INVALID_CONFIGURATION,
            }),
        ));
    };
    // The values as compiled (trimmed), so that a mismatch with the IdP is visible in status.
    conditions.push(Desired::yes(
        cond::IDP_METADATA_RESOLVED,
        reason::EXPLICIT_CONFIGURATION,
        format!(
            "Using spec.idp.ssoUrl {sso_url}, entityId {entity_id} (the Issuer every response must carry) and certificates"
        ),
    ));
    let sources = spec.certificates.clone().unwrap_or_default();
    if sources.is_empty() {
        let message = format!(
            "No IdP signing certificate is configured, so no response could be verified: paste {field} into spec.idp.certificates"
        );
        return Ok((
            None,
            Some(Problem {
                condition: Desired::no(cond::CERTIFICATES_VALID, reason::NO_CERTIFICATE, message),
                ready_reason: reason::NO_CERTIFICATE,
            }),
        ));
    }
    let mut certificates = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match load_certificate(ctx, ns, i, source).await? {
            Ok((label, text)) => match certs::parse_certificates(&text) {
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
                    return Ok((
                        None,
                        Some(Problem {
                            condition: Desired::no(
                                cond::CERTIFICATES_VALID,
                                reason::CERTIFICATE_INVALID,
                                message,
                            ),
                            ready_reason: reason::CERTIFICATE_INVALID,
                        }),
                    ));
                }
            },
            Err(message) => {
                return Ok((
                    None,
                    Some(Problem {
                        condition: Desired::no(
                            cond::CERTIFICATES_VALID,
                            reason::REFERENCE_NOT_FOUND,
                            message,
                        ),
                        ready_reason: reason::REFERENCE_NOT_FOUND,
                    }),
                ));
            }
        }
    }
    // A placeholder certificate is listed in status, and trusted nowhere.
    let problem = placeholder_problem(idp, &certificates, conditions);
    Ok((
        Some(IdpSide {
            entity_id: entity_id.clone(),
            sso_url: sso_url.clone(),
            single_logout: spec
                .single_logout_url
                .as_ref()
                .map(|url| SingleLogoutService {
                    binding: match spec.single_logout_binding {
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
    ))
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

/// The certificate text of one source, or a message saying what is missing.
async fn load_certificate(
    ctx: &Context,
    ns: &str,
    i: usize,
    source: &CertificateSource,
) -> Result<Result<(String, String), String>, Error> {
    if let Some(pem) = &source.pem {
        return Ok(Ok((format!("spec.idp.certificates[{i}]"), pem.clone())));
    }
    if let Some(r) = &source.secret_key_ref {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let label = format!("secret/{}/{}", r.name, r.key);
        return Ok(match api.get_opt(&r.name).await? {
            None => Err(format!(
                "Secret {} (spec.idp.certificates[{i}].secretKeyRef) does not exist in namespace {ns}: create it with the IdP's signing certificate under key {}",
                r.name, r.key
            )),
            Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                Some(v) => Ok((label, String::from_utf8_lossy(&v.0).into_owned())),
                None => Err(format!(
                    "Secret {} has no key {} (spec.idp.certificates[{i}].secretKeyRef): add the IdP's signing certificate under that key",
                    r.name, r.key
                )),
            },
        });
    }
    if let Some(r) = &source.config_map_key_ref {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let label = format!("configmap/{}/{}", r.name, r.key);
        return Ok(match api.get_opt(&r.name).await? {
            None => Err(format!(
                "ConfigMap {} (spec.idp.certificates[{i}].configMapKeyRef) does not exist in namespace {ns}: create it with the IdP's signing certificate under key {}",
                r.name, r.key
            )),
            Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                Some(v) => Ok((label, v.clone())),
                None => Err(format!(
                    "ConfigMap {} has no key {} (spec.idp.certificates[{i}].configMapKeyRef): add the IdP's signing certificate under that key",
                    r.name, r.key
                )),
            },
        });
    }
    Ok(Err(format!(
        "spec.idp.certificates[{i}] needs one of pem, secretKeyRef or configMapKeyRef"
    )))
}

#[allow(clippy::too_many_arguments)]
fn compile(
    idp: &IdentityProvider,
    ns: &str,
    name: &str,
    urls: &Urls,
    entity_id: String,
    keys: &SpKeySet,
    side: &IdpSide,
    valid: &[CertificateFacts],
    scim_tokens: Vec<CompiledScimToken>,
) -> CompiledIdentityProvider {
    let spec = &idp.spec;
    CompiledIdentityProvider {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: idp.metadata.uid.clone().unwrap_or_default(),
        generation: idp.metadata.generation.unwrap_or(0),
        provider: spec.provider,
        service_provider: CompiledServiceProvider {
            entity_id,
            metadata_url: urls.metadata.clone(),
            acs_url: urls.acs.clone(),
            login_url: urls.login.clone(),
            current: keys.current.pair.clone(),
            next: keys.next.as_ref().map(|k| k.pair.clone()),
            previous: keys.previous.as_ref().map(|k| k.pair.clone()),
        },
        idp: CompiledIdp {
            entity_id: side.entity_id.clone(),
            sso_url: side.sso_url.clone(),
            single_logout: side.single_logout.clone(),
            certificates: valid.iter().map(|f| f.pem.clone()).collect(),
            metadata_url: side.metadata_url.clone(),
            metadata_fetched_at: side.metadata_fetched_at,
        },
        allow_idp_initiated: spec.allow_idp_initiated,
        default_relay_state: spec.default_relay_state.clone(),
        allowed_redirects: spec.allowed_redirects.clone(),
        saml: CompiledSaml::new(&spec.saml),
        attribute_mapping: CompiledAttributeMapping::new(&spec.attribute_mapping),
        users: CompiledUsers::new(&spec.users),
        session: CompiledSession::new(&spec.session),
        scim_base_url: urls.scim_base.clone(),
        scim_tokens,
    }
}

/// The hashes of the SCIM tokens that work now for IdentityProvider `ns/name`, sorted. They
/// come from each ScimToken's spec and Secret (see [`scim_token::credentials`]), never from
/// its status, which anyone allowed to patch `scimtokens/status` could forge.
/// How long an IdentityProvider's reconciliation waits for the ScimToken watch's first list.
const TOKENS_LISTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

async fn token_hashes(
    ctx: &Context,
    ns: &str,
    name: &str,
    now: Timestamp,
    soonest: &mut impl FnMut(Timestamp),
) -> Result<Vec<CompiledScimToken>, Error> {
    // Right after this replica starts leading, its ScimToken watch may not have listed every
    // ScimToken yet: compiling from that partial view would drop valid tokens from the served
    // configuration until the next reconciliation (their IdP would get 401 meanwhile).
    if tokio::time::timeout(TOKENS_LISTED_WITHIN, ctx.tokens.wait_until_ready())
        .await
        .map_or(true, |listed| listed.is_err())
    {
        return Err(Error::NotSynced("ScimToken"));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut out = Vec::new();
    for token in ctx.tokens.state().iter().filter(|t| {
        t.namespace().as_deref() == Some(ns)
            && t.spec.identity_provider_ref.name == name
            && t.meta().deletion_timestamp.is_none()
    }) {
        let secret = secrets
            .get_opt(&scim_token::credential_secret_name(token))
            .await?;
        let Ok(issued) = scim_token::credentials(token, secret.as_ref()) else {
            continue;
        };
        let mut push = |hash: String, not_after: Option<Timestamp>| {
            if not_after.is_none_or(|t| t > now) {
                if let Some(t) = not_after {
                    soonest(t);
                }
                out.push(CompiledScimToken {
                    scim_token: token.name_any(),
                    token_id: scim_token::token_id(&hash),
                    sha256: hash,
                    not_after,
                });
            }
        };
        let expiry = scim_token::current_expiry(token, issued.issued_at);
        push(issued.hash, expiry);
        if let Some((hash, until)) = issued.previous {
            push(hash, Some(until));
        }
    }
    out.sort_by(|a, b| (&a.scim_token, &a.sha256).cmp(&(&b.scim_token, &b.sha256)));
    Ok(out)
}

async fn read_compiled(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<CompiledIdentityProvider>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let secret_name = config::compiled_secret_name(ns, name);
    let secret = match api.get_opt(&secret_name).await? {
        Some(secret) => secret,
        // An earlier release's copy in the operator namespace moves here as it is, so that a
        // last good configuration keeps serving across the upgrade.
        None => match ctx.legacy.read(&secret_name).await? {
            Some(old) => move_compiled(ctx, old).await?,
            None => return Ok(None),
        },
    };
    Ok(secret
        .data
        .as_ref()
        .and_then(|d| d.get(config::CONFIG_KEY))
        .and_then(|v| config::parse(&v.0).ok()))
}

/// The last good configuration of this IdentityProvider: one compiled for a deleted
/// IdentityProvider of the same name (another UID) is removed, never served again; one
/// compiled by an earlier release, without a UID, is this one's and gets its UID.
async fn own_compiled(
    ctx: &Context,
    idp: &IdentityProvider,
    ns: &str,
    name: &str,
) -> Result<Option<CompiledIdentityProvider>, Error> {
    let Some(mut compiled) = read_compiled(ctx, ns, name).await? else {
        return Ok(None);
    };
    let uid = idp.uid().unwrap_or_default();
    if compiled.uid.is_empty() {
        compiled.uid = uid;
        publish_compiled(ctx, &compiled).await?;
    } else if compiled.uid != uid {
        delete_compiled(ctx, ns, name).await?;
        return Ok(None);
    }
    Ok(Some(compiled))
}

async fn publish_compiled(ctx: &Context, compiled: &CompiledIdentityProvider) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let name = config::compiled_secret_name(&compiled.namespace, &compiled.name);
    let mut labels = labels(&compiled.name, "compiled-config");
    labels.insert(config::COMPILED_CONFIG_LABEL.to_owned(), "true".to_owned());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                config::SOURCE_ANNOTATION.to_owned(),
                compiled.tenant().to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            config::CONFIG_KEY.to_owned(),
            ByteString(config::to_json(compiled)?),
        )])),
        ..Default::default()
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    ctx.legacy.remove(&name).await?;
    Ok(())
}

/// Copies an earlier release's compiled-config Secret, as it is, into the configuration
/// namespace.
async fn move_compiled(ctx: &Context, old: Secret) -> Result<Secret, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let name = old.name_any();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: old.metadata.labels,
            annotations: old.metadata.annotations,
            ..Default::default()
        },
        type_: old.type_,
        data: old.data,
        ..Default::default()
    };
    let moved = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    ctx.legacy.remove(&name).await?;
    Ok(moved)
}

/// Writes status (server-side apply on the status subresource) and emits an Event when the
/// Ready condition changes.
async fn finish(
    idp: &IdentityProvider,
    ctx: &Context,
    mut status: IdentityProviderStatus,
    desired: Vec<Desired>,
    previous: &IdentityProviderStatus,
    now: Timestamp,
) -> Result<(), Error> {
    let generation = idp.metadata.generation.unwrap_or(0);
    status.conditions = cond::merge(&previous.conditions, &desired, generation, now);
    let new_ready = cond::find(&status.conditions, cond::READY).cloned();
    let old_ready = cond::find(&previous.conditions, cond::READY);
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<IdentityProvider> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": "sso-operator.dev/v1alpha1",
        "kind": "IdentityProvider",
        "status": status,
    });
    api.patch_status(
        &idp.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    if let Some(ready) = &new_ready {
        ctx.metrics.set_ready(
            KIND,
            object_key(idp),
            Some((ready.status.clone(), ready.reason.clone())),
        );
        let changed =
            old_ready.is_none_or(|o| o.status != ready.status || o.reason != ready.reason);
        if changed {
            let type_ = if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish_event(ctx, idp, type_, &ready.reason, ready.message.clone()).await;
            tracing::info!(identity_provider = %object_key(idp), ready = %ready.status, reason = %ready.reason, "Ready condition changed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_cannot_verify_the_algorithm_says_what_to_change() {
        let mut f = certs::parse_certificate(
            &String::from_utf8(
                certs::tests::make_cert("okta", 1_700_000_000, 2_000_000_000)
                    .to_pem()
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
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
}
