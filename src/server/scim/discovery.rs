//! The SCIM discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and
//! Schemas.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::ScimState;
use super::auth::authorize;
use super::responses::{Result, scim_response};
use crate::scim::{self, ScimError, schema};
use crate::tenant::Tenant;

pub(super) async fn service_provider_config(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let body = schema::service_provider_config(&config.scim_base_url, scim::MAX_PAGE);
    Ok(scim_response(StatusCode::OK, &body, None))
}

pub(super) async fn resource_types(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let types = schema::resource_types(&config.scim_base_url);
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(types.len() as i64, 1, types),
        None,
    ))
}

pub(super) async fn resource_type(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let body = schema::resource_type(&id, &config.scim_base_url).ok_or_else(|| {
        ScimError::not_found(format!(
            "no resource type {id}: this server has User and Group"
        ))
    })?;
    Ok(scim_response(StatusCode::OK, &body, None))
}

pub(super) async fn schemas(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let all = schema::schemas(&config.scim_base_url);
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(all.len() as i64, 1, all),
        None,
    ))
}

pub(super) async fn schema_by_id(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let body = schema::schema(&id, &config.scim_base_url).ok_or_else(|| {
        ScimError::not_found(format!(
            "no schema {id}: GET /Schemas lists the schemas this server serves"
        ))
    })?;
    Ok(scim_response(StatusCode::OK, &body, None))
}
