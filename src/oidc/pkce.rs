//! Proof Key for Code Exchange (RFC 7636), `S256` only: `plain` would hand the verifier to
//! anyone who sees the authorization request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// The only `code_challenge_method` accepted.
pub const S256: &str = "S256";

/// Whether `verifier` is a valid `code_verifier`: 43 to 128 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`).
pub fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(unreserved)
}

/// Whether `challenge` can be an `S256` `code_challenge`: the base64url of a SHA-256, 43
/// characters without padding.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|digest| digest.len() == 32)
}

/// Whether `verifier` is valid and `challenge` is `BASE64URL(SHA256(verifier))`.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !valid_verifier(verifier) {
        return false;
    }
    let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    // The verifier is the secret; compare without an early exit.
    expected.len() == challenge.len()
        && expected
            .bytes()
            .zip(challenge.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies() {
        assert!(verify_s256(VERIFIER, CHALLENGE));
        assert!(valid_challenge(CHALLENGE));
    }

    #[test]
    fn a_wrong_verifier_or_challenge_fails() {
        let other = format!("{}A", &VERIFIER[..VERIFIER.len() - 1]);
        assert!(!verify_s256(&other, CHALLENGE));
        assert!(!verify_s256(VERIFIER, &CHALLENGE[..42]));
        assert!(!verify_s256(VERIFIER, ""));
        // `plain`: the challenge is the verifier itself.
        assert!(!verify_s256(VERIFIER, VERIFIER));
    }

    #[test]
    fn verifiers_are_43_to_128_unreserved_characters() {
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(valid_verifier(&"Az09-._~".repeat(16)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        for bad in ['+', '/', '=', ' ', '%', 'é'] {
            let verifier = format!("{}{bad}", "a".repeat(43));
            assert!(!valid_verifier(&verifier), "{bad:?}");
        }
        // A too-short verifier fails even when its challenge matches.
        let short = "abc";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(short));
        assert!(!verify_s256(short, &challenge));
    }

    #[test]
    fn challenges_are_the_base64url_of_a_sha256() {
        assert!(!valid_challenge(&"a".repeat(42)));
        assert!(!valid_challenge(&format!("{}=", &CHALLENGE[..42])));
        assert!(!valid_challenge(&CHALLENGE.replace('-', "+")));
    }
}
