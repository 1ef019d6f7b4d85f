//! The OpenID Provider's state: authorization codes, grant families with their refresh
//! tokens, and device authorizations (RFC 8628). Codes, refresh tokens, device codes and user
//! codes are secrets: the store keeps only their SHA-256.
//!
//! Redeeming an authorization code or an approved device code starts a grant family; refresh
//! tokens (and the server's access tokens) belong to it, and revoking it ends all of them.
//! Every code and refresh token is used once: a second use is reuse, which revokes the
//! family the code started or the token belongs to (OAuth 2.0 Security BCP, refresh token
//! rotation). Single use is one conditional `UPDATE` whose affected row count decides, so
//! that of two concurrent redemptions on any replica exactly one wins.

use base64::Engine;
use jiff::Timestamp;
use sqlx::any::AnyRow;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AssertSqlSafe, Row};

use super::health::Access;
use super::{Store, StoreError, User, from_micros, map_unique, micros, session_hash};
use crate::tenant::TenantKey;

/// What a user granted a client: carried by an authorization code, an approved device
/// authorization and the family started from either.
///
/// On the way in, `session` is the SSO session ID; the store keeps only its SHA-256. Grants
/// read back from the store carry that SHA-256 (hex) in `session` instead: never the ID.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client's `client_id`.
    pub client_id: String,
    /// The user's ID in the identity store (the tokens' `sub`).
    pub user_id: String,
    /// The SSO session the user signed in with (see above), if any.
    pub session: Option<String>,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The `nonce` of the authorization request.
    pub nonce: Option<String>,
    /// When the user signed in at the IdP.
    pub auth_time: Timestamp,
}

impl std::fmt::Debug for Grant {
    // The session ID is a secret: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("session", &self.session.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .field("nonce", &self.nonce)
            .field("auth_time", &self.auth_time)
            .finish()
    }
}

/// What redeeming an authorization code found.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // returned once per token request and moved out at once
pub enum CodeRedemption {
    /// No such code (never issued, or purged after it expired).
    Unknown,
    /// The code expired before it was used.
    Expired,
    /// The code was redeemed before: the family started from it is now revoked.
    Reused,
    /// Redeemed now: a new family was started.
    Redeemed {
        /// What the user granted.
        grant: Grant,
        /// The redirect URI the code was issued for; the token request must repeat it.
        redirect_uri: String,
        /// The PKCE `code_challenge` (S256), if the authorization request had one.
        code_challenge: Option<String>,
        /// The family started.
        family: String,
    },
}

/// What presenting a refresh token found.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // returned once per token request and moved out at once
pub enum RefreshOutcome {
    /// No such token.
    Unknown,
    /// The token was issued to another client; nothing changed.
    OtherClient,
    /// The family was revoked or has expired, or its user was deleted or deactivated (which
    /// revokes it now).
    Ended,
    /// The token was used before: its family is now revoked.
    Reused,
    /// The token was used now and replaced by a new one of the same family.
    Rotated {
        /// What the user granted.
        grant: Grant,
        /// The family.
        family: String,
        /// The new refresh token.
        token: String,
        /// The user, as stored now.
        user: User,
        /// The display names of the user's groups, sorted, without duplicates.
        groups: Vec<String>,
    },
}

/// A pending device authorization, as the verification page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRequest {
    /// The client that asked.
    pub client_id: String,
    /// The scopes it asked for, space-separated.
    pub scope: String,
    /// When the request expires.
    pub expires: Timestamp,
}

/// What polling with a device code found.
#[derive(Clone, Debug, PartialEq)]
pub enum DevicePoll {
    /// No such device code, another client's, or one exchanged already.
    Unknown,
    /// The device code expired.
    Expired,
    /// The user has not decided yet.
    Pending,
    /// Polled sooner than the interval after the last poll; nothing changed.
    SlowDown,
    /// The user denied the request.
    Denied,
    /// The user approved: a family was started; the device code cannot be used again.
    Approved {
        /// What the user granted.
        grant: Grant,
        /// The family started.
        family: String,
    },
}

/// The letters of user codes: no vowels (no words), none easily mistaken for another.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// The number of letters of a user code (shown as two groups of four).
const USER_CODE_LETTERS: usize = 8;

