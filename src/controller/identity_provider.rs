//! Reconciles an IdentityProvider: service-provider keys, the IdP side (explicit fields or
//! metadata URL), certificate checks, the compiled runtime configuration and status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
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
use super::metadata;
use super::scim_token;
use super::sp_keys::{self, SpKeySet};
use super::{
    Context, Error, FIELD_MANAGER, is_controlled_by, is_left_by_previous_incarnation, names,
    object_key, owner_reference, publish_event,
};
use super::{oidc_client, oidc_keys};
use crate::api::conditions::{self as cond, Desired};
use crate::api::identity_provider::CertificateSource;
use crate::api::{IdentityProvider, IdentityProviderStatus};
use crate::config::{
    self, CompiledAttributeMapping, CompiledIdentityProvider, CompiledIdp, CompiledSaml,
    CompiledScimToken, CompiledServiceProvider, CompiledSession, CompiledUsers, Urls,
    oidc::CompiledOidc,
};
use crate::tenant::Tenant;

const KIND: &str = "IdentityProvider";
/// Finalizer that removes the compiled configuration, which lives in another namespace and so
/// cannot be garbage-collected through an owner reference.
pub const FINALIZER: &str = "sso-operator.dev/compiled-config";

mod policy;

pub(crate) use policy::GARBAGE_COLLECTION_RECHECK;
pub use policy::MetadataFailure;
use policy::{IdpSide, LoadedCertificates, Outcome, Resolution, Served};

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
    oidc_keys::delete(ctx, &ns, &idp.name_any()).await?;
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

/// Gathers the facts, lets [`policy`] decide, and writes what it decided: the service-provider
/// keys, the compiled configuration (or its removal), status and events.
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
    let mut status = policy::initial_status(idp, &urls, &entity_id, &previous_status);
    let mut out = Outcome::default();

    // Service-provider keys (kept while disabled, so re-enabling changes nothing in the IdP).
    let keys = ensure_sp_keys(idp, ctx, &ns, &name, now).await?;
    let keys = policy::assess_keys(keys, ctx.settings.sp_rotation.renew_before, &mut out);

    // Disabled: stop serving at once, report, keep everything else.
    if idp.spec.disabled {
        delete_compiled(ctx, &ns, &name).await?;
        policy::disabled(&mut out);
        finish(idp, ctx, status, out.conditions, &previous_status, now).await?;
        return Ok(Action::await_change());
    }

    // The IdP side, then its certificates and settings.
    let existing = own_compiled(ctx, idp, &ns, &name).await?;
    let resolution = resolve_idp_side(idp, ctx, &ns, existing.as_ref(), now, &mut out).await?;
    if let Some(fetched) = resolution.side.as_ref().and_then(|s| s.metadata_fetched_at) {
        status.metadata_fetch_time = Some(Time(fetched));
    }
    let assessment = policy::assess(&idp.spec, resolution, now, &mut out);
    status.certificates = assessment.certificates.listed.clone();
    status.certificate_not_after = assessment.certificates.not_after.clone();

    // Compile and publish, or keep the last good configuration.
    let served = match (&keys, &assessment.side) {
        (Some(keys), Some(side)) if assessment.compiles(true) => {
            let scim_tokens = token_hashes(ctx, &ns, &name, now, &mut |t| out.requeue(t)).await?;
            let oidc = openid_provider(ctx, idp, &urls, now, &mut |t| out.requeue(t)).await?;
            let compiled = compile(CompileInputs {
                idp,
                ns: &ns,
                name: &name,
                urls: &urls,
                entity_id: entity_id.clone(),
                keys,
                side,
                valid: &assessment.certificates.valid,
                scim_tokens,
                oidc,
            });
            publish_compiled(ctx, &compiled).await?;
            Served::Published { generation }
        }
        _ => existing
            .as_ref()
            .map_or(Served::Nothing, |old| Served::LastGood {
                generation: old.generation,
            }),
    };
    policy::conclude(
        assessment.problem.as_ref(),
        served,
        keys.is_some(),
        &urls,
        &entity_id,
        &mut out,
    );
    finish(idp, ctx, status, out.conditions, &previous_status, now).await?;

    Ok(super::requeue_until(out.requeue_at))
}

