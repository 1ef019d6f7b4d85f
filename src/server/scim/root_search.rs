//! `POST /.search` at the root of an IdentityProvider's SCIM endpoints: users and groups in
//! one list.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::ScimState;
use super::auth::authorize;
use super::groups::{render_groups, scim_managed};
use super::requests::read_body;
use super::responses::{Result, scim_response};
use super::users::render_users;
use crate::scim::filter::Resource;
use crate::scim::search::{self, Query as ListQuery};
use crate::scim::{self, ScimError, filter};
use crate::store::{Group, Predicate, User};
use crate::tenant::Tenant;

/// Largest window a sorted root search merges from the two resource types.
const MAX_SORTED_ROOT_WINDOW: i64 = 1000;

/// `POST /.search` at the root (RFC 7644 §3.4.3): users and groups in one list. Without
/// `sortBy`, users come first (in creation order), then groups; with it, both are merged in
/// that order, unassigned values last.
pub(super) async fn search_root(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = Tenant::new(ns, name);
    let config = authorize(&s, &tenant, &headers)?;
    let query = ListQuery::from_search_request(&read_body(&headers, body).await?)?;
    let t = &tenant;
    let (user_filter, group_filter) = match &query.filter {
        Some(f) => (
            filter::parse_at_root(f, Resource::User)?,
            Predicate::And(
                Box::new(scim_managed()),
                Box::new(filter::parse_at_root(f, Resource::Group)?),
            ),
        ),
        None => (Predicate::True, scim_managed()),
    };
    let (start, count) = (query.start_index, query.count);
    let offset = start - 1;
    let mut resources = Vec::new();
    let total;
    if query.sort_by.is_none() {
        let users = s
            .store
            .search_users(t, &user_filter, None, start, count)
            .await?;
        let rest = count - users.items.len() as i64;
        let group_start = (offset - users.total).max(0) + 1;
        let groups = s
            .store
            .search_groups(t, &group_filter, None, group_start, rest.max(0))
            .await?;
        total = users.total + groups.total;
        resources.extend(render_users(&s, &config, t, &users.items, &query).await?);
        resources.extend(render_groups(&config, &groups.items, &query));
    } else {
        // startIndex is the client's: up to i64::MAX.
        let window = offset.saturating_add(count);
        if window > MAX_SORTED_ROOT_WINDOW {
            return Err(ScimError::too_many(format!(
                "a sorted search at the root reads at most {MAX_SORTED_ROOT_WINDOW} results (startIndex + count - 1); narrow the filter, or search /Users/.search and /Groups/.search"
            ))
            .into());
        }
        let (user_sort, group_sort) = (
            query.sort_at_root(Resource::User)?,
            query.sort_at_root(Resource::Group)?,
        );
        let users = s
            .store
            .search_users(t, &user_filter, user_sort.as_ref(), 1, window)
            .await?;
        let groups = s
            .store
            .search_groups(t, &group_filter, group_sort.as_ref(), 1, window)
            .await?;
        total = users.total + groups.total;
        enum Item<'a> {
            User(&'a User),
            Group(&'a Group),
        }
        let column = user_sort
            .as_ref()
            .or(group_sort.as_ref())
            .map(|s| s.column.clone());
        let key = |item: &Item| {
            column.as_ref().and_then(|c| match item {
                Item::User(u) => search::user_sort_value(u, c),
                Item::Group(g) => search::group_sort_value(g, c),
            })
        };
        let mut merged: Vec<Item> = users.items.iter().map(Item::User).collect();
        merged.extend(groups.items.iter().map(Item::Group));
        merged.sort_by(|a, b| search::compare_sort_values(&key(a), &key(b), query.descending));
        for item in merged
            .into_iter()
            .skip(offset.max(0) as usize)
            .take(count.max(0) as usize)
        {
            match item {
                Item::User(u) => resources
                    .extend(render_users(&s, &config, t, std::slice::from_ref(u), &query).await?),
                Item::Group(g) => {
                    resources.extend(render_groups(&config, std::slice::from_ref(g), &query))
                }
            }
        }
    }
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(total, start, resources),
        None,
    ))
}
