//! SCIM responses: bodies as `application/scim+json` with their ETag and Location, and every
//! failure as a SCIM error (RFC 7644 §3.12), store errors and the router's own included.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{SCIM_CONTENT_TYPE, SCIM_PREFIX};
use crate::scim::{self, ScimError};
use crate::store::StoreError;

/// Turns every error response under the SCIM prefix that is not already a SCIM error — the
/// router's 405 (keeping its `Allow` header), extractor rejections — into one (RFC 7644
/// §3.12), so that clients can read every failure the same way.
pub(super) async fn scim_errors(request: Request, next: Next) -> Response {
    // Inside the nested router the path is relative to the prefix.
    let (method, path) = (
        request.method().clone(),
        format!("{SCIM_PREFIX}{}", request.uri().path()),
    );
    let response = next.run(request).await;
    let status = response.status();
    let is_scim = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(SCIM_CONTENT_TYPE));
    if !(status.is_client_error() || status.is_server_error()) || is_scim {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = allow
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            ScimError::method_not_allowed(format!(
                "{method} is not allowed on {path}; allowed: {allowed}"
            ))
        }
        StatusCode::BAD_REQUEST => ScimError::invalid_syntax(if text.is_empty() {
            format!("the request for {path} is malformed")
        } else {
            format!("the request for {path} is malformed: {text}")
        }),
        StatusCode::NOT_FOUND => ScimError::not_found(format!("nothing at {path}")),
        other => ScimError {
            status: other.as_u16(),
            scim_type: None,
            detail: other
                .canonical_reason()
                .unwrap_or("the request failed")
                .to_owned(),
        },
    };
    let mut response = Failure(error).into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// A SCIM error as an HTTP response.
pub(super) struct Failure(pub(super) ScimError);

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self(match e {
            StoreError::Conflict(what) => {
                ScimError::uniqueness(format!("{what}: a resource with this value exists already"))
            }
            StoreError::NotFound => ScimError::not_found("no such resource"),
            StoreError::VersionMismatch { current } => ScimError::precondition_failed(format!(
                "If-Match does not match the current version {}",
                scim::etag(current)
            )),
            other => {
                tracing::error!(error = %other, "identity store failure");
                ScimError::unavailable()
            }
        })
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = (status, self.0.to_json().to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if self.0.status == 413 {
            // The rest of the body was not read: tell the client not to reuse the connection.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.0.status == 401 {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        r
    }
}

pub(super) type Result<T> = std::result::Result<T, Failure>;

/// One resource as `status`, projected by the request's `attributes` and
/// `excludedAttributes` parameters, with its version as ETag.
pub(super) fn resource_response(
    status: StatusCode,
    resource: Value,
    params: &std::collections::HashMap<String, String>,
    version: i64,
) -> Response {
    let body = scim::project(
        resource,
        super::requests::param(params, "attributes"),
        super::requests::param(params, "excludedAttributes"),
    );
    scim_response(status, &body, Some(version))
}

pub(super) fn scim_response(status: StatusCode, body: &Value, version: Option<i64>) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    if let Some(v) = version
        && let Ok(h) = HeaderValue::from_str(&scim::etag(v))
    {
        r.headers_mut().insert(header::ETAG, h);
    }
    if status == StatusCode::CREATED
        && let Some(loc) = body.pointer("/meta/location").and_then(Value::as_str)
        && let Ok(h) = HeaderValue::from_str(loc)
    {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

pub(super) fn not_found_as(e: StoreError, kind: &str, id: &str) -> Failure {
    match e {
        StoreError::NotFound => Failure(ScimError::not_found(format!("no {kind} with id {id}"))),
        other => other.into(),
    }
}
