//! Session keys and the sealed session cookie.
//!
//! The controller keeps a set of random 256-bit keys in one Secret of the operator namespace
//! ([`SESSION_KEYS_SECRET`]), adds a new key every rotation period and retires keys once no
//! cookie sealed with them can still be valid. The server seals cookies with the newest key
//! (AES-256-GCM: encrypted and authenticated, so the cookie is both signed and unreadable)
//! and opens them with any key it knows.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use serde::{Deserialize, Serialize};

/// Name of the Secret (operator namespace) holding the session keys.
pub const SESSION_KEYS_SECRET: &str = "sso-operator-session-keys";
/// Key of the JSON document inside that Secret.
pub const KEYS_KEY: &str = "keys.json";
/// Prefix of the session cookies; each IdentityProvider has its own cookie
/// ([`cookie_name`]), so a session of one can never stand in for another.
pub const COOKIE_PREFIX: &str = "sso_session_";
/// Name prefix of the cookies that belong to this host alone. Browsers accept a cookie so named
/// only when it is `Secure`, has `Path=/` and no `Domain`, so no other host (a sibling
/// subdomain) and no other path can set one of that name or shadow it.
pub const HOST_PREFIX: &str = "__Host-";

/// Name of the session cookie of IdentityProvider `tenant` (a [`Tenant`](crate::tenant::Tenant)
/// or its written form `namespace/name`): with the [`HOST_PREFIX`] when the cookie is
/// `host_only` (no `session.cookieDomain`). The name hashes the written form, so it is the
/// same whichever way the tenant is given.
pub fn cookie_name(tenant: &(impl std::fmt::Display + ?Sized), host_only: bool) -> String {
    let written = tenant.to_string();
    format!(
        "{}{COOKIE_PREFIX}{}",
        if host_only { HOST_PREFIX } else { "" },
        &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(written.as_bytes()))[..16]
    )
}
/// The longest session the CRD allows; a key is kept at least this long after it stops
/// sealing new cookies.
pub const LONGEST_SESSION: SignedDuration = SignedDuration::from_hours(720);

const COOKIE_VERSION: &str = "v1";

/// One session key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionKey {
    /// Short random identifier, carried in cookies to pick the key.
    pub id: String,
    /// When the key was created.
    pub created: Timestamp,
    /// 32 random bytes, base64.
    pub key: String,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("id", &self.id)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The session keys, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKeys {
    /// Keys, newest first.
    pub keys: Vec<SessionKey>,
}

fn new_key(now: Timestamp) -> SessionKey {
    let mut id = [0u8; 6];
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    SessionKey {
        id: hex::encode(id),
        created: now,
        key: STANDARD.encode(key),
    }
}

impl SessionKeys {
    /// The key set after rotation at `now`: a new key when there is none or the newest is
    /// older than `every`; keys that stopped sealing more than [`LONGEST_SESSION`] ago are
    /// dropped. Returns whether anything changed.
    pub fn rotate(&self, now: Timestamp, every: SignedDuration) -> (Self, bool) {
        let mut keys = self.keys.clone();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created));
        let mut changed = keys != self.keys;
        if keys.first().is_none_or(|k| k.created + every <= now) {
            keys.insert(0, new_key(now));
            changed = true;
        }
        // Key i sealed cookies until key i-1 was created.
        let mut kept = vec![keys[0].clone()];
        for pair in keys.windows(2) {
            if pair[0].created + LONGEST_SESSION > now {
                kept.push(pair[1].clone());
            } else {
                changed = true;
            }
        }
        (Self { keys: kept }, changed)
    }

    fn cipher_key(key: &SessionKey) -> Option<Vec<u8>> {
        STANDARD.decode(&key.key).ok().filter(|k| k.len() == 32)
    }

    /// Seals `payload` with the newest key; `None` when there is no usable key.
    pub fn seal(&self, payload: &[u8]) -> Option<String> {
        let key = self.keys.first()?;
        let secret = Self::cipher_key(key)?;
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let aad = format!("{COOKIE_VERSION}.{}", key.id);
        let mut tag = [0u8; 16];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &secret,
            Some(&nonce),
            aad.as_bytes(),
            payload,
            &mut tag,
        )
        .ok()?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        blob.extend_from_slice(&tag);
        Some(format!("{aad}.{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens a cookie value sealed with any known key; `None` when it was not sealed by us,
    /// was changed, or its key has been retired.
    pub fn open(&self, value: &str) -> Option<Vec<u8>> {
        if value.len() > 4096 {
            return None;
        }
        let mut parts = value.splitn(3, '.');
        let (version, id, blob) = (parts.next()?, parts.next()?, parts.next()?);
        if version != COOKIE_VERSION {
            return None;
        }
        let key = self.keys.iter().find(|k| k.id == id)?;
        let secret = Self::cipher_key(key)?;
        let blob = URL_SAFE_NO_PAD.decode(blob).ok()?;
        if blob.len() < 12 + 16 {
            return None;
        }
        let (nonce, rest) = blob.split_at(12);
        let (sealed, tag) = rest.split_at(rest.len() - 16);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &secret,
            Some(nonce),
            format!("{version}.{id}").as_bytes(),
            sealed,
            tag,
        )
        .ok()
    }
}

