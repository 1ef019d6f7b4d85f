//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType` and a `detail` that
//! tells the client what to fix.

use serde_json::{Value, json};

/// The SCIM Error schema URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM error response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    /// HTTP status code.
    pub status: u16,
    /// `scimType`, where RFC 7644 defines one.
    pub scim_type: Option<&'static str>,
    /// Human-readable detail.
    pub detail: String,
}

impl ScimError {
    /// 400 `invalidFilter`.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("invalidFilter"),
            detail: detail.into(),
        }
    }
    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("invalidSyntax"),
            detail: detail.into(),
        }
    }
    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("invalidValue"),
            detail: detail.into(),
        }
    }
    /// 400 `invalidPath`.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("invalidPath"),
            detail: detail.into(),
        }
    }
    /// 400 `noTarget`.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("noTarget"),
            detail: detail.into(),
        }
    }
    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self {
            status: 409,
            scim_type: Some("uniqueness"),
            detail: detail.into(),
        }
    }
    /// 400 `tooMany`: more results than the server is willing to process.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("tooMany"),
            detail: detail.into(),
        }
    }
    /// 400 `mutability`: the resource's current state does not allow the change.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some("mutability"),
            detail: detail.into(),
        }
    }
    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: 404,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 412: `If-Match` did not match.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self {
            status: 412,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self {
            status: 401,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self {
            status: 403,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 413: body too large.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self {
            status: 413,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 429: too many failed attempts.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self {
            status: 429,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 405: the method is not allowed on this endpoint.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self {
            status: 405,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self {
            status: 415,
            scim_type: None,
            detail: detail.into(),
        }
    }
    /// 500, for store failures; the detail never includes internals.
    pub fn internal() -> Self {
        Self {
            status: 500,
            scim_type: None,
            detail: "internal error; the server log has details".into(),
        }
    }
    /// 503: the store is unavailable.
    pub fn unavailable() -> Self {
        Self {
            status: 503,
            scim_type: None,
            detail: "the identity store is unavailable; retry later".into(),
        }
    }

    /// The error as a SCIM JSON body (`status` as a string, as RFC 7644 requires).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body
    }
}
