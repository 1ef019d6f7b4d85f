//! Tenants end with their IdentityProvider. The identity store binds each tenant
//! (`namespace/name`) to the UID of the IdentityProvider it belongs to, and the server serves a
//! compiled configuration only once its tenant is bound to the configuration's UID:
//!
//! - A configuration of another UID than the bound one (the IdentityProvider was deleted and
//!   re-created under the same name, perhaps while this server was down) purges the old
//!   incarnation's users, groups, sessions and replay cache before it is served.
//! - A configuration that disappears is looked up in the Kubernetes API: when the
//!   IdentityProvider is gone (404), being deleted, or has another UID, its tenant is purged.
//!   When it is still there (disabled, or its compiled Secret was deleted by hand and is
//!   being re-created), nothing is purged. An error (no answer, no permission) purges nothing
//!   and is retried.
//! - At start and every few minutes, every tenant the store holds is checked the same way, so
//!   an IdentityProvider deleted while the server was down is purged too.

use std::collections::HashMap;
use std::time::Duration;

use kube::{Api, Client, ResourceExt};

use crate::api::IdentityProvider;
use crate::server::config_index::ConfigIndex;
use crate::server::metrics::ServerMetrics;
use crate::store::{Binding, Purged, Store};
use crate::tenant::Tenant;

/// How often pending work is retried and the configuration re-read without a change.
const RETRY_EVERY: Duration = Duration::from_secs(10);
/// How often every tenant of the store is checked against the Kubernetes API.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Keeps the identity store's tenants in step with the IdentityProviders that exist.
pub struct TenantKeeper {
    store: Store,
    configs: ConfigIndex,
    client: Client,
    metrics: ServerMetrics,
    /// The tenants compiled at the last look, with their UIDs.
    last_compiled: HashMap<Tenant, String>,
    /// Tenants whose configuration disappeared and that are not settled yet: the UID their
    /// rows belonged to.
    to_check: HashMap<Tenant, Option<String>>,
}

/// What the Kubernetes API says about the IdentityProvider of a tenant.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// It exists with this UID and is not being deleted.
    Live(String),
    /// It does not exist, or is being deleted.
    Gone,
}

impl TenantKeeper {
    /// A keeper of `store`'s tenants for the configurations of `configs`.
    pub fn new(store: Store, configs: ConfigIndex, client: Client, metrics: ServerMetrics) -> Self {
        Self {
            store,
            configs,
            client,
            metrics,
            last_compiled: HashMap::new(),
            to_check: HashMap::new(),
        }
    }

    /// Binds the tenant of every compiled configuration (purging replaced incarnations), so
    /// that they are served. Run once before the server takes requests.
    pub async fn bind_compiled(&mut self) -> bool {
        let mut settled = true;
        let mut compiled = HashMap::new();
        for config in self.configs.compiled_all() {
            let tenant = config.tenant();
            if config.uid.is_empty() {
                tracing::warn!(identity_provider = %tenant, "the compiled configuration names no IdentityProvider UID (written by an older controller): not served until the controller recompiles it");
                continue;
            }
            compiled.insert(tenant.clone(), config.uid.clone());
            self.to_check.remove(&tenant);
            if self.configs.bound(&tenant).as_deref() == Some(config.uid.as_str()) {
                continue;
            }
            match self.store.bind_tenant(&tenant, &config.uid).await {
                Ok(Binding::Unchanged) => self.configs.set_bound(&tenant, Some(&config.uid)),
                Ok(Binding::Adopted) => {
                    tracing::info!(identity_provider = %tenant, uid = %config.uid, "tenant bound to its IdentityProvider");
                    self.configs.set_bound(&tenant, Some(&config.uid));
                }
                Ok(Binding::Replaced {
                    previous_uid,
                    purged,
                }) => {
                    self.purged(&tenant, &previous_uid, "replaced", purged);
                    self.configs.set_bound(&tenant, Some(&config.uid));
                }
                Ok(Binding::Retired) => {
                    tracing::warn!(identity_provider = %tenant, uid = %config.uid, "a configuration of a deleted IdentityProvider is still published: not served");
                }
                Err(e) => {
                    tracing::warn!(identity_provider = %tenant, error = %e, "could not bind the tenant to its IdentityProvider; not served yet, retrying");
                    settled = false;
                }
            }
        }
        for (tenant, uid) in std::mem::take(&mut self.last_compiled) {
            if !compiled.contains_key(&tenant) {
                self.to_check.insert(tenant, Some(uid));
            }
        }
        self.last_compiled = compiled;
        settled
    }