/// What a session cookie holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookiePayload {
    /// The IdentityProvider (`namespace/name`).
    #[serde(rename = "t")]
    pub tenant: String,
    /// The `metadata.uid` of the IdentityProvider that signed the user in: a session of a
    /// deleted IdentityProvider never opens for one re-created under the same name. Empty in
    /// cookies sealed before it existed, which are refused.
    #[serde(rename = "u", default)]
    pub uid: String,
    /// The session ID (looked up in the identity store, which has the last word).
    #[serde(rename = "s")]
    pub session_id: String,
    /// Whom the IdP signed in, for the LogoutRequest of SAML Single Logout; none for sessions
    /// sealed before Single Logout existed, or when the NameID is too long for a cookie.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SamlSubject>,
}

/// The subject of a sign-in as the IdP asserted it: a LogoutRequest must name the NameID
/// exactly as the assertion carried it (value, Format and qualifiers), and the SessionIndex
/// of the assertion's AuthnStatement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlSubject {
    /// The NameID value.
    #[serde(rename = "v")]
    pub name_id: String,
    /// The NameID's `Format`.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The NameID's `NameQualifier`.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub name_qualifier: Option<String>,
    /// The NameID's `SPNameQualifier`.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub sp_name_qualifier: Option<String>,
    /// The AuthnStatement's `SessionIndex`.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub session_index: Option<String>,
}

impl SamlSubject {
    /// The longest subject (all values together) a session cookie carries: a sealed cookie
    /// must stay well under the 4 KiB browsers keep.
    pub const MAX_LEN: usize = 1536;

    /// Whether the subject fits into a session cookie.
    pub fn fits_cookie(&self) -> bool {
        [
            Some(&self.name_id),
            self.format.as_ref(),
            self.name_qualifier.as_ref(),
            self.sp_name_qualifier.as_ref(),
            self.session_index.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum::<usize>()
            <= Self::MAX_LEN
    }
}

/// What a sign-in or sign-out cookie holds between our request to the IdP and its answer:
/// the browser carries its own pending request, sealed, so starting a sign-in writes nothing
/// anywhere, and the IdP's answer must be to a request this browser sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The IdentityProvider (`namespace/name`).
    #[serde(rename = "t")]
    pub tenant: String,
    /// The `metadata.uid` of the IdentityProvider that sent the request: only the same
    /// incarnation accepts the answer.
    #[serde(rename = "u", default)]
    pub uid: String,
    /// The AuthnRequest or LogoutRequest ID (also the RelayState).
    #[serde(rename = "i")]
    pub request_id: String,
    /// Where to go afterwards.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
    /// Until when the IdP's answer is accepted (Unix seconds).
    #[serde(rename = "e")]
    pub expires: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_names_are_stable_across_releases() {
        // The first 16 hex digits of SHA-256("team-a/okta"): browsers keep the cookie by name,
        // so a changed derivation would sign everyone out.
        assert_eq!(
            cookie_name("team-a/okta", true),
            "__Host-sso_session_2a59986127f01311"
        );
        assert_eq!(
            cookie_name("team-a/okta", false),
            "sso_session_2a59986127f01311"
        );
        assert_ne!(
            cookie_name("team-a/okta", true),
            cookie_name("team-b/okta", true)
        );
    }

