//! JSON Web Signatures with an issuer's keys: signing tokens, verifying our own, and the JWKS
//! document that publishes the public keys.
//!
//! Parsing a private key costs more than a signature, so the server keeps a [`PreparedKeys`]
//! per configuration version and signs with it; the methods on [`SigningKeys`] prepare the keys
//! on every call and suit rare uses. Signing uses AWS-LC's key pairs directly: `jsonwebtoken`
//! parses and checks an RSA key again for every signature, even from a cached `EncodingKey`
//! (several times slower; the `sign_time_rs256_and_es256` test prints both). Verification, the
//! rarer path, is `jsonwebtoken`'s.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::keys::{KeyError, ParsedPair, PublicJwk, SigningAlgorithm, SigningKey, SigningKeys};

/// An issuer's keys parsed once for signing and verifying, with their JWKS document.
pub struct PreparedKeys {
    /// Newest first.
    keys: Vec<PreparedKey>,
    jwks: serde_json::Value,
}

struct PreparedKey {
    kid: String,
    algorithm: SigningAlgorithm,
    signs_from: Timestamp,
    created: Timestamp,
    pair: ParsedPair,
    verifying: DecodingKey,
    /// The encoded JWS header `{alg, kid, typ}`, the same for every token.
    header: String,
    /// The public key as published in the JWKS document.
    jwk: serde_json::Value,
}

impl std::fmt::Debug for PreparedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("PreparedKeys").field("kids", &kids).finish()
    }
}

impl SigningKeys {
    /// The keys parsed for signing and verifying. Malformed keys are left out (rotation
    /// drops them; [`SigningKeys::malformed`] says why).
    pub fn prepared(&self) -> PreparedKeys {
        let mut keys: Vec<PreparedKey> = self.keys.iter().filter_map(prepare).collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.signs_from, k.created)));
        let jwks = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        PreparedKeys { keys, jwks }
    }

    /// The JWKS document publishing every usable key: `{"keys": [{kty, kid, use, alg, …}]}`.
    pub fn jwks(&self) -> serde_json::Value {
        self.prepared().jwks
    }

    /// `claims` signed at `now` as a compact JWS; see [`PreparedKeys::sign`].
    pub fn sign<C: Serialize>(&self, now: Timestamp, claims: &C) -> Result<String, KeyError> {
        self.prepared().sign(now, claims)
    }

    /// The claims of one of our own tokens; see [`PreparedKeys::verify`].
    pub fn verify<C: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<C, KeyError> {
        self.prepared().verify(token, issuer)
    }
}

