//! The SCIM 2.0 HTTP endpoints under `/scim/v2/{namespace}/{name}/`: glue between axum, the
//! SCIM protocol module and the identity store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::config_index::ConfigIndex;
use crate::config::CompiledIdentityProvider;
use crate::scim::{self, ScimError, filter};
use crate::store::{Store, StoreError};

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

/// The SCIM routes.
pub fn router(state: ScimState) -> Router {
    Router::new()
        .route(
            "/scim/v2/{ns}/{name}/Users",
            get(list_users).post(create_user),
        )
        .route(
            "/scim/v2/{ns}/{name}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(
            "/scim/v2/{ns}/{name}/Groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/scim/v2/{ns}/{name}/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(
            "/scim/v2/{ns}/{name}/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/{ns}/{name}/ResourceTypes", get(resource_types))
        .route("/scim/v2/{ns}/{name}/Schemas", get(schemas))
        .with_state(state)
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

async fn read_body(body: Body) -> Result<Value> {
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

async fn hash_password(password: String) -> Result<String> {
    if password.len() > 1024 {
        return Err(ScimError::invalid_value("password is longer than 1024 characters").into());
    }
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|_| ScimError::internal())?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| ScimError::internal())
    })
    .await
    .map_err(|_| Failure(ScimError::internal()))?
    .map_err(Failure)
}

// ---- Users ----

async fn list_users(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let predicate = match param(&q, "filter") {
        Some(f) => filter::parse(f, filter::Resource::User)?,
        None => crate::store::Predicate::True,
    };
    let (start, count) = scim::paging(param(&q, "startIndex"), param(&q, "count"))?;
    let t = tenant(&ns, &name);
    let page = s.store.list_users(&t, &predicate, start, count).await?;
    let ids: Vec<String> = page.items.iter().map(|u| u.id.clone()).collect();
    let groups = s.store.groups_of_users(&t, &ids).await?;
    let resources = page
        .items
        .iter()
        .map(|u| {
            let g = groups.get(&u.id).map(Vec::as_slice).unwrap_or(&[]);
            scim::project(
                scim::render_user(u, g, &config.scim_base_url),
                param(&q, "attributes"),
                param(&q, "excludedAttributes"),
            )
        })
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(page.total, start, resources),
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
    let (mut input, password) = scim::user_input(&read_body(body).await?)?;
    if let Some(p) = password {
        input.password_hash = Some(hash_password(p).await?);
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
    let (mut input, password) = scim::user_input(&read_body(body).await?)?;
    if let Some(p) = password {
        input.password_hash = Some(hash_password(p).await?);
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
    let ops = scim::patch::parse_request(&read_body(body).await?)?;
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
        let (mut input, password) = scim::user_fields(view)?;
        if let Some(p) = password {
            input.password_hash = Some(hash_password(p).await?);
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
    // Only SCIM-managed groups are shown to SCIM clients.
    let managed = crate::store::Predicate::Compare(
        crate::store::Column::ScimManaged,
        crate::store::CmpOp::Eq,
        crate::store::Value::Int(1),
    );
    let predicate = match param(&q, "filter") {
        Some(f) => crate::store::Predicate::And(
            Box::new(managed),
            Box::new(filter::parse(f, filter::Resource::Group)?),
        ),
        None => managed,
    };
    let (start, count) = scim::paging(param(&q, "startIndex"), param(&q, "count"))?;
    let page = s
        .store
        .list_groups(&tenant(&ns, &name), &predicate, start, count)
        .await?;
    let resources = page
        .items
        .iter()
        .map(|g| {
            scim::project(
                scim::render_group(g, &config.scim_base_url),
                param(&q, "attributes"),
                param(&q, "excludedAttributes"),
            )
        })
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(page.total, start, resources),
        None,
    ))
}

async fn create_group(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let (input, members) = scim::group_input(&read_body(body).await?)?;
    let group = s
        .store
        .create_group(&tenant(&ns, &name), input, &members)
        .await?;
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
    let (input, members) = scim::group_input(&read_body(body).await?)?;
    let group = s
        .store
        .replace_group(&tenant(&ns, &name), &id, expected, input, Some(&members))
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
    let ops = scim::patch::parse_request(&read_body(body).await?)?;
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

async fn delete_group(
    State(s): State<ScimState>,
    Path((ns, name, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    authorize(&s, &ns, &name, &headers)?;
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
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": scim::MAX_PAGE },
        "changePassword": { "supported": true },
        "sort": { "supported": false },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The token of a ScimToken resource, sent as Authorization: Bearer <token>",
            "primary": true
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", config.scim_base_url) }
    });
    Ok(scim_response(StatusCode::OK, &body, None))
}

async fn resource_types(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let config = authorize(&s, &ns, &name, &headers)?;
    let base = &config.scim_base_url;
    let types = vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User", "name": "User", "endpoint": "/Users",
            "schema": scim::patch::CORE_USER,
            "schemaExtensions": [{ "schema": scim::patch::ENTERPRISE_USER, "required": false }],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") }
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "schema": scim::patch::CORE_GROUP,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group") }
        }),
    ];
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(2, 1, types),
        None,
    ))
}

async fn schemas(
    State(s): State<ScimState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    authorize(&s, &ns, &name, &headers)?;
    let attr = |name: &str, kind: &str, multi: bool, uniqueness: &str| {
        json!({ "name": name, "type": kind, "multiValued": multi, "required": name == "userName" || name == "displayName",
                "caseExact": false, "mutability": if name == "id" { "readOnly" } else { "readWrite" }, "returned": "default", "uniqueness": uniqueness })
    };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": scim::patch::CORE_USER, "name": "User",
        "attributes": [
            attr("userName", "string", false, "server"), attr("externalId", "string", false, "none"), attr("active", "boolean", false, "none"),
            attr("name", "complex", false, "none"), attr("displayName", "string", false, "none"), attr("emails", "complex", true, "none"),
            attr("locale", "string", false, "none"), attr("password", "string", false, "none"), attr("groups", "complex", true, "none")
        ]
    });
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": scim::patch::CORE_GROUP, "name": "Group",
        "attributes": [attr("displayName", "string", false, "none"), attr("externalId", "string", false, "none"), attr("members", "complex", true, "none")]
    });
    let enterprise = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": scim::patch::ENTERPRISE_USER, "name": "EnterpriseUser",
        "attributes": [attr("employeeNumber", "string", false, "none"), attr("department", "string", false, "none"), attr("manager", "complex", false, "none")]
    });
    Ok(scim_response(
        StatusCode::OK,
        &scim::list_response(3, 1, vec![user, group, enterprise]),
        None,
    ))
}
