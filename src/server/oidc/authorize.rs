//! The authorization endpoint: the code flow only (no implicit flow). The client and its
//! redirect URI are checked first, and a request failing those gets an error page, never a
//! redirect. Without a session (or when `prompt=login` or `max_age` asks for a fresh one) the
//! browser signs in through the IdentityProvider's SAML flow and comes back here.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use jiff::{SignedDuration, Timestamp};

use super::errors::authorization_page;
use super::{OidcState, Provider, params};
use crate::config::oidc::{CompiledOidcClient, GrantType};
use crate::server::auth::{self, NoAnswer};
use crate::server::web;
use crate::store::oidc::Grant;

/// How long an authorization code may wait for its redemption.
pub const CODE_TTL: SignedDuration = SignedDuration::from_mins(2);

/// `GET /oidc/{ns}/{name}/authorize`.
pub async fn get(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    authorize(
        &st,
        &ns,
        &name,
        query.unwrap_or_default().as_bytes(),
        &headers,
    )
    .await
}

/// `POST /oidc/{ns}/{name}/authorize` (form-encoded, OIDC Core §3.1.2.1).
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
    authorize(&st, &ns, &name, &body, &headers).await
}

/// A checked authorization request whose errors may go back to the client.
struct Request<'p> {
    client: &'p CompiledOidcClient,
    redirect_uri: String,
    state: Option<String>,
    params: HashMap<String, String>,
}

impl Request<'_> {
    /// The redirect back to the client with `pairs`, the `state` and the issuer (RFC 9207).
    fn back(&self, provider: &Provider, pairs: &[(&str, &str)]) -> Response {
        let mut url = self.redirect_uri.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        if let Some(s) = &self.state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", provider.issuer());
        url.push_str(&query.finish());
        web::redirect(&url, &[])
    }

    /// An error redirect (RFC 6749 §4.1.2.1).
    fn error(&self, provider: &Provider, error: &str, description: &str) -> Response {
        self.back(
            provider,
            &[("error", error), ("error_description", description)],
        )
    }
}

