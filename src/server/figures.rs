//! Provisioning and sign-in figures in IdentityProvider status (`status.scim`, `status.signIn`):
//! user and group counts, the time of the last authenticated SCIM request, the last successful
//! sign-in and the reason of the last refused one. The server records requests in memory and
//! publishes at most once per interval per IdentityProvider, under its own field manager, so it
//! never touches the fields the controller owns.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::api::identity_provider::{ScimFigures, SignInFigures};
use crate::api::{IdentityProvider, SignInRefusal};
use crate::store::Store;
use crate::tenant::Tenant;

/// Field manager of the server's status writes.
pub const FIELD_MANAGER: &str = "sso-operator-server";

/// Requests seen since the last publication.
#[derive(Default)]
pub struct Figures {
    last_request: Mutex<HashMap<Tenant, Timestamp>>,
    sign_ins: Mutex<HashMap<Tenant, SignInFigures>>,
    dirty: Mutex<HashSet<Tenant>>,
}

impl Figures {
    /// Records an authenticated request (or a change) for IdentityProvider `tenant`.
    pub fn record(&self, tenant: &Tenant) {
        self.last_request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone(), Timestamp::now());
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone());
    }

    /// Records a sign-in at the ACS of IdentityProvider `tenant`: `failure` is the refusal and
    /// the message of a refused one.
    pub fn record_sign_in(&self, tenant: &Tenant, failure: Option<(SignInRefusal, &str)>) {
        let now = Some(Time(Timestamp::now()));
        {
            let mut all = self.sign_ins.lock().unwrap_or_else(|e| e.into_inner());
            let f = all.entry(tenant.clone()).or_default();
            match failure {
                None => f.last_success_time = now,
                Some((refusal, message)) => {
                    f.last_failure_time = now;
                    f.last_failure_reason = Some(refusal.reason().to_owned());
                    f.last_failure_message = Some(crate::text::shown(message, 512));
                }
            }
        }
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.clone());
    }

    /// Publishes the figures of every IdentityProvider with new requests, every `interval`.
    pub async fn publish_forever(&self, client: Client, store: Store, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pending: Vec<Tenant> = self
                .dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for tenant in pending {
                let (users, groups) = match (
                    store.count_users(&tenant).await,
                    store.count_groups(&tenant).await,
                ) {
                    (Ok(u), Ok(g)) => (u, g),
                    _ => continue,
                };
                let last = self
                    .last_request
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&tenant)
                    .copied();
                let figures = ScimFigures {
                    users,
                    groups,
                    last_request_time: last.map(Time),
                };
                let sign_in = self
                    .sign_ins
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&tenant)
                    .cloned();
                let mut status = serde_json::json!({ "scim": figures });
                if let Some(sign_in) = sign_in {
                    status["signIn"] = serde_json::to_value(sign_in).unwrap_or_default();
                }
                let patch = serde_json::json!({
                    "apiVersion": "sso-operator.dev/v1alpha1",
                    "kind": "IdentityProvider",
                    "status": status,
                });
                let api: Api<IdentityProvider> = Api::namespaced(client.clone(), &tenant.namespace);
                if let Err(e) = api
                    .patch_status(
                        &tenant.name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&patch),
                    )
                    .await
                {
                    tracing::debug!(identity_provider = %tenant, error = %e, "could not publish SCIM figures");
                }
            }
        }
    }
}
