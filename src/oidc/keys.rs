//! Signing keys of one IdentityProvider's OpenID Provider.
//!
//! The controller keeps them in a Secret of the operator namespace and compiles them into the
//! IdentityProvider's configuration. A new key is published in the JWKS document before it
//! signs anything ([`SigningKey::signs_from`]), so relying parties that cache the JWKS already
//! know it; a key that stopped signing stays published until every token it signed has
//! expired.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A JWS algorithm the provider signs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit RSA key: what every relying party accepts.
    #[default]
    RS256,
    /// ECDSA on P-256 with SHA-256: smaller tokens and faster signing; relying parties learn
    /// it from discovery's `id_token_signing_alg_values_supported`.
    ES256,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
        }
    }
}

/// One signing key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    /// Key ID (`kid`), unique within the issuer.
    pub kid: String,
    /// The algorithm this key signs with.
    pub algorithm: SigningAlgorithm,
    /// When the key was created and published.
    pub created: Timestamp,
    /// From when the key may sign: its publication plus the longest time a relying party
    /// caches the JWKS document.
    pub signs_from: Timestamp,
    /// When a newer key took over signing; none while this key is the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<Timestamp>,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private keys, even in debug output.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .field("signs_from", &self.signs_from)
            .field("superseded", &self.superseded)
            .finish_non_exhaustive()
    }
}

/// The signing keys of one issuer, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeys {
    /// Keys, newest first.
    pub keys: Vec<SigningKey>,
}

/// How long a new key is published before it signs: longer than relying parties cache the
/// JWKS document (`Cache-Control: max-age=300`), so they know the key before they see it.
pub const DEFAULT_PUBLISH_LEAD: SignedDuration = SignedDuration::from_mins(10);

/// When an issuer's signing keys are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// The algorithm new keys sign with; a key of another algorithm is replaced at once.
    pub algorithm: SigningAlgorithm,
    /// How long a key is the newest before the next one is created.
    pub every: SignedDuration,
    /// How long a new key is published before it signs ([`DEFAULT_PUBLISH_LEAD`]).
    pub publish_lead: SignedDuration,
    /// How long a key stays published after it stopped signing: the longest lifetime of a
    /// token it signed.
    pub keep_after_superseded: SignedDuration,
}

