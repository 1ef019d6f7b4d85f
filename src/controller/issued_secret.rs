//! A credential the operator generates for a resource (a ScimToken's bearer token, an
//! OidcClient's client secret) and keeps in a Secret that resource owns: issuing it, rotating it
//! with an overlap, reading back what works, and the Secret itself.
//!
//! Which values work is decided from what only the operator (and those who may write the
//! Secrets anyway) can change: the resource's spec and its Secret, where the previous value's
//! hash and the end of its overlap are kept as annotations. The resource's status is a report
//! rebuilt from them, never read back.

use std::collections::BTreeMap;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use rand::RngCore;

use super::{
    Context, Error, FIELD_MANAGER, generated_labels, is_controlled_by,
    is_left_by_previous_incarnation, object_key, owner_reference, publish_event,
};
use crate::api::conditions as cond;
use crate::config::token_hash;

/// Annotation on a resource: changing its value issues a new credential.
pub const ROTATE_ANNOTATION: &str = "sso-operator.dev/rotate";
pub(crate) const ISSUED_AT: &str = "sso-operator.dev/issued-at";
pub(crate) const ROTATION_REQUEST: &str = "sso-operator.dev/rotation-request";
pub(crate) const PREVIOUS_HASH: &str = "sso-operator.dev/previous-token-sha256";
pub(crate) const PREVIOUS_UNTIL: &str = "sso-operator.dev/previous-token-valid-until";

/// Why a resource has no working credential: a condition reason and a message saying what to
/// do.
pub type Refusal = (&'static str, String);

/// Generates a credential: `prefix` and 256 random bits, base64url.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Whether `value` has the form of [`generate`]'s output with `prefix`.
pub fn is_generated(prefix: &str, value: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(rest)
                .is_ok_and(|b| b.len() == 32)
    })
}

/// The non-secret identifier of a credential: the first 12 hex digits of its hash.
pub fn credential_id(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The current and previous credential of a resource, as its Secret establishes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// SHA-256 of the current credential, hex.
    pub hash: String,
    /// When the operator issued the current credential; none for one you bring.
    pub issued_at: Option<Timestamp>,
    /// SHA-256 of the previous credential (hex) and the end of its overlap, after a rotation.
    pub previous: Option<(String, Timestamp)>,
    /// The Secret holding the current credential.
    pub secret_name: String,
}

/// How one kind generates its credential, and what its Secret holds besides.
#[derive(Clone, Debug)]
pub struct Policy {
    /// What the credential is called in messages: `token`, `client secret`.
    pub noun: &'static str,
    /// Prefix of generated values (may be empty).
    pub prefix: &'static str,
    /// Key of the Secret's `data` holding the current value.
    pub value_key: &'static str,
    /// `app.kubernetes.io/component` of the Secret.
    pub component: &'static str,
    /// Scheduled rotation, if any.
    pub every: Option<SignedDuration>,
    /// How long the previous value keeps working after a rotation.
    pub overlap: SignedDuration,
    /// When the credential stops working for good, and the reason of the refusal to issue
    /// one after that.
    pub expiry: Option<(Timestamp, &'static str)>,
    /// The other keys of the Secret and their values (URLs, the client ID): the Secret is
    /// written again when one differs.
    pub plain: Vec<(&'static str, String)>,
    /// The reasons of the refusals: the Secret belongs to something else or to a deleted
    /// namesake.
    pub reasons: RefusalReasons,
}

/// The condition reasons a kind reports for the refusals of [`plan`].
#[derive(Clone, Copy, Debug)]
pub struct RefusalReasons {
    /// The Secret exists and is not the resource's.
    pub conflict: &'static str,
    /// The Secret is a deleted namesake's, about to be garbage-collected.
    pub garbage_collection: &'static str,
}

/// What a generated credential Secret holds: the value, when it was issued, the last rotation
/// request honoured (the value of the `sso-operator.dev/rotate` annotation) and the previous
/// value's hash with the end of its overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretContents {
    /// The current credential.
    pub value: String,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// The last rotation request honoured.
    pub rotation_request: String,
    /// The previous credential's hash and the end of its overlap.
    pub previous: Option<(String, Timestamp)>,
}

impl SecretContents {
    /// What this Secret, named `secret_name`, establishes.
    pub fn issued(&self, secret_name: String) -> Issued {
        Issued {
            hash: token_hash(&self.value),
            issued_at: Some(self.issued_at),
            previous: self.previous.clone(),
            secret_name,
        }
    }
}

/// What to do with a resource's generated credential Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretPlan {
    /// The Secret yields no credential, and is left alone.
    Refuse(Refusal),
    /// Keep the current credential; write the Secret again when `rewrite` (one of its other
    /// keys is stale).
    Keep {
        /// The Secret's contents.
        secret: SecretContents,
        /// Whether to write it again.
        rewrite: bool,
    },
    /// Issue a new credential now, honouring `rotation_request`; the old one keeps working
    /// until the end of `previous`. `event` says so.
    Issue {
        /// The rotation request to record as honoured.
        rotation_request: String,
        /// The previous credential's hash and the end of its overlap.
        previous: Option<(String, Timestamp)>,
        /// The Event's note.
        event: String,
    },
}