    /// Keeps the tenants in step until the process ends.
    pub async fn run(mut self) {
        let mut sweep_due = tokio::time::Instant::now();
        loop {
            let mut settled = self.bind_compiled().await;
            if tokio::time::Instant::now() >= sweep_due {
                match self.store.stored_tenants().await {
                    Ok(tenants) => {
                        // A stored tenant that names no IdentityProvider is not looked up.
                        for t in tenants {
                            if let Ok(tenant) = t.tenant.parse::<Tenant>()
                                && !self.last_compiled.contains_key(&tenant)
                            {
                                self.to_check.entry(tenant).or_insert(t.uid);
                            }
                        }
                        sweep_due = tokio::time::Instant::now() + SWEEP_EVERY;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not list the identity store's tenants; retrying");
                        settled = false;
                    }
                }
            }
            settled &= self.check_gone().await;
            // Wait for a change; without one, retry pending work soon, or wait for the sweep.
            let wait = if settled && self.to_check.is_empty() {
                sweep_due.saturating_duration_since(tokio::time::Instant::now())
            } else {
                RETRY_EVERY
            };
            let _ = tokio::time::timeout(wait, self.configs.changed()).await;
        }
    }

    /// Looks up the IdentityProvider of every tenant whose configuration disappeared, and
    /// purges the tenants of those that are gone. False when some could not be settled.
    async fn check_gone(&mut self) -> bool {
        let mut settled = true;
        let mut forbidden = 0;
        let pending: Vec<(Tenant, Option<String>)> = self.to_check.drain().collect();
        for (tenant, uid) in pending {
            let lookup = match self.lookup(&tenant).await {
                Ok(l) => l,
                // Not this server's to look at (a namespace it is not granted): kept, and
                // looked at again by the next sweep.
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    tracing::debug!(identity_provider = %tenant, "may not look up the IdentityProvider of a stored tenant; its data is kept");
                    forbidden += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(identity_provider = %tenant, error = %e, "could not look up the IdentityProvider of a tenant that is no longer served; its data is kept, retrying");
                    self.to_check.insert(tenant, uid);
                    settled = false;
                    continue;
                }
            };
            match (&lookup, &uid) {
                // Still there (disabled, or its configuration is being re-created): kept.
                (Lookup::Live(live), Some(uid)) if live == uid => continue,
                // Rows from before UIDs were recorded, of an IdentityProvider that exists but
                // is not served (disabled): they are its.
                (Lookup::Live(live), None) => {
                    if let Err(e) = self.store.bind_tenant(&tenant, live).await {
                        tracing::warn!(identity_provider = %tenant, error = %e, "could not bind the tenant to its IdentityProvider; retrying");
                        self.to_check.insert(tenant, uid);
                        settled = false;
                    }
                    continue;
                }
                _ => {}
            }
            let reason = if lookup == Lookup::Gone {
                "deleted"
            } else {
                "replaced"
            };
            match self.store.purge_tenant(&tenant, uid.as_deref()).await {
                Ok(Some(purged)) => {
                    self.purged(&tenant, uid.as_deref().unwrap_or(""), reason, purged);
                    if self.configs.bound(&tenant) == uid {
                        self.configs.set_bound(&tenant, None);
                    }
                }
                // Bound to another UID meanwhile: that incarnation's data is not touched.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(identity_provider = %tenant, error = %e, "could not purge the tenant of a deleted IdentityProvider; retrying");
                    self.to_check.insert(tenant, uid);
                    settled = false;
                }
            }
        }
        if forbidden > 0 {
            tracing::warn!(
                tenants = forbidden,
                "the identity store holds tenants whose IdentityProvider this server may not look up (RBAC: get identityproviders); their data is kept until it may"
            );
        }
        settled
    }

    async fn lookup(&self, tenant: &Tenant) -> Result<Lookup, kube::Error> {
        let api: Api<IdentityProvider> = Api::namespaced(self.client.clone(), &tenant.namespace);
        Ok(match api.get_opt(&tenant.name).await? {
            Some(idp) if idp.metadata.deletion_timestamp.is_none() => {
                Lookup::Live(idp.uid().unwrap_or_default())
            }
            _ => Lookup::Gone,
        })
    }

    fn purged(&self, tenant: &Tenant, uid: &str, reason: &'static str, purged: Purged) {
        tracing::info!(
            identity_provider = %tenant,
            uid = %uid,
            reason,
            users = purged.users,
            groups = purged.groups,
            memberships = purged.memberships,
            sessions = purged.sessions,
            replay_cache = purged.replay_cache,
            "purged the identity store's data of an IdentityProvider that no longer exists"
        );
        self.metrics.tenant_purged(reason);
    }
}
