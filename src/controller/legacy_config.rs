//! The compiled configuration and session keys that earlier releases kept in the operator
//! namespace. The server now reads them only from the configuration namespace, where nothing
//! but the controller's Secrets lives; the controller moves each one there and deletes the old
//! copy: a compiled configuration when its IdentityProvider is next reconciled (the last good
//! one included), the session keys when they are next maintained (so that sessions survive the
//! upgrade), and copies of IdentityProviders that no longer exist once the controller has seen
//! every IdentityProvider.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use tokio::sync::OnceCell;

use crate::api::IdentityProvider;
use crate::config;
use crate::session::SESSION_KEYS_SECRET;

/// The old copies still to move or delete: Secret name → the IdentityProvider it was compiled
/// from (none for the session keys).
type Pending = BTreeMap<String, Option<ObjectRef<IdentityProvider>>>;

/// Where earlier releases kept the compiled configuration, and what is still there.
pub struct LegacyConfig {
    /// The old namespace's Secrets; `None` when it is the configuration namespace itself.
    api: Option<Api<Secret>>,
    /// Listed once, on first use.
    pending: OnceCell<Mutex<Pending>>,
}

impl LegacyConfig {
    /// The old copies in `operator_namespace`, if it is not `config_namespace`.
    pub fn new(client: Client, operator_namespace: &str, config_namespace: &str) -> Self {
        Self {
            api: (operator_namespace != config_namespace)
                .then(|| Api::namespaced(client, operator_namespace)),
            pending: OnceCell::new(),
        }
    }

    /// The old copies not yet moved, listed (by label, metadata only) on first use.
    async fn pending(&self) -> Result<Option<&Mutex<Pending>>, kube::Error> {
        let Some(api) = &self.api else {
            return Ok(None);
        };
        let pending = self
            .pending
            .get_or_try_init(|| async {
                let meta: Api<PartialObjectMeta<Secret>> =
                    Api::namespaced(api.clone().into_client(), api_namespace(api));
                let list = match meta
                    .list_metadata(
                        &ListParams::default()
                            .labels(&format!("{}=true", config::COMPILED_CONFIG_LABEL)),
                    )
                    .await
                {
                    Ok(list) => list.items,
                    // An installation that never granted it has nothing there to move.
                    Err(kube::Error::Api(s)) if s.code == 403 => {
                        tracing::warn!(
                            namespace = api_namespace(api),
                            "may not list Secrets in the operator namespace; not looking for an earlier release's compiled configuration there"
                        );
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                };
                let pending: Pending = list
                    .iter()
                    .map(|s| (s.name_any(), super::identity_provider::owner_of_compiled(s)))
                    .collect();
                if !pending.is_empty() {
                    tracing::info!(
                        secrets = pending.len(),
                        "moving the compiled configuration of an earlier release to the configuration namespace"
                    );
                }
                Ok::<_, kube::Error>(Mutex::new(pending))
            })
            .await?;
        Ok(Some(pending))
    }

    /// Whether the old copy `name` is still to be moved.
    async fn is_pending(&self, name: &str) -> Result<bool, kube::Error> {
        Ok(self.pending().await?.is_some_and(|p| {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(name)
        }))
    }

    /// The old copy of Secret `name`, if it has not been moved yet.
    pub async fn read(&self, name: &str) -> Result<Option<Secret>, kube::Error> {
        match &self.api {
            Some(api) if self.is_pending(name).await? => api.get_opt(name).await,
            _ => Ok(None),
        }
    }

    /// Deletes the old copy of Secret `name` (once its content is in the configuration
    /// namespace, or is not to be served any more).
    pub async fn remove(&self, name: &str) -> Result<(), kube::Error> {
        let (Some(api), Some(pending)) = (&self.api, self.pending().await?) else {
            return Ok(());
        };
        // Claimed before the call, so that two callers never both delete it.
        let Some(owner) = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        else {
            return Ok(());
        };
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_owned(), owner);
                return Err(e);
            }
        }
        tracing::info!(
            secret = name,
            namespace = api_namespace(api),
            "deleted the copy an earlier release kept in the operator namespace"
        );
        Ok(())
    }

    /// Deletes the old copies nothing will move: those of IdentityProviders that no longer
    /// exist (call once `idps` holds every IdentityProvider), and the session keys once the
    /// configuration namespace has its own.
    pub async fn sweep(
        &self,
        idps: &Store<IdentityProvider>,
        config: &Api<Secret>,
    ) -> Result<(), kube::Error> {
        let Some(pending) = self.pending().await? else {
            return Ok(());
        };
        let stale: Vec<String> = {
            let pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .iter()
                .filter(|(name, owner)| match owner {
                    Some(idp) => idps.get(idp).is_none(),
                    None => name.as_str() != SESSION_KEYS_SECRET,
                })
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in stale {
            self.remove(&name).await?;
        }
        if self.is_pending(SESSION_KEYS_SECRET).await?
            && config.get_opt(SESSION_KEYS_SECRET).await?.is_some()
        {
            self.remove(SESSION_KEYS_SECRET).await?;
        }
        Ok(())
    }
}

/// The namespace of a namespaced `Api` (set at construction).
fn api_namespace(api: &Api<Secret>) -> &str {
    api.namespace().unwrap_or_default()
}