/// The rotation request of `owner`: its `sso-operator.dev/rotate` annotation.
pub fn rotation_request<K: Resource>(owner: &K) -> String {
    owner
        .annotations()
        .get(ROTATE_ANNOTATION)
        .cloned()
        .unwrap_or_default()
}

/// Decides from `existing` (the Secret named `name`, if any) whether `owner` keeps its
/// generated credential, gets a new one (none yet, a scheduled or requested rotation) or none.
pub fn plan<K: Resource<DynamicType = ()>>(
    policy: &Policy,
    owner: &K,
    existing: Option<&Secret>,
    name: &str,
    now: Timestamp,
) -> SecretPlan {
    if let Some(refusal) = existing.and_then(|s| foreign(policy, owner, s, name)) {
        return SecretPlan::Refuse(refusal);
    }
    let noun = policy.noun;
    let annotations = existing
        .map(|s| s.annotations().clone())
        .unwrap_or_default();
    let data = existing.and_then(|s| s.data.as_ref());
    let current = data
        .and_then(|d| d.get(policy.value_key))
        .and_then(|v| std::str::from_utf8(&v.0).ok().map(str::to_owned))
        .filter(|t| is_generated(policy.prefix, t));
    let issued_at: Option<Timestamp> = annotations.get(ISSUED_AT).and_then(|t| t.parse().ok());
    let requested = rotation_request(owner);
    let honoured = annotations
        .get(ROTATION_REQUEST)
        .cloned()
        .unwrap_or_default();
    let scheduled = matches!((policy.every, issued_at), (Some(e), Some(at)) if now >= at + e);
    let expired = policy.expiry.filter(|(t, _)| *t <= now).map(|(_, r)| r);
    let needs_new = current.is_none() || issued_at.is_none() || scheduled || requested != honoured;
    if !needs_new || expired.is_some() {
        if let (Some(value), Some(issued_at)) = (current.clone(), issued_at) {
            let secret = SecretContents {
                value,
                issued_at,
                rotation_request: honoured,
                previous: previous_of(&annotations),
            };
            let rewrite = is_stale(existing, &policy.plain);
            return SecretPlan::Keep { secret, rewrite };
        }
        if let Some(expired) = expired {
            return SecretPlan::Refuse((
                expired,
                format!("The {noun} expired before it was issued"),
            ));
        }
    }
    let overlap_end = now + policy.overlap;
    let event = if current.is_some() {
        format!(
            "Issued a new {noun} into Secret {name}; the previous one keeps working until {overlap_end}"
        )
    } else {
        format!("Issued a {noun} into Secret {name}")
    };
    SecretPlan::Issue {
        rotation_request: requested,
        previous: current.map(|old| (token_hash(&old), overlap_end)),
        event,
    }
}

