//! Reconciles a ScimToken: issues the bearer token into a Secret with the SCIM base URL,
//! rotates it with an overlap, enforces expiry, and reports status. The server only ever sees
//! the token's SHA-256, through the IdentityProvider's compiled configuration.
//!
//! Which tokens work is decided from what only the operator (and those who may write the
//! Secrets anyway) can change: the ScimToken's spec and its Secret (see [`issued_secret`]).
//! Status is a report rebuilt from them, never read back: a forged or dropped status changes
//! nothing.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::issued_secret::{self, Policy, RefusalReasons};
#[cfg(test)]
use super::issued_secret::{ISSUED_AT, PREVIOUS_HASH, PREVIOUS_UNTIL, ROTATION_REQUEST};
pub use super::issued_secret::{Issued, ROTATE_ANNOTATION, Refusal, SecretPlan};
use super::{Context, Error, names, references};
#[cfg(test)]
use super::{MANAGED_BY, is_controlled_by, owner_reference};
use crate::api::conditions::{self as cond, Desired, reason};
use crate::api::scim_token::Rotation;
use crate::api::{Duration, IdentityProvider, ScimToken, ScimTokenStatus};
use crate::config::Urls;
#[cfg(test)]
use base64::Engine;
#[cfg(test)]
use k8s_openapi::ByteString;
#[cfg(test)]
use kube::runtime::events::EventType;

const KIND: &str = "ScimToken";
/// Prefix of generated tokens, so that secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "ssoscim_";
/// Shortest accepted bring-your-own token.
pub const MIN_TOKEN_LENGTH: usize = 32;
/// Annotation a bring-your-own token Secret must carry, naming the ScimToken allowed to use it
/// (`spec.tokenSecretRef`): without it a ScimToken could turn any Secret of its namespace into
/// a SCIM credential.
pub const TOKEN_SECRET_ANNOTATION: &str = "sso-operator.dev/scim-token";

/// What a generated token Secret holds.
#[cfg(test)]
type TokenSecret = super::issued_secret::SecretContents;

/// Generates a token: the prefix and 256 random bits, base64url.
pub fn generate_token() -> String {
    issued_secret::generate(TOKEN_PREFIX)
}

pub use crate::config::token_hash;

/// The non-secret identifier of a token: the first 12 hex digits of its hash.
pub fn token_id(hash: &str) -> String {
    issued_secret::credential_id(hash)
}

#[cfg(test)]
fn is_generated_token(token: &str) -> bool {
    issued_secret::is_generated(TOKEN_PREFIX, token)
}

/// The Secret a ScimToken writes its token to: `spec.secretName`, or `{name}-scim-token`
/// (shortened with a hash for names too long for that).
pub fn secret_name(token: &ScimToken) -> String {
    token
        .spec
        .secret_name
        .clone()
        .unwrap_or_else(|| names::generated_name(&token.name_any(), "-scim-token"))
}

/// ScimTokens that name this IdentityProvider.
pub fn referencing_idp(
    tokens: &Store<ScimToken>,
    idp: &IdentityProvider,
) -> Vec<ObjectRef<ScimToken>> {
    references::referencing_idp(tokens, idp)
}

/// ScimTokens that read (bring-your-own) or write this Secret.
pub fn referencing_secret<K: Resource>(
    tokens: &Store<ScimToken>,
    secret: &K,
) -> Vec<ObjectRef<ScimToken>> {
    references::referencing_secret(tokens, secret)
}

/// Reconcile entry point. A deleted ScimToken's Secret goes with it (owner reference); its
/// IdentityProvider recompiles without it.
pub async fn reconcile(token: Arc<ScimToken>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.reconcile_owner(KIND, token.as_ref(), apply(&token, &ctx))
        .await
}

/// Retries failed reconciliations with exponential backoff.
pub fn error_policy(token: Arc<ScimToken>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(KIND, token.as_ref(), error)
}

