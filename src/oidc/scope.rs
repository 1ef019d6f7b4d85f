//! OAuth scopes (RFC 6749 §3.3): a space-separated list, and what a client is granted of
//! what it asked for.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Asks for an ID token; an authorization request without it is not OpenID Connect.
pub const OPENID: &str = "openid";
/// The `email` and `email_verified` claims.
pub const EMAIL: &str = "email";
/// The `name` and `preferred_username` claims.
pub const PROFILE: &str = "profile";
/// The groups claim.
pub const GROUPS: &str = "groups";
/// A refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";
/// Every scope the provider knows, in the order discovery lists them.
pub const SUPPORTED: [&str; 5] = [OPENID, EMAIL, PROFILE, GROUPS, OFFLINE_ACCESS];

/// Scope tokens, without duplicates, in the order first given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// The scopes of a `scope` parameter. Tokens are separated by spaces; duplicates and
    /// tokens with characters RFC 6749 does not allow (`"`, `\`, controls, non-ASCII) are
    /// left out.
    pub fn parse(scope: &str) -> Scopes {
        let mut scopes = Scopes::default();
        for token in scope.split(' ') {
            if !token.is_empty() && token.bytes().all(scope_char) && !scopes.contains(token) {
                scopes.0.push(token.to_owned());
            }
        }
        scopes
    }

    /// Whether `scope` is one of them.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// The part of `requested` that a client allowed `allowed` is granted, in the requested order.
/// Scopes the provider does not know ([`SUPPORTED`]) are dropped, as are known ones the client
/// may not use; `openid` is kept whenever it was requested, since it is the protocol itself.
/// The caller refuses a request whose grant lacks `openid`.
///
/// Also narrows a refresh: `granted(&requested, original.iter())` keeps only what the
/// original grant had.
pub fn granted<S: AsRef<str>>(requested: &Scopes, allowed: impl IntoIterator<Item = S>) -> Scopes {
    let allowed: Vec<S> = allowed.into_iter().collect();
    let allowed = |scope: &str| scope == OPENID || allowed.iter().any(|a| a.as_ref() == scope);
    Scopes(
        requested
            .0
            .iter()
            .filter(|s| SUPPORTED.contains(&s.as_str()) && allowed(s))
            .cloned()
            .collect(),
    )
}

/// NQCHAR of RFC 6749 Appendix A: `%x21 / %x23-5B / %x5D-7E`.
fn scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Scopes::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_dedups_and_keeps_order() {
        let scopes = Scopes::parse("openid groups email groups openid");
        assert_eq!(
            scopes.iter().collect::<Vec<_>>(),
            ["openid", "groups", "email"]
        );
        assert_eq!(scopes.to_string(), "openid groups email");
        assert!(scopes.contains("email"));
        assert!(!scopes.contains("profile"));
    }

    #[test]
    fn parse_skips_empty_and_invalid_tokens() {
        let scopes = Scopes::parse("  openid  a\"b c\\d é email\tx email ");
        assert_eq!(scopes.iter().collect::<Vec<_>>(), ["openid", "email"]);
        assert!(Scopes::parse("").is_empty());
        assert_eq!(Scopes::parse("").to_string(), "");
    }

    #[test]
    fn granted_keeps_allowed_known_scopes_in_requested_order() {
        let allowed = ["email", "groups", "openid"];
        let requested = Scopes::parse("groups openid profile offline_access custom email");
        let got = granted(&requested, allowed);
        assert_eq!(got.to_string(), "groups openid email");
    }

    #[test]
    fn granted_drops_unknown_scopes_even_when_allowed() {
        let got = granted(&Scopes::parse("openid admin"), ["openid", "admin"]);
        assert_eq!(got.to_string(), "openid");
    }

    #[test]
    fn openid_is_kept_when_requested_and_never_added() {
        assert_eq!(
            granted(&Scopes::parse("openid email"), ["email"]).to_string(),
            "openid email"
        );
        let without = granted(&Scopes::parse("email"), SUPPORTED);
        assert!(!without.contains(OPENID));
        assert_eq!(without.to_string(), "email");
    }

    #[test]
    fn a_clients_configured_scopes_serve_as_allowed() {
        let configured: Vec<String> = vec!["openid".into(), "groups".into()];
        let got = granted(&Scopes::parse("openid groups email"), &configured);
        assert_eq!(got.to_string(), "openid groups");
    }

    #[test]
    fn a_refresh_narrows_to_the_original_grant() {
        let original = Scopes::parse("openid email");
        let got = granted(&Scopes::parse("openid email groups"), original.iter());
        assert_eq!(got.to_string(), "openid email");
    }

    #[test]
    fn scopes_serialize_as_one_string() {
        let scopes = Scopes::parse("openid email");
        assert_eq!(serde_json::to_value(&scopes).unwrap(), "openid email");
        let back: Scopes = serde_json::from_str("\"openid  email openid\"").unwrap();
        assert_eq!(back, scopes);
    }
}
