//! Forward-auth for reverse proxies. `/auth/NAMESPACE/NAME/verify[/groups/LIST]` checks a
//! session of the IdentityProvider named in the path the proxy is configured with (every proxy;
//! Envoy's ext_authz appends the original path to it, and the user's query is never read).
//! `/auth/verify?identityProvider=…&groups=…` is for proxies that call a fixed URL
//! (ingress-nginx `auth-url`, Traefik ForwardAuth with `signIn=redirect`). `/auth/signin`
//! (ingress-nginx `auth-signin`) and `/auth/logout`, which also ends the session at the IdP
//! when it takes part in SAML Single Logout; both redirect only where the installation's
//! allow-list allows.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::saml::SamlState;
use super::sessions;
use super::single_logout;
use super::web::{self, page};
use crate::config::CompiledIdentityProvider;
use crate::saml::login::RedirectRefusal;
use crate::session::{CookiePayload, SamlSubject};
use crate::store::User;
use crate::tenant::Tenant;

/// Response header with the signed-in user's `userName`.
pub const USER_HEADER: &str = "x-auth-request-user";
/// Response header with the user's email.
pub const EMAIL_HEADER: &str = "x-auth-request-email";
/// Response header with the user's group names, comma-separated.
pub const GROUPS_HEADER: &str = "x-auth-request-groups";
/// Response header with the IdentityProvider (`namespace/name`) of the session.
pub const IDP_HEADER: &str = "x-auth-request-identity-provider";

/// The forward-auth routes.
pub fn router(state: SamlState) -> Router {
    Router::new()
        .route("/auth/verify", any(verify_query))
        // Envoy's ext_authz appends the original path (and query) to its path prefix.
        .route("/auth/verify/", any(verify_unbound))
        .route("/auth/verify/{*rest}", any(verify_unbound))
        .route("/auth/{namespace}/{name}/verify", any(verify_bound))
        .route("/auth/{namespace}/{name}/verify/", any(verify_bound))
        .route("/auth/{namespace}/{name}/verify/{*rest}", any(verify_bound))
        .route("/auth/signin", get(signin))
        .route("/auth/logout", get(logout).post(logout))
        .with_state(state)
}

/// A live session found from the request's cookie.
pub(crate) struct Live {
    pub(crate) config: std::sync::Arc<CompiledIdentityProvider>,
    pub(crate) payload: CookiePayload,
    pub(crate) user: User,
    pub(crate) expires: jiff::Timestamp,
    /// The user's group names.
    pub(crate) groups: Vec<String>,
}

/// Why no answer about a session can be given.
pub(crate) enum NoAnswer {
    /// The identity store failed.
    Store,
    /// The request carries the session cookie twice.
    DuplicateCookie,
}

/// The session of the request for IdentityProvider `tenant`: the IdentityProvider is served,
/// its cookie opens with a current key and names that IdentityProvider, the store knows the
/// session, and its user is active.
pub(crate) async fn live_session(
    st: &SamlState,
    headers: &HeaderMap,
    tenant: &Tenant,
) -> Result<Option<Live>, NoAnswer> {
    // A disabled or deleted IdentityProvider ends its sessions.
    let Some(config) = st.configs.get(tenant) else {
        return Ok(None);
    };
    let value = web::cookie(headers, &sessions::cookie_name(&config))
        .map_err(|_| NoAnswer::DuplicateCookie)?;
    let Some(value) = value else {
        return Ok(None);
    };
    let Some(keys) = st.configs.session_keys() else {
        return Ok(None);
    };
    let written = tenant.to_string();
    let Some(payload) = keys
        .open(&value)
        .and_then(|b| serde_json::from_slice::<CookiePayload>(&b).ok())
        .filter(|p| p.tenant == written)
    else {
        return Ok(None);
    };
    // A session of a deleted IdentityProvider never opens for another created under the same
    // name.
    if payload.uid != config.uid {
        return Ok(None);
    }
    let found = st
        .store
        .session(&written, &payload.session_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "identity store failure in forward-auth");
            NoAnswer::Store
        })?;
    Ok(found
        .filter(|(user, _, _)| user.active)
        .map(|(user, expires, groups)| Live {
            config,
            payload,
            user,
            expires,
            groups,
        }))
}