/// When the current token of `token`, issued at `issued_at`, stops working: `spec.expiresAt`,
/// or the end of the overlap after its scheduled successor, whichever comes first.
pub fn current_expiry(token: &ScimToken, issued_at: Option<Timestamp>) -> Option<Timestamp> {
    let spec_expiry = token.spec.expires_at.as_ref().map(|t| t.0);
    let rotation_expiry = match (rotation_every(token), issued_at) {
        (Some(every), Some(at)) => Some(at + every + rotation_overlap(token)),
        _ => None,
    };
    match (spec_expiry, rotation_expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn rotation_every(token: &ScimToken) -> Option<SignedDuration> {
    rotation_schedule(token.spec.rotation.as_ref()).0
}

fn rotation_overlap(token: &ScimToken) -> SignedDuration {
    rotation_schedule(token.spec.rotation.as_ref()).1
}

/// `rotation.every` and `rotation.overlap`, the overlap at most [`LONGEST_OVERLAP`]: the schema
/// bounds it only below `rotation.every`, and without `every` any length would do.
pub(crate) fn rotation_schedule(
    rotation: Option<&Rotation>,
) -> (Option<SignedDuration>, SignedDuration) {
    let every = rotation.and_then(|r| r.every.as_ref()).map(Duration::get);
    let overlap = rotation
        .map_or_else(|| Rotation::default().overlap.get(), |r| r.overlap.get())
        .min(LONGEST_OVERLAP);
    (every, overlap)
}

/// The longest overlap: a previous token's end (`now + overlap`) must remain a time.
const LONGEST_OVERLAP: SignedDuration = SignedDuration::from_hours(24 * 365 * 1000);

/// How a ScimToken's generated token is issued, rotated and written, with the SCIM base URL
/// `urls` gives.
fn policy(token: &ScimToken, urls: &Urls) -> Policy {
    let (every, overlap) = rotation_schedule(token.spec.rotation.as_ref());
    Policy {
        noun: "token",
        prefix: TOKEN_PREFIX,
        value_key: "token",
        component: "scim-token",
        every,
        overlap,
        expiry: token
            .spec
            .expires_at
            .as_ref()
            .map(|t| (t.0, reason::EXPIRED)),
        plain: vec![("scimBaseUrl", urls.scim_base.clone())],
        reasons: RefusalReasons {
            conflict: reason::SECRET_CONFLICT,
            garbage_collection: reason::WAITING_FOR_GARBAGE_COLLECTION,
        },
    }
}

/// The Secret `token`'s credentials are read from: `spec.tokenSecretRef`, or the Secret the
/// operator writes.
pub fn credential_secret_name(token: &ScimToken) -> String {
    match &token.spec.token_secret_ref {
        Some(r) => r.name.clone(),
        None => secret_name(token),
    }
}

/// The tokens `secret` (read from [`credential_secret_name`]) holds for `token`, trusting only
/// what the operator controls: a generated token counts only from a Secret this very ScimToken
/// controls, with the previous token and its overlap from that Secret's annotations; a token
/// you bring counts only from a Secret that names this ScimToken in the
/// `sso-operator.dev/scim-token` annotation and that the operator does not manage.
pub fn credentials(token: &ScimToken, secret: Option<&Secret>) -> Result<Issued, Refusal> {
    match &token.spec.token_secret_ref {
        Some(r) => own_token(token, secret, &r.name, &r.key),
        None => {
            let name = secret_name(token);
            // The SCIM base URL plays no part in reading the token.
            let policy = policy(token, &Urls::new("", "", ""));
            issued_secret::read_generated(&policy, token, secret, &name).ok_or_else(|| {
                (
                    reason::TOKEN_INVALID,
                    format!("No token has been issued into Secret {name} yet"),
                )
            })
        }
    }
}

/// Whether the operator manages `meta`'s object (a token, key or compiled-configuration
/// Secret): such a Secret is never a token you bring, whatever its annotations say.
fn is_operator_managed(meta: &ObjectMeta) -> bool {
    let labels = meta.labels.as_ref();
    labels
        .and_then(|l| l.get(super::MANAGED_BY.0))
        .is_some_and(|v| v == super::MANAGED_BY.1)
        || labels.is_some_and(|l| l.contains_key(crate::config::COMPILED_CONFIG_LABEL))
        || meta.owner_references.as_ref().is_some_and(|refs| {
            refs.iter()
                .any(|r| r.api_version.starts_with("sso-operator.dev/"))
        })
}
fn own_token(
    token: &ScimToken,
    secret: Option<&Secret>,
    name: &str,
    key: &str,
) -> Result<Issued, Refusal> {
    let ns = token.namespace().unwrap_or_default();
    let me = token.name_any();
    let Some(s) = secret else {
        return Err((
            reason::TOKEN_INVALID,
            format!(
                "Secret {name} (spec.tokenSecretRef) does not exist in namespace {ns}: create it with the token under key {key} and the annotation {TOKEN_SECRET_ANNOTATION}: {me}"
            ),
        ));
    };
    if is_operator_managed(&s.metadata) {
        return Err((
            reason::TOKEN_SECRET_REFUSED,
            format!(
                "Secret {name} (spec.tokenSecretRef) is managed by sso-operator and never holds a token you bring: put your token in a Secret of your own, annotated {TOKEN_SECRET_ANNOTATION}: {me}, or remove spec.tokenSecretRef to have a token generated"
            ),
        ));
    }
    if s.annotations()
        .get(TOKEN_SECRET_ANNOTATION)
        .map(String::as_str)
        != Some(me.as_str())
    {
        return Err((
            reason::TOKEN_SECRET_REFUSED,
            format!(
                "Secret {name} (spec.tokenSecretRef) does not allow ScimToken {me} to use it: add the annotation {TOKEN_SECRET_ANNOTATION}: {me} to the Secret (kubectl annotate secret {name} -n {ns} {TOKEN_SECRET_ANNOTATION}={me})"
            ),
        ));
    }
    let Some(value) = s.data.as_ref().and_then(|d| d.get(key)) else {
        return Err((
            reason::TOKEN_INVALID,
            format!(
                "Secret {name} has no key {key} (spec.tokenSecretRef): put the token under that key"
            ),
        ));
    };
    let Ok(value) = std::str::from_utf8(&value.0) else {
        return Err((
            reason::TOKEN_INVALID,
            format!("The token in Secret {name} key {key} is not text"),
        ));
    };
    let value = value.trim();
    if value.len() < MIN_TOKEN_LENGTH || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err((
            reason::TOKEN_INVALID,
            format!(
                "The token in Secret {name} key {key} must be at least {MIN_TOKEN_LENGTH} printable characters without spaces: generate one with `openssl rand -base64 32`"
            ),
        ));
    }
    Ok(Issued {
        hash: token_hash(value),
        issued_at: None,
        previous: None,
        secret_name: name.to_owned(),
    })
}

async fn apply(token: &ScimToken, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    let (ns, urls, idp) = ctx.identity_provider_of(token).await?;
    let issued = if let Some(r) = &token.spec.token_secret_ref {
        let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&r.name)
            .await?;
        credentials(token, secret.as_ref())
    } else {
        issue(token, ctx, &ns, &urls, now).await?
    };
    let (status, requeue_at) = assess(token, issued, idp.as_ref(), &urls, now);
    let previous = token.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    issued_secret::write_status(ctx, KIND, token, previous, &status.conditions, &status).await?;
    Ok(super::requeue_until(requeue_at))
}

