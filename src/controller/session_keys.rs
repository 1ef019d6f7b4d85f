//! The session-key Secret: the leading controller creates it, adds a key every
//! `--session-key-rotation` and retires keys no live cookie can still use. The server watches
//! it with the compiled configuration, in the configuration namespace.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::legacy_config::LegacyConfig;
use super::{FIELD_MANAGER, MANAGED_BY};
use crate::config::COMPILED_CONFIG_LABEL;
use crate::session::{KEYS_KEY, SESSION_KEYS_SECRET, SessionKeys};

/// Keeps the session keys in `namespace` current until `stop` resolves. Keys an earlier
/// release kept in the operator namespace are taken over, so that sessions outlive the move.
pub async fn maintain(
    client: Client,
    namespace: String,
    every: SignedDuration,
    legacy: &LegacyConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    tokio::pin!(stop);
    loop {
        let wait = match ensure(&api, every, legacy).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, secret = SESSION_KEYS_SECRET, "could not maintain the session keys; retrying");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Creates or rotates the keys; returns how long until the next rotation is due (at most a
/// minute, so a deleted Secret comes back quickly).
async fn ensure(
    api: &Api<Secret>,
    every: SignedDuration,
    legacy: &LegacyConfig,
) -> Result<Duration, kube::Error> {
    let mut existing = api.get_opt(SESSION_KEYS_SECRET).await?;
    let moving = existing.is_none();
    if moving {
        existing = legacy.read(SESSION_KEYS_SECRET).await?;
    }
    let current: SessionKeys = existing
        .as_ref()
        .and_then(|s| s.data.as_ref()?.get(KEYS_KEY).cloned())
        .and_then(|b| match serde_json::from_slice(&b.0) {
            Ok(k) => Some(k),
            Err(_) => {
                tracing::warn!(
                    secret = SESSION_KEYS_SECRET,
                    "the session keys do not parse; replacing them (every session ends)"
                );
                None
            }
        })
        .unwrap_or_default();
    let now = Timestamp::now();
    let (keys, changed) = current.rotate(now, every);
    if changed || moving {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SESSION_KEYS_SECRET.to_owned()),
                labels: Some(BTreeMap::from([
                    (COMPILED_CONFIG_LABEL.to_owned(), "true".to_owned()),
                    (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                    (
                        "app.kubernetes.io/name".to_owned(),
                        "sso-operator".to_owned(),
                    ),
                ])),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                KEYS_KEY.to_owned(),
                ByteString(serde_json::to_vec(&keys).unwrap_or_default()),
            )])),
            ..Default::default()
        };
        let mut value = serde_json::to_value(&secret).unwrap_or_default();
        value["apiVersion"] = "v1".into();
        value["kind"] = "Secret".into();
        api.patch(
            SESSION_KEYS_SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&value),
        )
        .await?;
        tracing::info!(keys = keys.keys.len(), "session keys updated");
    }
    if moving {
        legacy.remove(SESSION_KEYS_SECRET).await?;
    }
    let due = keys
        .keys
        .first()
        .map(|k| now.duration_until(k.created + every))
        .unwrap_or_default()
        .max(SignedDuration::from_secs(1))
        .min(SignedDuration::from_mins(1));
    Ok(due.unsigned_abs())
}
