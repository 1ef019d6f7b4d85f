//! Reconciles a ScimToken: issues the bearer token into a Secret with the SCIM base URL,
//! rotates it with an overlap, enforces expiry, and reports status. The server only ever sees
//! the token's SHA-256, through the IdentityProvider's compiled configuration.
//!
//! Which tokens work is decided from what only the operator (and those who may write the
//! Secrets anyway) can change: the ScimToken's spec and its Secret, where the previous token's
//! hash and the end of its overlap are kept as annotations. Status is a report rebuilt from
//! them, never read back: a forged or dropped status changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use rand::RngCore;

use super::{
    Context, Error, FIELD_MANAGER, MANAGED_BY, is_controlled_by, is_left_by_previous_incarnation,
    names, object_key, owner_reference, publish_event,
};
use crate::api::conditions::{self as cond, Desired, reason};
use crate::api::scim_token::Rotation;
use crate::api::{Duration, IdentityProvider, ScimToken, ScimTokenStatus};
use crate::config::Urls;

const KIND: &str = "ScimToken";
/// Prefix of generated tokens, so that secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "ssoscim_";
/// Annotation on a ScimToken: changing its value issues a new token.
pub const ROTATE_ANNOTATION: &str = "sso-operator.dev/rotate";
/// Shortest accepted bring-your-own token.
pub const MIN_TOKEN_LENGTH: usize = 32;
const ISSUED_AT: &str = "sso-operator.dev/issued-at";
const ROTATION_REQUEST: &str = "sso-operator.dev/rotation-request";
const PREVIOUS_HASH: &str = "sso-operator.dev/previous-token-sha256";
const PREVIOUS_UNTIL: &str = "sso-operator.dev/previous-token-valid-until";
/// Annotation a bring-your-own token Secret must carry, naming the ScimToken allowed to use it
/// (`spec.tokenSecretRef`): without it a ScimToken could turn any Secret of its namespace into
/// a SCIM credential.
pub const TOKEN_SECRET_ANNOTATION: &str = "sso-operator.dev/scim-token";

/// Generates a token: the prefix and 256 random bits, base64url.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub use crate::config::token_hash;

/// The non-secret identifier of a token: the first 12 hex digits of its hash.
pub fn token_id(hash: &str) -> String {
    hash.chars().take(12).collect()
}

fn is_generated_token(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rest)
                .is_ok_and(|b| b.len() == 32)
    })
}

/// The Secret a ScimToken writes its token to: `spec.secretName`, or `{name}-scim-token`
/// (shortened with a hash for names too long for that).
pub fn secret_name(token: &ScimToken) -> String {
    token
        .spec
        .secret_name
        .clone()
        .unwrap_or_else(|| names::generated_name(&token.name_any(), "-scim-token"))
}

