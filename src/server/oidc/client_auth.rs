//! Client authentication at the token, revocation and device-authorization endpoints:
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients (RFC 6749 §2.3).

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::errors::OAuthError;
use crate::config::oidc::{CompiledOidc, CompiledOidcClient};

/// The client a request authenticated as.
pub fn authenticate<'o>(
    oidc: &'o CompiledOidc,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<&'o CompiledOidcClient, OAuthError> {
    let basic = basic_credentials(headers)?;
    let used_basic = basic.is_some();
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if form.contains_key("client_secret") {
                return Err(OAuthError::invalid_request(
                    "the client authenticated twice: send the secret either in the Authorization header or as client_secret, not both",
                ));
            }
            if form.get("client_id").is_some_and(|f| *f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the client of the Authorization header",
                ));
            }
            (id, Some(secret))
        }
        None => {
            let Some(id) = form.get("client_id") else {
                return Err(OAuthError::invalid_client(
                    "no client authentication: send client_id (and the client secret, unless the OidcClient is public)",
                    false,
                ));
            };
            (id.clone(), form.get("client_secret").cloned())
        }
    };
    let unknown = || {
        OAuthError::invalid_client(
            "unknown client or wrong secret: check the client ID and secret against the OidcClient's Secret",
            used_basic,
        )
    };
    let client = oidc.client(&client_id).ok_or_else(unknown)?;
    if client.public {
        // A public client has no secret; one sent anyway is a configuration error.
        return match secret {
            None => Ok(client),
            Some(_) => Err(OAuthError::invalid_client(
                "this OidcClient is public and has no secret: send only client_id",
                used_basic,
            )),
        };
    }
    let Some(secret) = secret else {
        return Err(OAuthError::invalid_client(
            "this OidcClient is confidential: send its secret (HTTP Basic or client_secret)",
            used_basic,
        ));
    };
    if secret_matches(client, &secret, jiff::Timestamp::now()) {
        Ok(client)
    } else {
        Err(unknown())
    }
}

/// Whether `secret` is one of the client's secrets still accepted at `now`. The hashes are
/// compared in constant time.
pub fn secret_matches(client: &CompiledOidcClient, secret: &str, now: jiff::Timestamp) -> bool {
    let hash = crate::config::token_hash(secret);
    client
        .secrets
        .iter()
        .filter(|s| s.not_after.is_none_or(|t| t > now))
        .fold(false, |found, s| {
            let same = s.sha256.len() == hash.len()
                && openssl::memcmp::eq(s.sha256.as_bytes(), hash.as_bytes());
            found | same
        })
}

/// The credentials of an `Authorization: Basic` header: the client ID and secret,
/// form-urlencoded before base64 (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || {
        OAuthError::invalid_client(
            "the Authorization header is not HTTP Basic of client ID and secret",
            true,
        )
    };
    if values.next().is_some() {
        return Err(malformed());
    }
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::oidc::{CompiledClientSecret, GrantType};
    use axum::http::HeaderValue;

    fn oidc() -> CompiledOidc {
        let client = |id: &str, public: bool, secret: Option<&str>| CompiledOidcClient {
            name: id.into(),
            uid: "u".into(),
            client_id: id.into(),
            public,
            secrets: secret
                .map(|s| CompiledClientSecret {
                    secret_id: "x".into(),
                    sha256: crate::config::token_hash(s),
                    not_after: None,
                })
                .into_iter()
                .collect(),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into()],
            groups_claim: "groups".into(),
            required_groups: vec![],
            id_token_lifetime: jiff::SignedDuration::from_hours(1),
            access_token_lifetime: jiff::SignedDuration::from_hours(1),
            refresh_token_lifetime: jiff::SignedDuration::from_hours(1),
        };
        CompiledOidc {
            issuer: "https://sso.example.com/oidc/ns/okta".into(),
            signing_keys: Default::default(),
            clients: vec![
                client("argocd", false, Some("s3cret")),
                client("kubectl", true, None),
            ],
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
        h
    }

    #[test]
    fn confidential_clients_authenticate_with_basic_or_post_and_nothing_else() {
        let o = oidc();
        let none = HeaderMap::new();
        assert_eq!(
            authenticate(&o, &basic("argocd", "s3cret"), &form(&[]))
                .unwrap()
                .client_id,
            "argocd"
        );
        assert!(
            authenticate(
                &o,
                &none,
                &form(&[("client_id", "argocd"), ("client_secret", "s3cret")])
            )
            .is_ok()
        );
        for (headers, f) in [
            (basic("argocd", "wrong"), form(&[])),
            (basic("kubectl-x", "s3cret"), form(&[])),
            (none.clone(), form(&[("client_id", "argocd")])),
            (
                basic("argocd", "s3cret"),
                form(&[("client_secret", "s3cret")]),
            ),
            (basic("argocd", "s3cret"), form(&[("client_id", "kubectl")])),
            (none.clone(), form(&[])),
        ] {
            let e = authenticate(&o, &headers, &f).unwrap_err();
            assert!(
                matches!(e.error, "invalid_client" | "invalid_request"),
                "{e:?}"
            );
        }
        let e = authenticate(&o, &basic("argocd", "wrong"), &form(&[])).unwrap_err();
        assert!(e.basic && e.status == axum::http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn public_clients_send_only_their_id() {
        let o = oidc();
        let none = HeaderMap::new();
        assert!(authenticate(&o, &none, &form(&[("client_id", "kubectl")])).is_ok());
        assert!(
            authenticate(
                &o,
                &none,
                &form(&[("client_id", "kubectl"), ("client_secret", "x")])
            )
            .is_err()
        );
    }

    #[test]
    fn an_expired_secret_of_a_rotation_no_longer_matches() {
        let mut o = oidc();
        let now = jiff::Timestamp::now();
        o.clients[0].secrets[0].not_after = Some(now - jiff::SignedDuration::from_secs(1));
        assert!(!secret_matches(&o.clients[0], "s3cret", now));
        o.clients[0].secrets[0].not_after = Some(now + jiff::SignedDuration::from_secs(60));
        assert!(secret_matches(&o.clients[0], "s3cret", now));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let h = basic("my%3Aapp", "p%40ss");
        assert_eq!(
            basic_credentials(&h).unwrap(),
            Some(("my:app".to_owned(), "p@ss".to_owned()))
        );
    }
}