/// The answer to a request that carries a session cookie twice.
pub(crate) fn duplicate_cookie() -> Response {
    let (title, text) = web::DUPLICATE_COOKIE;
    page(StatusCode::BAD_REQUEST, title, text)
}

/// The user's primary email, else the first one.
pub(crate) fn email_of(user: &User) -> Option<String> {
    let emails = user.resource.get("emails")?.as_array()?;
    let value = |e: &serde_json::Value| e.get("value").and_then(|v| v.as_str()).map(str::to_owned);
    emails
        .iter()
        .find(|e| e.get("primary").and_then(|p| p.as_bool()) == Some(true))
        .and_then(value)
        .or_else(|| emails.iter().find_map(value))
}

/// What a forward-auth check asks: whose session (the IdentityProvider, or none when it
/// cannot be told) and of which groups the user needs one (any, when empty).
struct Check {
    tenant: Option<Tenant>,
    groups: Vec<String>,
    /// Answer a request without a session with a redirect to sign-in (Traefik).
    sign_in_redirect: bool,
}

/// Why a check's own parameters are refused.
const TWICE: &str = "a forward-auth parameter is given twice: configure identityProvider and groups once, in the proxy's auth URL (or use /auth/NAMESPACE/NAME/verify)";

/// `/auth/verify?identityProvider=…&groups=…&signIn=redirect`: for proxies that call a fixed
/// auth URL and pass the original request only in headers (ingress-nginx `auth-url`, nginx
/// `auth_request`, Traefik ForwardAuth), so that the query is the proxy's configuration. A
/// parameter given twice is refused: it means the user's query was appended to it.
async fn verify_query(
    State(st): State<SamlState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut q: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if q.insert(k.into_owned(), v.into_owned()).is_some() {
            st.metrics.verify("unauthenticated");
            return (StatusCode::BAD_REQUEST, TWICE).into_response();
        }
    }
    let tenant = match q.get("identityProvider") {
        Some(v) => match tenant_of(v) {
            Some(t) => Some(t),
            None => {
                st.metrics.verify("unauthenticated");
                return (
                    StatusCode::BAD_REQUEST,
                    "identityProvider must be NAMESPACE/NAME of an IdentityProvider",
                )
                    .into_response();
            }
        },
        None => only_served(&st),
    };
    let check = Check {
        tenant,
        groups: q
            .get("groups")
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        sign_in_redirect: q.get("signIn").map(String::as_str) == Some("redirect"),
    };
    verify(&st, check, &headers).await
}

/// `/auth/NAMESPACE/NAME/verify[/groups/G1,G2][ORIGINAL PATH]`: the IdentityProvider and the
/// required groups are in the path the proxy is configured with. Envoy's ext_authz HTTP
/// service appends the original path and query to its `path_prefix`; nothing the user
/// sends is read (the query never, the appended path only as the rest).
async fn verify_bound(State(st): State<SamlState>, uri: Uri, headers: HeaderMap) -> Response {
    verify(&st, bound_check(uri.path()), &headers).await
}

