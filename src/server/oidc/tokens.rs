//! The token endpoint (authorization code, refresh token and device code grants) and token
//! revocation (RFC 7009). Codes are single use: a second redemption is refused and ends the
//! tokens issued from the first. Refresh tokens rotate on every use; presenting a used one
//! ends its whole family.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

use super::client_auth::authenticate;
use super::errors::OAuthError;
use super::{OidcState, Provider, params};
use crate::config::oidc::{CompiledOidcClient, GrantType};
use crate::oidc::claims::{AccessToken, IdToken};
use crate::store::User;
use crate::store::oidc::{CodeRedemption, DevicePoll, Grant, RefreshOutcome};

/// The request's form, or the error to answer. Only `application/x-www-form-urlencoded`.
pub(super) fn form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request("the body is not UTF-8"));
    }
    params(body).ok_or_else(|| {
        OAuthError::invalid_request("a parameter is given twice, or the body is too long")
    })
}

/// The OpenID Provider a client's POST is for, and its form; or the answer when it is not
/// served, or the body is too large or not a form.
pub(super) async fn client_request(
    st: &OidcState,
    ns: &str,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Provider, HashMap<String, String>), Response> {
    let Some(provider) = st.provider(ns, name) else {
        return Err(OAuthError::not_served().into_response());
    };
    let body = super::json_body(body).await?;
    let form = form(headers, &body).map_err(IntoResponse::into_response)?;
    Ok((provider, form))
}

/// `POST /oidc/{ns}/{name}/token`.
pub async fn token(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (provider, form) = match client_request(&st, &ns, &name, &headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let grant_type = form.get("grant_type").cloned();
    let result = match authenticate(provider.oidc(), &headers, &form) {
        Err(e) => Err(e),
        Ok(client) => match grant_type.as_deref() {
            Some("authorization_code") => code_grant(&st, &provider, client, &form).await,
            Some("refresh_token") => refresh_grant(&st, &provider, client, &form).await,
            Some(g) if g == GrantType::DeviceCode.as_str() => {
                device_grant(&st, &provider, client, &form).await
            }
            Some(_) => Err(OAuthError::bad(
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or urn:ietf:params:oauth:grant-type:device_code",
            )),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        },
    };
    let label = grant_type.as_deref().map_or("none", grant_label);
    match result {
        Ok(r) => {
            st.saml.metrics.oidc_token(label, "issued");
            r
        }
        Err(e) => {
            st.saml.metrics.oidc_token(label, e.error);
            e.into_response()
        }
    }
}

fn grant_label(g: &str) -> &'static str {
    match g {
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        g if g == GrantType::DeviceCode.as_str() => "device_code",
        _ => "other",
    }
}

fn required<'f>(form: &'f HashMap<String, String>, name: &str) -> Result<&'f str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}

fn allowed(client: &CompiledOidcClient, grant: GrantType) -> Result<(), OAuthError> {
    if client.allows(grant) {
        Ok(())
    } else {
        Err(OAuthError::bad(
            "unauthorized_client",
            format!(
                "OidcClient {} may not use the {} grant: add it to spec.grantTypes",
                client.name,
                grant.as_str()
            ),
        ))
    }
}

fn store_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "identity store failure at the token endpoint");
    OAuthError::unavailable()
}

async fn code_grant(
    st: &OidcState,
    provider: &Provider,
    client: &CompiledOidcClient,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    allowed(client, GrantType::AuthorizationCode)?;
    let code = required(form, "code")?;
    let refresh_expires = Timestamp::now() + client.refresh_token_lifetime;
    let redemption = st
        .saml
        .store
        .redeem_authorization_code(&provider.tenant, code, refresh_expires)
        .await
        .map_err(store_error)?;
    let (grant, redirect_uri, challenge, family) = match redemption {
        CodeRedemption::Unknown => {
            return Err(OAuthError::invalid_grant(
                "the authorization code is unknown: start the sign-in again",
            ));
        }
        CodeRedemption::Expired => {
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired: start the sign-in again",
            ));
        }
        CodeRedemption::Reused => {
            tracing::warn!(identity_provider = %provider.tenant, client_id = %client.client_id, "an authorization code was redeemed twice; the tokens issued from it are revoked");
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; the tokens issued from it are revoked",
            ));
        }
        CodeRedemption::Redeemed {
            grant,
            redirect_uri,
            code_challenge,
            family,
        } => (grant, redirect_uri, code_challenge, family),
    };
    // From here on a refusal also ends what the code started: it was consumed.
    let refuse = |e: OAuthError| async {
        let _ = st.saml.store.revoke_family(&provider.tenant, &family).await;
        Err(e)
    };
    if grant.client_id != client.client_id {
        return refuse(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ))
        .await;
    }
    if form.get("redirect_uri") != Some(&redirect_uri) {
        return refuse(OAuthError::invalid_grant(
            "redirect_uri differs from the one of the authorization request",
        ))
        .await;
    }
    match (challenge, form.get("code_verifier")) {
        (Some(c), Some(v)) if crate::oidc::pkce::verify_s256(v, &c) => {}
        (Some(_), Some(_)) => {
            return refuse(OAuthError::invalid_grant(
                "the code_verifier does not match the code_challenge",
            ))
            .await;
        }
        (Some(_), None) => {
            return refuse(OAuthError::invalid_grant(
                "code_verifier is missing: the authorization request used PKCE",
            ))
            .await;
        }
        (None, Some(_)) => {
            return refuse(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ))
            .await;
        }
        (None, None) => {}
    }
    issue_for_family(st, provider, client, grant, family).await
}