/// ScimTokens that name this IdentityProvider.
pub fn referencing_idp(
    tokens: &Store<ScimToken>,
    idp: &IdentityProvider,
) -> Vec<ObjectRef<ScimToken>> {
    let (ns, name) = (idp.namespace(), idp.name_any());
    tokens
        .state()
        .iter()
        .filter(|t| t.namespace() == ns && t.spec.identity_provider_ref.name == name)
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// ScimTokens that read (bring-your-own) or write this Secret.
pub fn referencing_secret<K: Resource>(
    tokens: &Store<ScimToken>,
    secret: &K,
) -> Vec<ObjectRef<ScimToken>> {
    let (ns, name) = (secret.namespace(), secret.name_any());
    tokens
        .state()
        .iter()
        .filter(|t| t.namespace() == ns && credential_secret_name(t) == name)
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// Reconcile entry point.
pub async fn reconcile(token: Arc<ScimToken>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let key = object_key(token.as_ref());
    let result = if token.meta().deletion_timestamp.is_some() {
        // Its Secret goes with it (owner reference); the IdentityProvider recompiles without it.
        ctx.metrics.set_ready(KIND, key.clone(), None);
        Ok(Action::await_change())
    } else {
        apply(&token, &ctx).await
    };
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
pub fn error_policy(token: Arc<ScimToken>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(token.as_ref());
    let delay = ctx.backoff(&key);
    tracing::warn!(scim_token = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The current and previous token of a ScimToken, as its Secret establishes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// SHA-256 of the current token, hex.
    pub hash: String,
    /// When the operator issued the current token; none for a token you bring.
    pub issued_at: Option<Timestamp>,
    /// SHA-256 of the previous token (hex) and the end of its overlap, after a rotation.
    pub previous: Option<(String, Timestamp)>,
    /// The Secret holding the current token.
    pub secret_name: String,
}

/// Why a ScimToken's Secret yields no token: a condition reason and a message saying what to
/// do.
pub type Refusal = (&'static str, String);

/// When the current token of `token`, issued at `issued_at`, stops working: `spec.expiresAt`,
/// or the end of the overlap after its scheduled successor, whichever comes first.
pub fn current_expiry(token: &ScimToken, issued_at: Option<Timestamp>) -> Option<Timestamp> {
    let spec_expiry = token.spec.expires_at.as_ref().map(|t| t.0);
    let rotation_expiry = match (rotation_every(token), issued_at) {
        (Some(every), Some(at)) => Some(at + every + rotation_overlap(token)),
        _ => None,
    };
    match (spec_expiry, rotation_expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn rotation_every(token: &ScimToken) -> Option<SignedDuration> {
    token
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.every.as_ref())
        .map(Duration::get)
}

/// `rotation.overlap`, at most [`LONGEST_OVERLAP`]: the schema bounds it only below
/// `rotation.every`, and without `every` any length would do.
fn rotation_overlap(token: &ScimToken) -> SignedDuration {
    token
        .spec
        .rotation
        .as_ref()
        .map_or_else(|| Rotation::default().overlap.get(), |r| r.overlap.get())
        .min(LONGEST_OVERLAP)
}

/// The longest overlap: a previous token's end (`now + overlap`) must remain a time.
const LONGEST_OVERLAP: SignedDuration = SignedDuration::from_hours(24 * 365 * 1000);

/// The Secret `token`'s credentials are read from: `spec.tokenSecretRef`, or the Secret the
/// operator writes.
pub fn credential_secret_name(token: &ScimToken) -> String {
    match &token.spec.token_secret_ref {
        Some(r) => r.name.clone(),
        None => secret_name(token),
    }
}

/// The tokens `secret` (read from [`credential_secret_name`]) holds for `token`, trusting only
/// what the operator controls: a generated token counts only from a Secret this very ScimToken
/// controls, with the previous token and its overlap from that Secret's annotations; a token
/// you bring counts only from a Secret that names this ScimToken in the
/// `sso-operator.dev/scim-token` annotation and that the operator does not manage.
pub fn credentials(token: &ScimToken, secret: Option<&Secret>) -> Result<Issued, Refusal> {
    match &token.spec.token_secret_ref {
        Some(r) => own_token(token, secret, &r.name, &r.key),
        None => generated_credentials(token, secret),
    }
}

fn generated_credentials(token: &ScimToken, secret: Option<&Secret>) -> Result<Issued, Refusal> {
    let name = secret_name(token);
    let not_yet = || {
        (
            reason::TOKEN_INVALID,
            format!("No token has been issued into Secret {name} yet"),
        )
    };
    let secret = secret.ok_or_else(not_yet)?;
    let uid = token.uid().unwrap_or_default();
    if uid.is_empty() || !is_controlled_by(&secret.metadata, &uid) {
        return Err(not_yet());
    }
    let current = secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .filter(|t| is_generated_token(t))
        .ok_or_else(not_yet)?;
    let annotations = secret.annotations();
    let issued_at: Timestamp = annotations
        .get(ISSUED_AT)
        .and_then(|t| t.parse().ok())
        .ok_or_else(not_yet)?;
    Ok(Issued {
        hash: token_hash(current),
        issued_at: Some(issued_at),
        previous: previous_of(annotations),
        secret_name: name,
    })
}

/// The previous token's hash and overlap end, from a generated token Secret's annotations.
fn previous_of(annotations: &BTreeMap<String, String>) -> Option<(String, Timestamp)> {
    let hash = annotations
        .get(PREVIOUS_HASH)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let until = annotations.get(PREVIOUS_UNTIL)?.parse().ok()?;
    Some((hash.to_ascii_lowercase(), until))
}

/// Whether the operator manages `meta`'s object (a token, key or compiled-configuration
/// Secret): such a Secret is never a token you bring, whatever its annotations say.
fn is_operator_managed(meta: &ObjectMeta) -> bool {
    let labels = meta.labels.as_ref();
    labels
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
        || labels.is_some_and(|l| l.contains_key(crate::config::COMPILED_CONFIG_LABEL))
        || meta.owner_references.as_ref().is_some_and(|refs| {
            refs.iter()
                .any(|r| r.api_version.starts_with("sso-operator.dev/"))
        })
}

fn own_token(
    token: &ScimToken,
    secret: Option<&Secret>,
    name: &str,
    key: &str,
) -> Result<Issued, Refusal> {
    let ns = token.namespace().unwrap_or_default();
    let me = token.name_any();
    let Some(s) = secret else {
        return Err((
            reason::TOKEN_INVALID,
            format!(
                "Secret {name} (spec.tokenSecretRef) does not exist in namespace {ns}: create it with the token under key {key} and the annotation {TOKEN_SECRET_ANNOTATION}: {me}"
            ),
        ));
    };
    if is_operator_managed(&s.metadata) {
        return Err((
            reason::TOKEN_SECRET_REFUSED,
            format!(
                "Secret {name} (spec.tokenSecretRef) is managed by sso-operator and never holds a token you bring: put your token in a Secret of your own, annotated {TOKEN_SECRET_ANNOTATION}: {me}, or remove spec.tokenSecretRef to have a token generated"
            ),
        ));
    }
    if s.annotations()
        .get(TOKEN_SECRET_ANNOTATION)
        .map(String::as_str)
        != Some(me.as_str())
    {
        return Err((
            reason::TOKEN_SECRET_REFUSED,
            format!(
                "Secret {name} (spec.tokenSecretRef) does not allow ScimToken {me} to use it: add the annotation {TOKEN_SECRET_ANNOTATION}: {me} to the Secret (kubectl annotate secret {name} -n {ns} {TOKEN_SECRET_ANNOTATION}={me})"
            ),
        ));
    }
    let Some(value) = s.data.as_ref().and_then(|d| d.get(key)) else {
        return Err((
            reason::TOKEN_INVALID,
            format!(
                "Secret {name} has no key {key} (spec.tokenSecretRef): put the token under that key"
            ),
        ));
    };
    let Ok(value) = std::str::from_utf8(&value.0) else {
        return Err((
            reason::TOKEN_INVALID,
            format!("The token in Secret {name} key {key} is not text"),
        ));
    };
    let value = value.trim();
    if value.len() < MIN_TOKEN_LENGTH || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err((
            reason::TOKEN_INVALID,
            format!(
                "The token in Secret {name} key {key} must be at least {MIN_TOKEN_LENGTH} printable characters without spaces: generate one with `openssl rand -base64 32`"
            ),
        ));
    }
    Ok(Issued {
        hash: token_hash(value),
        issued_at: None,
        previous: None,
        secret_name: name.to_owned(),
    })
}

async fn apply(token: &ScimToken, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    let ns = token
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let name = token.name_any();
    let generation = token.metadata.generation.unwrap_or(0);
    let idp_name = &token.spec.identity_provider_ref.name;
    let urls = Urls::new(&ctx.settings.external_url, &ns, idp_name);
    let previous_status = token.status.clone().unwrap_or_default();
    // Read from the API server, not the IdentityProvider controller's cache: the event that
    // triggered this reconcile may reach us before that cache has seen it (a deleted
    // IdentityProvider would otherwise look alive until the next periodic requeue). An
    // IdentityProvider being deleted counts as gone.
    let idp = Api::<IdentityProvider>::namespaced(ctx.client.clone(), &ns)
        .get_opt(idp_name)
        .await?
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .map(std::sync::Arc::new);
    let spec_expiry = token.spec.expires_at.as_ref().map(|t| t.0);
    let expired = spec_expiry.is_some_and(|t| t <= now);
    let rotation_every = rotation_every(token);
    let overlap = rotation_overlap(token);

    let issued = if let Some(r) = &token.spec.token_secret_ref {
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&r.name)
            .await?;
        credentials(token, secret.as_ref())
    } else {
        issue(
            token,
            ctx,
            &ns,
            &urls,
            now,
            rotation_every,
            overlap,
            expired,
        )
        .await?
    };

    let mut status = ScimTokenStatus {
        observed_generation: Some(generation),
        scim_base_url: Some(urls.scim_base.clone()),
        ..Default::default()
    };
    let mut requeue_at: Option<Timestamp> = None;
    let mut soonest =
        |t: Timestamp| requeue_at = Some(requeue_at.map_or(t, |r: Timestamp| r.min(t)));
    let mut problem: Option<(&'static str, String)> = None;
    match issued {
        Ok(issued) => {
            if let (Some(every), Some(at)) = (rotation_every, issued.issued_at) {
                soonest(at + every);
            }
            let expires_at = current_expiry(token, issued.issued_at);
            if let Some(t) = expires_at {
                soonest(t);
            }
            status.secret_name = Some(issued.secret_name);
            status.token_id = Some(token_id(&issued.hash));
            status.expires_at = expires_at.map(Time);
            status.last_rotation_time = issued.issued_at.map(Time);
            if let Some((hash, until)) = issued.previous.filter(|(_, until)| *until > now) {
                soonest(until);
                status.previous_token_id = Some(token_id(&hash));
                status.previous_token_expires_at = Some(Time(until));
            }
        }
        Err(p) => {
            if p.0 == reason::WAITING_FOR_GARBAGE_COLLECTION {
                soonest(now + super::identity_provider::GARBAGE_COLLECTION_RECHECK);
            }
            problem = Some(p);
        }
    }

    let mut conditions = Vec::new();
    if expired {
        let when = spec_expiry.map(|t| t.to_string()).unwrap_or_default();
        conditions.push(Desired::yes(
            cond::EXPIRED,
            reason::EXPIRED,
            format!("The token expired at {when} and no longer works"),
        ));
    } else {
        conditions.push(Desired::no(
            cond::EXPIRED,
            reason::NOT_EXPIRED,
            match spec_expiry {
                Some(t) => format!("Works until {t}"),
                None => "No expiry set".to_owned(),
            },
        ));
    }
    let ready = if expired {
        Desired::no(
            cond::READY,
            reason::EXPIRED,
            format!(
                "The token expired at {} and no longer works: set a later spec.expiresAt, or remove it",
                spec_expiry.map(|t| t.to_string()).unwrap_or_default()
            ),
        )
    } else if let Some((r, message)) = problem {
        Desired::no(cond::READY, r, message)
    } else {
        match idp.as_deref() {
            None => Desired::no(
                cond::READY,
                reason::IDENTITY_PROVIDER_NOT_FOUND,
                format!(
                    "IdentityProvider {idp_name} does not exist in namespace {ns}: create it, or correct spec.identityProviderRef.name. The token starts working as soon as it exists"
                ),
            ),
            Some(i) if i.spec.disabled => Desired::no(
                cond::READY,
                reason::IDENTITY_PROVIDER_DISABLED,
                format!(
                    "IdentityProvider {idp_name} is disabled, so SCIM requests are refused: set its spec.disabled to false"
                ),
            ),
            Some(_) => Desired::yes(
                cond::READY,
                reason::READY,
                format!(
                    "Paste into the IdP: SCIM base URL {} (Okta: SCIM connector base URL; Entra: Tenant URL) and the token from Secret {} key token (Okta: Authorization under Authentication Mode HTTP Header; Entra: Secret Token)",
                    urls.scim_base,
                    status.secret_name.as_deref().unwrap_or("")
                ),
            ),
        }
    };
    conditions.push(ready);
    status.conditions = cond::merge(&previous_status.conditions, &conditions, generation, now);

    let api: Api<ScimToken> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken", "status": status });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    if let Some(ready) = cond::find(&status.conditions, cond::READY) {
        ctx.metrics.set_ready(
            KIND,
            object_key(token),
            Some((ready.status.clone(), ready.reason.clone())),
        );
        let old = cond::find(&previous_status.conditions, cond::READY);
        if old.is_none_or(|o| o.status != ready.status || o.reason != ready.reason) {
            let type_ = if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            };
            publish_event(ctx, token, type_, &ready.reason, ready.message.clone()).await;
        }
    }
    Ok(super::requeue_until(requeue_at))
}

/// Issues or rotates the generated token and writes its Secret.
#[allow(clippy::too_many_arguments)]
async fn issue(
    token: &ScimToken,
    ctx: &Context,
    ns: &str,
    urls: &Urls,
    now: Timestamp,
    every: Option<SignedDuration>,
    overlap: SignedDuration,
    expired: bool,
) -> Result<Result<Issued, Refusal>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = secret_name(token);
    let uid = token.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let existing = api.get_opt(&name).await?;
    if let Some(s) = &existing
        && is_left_by_previous_incarnation(&s.metadata, token)
    {
        return Ok(Err((
            reason::WAITING_FOR_GARBAGE_COLLECTION,
            format!(
                "Secret {name} holds the token of the deleted ScimToken {} this one replaces; a new token is issued as soon as Kubernetes' garbage collector removes it (the deleted one's token never works again). If it stays, delete it: kubectl delete secret {name} -n {ns}",
                token.name_any()
            ),
        )));
    }
    if let Some(s) = &existing
        && !is_controlled_by(&s.metadata, &uid)
    {
        return Ok(Err((
            reason::SECRET_CONFLICT,
            format!(
                "Secret {name} already exists and is not managed by this ScimToken: delete it, or set spec.secretName to another name"
            ),
        )));
    }
    let annotations = existing
        .as_ref()
        .map(|s| s.annotations().clone())
        .unwrap_or_default();
    let current = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get("token"))
        .and_then(|v| std::str::from_utf8(&v.0).ok().map(str::to_owned))
        .filter(|t| is_generated_token(t));
    let issued_at: Option<Timestamp> = annotations.get(ISSUED_AT).and_then(|t| t.parse().ok());
    let requested = token
        .annotations()
        .get(ROTATE_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let honoured = annotations
        .get(ROTATION_REQUEST)
        .cloned()
        .unwrap_or_default();
    let previous_stored = previous_of(&annotations);
    let scheduled = matches!((every, issued_at), (Some(e), Some(at)) if now >= at + e);
    let needs_new = current.is_none() || issued_at.is_none() || scheduled || requested != honoured;
    // The Secret must also follow a changed SCIM base URL (new external URL).
    let url_changed = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get("scimBaseUrl"))
        .is_none_or(|v| v.0 != urls.scim_base.as_bytes());

    if !needs_new || expired {
        if let (Some(current), Some(at)) = (&current, issued_at) {
            if url_changed {
                write_secret(
                    &api,
                    token,
                    &name,
                    current,
                    urls,
                    at,
                    &honoured,
                    previous_stored.as_ref(),
                )
                .await?;
            }
            return Ok(Ok(Issued {
                hash: token_hash(current),
                issued_at: Some(at),
                previous: previous_stored,
                secret_name: name,
            }));
        }
        if expired {
            return Ok(Err((
                reason::EXPIRED,
                "The token expired before it was issued".to_owned(),
            )));
        }
    }

    let new_token = generate_token();
    let previous = current.as_ref().map(|old| (token_hash(old), now + overlap));
    write_secret(
        &api,
        token,
        &name,
        &new_token,
        urls,
        now,
        &requested,
        previous.as_ref(),
    )
    .await?;
    let what = if current.is_some() {
        format!(
            "Issued a new token into Secret {name}; the previous one keeps working until {}",
            now + overlap
        )
    } else {
        format!("Issued a token into Secret {name}")
    };
    publish_event(ctx, token, EventType::Normal, "TokenIssued", what).await;
    tracing::info!(scim_token = %object_key(token), token_id = %token_id(&token_hash(&new_token)), "issued a SCIM token");
    Ok(Ok(Issued {
        hash: token_hash(&new_token),
        issued_at: Some(now),
        previous,
        secret_name: name,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn write_secret(
    api: &Api<Secret>,
    token: &ScimToken,
    name: &str,
    value: &str,
    urls: &Urls,
    issued_at: Timestamp,
    rotation_request: &str,
    previous: Option<&(String, Timestamp)>,
) -> Result<(), Error> {
    let mut annotations = BTreeMap::from([
        (ISSUED_AT.to_owned(), issued_at.to_string()),
        (ROTATION_REQUEST.to_owned(), rotation_request.to_owned()),
    ]);
    if let Some((hash, until)) = previous {
        annotations.insert(PREVIOUS_HASH.to_owned(), hash.clone());
        annotations.insert(PREVIOUS_UNTIL.to_owned(), until.to_string());
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (
                    "app.kubernetes.io/name".to_owned(),
                    "sso-operator".to_owned(),
                ),
                (
                    "app.kubernetes.io/component".to_owned(),
                    "scim-token".to_owned(),
                ),
            ])),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(token)?]),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            ("token".to_owned(), ByteString(value.as_bytes().to_vec())),
            (
                "scimBaseUrl".to_owned(),
                ByteString(urls.scim_base.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_256_bit_and_unique() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(is_generated_token(&a));
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert!(!is_generated_token("ssoscim_short"));
        assert!(!is_generated_token(&a.replace(TOKEN_PREFIX, "other___")));
    }

    #[test]
    fn token_ids_are_hash_prefixes_not_token_prefixes() {
        let t = generate_token();
        let h = token_hash(&t);
        assert_eq!(h.len(), 64);
        assert_eq!(token_id(&h), h[..12]);
        assert!(!t.contains(&token_id(&h)));
    }

    fn byo(name: &str) -> ScimToken {
        let mut t: ScimToken = serde_json::from_value(serde_json::json!({
            "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken",
            "metadata": { "name": name, "namespace": "ns", "uid": "u1" },
            "spec": { "identityProviderRef": { "name": "okta" },
                      "tokenSecretRef": { "name": "s", "key": "token" } }
        }))
        .unwrap();
        t.metadata.uid = Some("u1".into());
        t
    }

    fn secret(annotations: serde_json::Value, labels: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "s", "namespace": "ns", "annotations": annotations, "labels": labels },
            "data": { "token": base64::engine::general_purpose::STANDARD.encode("a-token-you-bring-0123456789abcdef") }
        }))
        .unwrap()
    }

    #[test]
    fn a_token_you_bring_needs_the_annotation_naming_its_scim_token() {
        let t = byo("okta");
        let none = credentials(
            &t,
            Some(&secret(serde_json::json!({}), serde_json::json!({}))),
        );
        let (r, message) = none.unwrap_err();
        assert_eq!(r, reason::TOKEN_SECRET_REFUSED);
        assert!(
            message.contains("sso-operator.dev/scim-token: okta"),
            "{message}"
        );
        let other = secret(
            serde_json::json!({ TOKEN_SECRET_ANNOTATION: "other" }),
            serde_json::json!({}),
        );
        assert!(credentials(&t, Some(&other)).is_err());
        let mine = secret(
            serde_json::json!({ TOKEN_SECRET_ANNOTATION: "okta" }),
            serde_json::json!({}),
        );
        assert_eq!(
            credentials(&t, Some(&mine)).unwrap().hash,
            token_hash("a-token-you-bring-0123456789abcdef")
        );
        for labels in [
            serde_json::json!({ MANAGED_BY.0: MANAGED_BY.1 }),
            serde_json::json!({ crate::config::COMPILED_CONFIG_LABEL: "true" }),
        ] {
            let managed = secret(
                serde_json::json!({ TOKEN_SECRET_ANNOTATION: "okta" }),
                labels,
            );
            assert_eq!(
                credentials(&t, Some(&managed)).unwrap_err().0,
                reason::TOKEN_SECRET_REFUSED
            );
        }
    }

    #[test]
    fn a_generated_token_counts_only_from_a_secret_its_scim_token_controls() {
        let mut t = byo("okta");
        t.spec.token_secret_ref = None;
        let value = generate_token();
        let mut s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "okta-scim-token", "annotations": {
                ISSUED_AT: "2030-01-01T00:00:00Z",
                PREVIOUS_HASH: token_hash("old"),
                PREVIOUS_UNTIL: "2030-01-01T01:00:00Z",
            } },
            "data": { "token": base64::engine::general_purpose::STANDARD.encode(&value) }
        }))
        .unwrap();
        assert!(credentials(&t, Some(&s)).is_err(), "no owner reference");
        s.metadata.owner_references = Some(vec![owner_reference(&t).unwrap()]);
        let issued = credentials(&t, Some(&s)).unwrap();
        assert_eq!(issued.hash, token_hash(&value));
        assert_eq!(
            issued.previous,
            Some((token_hash("old"), "2030-01-01T01:00:00Z".parse().unwrap()))
        );
        t.metadata.uid = Some("u2".into());
        assert!(credentials(&t, Some(&s)).is_err(), "another incarnation");
    }
}
