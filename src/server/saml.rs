//! The SAML HTTP endpoints under `/saml/{namespace}/{name}/`: SP metadata and SP-initiated
//! login (the ACS comes next).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;

use super::config_index::ConfigIndex;
use crate::saml;
use crate::store::Store;

/// How long a started sign-in may take at the IdP.
const LOGIN_TTL: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// State of the SAML endpoints.
#[derive(Clone)]
pub struct SamlState {
    /// The compiled configuration.
    pub configs: ConfigIndex,
    /// The identity store (per-login state, replay cache).
    pub store: Store,
    /// Most sign-ins in progress per IdentityProvider; more are refused (anonymous callers
    /// cannot fill the store).
    pub max_pending_logins: i64,
}

/// The SAML routes.
pub fn router(state: SamlState) -> Router {
    Router::new()
        .route("/saml/{ns}/{name}/metadata", get(metadata))
        .route("/saml/{ns}/{name}/login", get(login))
        .with_state(state)
}

/// Name of the cookie that binds sign-in `request_id` to the browser that started it.
pub fn login_cookie_name(request_id: &str) -> String {
    format!(
        "sso_login_{}",
        request_id
            .trim_start_matches('_')
            .chars()
            .take(16)
            .collect::<String>()
    )
}

async fn login(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(config) = st.configs.get(&ns, &name) else {
        return page(
            StatusCode::NOT_FOUND,
            "No such identity provider is configured here.",
        );
    };
    let target = q.get("redirect").map(String::as_str).unwrap_or("/");
    if !saml::login::redirect_allowed(&config, target) {
        return page(StatusCode::BAD_REQUEST, "Invalid RelayState");
    }
    let id = saml::login::new_request_id();
    let mut nonce = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce);
    let state = serde_json::json!({ "nonceSha256": hex::encode(openssl::sha::sha256(nonce.as_bytes())), "redirect": target });
    let tenant = format!("{ns}/{name}");
    match st.store.count_login_states(&tenant).await {
        Ok(n) if n >= st.max_pending_logins => {
            tracing::warn!(identity_provider = %tenant, pending = n, "too many sign-ins in progress; refusing new ones");
            return page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-ins are in progress; retry in a few minutes.",
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(identity_provider = %tenant, error = %e, "could not count login state");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable; retry later.",
            );
        }
    }
    if let Err(e) = st
        .store
        .put_login_state(
            &tenant,
            &id,
            &state.to_string(),
            jiff::Timestamp::now() + LOGIN_TTL,
        )
        .await
    {
        tracing::error!(identity_provider = %tenant, error = %e, "could not store login state");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is unavailable; retry later.",
        );
    }
    // The IdP returns RelayState unchanged: an opaque key, never a URL.
    let url = match saml::login::redirect_url(&config, &id, &id) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(identity_provider = %tenant, error = %e, "could not build the AuthnRequest");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable; retry later.",
            );
        }
    };
    let cookie = format!(
        "{}={nonce}; Path=/saml/{ns}/{name}/; Max-Age={}; HttpOnly; Secure; SameSite=None",
        login_cookie_name(&id),
        LOGIN_TTL.as_secs()
    );
    let mut r = StatusCode::FOUND.into_response();
    match (HeaderValue::from_str(&url), HeaderValue::from_str(&cookie)) {
        (Ok(location), Ok(cookie)) => {
            r.headers_mut().insert(header::LOCATION, location);
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        _ => page(StatusCode::BAD_REQUEST, "Invalid RelayState"),
    }
}

fn page(status: StatusCode, text: &str) -> Response {
    let mut r = (status, text.to_owned()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn metadata(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    // A deleted, disabled or never-valid IdentityProvider is not served at all.
    let Some(config) = st.configs.get(&ns, &name) else {
        return page(
            StatusCode::NOT_FOUND,
            "No such identity provider is configured here.",
        );
    };
    match saml::metadata::render(&config) {
        Ok(xml) => {
            let mut r = (StatusCode::OK, xml).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            );
            r
        }
        Err(e) => {
            tracing::error!(identity_provider = %format!("{ns}/{name}"), error = %e, "could not render SP metadata");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service-provider metadata is unavailable; retry later.",
            )
        }
    }
}
