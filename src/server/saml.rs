//! The SAML HTTP endpoints under `/saml/{namespace}/{name}/`: SP metadata, SP-initiated login
//! and the Assertion Consumer Service, which ends in a session; the Single Logout service is in
//! `single_logout`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cookie::SameSite;

use super::config_index::ConfigIndex;
use super::figures::Figures;
use super::metrics::ServerMetrics;
use super::sessions;
use super::web::{self, AUTHENTICATION_FAILED, INVALID_RELAY_STATE, page};
use crate::api::SignInRefusal;
use crate::config::CompiledIdentityProvider;
use crate::saml;
use crate::session::{HOST_PREFIX, PendingRequest, SamlSubject};
use crate::store::{SessionSubject, Store};
use crate::tenant::Tenant;

/// How long a started sign-in may take at the IdP.
const LOGIN_TTL: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Largest accepted ACS form body (a 512 KiB SAMLResponse, URL-encoded, and RelayState).
const MAX_FORM: usize = 2 * 1024 * 1024;

/// State of the SAML and forward-auth endpoints.
#[derive(Clone)]
pub struct SamlState {
    /// The compiled configuration and the session keys.
    pub configs: ConfigIndex,
    /// The identity store (users, per-login state, replay cache, sessions).
    pub store: Store,
    /// Figures published into IdentityProvider status.
    pub figures: Arc<Figures>,
    /// Prometheus metrics.
    pub metrics: ServerMetrics,
    /// Bounds the signature verifications running at once (each is CPU work in xmlsec).
    pub verifications: Arc<tokio::sync::Semaphore>,
    /// The installation's redirect allow-list (`--allowed-redirect`): sign-in and sign-out
    /// return only under these URL prefixes, or to a path on this installation.
    pub allowed_redirects: Arc<Vec<String>>,
}

/// How many responses are verified at once: twice the CPUs (xmlsec work is short and CPU-bound;
/// more would only queue in the blocking pool).
pub fn verification_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// The SAML routes.
pub fn router(state: SamlState) -> Router {
    Router::new()
        .route("/saml/{ns}/{name}/metadata", get(metadata))
        .route("/saml/{ns}/{name}/login", get(login))
        .route("/saml/{ns}/{name}/acs", post(acs))
        .route(
            "/saml/{ns}/{name}/slo",
            get(super::single_logout::slo_redirect).post(super::single_logout::slo_post),
        )
        .with_state(state)
}

