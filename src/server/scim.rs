//! The SCIM 2.0 HTTP endpoints under `/scim/v2/{namespace}/{name}/`: glue between axum, the
//! SCIM protocol module and the identity store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::Value;

use super::config_index::ConfigIndex;
use crate::config::CompiledIdentityProvider;
use crate::scim::filter::Resource;
use crate::scim::search::{self, Query as ListQuery};
use crate::scim::{self, ScimError, filter, schema};
use crate::store::{Group, Predicate, Store, StoreError, User};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Failed authentications per IdentityProvider per minute before requests are refused.
const MAX_AUTH_FAILURES: u32 = 30;
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
    limiter: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
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

/// Turns every error response under the SCIM prefix that is not already a SCIM error — the
/// router's 405 (keeping its `Allow` header), extractor rejections — into one (RFC 7644
/// §3.12), so that clients can read every failure the same way.
async fn scim_errors(request: Request, next: Next) -> Response {
    // Inside the nested router the path is relative to the prefix.
    let (method, path) = (
        request.method().clone(),
        format!("{SCIM_PREFIX}{}", request.uri().path()),
    );
    let response = next.run(request).await;
    let status = response.status();
    let is_scim = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SCIM_CONTENT_TYPE));
    if !(status.is_client_error() || status.is_server_error()) || is_scim {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            ScimError::method_not_allowed(format!(
                "{method} is not allowed on {path}; allowed: {allowed}"
            ))
        }
        StatusCode::BAD_REQUEST => ScimError::invalid_syntax(if text.is_empty() {
            format!("the request for {path} is malformed")
        } else {
            format!("the request for {path} is malformed: {text}")
        }),
        StatusCode::NOT_FOUND => ScimError::not_found(format!("nothing at {path}")),
        other => ScimError {
            status: other.as_u16(),
            scim_type: None,
            detail: other
                .canonical_reason()
                .unwrap_or("the request failed")
                .to_owned(),
        },
    };
    let mut response = Failure(error).into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// A SCIM error as an HTTP response.
