//! The device authorization grant (RFC 8628), for kubectl on a machine without a browser: the
//! device asks for a code pair, the user opens the verification page on any browser, signs in
//! through the IdentityProvider and approves the code shown on the device, which polls the
//! token endpoint meanwhile. The page asks the user to compare the code and press Approve,
//! so that a code sent by someone else is not approved by merely opening a link.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::client_auth::authenticate;
use super::errors::OAuthError;
use super::tokens::client_request;
use super::{OidcState, Provider, params};
use crate::config::oidc::GrantType;
use crate::server::auth::{self, NoAnswer};
use crate::server::web::{self, escape, html_page, page};
use crate::store::oidc::Grant;

/// How long a device code waits for the user.
pub const DEVICE_TTL: SignedDuration = SignedDuration::from_mins(10);
/// The polling interval the device is told (seconds).
pub const INTERVAL_SECS: u64 = 5;

/// `POST /oidc/{ns}/{name}/device/authorize`: a device code and a user code.
pub async fn authorize(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (provider, form) = match client_request(&st, &ns, &name, &headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let client = match authenticate(provider.oidc(), &headers, &form) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !client.allows(GrantType::DeviceCode) {
        return OAuthError::bad(
            "unauthorized_client",
            format!(
                "OidcClient {} may not use the device grant: add device_code to spec.grantTypes",
                client.name
            ),
        )
        .into_response();
    }
    let requested = form.get("scope").map_or("openid", String::as_str);
    let scope = crate::oidc::scope::granted(
        &crate::oidc::scope::Scopes::parse(requested),
        client.scopes.iter().map(String::as_str),
    )
    .to_string();
    let created = st
        .saml
        .store
        .create_device_authorization(
            &provider.tenant,
            &client.client_id,
            &scope,
            Timestamp::now() + DEVICE_TTL,
            INTERVAL_SECS,
        )
        .await;
    let (device_code, user_code) = match created {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "could not store a device authorization");
            return OAuthError::unavailable().into_response();
        }
    };
    let verification_uri = format!("{}/device", provider.issuer());
    let complete = format!(
        "{verification_uri}?user_code={}",
        form_urlencoded::byte_serialize(user_code.as_bytes()).collect::<String>()
    );
    let mut r = super::json(
        StatusCode::OK,
        &serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete,
            "expires_in": DEVICE_TTL.as_secs(),
            "interval": INTERVAL_SECS,
        }),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What the approval form carries, sealed with the session keys: which code, for which
/// session, until when. A form made for another session or code is refused.
#[derive(Serialize, Deserialize)]
struct FormToken {
    #[serde(rename = "c")]
    user_code: String,
    #[serde(rename = "s")]
    session: String,
    #[serde(rename = "e")]
    expires: i64,
}

const TITLE: &str = "Device Sign-In";

/// `GET /oidc/{ns}/{name}/device[?user_code=…]`: the code form, or the approval page.
async fn page_handler(
    st: &OidcState,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let Some(provider) = st.provider(ns, name) else {
        return web::not_served();
    };
    let Some(user_code) = q.get("user_code").map(|c| normalise(c)) else {
        return html_page(
            StatusCode::OK,
            TITLE,
            "<p>Enter the code shown on your device.</p><form method=\"get\"><input name=\"user_code\" autocomplete=\"off\" autofocus required> <button>Continue</button></form>",
        );
    };
    let live = match auth::live_session(&st.saml, headers, &provider.tenant).await {
        Ok(l) => l,
        Err(NoAnswer::Store) => return unavailable(),
        Err(NoAnswer::DuplicateCookie) => return auth::duplicate_cookie(),
    };
    let Some(live) = live else {
        return sign_in(&provider, &user_code);
    };
    let request = match st
        .saml
        .store
        .device_request(&provider.tenant, &user_code)
        .await
    {
        Ok(r) => r,
        Err(_) => return unavailable(),
    };
    let Some(request) = request else {
        return unknown_code();
    };
    let Some(keys) = st.saml.configs.session_keys() else {
        return unavailable();
    };
    let token = FormToken {
        user_code: user_code.clone(),
        session: live.payload.session_id.clone(),
        expires: request.expires.as_second(),
    };
    let Some(sealed) = serde_json::to_vec(&token).ok().and_then(|t| keys.seal(&t)) else {
        return unavailable();
    };
    let client = provider
        .oidc()
        .client(&request.client_id)
        .map_or(request.client_id.clone(), |c| c.client_id.clone());
    html_page(
        StatusCode::OK,
        TITLE,
        &format!(
            "<p>Sign in as <b>{user}</b> to <b>{client}</b> on another device?</p><p>Check that your device shows this code: <b>{code}</b>. Approve only a sign-in you started yourself.</p><form method=\"post\"><input type=\"hidden\" name=\"user_code\" value=\"{code}\"><input type=\"hidden\" name=\"form\" value=\"{sealed}\"><button name=\"decision\" value=\"approve\">Approve</button> <button name=\"decision\" value=\"deny\">Deny</button></form>",
            user = escape(&live.user.user_name),
            client = escape(&client),
            code = escape(&user_code),
            sealed = escape(&sealed),
        ),
    )
}

