//! The SCIM `/Users` endpoints: list and search, create, read, replace, patch and delete.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::authorize;
use super::requests::{if_match, param, read_body};
use super::responses::{Result, not_found_as, resource_response, scim_response};
use super::{ScimState, check_expected, patch_with_retries};
use crate::config::CompiledIdentityProvider;
use crate::scim::filter::Resource;
use crate::scim::search::Query as ListQuery;
use crate::scim::{self, ScimError, filter};
use crate::store::{Predicate, User};
use crate::tenant::Tenant;

/// Notes that the IdP sent a password, which is discarded: nothing signs in with it, so
/// nothing keeps it. The value itself is never logged.
fn password_discarded(tenant: &Tenant) {
    tracing::info!(
        identity_provider = %tenant,
        "the IdP sent a password over SCIM; passwords are not stored (in Okta, turn off Sync Password under Provisioning > To App)"
    );
}

pub(super) async fn list_users(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let query = ListQuery::from_params(|n| param(&q, n))?;
    users_page(&s, &config, &tenant, &query).await
}

pub(super) async fn search_users(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let query = ListQuery::from_search_request(&read_body(&headers, body).await?)?;
    users_page(&s, &config, &tenant, &query).await
}

/// A ListResponse of users for a GET or a `POST /Users/.search`.
async fn users_page(
    s: &ScimState,
    config: &CompiledIdentityProvider,
    t: &Tenant,
    query: &ListQuery,
) -> Result<Response> {
    let predicate = match &query.filter {
        Some(f) => filter::parse(f, Resource::User)?,
        None => Predicate::True,
    };
    let sort = query.sort(Resource::User)?;
    let page = s
        .store
        .search_users(t, &predicate, sort.as_ref(), query.start_index, query.count)
        .await?;
    let resources = render_users(s, config, t, &page.items, query).await?;
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(page.total, query.start_index, resources),
        None,
    ))
}

/// Users rendered with their groups and projected as `query` asks.
pub(super) async fn render_users(
    s: &ScimState,
    config: &CompiledIdentityProvider,
    t: &Tenant,
    users: &[User],
    query: &ListQuery,
) -> Result<Vec<Value>> {
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let groups = s.store.groups_of_users(t, &ids).await?;
    Ok(users
        .iter()
        .map(|u| {
            let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or(&[]);
            scim::project(
                scim::render_user(u, g, &config.scim_base_url),
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
            )
        })
        .collect())
}

pub(super) async fn create_user(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let (input, password) = scim::user_input(&read_body(&headers, body).await?)?;
    if password {
        password_discarded(&tenant);
    }
    let user = s.store.create_user(&tenant, input).await?;
    Ok(resource_response(
        StatusCode::CREATED,
        scim::render_user(&user, &[], &config.scim_base_url),
        &q,
        user.version,
    ))
}

pub(super) async fn get_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let t = &tenant;
    let user = s
        .store
        .get_user(t, &id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no User with id {id}")))?;
    let groups = s.store.groups_of_user(t, &id).await?;
    Ok(resource_response(
        StatusCode::OK,
        scim::render_user(&user, &groups, &config.scim_base_url),
        &q,
        user.version,
    ))
}

pub(super) async fn replace_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let expected = if_match(&headers)?;
    let (input, password) = scim::user_input(&read_body(&headers, body).await?)?;
    if password {
        password_discarded(&tenant);
    }
    let t = &tenant;
    let user = s
        .store
        .replace_user(t, &id, expected, input)
        .await
        .map_err(|e| not_found_as(e, "User", &id))?;
    let groups = s.store.groups_of_user(t, &id).await?;
    Ok(resource_response(
        StatusCode::OK,
        scim::render_user(&user, &groups, &config.scim_base_url),
        &q,
        user.version,
    ))
}

pub(super) async fn patch_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let expected = if_match(&headers)?;
    let ops = scim::patch::parse_request(&read_body(&headers, body).await?)?;
    let t = &tenant;
    let (s, id, ops) = (&s, &id, &ops);
    let user = patch_with_retries(expected, "User", id, move || async move {
        let current = s
            .store
            .get_user(t, id)
            .await?
            .ok_or_else(|| ScimError::not_found(format!("no User with id {id}")))?;
        check_expected(expected, current.version)?;
        let mut view = scim::user_patch_view(&current);
        scim::patch::apply(&mut view, ops)?;
        let (input, password) = scim::user_fields(view)?;
        if password {
            password_discarded(t);
        }
        Ok(s.store
            .replace_user(t, id, Some(current.version), input)
            .await)
    })
    .await?;
    let groups = s.store.groups_of_user(t, id).await?;
    Ok(resource_response(
        StatusCode::OK,
        scim::render_user(&user, &groups, &config.scim_base_url),
        &q,
        user.version,
    ))
}

pub(super) async fn delete_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    authorize(&s, &tenant, &headers)?;
    if s.store.delete_user(&tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ScimError::not_found(format!("no User with id {id}")).into())
    }
}