async fn authorize(
    st: &OidcState,
    ns: &str,
    name: &str,
    text: &[u8],
    headers: &HeaderMap,
) -> Response {
    let Some(provider) = st.provider(ns, name) else {
        return web::not_served();
    };
    let Some(params) = params(text) else {
        return authorization_page(
            "The sign-in request repeats a parameter or is too long. Start the sign-in again from the application.",
        );
    };
    let request = match checked_client(&provider, params) {
        Ok(r) => r,
        Err(text) => return authorization_page(&text),
    };
    if let Err((error, description)) = check_request(&request) {
        return request.error(&provider, error, &description);
    }
    let prompt = prompt(&request.params);
    let Ok(prompt) = prompt else {
        return request.error(
            &provider,
            "invalid_request",
            "prompt=none cannot be combined with another prompt value",
        );
    };
    let live = match auth::live_session(&st.saml, headers, &provider.tenant).await {
        Ok(live) => live,
        Err(NoAnswer::Store) => {
            return request.error(
                &provider,
                "temporarily_unavailable",
                "the identity store did not answer; retry",
            );
        }
        Err(NoAnswer::DuplicateCookie) => return auth::duplicate_cookie(),
    };
    let started = match &live {
        Some(l) => st
            .saml
            .store
            .session_started(&provider.tenant, &l.payload.session_id)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let fresh_enough = match (max_age(&request.params), started) {
        (Some(age), Some(at)) => Timestamp::now().duration_since(at) <= age,
        _ => true,
    };
    let (Some(live), Some(auth_time)) = (live, started) else {
        return sign_in(&provider, &request, prompt, "no session");
    };
    if prompt == Prompt::Login || !fresh_enough {
        return sign_in(&provider, &request, prompt, "a fresh sign-in was asked for");
    }
    if !in_required_group(request.client, &live.groups) {
        tracing::info!(identity_provider = %provider.tenant, client_id = %request.client.client_id, "refused an OIDC sign-in: the user is in none of the client's required groups");
        return request.error(
            &provider,
            "access_denied",
            "the user is not in any group this application requires (the OidcClient's requiredGroups)",
        );
    }
    let scope = crate::oidc::scope::granted(
        &crate::oidc::scope::Scopes::parse(request.params.get("scope").map_or("", String::as_str)),
        request.client.scopes.iter().map(String::as_str),
    );
    let grant = Grant {
        client_id: request.client.client_id.clone(),
        user_id: live.user.id.clone(),
        session: Some(live.payload.session_id.clone()),
        scope: scope.to_string(),
        nonce: request.params.get("nonce").cloned(),
        auth_time,
    };
    let code = st
        .saml
        .store
        .create_authorization_code(
            &provider.tenant,
            &grant,
            &request.redirect_uri,
            request.params.get("code_challenge").map(String::as_str),
            Timestamp::now() + CODE_TTL,
        )
        .await;
    match code {
        Ok(code) => request.back(&provider, &[("code", &code)]),
        Err(e) => {
            tracing::error!(error = %e, "could not store an authorization code");
            request.error(
                &provider,
                "temporarily_unavailable",
                "the identity store did not answer; retry",
            )
        }
    }
}

/// The client and redirect URI of a request, or the text of the error page.
fn checked_client(
    provider: &Provider,
    params: HashMap<String, String>,
) -> Result<Request<'_>, String> {
    let Some(client_id) = params.get("client_id") else {
        return Err("The sign-in request names no client (client_id). Start the sign-in again from the application.".into());
    };
    let Some(client) = provider.oidc().client(client_id) else {
        return Err(format!(
            "No OidcClient with client ID {client_id:?} uses this identity provider. Check the application's client ID against the OidcClient's status.clientId."
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri").cloned() else {
        return Err("The sign-in request has no redirect_uri. Configure the application's redirect (callback) URL and add it to the OidcClient's redirectUris.".into());
    };
    if !crate::oidc::redirect::matches(&client.redirect_uris, &redirect_uri) {
        return Err(format!(
            "The redirect URI {redirect_uri:?} is not one of the OidcClient's redirectUris. Add it to spec.redirectUris of OidcClient {}, or fix the application's callback URL.",
            client.name
        ));
    }
    Ok(Request {
        client,
        redirect_uri,
        state: params.get("state").cloned(),
        params,
    })
}

/// What the client asks that may be refused back to it: `(error, description)`.
fn check_request(r: &Request<'_>) -> Result<(), (&'static str, String)> {
    let p = &r.params;
    if p.contains_key("request") || p.contains_key("request_uri") {
        let error = if p.contains_key("request") {
            "request_not_supported"
        } else {
            "request_uri_not_supported"
        };
        return Err((
            error,
            "request objects are not supported: send the parameters directly".into(),
        ));
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only the authorization code flow (response_type=code) is supported".into(),
            ));
        }
        None => {
            return Err(("invalid_request", "response_type is missing".into()));
        }
    }
    if !r.client.allows(GrantType::AuthorizationCode) {
        return Err((
            "unauthorized_client",
            "this OidcClient may not use the authorization code flow (spec.grantTypes)".into(),
        ));
    }
    if let Some(mode) = p.get("response_mode")
        && mode != "query"
    {
        return Err((
            "invalid_request",
            "only response_mode=query is supported".into(),
        ));
    }
    let scope = p.get("scope").map_or("", String::as_str);
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(("invalid_scope", "the scope must include openid".into()));
    }
    match (
        p.get("code_challenge"),
        p.get("code_challenge_method").map(String::as_str),
    ) {
        (Some(c), Some("S256")) if crate::oidc::pkce::valid_challenge(c) => {}
        (Some(_), Some("S256")) => {
            return Err((
                "invalid_request",
                "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"
                    .into(),
            ));
        }
        (Some(_), _) => {
            return Err((
                "invalid_request",
                "code_challenge_method must be S256 (plain is not accepted)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err((
                "invalid_request",
                "code_challenge_method without code_challenge".into(),
            ));
        }
        (None, None) if r.client.public => {
            return Err((
                "invalid_request",
                "a public client must use PKCE: send code_challenge with code_challenge_method=S256".into(),
            ));
        }
        (None, None) => {}
    }
    if p.get("max_age").is_some_and(|m| m.parse::<u64>().is_err()) {
        return Err((
            "invalid_request",
            "max_age must be a number of seconds".into(),
        ));
    }
    Ok(())
}