/// `GET /oidc/{ns}/{name}/device`.
pub async fn show(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    page_handler(&st, &ns, &name, &q, &headers).await
}

/// `POST /oidc/{ns}/{name}/device`: the user's decision.
pub async fn decide(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(provider) = st.provider(&ns, &name) else {
        return web::not_served();
    };
    let body = match super::page_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(form) = params(&body) else {
        return page(StatusCode::BAD_REQUEST, TITLE, "The form is malformed.");
    };
    let live = match auth::live_session(&st.saml, &headers, &provider.tenant).await {
        Ok(l) => l,
        Err(NoAnswer::Store) => return unavailable(),
        Err(NoAnswer::DuplicateCookie) => return auth::duplicate_cookie(),
    };
    let (Some(live), Some(keys)) = (live, st.saml.configs.session_keys()) else {
        return page(
            StatusCode::BAD_REQUEST,
            TITLE,
            "You are not signed in any more. Open the link shown on your device again.",
        );
    };
    let user_code = form
        .get("user_code")
        .map(|c| normalise(c))
        .unwrap_or_default();
    let token = form
        .get("form")
        .and_then(|f| keys.open(f))
        .and_then(|b| serde_json::from_slice::<FormToken>(&b).ok())
        .filter(|t| {
            t.user_code == user_code
                && t.session == live.payload.session_id
                && t.expires > Timestamp::now().as_second()
        });
    if token.is_none() {
        return page(
            StatusCode::BAD_REQUEST,
            TITLE,
            "This approval form is not valid for your session. Open the link shown on your device again.",
        );
    }
    let store = &st.saml.store;
    let request = match store.device_request(&provider.tenant, &user_code).await {
        Ok(Some(r)) => r,
        Ok(None) => return unknown_code(),
        Err(_) => return unavailable(),
    };
    if form.get("decision").map(String::as_str) != Some("approve") {
        return match store.deny_device(&provider.tenant, &user_code).await {
            Ok(_) => page(
                StatusCode::OK,
                TITLE,
                "Denied. The device will not be signed in.",
            ),
            Err(_) => unavailable(),
        };
    }
    let client = provider.oidc().client(&request.client_id);
    if client.is_none_or(|c| !super::authorize::in_required_group(c, &live.groups)) {
        let _ = store.deny_device(&provider.tenant, &user_code).await;
        return page(
            StatusCode::FORBIDDEN,
            TITLE,
            "You are not in a group this application requires. Ask your administrator for access.",
        );
    }
    let auth_time = store
        .session_started(&provider.tenant, &live.payload.session_id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(Timestamp::now);
    let grant = Grant {
        client_id: request.client_id.clone(),
        user_id: live.user.id.clone(),
        session: Some(live.payload.session_id.clone()),
        scope: request.scope.clone(),
        nonce: None,
        auth_time,
    };
    match store
        .approve_device(&provider.tenant, &user_code, &grant)
        .await
    {
        Ok(true) => page(
            StatusCode::OK,
            TITLE,
            "Approved. Return to your device; it is signed in within a few seconds.",
        ),
        Ok(false) => unknown_code(),
        Err(_) => unavailable(),
    }
}

/// A user code as typed: upper case, without spaces; the dash is put back after four letters.
fn normalise(code: &str) -> String {
    let letters: String = code
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_uppercase())
        .take(8)
        .collect();
    if letters.len() == 8 {
        format!("{}-{}", &letters[..4], &letters[4..])
    } else {
        letters
    }
}

fn sign_in(provider: &Provider, user_code: &str) -> Response {
    let tenant = &provider.tenant;
    let back = format!(
        "/oidc/{}/{}/device?user_code={}",
        tenant.namespace,
        tenant.name,
        form_urlencoded::byte_serialize(user_code.as_bytes()).collect::<String>()
    );
    let mut location = format!("/saml/{}/{}/login?redirect=", tenant.namespace, tenant.name);
    location.extend(form_urlencoded::byte_serialize(back.as_bytes()));
    web::redirect(&location, &[])
}

fn unknown_code() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        TITLE,
        "This code is unknown, already used, or has expired. Start the sign-in on your device again.",
    )
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "Signing in is unavailable; retry.",
    )
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn user_codes_are_read_as_people_type_them() {
        assert_eq!(normalise("bcdf-ghjk"), "BCDF-GHJK");
        assert_eq!(normalise(" BCDF GHJK "), "BCDF-GHJK");
        assert_eq!(normalise("bcdfghjk"), "BCDF-GHJK");
        assert_eq!(normalise("bcd"), "BCD");
    }
}