/// True for RelayState values that name a sign-in started by `/login` (our request IDs).
fn is_login_key(relay_state: &str) -> bool {
    relay_state.len() == 41
        && relay_state.starts_with('_')
        && relay_state[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A refused sign-in: what the browser sees, what the admin sees.
struct Refused {
    status: StatusCode,
    page: (&'static str, &'static str),
    refusal: SignInRefusal,
    message: String,
}

impl Refused {
    fn failed(status: StatusCode, refusal: SignInRefusal, message: impl Into<String>) -> Self {
        Self {
            status,
            page: AUTHENTICATION_FAILED,
            refusal,
            message: message.into(),
        }
    }
}

async fn acs(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let tenant = Tenant::new(ns, name);
    let Some(config) = st.configs.get(&tenant) else {
        return web::not_served();
    };
    match sign_in(&st, &config, &headers, body).await {
        Ok(r) => {
            st.figures.record_sign_in(&tenant, None);
            st.metrics.sign_in(None);
            r
        }
        Err(refused) => {
            tracing::warn!(identity_provider = %tenant, reason = refused.refusal.reason(), message = %refused.message, "sign-in refused");
            st.figures
                .record_sign_in(&tenant, Some((refused.refusal, &refused.message)));
            st.metrics.sign_in(Some(refused.refusal));
            page(refused.status, refused.page.0, refused.page.1)
        }
    }
}

/// The ACS: read the form, match it to its sign-in, verify the response, refuse replays, map
/// the user and open the session.
async fn sign_in(
    st: &SamlState,
    config: &Arc<CompiledIdentityProvider>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let tenant = config.tenant();
    let form = read_form(body).await?;
    // Which sign-in is this: one this browser started, or one started at the IdP?
    let started = if is_login_key(&form.relay_state) {
        solicited(st, config, headers, form.relay_state).await?
    } else {
        unsolicited(st, config, form.relay_state)?
    };
    let sign_in = verify_response(st, config, form.encoded, started.expected).await?;

    let store_failed = |e| store_failed(&tenant, e);
    if !st
        .store
        .remember_assertion(&tenant, &sign_in.assertion_id, sign_in.not_on_or_after)
        .await
        .map_err(store_failed)?
    {
        return Err(Refused::failed(
            StatusCode::FORBIDDEN,
            SignInRefusal::AssertionReplayed,
            "this assertion was used already (a replayed response)",
        ));
    }
    let mapped = saml::mapping::map(config, &sign_in)
        .map_err(|e| Refused::failed(StatusCode::FORBIDDEN, e.refusal(), e.to_string()))?;
    let user = sessions::resolve_user(&st.store, config, &mapped)
        .await
        .map_err(|e| match e {
            sessions::Refusal::Store(e) => store_failed(e),
            other => Refused::failed(StatusCode::FORBIDDEN, other.refusal(), other.to_string()),
        })?;
    let cookie = open_session(st, config, &sign_in, &user.id).await?;
    tracing::info!(identity_provider = %tenant, user_id = %user.id, "signed in");
    let mut cookies = vec![cookie];
    cookies.extend(started.clear_login_cookie);
    Ok(match started.target {
        Some(t) => web::redirect(&t, &cookies),
        None => {
            let mut r = page(
                StatusCode::OK,
                "Signed In",
                "You are signed in. You can close this page.",
            );
            web::add_cookies(&mut r, &cookies);
            r
        }
    })
}

/// The posted ACS form.
struct AcsForm {
    /// The base64 `SAMLResponse`.
    encoded: String,
    /// The `RelayState`, empty when absent.
    relay_state: String,
}

/// Reads the HTTP-POST binding's form: one `SAMLResponse`, at most one `RelayState`.
async fn read_form(body: Body) -> Result<AcsForm, Refused> {
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        Refused::failed(
            StatusCode::PAYLOAD_TOO_LARGE,
            SignInRefusal::RequestTooLarge,
            format!("the posted form is larger than {MAX_FORM} bytes"),
        )
    })?;
    let (mut encoded, mut relay_state) = (None, None);
    for (k, v) in form_urlencoded::parse(&bytes) {
        let slot = match k.as_ref() {
            "SAMLResponse" => &mut encoded,
            "RelayState" => &mut relay_state,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(Refused::failed(
                StatusCode::BAD_REQUEST,
                SignInRefusal::MalformedResponse,
                "the form carries a field twice",
            ));
        }
    }
    let encoded = encoded.ok_or_else(|| {
        Refused::failed(
            StatusCode::BAD_REQUEST,
            SignInRefusal::MalformedResponse,
            "the form has no SAMLResponse (the ACS expects the HTTP-POST binding)",
        )
    })?;
    Ok(AcsForm {
        encoded,
        relay_state: relay_state.unwrap_or_default(),
    })
}

/// The sign-in a response answers.
struct StartedSignIn {
    /// The request ID the response must be `InResponseTo` (none for IdP-initiated sign-in).
    expected: Option<String>,
    /// Where the browser goes once signed in.
    target: Option<String>,
    /// Removes the finished sign-in's cookie.
    clear_login_cookie: Option<String>,
}

/// A sign-in this browser started at `/login`: its sealed cookie must match the RelayState, be
/// unexpired, belong to this IdentityProvider and be used once.
async fn solicited(
    st: &SamlState,
    config: &CompiledIdentityProvider,
    headers: &HeaderMap,
    relay_state: String,
) -> Result<StartedSignIn, Refused> {
    let tenant = config.tenant();
    let cookie_name = login_cookie_name(&relay_state);
    let mismatch = || {
        Refused::failed(
            StatusCode::FORBIDDEN,
            SignInRefusal::BrowserMismatch,
            "the response arrived in a browser other than the one that started the sign-in (or its cookies are blocked)",
        )
    };
    let keys = st.configs.session_keys().ok_or_else(mismatch)?;
    let sent = web::cookie(headers, &cookie_name).map_err(|_| Refused {
        status: StatusCode::BAD_REQUEST,
        page: web::DUPLICATE_COOKIE,
        refusal: SignInRefusal::DuplicateCookie,
        message: "the browser sent the sign-in's cookie twice (one was set for another host or path): clear the site's cookies and start again from the application".into(),
    })?;
    let payload: PendingRequest = sent
        .and_then(|v| keys.open(&v))
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(mismatch)?;
    if payload.request_id != relay_state || payload.tenant != tenant.to_string() {
        return Err(mismatch());
    }
    let expired = || {
        Refused::failed(
            StatusCode::FORBIDDEN,
            SignInRefusal::LoginExpired,
            "the sign-in this response answers expired (10 minutes) or was already finished: start again from the application",
        )
    };
    let until = jiff::Timestamp::from_second(payload.expires).map_err(|_| expired())?;
    // A sign-in started before the IdentityProvider was deleted and re-created under the
    // same name is not finished by the new one.
    if until <= jiff::Timestamp::now() || payload.uid != config.uid {
        return Err(expired());
    }
    // Consumed once, for every replica: the replay cache remembers the request ID.
    let first = st
        .store
        .remember_assertion(&tenant, &format!("request:{relay_state}"), until)
        .await
        .map_err(|e| {
            tracing::error!(identity_provider = %tenant, error = %e, "could not record the sign-in");
            Refused::failed(StatusCode::SERVICE_UNAVAILABLE, SignInRefusal::StoreUnavailable, "the identity store failed")
        })?;
    if !first {
        return Err(expired());
    }
    Ok(StartedSignIn {
        expected: Some(relay_state),
        target: payload.redirect,
        clear_login_cookie: Some(web::remove_cookie(&cookie_name, SameSite::None, None)),
    })
}