/// The check bound in `path` (`/auth/NAMESPACE/NAME/verify…`). The segments read are the
/// namespace, the name and, right after `verify`, an optional `groups/LIST`; a user can only
/// append after what the proxy configured, so they can add a groups requirement where the
/// proxy set none (which only narrows), never change one.
fn bound_check(path: &str) -> Check {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    let segments: Vec<&str> = path.split('/').collect();
    // ["", "auth", NAMESPACE, NAME, "verify", ...rest]
    let tenant = match (segments.get(2), segments.get(3)) {
        (Some(ns), Some(name)) => decode(ns)
            .zip(decode(name))
            .filter(|(ns, name)| {
                !ns.is_empty() && !name.is_empty() && !ns.contains('/') && !name.contains('/')
            })
            .map(|(ns, name)| Tenant::new(ns, name)),
        _ => None,
    };
    let groups = match (segments.get(5), segments.get(6)) {
        (Some(&"groups"), Some(list)) => list
            .split(',')
            .filter_map(decode)
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    Check {
        tenant,
        groups,
        sign_in_redirect: false,
    }
}

/// `/auth/verify/[ORIGINAL PATH]`: Envoy with `/auth/verify` as its `path_prefix`, before
/// `/auth/NAMESPACE/NAME/verify` existed. The query is the user's, so it is never read: this
/// answers only while exactly one IdentityProvider is served, with no groups requirement.
async fn verify_unbound(State(st): State<SamlState>, headers: HeaderMap) -> Response {
    let check = Check {
        tenant: only_served(&st),
        groups: Vec::new(),
        sign_in_redirect: false,
    };
    verify(&st, check, &headers).await
}

/// The IdentityProvider an `identityProvider` value (`namespace/name`) names.
fn tenant_of(value: &str) -> Option<Tenant> {
    value.parse().ok()
}

/// The IdentityProvider served, when exactly one is.
fn only_served(st: &SamlState) -> Option<Tenant> {
    let mut served = st.configs.served();
    if served.len() == 1 {
        served.pop()
    } else {
        None
    }
}

async fn verify(st: &SamlState, check: Check, headers: &HeaderMap) -> Response {
    let unauthenticated = |st: &SamlState| {
        st.metrics.verify("unauthenticated");
        if check.sign_in_redirect
            && let Some(tenant) = &check.tenant
            && let Some(r) = sign_in_redirect(st, tenant, headers)
        {
            return r;
        }
        let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    // Each IdentityProvider has its own session: which one this check is for must be known.
    let Some(tenant) = &check.tenant else {
        tracing::warn!(
            "a forward-auth check names no IdentityProvider while several are served; refusing (use /auth/NAMESPACE/NAME/verify)"
        );
        return unauthenticated(st);
    };
    let live = match live_session(st, headers, tenant).await {
        Ok(Some(l)) => l,
        Ok(None) => return unauthenticated(st),
        Err(NoAnswer::Store) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "identity store unavailable",
            )
                .into_response();
        }
        Err(NoAnswer::DuplicateCookie) => {
            st.metrics.verify("duplicate_cookie");
            return duplicate_cookie();
        }
    };
    let groups = &live.groups;
    if !check.groups.is_empty()
        && !check
            .groups
            .iter()
            .any(|r| groups.iter().any(|g| g.eq_ignore_ascii_case(r)))
    {
        st.metrics.verify("forbidden");
        return (StatusCode::FORBIDDEN, "Forbidden").into_response();
    }
    if live.config.session.extend_when_used {
        let next = sessions::expiry(&live.config);
        // At most one write a minute per session.
        if next.duration_since(live.expires) > jiff::SignedDuration::from_mins(1)
            && let Err(e) = st
                .store
                .extend_session(&live.payload.tenant, &live.payload.session_id, next)
                .await
        {
            tracing::warn!(error = %e, "could not extend a session");
        }
    }
    st.metrics.verify("allowed");
    let mut r = (StatusCode::OK, "OK").into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let email = email_of(&live.user).unwrap_or_default();
    for (name, value) in [
        (USER_HEADER, live.user.user_name.as_str()),
        (EMAIL_HEADER, email.as_str()),
        (GROUPS_HEADER, &groups_header(groups)),
        (IDP_HEADER, live.payload.tenant.as_str()),
    ] {
        if let Some(v) = web::header_text(value) {
            h.insert(name, v);
        }
    }
    r
}

/// Group names joined with commas; a comma or percent sign inside a name is percent-encoded,
/// so that "Sales, EMEA" can never read as two groups.
fn groups_header(groups: &[String]) -> String {
    groups
        .iter()
        .map(|g| g.replace('%', "%25").replace(',', "%2C"))
        .collect::<Vec<_>>()
        .join(",")
}

