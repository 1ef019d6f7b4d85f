//! Signing keys of one IdentityProvider's OpenID Provider.
//!
//! The controller keeps them in a Secret of the operator namespace and compiles them into the
//! IdentityProvider's configuration. A new key is published in the JWKS document before it
//! signs anything ([`SigningKey::signs_from`]), so relying parties that cache the JWKS already
//! know it; a key that stopped signing stays published until every token it signed has
//! expired.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

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
