//! The SCIM `/Groups` endpoints: list and search, create, read, replace, patch and delete.
//! SCIM sees only the groups it manages; groups that sign-in keeps from the IdP's group
//! claims are neither listed nor replaced nor deleted here.

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
use crate::store::{Group, Predicate};
use crate::tenant::Tenant;

pub(super) fn render_groups(
    config: &CompiledIdentityProvider,
    groups: &[Group],
    query: &ListQuery,
) -> Vec<Value> {
    groups
        .iter()
        .map(|g| {
            scim::project(
                scim::render_group(g, &config.scim_base_url),
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
            )
        })
        .collect()
}

/// Groups shown to SCIM clients: only SCIM-managed ones (sign-in creates the others).
pub(super) fn scim_managed() -> Predicate {
    Predicate::Compare(
        crate::store::Column::ScimManaged,
        crate::store::CmpOp::Eq,
        crate::store::Value::Int(1),
    )
}

pub(super) async fn list_groups(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let query = ListQuery::from_params(|n| param(&q, n))?;
    groups_page(&s, &config, &tenant, &query).await
}

pub(super) async fn search_groups(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let query = ListQuery::from_search_request(&read_body(&headers, body).await?)?;
    groups_page(&s, &config, &tenant, &query).await
}

/// A ListResponse of SCIM-managed groups for a GET or a `POST /Groups/.search`.
async fn groups_page(
    s: &ScimState,
    config: &CompiledIdentityProvider,
    t: &Tenant,
    query: &ListQuery,
) -> Result<Response> {
    let predicate = match &query.filter {
        Some(f) => Predicate::And(
            Box::new(scim_managed()),
            Box::new(filter::parse(f, Resource::Group)?),
        ),
        None => scim_managed(),
    };
    let sort = query.sort(Resource::Group)?;
    let page = s
        .store
        .search_groups(t, &predicate, sort.as_ref(), query.start_index, query.count)
        .await?;
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(
            page.total,
            query.start_index,
            render_groups(config, &page.items, query),
        ),
        None,
    ))
}

/// Refuses member IDs that name no user of the tenant (400 `invalidValue` naming them).
async fn check_members(s: &ScimState, t: &Tenant, members: &[String]) -> Result<()> {
    let missing = s.store.missing_users(t, members).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(scim::unknown_members(&missing).into())
    }
}

pub(super) async fn create_group(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let (input, members) = scim::group_input(&read_body(&headers, body).await?)?;
    let t = &tenant;
    check_members(&s, t, &members).await?;
    let group = s.store.create_group(t, input, &members).await?;
    Ok(resource_response(
        StatusCode::CREATED,
        scim::render_group(&group, &config.scim_base_url),
        &q,
        group.version,
    ))
}

pub(super) async fn get_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let group = s
        .store
        .get_group(&tenant, &id)
        .await?
        .filter(|g| g.scim_managed)
        .ok_or_else(|| ScimError::not_found(format!("no Group with id {id}")))?;
    Ok(resource_response(
        StatusCode::OK,
        scim::render_group(&group, &config.scim_base_url),
        &q,
        group.version,
    ))
}

pub(super) async fn replace_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let expected = if_match(&headers)?;
    let (input, members) = scim::group_input(&read_body(&headers, body).await?)?;
    let t = &tenant;
    refuse_sign_in_group(&s, t, &id).await?;
    check_members(&s, t, &members).await?;
    let group = s
        .store
        .replace_group(t, &id, expected, input, Some(&members))
        .await
        .map_err(|e| not_found_as(e, "Group", &id))?;
    Ok(resource_response(
        StatusCode::OK,
        scim::render_group(&group, &config.scim_base_url),
        &q,
        group.version,
    ))
}

pub(super) async fn patch_group(
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
    // Membership changes alone (what IdPs send most) are applied in one transaction without
    // reading and rewriting the whole member list.
    if expected.is_none()
        && let Some((add, remove)) = scim::patch::member_changes(&ops)?
    {
        if s.store
            .get_group(t, &id)
            .await?
            .filter(|g| g.scim_managed)
            .is_none()
        {
            return Err(ScimError::not_found(format!("no Group with id {id}")).into());
        }
        check_members(&s, t, &add).await?;
        let group = s
            .store
            .change_members(t, &id, &add, &remove)
            .await
            .map_err(|e| not_found_as(e, "Group", &id))?;
        return Ok(resource_response(
            StatusCode::OK,
            scim::render_group(&group, &config.scim_base_url),
            &q,
            group.version,
        ));
    }
    let (s, id, ops) = (&s, &id, &ops);
    let group = patch_with_retries(expected, "Group", id, move || async move {
        let current = s
            .store
            .get_group(t, id)
            .await?
            .filter(|g| g.scim_managed)
            .ok_or_else(|| ScimError::not_found(format!("no Group with id {id}")))?;
        check_expected(expected, current.version)?;
        let mut view = scim::group_patch_view(&current);
        scim::patch::apply(&mut view, ops)?;
        let (input, members) = scim::group_fields(view)?;
        // Only the members this PATCH adds need checking: the others are members already.
        let added: Vec<String> = members
            .iter()
            .filter(|m| !current.members.contains(m))
            .cloned()
            .collect();
        check_members(s, t, &added).await?;
        Ok(s.store
            .replace_group(t, id, Some(current.version), input, Some(&members))
            .await)
    })
    .await?;
    Ok(resource_response(
        StatusCode::OK,
        scim::render_group(&group, &config.scim_base_url),
        &q,
        group.version,
    ))
}

/// Refuses to replace or delete a group that sign-in created from the IdP's group claims:
/// it belongs to sign-in, which adds and removes its members, and SCIM never listed it.
async fn refuse_sign_in_group(s: &ScimState, t: &Tenant, id: &str) -> Result<()> {
    match s.store.get_group(t, id).await? {
        Some(g) if !g.scim_managed => Err(ScimError::mutability(format!(
            "Group {id} was created at sign-in from the IdP's group claims, not by SCIM: SCIM cannot replace or delete it (push the group from the IdP to create a SCIM group of its own)"
        ))
        .into()),
        _ => Ok(()),
    }
}

pub(super) async fn delete_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    authorize(&s, &tenant, &headers)?;
    refuse_sign_in_group(&s, &tenant, &id).await?;
    if s.store.delete_group(&tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ScimError::not_found(format!("no Group with id {id}")).into())
    }
}
