//! Reading SCIM requests: query parameters, the JSON body (its size and `Content-Type`) and
//! the ETag of `If-Match`.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::responses::Result;
use super::{MAX_BODY, SCIM_CONTENT_TYPE};
use crate::scim::ScimError;

pub(super) fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn parse_body(body: &Bytes) -> Result<Value> {
    if body.len() > MAX_BODY {
        return Err(
            ScimError::too_large(format!("the body is larger than {MAX_BODY} bytes")).into(),
        );
    }
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")).into())
}

/// Whether a declared `Content-Type` is one the SCIM endpoints read: `application/scim+json`
/// (RFC 7644 §3.1) or `application/json` (what Entra sends, often with `charset=utf-8`), with
/// any parameters. A body without a `Content-Type` is read as JSON too.
fn accepted_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(SCIM_CONTENT_TYPE)
        || essence.eq_ignore_ascii_case("application/json")
}

pub(super) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Value> {
    if !accepted_content_type(headers) {
        let sent = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Err(ScimError::unsupported_media_type(format!(
            "the body is declared as {sent:?}: send it as JSON with Content-Type: application/scim+json (or application/json)"
        ))
        .into());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ScimError::too_large(format!("the body is larger than {MAX_BODY} bytes")))?;
    parse_body(&bytes)
}

pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ScimError::invalid_value("If-Match is not text"))?
        .trim();
    if s == "*" {
        return Ok(None);
    }
    let inner = s.trim_start_matches("W/").trim_matches('"');
    inner.parse::<i64>().map(Some).map_err(|_| {
        ScimError::precondition_failed(format!("If-Match {s} is not an ETag of this server")).into()
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn content_types_of_real_clients_are_accepted_and_others_refused() {
        let with = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
            accepted_content_type(&h)
        };
        for ok in [
            "application/scim+json",
            "application/scim+json; charset=utf-8",
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(with(ok), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
            "application/jsonx",
        ] {
            assert!(!with(refused), "{refused}");
        }
        assert!(accepted_content_type(&HeaderMap::new()));
    }
}