/// Loads, creates or rotates the SP keys. The inner `Err` says why they cannot be stored.
async fn ensure_sp_keys(
    idp: &IdentityProvider,
    ctx: &Context,
    ns: &str,
    name: &str,
    now: Timestamp,
) -> Result<Result<(SpKeySet, Timestamp), policy::KeysBlocked>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret_name = sp_secret_name(name);
    let uid = idp.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let existing = api.get_opt(&secret_name).await?;
    if let Some(s) = &existing
        && !is_controlled_by(&s.metadata, &uid)
    {
        return Ok(Err(policy::keys_blocked(
            &secret_name,
            ns,
            name,
            is_left_by_previous_incarnation(&s.metadata, idp),
            now,
        )));
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

/// The labels of an object generated for IdentityProvider `idp_name`, as its `component`.
pub(crate) fn labels(idp_name: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = super::generated_labels(component);
    labels.insert(
        "sso-operator.dev/identity-provider".to_owned(),
        names::label_value(idp_name),
    );
    labels
}

/// Reads what the IdP side needs (the metadata when a fetch is due, or the referenced
/// certificates), lets [`policy`] resolve it, and records the fetch outcome and its events.
async fn resolve_idp_side(
    idp: &IdentityProvider,
    ctx: &Context,
    ns: &str,
    existing: Option<&CompiledIdentityProvider>,
    now: Timestamp,
    out: &mut Outcome,
) -> Result<Resolution, Error> {
    let spec = &idp.spec.idp;
    let Some(url) = &spec.metadata_url else {
        let loaded = if policy::reads_certificates(spec) {
            load_certificates(ctx, ns, spec.certificates.as_deref().unwrap_or_default()).await?
        } else {
            Vec::new()
        };
        return Ok(policy::explicit_side(&idp.spec, &loaded, out));
    };
    let key = object_key(idp);
    let remembered = ctx
        .metadata_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let facts = policy::MetadataFacts::new(idp, url, existing, remembered, now);
    let fetched = if policy::should_fetch(&idp.spec, &facts) {
        Some(metadata::fetch(url, &ctx.settings.metadata_fetch).await)
    } else {
        None
    };
    let (resolution, memory) = policy::metadata_side(&idp.spec, facts, fetched, out);
    for warning in out.events.drain(..) {
        publish_event(
            ctx,
            idp,
            EventType::Warning,
            warning.reason,
            warning.message,
        )
        .await;
    }
    let mut failures = ctx
        .metadata_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    memory.apply_to(&mut failures, &key);
    Ok(resolution)
}

/// Reads the certificate text of each source in order, up to the first one that is missing
/// or holds no certificate: the sources after it are not read, as they would not be used.
async fn load_certificates(
    ctx: &Context,
    ns: &str,
    sources: &[CertificateSource],
) -> Result<LoadedCertificates, Error> {
    let mut loaded = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let entry = load_certificate(ctx, ns, i, source).await?;
        let unusable = entry
            .as_ref()
            .is_ok_and(|(_, text)| certs::parse_certificates(text).is_err());
        let last = entry.is_err() || unusable;
        loaded.push(entry);
        if last {
            break;
        }
    }
    Ok(loaded)
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

/// What [`compile`] builds a runtime configuration from.
struct CompileInputs<'a> {
    idp: &'a IdentityProvider,
    ns: &'a str,
    name: &'a str,
    urls: &'a Urls,
    entity_id: String,
    keys: &'a SpKeySet,
    side: &'a IdpSide,
    valid: &'a [CertificateFacts],
    scim_tokens: Vec<CompiledScimToken>,
    oidc: Option<CompiledOidc>,
}

fn compile(inputs: CompileInputs<'_>) -> CompiledIdentityProvider {
    let CompileInputs {
        idp,
        ns,
        name,
        urls,
        entity_id,
        keys,
        side,
        valid,
        scim_tokens,
        oidc,
    } = inputs;
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
        oidc,
    }
}

/// The hashes of the SCIM tokens that work now for IdentityProvider `ns/name`, sorted. They
/// come from each ScimToken's spec and Secret (see [`scim_token::credentials`]), never from
/// its status, which anyone allowed to patch `scimtokens/status` could forge.
/// How long an IdentityProvider's reconciliation waits for the ScimToken watch's first list.
const TOKENS_LISTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits (up to [`TOKENS_LISTED_WITHIN`]) until `store`'s watch of `kind` has listed every
/// object once.
async fn listed<K>(store: &Store<K>, kind: &'static str) -> Result<(), Error>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(TOKENS_LISTED_WITHIN, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(Error::NotSynced(kind)),
    }
}

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
    listed(&ctx.tokens, "ScimToken").await?;
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

/// The OpenID Provider of `idp`, once at least one OidcClient references it: its signing keys
/// (created or rotated here) and one relying party per OidcClient, with the client secret
/// hashes read from the Secret each OidcClient owns (never from its status). An OidcClient
/// whose client ID an older one holds is left out. With no OidcClient left, the signing keys
/// are deleted and there is none.
async fn openid_provider(
    ctx: &Context,
    idp: &IdentityProvider,
    urls: &Urls,
    now: Timestamp,
    soonest: &mut impl FnMut(Timestamp),
) -> Result<Option<CompiledOidc>, Error> {
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let name = idp.name_any();
    // As for ScimTokens: compiling from a partial view would drop clients.
    listed(&ctx.oidc_clients, "OidcClient").await?;
    let all = ctx.oidc_clients.state();
    let mine: Vec<_> = all
        .iter()
        .filter(|c| {
            c.namespace().as_deref() == Some(ns.as_str())
                && c.spec.identity_provider_ref.name == name
                && c.meta().deletion_timestamp.is_none()
        })
        .collect();
    if mine.is_empty() {
        oidc_keys::delete(ctx, &ns, &name).await?;
        return Ok(None);
    }
    let (signing_keys, next_key_change) = oidc_keys::ensure(ctx, idp, now).await?;
    if let Some(t) = next_key_change {
        soonest(t);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut clients = Vec::new();
    for client in mine {
        if oidc_client::client_id_holder(client, &all).is_some() {
            continue;
        }
        let issued = if client.spec.public {
            None
        } else {
            let secret = secrets.get_opt(&oidc_client::secret_name(client)).await?;
            oidc_client::credentials(client, secret.as_ref())
        };
        if let Some(until) = issued
            .as_ref()
            .and_then(|i| i.previous.as_ref())
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
        {
            soonest(until);
        }
        clients.extend(oidc_client::compile(client, issued.as_ref(), now));
    }
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(Some(CompiledOidc {
        issuer: urls.oidc_issuer.clone(),
        signing_keys,
        clients,
    }))
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