/// The `prompt` values that change what happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prompt {
    /// Nothing special.
    Default,
    /// No user interaction: without a session, answer `login_required`.
    None,
    /// A fresh sign-in even with a session.
    Login,
}

fn prompt(p: &HashMap<String, String>) -> Result<Prompt, ()> {
    let Some(value) = p.get("prompt") else {
        return Ok(Prompt::Default);
    };
    let values: Vec<&str> = value.split(' ').filter(|v| !v.is_empty()).collect();
    if values.contains(&"none") {
        return if values.len() == 1 {
            Ok(Prompt::None)
        } else {
            Err(())
        };
    }
    Ok(if values.contains(&"login") {
        Prompt::Login
    } else {
        // consent and select_account: there is no consent screen (the OidcClient is the
        // administrator's consent) and one account per IdentityProvider.
        Prompt::Default
    })
}

fn max_age(p: &HashMap<String, String>) -> Option<SignedDuration> {
    p.get("max_age")?
        .parse::<i64>()
        .ok()
        .map(SignedDuration::from_secs)
}

/// Whether the user's groups satisfy the client's `requiredGroups` (ASCII case-insensitive).
pub fn in_required_group(client: &CompiledOidcClient, groups: &[String]) -> bool {
    client.required_groups.is_empty()
        || client
            .required_groups
            .iter()
            .any(|r| groups.iter().any(|g| g.eq_ignore_ascii_case(r)))
}

/// Sends the browser to the IdentityProvider's SAML sign-in, returning to this request without
/// what asked for the fresh sign-in (`prompt=login`, `max_age`), so that it cannot loop.
fn sign_in(provider: &Provider, request: &Request<'_>, prompt: Prompt, why: &str) -> Response {
    if prompt == Prompt::None {
        return request.error(
            provider,
            "login_required",
            &format!("prompt=none, and the user must sign in ({why})"),
        );
    }
    let mut back = form_urlencoded::Serializer::new(String::new());
    let mut keys: Vec<&String> = request
        .params
        .keys()
        .filter(|k| !matches!(k.as_str(), "prompt" | "max_age"))
        .collect();
    keys.sort();
    for k in keys {
        back.append_pair(k, &request.params[k]);
    }
    let tenant = &provider.tenant;
    let local = format!(
        "/oidc/{}/{}/authorize?{}",
        tenant.namespace,
        tenant.name,
        back.finish()
    );
    if !crate::saml::login::local_path_allowed(&local) {
        return request.error(
            provider,
            "invalid_request",
            "the sign-in request is too long to return to after signing in: shorten state and nonce",
        );
    }
    let mut location = format!("/saml/{}/{}/login?redirect=", tenant.namespace, tenant.name);
    location.extend(form_urlencoded::byte_serialize(local.as_bytes()));
    web::redirect(&location, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn prompt_none_stands_alone_and_login_forces_a_sign_in() {
        assert_eq!(prompt(&p(&[])), Ok(Prompt::Default));
        assert_eq!(prompt(&p(&[("prompt", "none")])), Ok(Prompt::None));
        assert_eq!(prompt(&p(&[("prompt", "none login")])), Err(()));
        assert_eq!(
            prompt(&p(&[("prompt", "login consent")])),
            Ok(Prompt::Login)
        );
        assert_eq!(prompt(&p(&[("prompt", "consent")])), Ok(Prompt::Default));
    }

    #[test]
    fn required_groups_match_any_ignoring_ascii_case() {
        let mut c: CompiledOidcClient = serde_json::from_value(serde_json::json!({
            "name": "c", "uid": "u", "clientId": "c", "public": false, "secrets": [],
            "redirectUris": [], "grantTypes": ["authorization_code"], "scopes": ["openid"],
            "groupsClaim": "groups", "idTokenLifetime": "1h", "accessTokenLifetime": "1h",
            "refreshTokenLifetime": "1h"
        }))
        .unwrap();
        assert!(in_required_group(&c, &[]));
        c.required_groups = vec!["Admins".into()];
        assert!(!in_required_group(&c, &["eng".into()]));
        assert!(in_required_group(&c, &["eng".into(), "admins".into()]));
    }
}