/// Errors of signing keys and of the tokens they sign or verify.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// AWS-LC could not generate a key.
    #[error("could not generate an OIDC signing key: {0}")]
    Generate(String),
    /// A stored key cannot be used; rotation drops it.
    #[error(
        "OIDC signing key {kid:?} is malformed ({reason}); it is dropped and a new key replaces it"
    )]
    Malformed {
        /// The key's `kid`.
        kid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No key may sign yet (none exists, or every one is still being published).
    #[error("no OIDC signing key may sign yet: the IdentityProvider's keys are not rotated in")]
    NoSigner,
    /// Signing failed.
    #[error("could not sign a token: {0}")]
    Sign(String),
    /// The token is not a compact JWS of ours with a JSON header and claims.
    #[error("malformed token: {0}")]
    MalformedToken(String),
    /// The token's `kid` is none of this issuer's keys.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The token's `alg` is not the algorithm of the key it names (`none`, HMAC, or another).
    #[error("token algorithm {0:?} is not the algorithm of its key")]
    WrongAlgorithm(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// The `iss` claim is not this issuer.
    #[error("token issued by another issuer")]
    WrongIssuer,
    /// The `exp` claim has passed (or is missing).
    #[error("token expired")]
    Expired,
    /// The claims do not have the expected shape.
    #[error("unexpected token claims: {0}")]
    Claims(String),
}

impl SigningKey {
    /// Generates a key of `algorithm` created at `created` that signs from `signs_from`. Its
    /// `kid` is the key's JWK thumbprint (RFC 7638).
    pub fn generate(
        algorithm: SigningAlgorithm,
        created: Timestamp,
        signs_from: Timestamp,
    ) -> Result<SigningKey, KeyError> {
        let pkcs8 = match algorithm {
            SigningAlgorithm::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                let der: Pkcs8V1Der<'static> = pair
                    .as_der()
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                der.as_ref().to_vec()
            }
            SigningAlgorithm::ES256 => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| KeyError::Generate(e.to_string()))?
                    .as_ref()
                    .to_vec()
            }
        };
        let mut key = SigningKey {
            kid: String::new(),
            algorithm,
            created,
            signs_from,
            superseded: None,
            private_key_pem: pem_encode(&pkcs8),
        };
        key.kid = key
            .parse()
            .map_err(|e| KeyError::Generate(e.to_string()))?
            .thumbprint();
        Ok(key)
    }

    /// The key pair and its public JWK members, or why the stored key cannot be used.
    pub(super) fn parse(&self) -> Result<ParsedKey, KeyError> {
        let malformed = |reason: String| KeyError::Malformed {
            kid: self.kid.clone(),
            reason,
        };
        let der = pem_decode(&self.private_key_pem).ok_or_else(|| {
            malformed("the private key is not a PKCS#8 PEM \"PRIVATE KEY\"".into())
        })?;
        match self.algorithm {
            SigningAlgorithm::RS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der)
                    .map_err(|e| malformed(format!("not an RSA private key: {e}")))?;
                if pair.public_modulus_len() < 256 {
                    return Err(malformed(format!(
                        "an RSA key of {} bits; at least 2048 are required",
                        pair.public_modulus_len() * 8
                    )));
                }
                let public = pair.public_key();
                let jwk = PublicJwk::Rsa {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                };
                Ok(ParsedKey {
                    pair: ParsedPair::Rsa(pair),
                    jwk,
                })
            }
            SigningAlgorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|e| malformed(format!("not a P-256 private key: {e}")))?;
                // The uncompressed point: 0x04 || x || y, 32 bytes each.
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(malformed("unexpected P-256 public point".into()));
                }
                let jwk = PublicJwk::Ec {
                    x: point[1..33].to_vec(),
                    y: point[33..].to_vec(),
                };
                Ok(ParsedKey {
                    pair: ParsedPair::Ec(pair),
                    jwk,
                })
            }
        }
    }
}

/// A stored key parsed for signing.
pub(super) struct ParsedKey {
    pub(super) pair: ParsedPair,
    pub(super) jwk: PublicJwk,
}

/// The private half of a parsed key.
pub(super) enum ParsedPair {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
}

/// The public half of a key as JWK members, as raw big-endian bytes.
pub(super) enum PublicJwk {
    /// RSA: modulus and exponent without leading zero bytes.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// P-256: the coordinates, 32 bytes each.
    Ec { x: Vec<u8>, y: Vec<u8> },
}