/// A sign-in started at the IdP: allowed only when the IdentityProvider says so, and its
/// RelayState (or the default) must be an allowed redirect.
fn unsolicited(
    st: &SamlState,
    config: &CompiledIdentityProvider,
    relay_state: String,
) -> Result<StartedSignIn, Refused> {
    if !config.allow_idp_initiated {
        return Err(Refused::failed(
            StatusCode::FORBIDDEN,
            SignInRefusal::IdpInitiatedNotAllowed,
            saml::acs::AcsError::Unsolicited.to_string(),
        ));
    }
    let target = if relay_state.is_empty() {
        config.default_relay_state.clone()
    } else {
        Some(relay_state)
    };
    if let Some(t) = &target
        && !saml::login::redirect_allowed(&st.allowed_redirects, config, t)
    {
        return Err(Refused {
            status: StatusCode::BAD_REQUEST,
            page: INVALID_RELAY_STATE,
            refusal: SignInRefusal::InvalidRelayState,
            message:
                "the RelayState is not allowed by the installation's allowed redirects and the IdentityProvider's allowedRedirects (nor a path on this installation)"
                    .into(),
        });
    }
    Ok(StartedSignIn {
        expected: None,
        target,
        clear_login_cookie: None,
    })
}

/// Verifies the response on the blocking pool, at most `verifications` at once.
async fn verify_response(
    st: &SamlState,
    config: &Arc<CompiledIdentityProvider>,
    encoded: String,
    expected: Option<String>,
) -> Result<saml::acs::SignIn, Refused> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        st.verifications.clone().acquire_owned(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .ok_or_else(|| {
        Refused::failed(
            StatusCode::SERVICE_UNAVAILABLE,
            SignInRefusal::Busy,
            "too many sign-ins are being verified at once; retry",
        )
    })?;
    let verify_config = config.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        saml::acs::verify(
            &verify_config,
            &encoded,
            expected.as_deref(),
            jiff::Timestamp::now(),
        )
    })
    .await
    .map_err(|_| {
        Refused::failed(
            StatusCode::BAD_REQUEST,
            SignInRefusal::MalformedResponse,
            "the response could not be processed",
        )
    })?
    .map_err(|e| {
        let status = match e {
            saml::acs::AcsError::Shape(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        };
        Refused::failed(status, e.refusal(), e.to_string())
    })
}

/// An identity store failure during sign-in: logged for the admin, a 503 for the browser.
fn store_failed(tenant: &Tenant, e: crate::store::StoreError) -> Refused {
    tracing::error!(identity_provider = %tenant, error = %e, "identity store failure at sign-in");
    Refused::failed(
        StatusCode::SERVICE_UNAVAILABLE,
        SignInRefusal::StoreUnavailable,
        "the identity store failed",
    )
}

