//! Reconciles an OidcClient: issues its client secret into a Secret with the client ID and the
//! issuer URL, rotates the secret with an overlap, and reports status. The server only ever
//! sees the secret's SHA-256, through the IdentityProvider's compiled configuration (see
//! [`compile`]).
//!
//! Which secrets work is decided from the OidcClient's spec and the Secret it owns (see
//! [`issued_secret`]); status is a report rebuilt from them, never read back.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::issued_secret::{self, Issued, Policy, Refusal, RefusalReasons, SecretPlan};
use super::scim_token::rotation_schedule;
use super::{Context, Error, names};
use crate::api::conditions::{self as cond, Desired, reason};
use crate::api::oidc_client::GrantType as ApiGrantType;
use crate::api::{IdentityProvider, OidcClient, OidcClientStatus};
use crate::config::Urls;
use crate::config::oidc::{CompiledClientSecret, CompiledOidcClient, GrantType};
#[cfg(test)]
use crate::config::token_hash;

const KIND: &str = "OidcClient";
/// Key of the client secret in the OidcClient's Secret.
pub const CLIENT_SECRET_KEY: &str = "clientSecret";

/// The Secret an OidcClient writes its credentials to: `spec.secretName`, or
/// `{name}-oidc-client` (shortened with a hash for names too long for that).
pub fn secret_name(client: &OidcClient) -> String {
    client
        .spec
        .secret_name
        .clone()
        .unwrap_or_else(|| names::generated_name(&client.name_any(), "-oidc-client"))
}

/// Reconcile entry point. A deleted OidcClient's Secret goes with it (owner reference); its
/// IdentityProvider recompiles without it.
pub async fn reconcile(client: Arc<OidcClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.reconcile_owner(KIND, client.as_ref(), apply(&client, &ctx))
        .await
}

/// Retries failed reconciliations with exponential backoff.
pub fn error_policy(client: Arc<OidcClient>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(KIND, client.as_ref(), error)
}

/// How an OidcClient's secret is issued, rotated and written, with the issuer of `urls`.
fn policy(client: &OidcClient, urls: &Urls) -> Policy {
    let (every, overlap) = rotation_schedule(client.spec.rotation.as_ref());
    Policy {
        noun: "client secret",
        prefix: "",
        value_key: CLIENT_SECRET_KEY,
        component: "oidc-client",
        every,
        overlap,
        expiry: None,
        plain: vec![
            ("clientId", client.client_id()),
            ("issuerUrl", urls.oidc_issuer.clone()),
        ],
        reasons: RefusalReasons {
            conflict: reason::SECRET_CONFLICT,
            garbage_collection: reason::WAITING_FOR_GARBAGE_COLLECTION,
        },
    }
}

/// The client secrets `secret` holds for `client` (a confidential client), trusting only a
/// Secret this very OidcClient controls. None until one has been issued.
pub fn credentials(client: &OidcClient, secret: Option<&Secret>) -> Option<Issued> {
    let policy = policy(client, &Urls::new("", "", ""));
    issued_secret::read_generated(&policy, client, secret, &secret_name(client))
}

/// What to do with the Secret of `client`.
#[derive(Debug, PartialEq, Eq)]
enum ClientSecretPlan {
    /// A confidential client's secret: see [`issued_secret::plan`].
    Confidential(SecretPlan),
    /// A public client has no secret: write the client ID and issuer URL when `rewrite`.
    Public { rewrite: bool },
}

/// Decides what happens to `existing`, the Secret named `name` of `client`.
fn plan_secret(
    client: &OidcClient,
    existing: Option<&Secret>,
    name: &str,
    urls: &Urls,
    now: Timestamp,
) -> Result<ClientSecretPlan, Refusal> {
    let policy = policy(client, urls);
    if !client.spec.public {
        return Ok(ClientSecretPlan::Confidential(issued_secret::plan(
            &policy, client, existing, name, now,
        )));
    }
    if let Some(refusal) = existing.and_then(|s| issued_secret::foreign(&policy, client, s, name)) {
        return Err(refusal);
    }
    let has_secret = existing
        .and_then(|s| s.data.as_ref())
        .is_some_and(|d| d.contains_key(CLIENT_SECRET_KEY));
    Ok(ClientSecretPlan::Public {
        rewrite: has_secret || issued_secret::is_stale(existing, &policy.plain),
    })
}