impl ParsedKey {
    /// The JWK thumbprint (RFC 7638): SHA-256 of the required members in lexicographic order,
    /// base64url.
    fn thumbprint(&self) -> String {
        let canonical = match &self.jwk {
            PublicJwk::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(e),
                URL_SAFE_NO_PAD.encode(n)
            ),
            PublicJwk::Ec { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(x),
                URL_SAFE_NO_PAD.encode(y)
            ),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// PKCS#8 DER as PEM.
fn pem_encode(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The DER of a PEM `PRIVATE KEY` block.
fn pem_decode(pem: &str) -> Option<Vec<u8>> {
    let (_, rest) = pem.split_once("-----BEGIN PRIVATE KEY-----")?;
    let (body, _) = rest.split_once("-----END PRIVATE KEY-----")?;
    let body: String = body.split_whitespace().collect();
    STANDARD.decode(body).ok()
}

impl SigningKeys {
    /// The key that signs at `now`: the newest whose `signs_from` has passed.
    pub fn signer(&self, now: Timestamp) -> Option<&SigningKey> {
        self.keys
            .iter()
            .filter(|k| k.signs_from <= now)
            .max_by_key(|k| (k.signs_from, k.created))
    }

    /// Why each unusable key cannot be used; [`SigningKeys::rotate`] drops them.
    pub fn malformed(&self) -> Vec<KeyError> {
        self.keys.iter().filter_map(|k| k.parse().err()).collect()
    }

    /// The keys after rotating at `now` under `policy`, and whether they changed.
    ///
    /// - Malformed keys are dropped (see [`SigningKeys::malformed`] for why).
    /// - While no key may sign (the first rotation, or every usable key was dropped), a new
    ///   key signs at once.
    /// - When the newest key is older than `every`, or of another algorithm than the policy's,
    ///   a new key is created that signs after `publish_lead`; a key of the old algorithm
    ///   that has not signed yet is dropped. Until the new key signs, the old one does.
    /// - A key stops signing when a newer one starts (`superseded`) and is dropped
    ///   `keep_after_superseded` later.
    ///
    /// Once a key exists, some key can always sign.
    pub fn rotate(
        &self,
        now: Timestamp,
        policy: &RotationPolicy,
    ) -> Result<(SigningKeys, bool), KeyError> {
        let mut keys: Vec<SigningKey> = self
            .keys
            .iter()
            .filter(|k| k.parse().is_ok())
            .cloned()
            .collect();
        newest_first(&mut keys);
        let mut next = SigningKeys { keys };
        if next.signer(now).is_none() {
            let key = SigningKey::generate(policy.algorithm, now, now)?;
            next.keys.insert(0, key);
        } else if let Some(newest) = next.keys.first() {
            let other_algorithm = newest.algorithm != policy.algorithm;
            if other_algorithm || newest.created + policy.every <= now {
                // A pending key of the old algorithm would sign for a moment only.
                next.keys
                    .retain(|k| k.signs_from <= now || k.algorithm == policy.algorithm);
                let key = SigningKey::generate(policy.algorithm, now, now + policy.publish_lead)?;
                next.keys.insert(0, key);
            }
        }
        // Keys older than the signer were superseded when the next newer one started signing.
        let signer = next
            .keys
            .iter()
            .position(|k| k.signs_from <= now)
            .expect("a key signs: one was added if none did");
        for i in signer + 1..next.keys.len() {
            let successor_start = next.keys[i - 1].signs_from;
            let key = &mut next.keys[i];
            if key.superseded.is_none() {
                key.superseded = Some(successor_start);
            }
        }
        next.keys.retain(|k| {
            k.superseded
                .is_none_or(|at| at + policy.keep_after_superseded > now)
        });
        let changed = next != *self;
        Ok((next, changed))
    }
}

/// Orders keys newest first: by when they sign, then by creation.
fn newest_first(keys: &mut [SigningKey]) {
    keys.sort_by_key(|k| std::cmp::Reverse((k.signs_from, k.created)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap() + SignedDuration::from_mins(minutes)
    }

    fn policy(algorithm: SigningAlgorithm) -> RotationPolicy {
        RotationPolicy {
            algorithm,
            every: SignedDuration::from_hours(1),
            publish_lead: DEFAULT_PUBLISH_LEAD,
            keep_after_superseded: SignedDuration::from_hours(24),
        }
    }

    fn rotated(keys: &SigningKeys, now: Timestamp, policy: &RotationPolicy) -> SigningKeys {
        keys.rotate(now, policy).unwrap().0
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let p = policy(SigningAlgorithm::ES256);
        let (keys, changed) = SigningKeys::default().rotate(at(0), &p).unwrap();
        assert!(changed);
        assert_eq!(keys.keys.len(), 1);
        let key = &keys.keys[0];
        assert_eq!(key.algorithm, SigningAlgorithm::ES256);
        assert_eq!(
            (key.created, key.signs_from, key.superseded),
            (at(0), at(0), None)
        );
        assert_eq!(keys.signer(at(0)).unwrap().kid, key.kid);
        assert!(keys.malformed().is_empty());
        // Nothing to do a minute later.
        let (again, changed) = keys.rotate(at(1), &p).unwrap();
        assert!(!changed);
        assert_eq!(again, keys);
    }

    #[test]
    fn rsa_keys_are_2048_bits_and_named_by_their_thumbprint() {
        let key = SigningKey::generate(SigningAlgorithm::RS256, at(0), at(0)).unwrap();
        assert!(
            key.private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        let parsed = key.parse().unwrap();
        let PublicJwk::Rsa { n, e } = &parsed.jwk else {
            panic!("an RSA key")
        };
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
        assert_eq!(e, &[1, 0, 1]);
        assert_eq!(key.kid, parsed.thumbprint());
        // base64url of a SHA-256.
        assert_eq!(key.kid.len(), 43);
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = URL_SAFE_NO_PAD
            .decode(
                "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            )
            .unwrap();
        let parsed = ParsedKey {
            pair: ParsedPair::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()),
            jwk: PublicJwk::Rsa {
                n,
                e: vec![1, 0, 1],
            },
        };
        assert_eq!(
            parsed.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_new_key_is_published_before_it_signs_and_the_old_one_is_kept_for_its_tokens() {
        let p = policy(SigningAlgorithm::ES256);
        let first = rotated(&SigningKeys::default(), at(0), &p);
        let old = first.keys[0].kid.clone();
        // Before `every`: nothing.
        assert_eq!(rotated(&first, at(59), &p), first);
        // After: a second key, published but not signing yet.
        let (second, changed) = first.rotate(at(60), &p).unwrap();
        assert!(changed);
        assert_eq!(second.keys.len(), 2);
        let new = second.keys[0].clone();
        assert_ne!(new.kid, old);
        assert_eq!(new.created, at(60));
        assert_eq!(new.signs_from, at(70));
        assert_eq!(second.signer(at(69)).unwrap().kid, old);
        assert_eq!(second.keys[1].superseded, None);
        // Once the new key signs, the old one is superseded from that moment.
        let third = rotated(&second, at(75), &p);
        assert_eq!(third.signer(at(75)).unwrap().kid, new.kid);
        assert_eq!(third.keys[1].kid, old);
        assert_eq!(third.keys[1].superseded, Some(at(70)));
        // It stays published for `keep_after_superseded`, then goes.
        let p = RotationPolicy {
            every: SignedDuration::from_hours(1000),
            ..p
        };
        let kept = rotated(&third, at(70 + 24 * 60 - 1), &p);
        assert_eq!(kept.keys.len(), 2);
        let dropped = rotated(&kept, at(70 + 24 * 60), &p);
        assert_eq!(dropped.keys.len(), 1);
        assert_eq!(dropped.keys[0].kid, new.kid);
    }

    #[test]
    fn a_changed_algorithm_rotates_without_waiting_for_every() {
        let es = policy(SigningAlgorithm::ES256);
        let rs = policy(SigningAlgorithm::RS256);
        let first = rotated(&SigningKeys::default(), at(0), &es);
        let es_kid = first.keys[0].kid.clone();
        let second = rotated(&first, at(5), &rs);
        assert_eq!(second.keys.len(), 2);
        assert_eq!(second.keys[0].algorithm, SigningAlgorithm::RS256);
        assert_eq!(second.keys[0].signs_from, at(15));
        // The old key signs until the new one is known to relying parties.
        assert_eq!(second.signer(at(14)).unwrap().kid, es_kid);
        assert_eq!(
            second.signer(at(15)).unwrap().algorithm,
            SigningAlgorithm::RS256
        );
        // Changed back before the RS256 key signed: that key goes, an ES256 one comes.
        let third = rotated(&second, at(8), &es);
        assert_eq!(third.keys.len(), 2);
        assert_eq!(third.keys[0].algorithm, SigningAlgorithm::ES256);
        assert_eq!(third.keys[0].signs_from, at(18));
        assert_eq!(third.keys[1].kid, es_kid);
    }

    #[test]
    fn some_key_always_signs_once_the_first_exists() {
        let p = policy(SigningAlgorithm::ES256);
        let mut keys = rotated(&SigningKeys::default(), at(0), &p);
        let mut most = 0;
        // Three days in 7-minute steps, switching the algorithm once a day.
        for step in 1..=(3 * 24 * 60 / 7) {
            let now = at(step * 7);
            let algorithm = if (step * 7 / (24 * 60)) % 2 == 0 {
                SigningAlgorithm::ES256
            } else {
                SigningAlgorithm::RS256
            };
            let p = RotationPolicy { algorithm, ..p };
            keys = rotated(&keys, now, &p);
            assert!(keys.signer(now).is_some(), "no signer at step {step}");
            let signer = keys.signer(now).unwrap();
            assert_eq!(signer.superseded, None);
            most = most.max(keys.keys.len());
        }
        // One key an hour, each kept a day after it stopped signing.
        assert!(most <= 27, "{most} keys");
    }

    #[test]
    fn a_malformed_key_is_reported_and_dropped_and_a_new_key_signs_at_once() {
        let p = policy(SigningAlgorithm::ES256);
        let good = rotated(&SigningKeys::default(), at(0), &p);
        let mut broken = good.clone();
        broken.keys[0].private_key_pem =
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        let mut wrong_algorithm = good.keys[0].clone();
        wrong_algorithm.kid = "rsa-but-ec".into();
        wrong_algorithm.algorithm = SigningAlgorithm::RS256;
        wrong_algorithm.signs_from = at(-10);
        broken.keys.push(wrong_algorithm);
        let errors = broken.malformed();
        assert_eq!(errors.len(), 2);
        assert!(
            matches!(&errors[0], KeyError::Malformed { kid, .. } if *kid == good.keys[0].kid),
            "{errors:?}"
        );
        assert!(
            matches!(&errors[1], KeyError::Malformed { kid, .. } if kid == "rsa-but-ec"),
            "{errors:?}"
        );
        assert!(errors[0].to_string().contains("malformed"));
        let (fixed, changed) = broken.rotate(at(5), &p).unwrap();
        assert!(changed);
        assert_eq!(fixed.keys.len(), 1);
        assert_ne!(fixed.keys[0].kid, good.keys[0].kid);
        assert_eq!(fixed.signer(at(5)).unwrap().signs_from, at(5));
        assert!(fixed.malformed().is_empty());
    }

    #[test]
    fn a_malformed_newer_key_leaves_the_older_one_signing() {
        let p = policy(SigningAlgorithm::ES256);
        let first = rotated(&SigningKeys::default(), at(0), &p);
        let mut second = rotated(&first, at(60), &p);
        second.keys[0].private_key_pem = "garbage".into();
        let third = rotated(&second, at(61), &p);
        // The broken pending key is gone; the old key signs; a new one is on its way again.
        assert_eq!(third.signer(at(61)).unwrap().kid, first.keys[0].kid);
        assert_eq!(third.keys.len(), 2);
        assert_eq!(third.keys[0].signs_from, at(71));
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let key = SigningKey::generate(SigningAlgorithm::ES256, at(0), at(0)).unwrap();
        let shown = format!(
            "{key:?} {:?}",
            SigningKeys {
                keys: vec![key.clone()]
            }
        );
        assert!(!shown.contains("PRIVATE"));
        assert!(shown.contains(&key.kid));
    }

    #[test]
    fn keys_round_trip_through_json() {
        let p = policy(SigningAlgorithm::ES256);
        let keys = rotated(&SigningKeys::default(), at(0), &p);
        let json = serde_json::to_value(&keys).unwrap();
        assert!(json["keys"][0]["signsFrom"].is_string());
        assert!(json["keys"][0].get("superseded").is_none());
        let back: SigningKeys = serde_json::from_value(json).unwrap();
        assert_eq!(back, keys);
    }
}