fn prepare(key: &SigningKey) -> Option<PreparedKey> {
    let parsed = key.parse().ok()?;
    let (verifying, jwk) = match &parsed.jwk {
        PublicJwk::Rsa { n, e } => (
            DecodingKey::from_rsa_raw_components(n, e),
            json!({
                "kty": "RSA",
                "kid": key.kid,
                "use": "sig",
                "alg": key.algorithm.as_str(),
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
        ),
        PublicJwk::Ec { x, y } => {
            let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
            (
                DecodingKey::from_ec_components(&x, &y).ok()?,
                json!({
                    "kty": "EC",
                    "kid": key.kid,
                    "use": "sig",
                    "alg": key.algorithm.as_str(),
                    "crv": "P-256",
                    "x": x,
                    "y": y,
                }),
            )
        }
    };
    let header = json!({ "alg": key.algorithm.as_str(), "kid": key.kid, "typ": "JWT" });
    Some(PreparedKey {
        kid: key.kid.clone(),
        algorithm: key.algorithm,
        signs_from: key.signs_from,
        created: key.created,
        pair: parsed.pair,
        verifying,
        header: URL_SAFE_NO_PAD.encode(header.to_string()),
        jwk,
    })
}

/// The members of a JWS header we read before trusting anything else.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl PreparedKeys {
    /// The JWKS document publishing every key: `{"keys": [{kty, kid, use, alg, n, e | crv, x, y}]}`.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// `kid` of the key that signs at `now`: the newest whose `signs_from` has passed.
    pub fn signer_kid(&self, now: Timestamp) -> Option<&str> {
        self.signer(now).map(|k| k.kid.as_str())
    }

    fn signer(&self, now: Timestamp) -> Option<&PreparedKey> {
        self.keys.iter().find(|k| k.signs_from <= now)
    }

    /// `claims` as a compact JWS signed by the key that signs at `now`, with the header
    /// `{alg, kid, typ: "JWT"}`.
    pub fn sign<C: Serialize>(&self, now: Timestamp, claims: &C) -> Result<String, KeyError> {
        let key = self.signer(now).ok_or(KeyError::NoSigner)?;
        let claims = serde_json::to_vec(claims).map_err(|e| KeyError::Claims(e.to_string()))?;
        let mut token = String::with_capacity(key.header.len() + claims.len() * 4 / 3 + 400);
        token.push_str(&key.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signature = match &key.pair {
            ParsedPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    token.as_bytes(),
                    &mut signature,
                )
                .map_err(|e| KeyError::Sign(e.to_string()))?;
                signature
            }
            ParsedPair::Ec(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(|e| KeyError::Sign(e.to_string()))?
                .as_ref()
                .to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// The claims of one of our own tokens: its `kid` must name one of these keys, its `alg`
    /// must be that key's algorithm (never `none`, never HMAC), the signature must verify, `iss`
    /// must equal `issuer` and `exp` must not have passed. The audience is the caller's to check.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, issuer: &str) -> Result<C, KeyError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::MalformedToken(
                "not a compact JWS of three parts".into(),
            ));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|e| KeyError::MalformedToken(format!("header: {e}")))?;
        let header: Header = serde_json::from_slice(&header)
            .map_err(|e| KeyError::MalformedToken(format!("header: {e}")))?;
        if header.crit.is_some() {
            // We never set critical extensions, so a token with them is not ours.
            return Err(KeyError::MalformedToken(
                "critical header extensions".into(),
            ));
        }
        let kid = header.kid.ok_or(KeyError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(KeyError::UnknownKey)?;
        if header.alg != key.algorithm.as_str() {
            return Err(KeyError::WrongAlgorithm(header.alg));
        }
        let algorithm = match key.algorithm {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::ES256 => Algorithm::ES256,
        };
        let mut validation = Validation::new(algorithm);
        // Our own tokens, checked on our own clock.
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        jsonwebtoken::decode::<C>(token, &key.verifying, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidSignature => KeyError::BadSignature,
                ErrorKind::ExpiredSignature => KeyError::Expired,
                ErrorKind::InvalidIssuer => KeyError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => KeyError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(_) => KeyError::Expired,
                ErrorKind::InvalidAlgorithm => {
                    KeyError::WrongAlgorithm(key.algorithm.as_str().into())
                }
                ErrorKind::Json(e) => KeyError::Claims(e.to_string()),
                other => KeyError::MalformedToken(format!("{other:?}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use jiff::SignedDuration;
    use jsonwebtoken::jwk::Jwk;
    use serde_json::Value;

    use super::*;

    const ISSUER: &str = "https://sso.example.com/oidc/team-a/okta";

    fn keys(algorithm: SigningAlgorithm) -> SigningKeys {
        let now = Timestamp::now();
        SigningKeys {
            keys: vec![SigningKey::generate(algorithm, now, now).unwrap()],
        }
    }

    fn claims(issuer: &str, exp: Timestamp) -> Value {
        json!({ "iss": issuer, "sub": "u-1", "aud": "kubectl", "exp": exp.as_second(), "iat": Timestamp::now().as_second() })
    }

    fn in_an_hour() -> Timestamp {
        Timestamp::now() + SignedDuration::from_hours(1)
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    /// A token with the given header and claims and a signature made elsewhere.
    fn forged(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature = sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn parts(token: &str) -> (Value, Value) {
        let mut parts = token.split('.');
        let mut next = || -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap()).unwrap()
        };
        (next(), next())
    }

    #[test]
    fn prepared_keys_can_be_shared_between_requests() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<PreparedKeys>();
    }

    #[test]
    fn tokens_round_trip_with_both_algorithms() {
        for algorithm in [SigningAlgorithm::RS256, SigningAlgorithm::ES256] {
            let keys = keys(algorithm);
            let prepared = keys.prepared();
            let sent = claims(ISSUER, in_an_hour());
            let token = prepared.sign(Timestamp::now(), &sent).unwrap();
            let (header, body) = parts(&token);
            assert_eq!(
                header,
                json!({ "alg": algorithm.as_str(), "kid": keys.keys[0].kid, "typ": "JWT" })
            );
            assert_eq!(body, sent);
            let received: Value = prepared.verify(&token, ISSUER).unwrap();
            assert_eq!(received, sent);
            // The convenience methods agree.
            let again: Value = keys
                .verify(&keys.sign(Timestamp::now(), &sent).unwrap(), ISSUER)
                .unwrap();
            assert_eq!(again, sent);
        }
    }

    #[test]
    fn the_published_jwk_verifies_tokens_with_another_implementation() {
        for algorithm in [SigningAlgorithm::RS256, SigningAlgorithm::ES256] {
            let keys = keys(algorithm);
            let jwks = keys.jwks();
            let published = &jwks["keys"][0];
            assert_eq!(published["kid"], keys.keys[0].kid.as_str());
            assert_eq!(published["use"], "sig");
            assert_eq!(published["alg"], algorithm.as_str());
            match algorithm {
                SigningAlgorithm::RS256 => {
                    assert_eq!(published["kty"], "RSA");
                    assert_eq!(published["e"], "AQAB");
                    let n = URL_SAFE_NO_PAD
                        .decode(published["n"].as_str().unwrap())
                        .unwrap();
                    assert_eq!(n.len(), 256);
                    assert_ne!(n[0], 0, "no leading zero byte");
                }
                SigningAlgorithm::ES256 => {
                    assert_eq!(published["kty"], "EC");
                    assert_eq!(published["crv"], "P-256");
                    for coordinate in ["x", "y"] {
                        let bytes = URL_SAFE_NO_PAD
                            .decode(published[coordinate].as_str().unwrap())
                            .unwrap();
                        assert_eq!(bytes.len(), 32, "{coordinate}");
                    }
                }
            }
            let jwk: Jwk = serde_json::from_value(published.clone()).unwrap();
            let key = DecodingKey::from_jwk(&jwk).unwrap();
            let algorithm = match algorithm {
                SigningAlgorithm::RS256 => Algorithm::RS256,
                SigningAlgorithm::ES256 => Algorithm::ES256,
            };
            let mut validation = Validation::new(algorithm);
            validation.set_audience(&["kubectl"]);
            validation.set_issuer(&[ISSUER]);
            let token = keys
                .sign(Timestamp::now(), &claims(ISSUER, in_an_hour()))
                .unwrap();
            let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
            assert_eq!(data.header.kid.as_deref(), Some(keys.keys[0].kid.as_str()));
            assert_eq!(data.claims["sub"], "u-1");
        }
    }

    #[test]
    fn every_key_is_published_but_only_the_signer_signs() {
        let now = Timestamp::now();
        let old = SigningKey::generate(SigningAlgorithm::ES256, now, now).unwrap();
        let pending = SigningKey::generate(
            SigningAlgorithm::ES256,
            now,
            now + SignedDuration::from_mins(10),
        )
        .unwrap();
        let keys = SigningKeys {
            keys: vec![pending.clone(), old.clone()],
        };
        let prepared = keys.prepared();
        let kids: Vec<&str> = prepared.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [pending.kid.as_str(), old.kid.as_str()]);
        assert_eq!(prepared.signer_kid(now), Some(old.kid.as_str()));
        let later = now + SignedDuration::from_mins(10);
        assert_eq!(prepared.signer_kid(later), Some(pending.kid.as_str()));
        let token = prepared.sign(later, &claims(ISSUER, in_an_hour())).unwrap();
        assert_eq!(parts(&token).0["kid"], pending.kid.as_str());
        // A token of the old key still verifies.
        let token = prepared.sign(now, &claims(ISSUER, in_an_hour())).unwrap();
        prepared.verify::<Value>(&token, ISSUER).unwrap();
        // Nothing signs before the first key.
        let early = now - SignedDuration::from_secs(1);
        assert!(matches!(
            prepared.sign(early, &claims(ISSUER, in_an_hour())),
            Err(KeyError::NoSigner)
        ));
    }

    #[test]
    fn verify_refuses_alg_none() {
        let keys = keys(SigningAlgorithm::RS256);
        let kid = &keys.keys[0].kid;
        let body = claims(ISSUER, in_an_hour());
        for alg in ["none", "None", "NONE"] {
            let token = format!(
                "{}.{}.",
                b64(&json!({ "alg": alg, "kid": kid })),
                b64(&body)
            );
            let refused = keys.verify::<Value>(&token, ISSUER);
            assert!(
                matches!(refused, Err(KeyError::WrongAlgorithm(_))),
                "{alg}: {refused:?}"
            );
        }
    }

    #[test]
    fn verify_refuses_hs256_made_with_the_public_key() {
        let keys = keys(SigningAlgorithm::RS256);
        let kid = &keys.keys[0].kid;
        let jwks = keys.jwks();
        let public = &jwks["keys"][0];
        let n = URL_SAFE_NO_PAD
            .decode(public["n"].as_str().unwrap())
            .unwrap();
        for secret in [public.to_string().into_bytes(), n] {
            let token = forged(
                &json!({ "alg": "HS256", "kid": kid, "typ": "JWT" }),
                &claims(ISSUER, in_an_hour()),
                |message| {
                    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
                    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
                },
            );
            let refused = keys.verify::<Value>(&token, ISSUER);
            assert!(
                matches!(refused, Err(KeyError::WrongAlgorithm(ref a)) if a == "HS256"),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn verify_refuses_an_unknown_kid_or_none() {
        let ours = keys(SigningAlgorithm::ES256);
        let theirs = keys(SigningAlgorithm::ES256);
        let token = theirs
            .sign(Timestamp::now(), &claims(ISSUER, in_an_hour()))
            .unwrap();
        assert!(matches!(
            ours.verify::<Value>(&token, ISSUER),
            Err(KeyError::UnknownKey)
        ));
        // Their token under our kid: the signature does not verify.
        let (_, body) = parts(&token);
        let signature = token.rsplit('.').next().unwrap();
        let header = json!({ "alg": "ES256", "kid": ours.keys[0].kid, "typ": "JWT" });
        let swapped = format!("{}.{}.{signature}", b64(&header), b64(&body));
        assert!(matches!(
            ours.verify::<Value>(&swapped, ISSUER),
            Err(KeyError::BadSignature)
        ));
        // No kid at all.
        let header = json!({ "alg": "ES256", "typ": "JWT" });
        let no_kid = format!("{}.{}.{signature}", b64(&header), b64(&body));
        assert!(matches!(
            ours.verify::<Value>(&no_kid, ISSUER),
            Err(KeyError::UnknownKey)
        ));
    }

    #[test]
    fn verify_refuses_an_algorithm_that_is_not_the_keys() {
        let rsa = keys(SigningAlgorithm::RS256);
        let ec = keys(SigningAlgorithm::ES256);
        let ec_pair = ec.keys[0].parse().unwrap();
        let ParsedPair::Ec(pair) = ec_pair.pair else {
            panic!("an EC key")
        };
        // ES256 under the RSA key's kid.
        let token = forged(
            &json!({ "alg": "ES256", "kid": rsa.keys[0].kid, "typ": "JWT" }),
            &claims(ISSUER, in_an_hour()),
            |message| {
                pair.sign(&SystemRandom::new(), message)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            },
        );
        let refused = rsa.verify::<Value>(&token, ISSUER);
        assert!(
            matches!(refused, Err(KeyError::WrongAlgorithm(ref a)) if a == "ES256"),
            "{refused:?}"
        );
        // RS384 under the right kid.
        let mut header = parts(&rsa.sign(Timestamp::now(), &json!({})).unwrap()).0;
        header["alg"] = json!("RS384");
        let token = forged(&header, &claims(ISSUER, in_an_hour()), |_| vec![0; 256]);
        assert!(matches!(
            rsa.verify::<Value>(&token, ISSUER),
            Err(KeyError::WrongAlgorithm(_))
        ));
    }

    #[test]
    fn verify_refuses_another_issuer_an_expired_token_and_tampering() {
        let keys = keys(SigningAlgorithm::ES256);
        let now = Timestamp::now();
        let other = keys
            .sign(now, &claims("https://evil.example.com", in_an_hour()))
            .unwrap();
        assert!(matches!(
            keys.verify::<Value>(&other, ISSUER),
            Err(KeyError::WrongIssuer)
        ));
        let no_iss = keys
            .sign(now, &json!({ "exp": in_an_hour().as_second() }))
            .unwrap();
        assert!(matches!(
            keys.verify::<Value>(&no_iss, ISSUER),
            Err(KeyError::WrongIssuer)
        ));
        let expired = keys
            .sign(now, &claims(ISSUER, now - SignedDuration::from_secs(1)))
            .unwrap();
        assert!(matches!(
            keys.verify::<Value>(&expired, ISSUER),
            Err(KeyError::Expired)
        ));
        let no_exp = keys.sign(now, &json!({ "iss": ISSUER })).unwrap();
        assert!(matches!(
            keys.verify::<Value>(&no_exp, ISSUER),
            Err(KeyError::Expired)
        ));
        // Claims changed after signing.
        let token = keys.sign(now, &claims(ISSUER, in_an_hour())).unwrap();
        let (header, mut body) = parts(&token);
        body["sub"] = json!("admin");
        let signature = token.rsplit('.').next().unwrap();
        let tampered = format!("{}.{}.{signature}", b64(&header), b64(&body));
        assert!(matches!(
            keys.verify::<Value>(&tampered, ISSUER),
            Err(KeyError::BadSignature)
        ));
        // Not a JWS at all.
        let crit = json!({ "alg": "ES256", "kid": keys.keys[0].kid, "crit": ["exp"], "exp": 1 });
        let signed_crit = forged(&crit, &claims(ISSUER, in_an_hour()), |_| vec![0; 64]);
        assert!(matches!(
            keys.verify::<Value>(&signed_crit, ISSUER),
            Err(KeyError::MalformedToken(_))
        ));
        for garbage in ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.e30"] {
            assert!(keys.verify::<Value>(garbage, ISSUER).is_err(), "{garbage}");
        }
    }

    /// Prints the cost of one signature: run with `--nocapture` to see it.
    #[test]
    fn sign_time_rs256_and_es256() {
        for (algorithm, rounds) in [
            (SigningAlgorithm::RS256, 200),
            (SigningAlgorithm::ES256, 2000),
        ] {
            let keys = keys(algorithm);
            let body = claims(ISSUER, in_an_hour());
            let now = Timestamp::now();
            let prepared = keys.prepared();
            let start = Instant::now();
            for _ in 0..rounds {
                prepared.sign(now, &body).unwrap();
            }
            let per_prepared = start.elapsed() / rounds;
            // jsonwebtoken with a key parsed once still parses the key pair per signature.
            let (encoding, jwt_algorithm) = match algorithm {
                SigningAlgorithm::RS256 => (
                    jsonwebtoken::EncodingKey::from_rsa_pem(
                        keys.keys[0].private_key_pem.as_bytes(),
                    ),
                    Algorithm::RS256,
                ),
                SigningAlgorithm::ES256 => (
                    jsonwebtoken::EncodingKey::from_ec_pem(keys.keys[0].private_key_pem.as_bytes()),
                    Algorithm::ES256,
                ),
            };
            let encoding = encoding.unwrap();
            let header = jsonwebtoken::Header::new(jwt_algorithm);
            let start = Instant::now();
            for _ in 0..rounds {
                jsonwebtoken::encode(&header, &body, &encoding).unwrap();
            }
            let per_encoding_key = start.elapsed() / rounds;
            let start = Instant::now();
            for _ in 0..rounds / 10 {
                keys.sign(now, &body).unwrap();
            }
            let per_unprepared = start.elapsed() / (rounds / 10);
            let verify_rounds = rounds;
            let token = prepared.sign(now, &body).unwrap();
            let start = Instant::now();
            for _ in 0..verify_rounds {
                prepared.verify::<Value>(&token, ISSUER).unwrap();
            }
            let per_verify = start.elapsed() / verify_rounds;
            println!(
                "{}: sign {per_prepared:?} prepared, {per_encoding_key:?} with a jsonwebtoken EncodingKey, \
                 {per_unprepared:?} parsing the PEM each time; verify {per_verify:?}",
                algorithm.as_str()
            );
        }
    }
}
