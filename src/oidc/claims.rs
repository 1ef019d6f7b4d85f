//! The claims of the tokens the provider signs.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Claims [`IdToken`] and [`AccessToken`] set themselves; a groups claim of one of these
/// names would clash with them.
pub const RESERVED_CLAIMS: [&str; 23] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "client_id",
    "scope",
    "fam",
    "cnf",
];

/// Whether `name` may be used as the groups claim: not empty and not one of
/// [`RESERVED_CLAIMS`].
pub fn valid_groups_claim(name: &str) -> bool {
    !name.is_empty() && !RESERVED_CLAIMS.contains(&name)
}

/// The claims of an ID token (OpenID Connect Core §2, §5.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdToken {
    /// The issuer URL.
    pub iss: String,
    /// The user's ID in the IdentityProvider.
    pub sub: String,
    /// The client ID of the relying party.
    pub aud: String,
    /// Expiry.
    #[serde(with = "jiff::fmt::serde::timestamp::second::required")]
    pub exp: Timestamp,
    /// Issue time.
    #[serde(with = "jiff::fmt::serde::timestamp::second::required")]
    pub iat: Timestamp,
    /// When the user signed in at the IdentityProvider.
    #[serde(with = "jiff::fmt::serde::timestamp::second::required")]
    pub auth_time: Timestamp,
    /// The `nonce` of the authorization request, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The user's email address (scope `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email address is verified (scope `email`): the IdentityProvider vouches for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The user's display name (scope `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's `userName` (scope `profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Further claims: the groups, under the client's groups claim name (scope `groups`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl IdToken {
    /// Puts `groups` under the claim `claim`. Does nothing and answers false when `claim`
    /// is not a [`valid_groups_claim`].
    pub fn set_groups(&mut self, claim: &str, groups: Vec<String>) -> bool {
        if !valid_groups_claim(claim) {
            return false;
        }
        self.extra.insert(claim.to_owned(), groups.into());
        true
    }

    /// The groups under the claim `claim`, if it holds a list of strings.
    pub fn groups(&self, claim: &str) -> Option<Vec<String>> {
        serde_json::from_value(self.extra.get(claim)?.clone()).ok()
    }
}

/// The claims of an access token: a JWT that only the provider's own endpoints (userinfo)
/// read, though relying parties may verify it with the JWKS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The issuer URL.
    pub iss: String,
    /// The user's ID in the IdentityProvider.
    pub sub: String,
    /// The audience.
    pub aud: String,
    /// Expiry.
    #[serde(with = "jiff::fmt::serde::timestamp::second::required")]
    pub exp: Timestamp,
    /// Issue time.
    #[serde(with = "jiff::fmt::serde::timestamp::second::required")]
    pub iat: Timestamp,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The grant family: revoking it (logout, refresh token reuse) ends the token at once.
    pub fam: String,
    /// A unique token ID.
    pub jti: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id_token() -> IdToken {
        IdToken {
            iss: "https://sso.example.com/oidc/team-a/okta".into(),
            sub: "4f1c".into(),
            aud: "kubectl".into(),
            exp: Timestamp::from_second(1_800_003_600).unwrap(),
            iat: Timestamp::from_second(1_800_000_000).unwrap(),
            auth_time: Timestamp::from_second(1_799_999_000).unwrap(),
            nonce: None,
            email: None,
            email_verified: None,
            name: None,
            preferred_username: None,
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn an_id_token_serializes_numeric_dates_and_leaves_out_absent_claims() {
        assert_eq!(
            serde_json::to_value(id_token()).unwrap(),
            json!({
                "iss": "https://sso.example.com/oidc/team-a/okta",
                "sub": "4f1c",
                "aud": "kubectl",
                "exp": 1_800_003_600,
                "iat": 1_800_000_000,
                "auth_time": 1_799_999_000,
            })
        );
    }

    #[test]
    fn groups_go_under_the_configured_claim_and_round_trip() {
        let mut token = IdToken {
            nonce: Some("n-0S6_WzA2Mj".into()),
            email: Some("ada@example.com".into()),
            email_verified: Some(true),
            name: Some("Ada Lovelace".into()),
            preferred_username: Some("ada".into()),
            ..id_token()
        };
        assert!(token.set_groups("cluster-groups", vec!["admins".into(), "dev".into()]));
        let json = serde_json::to_value(&token).unwrap();
        assert_eq!(json["cluster-groups"], json!(["admins", "dev"]));
        assert_eq!(json["nonce"], "n-0S6_WzA2Mj");
        assert_eq!(json["email_verified"], true);
        assert_eq!(json["preferred_username"], "ada");
        let back: IdToken = serde_json::from_value(json).unwrap();
        assert_eq!(back, token);
        assert_eq!(back.groups("cluster-groups").unwrap(), ["admins", "dev"]);
        assert_eq!(back.groups("groups"), None);
    }

    #[test]
    fn a_groups_claim_cannot_replace_a_standard_claim() {
        let mut token = id_token();
        for claim in ["sub", "email", "iss", ""] {
            assert!(!token.set_groups(claim, vec!["admins".into()]), "{claim}");
        }
        assert!(token.extra.is_empty());
        assert!(valid_groups_claim("groups"));
        assert!(valid_groups_claim("https://example.com/groups"));
    }

    #[test]
    fn an_access_token_has_its_grant_family() {
        let token = AccessToken {
            iss: "https://sso.example.com/oidc/team-a/okta".into(),
            sub: "4f1c".into(),
            aud: "kubectl".into(),
            exp: Timestamp::from_second(1_800_003_600).unwrap(),
            iat: Timestamp::from_second(1_800_000_000).unwrap(),
            client_id: "kubectl".into(),
            scope: "openid groups".into(),
            fam: "f-1".into(),
            jti: "j-1".into(),
        };
        let json = serde_json::to_value(&token).unwrap();
        assert_eq!(json["fam"], "f-1");
        assert_eq!(json["exp"], 1_800_003_600);
        assert_eq!(serde_json::from_value::<AccessToken>(json).unwrap(), token);
    }
}
