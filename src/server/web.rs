//! Small HTTP helpers shared by the browser-facing endpoints: HTML pages, cookies, redirects.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};

use crate::session::HOST_PREFIX;

/// Title and text of the page shown when a sign-in is refused (the wording IdP admins know).
pub const AUTHENTICATION_FAILED: (&str, &str) = (
    "Authentication Failed",
    "Login failed. Please contact your account administrator for more details.",
);
/// Title and text of the page shown when a request carries one of this server's cookies twice.
pub const DUPLICATE_COOKIE: (&str, &str) = (
    "Duplicate Cookie",
    "Your browser sent a sign-in cookie of this site twice, so it cannot be told which one is yours. Clear this site's cookies in the browser, then sign in again.",
);
/// Title and text of the page shown when a sign-in would return to a URL that is not allowed.
pub const INVALID_RELAY_STATE: (&str, &str) = (
    "Invalid RelayState",
    "The address this sign-in would return to is not allowed for this application.",
);

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A minimal HTML page that loads nothing and cannot be framed. A 413 page also closes the
/// connection, since the rest of the refused body was never read.
pub fn page(status: StatusCode, title: &str, text: &str) -> Response {
    html_page(status, title, &format!("<p>{}</p>", escape(text)))
}

/// A page like [`page`] whose body is `html` after the title, which must be escaped already.
/// Forms on it may post only to this host.
pub fn html_page(status: StatusCode, title: &str, html: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{html}</body></html>",
        t = escape(title),
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
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
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

/// A request that carries one cookie name more than once: the browser holds two cookies of
/// that name (one set for another domain or path, perhaps by a sibling host), and which one
/// this server set cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateCookie;

/// The value of cookie `name` in the request (surrounding double quotes removed), if sent;
/// [`DuplicateCookie`] when sent more than once, never a silent pick of one of them.
pub fn cookie(headers: &HeaderMap, name: &str) -> Result<Option<String>, DuplicateCookie> {
    let mut found = None;
    let pairs = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok);
    for pair in pairs {
        if pair.name() == name && found.replace(pair.value_trimmed().to_owned()).is_some() {
            return Err(DuplicateCookie);
        }
    }
    Ok(found)
}

/// The `Set-Cookie` value of cookie `name`: HttpOnly, Secure, for every path. Without `domain`
/// the cookie belongs to this host alone and its name must carry the [`HOST_PREFIX`], which
/// browsers honour only with exactly these attributes.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age: jiff::SignedDuration,
    same_site: SameSite,
    domain: Option<&str>,
) -> String {
    let cookie = build(name, value, same_site, domain)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs()));
    cookie.build().to_string()
}

/// The `Set-Cookie` value that removes cookie `name` set by [`set_cookie`] with the same
/// `same_site` and `domain`.
pub fn remove_cookie(name: &str, same_site: SameSite, domain: Option<&str>) -> String {
    build(name, "", same_site, domain)
        .removal()
        .build()
        .to_string()
}

fn build<'c>(
    name: &'c str,
    value: &'c str,
    same_site: SameSite,
    domain: Option<&'c str>,
) -> cookie::CookieBuilder<'c> {
    debug_assert_eq!(
        domain.is_none(),
        name.starts_with(HOST_PREFIX),
        "host-only cookies, and only they, carry the __Host- prefix"
    );
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(same_site);
    match domain {
        Some(d) => cookie.domain(d),
        None => cookie,
    }
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
        h.append(
            header::COOKIE,
            HeaderValue::from_static("c=\"3\"; junk; =x"),
        );
        assert_eq!(cookie(&h, "b"), Ok(Some("2".to_owned())));
        assert_eq!(cookie(&h, "c"), Ok(Some("3".to_owned())));
        assert_eq!(cookie(&h, "d"), Ok(None));
        assert_eq!(cookie(&h, ""), Ok(None));
    }

    #[test]
    fn a_cookie_sent_twice_is_refused_not_picked() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2; a=3"));
        assert_eq!(cookie(&h, "a"), Err(DuplicateCookie));
        assert_eq!(cookie(&h, "b"), Ok(Some("2".to_owned())));
        // Across headers too, and with equal values.
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, "b"), Err(DuplicateCookie));
    }

    #[test]
    fn cookies_carry_the_attributes_their_scope_needs() {
        let hour = jiff::SignedDuration::from_hours(1);
        let host = set_cookie("__Host-s", "v1.x", hour, SameSite::Lax, None);
        assert_eq!(
            host,
            "__Host-s=v1.x; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=3600"
        );
        let shared = set_cookie("s", "v", hour, SameSite::None, Some(".example.com"));
        assert_eq!(
            shared,
            "s=v; HttpOnly; SameSite=None; Secure; Path=/; Domain=example.com; Max-Age=3600"
        );
        let gone = remove_cookie("__Host-s", SameSite::Lax, None);
        assert!(
            gone.starts_with(
                "__Host-s=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; Expires="
            ),
            "{gone}"
        );
    }

    #[test]
    fn header_text_keeps_utf8_and_drops_control_characters() {
        assert_eq!(
            header_text("Zoë\r\nX: y").unwrap().as_bytes(),
            "ZoëX: y".as_bytes()
        );
    }
}