/// The Ready Event of `previous` and `ready` (see [`issued_secret::ready_event`]).
#[cfg(test)]
fn ready_event(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    ready: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition,
) -> Option<EventType> {
    issued_secret::ready_event(previous, ready)
}

/// The status of `token` given its credentials (`issued`, or why it has none) and its
/// IdentityProvider (none when missing or being deleted), with the conditions merged into the
/// previous ones, and when to reconcile again: at the next rotation, expiry or end of overlap.
fn assess(
    token: &ScimToken,
    issued: Result<Issued, Refusal>,
    idp: Option<&IdentityProvider>,
    urls: &Urls,
    now: Timestamp,
) -> (ScimTokenStatus, Option<Timestamp>) {
    let generation = token.metadata.generation.unwrap_or(0);
    let mut status = ScimTokenStatus {
        observed_generation: Some(generation),
        scim_base_url: Some(urls.scim_base.clone()),
        ..Default::default()
    };
    let (problem, requeue_at) = match issued {
        Ok(issued) => (None, report_token(token, issued, now, &mut status)),
        Err(p) => {
            let recheck = (p.0 == reason::WAITING_FOR_GARBAGE_COLLECTION)
                .then(|| now + super::identity_provider::GARBAGE_COLLECTION_RECHECK);
            (Some(p), recheck)
        }
    };
    let spec_expiry = token.spec.expires_at.as_ref().map(|t| t.0);
    let ready = ready_condition(
        token,
        spec_expiry.filter(|t| *t <= now),
        problem,
        idp,
        urls,
        status.secret_name.as_deref().unwrap_or(""),
    );
    let conditions = [expired_condition(spec_expiry, now), ready];
    let previous = token.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    status.conditions = cond::merge(previous, &conditions, generation, now);
    (status, requeue_at)
}

/// Fills the token fields of `status` from `issued` and returns the soonest of the next
/// rotation, the current token's expiry and the end of the previous token's overlap.
fn report_token(
    token: &ScimToken,
    issued: Issued,
    now: Timestamp,
    status: &mut ScimTokenStatus,
) -> Option<Timestamp> {
    let next = issued_secret::next_change(&issued, rotation_every(token), now);
    let expires_at = current_expiry(token, issued.issued_at);
    status.secret_name = Some(issued.secret_name);
    status.token_id = Some(token_id(&issued.hash));
    status.expires_at = expires_at.map(Time);
    status.last_rotation_time = issued.issued_at.map(Time);
    if let Some((hash, until)) = issued.previous.filter(|(_, until)| *until > now) {
        status.previous_token_id = Some(token_id(&hash));
        status.previous_token_expires_at = Some(Time(until));
    }
    next.into_iter().chain(expires_at).min()
}

/// The Expired condition: whether `spec.expiresAt` (`spec_expiry`) has passed at `now`.
fn expired_condition(spec_expiry: Option<Timestamp>, now: Timestamp) -> Desired {
    match spec_expiry {
        Some(t) if t <= now => Desired::yes(
            cond::EXPIRED,
            reason::EXPIRED,
            format!("The token expired at {t} and no longer works"),
        ),
        Some(t) => Desired::no(
            cond::EXPIRED,
            reason::NOT_EXPIRED,
            format!("Works until {t}"),
        ),
        None => Desired::no(cond::EXPIRED, reason::NOT_EXPIRED, "No expiry set"),
    }
}