/// For proxies that hand the verify answer to the browser (Traefik ForwardAuth): a redirect to
/// SP-initiated sign-in that returns to the original URL, rebuilt from the `X-Forwarded-Proto`,
/// `X-Forwarded-Host` and `X-Forwarded-Uri` headers and checked against the allow-list.
fn sign_in_redirect(st: &SamlState, tenant: &Tenant, headers: &HeaderMap) -> Option<Response> {
    let config = st.configs.get(tenant)?;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let original = format!(
        "{}://{}{}",
        h("x-forwarded-proto").unwrap_or("https"),
        h("x-forwarded-host")?,
        h("x-forwarded-uri").unwrap_or("/")
    );
    let mut location = config.service_provider.login_url.clone();
    if crate::saml::login::redirect_allowed(&st.allowed_redirects, &config, &original) {
        location.push_str("?redirect=");
        location.extend(form_urlencoded::byte_serialize(original.as_bytes()));
    }
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(r)
}

/// Which IdentityProvider a sign-in or sign-out is for: the `identityProvider` parameter, or
/// the only one served.
fn chosen(st: &SamlState, q: &HashMap<String, String>) -> Option<Tenant> {
    match q.get("identityProvider") {
        Some(v) => tenant_of(v),
        None => only_served(st),
    }
}

async fn signin(State(st): State<SamlState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(tenant) = chosen(&st, &q) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-In",
            "Name the identity provider: add identityProvider=NAMESPACE/NAME to the sign-in URL.",
        );
    };
    let Some(config) = st.configs.get(&tenant) else {
        return web::not_served();
    };
    // ingress-nginx passes the original URL as `rd`.
    let target = q.get("rd").or_else(|| q.get("redirect"));
    let mut location = format!("/saml/{}/{}/login", tenant.namespace, tenant.name);
    if let Some(t) = target.filter(|t| !t.is_empty()) {
        if let Err(refusal) =
            crate::saml::login::check_redirect(&st.allowed_redirects, Some(&config), t)
        {
            return web::redirect_refused(&refusal);
        }
        location.push_str("?redirect=");
        location.extend(form_urlencoded::byte_serialize(t.as_bytes()));
    }
    web::redirect(&location, &[])
}

async fn logout(
    State(st): State<SamlState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let tenants = signed_out_of(&st, &q, &headers);
    let ended = match end_sessions(&st, &headers, &tenants).await {
        Ok(ended) => ended,
        Err(r) => return r,
    };
    let cookies = ended.cookies;
    let (target, refused) = return_address(&st, &q, &ended.configs);
    if let Some((config, subject)) = ended.single_logout
        && let Some(r) =
            single_logout::start(&st, &config, &subject, target.map(String::as_str), &cookies)
    {
        return r;
    }
    match target {
        Some(t) => web::redirect(t, &cookies),
        None if let Some(refusal) = refused => {
            let (title, text) = single_logout::SIGNED_OUT;
            let mut r = page(
                StatusCode::BAD_REQUEST,
                title,
                &format!("{text} {}", refusal.explanation()),
            );
            web::add_cookies(&mut r, &cookies);
            r
        }
        None => {
            let (title, text) = single_logout::SIGNED_OUT;
            let mut r = page(StatusCode::OK, title, text);
            web::add_cookies(&mut r, &cookies);
            r
        }
    }
}

/// The IdentityProviders a sign-out ends sessions of: the one named, the only one served, or
/// every one whose cookie was sent.
fn signed_out_of(st: &SamlState, q: &HashMap<String, String>, headers: &HeaderMap) -> Vec<Tenant> {
    match chosen(st, q) {
        Some(tenant) => vec![tenant],
        None => st
            .configs
            .served()
            .into_iter()
            .filter(|tenant| {
                st.configs.get(tenant).is_some_and(|c| {
                    // Sent twice counts as sent: live_session refuses it below.
                    web::cookie(headers, &sessions::cookie_name(&c)) != Ok(None)
                })
            })
            .collect(),
    }
}

/// What ending the sessions left to do.
pub(crate) struct Ended {
    /// The `Set-Cookie` values that remove the session cookies.
    pub(crate) cookies: Vec<String>,
    /// The IdentityProviders signed out of that are still served.
    pub(crate) configs: Vec<std::sync::Arc<CompiledIdentityProvider>>,
    /// The first session whose IdP takes part in Single Logout, which also ends at the IdP.
    pub(crate) single_logout: Option<(std::sync::Arc<CompiledIdentityProvider>, SamlSubject)>,
}