/// How often creating a device authorization draws another user code when the one drawn is
/// taken.
const USER_CODE_ATTEMPTS: usize = 8;

/// A new secret: 256 random bits, URL-safe base64 without padding.
fn new_secret() -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A new family ID: 128 random bits. Not a secret (access tokens carry it).
fn new_family_id() -> String {
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A new user code, `XXXX-XXXX`.
fn new_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LETTERS + 1);
    for i in 0..USER_CODE_LETTERS {
        if i == USER_CODE_LETTERS / 2 {
            code.push('-');
        }
        let letter = rand::Rng::random_range(&mut rand::rng(), 0..USER_CODE_ALPHABET.len());
        code.push(char::from(USER_CODE_ALPHABET[letter]));
    }
    code
}

/// The user code as typed (any case, with or without the dash or spaces) in its stored form,
/// the eight letters upper-cased; `None` when it cannot be a user code.
fn normal_user_code(typed: &str) -> Option<String> {
    let letters: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (letters.len() == USER_CODE_LETTERS && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(letters)
}

/// The stored SHA-256 of a user code as typed.
fn user_code_hash(typed: &str) -> Option<String> {
    normal_user_code(typed).map(|code| session_hash(&code))
}

/// The grant of a row with the columns `client_id, user_id, session_sha256, scope, nonce,
/// auth_time_us`.
fn grant_from_row(row: &AnyRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        session: row.try_get("session_sha256")?,
        scope: row.try_get("scope")?,
        nonce: row.try_get("nonce")?,
        auth_time: from_micros(row.try_get("auth_time_us")?),
    })
}

/// The columns of a family that [`grant_from_row`] reads.
const FAMILY_GRANT: &str = "f.client_id AS client_id, f.user_id AS user_id, \
     f.session_sha256 AS session_sha256, f.scope AS scope, f.nonce AS nonce, \
     f.auth_time_us AS auth_time_us";

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

