//! From a verified sign-in to a session: linking to the user of the same IdentityProvider,
//! just-in-time creation where the spec allows it, default and synced groups, and the sealed
//! session cookie.

use cookie::SameSite;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::web;
use crate::api::SignInRefusal;
use crate::api::identity_provider::ProvisioningMode;
use crate::config::CompiledIdentityProvider;
use crate::saml::mapping::{MappedUser, MappingError};
use crate::session::{CookiePayload, LONGEST_SESSION, SamlSubject, SessionKeys};
use crate::store::{Store, StoreError, User, UserInput};
use crate::tenant::Tenant;

/// Why a verified sign-in gets no session.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The attributes do not describe an allowed user.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The user is deactivated (SCIM `active: false`).
    #[error("the user {0:?} is deactivated: reactivate them in the IdP (or its SCIM push)")]
    Deactivated(String),
    /// Unknown user and provisioning is SCIM only.
    #[error(
        "the user {0:?} is not provisioned: assign them to the application in the IdP so that SCIM pushes them, or set users.provisioning to justInTime or scimAndJustInTime"
    )]
    NotProvisioned(String),
    /// The store failed.
    #[error("the identity store failed")]
    Store(#[from] StoreError),
}

impl Refusal {
    /// Which refusal this is, for status and metrics.
    pub fn refusal(&self) -> SignInRefusal {
        match self {
            Refusal::Mapping(m) => m.refusal(),
            Refusal::Deactivated(_) => SignInRefusal::UserDeactivated,
            Refusal::NotProvisioned(_) => SignInRefusal::UserNotProvisioned,
            Refusal::Store(_) => SignInRefusal::StoreUnavailable,
        }
    }
}

fn shown(s: &str) -> String {
    crate::text::shown(s, 256)
}

fn profile(mapped: &MappedUser) -> serde_json::Value {
    let mut resource = json!({});
    if mapped.given_name.is_some() || mapped.family_name.is_some() {
        resource["name"] =
            json!({ "givenName": mapped.given_name, "familyName": mapped.family_name });
    }
    if let Some(d) = &mapped.display_name {
        resource["displayName"] = json!(d);
    }
    if let Some(e) = &mapped.email {
        resource["emails"] = json!([{ "value": e, "type": "work", "primary": true }]);
    }
    resource
}

/// The user a sign-in belongs to: the user of this IdentityProvider whose `userName` is the
/// identity, else (with `users.linkByEmail`) the one user with that work email; created just in
/// time when the spec allows it. Deactivated users are refused. Groups follow the spec.
pub async fn resolve_user(
    store: &Store,
    config: &CompiledIdentityProvider,
    mapped: &MappedUser,
) -> Result<User, Refusal> {
    let tenant = config.tenant();
    let mut found = store
        .find_user_by_user_name(&tenant, &mapped.identity)
        .await?;
    if found.is_none()
        && config.users.link_by_email
        && let Some(email) = &mapped.email
    {
        let mut by_email = store.find_users_by_email(&tenant, email, 2).await?;
        // Link by email only when it is unambiguous.
        if by_email.len() == 1 {
            found = by_email.pop();
        }
    }
    let users = &config.users;
    let (user, created) = match found {
        Some(user) => {
            if !user.active {
                return Err(Refusal::Deactivated(shown(&user.user_name)));
            }
            // Users created at sign-in follow the IdP's attributes; SCIM users are read-only
            // here (SCIM owns them).
            let resource = profile(mapped);
            let user = if !user.scim_managed && user.resource != resource {
                store
                    .replace_user(
                        &tenant,
                        &user.id,
                        None,
                        UserInput {
                            user_name: user.user_name.clone(),
                            external_id: user.external_id.clone(),
                            active: true,
                            resource,
                            scim_managed: false,
                        },
                    )
                    .await?
            } else {
                user
            };
            (user, false)
        }
        None => {
            if users.provisioning == ProvisioningMode::Scim {
                return Err(Refusal::NotProvisioned(shown(&mapped.identity)));
            }
            let input = UserInput {
                user_name: mapped.identity.clone(),
                external_id: None,
                active: true,
                resource: profile(mapped),
                scim_managed: false,
            };
            match store.create_user(&tenant, input).await {
                Ok(u) => (u, true),
                // Two first sign-ins at once: the other one created it.
                Err(StoreError::Conflict(_)) => (
                    store
                        .find_user_by_user_name(&tenant, &mapped.identity)
                        .await?
                        .ok_or(StoreError::NotFound)?,
                    false,
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if users.sync_groups_from_saml {
        let mut names = mapped.groups.clone();
        names.extend(users.default_groups.iter().cloned());
        store.set_sign_in_groups(&tenant, &user.id, &names).await?;
    } else if created && !users.default_groups.is_empty() {
        store
            .set_sign_in_groups(&tenant, &user.id, &users.default_groups)
            .await?;
    }
    Ok(user)
}

/// How long a session of this IdentityProvider lasts.
pub fn duration(config: &CompiledIdentityProvider) -> SignedDuration {
    crate::config::session_duration(config.session.duration)
}

/// The `Set-Cookie` value of a new session, or `None` without session keys. `subject` is whom
/// the IdP signed in, for Single Logout.
pub fn cookie(
    config: &CompiledIdentityProvider,
    keys: &SessionKeys,
    session_id: &str,
    subject: Option<SamlSubject>,
) -> Option<String> {
    let payload = CookiePayload {
        tenant: config.tenant().to_string(),
        uid: config.uid.clone(),
        session_id: session_id.to_owned(),
        subject,
    };
    let sealed = keys.seal(&serde_json::to_vec(&payload).ok()?)?;
    // With extend-when-used the store decides when the session ends; the browser keeps the
    // cookie as long as any session may last.
    let max_age = if config.session.extend_when_used {
        LONGEST_SESSION
    } else {
        duration(config)
    };
    Some(web::set_cookie(
        &cookie_name(config),
        &sealed,
        max_age,
        SameSite::Lax,
        cookie_domain(config),
    ))
}

/// Name of the session cookie of this IdentityProvider: `__Host-` and a hash of its name when
/// the cookie belongs to the external URL's host alone, the hash without the prefix when
/// `session.cookieDomain` shares it with sibling hosts.
pub fn cookie_name(config: &CompiledIdentityProvider) -> String {
    crate::session::cookie_name(&config.tenant(), cookie_domain(config).is_none())
}

/// The `Set-Cookie` values that remove the session cookie of `tenant`: host-only, and for the
/// configured cookie domain when there is one.
pub fn clear_cookies(tenant: &Tenant, config: Option<&CompiledIdentityProvider>) -> Vec<String> {
    let host_only = crate::session::cookie_name(tenant, true);
    let mut out = vec![web::remove_cookie(&host_only, SameSite::Lax, None)];
    if let Some(domain) = config.and_then(cookie_domain) {
        let shared = crate::session::cookie_name(tenant, false);
        out.push(web::remove_cookie(&shared, SameSite::Lax, Some(domain)));
    }
    out
}

/// The configured cookie domain, when it is a plain domain name.
fn cookie_domain(config: &CompiledIdentityProvider) -> Option<&str> {
    config.session.cookie_domain.as_deref().filter(|d| {
        !d.trim_start_matches('.').is_empty()
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    })
}

/// The end of a session created now.
pub fn expiry(config: &CompiledIdentityProvider) -> Timestamp {
    Timestamp::now() + duration(config)
}
