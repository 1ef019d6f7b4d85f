//! The signing keys of an IdentityProvider's OpenID Provider, kept in a Secret of the
//! configuration namespace (`oidc-keys-NAMESPACE.NAME`, JSON under `keys.json`): created once
//! an OidcClient references the IdentityProvider, rotated by [`SigningKeys::rotate`], removed
//! when no OidcClient is left or the IdentityProvider is deleted. Tenants never share keys,
//! and keys written for a deleted IdentityProvider of the same name (another UID) are
//! discarded, never trusted.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::{Context, Error, issued_secret, publish_event};
use crate::api::IdentityProvider;
use crate::api::identity_provider::{OidcSettings, SigningAlgorithm as ApiAlgorithm};
use crate::config::{self, oidc::LONGEST_TOKEN};
use crate::oidc::keys::{SigningAlgorithm, SigningKeys};
use crate::tenant::Tenant;

use crate::oidc::keys::{KeyError, RotationPolicy};

/// Key of the Secret's `data` holding the JSON [`SigningKeys`].
pub const KEYS_KEY: &str = "keys.json";
/// Annotation naming the UID of the IdentityProvider the keys belong to.
pub const UID_ANNOTATION: &str = "sso-operator.dev/identity-provider-uid";
/// How long a new key is published before it signs: longer than the JWKS document's
/// `max-age` (5 minutes), so relying parties know it before they meet it.
pub const PUBLISH_LEAD: SignedDuration = crate::oidc::keys::DEFAULT_PUBLISH_LEAD;

/// The name of IdentityProvider `namespace/name`'s signing-key Secret.
pub fn secret_name(namespace: &str, name: &str) -> String {
    config::tenant_secret_name("oidc-keys-", namespace, name)
}

/// The rotation policy of `settings` (an IdentityProvider's `spec.oidc`).
pub fn rotation_policy(settings: &OidcSettings) -> RotationPolicy {
    RotationPolicy {
        algorithm: match settings.signing_algorithm {
            ApiAlgorithm::RS256 => SigningAlgorithm::RS256,
            ApiAlgorithm::ES256 => SigningAlgorithm::ES256,
        },
        every: settings.key_rotation.get(),
        publish_lead: PUBLISH_LEAD,
        keep_after_superseded: LONGEST_TOKEN,
    }
}

/// The keys `secret` holds for the IdentityProvider with `uid`: none from a Secret written
/// for another UID (a deleted namesake), or one that does not parse.
pub fn stored_keys(secret: Option<&Secret>, uid: &str) -> SigningKeys {
    secret
        .filter(|s| {
            !uid.is_empty() && s.annotations().get(UID_ANNOTATION).map(String::as_str) == Some(uid)
        })
        .and_then(|s| s.data.as_ref()?.get(KEYS_KEY))
        .and_then(|v| serde_json::from_slice(&v.0).ok())
        .unwrap_or_default()
}

/// When `keys` change next after `now` under `policy`: the next rotation, a superseded key's
/// removal, or the newest key starting to sign.
pub fn next_change(
    keys: &SigningKeys,
    policy: &RotationPolicy,
    now: Timestamp,
) -> Option<Timestamp> {
    let rotation = keys
        .keys
        .first()
        .and_then(|k| k.created.checked_add(policy.every).ok());
    let removal = keys
        .keys
        .iter()
        .filter_map(|k| k.superseded?.checked_add(policy.keep_after_superseded).ok());
    let signing = keys.keys.first().map(|k| k.signs_from);
    rotation
        .into_iter()
        .chain(removal)
        .chain(signing)
        .filter(|t| *t > now)
        .min()
}

/// The Secret holding `keys` for `idp`.
fn secret_object(idp: &IdentityProvider, name: &str, keys: &SigningKeys) -> Result<Secret, Error> {
    let tenant = Tenant::new(idp.namespace().unwrap_or_default(), idp.name_any());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(super::identity_provider::labels(
                &idp.name_any(),
                "oidc-signing-keys",
            )),
            annotations: Some(BTreeMap::from([
                (config::SOURCE_ANNOTATION.to_owned(), tenant.to_string()),
                (
                    UID_ANNOTATION.to_owned(),
                    idp.meta().uid.clone().unwrap_or_default(),
                ),
            ])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            KEYS_KEY.to_owned(),
            ByteString(serde_json::to_vec(keys)?),
        )])),
        ..Default::default()
    })
}

/// Loads, creates or rotates `idp`'s signing keys and writes them back when they changed;
/// returns them and when they change next.
pub async fn ensure(
    ctx: &Context,
    idp: &IdentityProvider,
    now: Timestamp,
) -> Result<(SigningKeys, Option<Timestamp>), Error> {
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let uid = idp.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let name = secret_name(&ns, &idp.name_any());
    let stored = stored_keys(api.get_opt(&name).await?.as_ref(), &uid);
    let policy = rotation_policy(&idp.spec.oidc);
    // Key generation is CPU-bound: one per CPU at a time, off the async threads.
    let _permit = super::sp_keys::generation_permit().await;
    let task_policy = policy;
    let (keys, changed) =
        tokio::task::spawn_blocking(move || stored.rotate(now, &task_policy)).await??;
    if changed {
        issued_secret::write(&api, secret_object(idp, &name, &keys)?).await?;
        let kid = keys.keys.first().map_or("", |k| k.kid.as_str());
        publish_event(
            ctx,
            idp,
            EventType::Normal,
            "OidcSigningKeys",
            format!("OpenID Provider signing keys updated; the newest key is {kid}"),
        )
        .await;
    }
    let next = next_change(&keys, &policy, now);
    Ok((keys, next))
}

/// Deletes IdentityProvider `ns/name`'s signing keys, if any.
pub async fn delete(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    match api
        .delete(&secret_name(ns, name), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::SigningKeys(e.to_string())
    }
}
