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

use crate::config::{self, CompiledIdentityProvider, FormatError};
use crate::server::metrics::ServerMetrics;
use crate::session::{self, SessionKeys};
use crate::tenant::Tenant;

/// Parsed configurations by Secret name, with the resourceVersion they were parsed from;
/// `None`: that version was refused (it is reported once, not at every request).
type ParsedCache = HashMap<String, (String, Option<Arc<CompiledIdentityProvider>>)>;
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
    /// Counts refused configurations.
    metrics: ServerMetrics,
}

impl ConfigIndex {
    /// Starts watching `namespace`; returns the index and a future that drives the watch.
    pub fn watch(
        client: Client,
        namespace: &str,
        metrics: ServerMetrics,
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
        (Self::new(reader, namespace, changed, metrics), drive)
    }

    fn new(
        store: Store<Secret>,
        namespace: &str,
        changed: Arc<tokio::sync::Notify>,
        metrics: ServerMetrics,
    ) -> Self {
        Self {
            store,
            namespace: namespace.to_owned(),
            parsed: Arc::default(),
            keys: Arc::default(),
            bound: Arc::default(),
            changed,
            metrics,
        }
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
            return c.clone();
        }
        let bytes = secret.data.as_ref()?.get(config::CONFIG_KEY)?;
        let compiled = match config::parse(&bytes.0) {
            Ok(c) => c,
            Err(e) => {
                // The other IdentityProviders keep being served; this one is not until a
                // configuration this release reads is published.
                match &e {
                    FormatError::UnknownVersion { found, known } => tracing::error!(
                        identity_provider = %tenant, secret = %secret_name, format_version = found, known_format_version = known,
                        "the compiled configuration of IdentityProvider {tenant} is in format version {found}, but this server reads versions up to {known}; not serving it: upgrade the server to the controller's release"
                    ),
                    FormatError::Invalid(_) => tracing::error!(
                        identity_provider = %tenant, secret = %secret_name, error = %e,
                        "the compiled configuration of IdentityProvider {tenant} does not parse; not serving it"
                    ),
                }
                self.metrics.compiled_config_refused(e.metric_label());
                parsed.insert(secret_name, (version, None));
                return None;
            }
        };
        // Never serve a configuration under another IdentityProvider's URL.
        if compiled.tenant() != *tenant {
            return None;
        }
        let compiled = Arc::new(compiled);
        parsed.insert(secret_name, (version, Some(compiled.clone())));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;
    use prometheus_client::registry::Registry;

    use super::*;

    /// A compiled-configuration Secret of IdentityProvider `ns/name` in format `version`
    /// (none: the release before versions).
    fn secret(name: &str, version: Option<u32>) -> Secret {
        let mut doc = serde_json::json!({
            "namespace": "ns", "name": name, "uid": "uid", "generation": 1, "provider": "okta",
            "serviceProvider": { "entityId": "e", "metadataUrl": "m", "acsUrl": "a", "loginUrl": "l",
                "current": { "certificatePem": "", "privateKeyPem": "" }, "next": null, "previous": null },
            "idp": { "entityId": "i", "ssoUrl": "s", "certificates": ["c"], "metadataUrl": null, "metadataFetchedAt": null },
            "allowIdpInitiated": false, "defaultRelayState": null, "allowedRedirects": [],
            "saml": { "clockSkew": "2m" }, "attributeMapping": {}, "users": {}, "session": { "duration": "1h" },
            "scimBaseUrl": "s", "scimTokens": []
        });
        if let Some(v) = version {
            doc["formatVersion"] = v.into();
        }
        let tenant = Tenant::new("ns", name);
        Secret {
            metadata: ObjectMeta {
                name: Some(config::compiled_secret_name("ns", name)),
                namespace: Some("sso".into()),
                resource_version: Some("1".into()),
                annotations: Some(BTreeMap::from([(
                    config::SOURCE_ANNOTATION.to_owned(),
                    tenant.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                config::CONFIG_KEY.to_owned(),
                ByteString(serde_json::to_vec(&doc).unwrap()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn a_configuration_of_an_unknown_format_is_refused_and_counted_once_while_the_others_serve() {
        let (reader, mut writer) = reflector::store();
        for s in [
            secret("current", Some(config::FORMAT_VERSION)),
            secret("before-versions", None),
            secret("newer", Some(config::FORMAT_VERSION + 1)),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(s));
        }
        let mut registry = Registry::default();
        let metrics = ServerMetrics::new(&mut registry);
        let index = ConfigIndex::new(reader, "sso", Arc::default(), metrics);
        for name in ["current", "before-versions", "newer"] {
            index.set_bound(&Tenant::new("ns", name), Some("uid"));
        }
        let current = index.get(&Tenant::new("ns", "current")).unwrap();
        assert_eq!(
            current.session.duration,
            jiff::SignedDuration::from_hours(1)
        );
        let old = index.get(&Tenant::new("ns", "before-versions")).unwrap();
        assert_eq!(old.saml.clock_skew, jiff::SignedDuration::from_mins(2));
        for _ in 0..3 {
            assert!(index.get(&Tenant::new("ns", "newer")).is_none());
        }
        assert_eq!(
            index.served(),
            [
                Tenant::new("ns", "before-versions"),
                Tenant::new("ns", "current")
            ]
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "sso_operator_server_compiled_config_refusals_total{reason=\"unknownFormatVersion\"} 1\n"
            ),
            "{text}"
        );
    }
}
