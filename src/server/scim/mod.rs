//! The SCIM 2.0 HTTP endpoints under `/scim/v2/{namespace}/{name}/`: glue between axum, the
//! SCIM protocol module and the identity store.
//!
//! This module holds the router and its state. Every endpoint first checks the bearer token
//! (`auth`); `requests` reads what clients send and `responses` writes what they get back,
//! failures included. The endpoints are in `users`, `groups`, `root_search` and `discovery`.

mod auth;
mod discovery;
mod groups;
mod requests;
mod responses;
mod root_search;
mod users;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Method;
use axum::routing::{any, get, post};

use super::config_index::ConfigIndex;
use crate::scim::ScimError;
use crate::store::{Store, StoreError};
use crate::tenant::Tenant;
use discovery::{resource_type, resource_types, schema_by_id, schemas, service_provider_config};
use groups::{
    create_group, delete_group, get_group, list_groups, patch_group, replace_group, search_groups,
};
use responses::{Failure, scim_errors};
use root_search::search_root;
use users::{
    create_user, delete_user, get_user, list_users, patch_user, replace_user, search_users,
};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// How often a PATCH without If-Match is re-applied after losing a race with another writer.
const MAX_PATCH_ATTEMPTS: u32 = 10;

/// State of the SCIM endpoints.
#[derive(Clone)]
pub struct ScimState {
    /// The identity store.
    pub store: Store,
    /// The compiled configuration.
    pub configs: ConfigIndex,
    /// Provisioning figures published into IdentityProvider status.
    pub figures: Arc<super::figures::Figures>,
    limiter: Arc<Mutex<HashMap<Tenant, (Instant, u32)>>>,
}

impl ScimState {
    /// State over `store` and `configs`.
    pub fn new(store: Store, configs: ConfigIndex, figures: Arc<super::figures::Figures>) -> Self {
        Self {
            store,
            configs,
            figures,
            limiter: Arc::default(),
        }
    }
}

/// Where the SCIM endpoints live; each IdentityProvider's base URL is
/// `{SCIM_PREFIX}/{namespace}/{name}`.
const SCIM_PREFIX: &str = "/scim/v2";

/// The SCIM routes.
pub fn router(state: ScimState) -> Router {
    let scim = Router::new()
        .route("/{ns}/{name}/Users", get(list_users).post(create_user))
        .route(
            "/{ns}/{name}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/{ns}/{name}/Groups", get(list_groups).post(create_group))
        .route(
            "/{ns}/{name}/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(
            "/{ns}/{name}/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/{ns}/{name}/ResourceTypes", get(resource_types))
        .route("/{ns}/{name}/ResourceTypes/{id}", get(resource_type))
        .route("/{ns}/{name}/Schemas", get(schemas))
        .route("/{ns}/{name}/Schemas/{id}", get(schema_by_id))
        .route("/{ns}/{name}/Users/.search", post(search_users))
        .route("/{ns}/{name}/Groups/.search", post(search_groups))
        .route("/{ns}/{name}/.search", post(search_root))
        // Everything else under the SCIM prefix is a SCIM 404 (not the site's plain one).
        .fallback(no_such_endpoint)
        .layer(axum::middleware::from_fn(scim_errors))
        .with_state(state);
    Router::new()
        // The nested router does not see the prefix with a bare trailing slash.
        .route(
            "/scim/v2/",
            any(|method: Method| async move {
                no_such_endpoint(method, axum::http::Uri::from_static("/")).await
            }),
        )
        .nest(SCIM_PREFIX, scim)
}

async fn no_such_endpoint(method: Method, uri: axum::http::Uri) -> Failure {
    Failure(ScimError::not_found(format!(
        "no SCIM endpoint answers {method} {SCIM_PREFIX}{}: the endpoints are {SCIM_PREFIX}/<namespace>/<IdentityProvider>/ followed by Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas or .search",
        uri.path()
    )))
}

/// Runs a PATCH as read, apply, write with the version read: a concurrent writer makes the
/// write fail, and then `attempt` runs again on the new state (no lost update). With
/// If-Match (`expected`) the client asked for exactly one version, so a mismatch is its 412.
/// `attempt` returns the refusal of the PATCH itself, or else the write's result.
async fn patch_with_retries<T, F>(
    expected: Option<i64>,
    kind: &str,
    id: &str,
    mut attempt: impl FnMut() -> F,
) -> Result<T, Failure>
where
    F: Future<Output = Result<Result<T, StoreError>, Failure>>,
{
    let mut n = 0;
    loop {
        n += 1;
        if n > 1 {
            backoff(n).await;
        }
        match attempt().await? {
            Ok(written) => return Ok(written),
            Err(StoreError::VersionMismatch { .. })
                if expected.is_none() && n < MAX_PATCH_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(responses::not_found_as(e, kind, id)),
        }
    }
}

/// Refuses a PATCH with If-Match whose version is not the stored one.
fn check_expected(expected: Option<i64>, current: i64) -> Result<(), Failure> {
    match expected {
        Some(v) if v != current => Err(StoreError::VersionMismatch { current }.into()),
        _ => Ok(()),
    }
}

/// A short random pause before re-applying a PATCH that lost a race.
async fn backoff(attempt: u32) {
    let millis = rand::random_range(1..=5u64) * u64::from(attempt);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}
