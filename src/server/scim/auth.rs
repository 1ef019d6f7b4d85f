//! Who may call the SCIM endpoints: the bearer token checked against the IdentityProvider's
//! ScimToken hashes, and the limiter that answers 429 to a client that keeps failing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

use super::ScimState;
use super::responses::{Failure, Result};
use crate::config::CompiledIdentityProvider;
use crate::scim::ScimError;
use crate::tenant::Tenant;

/// Failed authentications per IdentityProvider per minute before requests are refused.
const MAX_AUTH_FAILURES: u32 = 30;

/// Checks the bearer token against the IdentityProvider's token hashes (constant time),
/// honouring expiry; a disabled or deleted IdentityProvider is not served at all.
pub(super) fn authorize(
    state: &ScimState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<Arc<CompiledIdentityProvider>> {
    // Failed attempts are counted per IdentityProvider; past the limit, requests without a
    // valid token get 429. A valid token always passes, so nobody can lock the IdP out.
    let fail = |detail: &str| {
        let mut limiter = state.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let entry = limiter.entry(tenant.clone()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > MAX_AUTH_FAILURES {
            Failure(ScimError::too_many_requests(
                "too many failed authentications; retry in a minute",
            ))
        } else {
            Failure(ScimError::unauthorized(detail))
        }
    };
    const REFUSED: &str = "the bearer token is not valid for this SCIM endpoint (wrong, expired, rotated out or revoked, or the IdentityProvider is not served)";
    // Unknown endpoints are refused without a trace in the limiter (its keys stay bounded by
    // the IdentityProviders that exist) and with the same message as a wrong token.
    let Some(config) = state.configs.get(tenant) else {
        return Err(Failure(ScimError::unauthorized(REFUSED)));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("send the ScimToken's token as Authorization: Bearer <token>"))?;
    let hash = crate::config::token_hash(token);
    let now = jiff::Timestamp::now();
    let mut ok = false;
    for t in &config.scim_tokens {
        // Compare every candidate in constant time; do not stop early.
        let same = t.sha256.len() == hash.len()
            && openssl::memcmp::eq(t.sha256.as_bytes(), hash.as_bytes());
        if same && t.not_after.is_none_or(|n| n > now) {
            ok = true;
        }
    }
    if !ok {
        return Err(fail(REFUSED));
    }
    state.figures.record(tenant);
    Ok(config)
}
