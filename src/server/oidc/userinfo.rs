//! The userinfo endpoint, and the user claims that ID tokens carry too: `email`,
//! `email_verified`, `name`, `preferred_username` and the groups, each by its scope.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::OidcState;
use crate::config::oidc::CompiledOidcClient;
use crate::oidc::claims::{AccessToken, valid_groups_claim};
use crate::store::User;

/// The user claims for `scope`: `email` and `email_verified` with `email`; `name` and
/// `preferred_username` with `profile`; the groups (under the client's claim name) with
/// `groups`.
pub fn user_claims(
    client: &CompiledOidcClient,
    scope: &[&str],
    user: &User,
    groups: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if scope.contains(&"email")
        && let Some(email) = crate::server::auth::email_of(user)
    {
        out.insert("email".into(), email.into());
        // The IdP asserted it or pushed it over SCIM: the organisation vouches for it.
        out.insert("email_verified".into(), true.into());
    }
    if scope.contains(&"profile") {
        out.insert("preferred_username".into(), user.user_name.clone().into());
        if let Some(name) = display_name(user) {
            out.insert("name".into(), name.into());
        }
    }
    // A groups claim named like another claim (`sub`, `email`) never replaces it.
    if scope.contains(&"groups") && valid_groups_claim(&client.groups_claim) {
        out.insert(client.groups_claim.clone(), groups.to_vec().into());
    }
    out
}

/// The user's name: `displayName`, else `name.formatted`, else given and family names.
fn display_name(user: &User) -> Option<String> {
    let r = &user.resource;
    let text = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    text(r.get("displayName"))
        .or_else(|| text(r.pointer("/name/formatted")))
        .or_else(|| {
            let parts: Vec<String> = [r.pointer("/name/givenName"), r.pointer("/name/familyName")]
                .into_iter()
                .filter_map(text)
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
}

/// `GET|POST /oidc/{ns}/{name}/userinfo` with `Authorization: Bearer ACCESS_TOKEN`.
pub async fn userinfo(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(provider) = st.provider(&ns, &name) else {
        return super::OAuthError::not_served().into_response();
    };
    let Some(token) = bearer(&headers) else {
        return unauthorized(
            "invalid_request",
            "send the access token as Authorization: Bearer",
        );
    };
    let Ok(claims) = provider
        .keys
        .verify::<AccessToken>(token, provider.issuer())
    else {
        return unauthorized("invalid_token", "the access token is invalid or expired");
    };
    let Some(client) = provider.oidc().client(&claims.client_id) else {
        return unauthorized("invalid_token", "the client of this token no longer exists");
    };
    let live = st.saml.store.family(&provider.tenant, &claims.fam).await;
    let (user, groups) = match live {
        Ok(Some((_, user, groups))) if user.id == claims.sub => (user, groups),
        Ok(_) => {
            return unauthorized(
                "invalid_token",
                "the sign-in of this token has ended (signed out, revoked, or the user was deactivated)",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "identity store failure at userinfo");
            return super::OAuthError::unavailable().into_response();
        }
    };
    let scope: Vec<&str> = claims.scope.split(' ').collect();
    let mut body = user_claims(client, &scope, &user, &groups);
    body.insert("sub".into(), user.id.clone().into());
    let mut r = super::json(StatusCode::OK, &serde_json::Value::Object(body));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// A 401 as RFC 6750 §3 has it.
fn unauthorized(error: &str, description: &str) -> Response {
    let mut r = super::json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({ "error": error, "error_description": description }),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Bearer error=\"{error}\", error_description=\"{description}\""
    )) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(resource: serde_json::Value) -> User {
        User {
            id: "u1".into(),
            user_name: "ada@example.com".into(),
            external_id: None,
            active: true,
            resource,
            scim_managed: true,
            version: 1,
            created: jiff::Timestamp::UNIX_EPOCH,
            last_modified: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn client(groups_claim: &str) -> CompiledOidcClient {
        serde_json::from_value(serde_json::json!({
            "name": "c", "uid": "u", "clientId": "c", "public": false, "secrets": [],
            "redirectUris": [], "grantTypes": ["authorization_code"], "scopes": ["openid"],
            "groupsClaim": groups_claim, "idTokenLifetime": "1h", "accessTokenLifetime": "1h",
            "refreshTokenLifetime": "1h"
        }))
        .unwrap()
    }

    #[test]
    fn each_claim_comes_with_its_scope_only() {
        let u = user(serde_json::json!({
            "emails": [{"value": "ada@example.com", "primary": true}],
            "name": {"givenName": "Ada", "familyName": "Lovelace"}
        }));
        let groups = vec!["engineering".to_owned()];
        let c = client("roles");
        let none = user_claims(&c, &["openid"], &u, &groups);
        assert!(none.is_empty());
        let all = user_claims(&c, &["openid", "email", "profile", "groups"], &u, &groups);
        assert_eq!(all["email"], "ada@example.com");
        assert_eq!(all["email_verified"], true);
        assert_eq!(all["name"], "Ada Lovelace");
        assert_eq!(all["preferred_username"], "ada@example.com");
        assert_eq!(all["roles"], serde_json::json!(["engineering"]));
        assert!(!all.contains_key("groups"));
    }

    #[test]
    fn the_display_name_wins_over_name_parts() {
        let u = user(
            serde_json::json!({"displayName": "Ada L.", "name": {"formatted": "Ada Lovelace"}}),
        );
        assert_eq!(display_name(&u).as_deref(), Some("Ada L."));
        assert_eq!(display_name(&user(serde_json::json!({}))), None);
    }

    #[test]
    fn only_bearer_authorization_is_read() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Some("abc.def"));
    }
}
