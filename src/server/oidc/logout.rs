//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the browser's session of
//! the IdentityProvider and every refresh token issued in it, takes part in SAML Single Logout
//! when the IdP does, and returns only to a `post_logout_redirect_uri` the client registered.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{OidcState, params};
use crate::server::auth;
use crate::server::single_logout;
use crate::server::web::{self, page};

/// `GET /oidc/{ns}/{name}/logout`.
pub async fn get(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    logout(
        &st,
        &ns,
        &name,
        query.unwrap_or_default().as_bytes(),
        &headers,
    )
    .await
}

/// `POST /oidc/{ns}/{name}/logout`.
pub async fn post(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match super::page_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    logout(&st, &ns, &name, &body, &headers).await
}

/// The client a logout request is from: `client_id`, else the audience of `id_token_hint`
/// (a token we signed and still valid; after it expired, send `client_id`).
fn client_of(st_provider: &super::Provider, q: &HashMap<String, String>) -> Option<String> {
    if let Some(id) = q.get("client_id") {
        return Some(id.clone());
    }
    #[derive(serde::Deserialize)]
    struct Hint {
        aud: String,
    }
    let hint = q.get("id_token_hint")?;
    st_provider
        .keys
        .verify::<Hint>(hint, st_provider.issuer())
        .ok()
        .map(|h| h.aud)
}

async fn logout(
    st: &OidcState,
    ns: &str,
    name: &str,
    text: &[u8],
    headers: &HeaderMap,
) -> Response {
    let Some(provider) = st.provider(ns, name) else {
        return web::not_served();
    };
    let Some(q) = params(text) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-Out",
            "The sign-out request repeats a parameter or is too long.",
        );
    };
    // Where to return: only a URI the client registered, with its `state`.
    let mut refused = None;
    let target = q.get("post_logout_redirect_uri").and_then(|uri| {
        let client = client_of(&provider, &q)
            .and_then(|id| provider.oidc().client(&id).cloned());
        match client {
            Some(c) if c.post_logout_redirect_uris.iter().any(|u| u == uri) => {
                let mut url = uri.clone();
                if let Some(state) = q.get("state") {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str("state=");
                    url.extend(form_urlencoded::byte_serialize(state.as_bytes()));
                }
                Some(url)
            }
            Some(c) => {
                refused = Some(format!(
                    "You are signed out. The address to return to is not one of OidcClient {}'s postLogoutRedirectUris.",
                    c.name
                ));
                None
            }
            None => {
                refused = Some("You are signed out. The application could not be told (send client_id or id_token_hint with post_logout_redirect_uri).".to_owned());
                None
            }
        }
    });
    let ended =
        match auth::end_sessions(&st.saml, headers, std::slice::from_ref(&provider.tenant)).await {
            Ok(e) => e,
            Err(r) => return r,
        };
    if let Some((config, subject)) = ended.single_logout
        && let Some(r) = single_logout::start(
            &st.saml,
            &config,
            &subject,
            target.as_deref(),
            &ended.cookies,
        )
    {
        return r;
    }
    match (target, refused) {
        (Some(t), _) => web::redirect(&t, &ended.cookies),
        (None, text) => {
            let (title, signed_out) = single_logout::SIGNED_OUT;
            let status = if text.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            let mut r = page(status, title, text.as_deref().unwrap_or(signed_out));
            web::add_cookies(&mut r, &ended.cookies);
            r
        }
    }
}