/// Whether `secret` lacks one of the `plain` keys or holds another value there (a changed
/// external URL): the Secret must follow.
pub fn is_stale(secret: Option<&Secret>, plain: &[(&'static str, String)]) -> bool {
    let data = secret.and_then(|s| s.data.as_ref());
    plain.iter().any(|(key, value)| {
        data.and_then(|d| d.get(*key))
            .is_none_or(|v| v.0 != value.as_bytes())
    })
}

/// Why `secret`, named `name`, is not `owner`'s to write: it belongs to a deleted resource of
/// the same name (until the garbage collector removes it) or to something else.
pub fn foreign<K: Resource<DynamicType = ()>>(
    policy: &Policy,
    owner: &K,
    secret: &Secret,
    name: &str,
) -> Option<Refusal> {
    let (kind, noun) = (K::kind(&()), policy.noun);
    if is_left_by_previous_incarnation(&secret.metadata, owner) {
        return Some((
            policy.reasons.garbage_collection,
            format!(
                "Secret {name} holds the {noun} of the deleted {kind} {} this one replaces; a new {noun} is issued as soon as Kubernetes' garbage collector removes it (the deleted one's {noun} never works again). If it stays, delete it: kubectl delete secret {name} -n {}",
                owner.name_any(),
                owner.namespace().unwrap_or_default()
            ),
        ));
    }
    let uid = owner.uid().unwrap_or_default();
    (!is_controlled_by(&secret.metadata, &uid)).then(|| {
        (
            policy.reasons.conflict,
            format!(
                "Secret {name} already exists and is not managed by this {kind}: delete it, or set spec.secretName to another name"
            ),
        )
    })
}

/// The generated credential `secret` (named `name`) holds for `owner`, trusting only a
/// Secret this very resource controls, with the previous value and its overlap from that
/// Secret's annotations. None when there is no such credential (yet).
pub fn read_generated<K: Resource>(
    policy: &Policy,
    owner: &K,
    secret: Option<&Secret>,
    name: &str,
) -> Option<Issued> {
    let secret = secret?;
    let uid = owner.meta().uid.clone().unwrap_or_default();
    if uid.is_empty() || !is_controlled_by(&secret.metadata, &uid) {
        return None;
    }
    let current = secret
        .data
        .as_ref()
        .and_then(|d| d.get(policy.value_key))
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .filter(|t| is_generated(policy.prefix, t))?;
    let annotations = secret.annotations();
    let issued_at: Timestamp = annotations.get(ISSUED_AT).and_then(|t| t.parse().ok())?;
    Some(Issued {
        hash: token_hash(current),
        issued_at: Some(issued_at),
        previous: previous_of(annotations),
        secret_name: name.to_owned(),
    })
}

/// The previous credential's hash and overlap end, from a generated Secret's annotations.
fn previous_of(annotations: &BTreeMap<String, String>) -> Option<(String, Timestamp)> {
    let hash = annotations
        .get(PREVIOUS_HASH)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let until = annotations.get(PREVIOUS_UNTIL)?.parse().ok()?;
    Some((hash.to_ascii_lowercase(), until))
}

/// Carries out `plan` for `owner`'s Secret `name`: writes a new credential (publishing
/// `issued_reason` with the plan's note) or rewrites a stale Secret. What the Secret then
/// establishes, or why it yields nothing.
pub async fn carry_out<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    policy: &Policy,
    owner: &K,
    name: &str,
    plan: SecretPlan,
    issued_reason: &str,
    now: Timestamp,
) -> Result<Result<Issued, Refusal>, Error> {
    let ns = owner
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    match plan {
        SecretPlan::Refuse(refusal) => Ok(Err(refusal)),
        SecretPlan::Keep { secret, rewrite } => {
            if rewrite {
                write(&api, secret_object(policy, owner, name, Some(&secret))?).await?;
            }
            Ok(Ok(secret.issued(name.to_owned())))
        }
        SecretPlan::Issue {
            rotation_request,
            previous,
            event,
        } => {
            let secret = SecretContents {
                value: generate(policy.prefix),
                issued_at: now,
                rotation_request,
                previous,
            };
            write(&api, secret_object(policy, owner, name, Some(&secret))?).await?;
            publish_event(ctx, owner, EventType::Normal, issued_reason, event).await;
            let id = credential_id(&token_hash(&secret.value));
            tracing::info!(object = %object_key(owner), kind = %K::kind(&()), id = %id, "issued a {}", policy.noun);
            Ok(Ok(secret.issued(name.to_owned())))
        }
    }
}

/// Writes `secret` (server-side apply).
pub async fn write(api: &Api<Secret>, secret: Secret) -> Result<(), Error> {
    let name = secret.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

/// The Secret `name` of `owner`, holding `contents` (none: only the plain keys, for a
/// credential-less resource such as a public client) and the policy's plain keys.
pub fn secret_object<K: Resource<DynamicType = ()>>(
    policy: &Policy,
    owner: &K,
    name: &str,
    contents: Option<&SecretContents>,
) -> Result<Secret, Error> {
    let mut annotations = BTreeMap::new();
    let mut data: BTreeMap<String, ByteString> = policy
        .plain
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    if let Some(contents) = contents {
        annotations.insert(ISSUED_AT.to_owned(), contents.issued_at.to_string());
        annotations.insert(
            ROTATION_REQUEST.to_owned(),
            contents.rotation_request.clone(),
        );
        if let Some((hash, until)) = &contents.previous {
            annotations.insert(PREVIOUS_HASH.to_owned(), hash.clone());
            annotations.insert(PREVIOUS_UNTIL.to_owned(), until.to_string());
        }
        data.insert(
            policy.value_key.to_owned(),
            ByteString(contents.value.as_bytes().to_vec()),
        );
    }
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(generated_labels(policy.component)),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner_reference(owner)?]),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    })
}

