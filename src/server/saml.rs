//! The SAML HTTP endpoints under `/saml/{namespace}/{name}/`: SP metadata now (SP-initiated
//! login and the ACS come next).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::config_index::ConfigIndex;
use crate::saml;

/// The SAML routes.
pub fn router(configs: ConfigIndex) -> Router {
    Router::new()
        .route("/saml/{ns}/{name}/metadata", get(metadata))
        .with_state(configs)
}

fn page(status: StatusCode, text: &str) -> Response {
    let mut r = (status, text.to_owned()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn metadata(
    State(configs): State<ConfigIndex>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    // A deleted, disabled or never-valid IdentityProvider is not served at all.
    let Some(config) = configs.get(&ns, &name) else {
        return page(
            StatusCode::NOT_FOUND,
            "No such identity provider is configured here.",
        );
    };
    match saml::metadata::render(&config) {
        Ok(xml) => {
            let mut r = (StatusCode::OK, xml).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/samlmetadata+xml"),
            );
            r
        }
        Err(e) => {
            tracing::error!(identity_provider = %format!("{ns}/{name}"), error = %e, "could not render SP metadata");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service-provider metadata is unavailable; retry later.",
            )
        }
    }
}