async fn refresh_grant(
    st: &OidcState,
    provider: &Provider,
    client: &CompiledOidcClient,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    allowed(client, GrantType::RefreshToken)?;
    let token = required(form, "refresh_token")?;
    let outcome = st
        .saml
        .store
        .refresh(&provider.tenant, &client.client_id, token)
        .await
        .map_err(store_error)?;
    match outcome {
        RefreshOutcome::Unknown => Err(OAuthError::invalid_grant("the refresh token is unknown")),
        RefreshOutcome::OtherClient => Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        )),
        RefreshOutcome::Ended => Err(OAuthError::invalid_grant(
            "the refresh token has ended: the user signed out, was deactivated or removed, or its lifetime is over; sign in again",
        )),
        RefreshOutcome::Reused => {
            tracing::warn!(identity_provider = %provider.tenant, client_id = %client.client_id, "a used refresh token was presented again; its family is revoked");
            Err(OAuthError::invalid_grant(
                "the refresh token was already used; every token of this sign-in is revoked",
            ))
        }
        RefreshOutcome::Rotated {
            grant,
            family,
            token,
            user,
            groups,
        } => {
            if !super::authorize::in_required_group(client, &groups) {
                let _ = st.saml.store.revoke_family(&provider.tenant, &family).await;
                return Err(OAuthError::invalid_grant(
                    "the user is no longer in a group this application requires",
                ));
            }
            let scope = narrowed(&grant.scope, form.get("scope"))?;
            let grant = Grant { scope, ..grant };
            Ok(respond(
                provider,
                client,
                &Minted::new(&grant, &family, &user, &groups, Some(token)),
                false,
            )?)
        }
    }
}

/// The scope of a refreshed token: the grant's, or a subset the client asks for.
fn narrowed(granted: &str, requested: Option<&String>) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.to_owned());
    };
    let have: Vec<&str> = granted.split(' ').collect();
    if requested
        .split(' ')
        .filter(|s| !s.is_empty())
        .all(|s| have.contains(&s))
    {
        Ok(requested.clone())
    } else {
        Err(OAuthError::bad(
            "invalid_scope",
            "a refresh may only narrow the scope of the sign-in",
        ))
    }
}

async fn device_grant(
    st: &OidcState,
    provider: &Provider,
    client: &CompiledOidcClient,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    allowed(client, GrantType::DeviceCode)?;
    let device_code = required(form, "device_code")?;
    let refresh_expires = Timestamp::now() + client.refresh_token_lifetime;
    let poll = st
        .saml
        .store
        .poll_device(
            &provider.tenant,
            &client.client_id,
            device_code,
            refresh_expires,
        )
        .await
        .map_err(store_error)?;
    match poll {
        DevicePoll::Unknown => Err(OAuthError::invalid_grant("the device code is unknown")),
        DevicePoll::Expired => Err(OAuthError::bad(
            "expired_token",
            "the device code has expired: start again",
        )),
        DevicePoll::Pending => Err(OAuthError::bad(
            "authorization_pending",
            "the user has not approved the sign-in yet",
        )),
        DevicePoll::SlowDown => Err(OAuthError::bad(
            "slow_down",
            "polling faster than the interval: wait 5 seconds more between requests",
        )),
        DevicePoll::Denied => Err(OAuthError::bad(
            "access_denied",
            "the user denied the sign-in",
        )),
        DevicePoll::Approved { grant, family } => {
            issue_for_family(st, provider, client, grant, family).await
        }
    }
}

/// Issues the first tokens of a new family (from a code or a device approval): reads the user
/// and groups as they are now, and a refresh token when `offline_access` was granted.
async fn issue_for_family(
    st: &OidcState,
    provider: &Provider,
    client: &CompiledOidcClient,
    grant: Grant,
    family: String,
) -> Result<Response, OAuthError> {
    let store = &st.saml.store;
    let Some((_, user, groups)) = store
        .family(&provider.tenant, &family)
        .await
        .map_err(store_error)?
    else {
        return Err(OAuthError::invalid_grant(
            "the user is no longer active, or the sign-in has ended",
        ));
    };
    if !super::authorize::in_required_group(client, &groups) {
        let _ = store.revoke_family(&provider.tenant, &family).await;
        return Err(OAuthError::bad(
            "access_denied",
            "the user is not in any group this application requires (the OidcClient's requiredGroups)",
        ));
    }
    let offline = grant.scope.split(' ').any(|s| s == "offline_access")
        && client.allows(GrantType::RefreshToken);
    let refresh = if offline {
        Some(
            store
                .issue_refresh_token(&provider.tenant, &family)
                .await
                .map_err(store_error)?,
        )
    } else {
        None
    };
    respond(
        provider,
        client,
        &Minted::new(&grant, &family, &user, &groups, refresh),
        true,
    )
}