/// Issues, rotates or keeps the client secret and writes the Secret. A public client's
/// outcome is `Ok(None)`.
async fn issue(
    client: &OidcClient,
    ctx: &Context,
    ns: &str,
    urls: &Urls,
    now: Timestamp,
) -> Result<Result<Option<Issued>, Refusal>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = secret_name(client);
    client.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let existing = api.get_opt(&name).await?;
    let policy = policy(client, urls);
    match plan_secret(client, existing.as_ref(), &name, urls, now) {
        Err(refusal) => Ok(Err(refusal)),
        Ok(ClientSecretPlan::Public { rewrite }) => {
            if rewrite {
                let secret = issued_secret::secret_object(&policy, client, &name, None)?;
                issued_secret::write(&api, secret).await?;
            }
            Ok(Ok(None))
        }
        Ok(ClientSecretPlan::Confidential(plan)) => Ok(issued_secret::carry_out(
            ctx,
            &policy,
            client,
            &name,
            plan,
            "ClientSecretIssued",
            now,
        )
        .await?
        .map(Some)),
    }
}

async fn apply(client: &OidcClient, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    let (ns, urls, idp) = ctx.identity_provider_of(client).await?;
    let conflict = client_id_holder(client, &ctx.oidc_clients.state()).map(|c| c.name_any());
    let issued = issue(client, ctx, &ns, &urls, now).await?;
    let facts = Facts {
        idp: idp.as_ref(),
        conflict,
        urls: &urls,
        now,
    };
    let (status, requeue_at) = assess(client, issued, &facts);
    let previous = client
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.conditions[..]);
    issued_secret::write_status(ctx, KIND, client, previous, &status.conditions, &status).await?;
    Ok(super::requeue_until(requeue_at))
}

/// The OidcClient among `others` that holds `client`'s client ID: another live OidcClient of
/// the same IdentityProvider with that client ID, created before it (the older one wins; the
/// name decides a tie).
pub fn client_id_holder<'a>(
    client: &OidcClient,
    others: &'a [Arc<OidcClient>],
) -> Option<&'a OidcClient> {
    let age = |c: &OidcClient| (c.creation_timestamp().map(|t| t.0), c.name_any());
    let id = client.client_id();
    others
        .iter()
        .filter(|o| {
            o.namespace() == client.namespace()
                && o.spec.identity_provider_ref == client.spec.identity_provider_ref
                && o.uid() != client.uid()
                && o.meta().deletion_timestamp.is_none()
                && o.client_id() == id
                && age(o) < age(client)
        })
        .min_by_key(|o| age(o))
        .map(Arc::as_ref)
}

/// What an OidcClient's status depends on besides itself and its Secret.
struct Facts<'a> {
    /// Its IdentityProvider, none when missing or being deleted.
    idp: Option<&'a IdentityProvider>,
    /// The older OidcClient holding its client ID, if any.
    conflict: Option<String>,
    urls: &'a Urls,
    now: Timestamp,
}

/// The status of `client` given its secret (`issued`: none for a public client, or why it has
/// none) and `facts`, and when to reconcile again: the next rotation or end of overlap.
fn assess(
    client: &OidcClient,
    issued: Result<Option<Issued>, Refusal>,
    facts: &Facts<'_>,
) -> (OidcClientStatus, Option<Timestamp>) {
    let generation = client.metadata.generation.unwrap_or(0);
    let issuer = &facts.urls.oidc_issuer;
    let mut status = OidcClientStatus {
        observed_generation: Some(generation),
        client_id: Some(client.client_id()),
        issuer_url: Some(issuer.clone()),
        discovery_url: Some(format!("{issuer}/.well-known/openid-configuration")),
        ..Default::default()
    };
    let (every, _) = rotation_schedule(client.spec.rotation.as_ref());
    let (problem, requeue_at) = match issued {
        Ok(issued) => {
            status.secret_name = Some(secret_name(client));
            let requeue = issued.and_then(|i| {
                status.last_rotation_time = i.issued_at.map(Time);
                status.previous_secret_expires_at = i
                    .previous
                    .as_ref()
                    .map(|(_, until)| *until)
                    .filter(|until| *until > facts.now)
                    .map(Time);
                issued_secret::next_change(&i, every, facts.now)
            });
            (None, requeue)
        }
        Err(p) => {
            let recheck = (p.0 == reason::WAITING_FOR_GARBAGE_COLLECTION)
                .then(|| facts.now + super::identity_provider::GARBAGE_COLLECTION_RECHECK);
            (Some(p), recheck)
        }
    };
    let ready = ready_condition(client, problem, facts);
    let previous = client
        .status
        .as_ref()
        .map_or(&[][..], |s| &s.conditions[..]);
    status.conditions = cond::merge(previous, &[ready], generation, facts.now);
    (status, requeue_at)
}

