//! Discovery (`/.well-known/openid-configuration`) and the JWKS document: public, cacheable
//! for five minutes, with an ETag so a relying party that checks again gets a 304.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

use super::{OAuthError, OidcState};

/// How long relying parties may cache discovery and the JWKS document. A new signing key is
/// published longer than this before it signs (see [`crate::oidc::keys`]).
pub const MAX_AGE_SECS: u32 = 300;

/// `GET /oidc/{ns}/{name}/.well-known/openid-configuration`.
pub async fn configuration(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(provider) = st.provider(&ns, &name) else {
        return OAuthError::not_served().into_response();
    };
    let document = crate::oidc::discovery::document(provider.issuer());
    cacheable(&headers, serde_json::to_vec(&document).unwrap_or_default())
}

/// `GET /oidc/{ns}/{name}/jwks`: every published signing key.
pub async fn jwks(
    State(st): State<OidcState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(provider) = st.provider(&ns, &name) else {
        return OAuthError::not_served().into_response();
    };
    let document = provider.keys.jwks();
    cacheable(&headers, serde_json::to_vec(&document).unwrap_or_default())
}

/// A JSON body with its ETag, or 304 when the request already has it.
fn cacheable(headers: &HeaderMap, body: Vec<u8>) -> Response {
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&body))[..32]);
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECS}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    // Single-page apps read discovery from the browser.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_etag_gets_a_304_and_another_the_body() {
        let r = cacheable(&HeaderMap::new(), b"{\"a\":1}".to_vec());
        assert_eq!(r.status(), StatusCode::OK);
        let etag = r.headers()[header::ETAG].clone();
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=300");
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(
            cacheable(&h, b"{\"a\":1}".to_vec()).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            cacheable(&h, b"{\"a\":2}".to_vec()).status(),
            StatusCode::OK
        );
    }
}
