//! SAML Single Logout over HTTP: our SingleLogoutService at `/saml/{namespace}/{name}/slo`
//! (HTTP-Redirect and HTTP-POST), which ends every session of a user when the IdP's
//! LogoutRequest says so and finishes an SP-initiated logout when the IdP's LogoutResponse
//! comes back; and the start of an SP-initiated logout, used by `/auth/logout`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cookie::SameSite;

use super::saml::SamlState;
use super::sessions;
use super::web::{self, page};
use crate::api::LogoutRefusal;
use crate::config::CompiledIdentityProvider;
use crate::saml::logout::{self, Incoming, LogoutError, Outgoing, Received};
use crate::session::{HOST_PREFIX, PendingRequest, SamlSubject};
use crate::tenant::Tenant;

/// How long the IdP may take to answer our LogoutRequest.
const LOGOUT_TTL: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);
/// Largest accepted HTTP-POST form (a 128 KiB message, URL-encoded, and RelayState).
const MAX_FORM: usize = 512 * 1024;

/// Title and text of the page after signing out.
pub const SIGNED_OUT: (&str, &str) = ("Signed Out", "You are signed out.");

/// Name of the cookie that binds LogoutRequest `request_id` to the browser that sent it
/// (host-only, as the sign-in's cookie).
fn logout_cookie_name(request_id: &str) -> String {
    format!(
        "{HOST_PREFIX}sso_logout_{}",
        request_id
            .trim_start_matches('_')
            .chars()
            .take(16)
            .collect::<String>()
    )
}

/// True for RelayState values that name a logout we started (our message IDs).
fn is_logout_key(relay_state: &str) -> bool {
    relay_state.len() == 41
        && relay_state.starts_with('_')
        && relay_state[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A self-posting form (HTTP-POST binding). The one inline script is allowed by its hash, and
/// the page loads nothing else.
fn post_form(url: &str, field: &str, message: &str, relay_state: Option<&str>) -> Response {
    const SCRIPT: &str = "document.forms[0].submit()";
    let hash = base64::engine::general_purpose::STANDARD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(SCRIPT.as_bytes()));
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let relay = relay_state
        .map(|r| {
            format!(
                r#"<input type="hidden" name="RelayState" value="{}">"#,
                escape(r)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signing Out</title></head><body><form method="post" action="{}"><input type="hidden" name="{field}" value="{}">{relay}<noscript><button>Continue</button></noscript></form><script>{SCRIPT}</script></body></html>"#,
        escape(url),
        escape(message),
    );
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; script-src 'sha256-{hash}'; frame-ancestors 'none'"
    )) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    r
}

/// Delivers `message` through the browser, setting `cookies`.
fn deliver(message: Outgoing, cookies: &[String]) -> Response {
    match message {
        Outgoing::Redirect(url) => {
            let mut r = web::redirect(&url, cookies);
            // 302, like IdPs and SPs use for the HTTP-Redirect binding.
            *r.status_mut() = StatusCode::FOUND;
            r
        }
        Outgoing::Post {
            url,
            field,
            message,
            relay_state,
        } => {
            let mut r = post_form(&url, field, &message, relay_state.as_deref());
            web::add_cookies(&mut r, cookies);
            r
        }
    }
}

/// Starts SP-initiated Single Logout of `subject` at the IdP, after our session ended: a signed
/// LogoutRequest through the browser, bound to it by a sealed cookie. `None` when it cannot
/// start (no session keys, or the request could not be built): signing out here stands.
pub fn start(
    st: &SamlState,
    config: &CompiledIdentityProvider,
    subject: &SamlSubject,
    redirect: Option<&str>,
    cookies: &[String],
) -> Option<Response> {
    let tenant = config.tenant();
    let keys = st.configs.session_keys()?;
    let id = logout::new_message_id();
    let payload = PendingRequest {
        tenant: tenant.to_string(),
        uid: config.uid.clone(),
        request_id: id.clone(),
        redirect: redirect.map(str::to_owned),
        expires: (jiff::Timestamp::now() + LOGOUT_TTL).as_second(),
    };
    let sealed = keys.seal(&serde_json::to_vec(&payload).ok()?)?;
    // The IdP returns RelayState unchanged: an opaque key, never a URL.
    let message = match logout::logout_request(config, subject, &id, &id, jiff::Timestamp::now()) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(identity_provider = %tenant, error = %e, "could not build the LogoutRequest");
            return None;
        }
    };
    let mut cookies = cookies.to_vec();
    // SameSite=None: an HTTP-POST LogoutResponse arrives as a cross-site POST.
    cookies.push(web::set_cookie(
        &logout_cookie_name(&id),
        &sealed,
        LOGOUT_TTL,
        SameSite::None,
        None,
    ));
    tracing::info!(identity_provider = %tenant, "signing out at the IdP (Single Logout)");
    Some(deliver(message, &cookies))
}

