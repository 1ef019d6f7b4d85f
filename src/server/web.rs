//! Small HTTP helpers shared by the browser-facing endpoints: HTML pages, cookies, redirects.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Title and text of the page shown when a sign-in is refused (the wording IdP admins know).
pub const AUTHENTICATION_FAILED: (&str, &str) = (
    "Authentication Failed",
    "Login failed. Please contact your account administrator for more details.",
);
/// Title and text of the page shown when a sign-in would return to a URL that is not allowed.
pub const INVALID_RELAY_STATE: (&str, &str) = (
    "Invalid RelayState",
    "The address this sign-in would return to is not allowed for this application.",
);

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A minimal HTML page that loads nothing and cannot be framed. A 413 page also closes the
/// connection, since the rest of the refused body was never read.
pub fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = escape(text)
    );
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The 400 page for a sign-in whose return address is not allowed: "Invalid RelayState" with
/// what to add where.
pub fn redirect_refused(refusal: &crate::saml::login::RedirectRefusal) -> Response {
    let (title, text) = INVALID_RELAY_STATE;
    page(
        StatusCode::BAD_REQUEST,
        title,
        &format!("{text} {}", refusal.explanation()),
    )
}

/// The page for a URL naming an IdentityProvider that is not served (unknown, disabled,
/// deleted or never valid).
pub fn not_served() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Not Found",
        "No such identity provider is configured here.",
    )
}

/// The value of cookie `name` in the request, if sent (the first one wins).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A redirect (303 See Other) to `location`, with cookies to set.
pub fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let Ok(value) = HeaderValue::from_str(location) else {
        let (t, x) = INVALID_RELAY_STATE;
        return page(StatusCode::BAD_REQUEST, t, x);
    };
    r.headers_mut().insert(header::LOCATION, value);
    add_cookies(&mut r, cookies);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Adds `Set-Cookie` headers.
pub fn add_cookies(r: &mut Response, cookies: &[String]) {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

/// A header value from arbitrary text: control characters dropped, UTF-8 kept as bytes.
pub fn header_text(s: &str) -> Option<HeaderValue> {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    HeaderValue::from_bytes(clean.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_their_text() {
        let r = page(StatusCode::BAD_REQUEST, "<b>", "\"x\" & y");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }

    #[test]
    fn cookies_are_found_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("c=\"3\""));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
        assert_eq!(cookie(&h, ""), None);
    }

    #[test]
    fn header_text_keeps_utf8_and_drops_control_characters() {
        assert_eq!(
            header_text("Zoë\r\nX: y").unwrap().as_bytes(),
            "ZoëX: y".as_bytes()
        );
    }
}