/// The Ready condition: false when the Secret yields no client secret (`problem`), when the
/// IdentityProvider is missing or disabled, or when an older OidcClient has the client ID;
/// otherwise true, saying what to configure the relying party with.
fn ready_condition(client: &OidcClient, problem: Option<Refusal>, facts: &Facts<'_>) -> Desired {
    let idp_name = &client.spec.identity_provider_ref.name;
    let id = client.client_id();
    if let Some((r, message)) = problem {
        return Desired::no(cond::READY, r, message);
    }
    match (facts.idp, &facts.conflict) {
        (None, _) => Desired::no(
            cond::READY,
            reason::IDENTITY_PROVIDER_NOT_FOUND,
            format!(
                "IdentityProvider {idp_name} does not exist in namespace {}: create it, or correct spec.identityProviderRef.name. The client works as soon as it exists",
                client.namespace().unwrap_or_default()
            ),
        ),
        (Some(i), _) if i.spec.disabled => Desired::no(
            cond::READY,
            reason::IDENTITY_PROVIDER_DISABLED,
            format!(
                "IdentityProvider {idp_name} is disabled, so nobody can sign in to this client: set its spec.disabled to false"
            ),
        ),
        (Some(_), Some(holder)) => Desired::no(
            cond::READY,
            reason::CLIENT_ID_CONFLICT,
            format!(
                "OidcClient {holder}, created earlier, already has client ID {id} at IdentityProvider {idp_name}: set spec.clientId to another value (a new OidcClient, as it cannot be changed), or delete one of the two"
            ),
        ),
        (Some(_), None) => {
            let secret = secret_name(client);
            let credential = if client.spec.public {
                "no client secret (a public client: use PKCE with S256)".to_owned()
            } else {
                format!("the client secret from Secret {secret} key {CLIENT_SECRET_KEY}")
            };
            Desired::yes(
                cond::READY,
                reason::ISSUED,
                format!(
                    "Configure the application with issuer URL {}, client ID {id} and {credential}",
                    facts.urls.oidc_issuer
                ),
            )
        }
    }
}

/// The relying party `client` compiles to, with the client secrets `issued` establishes that
/// still work at `now`. None for a confidential client without a secret yet.
pub fn compile(
    client: &OidcClient,
    issued: Option<&Issued>,
    now: Timestamp,
) -> Option<CompiledOidcClient> {
    let secrets = if client.spec.public {
        Vec::new()
    } else {
        let issued = issued?;
        let current = CompiledClientSecret {
            secret_id: issued_secret::credential_id(&issued.hash),
            sha256: issued.hash.clone(),
            not_after: None,
        };
        let previous = issued
            .previous
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(hash, until)| CompiledClientSecret {
                secret_id: issued_secret::credential_id(hash),
                sha256: hash.clone(),
                not_after: Some(*until),
            });
        std::iter::once(current).chain(previous).collect()
    };
    let spec = &client.spec;
    let mut scopes = spec.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let lifetimes = &spec.token_lifetimes;
    let bounded =
        |d: jiff::SignedDuration, longest| d.clamp(crate::config::oidc::SHORTEST_TOKEN, longest);
    Some(CompiledOidcClient {
        name: client.name_any(),
        uid: client.uid().unwrap_or_default(),
        client_id: client.client_id(),
        public: spec.public,
        secrets,
        redirect_uris: spec.redirect_uris.clone(),
        post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
        grant_types: spec
            .grant_types
            .iter()
            .map(|g| match g {
                ApiGrantType::AuthorizationCode => GrantType::AuthorizationCode,
                ApiGrantType::RefreshToken => GrantType::RefreshToken,
                ApiGrantType::DeviceCode => GrantType::DeviceCode,
            })
            .collect(),
        scopes,
        groups_claim: spec.groups_claim.clone(),
        required_groups: spec.required_groups.clone(),
        id_token_lifetime: bounded(lifetimes.id_token.get(), crate::config::oidc::LONGEST_TOKEN),
        access_token_lifetime: bounded(
            lifetimes.access_token.get(),
            crate::config::oidc::LONGEST_TOKEN,
        ),
        refresh_token_lifetime: bounded(
            lifetimes.refresh_token.get(),
            crate::config::oidc::LONGEST_REFRESH,
        ),
    })
}

