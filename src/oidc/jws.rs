//! JSON Web Signatures with an issuer's keys: signing tokens, verifying our own, and the JWKS
//! document that publishes the public keys.
//!
//! Parsing a private key costs more than a signature, so the server keeps a [`PreparedKeys`]
//! per configuration version and signs with it; the methods on [`SigningKeys`] prepare the keys
//! on every call and suit rare uses.

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
        keys.sort_by(|a, b| (b.signs_from, b.created).cmp(&(a.signs_from, a.created)));
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
        let header = token
            .split('.')
            .next()
            .ok_or_else(|| KeyError::MalformedToken("no header".into()))?;
        if token.split('.').count() != 3 {
            return Err(KeyError::MalformedToken(
                "not a compact JWS of three parts".into(),
            ));
        }
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|e| KeyError::MalformedToken(format!("header: {e}")))?;
        let header: Header = serde_json::from_slice(&header)
            .map_err(|e| KeyError::MalformedToken(format!("header: {e}")))?;
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
                ErrorKind::InvalidAlgorithm => KeyError::WrongAlgorithm(key.algorithm.as_str().into()),
                ErrorKind::Json(e) => KeyError::Claims(e.to_string()),
                other => KeyError::MalformedToken(format!("{other:?}")),
            })
    }
}
