//! Forward-auth for ingress controllers: `/auth/verify` (ingress-nginx `auth-url`; Traefik
//! ForwardAuth with `?signIn=redirect`; Envoy ext_authz with `/auth/verify` as path prefix),
//! `/auth/signin` (ingress-nginx `auth-signin`) and `/auth/logout`, which also ends the session
//! at the IdP when it takes part in SAML Single Logout.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use super::saml::SamlState;
use super::sessions;
use super::single_logout;
use super::web::{self, INVALID_RELAY_STATE, page};
use crate::config::CompiledIdentityProvider;
use crate::session::CookiePayload;
use crate::store::User;

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
        .route("/auth/verify", any(verify))
        // Envoy's ext_authz appends the original path to the configured prefix.
        .route("/auth/verify/{*rest}", any(verify))
        .route("/auth/signin", get(signin))
        .route("/auth/logout", get(logout).post(logout))
        .with_state(state)
}

/// A live session found from the request's cookie.
struct Live {
    config: std::sync::Arc<CompiledIdentityProvider>,
    payload: CookiePayload,
    user: User,
    expires: jiff::Timestamp,
    /// The user's group names.
    groups: Vec<String>,
}

/// Why no answer about a session can be given.
enum NoAnswer {
    /// The identity store failed.
    Store,
    /// The request carries the session cookie twice.
    DuplicateCookie,
}

