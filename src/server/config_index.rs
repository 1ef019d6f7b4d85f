//! The server's view of the compiled configuration: a watch on the compiled-config Secrets
//! in the operator namespace, kept in memory. The serving path reads it without touching the
//! Kubernetes API, and a deleted or disabled IdentityProvider disappears from it at once. A
//! configuration is served only once the identity store's tenant is bound to its
//! IdentityProvider's UID (see [`crate::server::tenants`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::config::{self, CompiledIdentityProvider};
use crate::session::{self, SessionKeys};
use crate::tenant::Tenant;

/// Parsed configurations by Secret name, with the resourceVersion they were parsed from.
type ParsedCache = HashMap<String, (String, Arc<CompiledIdentityProvider>)>;
/// The parsed session keys, with the resourceVersion they were parsed from.
type KeysCache = Option<(String, Arc<SessionKeys>)>;

/// Compiled configurations by IdentityProvider, and the session keys.
#[derive(Clone)]
pub struct ConfigIndex {
    store: Store<Secret>,
    namespace: String,
    parsed: Arc<Mutex<ParsedCache>>,
    keys: Arc<Mutex<KeysCache>>,
    /// The IdentityProvider UID each tenant of the identity store is bound to; a
    /// configuration of another UID is not served.
    bound: Arc<Mutex<HashMap<Tenant, String>>>,
    /// Woken on every change of the watched Secrets.
    changed: Arc<tokio::sync::Notify>,
}

impl ConfigIndex {
    /// Starts watching `namespace`; returns the index and a future that drives the watch.
    pub fn watch(
        client: Client,
        namespace: &str,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let (reader, writer) = reflector::store();
        let config =
            watcher::Config::default().labels(&format!("{}=true", config::COMPILED_CONFIG_LABEL));
        let stream = reflector::reflector(writer, watcher(api, config))
            .default_backoff()
            .touched_objects();
        let changed = Arc::new(tokio::sync::Notify::new());
        let notify = changed.clone();
        let drive = async move {
            stream
                .for_each(|event| {
                    let notify = notify.clone();
                    async move {
                        match event {
                            Ok(_) => notify.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "watching the compiled configuration failed; retrying")
                            }
                        }
                    }
                })
                .await;
        };
        (
            Self {
                store: reader,
                namespace: namespace.to_owned(),
                parsed: Arc::default(),
                keys: Arc::default(),
                bound: Arc::default(),
                changed,
            },
            drive,
        )
    }

    /// Waits until the first list has been received.
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    /// The session keys the controller publishes; `None` until they exist (sign-in then
    /// fails closed: no session can be sealed or opened).
    pub fn session_keys(&self) -> Option<Arc<SessionKeys>> {
        let secret = self
            .store
            .get(&ObjectRef::new(session::SESSION_KEYS_SECRET).within(&self.namespace))?;
        let version = secret.resource_version().unwrap_or_default();
        let mut cached = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, k)) = cached.as_ref()
            && *v == version
        {
            return Some(k.clone());
        }
        let bytes = secret.data.as_ref()?.get(session::KEYS_KEY)?;
        let keys: SessionKeys = match serde_json::from_slice(&bytes.0) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(secret = session::SESSION_KEYS_SECRET, error = %e, "the session keys do not parse");
                return None;
            }
        };
        let keys = Arc::new(keys);
        *cached = Some((version, keys.clone()));
        Some(keys)
    }

    /// Every IdentityProvider being served, sorted.
    pub fn served(&self) -> Vec<Tenant> {
        let mut out: Vec<Tenant> = self
            .store
            .state()
            .iter()
            .filter_map(|s| source(s))
            .filter(|tenant| self.get(tenant).is_some())
            .collect();
        out.sort();
        out
    }

    /// The configuration of IdentityProvider `tenant`, if it is being served: compiled, and the
    /// identity store's tenant bound to its UID.
    pub fn get(&self, tenant: &Tenant) -> Option<Arc<CompiledIdentityProvider>> {
        let compiled = self.compiled(tenant)?;
        let bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        (bound.get(tenant) == Some(&compiled.uid)).then_some(compiled)
    }

    /// Every compiled configuration, served or not yet bound.
    pub fn compiled_all(&self) -> Vec<Arc<CompiledIdentityProvider>> {
        self.store
            .state()
            .iter()
            .filter_map(|s| self.compiled(&source(s)?))
            .collect()
    }

    /// Records that the identity store's tenant `tenant` belongs to IdentityProvider UID `uid`
    /// (`None`: to none), so that its configuration of that UID is served.
    pub fn set_bound(&self, tenant: &Tenant, uid: Option<&str>) {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        match uid {
            Some(uid) => bound.insert(tenant.clone(), uid.to_owned()),
            None => bound.remove(tenant),
        };
    }

    /// The UID the tenant `tenant` is bound to, as last recorded.
    pub fn bound(&self, tenant: &Tenant) -> Option<String> {
        self.bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
    }

    /// Waits for the next change of the compiled configuration (returns at once when one
    /// happened since the last call).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The compiled configuration of IdentityProvider `tenant`, whether its tenant is bound or
    /// not.
    pub fn compiled(&self, tenant: &Tenant) -> Option<Arc<CompiledIdentityProvider>> {
        let secret_name = config::compiled_secret_name(&tenant.namespace, &tenant.name);
        let secret = self
            .store
            .get(&ObjectRef::new(&secret_name).within(&self.namespace))?;
        let version = secret.resource_version().unwrap_or_default();
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, c)) = parsed.get(&secret_name)
            && *v == version
        {
            return Some(c.clone());
        }
        let bytes = secret.data.as_ref()?.get(config::CONFIG_KEY)?;
        let compiled: CompiledIdentityProvider = match serde_json::from_slice(&bytes.0) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(secret = %secret_name, error = %e, "a compiled configuration does not parse; not serving it");
                return None;
            }
        };
        // Never serve a configuration under another IdentityProvider's URL.
        if compiled.tenant() != *tenant {
            return None;
        }
        let compiled = Arc::new(compiled);
        parsed.insert(secret_name, (version, compiled.clone()));
        Some(compiled)
    }
}

/// The IdentityProvider a compiled-configuration Secret was compiled from.
fn source(secret: &Secret) -> Option<Tenant> {
    secret
        .annotations()
        .get(config::SOURCE_ANNOTATION)?
        .parse()
        .ok()
}