impl Store {
    /// Issues an authorization code for `grant`, valid until `expires` for `redirect_uri`
    /// (and the PKCE `code_challenge`, if any); returns the code.
    pub async fn create_authorization_code(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        grant: &Grant,
        redirect_uri: &str,
        code_challenge: Option<&str>,
        expires: Timestamp,
    ) -> Result<String, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let code = new_secret();
            sqlx::query(
                "INSERT INTO oidc_authorization_codes (tenant, code_sha256, client_id, user_id, session_sha256, scope, nonce, auth_time_us, redirect_uri, code_challenge, created_us, expires_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(tenant)
            .bind(session_hash(&code))
            .bind(&grant.client_id)
            .bind(&grant.user_id)
            .bind(grant.session.as_deref().map(session_hash))
            .bind(&grant.scope)
            .bind(grant.nonce.as_deref())
            .bind(micros(grant.auth_time))
            .bind(redirect_uri)
            .bind(code_challenge)
            .bind(micros(Timestamp::now()))
            .bind(micros(expires))
            .execute(&self.pool)
            .await?;
            Ok(code)
        })
        .await
    }

    /// Redeems an authorization code, once: starts a family whose refresh tokens last until
    /// `refresh_expires`. A code redeemed before is remembered until it is purged: presenting
    /// it again revokes the family it started. The code is spent once redeemed: when a check
    /// of the token request then fails (client, redirect URI, PKCE verifier), revoke the
    /// family with [`Store::revoke_family`].
    pub async fn redeem_authorization_code(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        code: &str,
        refresh_expires: Timestamp,
    ) -> Result<CodeRedemption, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let code_sha256 = session_hash(code);
            let family = new_family_id();
            let mut tx = self.pool.begin().await?;
            // Write first: the winner of concurrent redemptions is the one whose update
            // finds the code unused.
            let won = sqlx::query(
                "UPDATE oidc_authorization_codes SET used_us = $3, family_id = $4 \
                 WHERE tenant = $1 AND code_sha256 = $2 AND used_us IS NULL AND expires_us > $3",
            )
            .bind(tenant)
            .bind(&code_sha256)
            .bind(now)
            .bind(&family)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let row = sqlx::query(
                "SELECT client_id, user_id, session_sha256, scope, nonce, auth_time_us, redirect_uri, code_challenge, used_us, family_id \
                 FROM oidc_authorization_codes WHERE tenant = $1 AND code_sha256 = $2",
            )
            .bind(tenant)
            .bind(&code_sha256)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(CodeRedemption::Unknown);
            };
            if !won {
                let outcome = match row.try_get::<Option<String>, _>("family_id")? {
                    Some(started) if row.try_get::<Option<i64>, _>("used_us")?.is_some() => {
                        Self::revoke_family_in(&mut tx, tenant, &started, now).await?;
                        CodeRedemption::Reused
                    }
                    _ => CodeRedemption::Expired,
                };
                tx.commit().await?;
                return Ok(outcome);
            }
            let grant = grant_from_row(&row)?;
            Self::start_family(&mut tx, tenant, &family, &grant, now, micros(refresh_expires))
                .await?;
            tx.commit().await?;
            Ok(CodeRedemption::Redeemed {
                grant,
                redirect_uri: row.try_get("redirect_uri")?,
                code_challenge: row.try_get("code_challenge")?,
                family,
            })
        })
        .await
    }

    /// Issues a refresh token of `family`, valid as long as the family; [`StoreError::NotFound`]
    /// when the family is not live (unknown, revoked or expired).
    pub async fn issue_refresh_token(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        family: &str,
    ) -> Result<String, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let token = new_secret();
            let issued = sqlx::query(
                "INSERT INTO oidc_refresh_tokens (tenant, token_sha256, family_id, created_us, expires_us) \
                 SELECT f.tenant, $2, f.family_id, $4, f.expires_us FROM oidc_families f \
                 WHERE f.tenant = $1 AND f.family_id = $3 AND f.revoked_us IS NULL AND f.expires_us > $4",
            )
            .bind(tenant)
            .bind(session_hash(&token))
            .bind(family)
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?
            .rows_affected();
            if issued == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(token)
        })
        .await
    }

    /// Uses a refresh token of `client_id`: replaced by a new one of the same family when the
    /// family is live and its user exists and is active. A token used before revokes its
    /// family (of two concurrent uses, one rotates and the other revokes).
    pub async fn refresh(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        client_id: &str,
        token: &str,
    ) -> Result<RefreshOutcome, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let token_sha256 = session_hash(token);
            let sql = format!(
                "SELECT {FAMILY_GRANT}, f.family_id AS family_id, f.revoked_us AS revoked_us, \
                 f.expires_us AS expires_us, t.used_us AS used_us \
                 FROM oidc_refresh_tokens t JOIN oidc_families f ON f.tenant = t.tenant AND f.family_id = t.family_id \
                 WHERE t.tenant = $1 AND t.token_sha256 = $2"
            );
            let Some(row) = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(&token_sha256)
                .fetch_optional(&self.pool)
                .await?
            else {
                return Ok(RefreshOutcome::Unknown);
            };
            let grant = grant_from_row(&row)?;
            let family: String = row.try_get("family_id")?;
            if grant.client_id != client_id {
                return Ok(RefreshOutcome::OtherClient);
            }
            let live = row.try_get::<Option<i64>, _>("revoked_us")?.is_none()
                && row.try_get::<i64, _>("expires_us")? > now;
            if !live {
                return Ok(RefreshOutcome::Ended);
            }
            if row.try_get::<Option<i64>, _>("used_us")?.is_some() {
                self.revoke_family_now(tenant, &family, now).await?;
                return Ok(RefreshOutcome::Reused);
            }
            let Some((user, groups)) = self.active_user_and_groups(tenant, &grant.user_id).await?
            else {
                // Deleted or deactivated: the grant ends for good, even if the user returns.
                self.revoke_family_now(tenant, &family, now).await?;
                return Ok(RefreshOutcome::Ended);
            };
            let next = new_secret();
            let mut tx = self.pool.begin().await?;
            let won = sqlx::query(
                "UPDATE oidc_refresh_tokens SET used_us = $3 \
                 WHERE tenant = $1 AND token_sha256 = $2 AND used_us IS NULL AND EXISTS (\
                 SELECT 1 FROM oidc_families f WHERE f.tenant = $1 AND f.family_id = $4 \
                 AND f.revoked_us IS NULL AND f.expires_us > $3)",
            )
            .bind(tenant)
            .bind(&token_sha256)
            .bind(now)
            .bind(&family)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !won {
                // Used by a concurrent request, or the family ended meanwhile.
                let used = sqlx::query(
                    "SELECT used_us FROM oidc_refresh_tokens WHERE tenant = $1 AND token_sha256 = $2",
                )
                .bind(tenant)
                .bind(&token_sha256)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<Option<i64>, _>("used_us"))
                .transpose()?
                .flatten()
                .is_some();
                let outcome = if used {
                    Self::revoke_family_in(&mut tx, tenant, &family, now).await?;
                    RefreshOutcome::Reused
                } else {
                    RefreshOutcome::Ended
                };
                tx.commit().await?;
                return Ok(outcome);
            }
            sqlx::query(
                "INSERT INTO oidc_refresh_tokens (tenant, token_sha256, family_id, created_us, expires_us) \
                 SELECT f.tenant, $2, f.family_id, $4, f.expires_us FROM oidc_families f \
                 WHERE f.tenant = $1 AND f.family_id = $3",
            )
            .bind(tenant)
            .bind(session_hash(&next))
            .bind(&family)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(RefreshOutcome::Rotated {
                grant,
                family,
                token: next,
                user,
                groups,
            })
        })
        .await
    }

    /// A live family (neither revoked nor expired) whose user exists and is active, with the
    /// user and the display names of the user's groups (sorted, without duplicates): what
    /// userinfo answers from.
    pub async fn family(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        family: &str,
    ) -> Result<Option<(Grant, User, Vec<String>)>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let sql = format!(
                "SELECT {FAMILY_GRANT} FROM oidc_families f \
                 WHERE f.tenant = $1 AND f.family_id = $2 AND f.revoked_us IS NULL AND f.expires_us > $3"
            );
            let Some(row) = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(family)
                .bind(micros(Timestamp::now()))
                .fetch_optional(&self.pool)
                .await?
            else {
                return Ok(None);
            };
            let grant = grant_from_row(&row)?;
            Ok(self
                .active_user_and_groups(tenant, &grant.user_id)
                .await?
                .map(|(user, groups)| (grant, user, groups)))
        })
        .await
    }

    /// Revokes a family: its refresh tokens no longer work. False when it was not live.
    pub async fn revoke_family(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        family: &str,
    ) -> Result<bool, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            self.revoke_family_now(tenant, family, micros(Timestamp::now()))
                .await
        })
        .await
    }

    /// Revokes the family of a refresh token of `client_id` (RFC 7009: the grant ends with
    /// it). Another client's token, an unknown one or one of an ended family changes
    /// nothing: false.
    pub async fn revoke_refresh_token(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        client_id: &str,
        token: &str,
    ) -> Result<bool, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let revoked = sqlx::query(
                "UPDATE oidc_families SET revoked_us = $4 \
                 WHERE tenant = $1 AND client_id = $3 AND revoked_us IS NULL AND family_id IN (\
                 SELECT t.family_id FROM oidc_refresh_tokens t WHERE t.tenant = $1 AND t.token_sha256 = $2)",
            )
            .bind(tenant)
            .bind(session_hash(token))
            .bind(client_id)
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(revoked > 0)
        })
        .await
    }

    /// Revokes every family started in the SSO session `session_id` (logout); returns how
    /// many were live.
    pub async fn revoke_families_of_session(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        session_id: &str,
    ) -> Result<u64, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            Ok(sqlx::query(
                "UPDATE oidc_families SET revoked_us = $3 \
                 WHERE tenant = $1 AND session_sha256 = $2 AND revoked_us IS NULL",
            )
            .bind(tenant)
            .bind(session_hash(session_id))
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?
            .rows_affected())
        })
        .await
    }

    /// Revokes every family of the user `user_id`; returns how many were live.
    pub async fn revoke_families_of_user(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_id: &str,
    ) -> Result<u64, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            Ok(sqlx::query(
                "UPDATE oidc_families SET revoked_us = $3 \
                 WHERE tenant = $1 AND user_id = $2 AND revoked_us IS NULL",
            )
            .bind(tenant)
            .bind(user_id)
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?
            .rows_affected())
        })
        .await
    }

    /// Starts a device authorization of `client_id` for `scope`, until `expires`, polled at
    /// most every `interval_secs`; returns the device code and the user code (`BCDF-GHJK`).
    pub async fn create_device_authorization(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        client_id: &str,
        scope: &str,
        expires: Timestamp,
        interval_secs: u64,
    ) -> Result<(String, String), StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let interval_us = i64::try_from(interval_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000);
            let device_code = new_secret();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let user_code = new_user_code();
                let inserted = sqlx::query(
                    "INSERT INTO oidc_device_authorizations (tenant, device_code_sha256, user_code_sha256, client_id, scope, interval_us, created_us, expires_us, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
                )
                .bind(tenant)
                .bind(session_hash(&device_code))
                .bind(user_code_hash(&user_code))
                .bind(client_id)
                .bind(scope)
                .bind(interval_us)
                .bind(micros(Timestamp::now()))
                .bind(micros(expires))
                .execute(&self.pool)
                .await
                .map_err(|e| map_unique(e, || "user code".to_owned()));
                match inserted {
                    Ok(_) => return Ok((device_code, user_code)),
                    // The user code drawn is taken (until purged): draw another.
                    Err(StoreError::Conflict(_)) if attempt < USER_CODE_ATTEMPTS => continue,
                    Err(e) => return Err(e),
                }
            }
        })
        .await
    }

    /// The pending, unexpired device authorization of `user_code` (as typed: any case, dash
    /// optional).
    pub async fn device_request(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_code: &str,
    ) -> Result<Option<DeviceRequest>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        let Some(user_code_sha256) = user_code_hash(user_code) else {
            return Ok(None);
        };
        self.guarded(Access::Read, async move {
            sqlx::query(
                "SELECT client_id, scope, expires_us FROM oidc_device_authorizations \
                 WHERE tenant = $1 AND user_code_sha256 = $2 AND status = 'pending' AND expires_us > $3",
            )
            .bind(tenant)
            .bind(user_code_sha256)
            .bind(micros(Timestamp::now()))
            .fetch_optional(&self.pool)
            .await?
            .map(|row| {
                Ok(DeviceRequest {
                    client_id: row.try_get("client_id")?,
                    scope: row.try_get("scope")?,
                    expires: from_micros(row.try_get("expires_us")?),
                })
            })
            .transpose()
        })
        .await
    }

    /// Approves the pending device authorization of `user_code` with `grant` (whose client
    /// must be the one that asked); false when there is none.
    pub async fn approve_device(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_code: &str,
        grant: &Grant,
    ) -> Result<bool, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        let Some(user_code_sha256) = user_code_hash(user_code) else {
            return Ok(false);
        };
        self.guarded(Access::Write, async move {
            Ok(sqlx::query(
                "UPDATE oidc_device_authorizations SET status = 'approved', user_id = $4, session_sha256 = $5, \
                 granted_scope = $6, nonce = $7, auth_time_us = $8 \
                 WHERE tenant = $1 AND user_code_sha256 = $2 AND client_id = $3 AND status = 'pending' AND expires_us > $9",
            )
            .bind(tenant)
            .bind(user_code_sha256)
            .bind(&grant.client_id)
            .bind(&grant.user_id)
            .bind(grant.session.as_deref().map(session_hash))
            .bind(&grant.scope)
            .bind(grant.nonce.as_deref())
            .bind(micros(grant.auth_time))
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?
            .rows_affected()
                > 0)
        })
        .await
    }

    /// Denies the pending device authorization of `user_code`; false when there is none.
    pub async fn deny_device(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_code: &str,
    ) -> Result<bool, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        let Some(user_code_sha256) = user_code_hash(user_code) else {
            return Ok(false);
        };
        self.guarded(Access::Write, async move {
            Ok(sqlx::query(
                "UPDATE oidc_device_authorizations SET status = 'denied' \
                 WHERE tenant = $1 AND user_code_sha256 = $2 AND status = 'pending' AND expires_us > $3",
            )
            .bind(tenant)
            .bind(user_code_sha256)
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?
            .rows_affected()
                > 0)
        })
        .await
    }

    /// The state of the device authorization of `device_code`, polled by `client_id`. An
    /// approved one starts a family whose refresh tokens last until `refresh_expires`, once;
    /// a pending one polled sooner than its interval after the last poll answers
    /// [`DevicePoll::SlowDown`].
    pub async fn poll_device(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        client_id: &str,
        device_code: &str,
        refresh_expires: Timestamp,
    ) -> Result<DevicePoll, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let device_code_sha256 = session_hash(device_code);
            let Some(row) = sqlx::query(
                "SELECT client_id, status, expires_us FROM oidc_device_authorizations \
                 WHERE tenant = $1 AND device_code_sha256 = $2",
            )
            .bind(tenant)
            .bind(&device_code_sha256)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(DevicePoll::Unknown);
            };
            if row.try_get::<String, _>("client_id")? != client_id {
                return Ok(DevicePoll::Unknown);
            }
            let status: String = row.try_get("status")?;
            if status == "used" {
                return Ok(DevicePoll::Unknown);
            }
            if row.try_get::<i64, _>("expires_us")? <= now {
                return Ok(DevicePoll::Expired);
            }
            match status.as_str() {
                "denied" => Ok(DevicePoll::Denied),
                "approved" => {
                    self.exchange_device_code(tenant, &device_code_sha256, now, refresh_expires)
                        .await
                }
                _ => {
                    let answered = sqlx::query(
                        "UPDATE oidc_device_authorizations SET last_poll_us = $3 \
                         WHERE tenant = $1 AND device_code_sha256 = $2 AND status = 'pending' \
                         AND (last_poll_us IS NULL OR last_poll_us + interval_us <= $3)",
                    )
                    .bind(tenant)
                    .bind(&device_code_sha256)
                    .bind(now)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                        > 0;
                    // Not answered: polled too soon (or decided just now: the next poll
                    // tells).
                    Ok(if answered {
                        DevicePoll::Pending
                    } else {
                        DevicePoll::SlowDown
                    })
                }
            }
        })
        .await
    }

    /// Exchanges an approved device code, once, for a new family.
    async fn exchange_device_code(
        &self,
        tenant: &str,
        device_code_sha256: &str,
        now: i64,
        refresh_expires: Timestamp,
    ) -> Result<DevicePoll, StoreError> {
        let family = new_family_id();
        let mut tx = self.pool.begin().await?;
        let won = sqlx::query(
            "UPDATE oidc_device_authorizations SET status = 'used', family_id = $3 \
             WHERE tenant = $1 AND device_code_sha256 = $2 AND status = 'approved' AND expires_us > $4",
        )
        .bind(tenant)
        .bind(device_code_sha256)
        .bind(&family)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            // Exchanged by a concurrent poll.
            tx.rollback().await?;
            return Ok(DevicePoll::Unknown);
        }
        let row = sqlx::query(
            "SELECT client_id, user_id, session_sha256, granted_scope AS scope, nonce, auth_time_us \
             FROM oidc_device_authorizations WHERE tenant = $1 AND device_code_sha256 = $2",
        )
        .bind(tenant)
        .bind(device_code_sha256)
        .fetch_one(&mut *tx)
        .await?;
        let grant = grant_from_row(&row)?;
        Self::start_family(
            &mut tx,
            tenant,
            &family,
            &grant,
            now,
            micros(refresh_expires),
        )
        .await?;
        tx.commit().await?;
        Ok(DevicePoll::Approved { grant, family })
    }

    /// Stores a new family of `grant`, whose `session` is already the stored SHA-256.
    async fn start_family(
        tx: &mut Tx<'_>,
        tenant: &str,
        family: &str,
        grant: &Grant,
        now: i64,
        expires: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_families (tenant, family_id, client_id, user_id, session_sha256, scope, nonce, auth_time_us, created_us, expires_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(tenant)
        .bind(family)
        .bind(&grant.client_id)
        .bind(&grant.user_id)
        .bind(grant.session.as_deref())
        .bind(&grant.scope)
        .bind(grant.nonce.as_deref())
        .bind(micros(grant.auth_time))
        .bind(now)
        .bind(expires)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Revokes `family` in `tx`; true when it was not revoked before.
    async fn revoke_family_in(
        tx: &mut Tx<'_>,
        tenant: &str,
        family: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE oidc_families SET revoked_us = $3 WHERE tenant = $1 AND family_id = $2 AND revoked_us IS NULL",
        )
        .bind(tenant)
        .bind(family)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            > 0)
    }

    /// Revokes `family` on its own; true when it was live.
    async fn revoke_family_now(
        &self,
        tenant: &str,
        family: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE oidc_families SET revoked_us = $3 \
             WHERE tenant = $1 AND family_id = $2 AND revoked_us IS NULL AND expires_us > $3",
        )
        .bind(tenant)
        .bind(family)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// The user `user_id` if it exists and is active, with the display names of its groups
    /// (SCIM and sign-in groups; sorted, without duplicates), as [`Store::session`] reads them.
    async fn active_user_and_groups(
        &self,
        tenant: &str,
        user_id: &str,
    ) -> Result<Option<(User, Vec<String>)>, StoreError> {
        let columns: Vec<String> = Self::USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c} AS {c}"))
            .collect();
        let sql = format!(
            "SELECT {}, g.display_name AS group_name FROM scim_users u \
             LEFT JOIN scim_memberships m ON m.tenant = u.tenant AND m.user_id = u.id \
             LEFT JOIN scim_groups g ON g.tenant = m.tenant AND g.id = m.group_id \
             WHERE u.tenant = $1 AND u.id = $2 AND u.active <> 0",
            columns.join(", ")
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let user = Self::user_from_row(first)?;
        let mut groups: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<Option<String>, _>("group_name"))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        groups.sort();
        groups.dedup();
        Ok(Some((user, groups)))
    }

    /// Deletes expired authorization codes, refresh tokens, families and device
    /// authorizations; returns how many went.
    pub(super) async fn purge_expired_oidc(&self, now: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for table in [
            "oidc_authorization_codes",
            "oidc_refresh_tokens",
            "oidc_families",
            "oidc_device_authorizations",
        ] {
            purged += sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE expires_us <= $1"
            )))
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_letters_of_the_alphabet_in_two_groups() {
        for _ in 0..100 {
            let code = new_user_code();
            assert_eq!(code.len(), 9, "{code}");
            assert_eq!(&code[4..5], "-", "{code}");
            assert!(
                code.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| USER_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
            assert_eq!(
                normal_user_code(&code).as_deref(),
                Some(&code.replace('-', "")[..])
            );
        }
    }

    #[test]
    fn user_codes_are_read_in_any_case_with_or_without_the_dash() {
        for typed in [
            "BCDF-GHJK",
            "bcdf-ghjk",
            "BCDFGHJK",
            "bcdfghjk",
            " bcdf ghjk ",
        ] {
            assert_eq!(
                normal_user_code(typed).as_deref(),
                Some("BCDFGHJK"),
                "{typed}"
            );
        }
        for typed in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "BCDA-GHJK",
            "BCDF_GHJK",
            "ВCDF-GHJK",
        ] {
            assert_eq!(normal_user_code(typed), None, "{typed}");
        }
        assert_eq!(user_code_hash("bcdf-ghjk"), user_code_hash("BCDFGHJK"));
    }

    #[test]
    fn secrets_are_256_bits_of_url_safe_base64_without_padding() {
        let a = new_secret();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(a, new_secret());
    }

    #[test]
    fn a_grant_never_shows_its_session_in_debug_output() {
        let grant = Grant {
            client_id: "kubectl".into(),
            user_id: "u1".into(),
            session: Some("the-session-secret".into()),
            scope: "openid".into(),
            nonce: None,
            auth_time: Timestamp::UNIX_EPOCH,
        };
        let shown = format!("{grant:?}");
        assert!(!shown.contains("the-session-secret"), "{shown}");
        assert!(shown.contains("kubectl"), "{shown}");
    }
}