/// The session of the request for IdentityProvider `tenant`: the IdentityProvider is served,
/// its cookie opens with a current key and names that IdentityProvider, the store knows the
/// session, and its user is active.
async fn live_session(
    st: &SamlState,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<Option<Live>, NoAnswer> {
    let Some((ns, name)) = tenant.split_once('/') else {
        return Ok(None);
    };
    // A disabled or deleted IdentityProvider ends its sessions.
    let Some(config) = st.configs.get(ns, name) else {
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
    let Some(payload) = keys
        .open(&value)
        .and_then(|b| serde_json::from_slice::<CookiePayload>(&b).ok())
        .filter(|p| p.tenant == tenant)
    else {
        return Ok(None);
    };
    let found = st
        .store
        .session(tenant, &payload.session_id)
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
fn duplicate_cookie() -> Response {
    let (title, text) = web::DUPLICATE_COOKIE;
    page(StatusCode::BAD_REQUEST, title, text)
}

fn email_of(user: &User) -> Option<String> {
    let emails = user.resource.get("emails")?.as_array()?;
    let value = |e: &serde_json::Value| e.get("value").and_then(|v| v.as_str()).map(str::to_owned);
    emails
        .iter()
        .find(|e| e.get("primary").and_then(|p| p.as_bool()) == Some(true))
        .and_then(value)
        .or_else(|| emails.iter().find_map(value))
}

async fn verify(
    State(st): State<SamlState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let unauthenticated = |st: &SamlState| {
        st.metrics.verify("unauthenticated");
        if q.get("signIn").map(String::as_str) == Some("redirect")
            && let Some(r) = sign_in_redirect(st, &q, &headers)
        {
            return r;
        }
        let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    // Each IdentityProvider has its own session: which one this check is for must be known.
    let Some((ns, name)) = chosen(&st, &q) else {
        tracing::warn!(
            "/auth/verify without identityProvider=NAMESPACE/NAME while several IdentityProviders are served; refusing"
        );
        return unauthenticated(&st);
    };
    let tenant = format!("{ns}/{name}");
    let live = match live_session(&st, &headers, &tenant).await {
        Ok(Some(l)) => l,
        Ok(None) => return unauthenticated(&st),
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
    if let Some(required) = q.get("groups") {
        let required: Vec<&str> = required
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect();
        if !required.is_empty()
            && !required
                .iter()
                .any(|r| groups.iter().any(|g| g.eq_ignore_ascii_case(r)))
        {
            st.metrics.verify("forbidden");
            return (StatusCode::FORBIDDEN, "Forbidden").into_response();
        }
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
fn sign_in_redirect(
    st: &SamlState,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<Response> {
    let (ns, name) = chosen(st, q)?;
    let config = st.configs.get(&ns, &name)?;
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let original = format!(
        "{}://{}{}",
        h("x-forwarded-proto").unwrap_or("https"),
        h("x-forwarded-host")?,
        h("x-forwarded-uri").unwrap_or("/")
    );
    let mut location = config.service_provider.login_url.clone();
    if crate::saml::login::redirect_allowed(&config, &original) {
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
fn chosen(st: &SamlState, q: &HashMap<String, String>) -> Option<(String, String)> {
    match q.get("identityProvider") {
        Some(v) => v.split_once('/').map(|(a, b)| (a.to_owned(), b.to_owned())),
        None => {
            let served = st.configs.served();
            (served.len() == 1).then(|| served[0].clone())
        }
    }
}

async fn signin(State(st): State<SamlState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some((ns, name)) = chosen(&st, &q) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-In",
            "Name the identity provider: add identityProvider=NAMESPACE/NAME to the sign-in URL.",
        );
    };
    let Some(config) = st.configs.get(&ns, &name) else {
        return web::not_served();
    };
    // ingress-nginx passes the original URL as `rd`.
    let target = q.get("rd").or_else(|| q.get("redirect"));
    let mut location = format!("/saml/{ns}/{name}/login");
    if let Some(t) = target.filter(|t| !t.is_empty()) {
        if !crate::saml::login::redirect_allowed(&config, t) {
            let (t, x) = INVALID_RELAY_STATE;
            return page(StatusCode::BAD_REQUEST, t, x);
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
    // The IdentityProvider named, the only one served, or every one whose cookie was sent.
    let tenants: Vec<String> = match chosen(&st, &q) {
        Some((ns, name)) => vec![format!("{ns}/{name}")],
        None => st
            .configs
            .served()
            .into_iter()
            .filter(|(ns, name)| {
                st.configs.get(ns, name).is_some_and(|c| {
                    // Sent twice counts as sent: live_session refuses it below.
                    web::cookie(&headers, &sessions::cookie_name(&c)) != Ok(None)
                })
            })
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect(),
    };
    let unavailable = || {
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Signing out failed; retry.",
        )
    };
    let mut cookies = Vec::new();
    let mut configs = Vec::new();
    // The first session whose IdP takes part in Single Logout also ends at the IdP.
    let mut single_logout = None;
    for tenant in &tenants {
        let live = match live_session(&st, &headers, tenant).await {
            Ok(live) => live,
            Err(NoAnswer::Store) => return unavailable(),
            Err(NoAnswer::DuplicateCookie) => return duplicate_cookie(),
        };
        if let Some(l) = &live
            && let Err(e) = st.store.delete_session(tenant, &l.payload.session_id).await
        {
            tracing::error!(error = %e, "could not end a session");
            return unavailable();
        }
        let config = tenant
            .split_once('/')
            .and_then(|(ns, name)| st.configs.get(ns, name));
        cookies.extend(sessions::clear_cookies(tenant, config.as_deref()));
        if single_logout.is_none()
            && let (Some(c), Some(Live { payload, .. })) = (&config, live)
            && c.single_logout().is_some()
            && let Some(subject) = payload.subject
        {
            single_logout = Some((c.clone(), subject));
        }
        configs.extend(config);
    }
    let target = q
        .get("rd")
        .or_else(|| q.get("redirect"))
        .filter(|t| !t.is_empty())
        .filter(|t| {
            configs
                .iter()
                .any(|c| crate::saml::login::redirect_allowed(c, t))
                || crate::saml::login::local_path_allowed(t)
        });
    if let Some((config, subject)) = single_logout
        && let Some(r) =
            single_logout::start(&st, &config, &subject, target.map(String::as_str), &cookies)
    {
        return r;
    }
    match target {
        Some(t) => web::redirect(t, &cookies),
        None => {
            let (title, text) = single_logout::SIGNED_OUT;
            let mut r = page(StatusCode::OK, title, text);
            web::add_cookies(&mut r, &cookies);
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::groups_header;

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