/// Creates the session of `user_id` and returns its cookie.
async fn open_session(
    st: &SamlState,
    config: &CompiledIdentityProvider,
    sign_in: &saml::acs::SignIn,
    user_id: &str,
) -> Result<String, Refused> {
    let tenant = config.tenant();
    let keys = st.configs.session_keys().ok_or_else(|| {
        Refused::failed(
            StatusCode::SERVICE_UNAVAILABLE,
            SignInRefusal::NoSessionKeys,
            "the session keys are not published yet: check that the controller is running",
        )
    })?;
    // Whom the IdP signed in, kept for Single Logout: the store finds the session by NameID and
    // SessionIndex when the IdP logs the user out; the cookie names them in our LogoutRequest.
    let subject = SamlSubject {
        name_id: sign_in.name_id.clone(),
        format: sign_in.name_id_format.clone(),
        name_qualifier: sign_in.name_id_qualifiers.0.clone(),
        sp_name_qualifier: sign_in.name_id_qualifiers.1.clone(),
        session_index: sign_in.session_index.clone(),
    };
    let session_id = st
        .store
        .create_session_of(
            &tenant,
            user_id,
            sessions::expiry(config),
            Some(SessionSubject {
                name_id: &subject.name_id,
                session_index: subject.session_index.as_deref(),
            }),
        )
        .await
        .map_err(|e| store_failed(&tenant, e))?;
    let subject = subject.fits_cookie().then_some(subject);
    sessions::cookie(config, &keys, &session_id, subject).ok_or_else(|| {
        Refused::failed(
            StatusCode::SERVICE_UNAVAILABLE,
            SignInRefusal::NoSessionKeys,
            "the session keys are unusable: check the controller",
        )
    })
}

/// Name of the cookie that binds sign-in `request_id` to the browser that started it. Host-only
/// (`__Host-`): a sibling host cannot plant the cookie of a sign-in it started, which would
/// finish that sign-in in this browser.
pub fn login_cookie_name(request_id: &str) -> String {
    format!(
        "{HOST_PREFIX}sso_login_{}",
        request_id
            .trim_start_matches('_')
            .chars()
            .take(16)
            .collect::<String>()
    )
}

async fn login(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let tenant = Tenant::new(ns, name);
    let Some(config) = st.configs.get(&tenant) else {
        return web::not_served();
    };
    let target = q.get("redirect").filter(|r| !r.is_empty());
    if let Some(t) = target
        && let Err(refusal) = saml::login::check_redirect(&st.allowed_redirects, Some(&config), t)
    {
        return web::redirect_refused(&refusal);
    }
    let Some(keys) = st.configs.session_keys() else {
        tracing::warn!(identity_provider = %tenant, "no session keys yet: is the controller running?");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Sign-in is unavailable; retry later.",
        );
    };
    let id = saml::login::new_request_id();
    // The sign-in's state travels sealed in the browser's cookie: starting a sign-in writes
    // nothing on the server, so anonymous callers cannot fill anything.
    let payload = PendingRequest {
        tenant: tenant.to_string(),
        uid: config.uid.clone(),
        request_id: id.clone(),
        redirect: target.cloned(),
        expires: (jiff::Timestamp::now() + LOGIN_TTL).as_second(),
    };
    let Some(sealed) = serde_json::to_vec(&payload)
        .ok()
        .and_then(|p| keys.seal(&p))
    else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "Sign-in is unavailable; retry later.",
        );
    };
    // The IdP returns RelayState unchanged: an opaque key, never a URL.
    let url = match saml::login::redirect_url(&config, &id, &id) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(identity_provider = %tenant, error = %e, "could not build the AuthnRequest");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Sign-in is unavailable; retry later.",
            );
        }
    };
    // SameSite=None: the IdP's answer arrives as a cross-site POST.
    let cookie = web::set_cookie(
        &login_cookie_name(&id),
        &sealed,
        LOGIN_TTL,
        SameSite::None,
        None,
    );
    let mut r = StatusCode::FOUND.into_response();
    match (HeaderValue::from_str(&url), HeaderValue::from_str(&cookie)) {
        (Ok(location), Ok(cookie)) => {
            r.headers_mut().insert(header::LOCATION, location);
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        _ => page(
            StatusCode::BAD_REQUEST,
            INVALID_RELAY_STATE.0,
            INVALID_RELAY_STATE.1,
        ),
    }
}

async fn metadata(
    State(st): State<SamlState>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    // A deleted, disabled or never-valid IdentityProvider is not served at all.
    let tenant = Tenant::new(ns, name);
    let Some(config) = st.configs.get(&tenant) else {
        return web::not_served();
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
            tracing::error!(identity_provider = %tenant, error = %e, "could not render SP metadata");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The service-provider metadata is unavailable; retry later.",
            )
        }
    }
}