/// A refused Single Logout message: what the browser sees, what the log says.
struct Refused {
    refusal: LogoutRefusal,
    message: String,
}

impl Refused {
    /// The HTTP status the browser sees.
    fn status(&self) -> StatusCode {
        match self.refusal {
            LogoutRefusal::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            LogoutRefusal::NoMessage
            | LogoutRefusal::MalformedMessage
            | LogoutRefusal::NoNameId
            | LogoutRefusal::DuplicateCookie => StatusCode::BAD_REQUEST,
            LogoutRefusal::BuildFailed | LogoutRefusal::Busy | LogoutRefusal::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            LogoutRefusal::Unsigned
            | LogoutRefusal::SignatureAlgorithmRefused
            | LogoutRefusal::SignatureShape
            | LogoutRefusal::VerificationFailed
            | LogoutRefusal::WrongIssuer
            | LogoutRefusal::WrongDestination
            | LogoutRefusal::OutsideValidity
            | LogoutRefusal::InResponseToMismatch => StatusCode::FORBIDDEN,
        }
    }
}

impl From<LogoutError> for Refused {
    fn from(e: LogoutError) -> Self {
        Refused {
            refusal: e.refusal(),
            message: e.to_string(),
        }
    }
}

fn refused(refusal: LogoutRefusal, message: impl Into<String>) -> Refused {
    Refused {
        refusal,
        message: message.into(),
    }
}

/// `GET /saml/{ns}/{name}/slo`: the HTTP-Redirect binding.
pub async fn slo_redirect(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(config) = served(&st, &Tenant::new(ns, name)) else {
        return web::not_served();
    };
    let query = uri.query().unwrap_or_default().to_owned();
    let verify_config = config.clone();
    let read = verify(&st, move || {
        logout::read_redirect(&verify_config, &query, jiff::Timestamp::now())
    })
    .await;
    answer(&st, &config, &headers, read).await
}

/// `POST /saml/{ns}/{name}/slo`: the HTTP-POST binding.
pub async fn slo_post(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(config) = served(&st, &Tenant::new(ns, name)) else {
        return web::not_served();
    };
    let read = match axum::body::to_bytes(body, MAX_FORM).await {
        Ok(bytes) => {
            let verify_config = config.clone();
            verify(&st, move || {
                logout::read_post(&verify_config, &bytes, jiff::Timestamp::now())
            })
            .await
        }
        Err(_) => Err(LogoutError::TooLarge.into()),
    };
    answer(&st, &config, &headers, read).await
}

/// The IdentityProvider, when it is served with `session.singleLogout` on.
fn served(st: &SamlState, tenant: &Tenant) -> Option<Arc<CompiledIdentityProvider>> {
    st.configs.get(tenant).filter(|c| c.session.single_logout)
}

/// Runs signature verification (CPU work in xmlsec and OpenSSL) off the async runtime, bounded
/// like the ACS.
async fn verify(
    st: &SamlState,
    work: impl FnOnce() -> Result<Incoming, LogoutError> + Send + 'static,
) -> Result<Incoming, Refused> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        st.verifications.clone().acquire_owned(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .ok_or_else(|| {
        refused(
            LogoutRefusal::Busy,
            "too many messages are being verified at once; retry",
        )
    })?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|_| {
        refused(
            LogoutRefusal::MalformedMessage,
            "the message could not be processed",
        )
    })?
    .map_err(Refused::from)
}

async fn answer(
    st: &SamlState,
    config: &Arc<CompiledIdentityProvider>,
    headers: &HeaderMap,
    read: Result<Incoming, Refused>,
) -> Response {
    let tenant = config.tenant();
    let outcome = match read {
        Ok(Incoming {
            message: Received::Request(request),
            relay_state,
        }) => idp_logout(st, config, headers, request, relay_state).await,
        Ok(Incoming {
            message: Received::Response(response),
            relay_state,
        }) => finish_logout(st, config, headers, response, relay_state).await,
        Err(e) => Err(e),
    };
    outcome.unwrap_or_else(|refused| {
        // The reason and the admin's message only; never the SAML message.
        tracing::warn!(identity_provider = %tenant, reason = refused.refusal.reason(), message = %refused.message, "Single Logout message refused");
        let status = refused.status();
        let text = match status {
            StatusCode::SERVICE_UNAVAILABLE => "Signing out is unavailable; retry.".to_owned(),
            _ => format!(
                "This sign-out message was refused: {}. If this keeps happening, contact your administrator.",
                refused.message
            ),
        };
        page(status, "Sign-Out Failed", &text)
    })
}