/// What one token response is made of.
struct Minted<'a> {
    grant: &'a Grant,
    family: &'a str,
    user: &'a User,
    groups: &'a [String],
    refresh: Option<String>,
}

impl<'a> Minted<'a> {
    fn new(
        grant: &'a Grant,
        family: &'a str,
        user: &'a User,
        groups: &'a [String],
        refresh: Option<String>,
    ) -> Self {
        Self {
            grant,
            family,
            user,
            groups,
            refresh,
        }
    }
}

/// The token response: an ID token, an access token and (when granted) a refresh token.
fn respond(
    provider: &Provider,
    client: &CompiledOidcClient,
    m: &Minted<'_>,
    with_nonce: bool,
) -> Result<Response, OAuthError> {
    let now = Timestamp::now();
    let scope: Vec<&str> = m.grant.scope.split(' ').collect();
    let mut extra = super::userinfo::user_claims(client, &scope, m.user, m.groups);
    extra.insert("azp".into(), client.client_id.clone().into());
    // The user claims travel in `extra`, as userinfo has them; the typed ones stay empty.
    let id = IdToken {
        iss: provider.issuer().to_owned(),
        sub: m.user.id.clone(),
        aud: client.client_id.clone(),
        exp: now + client.id_token_lifetime,
        iat: now,
        auth_time: m.grant.auth_time,
        nonce: m.grant.nonce.clone().filter(|_| with_nonce),
        email: None,
        email_verified: None,
        name: None,
        preferred_username: None,
        extra,
    };
    let access = AccessToken {
        iss: provider.issuer().to_owned(),
        sub: m.user.id.clone(),
        aud: client.client_id.clone(),
        exp: now + client.access_token_lifetime,
        iat: now,
        client_id: client.client_id.clone(),
        scope: m.grant.scope.clone(),
        fam: m.family.to_owned(),
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let mut body = serde_json::json!({
        "access_token": signed(provider, now, &access)?,
        "token_type": "Bearer",
        "expires_in": client.access_token_lifetime.as_secs(),
        "id_token": signed(provider, now, &id)?,
        "scope": m.grant.scope,
    });
    if let Some(r) = &m.refresh {
        body["refresh_token"] = r.clone().into();
    }
    let mut r = super::json(StatusCode::OK, &body);
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// `claims` signed with the provider's current key; 503 while no key may sign yet.
fn signed<C: serde::Serialize>(
    provider: &Provider,
    now: Timestamp,
    claims: &C,
) -> Result<String, OAuthError> {
    provider.keys.sign(now, claims).map_err(|e| {
        tracing::error!(identity_provider = %provider.tenant, error = %e, "could not sign a token");
        OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "no signing key is ready yet; retry".into(),
            basic: false,
        }
    })
}

/// `POST /oidc/{ns}/{name}/revoke` (RFC 7009): a refresh token ends its family; an access
/// token of ours ends the family it was issued in. Unknown tokens and other clients' tokens
/// get the same 200, so that nothing can be probed.
pub async fn revoke(
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
    let Some(token) = form.get("token") else {
        return OAuthError::invalid_request("token is missing").into_response();
    };
    let store = &st.saml.store;
    let result = if token.contains('.') {
        match provider
            .keys
            .verify::<AccessToken>(token, provider.issuer())
        {
            Ok(claims) if claims.client_id == client.client_id => store
                .revoke_family(&provider.tenant, &claims.fam)
                .await
                .map(|_| ()),
            _ => Ok(()),
        }
    } else {
        store
            .revoke_refresh_token(&provider.tenant, &client.client_id, token)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => store_error(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
        assert_eq!(narrowed("openid email", None).unwrap(), "openid email");
        assert_eq!(
            narrowed("openid email", Some(&"openid".to_owned())).unwrap(),
            "openid"
        );
        assert_eq!(
            narrowed("openid", Some(&"openid groups".to_owned()))
                .unwrap_err()
                .error,
            "invalid_scope"
        );
    }

    #[test]
    fn only_form_bodies_are_read_and_repeated_parameters_refused() {
        let mut h = HeaderMap::new();
        assert!(form(&h, b"a=1").is_err());
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        assert_eq!(form(&h, b"a=1&b=2").unwrap().len(), 2);
        assert_eq!(form(&h, b"a=1&a=2").unwrap_err().error, "invalid_request");
        assert!(form(&h, &[0xff, 0xfe]).is_err());
        assert!(form(&h, &vec![b'a'; super::super::MAX_FORM + 1]).is_err());
    }
}
