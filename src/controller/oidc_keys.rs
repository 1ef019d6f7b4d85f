//! The signing keys of an IdentityProvider's OpenID Provider, kept in a Secret of the
//! configuration namespace (`oidc-keys-NAMESPACE.NAME`, JSON under `keys.json`): created once
//! an OidcClient references the IdentityProvider, rotated by [`SigningKeys::rotate`], removed
//! when no OidcClient is left or the IdentityProvider is deleted. Tenants never share keys,
//! and keys written for a deleted IdentityProvider of the same name (another UID) are
//! discarded, never trusted.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::{Context, Error, issued_secret, publish_event};
use crate::api::IdentityProvider;
use crate::api::identity_provider::{OidcSettings, SigningAlgorithm as ApiAlgorithm};
use crate::config::{self, oidc::LONGEST_TOKEN};
use crate::oidc::keys::{SigningAlgorithm, SigningKeys};
use crate::tenant::Tenant;

use standin::{KeyError, Rotate as _, RotationPolicy};

/// Key of the Secret's `data` holding the JSON [`SigningKeys`].
pub const KEYS_KEY: &str = "keys.json";
/// Annotation naming the UID of the IdentityProvider the keys belong to.
pub const UID_ANNOTATION: &str = "sso-operator.dev/identity-provider-uid";
/// How long a new key is published before it signs: longer than the JWKS document's
/// `max-age` (5 minutes), so relying parties know it before they meet it.
pub const PUBLISH_LEAD: SignedDuration = SignedDuration::from_mins(10);

/// The name of IdentityProvider `namespace/name`'s signing-key Secret.
pub fn secret_name(namespace: &str, name: &str) -> String {
    config::tenant_secret_name("oidc-keys-", namespace, name)
}

/// The rotation policy of `settings` (an IdentityProvider's `spec.oidc`).
pub fn rotation_policy(settings: &OidcSettings) -> RotationPolicy {
    RotationPolicy {
        algorithm: match settings.signing_algorithm {
            ApiAlgorithm::RS256 => SigningAlgorithm::RS256,
            ApiAlgorithm::ES256 => SigningAlgorithm::ES256,
        },
        every: settings.key_rotation.get(),
        publish_lead: PUBLISH_LEAD,
        keep_after_superseded: LONGEST_TOKEN,
    }
}

/// The keys `secret` holds for the IdentityProvider with `uid`: none from a Secret written
/// for another UID (a deleted namesake), or one that does not parse.
pub fn stored_keys(secret: Option<&Secret>, uid: &str) -> SigningKeys {
    secret
        .filter(|s| {
            !uid.is_empty() && s.annotations().get(UID_ANNOTATION).map(String::as_str) == Some(uid)
        })
        .and_then(|s| s.data.as_ref()?.get(KEYS_KEY))
        .and_then(|v| serde_json::from_slice(&v.0).ok())
        .unwrap_or_default()
}

/// When `keys` change next after `now` under `policy`: the next rotation, a superseded key's
/// removal, or the newest key starting to sign.
pub fn next_change(
    keys: &SigningKeys,
    policy: &RotationPolicy,
    now: Timestamp,
) -> Option<Timestamp> {
    let rotation = keys
        .keys
        .first()
        .and_then(|k| k.created.checked_add(policy.every).ok());
    let removal = keys
        .keys
        .iter()
        .filter_map(|k| k.superseded?.checked_add(policy.keep_after_superseded).ok());
    let signing = keys.keys.first().map(|k| k.signs_from);
    rotation
        .into_iter()
        .chain(removal)
        .chain(signing)
        .filter(|t| *t > now)
        .min()
}

/// The Secret holding `keys` for `idp`.
fn secret_object(idp: &IdentityProvider, name: &str, keys: &SigningKeys) -> Result<Secret, Error> {
    let tenant = Tenant::new(idp.namespace().unwrap_or_default(), idp.name_any());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(super::identity_provider::labels(
                &idp.name_any(),
                "oidc-signing-keys",
            )),
            annotations: Some(BTreeMap::from([
                (config::SOURCE_ANNOTATION.to_owned(), tenant.to_string()),
                (
                    UID_ANNOTATION.to_owned(),
                    idp.meta().uid.clone().unwrap_or_default(),
                ),
            ])),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            KEYS_KEY.to_owned(),
            ByteString(serde_json::to_vec(keys)?),
        )])),
        ..Default::default()
    })
}

/// Loads, creates or rotates `idp`'s signing keys and writes them back when they changed;
/// returns them and when they change next.
pub async fn ensure(
    ctx: &Context,
    idp: &IdentityProvider,
    now: Timestamp,
) -> Result<(SigningKeys, Option<Timestamp>), Error> {
    let ns = idp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let uid = idp.uid().ok_or(Error::MissingObjectKey("uid"))?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    let name = secret_name(&ns, &idp.name_any());
    let stored = stored_keys(api.get_opt(&name).await?.as_ref(), &uid);
    let policy = rotation_policy(&idp.spec.oidc);
    // Key generation is CPU-bound: one per CPU at a time, off the async threads.
    let _permit = super::sp_keys::generation_permit().await;
    let task_policy = policy.clone();
    let (keys, changed) =
        tokio::task::spawn_blocking(move || stored.rotate(now, &task_policy)).await??;
    if changed {
        issued_secret::write(&api, secret_object(idp, &name, &keys)?).await?;
        let kid = keys.keys.first().map_or("", |k| k.kid.as_str());
        publish_event(
            ctx,
            idp,
            EventType::Normal,
            "OidcSigningKeys",
            format!("OpenID Provider signing keys updated; the newest key is {kid}"),
        )
        .await;
    }
    let next = next_change(&keys, &policy, now);
    Ok((keys, next))
}