/// IdP-initiated (or another application's) logout: every session of the NameID ends, in the
/// store and so for every replica; the browser's own cookie is cleared too. Answered with a
/// signed LogoutResponse to the IdP.
async fn idp_logout(
    st: &SamlState,
    config: &Arc<CompiledIdentityProvider>,
    headers: &HeaderMap,
    request: logout::IdpLogoutRequest,
    relay_state: Option<String>,
) -> Result<Response, Refused> {
    let tenant = config.tenant();
    let mut ended = 0;
    let indexes: Vec<Option<&str>> = if request.session_indexes.is_empty() {
        vec![None]
    } else {
        request
            .session_indexes
            .iter()
            .map(|i| Some(i.as_str()))
            .collect()
    };
    let mut failure = None;
    for index in indexes {
        match st
            .store
            .end_sessions_of(&tenant, &request.name_id, index)
            .await
        {
            Ok(n) => ended += n,
            Err(e) => {
                tracing::error!(identity_provider = %tenant, error = %e, "could not end sessions for Single Logout");
                failure = Some("Responder");
                break;
            }
        }
    }
    tracing::info!(identity_provider = %tenant, sessions = ended, "the IdP ended sessions (Single Logout)");
    let mut cookies = Vec::new();
    // Sent twice counts as sent: every copy this server can name is removed.
    if web::cookie(headers, &sessions::cookie_name(config)) != Ok(None) {
        cookies.extend(sessions::clear_cookies(&tenant, Some(config)));
    }
    match logout::logout_response(
        config,
        &request.id,
        failure,
        relay_state.as_deref(),
        jiff::Timestamp::now(),
    ) {
        Ok(Some(message)) => Ok(deliver(message, &cookies)),
        // An IdP without a Single Logout endpoint cannot take an answer: the page says it.
        Ok(None) if failure.is_none() => {
            let mut r = page(StatusCode::OK, SIGNED_OUT.0, SIGNED_OUT.1);
            web::add_cookies(&mut r, &cookies);
            Ok(r)
        }
        Ok(None) => Err(refused(
            LogoutRefusal::StoreUnavailable,
            "the identity store failed",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The IdP's answer to our LogoutRequest: it must answer the one this browser sent.
async fn finish_logout(
    st: &SamlState,
    config: &Arc<CompiledIdentityProvider>,
    headers: &HeaderMap,
    response: logout::IdpLogoutResponse,
    relay_state: Option<String>,
) -> Result<Response, Refused> {
    let tenant = config.tenant();
    let mismatch = || {
        refused(
            LogoutRefusal::InResponseToMismatch,
            "it does not answer a sign-out started in this browser (or it was used already, or took longer than 10 minutes)",
        )
    };
    let relay_state = relay_state
        .filter(|r| is_logout_key(r))
        .ok_or_else(mismatch)?;
    let cookie_name = logout_cookie_name(&relay_state);
    let keys = st.configs.session_keys().ok_or_else(mismatch)?;
    let sent = web::cookie(headers, &cookie_name).map_err(|_| {
        refused(
            LogoutRefusal::DuplicateCookie,
            "the browser sent the sign-out's cookie twice (one was set for another host or path): clear this site's cookies",
        )
    })?;
    let payload: PendingRequest = sent
        .and_then(|v| keys.open(&v))
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(mismatch)?;
    let until = jiff::Timestamp::from_second(payload.expires).map_err(|_| mismatch())?;
    if payload.request_id != relay_state
        || payload.tenant != tenant.to_string()
        || payload.uid != config.uid
        || response.in_response_to.as_deref() != Some(relay_state.as_str())
        || until <= jiff::Timestamp::now()
    {
        return Err(mismatch());
    }
    // Consumed once, for every replica.
    let first = st
        .store
        .remember_assertion(&tenant, &format!("logout:{relay_state}"), until)
        .await
        .map_err(|e| {
            tracing::error!(identity_provider = %tenant, error = %e, "could not record the sign-out");
            refused(LogoutRefusal::StoreUnavailable, "the identity store failed")
        })?;
    if !first {
        return Err(mismatch());
    }
    let cookies = vec![web::remove_cookie(&cookie_name, SameSite::None, None)];
    if let Some(status) = &response.failed_status {
        // Our session ended already; the IdP's may not have.
        tracing::warn!(identity_provider = %tenant, status = %status, "the IdP reported that it could not end every session");
        let mut r = page(
            StatusCode::OK,
            SIGNED_OUT.0,
            &format!(
                "You are signed out here, but the identity provider answered {status}: your session there may still be open. Close your browser to end it."
            ),
        );
        web::add_cookies(&mut r, &cookies);
        return Ok(r);
    }
    Ok(match payload.redirect {
        Some(target) => web::redirect(&target, &cookies),
        None => {
            let mut r = page(StatusCode::OK, SIGNED_OUT.0, SIGNED_OUT.1);
            web::add_cookies(&mut r, &cookies);
            r
        }
    })
}