/// Ends the live session of each of `tenants`; the response is the page shown when that fails.
pub(crate) async fn end_sessions(
    st: &SamlState,
    headers: &HeaderMap,
    tenants: &[Tenant],
) -> Result<Ended, Response> {
    let unavailable = || {
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Signing out failed; retry.",
        )
    };
    let mut ended = Ended {
        cookies: Vec::new(),
        configs: Vec::new(),
        single_logout: None,
    };
    for tenant in tenants {
        let live = match live_session(st, headers, tenant).await {
            Ok(live) => live,
            Err(NoAnswer::Store) => return Err(unavailable()),
            Err(NoAnswer::DuplicateCookie) => return Err(duplicate_cookie()),
        };
        if let Some(l) = &live
            && let Err(e) = st
                .store
                .delete_session(&tenant.to_string(), &l.payload.session_id)
                .await
        {
            tracing::error!(error = %e, "could not end a session");
            return Err(unavailable());
        }
        let config = st.configs.get(tenant);
        ended
            .cookies
            .extend(sessions::clear_cookies(tenant, config.as_deref()));
        if ended.single_logout.is_none()
            && let (Some(c), Some(Live { payload, .. })) = (&config, live)
            && c.single_logout().is_some()
            && let Some(subject) = payload.subject
        {
            ended.single_logout = Some((c.clone(), subject));
        }
        ended.configs.extend(config);
    }
    Ok(ended)
}

/// Where the browser returns after signing out, and why the requested address was refused.
/// The address must be allowed by the installation and, when a session ended here, by one of
/// the IdentityProviders signed out of.
fn return_address<'q>(
    st: &SamlState,
    q: &'q HashMap<String, String>,
    configs: &[std::sync::Arc<CompiledIdentityProvider>],
) -> (Option<&'q String>, Option<RedirectRefusal>) {
    let requested = q
        .get("rd")
        .or_else(|| q.get("redirect"))
        .filter(|t| !t.is_empty());
    let mut refused = None;
    let target = requested.filter(|t| {
        let allowed = &st.allowed_redirects;
        let result = if configs.is_empty() {
            crate::saml::login::check_redirect(allowed, None, t)
        } else {
            configs
                .iter()
                .map(|c| crate::saml::login::check_redirect(allowed, Some(c), t))
                .find(Result::is_ok)
                .unwrap_or_else(|| {
                    crate::saml::login::check_redirect(
                        allowed,
                        configs.first().map(|c| c.as_ref()),
                        t,
                    )
                })
        };
        refused = result.err();
        refused.is_none()
    });
    (target, refused)
}

#[cfg(test)]
mod tests {
    use super::{bound_check, groups_header, tenant_of};
    use crate::tenant::Tenant;

    #[test]
    fn a_bound_check_reads_the_identity_provider_and_groups_from_the_configured_prefix_only() {
        let c = bound_check("/auth/team-a/okta/verify/app/page");
        assert_eq!(c.tenant, Some(Tenant::new("team-a", "okta")));
        assert!(c.groups.is_empty() && !c.sign_in_redirect);
        let c = bound_check("/auth/team-a/okta/verify/groups/admins,Sales%2C%20EMEA/groups/eng");
        assert_eq!(c.groups, ["admins", "Sales, EMEA"]);
        // What Envoy appends comes after the configured groups: it cannot replace them.
        let c = bound_check("/auth/team-a/okta/verify/groups/admins/x/groups/eng");
        assert_eq!(c.groups, ["admins"]);
        assert_eq!(bound_check("/auth/team-a/okta/verify").groups.len(), 0);
        assert_eq!(bound_check("/auth/team-a%2Fx/okta/verify").tenant, None);
    }

    #[test]
    fn identity_provider_values_name_one_namespace_and_name() {
        assert_eq!(tenant_of("a/b"), Some(Tenant::new("a", "b")));
        for bad in ["a", "a/", "/b", "a/b/app", ""] {
            assert_eq!(tenant_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn commas_inside_group_names_cannot_split_them() {
        let groups = [
            "Sales, EMEA".to_owned(),
            "100%".to_owned(),
            "eng".to_owned(),
        ];
        assert_eq!(groups_header(&groups), "Sales%2C EMEA,100%25,eng");
    }
}