/// Deletes IdentityProvider `ns/name`'s signing keys, if any.
pub async fn delete(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.settings.config_namespace);
    match api
        .delete(&secret_name(ns, name), &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::SigningKeys(e.to_string())
    }
}

// replaced by oidc::keys: a minimal stand-in for `RotationPolicy`, `KeyError` and
// `SigningKeys::rotate` until the pure module lands; the call sites above use the API of the
// design.
mod standin {
    use base64::Engine;
    use jiff::{SignedDuration, Timestamp};
    use rand::RngCore;

    use crate::oidc::keys::{SigningAlgorithm, SigningKey, SigningKeys};

    /// How keys are rotated.
    #[derive(Clone, Debug)]
    pub struct RotationPolicy {
        pub algorithm: SigningAlgorithm,
        pub every: SignedDuration,
        pub publish_lead: SignedDuration,
        pub keep_after_superseded: SignedDuration,
    }

    /// A key could not be made.
    #[derive(Debug, thiserror::Error)]
    #[error("could not generate an OpenID Provider signing key: {0}")]
    pub struct KeyError(String);

    pub trait Rotate: Sized {
        fn rotate(&self, now: Timestamp, policy: &RotationPolicy)
        -> Result<(Self, bool), KeyError>;
    }

    impl Rotate for SigningKeys {
        fn rotate(
            &self,
            now: Timestamp,
            policy: &RotationPolicy,
        ) -> Result<(Self, bool), KeyError> {
            let mut keys: Vec<SigningKey> = self
                .keys
                .iter()
                .filter(|k| {
                    k.superseded.is_none_or(|s| {
                        s.checked_add(policy.keep_after_superseded)
                            .is_ok_and(|end| end > now)
                    })
                })
                .cloned()
                .collect();
            let dropped = keys.len() != self.keys.len();
            let due = keys.first().is_none_or(|k| {
                k.algorithm != policy.algorithm
                    || k.created.checked_add(policy.every).is_ok_and(|t| t <= now)
            });
            if !due {
                return Ok((SigningKeys { keys }, dropped));
            }
            let signs_from = match keys.first() {
                Some(k) if k.algorithm == policy.algorithm => now + policy.publish_lead,
                _ => now,
            };
            if let Some(previous) = keys.first_mut() {
                previous.superseded = Some(signs_from);
            }
            let mut kid = [0u8; 12];
            rand::rng().fill_bytes(&mut kid);
            keys.insert(
                0,
                SigningKey {
                    kid: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kid),
                    algorithm: policy.algorithm,
                    created: now,
                    signs_from,
                    superseded: None,
                    private_key_pem: generate_pem(policy.algorithm)?,
                },
            );
            Ok((SigningKeys { keys }, true))
        }
    }

    fn generate_pem(algorithm: SigningAlgorithm) -> Result<String, KeyError> {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let err = |e: &dyn std::fmt::Display| KeyError(e.to_string());
        let der: Vec<u8> = match algorithm {
            SigningAlgorithm::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|e| err(&e))?;
                AsDer::<Pkcs8V1Der>::as_der(&pair)
                    .map_err(|e| err(&e))?
                    .as_ref()
                    .to_vec()
            }
            SigningAlgorithm::ES256 => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(|e| err(&e))?
            .as_ref()
            .to_vec(),
        };
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        Ok(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp(uid: &str) -> IdentityProvider {
        let mut idp = IdentityProvider::new("okta", serde_json::from_str(r#"{"idp":{}}"#).unwrap());
        idp.metadata.namespace = Some("team-a".into());
        idp.metadata.uid = Some(uid.into());
        idp
    }

    #[test]
    fn the_key_secret_is_named_after_the_tenant() {
        assert_eq!(secret_name("team-a", "okta"), "oidc-keys-team-a.okta");
        assert!(secret_name("n", &"x".repeat(300)).len() <= 253);
    }

    #[test]
    fn keys_of_another_incarnation_are_discarded() {
        let policy = rotation_policy(&OidcSettings::default());
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let (keys, changed) = SigningKeys::default().rotate(now, &policy).unwrap();
        assert!(changed);
        assert_eq!(keys.keys.len(), 1);
        let s = secret_object(&idp("u1"), "oidc-keys-team-a.okta", &keys).unwrap();
        assert_eq!(stored_keys(Some(&s), "u1"), keys);
        assert_eq!(stored_keys(Some(&s), "u2"), SigningKeys::default());
        assert_eq!(stored_keys(None, "u1"), SigningKeys::default());
        // The first key signs at once; the next change is the rotation 720h later.
        assert_eq!(keys.keys[0].signs_from, now);
        assert_eq!(
            next_change(&keys, &policy, now),
            Some(now + SignedDuration::from_hours(720))
        );
    }
}