/// Writes `status` of `owner`, a `kind` (server-side apply on the status subresource), sets
/// its Ready metric and publishes an Event when Ready's status or reason changed from
/// `previous`.
pub async fn write_status<K, S>(
    ctx: &Context,
    kind: &'static str,
    owner: &K,
    previous: &[Condition],
    conditions: &[Condition],
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    S: serde::Serialize,
{
    let ns = owner
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &owner.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    let Some(ready) = cond::find(conditions, cond::READY) else {
        return Ok(());
    };
    ctx.metrics.set_ready(
        kind,
        object_key(owner),
        Some((ready.status.clone(), ready.reason.clone())),
    );
    if let Some(type_) = ready_event(previous, ready) {
        publish_event(ctx, owner, type_, &ready.reason, ready.message.clone()).await;
    }
    Ok(())
}

/// The type of the Event to publish about the Ready condition `ready`, when its status or reason
/// differs from the one in `previous` (the conditions before this reconciliation).
pub fn ready_event(previous: &[Condition], ready: &Condition) -> Option<EventType> {
    let old = cond::find(previous, cond::READY);
    old.is_none_or(|o| o.status != ready.status || o.reason != ready.reason)
        .then(|| {
            if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            }
        })
}

/// The soonest of the next scheduled rotation of `issued` (every `every`) and the end of its
/// previous credential's overlap, when still ahead of `now`.
pub fn next_change(
    issued: &Issued,
    every: Option<SignedDuration>,
    now: Timestamp,
) -> Option<Timestamp> {
    let next_rotation = every.zip(issued.issued_at).map(|(e, at)| at + e);
    let previous_until = issued
        .previous
        .as_ref()
        .map(|(_, until)| *until)
        .filter(|until| *until > now);
    next_rotation.into_iter().chain(previous_until).min()
}
