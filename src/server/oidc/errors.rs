//! Errors of the OAuth 2.0 endpoints as RFC 6749 §5.2 defines them: JSON with `error` and
//! `error_description`, never cached; and the error pages shown when the browser cannot be
//! sent back to the client safely.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::server::web::page;

/// An error answer of the token, revocation, device-authorization or userinfo endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status: 400, or 401 for client authentication.
    pub status: StatusCode,
    /// The RFC 6749 error code.
    pub error: &'static str,
    /// What went wrong and what to do, for the developer of the client.
    pub description: String,
    /// Whether the client tried HTTP Basic authentication (a 401 then names the scheme).
    pub basic: bool,
}

impl OAuthError {
    /// A 400 with `error`.
    pub fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic: false,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::bad("invalid_request", description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad("invalid_grant", description)
    }

    /// `invalid_client` (401).
    pub fn invalid_client(description: impl Into<String>, basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            basic,
        }
    }

    /// The identity store did not answer: 503, so the client retries.
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "the identity store did not answer; retry".into(),
            basic: false,
        }
    }

    /// The IdentityProvider serves no OpenID Provider (unknown, disabled, or no OidcClient).
    pub fn not_served() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: "invalid_request",
            description: "no OpenID Provider is served at this issuer: the IdentityProvider is unknown, disabled, or no OidcClient uses it".into(),
            basic: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.error,
            "error_description": self.description,
        });
        let mut r = super::json(self.status, &body);
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::UNAUTHORIZED && self.basic {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"sso-operator\""),
            );
        }
        r
    }
}

/// The page shown when an authorization request cannot be answered with a redirect: its client
/// or redirect URI is unknown, so sending the browser anywhere could hand a code to an attacker.
pub fn authorization_page(text: &str) -> Response {
    page(StatusCode::BAD_REQUEST, "Sign-In Request Refused", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_are_json_never_cached_and_basic_failures_name_the_scheme() {
        let r = OAuthError::invalid_client("wrong secret", true).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "invalid_client");
        assert_eq!(v["error_description"], "wrong secret");
        let r = OAuthError::invalid_client("no secret", false).into_response();
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