    #[test]
    fn a_tenant_names_the_same_cookie_as_its_written_form() {
        let tenant = crate::tenant::Tenant::new("team-a", "okta");
        assert_eq!(
            cookie_name(&tenant, true),
            "__Host-sso_session_2a59986127f01311"
        );
        assert_eq!(cookie_name(&tenant, false), "sso_session_2a59986127f01311");
    }

    #[test]
    fn sealed_cookies_open_and_tampering_is_refused() {
        let (keys, changed) =
            SessionKeys::default().rotate(Timestamp::now(), SignedDuration::from_hours(24));
        assert!(changed);
        let sealed = keys.seal(b"hello").unwrap();
        assert!(!sealed.contains("hello"));
        assert_eq!(keys.open(&sealed).unwrap(), b"hello");
        // Flip one character of the ciphertext.
        let mut bytes = sealed.clone().into_bytes();
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert!(keys.open(&String::from_utf8(bytes).unwrap()).is_none());
        // Another key set cannot open it.
        let (other, _) =
            SessionKeys::default().rotate(Timestamp::now(), SignedDuration::from_hours(24));
        assert!(other.open(&sealed).is_none());
        assert!(keys.open("v1.nokey.AAAA").is_none());
        assert!(keys.open("garbage").is_none());
        assert!(keys.open("").is_none());
    }

    #[test]
    fn rotation_adds_keys_and_retires_them_after_the_longest_session() {
        let day = SignedDuration::from_hours(24);
        let t0 = Timestamp::now();
        let (k1, _) = SessionKeys::default().rotate(t0, day);
        let (same, changed) = k1.rotate(t0 + SignedDuration::from_hours(1), day);
        assert!(!changed);
        assert_eq!(same, k1);
        let sealed = k1.seal(b"x").unwrap();
        let (k2, changed) = k1.rotate(t0 + day, day);
        assert!(changed);
        assert_eq!(k2.keys.len(), 2);
        // Old cookies still open; new ones use the new key.
        assert_eq!(k2.open(&sealed).unwrap(), b"x");
        assert_ne!(k2.keys[0].id, k1.keys[0].id);
        // Long after, the first key is gone.
        let later = t0 + day + LONGEST_SESSION + SignedDuration::from_secs(1);
        let (k3, changed) = k2.rotate(later, SignedDuration::from_hours(10_000));
        assert!(changed);
        assert!(k3.open(&sealed).is_none());
        assert_eq!(k3.keys.len(), 1);
    }

    #[test]
    fn cookies_sealed_before_single_logout_still_open_and_long_subjects_stay_out() {
        let old: CookiePayload = serde_json::from_str(r#"{"t":"ns/okta","s":"abc"}"#).unwrap();
        assert_eq!(old.subject, None);
        let subject = SamlSubject {
            name_id: "ada@example.com".into(),
            format: None,
            name_qualifier: None,
            sp_name_qualifier: None,
            session_index: Some("_s1".into()),
        };
        assert!(subject.fits_cookie());
        let long = SamlSubject {
            name_id: "x".repeat(SamlSubject::MAX_LEN + 1),
            ..subject
        };
        assert!(!long.fits_cookie());
    }

    #[test]
    fn debug_output_never_shows_keys() {
        let (keys, _) =
            SessionKeys::default().rotate(Timestamp::now(), SignedDuration::from_hours(1));
        assert!(!format!("{keys:?}").contains(&keys.keys[0].key));
    }
}
