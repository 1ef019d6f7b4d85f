//! Names and label values the controller derives from a resource's name. Kubernetes allows
//! object names of 253 characters and label values of 63, so a derived value that would not
//! fit is shortened deterministically with a hash of the full name; values that fit are used
//! unchanged.

use sha2::{Digest, Sha256};

/// Longest object name Kubernetes accepts (a DNS subdomain).
pub const MAX_NAME: usize = 253;
/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// `{owner}{suffix}` (for example `okta-saml-sp`), or, when that exceeds [`MAX_NAME`], the
/// owner's name cut short followed by a hash of the whole owner name and the suffix, so that
/// two long names never share a generated object.
pub fn generated_name(owner: &str, suffix: &str) -> String {
    let plain = format!("{owner}{suffix}");
    if plain.len() <= MAX_NAME {
        return plain;
    }
    shortened(owner, MAX_NAME - suffix.len(), suffix)
}

/// A label value naming `name`: the name itself when it fits in [`MAX_LABEL_VALUE`]
/// characters, otherwise its beginning followed by a hash of the whole name.
pub fn label_value(name: &str) -> String {
    if name.len() <= MAX_LABEL_VALUE {
        return name.to_owned();
    }
    shortened(name, MAX_LABEL_VALUE, "")
}

/// `name` cut so that `{cut}-{hash}{suffix}` is `limit + suffix.len()` characters at most,
/// ending in a letter or digit as object names and label values must.
fn shortened(name: &str, limit: usize, suffix: &str) -> String {
    const HASH_LEN: usize = 16;
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    // Names are ASCII (DNS subdomains); `get` keeps this safe for anything else.
    let keep = limit.saturating_sub(HASH_LEN + 1);
    let cut = name
        .get(..keep.min(name.len()))
        .unwrap_or("")
        .trim_end_matches(['-', '.', '_']);
    format!("{cut}-{}{suffix}", &digest[..HASH_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_subdomain(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_NAME
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    }

    #[test]
    fn short_names_are_unchanged() {
        assert_eq!(generated_name("okta", "-saml-sp"), "okta-saml-sp");
        assert_eq!(label_value("okta"), "okta");
        let fits = "a".repeat(MAX_NAME - "-saml-sp".len());
        assert_eq!(generated_name(&fits, "-saml-sp"), format!("{fits}-saml-sp"));
    }

    #[test]
    fn long_names_are_shortened_validly_and_stay_distinct() {
        let a = "a".repeat(MAX_NAME);
        let b = format!("{}b", "a".repeat(MAX_NAME - 1));
        for suffix in ["-saml-sp", "-scim-token"] {
            let na = generated_name(&a, suffix);
            let nb = generated_name(&b, suffix);
            assert!(is_dns_subdomain(&na), "{na}");
            assert!(na.ends_with(suffix));
            assert_ne!(na, nb);
            assert_eq!(na, generated_name(&a, suffix), "deterministic");
        }
        // A cut that lands on a dot or a dash still gives a valid name.
        let dotted = format!("{}.{}", "a".repeat(227), "b".repeat(25));
        assert!(is_dns_subdomain(&generated_name(&dotted, "-saml-sp")));
        let l = label_value(&a);
        assert_eq!(l.len(), MAX_LABEL_VALUE);
        assert_ne!(l, label_value(&b));
        assert!(l.ends_with(|c: char| c.is_ascii_alphanumeric()));
    }
}