/// The Ready condition: false when the token expired at `expired`, when its Secret yields no
/// token (`problem`), or when its IdentityProvider is missing or disabled; otherwise true,
/// saying what to paste into the IdP (the token is in `secret_name`).
fn ready_condition(
    token: &ScimToken,
    expired: Option<Timestamp>,
    problem: Option<Refusal>,
    idp: Option<&IdentityProvider>,
    urls: &Urls,
    secret_name: &str,
) -> Desired {
    let idp_name = &token.spec.identity_provider_ref.name;
    if let Some(t) = expired {
        return Desired::no(
            cond::READY,
            reason::EXPIRED,
            format!(
                "The token expired at {t} and no longer works: set a later spec.expiresAt, or remove it"
            ),
        );
    }
    if let Some((r, message)) = problem {
        return Desired::no(cond::READY, r, message);
    }
    match idp {
        None => Desired::no(
            cond::READY,
            reason::IDENTITY_PROVIDER_NOT_FOUND,
            format!(
                "IdentityProvider {idp_name} does not exist in namespace {}: create it, or correct spec.identityProviderRef.name. The token starts working as soon as it exists",
                token.namespace().unwrap_or_default()
            ),
        ),
        Some(i) if i.spec.disabled => Desired::no(
            cond::READY,
            reason::IDENTITY_PROVIDER_DISABLED,
            format!(
                "IdentityProvider {idp_name} is disabled, so SCIM requests are refused: set its spec.disabled to false"
            ),
        ),
        Some(_) => Desired::yes(
            cond::READY,
            reason::READY,
            format!(
                "Paste into the IdP: SCIM base URL {} (Okta: SCIM connector base URL; Entra: Tenant URL) and the token from Secret {secret_name} key token (Okta: Authorization under Authentication Mode HTTP Header; Entra: Secret Token)",
                urls.scim_base
            ),
        ),
    }
}

/// Decides from `existing` (the Secret named `name`, if any) whether `token` keeps its
/// generated token, gets a new one (none yet, a scheduled or requested rotation) or none.
fn plan_secret(
    token: &ScimToken,
    existing: Option<&Secret>,
    name: &str,
    urls: &Urls,
    now: Timestamp,
) -> SecretPlan {
    issued_secret::plan(&policy(token, urls), token, existing, name, now)
}

/// Issues or rotates the generated token and writes its Secret.
async fn issue(
    token: &ScimToken,
    ctx: &Context,
    ns: &str,
    urls: &Urls,
    now: Timestamp,
) -> Result<Result<Issued, Refusal>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = secret_name(token);
    token.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let existing = api.get_opt(&name).await?;
    let plan = plan_secret(token, existing.as_ref(), &name, urls, now);
    let policy = policy(token, urls);
    issued_secret::carry_out(ctx, &policy, token, &name, plan, "TokenIssued", now).await
}