/// Whether `compiled` accepts client secret `secret`.
#[cfg(test)]
fn accepts(compiled: &CompiledOidcClient, secret: &str) -> bool {
    compiled
        .secrets
        .iter()
        .any(|s| s.sha256 == token_hash(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::owner_reference;
    use k8s_openapi::ByteString;

    const NOW: &str = "2030-01-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn urls() -> Urls {
        Urls::new("https://sso.example.com", "ns", "okta")
    }

    fn client(name: &str, uid: &str, created: &str, spec: serde_json::Value) -> OidcClient {
        let mut value = serde_json::json!({
            "identityProviderRef": { "name": "okta" },
            "redirectUris": ["https://argocd.example.com/auth/callback"],
        });
        for (k, v) in spec.as_object().unwrap() {
            value[k] = v.clone();
        }
        let mut c = OidcClient::new(name, serde_json::from_value(value).unwrap());
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some(uid.into());
        c.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        c
    }

    /// The Secret `argocd-oidc-client` of `c`, holding client secret `value` issued at `at`.
    fn issued_into(c: &OidcClient, value: &str, at: Timestamp) -> Secret {
        let contents = issued_secret::SecretContents {
            value: value.to_owned(),
            issued_at: at,
            rotation_request: String::new(),
            previous: None,
        };
        issued_secret::secret_object(
            &policy(c, &urls()),
            c,
            "argocd-oidc-client",
            Some(&contents),
        )
        .unwrap()
    }

    fn argocd() -> OidcClient {
        client(
            "argocd",
            "u1",
            "2030-01-01T00:00:00Z",
            serde_json::json!({}),
        )
    }

    fn idp(disabled: bool) -> IdentityProvider {
        let mut idp = IdentityProvider::new("okta", serde_json::from_str(r#"{"idp":{}}"#).unwrap());
        idp.metadata.namespace = Some("ns".into());
        idp.spec.disabled = disabled;
        idp
    }

    fn facts<'a>(idp: Option<&'a IdentityProvider>, urls: &'a Urls) -> Facts<'a> {
        Facts {
            idp,
            conflict: None,
            urls,
            now: now(),
        }
    }

    #[test]
    fn the_defaults_follow_the_design() {
        let c = argocd();
        assert_eq!(c.client_id(), "argocd");
        assert!(!c.spec.public);
        assert_eq!(
            c.spec.grant_types,
            [ApiGrantType::AuthorizationCode, ApiGrantType::RefreshToken]
        );
        assert_eq!(
            c.spec.scopes,
            ["openid", "email", "profile", "groups", "offline_access"]
        );
        assert_eq!(c.spec.groups_claim, "groups");
        assert_eq!(c.spec.token_lifetimes.refresh_token.as_str(), "720h");
        assert_eq!(secret_name(&c), "argocd-oidc-client");
    }

    #[test]
    fn a_confidential_client_gets_a_256_bit_url_safe_secret_with_its_id_and_issuer() {
        let c = argocd();
        let plan = plan_secret(&c, None, "argocd-oidc-client", &urls(), now()).unwrap();
        assert_eq!(
            plan,
            ClientSecretPlan::Confidential(SecretPlan::Issue {
                rotation_request: String::new(),
                previous: None,
                event: "Issued a client secret into Secret argocd-oidc-client".into(),
            })
        );
        let value = issued_secret::generate("");
        assert_eq!(value.len(), 43);
        assert!(issued_secret::is_generated("", &value));
        let s = issued_into(&c, &value, now());
        let data = s.data.clone().unwrap();
        assert_eq!(data["clientId"].0, b"argocd");
        assert_eq!(data["clientSecret"].0, value.as_bytes());
        assert_eq!(data["issuerUrl"].0, b"https://sso.example.com/oidc/ns/okta");
        // What is written is what is read back, and it compiles to the secret's hash.
        let issued = credentials(&c, Some(&s)).unwrap();
        let compiled = compile(&c, Some(&issued), now()).unwrap();
        assert!(accepts(&compiled, &value));
        assert_eq!(compiled.secrets.len(), 1);
        // Kept as it is on the next reconciliation.
        assert!(matches!(
            plan_secret(&c, Some(&s), "argocd-oidc-client", &urls(), now()).unwrap(),
            ClientSecretPlan::Confidential(SecretPlan::Keep { rewrite: false, .. })
        ));
    }

    #[test]
    fn a_rotation_keeps_the_previous_secret_for_the_overlap() {
        let mut c = client(
            "argocd",
            "u1",
            "2030-01-01T00:00:00Z",
            serde_json::json!({ "rotation": { "overlap": "2h" } }),
        );
        let old = issued_secret::generate("");
        let s = issued_into(&c, &old, "2030-01-01T00:00:00Z".parse().unwrap());
        c.metadata.annotations =
            Some([(issued_secret::ROTATE_ANNOTATION.to_owned(), "1".to_owned())].into());
        let until: Timestamp = "2030-01-01T14:00:00Z".parse().unwrap();
        assert_eq!(
            plan_secret(&c, Some(&s), "argocd-oidc-client", &urls(), now()).unwrap(),
            ClientSecretPlan::Confidential(SecretPlan::Issue {
                rotation_request: "1".into(),
                previous: Some((token_hash(&old), until)),
                event: format!(
                    "Issued a new client secret into Secret argocd-oidc-client; the previous one keeps working until {until}"
                ),
            })
        );
        let issued = Issued {
            hash: token_hash("new"),
            issued_at: Some(now()),
            previous: Some((token_hash(&old), until)),
            secret_name: "argocd-oidc-client".into(),
        };
        let compiled = compile(&c, Some(&issued), now()).unwrap();
        assert!(accepts(&compiled, "new") && accepts(&compiled, &old));
        assert_eq!(compiled.secrets[1].not_after, Some(until));
        // After the overlap only the new one works.
        let later = compile(&c, Some(&issued), until).unwrap();
        assert!(!accepts(&later, &old));
        let (status, requeue) = assess(&c, Ok(Some(issued)), &facts(Some(&idp(false)), &urls()));
        assert_eq!(requeue, Some(until));
        assert_eq!(status.previous_secret_expires_at, Some(Time(until)));
        assert_eq!(status.last_rotation_time, Some(Time(now())));
    }

    #[test]
    fn a_public_client_has_no_secret_and_drops_one_left_from_before() {
        let c = client(
            "kubectl",
            "u2",
            "2030-01-01T00:00:00Z",
            serde_json::json!({ "public": true }),
        );
        let p = policy(&c, &urls());
        assert_eq!(
            plan_secret(&c, None, "kubectl-oidc-client", &urls(), now()),
            Ok(ClientSecretPlan::Public { rewrite: true })
        );
        let mut s = issued_secret::secret_object(&p, &c, "kubectl-oidc-client", None).unwrap();
        assert!(!s.data.as_ref().unwrap().contains_key(CLIENT_SECRET_KEY));
        assert_eq!(
            plan_secret(&c, Some(&s), "kubectl-oidc-client", &urls(), now()),
            Ok(ClientSecretPlan::Public { rewrite: false })
        );
        s.data
            .as_mut()
            .unwrap()
            .insert(CLIENT_SECRET_KEY.into(), ByteString(b"left".to_vec()));
        assert_eq!(
            plan_secret(&c, Some(&s), "kubectl-oidc-client", &urls(), now()),
            Ok(ClientSecretPlan::Public { rewrite: true })
        );
        let compiled = compile(&c, None, now()).unwrap();
        assert!(compiled.public && compiled.secrets.is_empty());
        let (status, requeue) = assess(&c, Ok(None), &facts(Some(&idp(false)), &urls()));
        assert_eq!(requeue, None);
        let ready = cond::find(&status.conditions, cond::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Issued")
        );
        assert!(ready.message.contains("PKCE"), "{}", ready.message);
    }

    #[test]
    fn a_secret_of_someone_else_is_never_taken_over() {
        let c = argocd();
        let mut other = argocd();
        other.metadata.uid = Some("old".into());
        let mut s = issued_secret::secret_object(
            &policy(&other, &urls()),
            &other,
            "argocd-oidc-client",
            None,
        )
        .unwrap();
        let plan = plan_secret(&c, Some(&s), "argocd-oidc-client", &urls(), now()).unwrap();
        assert!(matches!(
            plan,
            ClientSecretPlan::Confidential(SecretPlan::Refuse((r, _))) if r == reason::WAITING_FOR_GARBAGE_COLLECTION
        ));
        s.metadata.labels = None;
        let plan = plan_secret(&c, Some(&s), "argocd-oidc-client", &urls(), now()).unwrap();
        assert!(matches!(
            plan,
            ClientSecretPlan::Confidential(SecretPlan::Refuse((r, _))) if r == reason::SECRET_CONFLICT
        ));
        // Nor read: its secret never counts for this client.
        s.metadata.owner_references = Some(vec![owner_reference(&other).unwrap()]);
        assert_eq!(credentials(&c, Some(&s)), None);
    }

    #[test]
    fn the_older_client_keeps_a_client_id() {
        let first = argocd();
        let second = client(
            "argocd-2",
            "u3",
            "2030-01-01T01:00:00Z",
            serde_json::json!({ "clientId": "argocd" }),
        );
        let elsewhere = {
            let mut c = second.clone();
            c.spec.identity_provider_ref.name = "entra".into();
            c.metadata.uid = Some("u4".into());
            c
        };
        let all = [first.clone(), second.clone(), elsewhere.clone()].map(Arc::new);
        assert!(client_id_holder(&first, &all).is_none());
        assert_eq!(
            client_id_holder(&second, &all).map(|c| c.name_any()),
            Some("argocd".into())
        );
        assert!(client_id_holder(&elsewhere, &all).is_none());
        let (enabled, u) = (idp(false), urls());
        let mut f = facts(Some(&enabled), &u);
        f.conflict = Some("argocd".into());
        let ready = ready_condition(&second, None, &f);
        assert_eq!(ready.reason, reason::CLIENT_ID_CONFLICT);
        assert!(!ready.status);
    }

    #[test]
    fn ready_says_what_to_fix_and_what_to_configure() {
        let c = argocd();
        let u = urls();
        let (enabled, disabled) = (idp(false), idp(true));
        let ready = |idp| ready_condition(&c, None, &facts(idp, &u));
        assert_eq!(ready(None).reason, reason::IDENTITY_PROVIDER_NOT_FOUND);
        assert_eq!(
            ready(Some(&disabled)).reason,
            reason::IDENTITY_PROVIDER_DISABLED
        );
        assert_eq!(
            ready(Some(&enabled)),
            Desired::yes(
                cond::READY,
                reason::ISSUED,
                "Configure the application with issuer URL https://sso.example.com/oidc/ns/okta, client ID argocd and the client secret from Secret argocd-oidc-client key clientSecret"
            )
        );
        let refused = ready_condition(
            &c,
            Some((reason::SECRET_CONFLICT, "taken".into())),
            &facts(Some(&idp(false)), &u),
        );
        assert_eq!(
            refused,
            Desired::no(cond::READY, reason::SECRET_CONFLICT, "taken")
        );
        let (status, _) = assess(&c, Ok(None), &facts(None, &u));
        assert_eq!(
            status.discovery_url.as_deref(),
            Some("https://sso.example.com/oidc/ns/okta/.well-known/openid-configuration")
        );
    }
}
