//! The OpenID Provider Configuration document (OpenID Connect Discovery 1.0 §3) and the paths
//! of the endpoints under the issuer.

use serde_json::json;

use super::scope;

/// Discovery, relative to the issuer.
pub const CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// The JWKS document.
pub const JWKS_PATH: &str = "/jwks";
/// The authorization endpoint.
pub const AUTHORIZATION_PATH: &str = "/authorize";
/// The token endpoint.
pub const TOKEN_PATH: &str = "/token";
/// The userinfo endpoint.
pub const USERINFO_PATH: &str = "/userinfo";
/// The revocation endpoint (RFC 7009).
pub const REVOCATION_PATH: &str = "/revoke";
/// The device authorization endpoint (RFC 8628).
pub const DEVICE_AUTHORIZATION_PATH: &str = "/device/authorize";
/// The page where the user enters a device's code.
pub const DEVICE_VERIFICATION_PATH: &str = "/device";
/// RP-initiated logout.
pub const END_SESSION_PATH: &str = "/logout";

/// The claims an ID token may carry; `groups` stands for each client's groups claim.
pub const CLAIMS_SUPPORTED: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "groups",
];

/// How clients authenticate at the token and revocation endpoints (`none`: public clients).
pub const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// The discovery document of `issuer` (without a trailing slash).
pub fn document(issuer: &str) -> serde_json::Value {
    let at = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "authorization_endpoint": at(AUTHORIZATION_PATH),
        "token_endpoint": at(TOKEN_PATH),
        "jwks_uri": at(JWKS_PATH),
        "userinfo_endpoint": at(USERINFO_PATH),
        "revocation_endpoint": at(REVOCATION_PATH),
        "end_session_endpoint": at(END_SESSION_PATH),
        "device_authorization_endpoint": at(DEVICE_AUTHORIZATION_PATH),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": [super::pkce::S256],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "scopes_supported": scope::SUPPORTED,
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "claims_supported": CLAIMS_SUPPORTED,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://sso.example.com/oidc/team-a/okta";

    #[test]
    fn endpoints_hang_off_the_issuer() {
        let doc = document(ISSUER);
        assert_eq!(doc["issuer"], ISSUER);
        for (field, path) in [
            ("authorization_endpoint", "/authorize"),
            ("token_endpoint", "/token"),
            ("jwks_uri", "/jwks"),
            ("userinfo_endpoint", "/userinfo"),
            ("revocation_endpoint", "/revoke"),
            ("end_session_endpoint", "/logout"),
            ("device_authorization_endpoint", "/device/authorize"),
        ] {
            assert_eq!(doc[field], format!("{ISSUER}{path}"), "{field}");
        }
    }

    #[test]
    fn the_document_states_what_the_provider_supports() {
        let doc = document(ISSUER);
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["response_modes_supported"], json!(["query"]));
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["RS256", "ES256"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code"
            ])
        );
        assert_eq!(
            doc["scopes_supported"],
            json!(["openid", "email", "profile", "groups", "offline_access"])
        );
        let auth = json!(["client_secret_basic", "client_secret_post", "none"]);
        assert_eq!(doc["token_endpoint_auth_methods_supported"], auth);
        assert_eq!(doc["revocation_endpoint_auth_methods_supported"], auth);
        assert!(
            doc["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("groups"))
        );
    }
}