/// The generated token Secret `name` of `token`, holding `contents`.
#[cfg(test)]
fn token_secret_object(
    token: &ScimToken,
    name: &str,
    contents: &TokenSecret,
    urls: &Urls,
) -> Result<Secret, Error> {
    issued_secret::secret_object(&policy(token, urls), token, name, Some(contents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_256_bit_and_unique() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(is_generated_token(&a));
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert!(!is_generated_token("ssoscim_short"));
        assert!(!is_generated_token(&a.replace(TOKEN_PREFIX, "other___")));
    }

    #[test]
    fn token_ids_are_hash_prefixes_not_token_prefixes() {
        let t = generate_token();
        let h = token_hash(&t);
        assert_eq!(h.len(), 64);
        assert_eq!(token_id(&h), h[..12]);
        assert!(!t.contains(&token_id(&h)));
    }

    fn byo(name: &str) -> ScimToken {
        let mut t: ScimToken = serde_json::from_value(serde_json::json!({
            "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken",
            "metadata": { "name": name, "namespace": "ns", "uid": "u1" },
            "spec": { "identityProviderRef": { "name": "okta" },
                      "tokenSecretRef": { "name": "s", "key": "token" } }
        }))
        .unwrap();
        t.metadata.uid = Some("u1".into());
        t
    }

    fn secret(annotations: serde_json::Value, labels: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "s", "namespace": "ns", "annotations": annotations, "labels": labels },
            "data": { "token": base64::engine::general_purpose::STANDARD.encode("a-token-you-bring-0123456789abcdef") }
        }))
        .unwrap()
    }

    #[test]
    fn a_token_you_bring_needs_the_annotation_naming_its_scim_token() {
        let t = byo("okta");
        let none = credentials(
            &t,
            Some(&secret(serde_json::json!({}), serde_json::json!({}))),
        );
        let (r, message) = none.unwrap_err();
        assert_eq!(r, reason::TOKEN_SECRET_REFUSED);
        assert!(
            message.contains("sso-operator.dev/scim-token: okta"),
            "{message}"
        );
        let other = secret(
            serde_json::json!({ TOKEN_SECRET_ANNOTATION: "other" }),
            serde_json::json!({}),
        );
        assert!(credentials(&t, Some(&other)).is_err());
        let mine = secret(
            serde_json::json!({ TOKEN_SECRET_ANNOTATION: "okta" }),
            serde_json::json!({}),
        );
        assert_eq!(
            credentials(&t, Some(&mine)).unwrap().hash,
            token_hash("a-token-you-bring-0123456789abcdef")
        );
        for labels in [
            serde_json::json!({ MANAGED_BY.0: MANAGED_BY.1 }),
            serde_json::json!({ crate::config::COMPILED_CONFIG_LABEL: "true" }),
        ] {
            let managed = secret(
                serde_json::json!({ TOKEN_SECRET_ANNOTATION: "okta" }),
                labels,
            );
            assert_eq!(
                credentials(&t, Some(&managed)).unwrap_err().0,
                reason::TOKEN_SECRET_REFUSED
            );
        }
    }

    #[test]
    fn a_generated_token_counts_only_from_a_secret_its_scim_token_controls() {
        let mut t = byo("okta");
        t.spec.token_secret_ref = None;
        let value = generate_token();
        let mut s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "okta-scim-token", "annotations": {
                ISSUED_AT: "2030-01-01T00:00:00Z",
                PREVIOUS_HASH: token_hash("old"),
                PREVIOUS_UNTIL: "2030-01-01T01:00:00Z",
            } },
            "data": { "token": base64::engine::general_purpose::STANDARD.encode(&value) }
        }))
        .unwrap();
        assert!(credentials(&t, Some(&s)).is_err(), "no owner reference");
        s.metadata.owner_references = Some(vec![owner_reference(&t).unwrap()]);
        let issued = credentials(&t, Some(&s)).unwrap();
        assert_eq!(issued.hash, token_hash(&value));
        assert_eq!(
            issued.previous,
            Some((token_hash("old"), "2030-01-01T01:00:00Z".parse().unwrap()))
        );
        t.metadata.uid = Some("u2".into());
        assert!(credentials(&t, Some(&s)).is_err(), "another incarnation");
    }

    const NOW: &str = "2030-01-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn urls() -> Urls {
        Urls::new("https://sso.example.com", "ns", "okta")
    }

    /// A ScimToken of IdentityProvider `okta` with a generated token and `spec` merged in.
    fn generated(spec: serde_json::Value) -> ScimToken {
        let mut t = byo("okta");
        t.spec.token_secret_ref = None;
        let mut value = serde_json::to_value(&t.spec).unwrap();
        for (k, v) in spec.as_object().unwrap() {
            value[k] = v.clone();
        }
        t.spec = serde_json::from_value(value).unwrap();
        t
    }

    fn okta_idp(disabled: bool) -> IdentityProvider {
        let mut idp = IdentityProvider::new("okta", serde_json::from_str(r#"{"idp":{}}"#).unwrap());
        idp.metadata.namespace = Some("ns".into());
        idp.spec.disabled = disabled;
        idp
    }

    /// The Secret `okta-scim-token` controlled by `owner`, holding `contents` and `scim_base`.
    fn token_secret(owner: &ScimToken, contents: &TokenSecret, scim_base: Option<&str>) -> Secret {
        let mut s = token_secret_object(owner, "okta-scim-token", contents, &urls()).unwrap();
        let data = s.data.as_mut().unwrap();
        match scim_base {
            Some(url) => {
                data.insert("scimBaseUrl".into(), ByteString(url.as_bytes().to_vec()));
            }
            None => {
                data.remove("scimBaseUrl");
            }
        }
        s
    }

    fn contents(issued_at: &str, rotation_request: &str) -> TokenSecret {
        TokenSecret {
            value: generate_token(),
            issued_at: issued_at.parse().unwrap(),
            rotation_request: rotation_request.into(),
            previous: None,
        }
    }

    #[test]
    fn expired_says_until_when_the_token_works() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            expired_condition(None, now()),
            Desired::no(cond::EXPIRED, reason::NOT_EXPIRED, "No expiry set")
        );
        assert_eq!(
            expired_condition(Some(at("2030-02-01T00:00:00Z")), now()),
            Desired::no(
                cond::EXPIRED,
                reason::NOT_EXPIRED,
                "Works until 2030-02-01T00:00:00Z"
            )
        );
        for t in [NOW, "2029-01-01T00:00:00Z"] {
            assert_eq!(
                expired_condition(Some(at(t)), now()),
                Desired::yes(
                    cond::EXPIRED,
                    reason::EXPIRED,
                    format!("The token expired at {t} and no longer works")
                )
            );
        }
    }

    #[test]
    fn ready_says_what_to_fix_first_and_what_to_paste_when_all_is_well() {
        let t = generated(serde_json::json!({}));
        let (idp, disabled) = (okta_idp(false), okta_idp(true));
        let ready = |expired, problem, idp| {
            ready_condition(&t, expired, problem, idp, &urls(), "okta-scim-token")
        };
        let expired = ready(
            Some("2029-01-01T00:00:00Z".parse().unwrap()),
            Some((reason::TOKEN_INVALID, "ignored".to_owned())),
            Some(&idp),
        );
        assert_eq!(
            expired,
            Desired::no(
                cond::READY,
                reason::EXPIRED,
                "The token expired at 2029-01-01T00:00:00Z and no longer works: set a later spec.expiresAt, or remove it"
            )
        );
        let problem = ready(
            None,
            Some((reason::SECRET_CONFLICT, "the message".to_owned())),
            None,
        );
        assert_eq!(
            problem,
            Desired::no(cond::READY, reason::SECRET_CONFLICT, "the message")
        );
        assert_eq!(
            ready(None, None, None),
            Desired::no(
                cond::READY,
                reason::IDENTITY_PROVIDER_NOT_FOUND,
                "IdentityProvider okta does not exist in namespace ns: create it, or correct spec.identityProviderRef.name. The token starts working as soon as it exists"
            )
        );
        assert_eq!(
            ready(None, None, Some(&disabled)),
            Desired::no(
                cond::READY,
                reason::IDENTITY_PROVIDER_DISABLED,
                "IdentityProvider okta is disabled, so SCIM requests are refused: set its spec.disabled to false"
            )
        );
        assert_eq!(
            ready(None, None, Some(&idp)),
            Desired::yes(
                cond::READY,
                reason::READY,
                "Paste into the IdP: SCIM base URL https://sso.example.com/scim/v2/ns/okta (Okta: SCIM connector base URL; Entra: Tenant URL) and the token from Secret okta-scim-token key token (Okta: Authorization under Authentication Mode HTTP Header; Entra: Secret Token)"
            )
        );
    }

    #[test]
    fn status_reports_the_token_and_requeues_at_the_soonest_rotation_expiry_or_overlap_end() {
        let t = generated(serde_json::json!({
            "rotation": { "every": "24h", "overlap": "1h" },
            "expiresAt": "2030-01-03T00:00:00Z",
        }));
        let issued = Issued {
            hash: token_hash("current"),
            issued_at: Some("2030-01-01T11:00:00Z".parse().unwrap()),
            previous: Some((token_hash("old"), "2030-01-01T12:30:00Z".parse().unwrap())),
            secret_name: "okta-scim-token".into(),
        };
        let (status, requeue) = assess(
            &t,
            Ok(issued.clone()),
            Some(&okta_idp(false)),
            &urls(),
            now(),
        );
        assert_eq!(requeue, Some("2030-01-01T12:30:00Z".parse().unwrap()));
        assert_eq!(status.observed_generation, Some(0));
        assert_eq!(
            status.scim_base_url.as_deref(),
            Some(urls().scim_base.as_str())
        );
        assert_eq!(status.secret_name.as_deref(), Some("okta-scim-token"));
        assert_eq!(status.token_id, Some(token_id(&token_hash("current"))));
        assert_eq!(
            status.last_rotation_time,
            Some(Time("2030-01-01T11:00:00Z".parse().unwrap()))
        );
        // Rotation at 11:00 + 24h, plus the overlap: before spec.expiresAt.
        assert_eq!(
            status.expires_at,
            Some(Time("2030-01-02T12:00:00Z".parse().unwrap()))
        );
        assert_eq!(status.previous_token_id, Some(token_id(&token_hash("old"))));
        assert_eq!(
            status.previous_token_expires_at,
            Some(Time("2030-01-01T12:30:00Z".parse().unwrap()))
        );
        let types: Vec<_> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            types,
            [
                ("Expired", "False", "NotExpired"),
                ("Ready", "True", "Ready")
            ]
        );

        // Once the overlap is over, the previous token is not reported and the next rotation
        // is the soonest.
        let later: Timestamp = "2030-01-01T13:00:00Z".parse().unwrap();
        let (status, requeue) = assess(&t, Ok(issued), Some(&okta_idp(false)), &urls(), later);
        assert_eq!(requeue, Some("2030-01-02T11:00:00Z".parse().unwrap()));
        assert_eq!(status.previous_token_id, None);
        assert_eq!(status.previous_token_expires_at, None);
    }

    #[test]
    fn a_refused_secret_reports_no_token_and_waits_for_the_garbage_collector_briefly() {
        let t = generated(serde_json::json!({}));
        let (status, requeue) = assess(
            &t,
            Err((reason::SECRET_CONFLICT, "conflict".to_owned())),
            Some(&okta_idp(false)),
            &urls(),
            now(),
        );
        assert_eq!(requeue, None);
        assert_eq!(status.secret_name, None);
        assert_eq!(status.token_id, None);
        let ready = cond::find(&status.conditions, cond::READY).unwrap();
        assert_eq!(
            (ready.reason.as_str(), ready.message.as_str()),
            ("SecretConflict", "conflict")
        );
        let (_, requeue) = assess(
            &t,
            Err((reason::WAITING_FOR_GARBAGE_COLLECTION, "gc".to_owned())),
            None,
            &urls(),
            now(),
        );
        assert_eq!(
            requeue,
            Some(now() + super::super::identity_provider::GARBAGE_COLLECTION_RECHECK)
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_holds() {
        let mut t = generated(serde_json::json!({}));
        t.metadata.generation = Some(3);
        let (first, _) = assess(
            &t,
            Err((reason::TOKEN_INVALID, "x".into())),
            None,
            &urls(),
            now(),
        );
        t.status = Some(first.clone());
        let later = now() + SignedDuration::from_mins(5);
        let (second, _) = assess(
            &t,
            Err((reason::TOKEN_INVALID, "y".into())),
            None,
            &urls(),
            later,
        );
        assert_eq!(second.observed_generation, Some(3));
        for (a, b) in first.conditions.iter().zip(&second.conditions) {
            assert_eq!(a.last_transition_time, b.last_transition_time);
            assert_eq!(b.observed_generation, Some(3));
        }
        let (third, _) = assess(
            &t,
            Ok(contents(NOW, "").issued("s".into())),
            Some(&okta_idp(false)),
            &urls(),
            later,
        );
        let ready = cond::find(&third.conditions, cond::READY).unwrap();
        assert_eq!(ready.last_transition_time, Time(later));
    }

    #[test]
    fn events_follow_changes_of_ready_status_or_reason() {
        let t = generated(serde_json::json!({}));
        let (not_found, _) = assess(
            &t,
            Ok(contents(NOW, "").issued("s".into())),
            None,
            &urls(),
            now(),
        );
        let (ready, _) = assess(
            &t,
            Ok(contents(NOW, "").issued("s".into())),
            Some(&okta_idp(false)),
            &urls(),
            now(),
        );
        let (disabled, _) = assess(
            &t,
            Ok(contents(NOW, "").issued("s".into())),
            Some(&okta_idp(true)),
            &urls(),
            now(),
        );
        let r = |s: &ScimTokenStatus| cond::find(&s.conditions, cond::READY).unwrap().clone();
        assert_eq!(ready_event(&[], &r(&ready)), Some(EventType::Normal));
        assert_eq!(ready_event(&[], &r(&not_found)), Some(EventType::Warning));
        assert_eq!(ready_event(&ready.conditions, &r(&ready)), None);
        assert_eq!(ready_event(&not_found.conditions, &r(&not_found)), None);
        assert_eq!(
            ready_event(&not_found.conditions, &r(&disabled)),
            Some(EventType::Warning)
        );
        assert_eq!(
            ready_event(&disabled.conditions, &r(&ready)),
            Some(EventType::Normal)
        );
    }

    #[test]
    fn a_first_token_is_issued_into_a_missing_secret() {
        let mut t = generated(serde_json::json!({}));
        t.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "1".to_owned())].into());
        assert_eq!(
            plan_secret(&t, None, "okta-scim-token", &urls(), now()),
            SecretPlan::Issue {
                rotation_request: "1".into(),
                previous: None,
                event: "Issued a token into Secret okta-scim-token".into(),
            }
        );
    }

    #[test]
    fn a_secret_of_someone_else_or_of_a_deleted_namesake_is_left_alone() {
        let t = generated(serde_json::json!({}));
        let mut deleted = t.clone();
        deleted.metadata.uid = Some("old".into());
        let old = token_secret(&deleted, &contents(NOW, ""), None);
        assert_eq!(
            plan_secret(&t, Some(&old), "okta-scim-token", &urls(), now()),
            SecretPlan::Refuse((
                reason::WAITING_FOR_GARBAGE_COLLECTION,
                "Secret okta-scim-token holds the token of the deleted ScimToken okta this one replaces; a new token is issued as soon as Kubernetes' garbage collector removes it (the deleted one's token never works again). If it stays, delete it: kubectl delete secret okta-scim-token -n ns".into()
            ))
        );
        let mut foreign = old;
        foreign.metadata.labels = None;
        assert_eq!(
            plan_secret(&t, Some(&foreign), "okta-scim-token", &urls(), now()),
            SecretPlan::Refuse((
                reason::SECRET_CONFLICT,
                "Secret okta-scim-token already exists and is not managed by this ScimToken: delete it, or set spec.secretName to another name".into()
            ))
        );
    }

    #[test]
    fn the_current_token_is_kept_and_its_secret_rewritten_only_for_a_new_scim_base_url() {
        let t = generated(serde_json::json!({ "rotation": { "every": "24h" } }));
        let mut current = contents("2030-01-01T00:00:00Z", "");
        current.previous = Some((token_hash("old"), "2030-01-01T01:00:00Z".parse().unwrap()));
        for (url, rewrite) in [
            (Some(urls().scim_base), false),
            (
                Some("https://old.example.com/scim/v2/ns/okta".to_owned()),
                true,
            ),
            (None, true),
        ] {
            let s = token_secret(&t, &current, url.as_deref());
            assert_eq!(
                plan_secret(&t, Some(&s), "okta-scim-token", &urls(), now()),
                SecretPlan::Keep {
                    secret: current.clone(),
                    rewrite
                }
            );
        }
    }

    #[test]
    fn a_scheduled_or_requested_rotation_issues_a_new_token_with_an_overlap() {
        let rotating =
            generated(serde_json::json!({ "rotation": { "every": "12h", "overlap": "30m" } }));
        let current = contents("2030-01-01T00:00:00Z", "");
        let s = token_secret(&rotating, &current, Some(&urls().scim_base));
        let rotated = SecretPlan::Issue {
            rotation_request: "".into(),
            previous: Some((token_hash(&current.value), "2030-01-01T12:30:00Z".parse().unwrap())),
            event: "Issued a new token into Secret okta-scim-token; the previous one keeps working until 2030-01-01T12:30:00Z".into(),
        };
        assert_eq!(
            plan_secret(&rotating, Some(&s), "okta-scim-token", &urls(), now()),
            rotated
        );

        let mut requested = generated(serde_json::json!({}));
        requested.metadata.annotations =
            Some([(ROTATE_ANNOTATION.to_owned(), "2".to_owned())].into());
        let honoured = contents("2030-01-01T00:00:00Z", "1");
        let s = token_secret(&requested, &honoured, Some(&urls().scim_base));
        assert_eq!(
            plan_secret(&requested, Some(&s), "okta-scim-token", &urls(), now()),
            SecretPlan::Issue {
                rotation_request: "2".into(),
                previous: Some((token_hash(&honoured.value), "2030-01-01T13:00:00Z".parse().unwrap())),
                event: "Issued a new token into Secret okta-scim-token; the previous one keeps working until 2030-01-01T13:00:00Z".into(),
            }
        );
        // The same request again changes nothing.
        let s = token_secret(&requested, &contents(NOW, "2"), Some(&urls().scim_base));
        assert!(matches!(
            plan_secret(&requested, Some(&s), "okta-scim-token", &urls(), now()),
            SecretPlan::Keep { rewrite: false, .. }
        ));
    }

    #[test]
    fn an_expired_token_is_never_replaced_nor_first_issued() {
        let mut t = generated(serde_json::json!({
            "rotation": { "every": "1h" },
            "expiresAt": "2030-01-01T06:00:00Z",
        }));
        t.metadata.annotations = Some([(ROTATE_ANNOTATION.to_owned(), "again".to_owned())].into());
        assert_eq!(
            plan_secret(&t, None, "okta-scim-token", &urls(), now()),
            SecretPlan::Refuse((
                reason::EXPIRED,
                "The token expired before it was issued".into()
            ))
        );
        let current = contents("2030-01-01T00:00:00Z", "");
        let s = token_secret(&t, &current, Some(&urls().scim_base));
        assert_eq!(
            plan_secret(&t, Some(&s), "okta-scim-token", &urls(), now()),
            SecretPlan::Keep {
                secret: current,
                rewrite: false
            }
        );
    }

    #[test]
    fn a_token_secret_holds_the_token_the_url_and_what_rotation_needs() {
        let t = generated(serde_json::json!({}));
        let mut c = contents("2030-01-01T00:00:00Z", "7");
        c.previous = Some((token_hash("old"), "2030-01-01T01:00:00Z".parse().unwrap()));
        let s = token_secret_object(&t, "okta-scim-token", &c, &urls()).unwrap();
        let annotations = s.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[ISSUED_AT], "2030-01-01T00:00:00Z");
        assert_eq!(annotations[ROTATION_REQUEST], "7");
        assert_eq!(annotations[PREVIOUS_HASH], token_hash("old"));
        assert_eq!(annotations[PREVIOUS_UNTIL], "2030-01-01T01:00:00Z");
        let data = s.data.clone().unwrap();
        assert_eq!(data["token"].0, c.value.as_bytes());
        assert_eq!(data["scimBaseUrl"].0, urls().scim_base.as_bytes());
        assert!(is_controlled_by(&s.metadata, "u1"));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[MANAGED_BY.0],
            MANAGED_BY.1
        );
        // What is written is what is read back.
        assert_eq!(
            credentials(&t, Some(&s)).unwrap(),
            c.issued("okta-scim-token".into())
        );
    }
}
