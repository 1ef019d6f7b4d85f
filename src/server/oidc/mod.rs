//! The OpenID Provider in front of each IdentityProvider, under `/oidc/{namespace}/{name}`:
//! discovery and JWKS, the authorization endpoint (the code flow, signing in through the
//! IdentityProvider's SAML flow when there is no session), the token endpoint (codes, refresh
//! tokens rotated on use, the device grant), userinfo, revocation and RP-initiated logout.
//!
//! Everything comes from the compiled configuration ([`crate::config::oidc::CompiledOidc`]):
//! the issuer, its signing keys and its clients. A disabled or deleted IdentityProvider answers
//! nothing here, so its refresh tokens stop working at once.

mod authorize;
mod client_auth;
mod device;
mod discovery;
mod errors;
mod logout;
mod tokens;
mod userinfo;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::saml::SamlState;
use crate::config::CompiledIdentityProvider;
use crate::config::oidc::CompiledOidc;
use crate::oidc::jws::PreparedKeys;
use crate::tenant::Tenant;

pub use errors::OAuthError;

/// The largest form or query an OIDC endpoint reads: far above any real request (a request
/// object is not supported), far below what could cost memory.
pub const MAX_FORM: usize = 16 * 1024;

/// Prepared signing keys per IdentityProvider, with the configuration they were prepared from.
type PreparedCache = HashMap<Tenant, (Arc<CompiledIdentityProvider>, Arc<PreparedKeys>)>;

/// State of the OIDC endpoints: the SAML state (configuration, store, sessions, metrics) and
/// the signing keys prepared for use, per configuration.
#[derive(Clone)]
pub struct OidcState {
    /// Configuration, store, session keys, metrics, allow-list.
    pub saml: SamlState,
    /// Parsed signing keys per IdentityProvider, with the configuration they were parsed from.
    prepared: Arc<Mutex<PreparedCache>>,
}

impl OidcState {
    /// The OIDC state over `saml`.
    pub fn new(saml: SamlState) -> Self {
        Self {
            saml,
            prepared: Arc::default(),
        }
    }

    /// The OpenID Provider of IdentityProvider `ns/name`: served, and used by at least one
    /// OidcClient.
    pub fn provider(&self, ns: &str, name: &str) -> Option<Provider> {
        let tenant = Tenant::new(ns, name);
        let config = self.saml.configs.get(&tenant)?;
        config.oidc.as_ref()?;
        let keys = self.keys(&tenant, &config)?;
        Some(Provider {
            tenant,
            config,
            keys,
        })
    }

    /// The prepared signing keys of `config`, parsed once per configuration.
    fn keys(
        &self,
        tenant: &Tenant,
        config: &Arc<CompiledIdentityProvider>,
    ) -> Option<Arc<PreparedKeys>> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, k)) = prepared.get(tenant)
            && Arc::ptr_eq(c, config)
        {
            return Some(k.clone());
        }
        let oidc = config.oidc.as_ref()?;
        for e in oidc.signing_keys.malformed() {
            tracing::error!(identity_provider = %tenant, error = %e, "a signing key of IdentityProvider {tenant}'s OpenID Provider does not load; it is not published or used");
        }
        let keys = Arc::new(oidc.signing_keys.prepared());
        prepared.insert(tenant.clone(), (config.clone(), keys.clone()));
        Some(keys)
    }
}

/// One IdentityProvider's OpenID Provider, as served now.
#[derive(Clone)]
pub struct Provider {
    /// The IdentityProvider.
    pub tenant: Tenant,
    /// Its compiled configuration (with `oidc`).
    pub config: Arc<CompiledIdentityProvider>,
    /// Its signing keys, parsed.
    pub keys: Arc<PreparedKeys>,
}

impl Provider {
    /// The compiled OpenID Provider.
    pub fn oidc(&self) -> &CompiledOidc {
        self.config
            .oidc
            .as_ref()
            .expect("a provider is made only from a configuration with oidc")
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.oidc().issuer
    }
}

/// The OIDC routes.
pub fn router(state: OidcState) -> Router {
    let base = "/oidc/{ns}/{name}";
    Router::new()
        .route(
            &format!("{base}/.well-known/openid-configuration"),
            get(discovery::configuration),
        )
        .route(&format!("{base}/jwks"), get(discovery::jwks))
        .route(
            &format!("{base}/authorize"),
            get(authorize::get).post(authorize::post),
        )
        .route(&format!("{base}/token"), post(tokens::token))
        .route(
            &format!("{base}/userinfo"),
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(&format!("{base}/revoke"), post(tokens::revoke))
        .route(&format!("{base}/device/authorize"), post(device::authorize))
        .route(
            &format!("{base}/device"),
            get(device::show).post(device::decide),
        )
        .route(
            &format!("{base}/logout"),
            get(logout::get).post(logout::post),
        )
        .with_state(state)
}

/// The pairs of a form or query; `None` when a parameter is given twice (RFC 6749 §3.1: "Request
/// and response parameters MUST NOT be included more than once") or the text is too long.
pub(crate) fn params(text: &[u8]) -> Option<HashMap<String, String>> {
    if text.len() > MAX_FORM {
        return None;
    }
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(text) {
        // An empty value counts as absent (RFC 6749 §3.1).
        if v.is_empty() {
            continue;
        }
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return None;
        }
    }
    Some(out)
}

/// The body of a request to a JSON endpoint, or the RFC 6749 error for one too large.
pub(crate) async fn json_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        let mut r = OAuthError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "invalid_request",
            description: format!("the request body is larger than {MAX_FORM} bytes"),
            basic: false,
        }
        .into_response();
        // The rest of the body was never read.
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        r
    })
}

/// The body of a form a browser posts, or the page for one too large.
pub(crate) async fn page_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        crate::server::web::page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request Too Large",
            "The form sent is too large.",
        )
    })
}

/// A JSON response with `status`, never cached (tokens and errors must not be).
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut r = (status, serde_json::to_vec(value).unwrap_or_default()).into_response();
    let h = r.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}