struct Failure(ScimError);

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self(match e {
            StoreError::Conflict(what) => {
                ScimError::uniqueness(format!("{what}: a resource with this value exists already"))
            }
            StoreError::NotFound => ScimError::not_found("no such resource"),
            StoreError::VersionMismatch { current } => ScimError::precondition_failed(format!(
                "If-Match does not match the current version {}",
                scim::etag(current)
            )),
            other => {
                tracing::error!(error = %other, "identity store failure");
                ScimError::unavailable()
            }
        })
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = (status, self.0.to_json().to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if self.0.status == 413 {
            // The rest of the body was not read: tell the client not to reuse the connection.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.0.status == 401 {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        r
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn scim_response(status: StatusCode, body: &Value, version: Option<i64>) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(v) = version
        && let Ok(h) = HeaderValue::from_str(&scim::etag(v))
    {
        r.headers_mut().insert(header::ETAG, h);
    }
    if status == StatusCode::CREATED
        && let Some(loc) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(loc)
    {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

/// Checks the bearer token against the IdentityProvider's token hashes (constant time),
/// honouring expiry; a disabled or deleted IdentityProvider is not served at all.
fn authorize(
    state: &ScimState,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
) -> Result<Arc<CompiledIdentityProvider>> {
    let key = format!("{ns}/{name}");
    // Failed attempts are counted per IdentityProvider; past the limit, requests without a
    // valid token get 429. A valid token always passes, so nobody can lock the IdP out.
    let fail = |detail: &str| {
        let mut limiter = state.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let entry = limiter.entry(key.clone()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > MAX_AUTH_FAILURES {
            Failure(ScimError::too_many_requests(
                "too many failed authentications; retry in a minute",
            ))
        } else {
            Failure(ScimError::unauthorized(detail))
        }
    };
    const REFUSED: &str = "the bearer token is not valid for this SCIM endpoint (wrong, expired, rotated out or revoked, or the IdentityProvider is not served)";
    // Unknown endpoints are refused without a trace in the limiter (its keys stay bounded by
    // the IdentityProviders that exist) and with the same message as a wrong token.
    let Some(config) = state.configs.get(ns, name) else {
        return Err(Failure(ScimError::unauthorized(REFUSED)));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("send the ScimToken's token as Authorization: Bearer <token>"))?;
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    let now = jiff::Timestamp::now();
    let mut ok = false;
    for t in &config.scim_tokens {
        // Compare every candidate in constant time; do not stop early.
        let same = t.sha256.len() == hash.len()
            && openssl::memcmp::eq(t.sha256.as_bytes(), hash.as_bytes());
        if same && t.not_after.is_none_or(|n| n > now) {
            ok = true;
        }
    }
    if !ok {
        return Err(fail(REFUSED));
    }
    state.figures.record(ns, name);
    Ok(config)
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn tenant(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn parse_body(body: &Bytes) -> Result<Value> {
    if body.len() > MAX_BODY {
        return Err(
            ScimError::too_large(format!("the body is larger than {MAX_BODY} bytes")).into(),
        );
    }
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")).into())
}

/// Whether a declared `Content-Type` is one the SCIM endpoints read: `application/scim+json`
/// (RFC 7644 §3.1) or `application/json` (what Entra sends, often with `charset=utf-8`), with
/// any parameters. A body without a `Content-Type` is read as JSON too.
fn accepted_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(SCIM_CONTENT_TYPE)
        || essence.eq_ignore_ascii_case("application/json")
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Value> {
    if !accepted_content_type(headers) {
        let sent = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Err(ScimError::unsupported_media_type(format!(
            "the body is declared as {sent:?}: send it as JSON with Content-Type: application/scim+json (or application/json)"
        ))
        .into());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ScimError::too_large(format!("the body is larger than {MAX_BODY} bytes")))?;
    parse_body(&bytes)
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ScimError::invalid_value("If-Match is not text"))?
        .trim();
    if s == "*" {
        return Ok(None);
    }
    let inner = s.trim_start_matches("W/").trim_matches('"');
    inner.parse::<i64>().map(Some).map_err(|_| {
        ScimError::precondition_failed(format!("If-Match {s} is not an ETag of this server")).into()
    })
}

/// A short random pause before re-applying a PATCH that lost a race.
async fn backoff(attempt: u32) {
    let millis = rand::random_range(1..=5u64) * u64::from(attempt);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// Notes that the IdP sent a password, which is discarded: nothing signs in with it, so
/// nothing keeps it. The value itself is never logged.
fn password_discarded(ns: &str, name: &str) {
    tracing::info!(
        identity_provider = %format!("{ns}/{name}"),
        "the IdP sent a password over SCIM; passwords are not stored (in Okta, turn off Sync Password under Provisioning > To App)"
    );
}

// ---- Users ----

async fn list_users(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let query = ListQuery::from_params(|n| param(&q, n))?;
    users_page(&s, &config, &tenant(&ns, &name), &query).await
}

async fn search_users(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let query = ListQuery::from_search_request(&read_body(&headers, body).await?)?;
    users_page(&s, &config, &tenant(&ns, &name), &query).await
}

/// A ListResponse of users for a GET or a `POST /Users/.search`.
async fn users_page(
    s: &ScimState,
    config: &CompiledIdentityProvider,
    t: &str,
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
async fn render_users(
    s: &ScimState,
    config: &CompiledIdentityProvider,
    t: &str,
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

fn render_groups(
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
fn scim_managed() -> Predicate {
    Predicate::Compare(
        crate::store::Column::ScimManaged,
        crate::store::CmpOp::Eq,
        crate::store::Value::Int(1),
    )
}

/// Largest window a sorted root search merges from the two resource types.
const MAX_SORTED_ROOT_WINDOW: i64 = 1000;

/// `POST /.search` at the root (RFC 7644 §3.4.3): users and groups in one list. Without
/// `sortBy`, users come first (in creation order), then groups; with it, both are merged in
/// that order, unassigned values last.
async fn search_root(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let query = ListQuery::from_search_request(&read_body(&headers, body).await?)?;
    let t = tenant(&ns, &name);
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
            .search_users(&t, &user_filter, None, start, count)
            .await?;
        let rest = count - users.items.len() as i64;
        let group_start = (offset - users.total).max(0) + 1;
        let groups = s
            .store
            .search_groups(&t, &group_filter, None, group_start, rest.max(0))
            .await?;
        total = users.total + groups.total;
        resources.extend(render_users(&s, &config, &t, &users.items, &query).await?);
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
            .search_users(&t, &user_filter, user_sort.as_ref(), 1, window)
            .await?;
        let groups = s
            .store
            .search_groups(&t, &group_filter, group_sort.as_ref(), 1, window)
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
                    .extend(render_users(&s, &config, &t, std::slice::from_ref(u), &query).await?),
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

async fn create_user(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let (input, password) = scim::user_input(&read_body(&headers, body).await?)?;
    if password {
        password_discarded(&ns, &name);
    }
    let user = s.store.create_user(&tenant(&ns, &name), input).await?;
    let body = scim::project(
        scim::render_user(&user, &[], &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(
        StatusCode::CREATED,
        &body,
        Some(user.version),
    ))
}

async fn get_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let t = tenant(&ns, &name);
    let user = s
        .store
        .get_user(&t, &id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no User with id {id}")))?;
    let groups = s.store.groups_of_user(&t, &id).await?;
    let body = scim::project(
        scim::render_user(&user, &groups, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(StatusCode::OK, &body, Some(user.version)))
}

async fn replace_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let expected = if_match(&headers)?;
    let (input, password) = scim::user_input(&read_body(&headers, body).await?)?;
    if password {
        password_discarded(&ns, &name);
    }
    let t = tenant(&ns, &name);
    let user = s
        .store
        .replace_user(&t, &id, expected, input)
        .await
        .map_err(|e| not_found_as(e, "User", &id))?;
    let groups = s.store.groups_of_user(&t, &id).await?;
    let body = scim::project(
        scim::render_user(&user, &groups, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(StatusCode::OK, &body, Some(user.version)))
}

async fn patch_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let expected = if_match(&headers)?;
    let ops = scim::patch::parse_request(&read_body(&headers, body).await?)?;
    let t = tenant(&ns, &name);
    // Read, apply, write with the version read: a concurrent writer makes the write fail, and
    // then the PATCH is applied again to the new state (no lost update). With If-Match the
    // client asked for exactly one version, so a mismatch is its 412.
    let mut attempt = 0;
    let user = loop {
        attempt += 1;
        if attempt > 1 {
            backoff(attempt).await;
        }
        let current = s
            .store
            .get_user(&t, &id)
            .await?
            .ok_or_else(|| ScimError::not_found(format!("no User with id {id}")))?;
        if expected.is_some_and(|v| v != current.version) {
            return Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into());
        }
        let mut view = scim::user_patch_view(&current);
        scim::patch::apply(&mut view, &ops)?;
        let (input, password) = scim::user_fields(view)?;
        if password {
            password_discarded(&ns, &name);
        }
        match s
            .store
            .replace_user(&t, &id, Some(current.version), input)
            .await
        {
            Ok(user) => break user,
            Err(StoreError::VersionMismatch { .. })
                if expected.is_none() && attempt < MAX_PATCH_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(not_found_as(e, "User", &id)),
        }
    };
    let groups = s.store.groups_of_user(&t, &id).await?;
    let body = scim::project(
        scim::render_user(&user, &groups, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(StatusCode::OK, &body, Some(user.version)))
}

async fn delete_user(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    authorize(&s, &ns, &name, &headers)?;
    if s.store.delete_user(&tenant(&ns, &name), &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ScimError::not_found(format!("no User with id {id}")).into())
    }
}

fn not_found_as(e: StoreError, kind: &str, id: &str) -> Failure {
    match e {
        StoreError::NotFound => Failure(ScimError::not_found(format!("no {kind} with id {id}"))),
        other => other.into(),
    }
}

// ---- Groups ----

async fn list_groups(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let query = ListQuery::from_params(|n| param(&q, n))?;
    groups_page(&s, &config, &tenant(&ns, &name), &query).await
}

async fn search_groups(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let query = ListQuery::from_search_request(&read_body(&headers, body).await?)?;
    groups_page(&s, &config, &tenant(&ns, &name), &query).await
}

/// A ListResponse of SCIM-managed groups for a GET or a `POST /Groups/.search`.
async fn groups_page(
    s: &ScimState,
    config: &CompiledIdentityProvider,
    t: &str,
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
async fn check_members(s: &ScimState, t: &str, members: &[String]) -> Result<()> {
    let missing = s.store.missing_users(t, members).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(scim::unknown_members(&missing).into())
    }
}

async fn create_group(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let (input, members) = scim::group_input(&read_body(&headers, body).await?)?;
    let t = tenant(&ns, &name);
    check_members(&s, &t, &members).await?;
    let group = s.store.create_group(&t, input, &members).await?;
    let body = scim::project(
        scim::render_group(&group, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(
        StatusCode::CREATED,
        &body,
        Some(group.version),
    ))
}

async fn get_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let group = s
        .store
        .get_group(&tenant(&ns, &name), &id)
        .await?
        .filter(|g| g.scim_managed)
        .ok_or_else(|| ScimError::not_found(format!("no Group with id {id}")))?;
    let body = scim::project(
        scim::render_group(&group, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(StatusCode::OK, &body, Some(group.version)))
}

async fn replace_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let expected = if_match(&headers)?;
    let (input, members) = scim::group_input(&read_body(&headers, body).await?)?;
    let t = tenant(&ns, &name);
    refuse_sign_in_group(&s, &t, &id).await?;
    check_members(&s, &t, &members).await?;
    let group = s
        .store
        .replace_group(&t, &id, expected, input, Some(&members))
        .await
        .map_err(|e| not_found_as(e, "Group", &id))?;
    let body = scim::project(
        scim::render_group(&group, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(StatusCode::OK, &body, Some(group.version)))
}

async fn patch_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let expected = if_match(&headers)?;
    let ops = scim::patch::parse_request(&read_body(&headers, body).await?)?;
    let t = tenant(&ns, &name);
    // Membership changes alone (what IdPs send most) are applied in one transaction without
    // reading and rewriting the whole member list.
    if expected.is_none()
        && let Some((add, remove)) = scim::patch::member_changes(&ops)?
    {
        if s.store
            .get_group(&t, &id)
            .await?
            .filter(|g| g.scim_managed)
            .is_none()
        {
            return Err(ScimError::not_found(format!("no Group with id {id}")).into());
        }
        check_members(&s, &t, &add).await?;
        let group = s
            .store
            .change_members(&t, &id, &add, &remove)
            .await
            .map_err(|e| not_found_as(e, "Group", &id))?;
        let body = scim::project(
            scim::render_group(&group, &config.scim_base_url),
            param(&q, "attributes"),
            param(&q, "excludedAttributes"),
        );
        return Ok(scim_response(StatusCode::OK, &body, Some(group.version)));
    }
    let mut attempt = 0;
    let group = loop {
        attempt += 1;
        if attempt > 1 {
            backoff(attempt).await;
        }
        let current = s
            .store
            .get_group(&t, &id)
            .await?
            .filter(|g| g.scim_managed)
            .ok_or_else(|| ScimError::not_found(format!("no Group with id {id}")))?;
        if expected.is_some_and(|v| v != current.version) {
            return Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into());
        }
        let mut view = scim::group_patch_view(&current);
        scim::patch::apply(&mut view, &ops)?;
        let (input, members) = scim::group_fields(view)?;
        // Only the members this PATCH adds need checking: the others are members already.
        let added: Vec<String> = members
            .iter()
            .filter(|m| !current.members.contains(m))
            .cloned()
            .collect();
        check_members(&s, &t, &added).await?;
        match s
            .store
            .replace_group(&t, &id, Some(current.version), input, Some(&members))
            .await
        {
            Ok(group) => break group,
            Err(StoreError::VersionMismatch { .. })
                if expected.is_none() && attempt < MAX_PATCH_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(not_found_as(e, "Group", &id)),
        }
    };
    let body = scim::project(
        scim::render_group(&group, &config.scim_base_url),
        param(&q, "attributes"),
        param(&q, "excludedAttributes"),
    );
    Ok(scim_response(StatusCode::OK, &body, Some(group.version)))
}

/// Refuses to replace or delete a group that sign-in created from the IdP's group claims:
/// it belongs to sign-in, which adds and removes its members, and SCIM never listed it.
async fn refuse_sign_in_group(s: &ScimState, t: &str, id: &str) -> Result<()> {
    match s.store.get_group(t, id).await? {
        Some(g) if !g.scim_managed => Err(ScimError::mutability(format!(
            "Group {id} was created at sign-in from the IdP's group claims, not by SCIM: SCIM cannot replace or delete it (push the group from the IdP to create a SCIM group of its own)"
        ))
        .into()),
        _ => Ok(()),
    }
}

async fn delete_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    authorize(&s, &ns, &name, &headers)?;
    refuse_sign_in_group(&s, &tenant(&ns, &name), &id).await?;
    if s.store.delete_group(&tenant(&ns, &name), &id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ScimError::not_found(format!("no Group with id {id}")).into())
    }
}

// ---- Discovery ----

async fn service_provider_config(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let body = schema::service_provider_config(&config.scim_base_url, scim::MAX_PAGE);
    Ok(scim_response(StatusCode::OK, &body, None))
}

async fn resource_types(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let types = schema::resource_types(&config.scim_base_url);
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(types.len() as i64, 1, types),
        None,
    ))
}

async fn resource_type(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let body = schema::resource_type(&id, &config.scim_base_url).ok_or_else(|| {
        ScimError::not_found(format!(
            "no resource type {id}: this server has User and Group"
        ))
    })?;
    Ok(scim_response(StatusCode::OK, &body, None))
}

async fn schemas(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let all = schema::schemas(&config.scim_base_url);
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(all.len() as i64, 1, all),
        None,
    ))
}

async fn schema_by_id(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let body = schema::schema(&id, &config.scim_base_url).ok_or_else(|| {
        ScimError::not_found(format!(
            "no schema {id}: GET /Schemas lists the schemas this server serves"
        ))
    })?;
    Ok(scim_response(StatusCode::OK, &body, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_of_real_clients_are_accepted_and_others_refused() {
        let with = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
            accepted_content_type(&h)
        };
        for ok in [
            "application/scim+json",
            "application/scim+json; charset=utf-8",
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(with(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
            "application/jsonx",
        ] {
            assert!(!with(refused), "{refused}");
        }
        assert!(accepted_content_type(&HeaderMap::new()));
    }
}
