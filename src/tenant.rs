//! The identity of an IdentityProvider on the server: its `namespace/name`, which names its
//! tenant in the identity store, its session cookie, its metrics and its log lines.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// An IdentityProvider's identity, written `namespace/name`.
///
/// The written form is what the identity store keeps as the tenant and what the session
/// cookie name is derived from, so it never changes for a given IdentityProvider.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant {
    /// Namespace of the IdentityProvider.
    pub namespace: String,
    /// Name of the IdentityProvider.
    pub name: String,
}

impl Tenant {
    /// The tenant of IdentityProvider `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Tenant {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a text is not a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IdentityProvider: write it as namespace/name")]
pub struct NotATenant(String);

impl FromStr for Tenant {
    type Err = NotATenant;

    /// Reads `namespace/name`: exactly one `/`, with text on both sides.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((namespace, name))
                if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
            {
                Ok(Tenant::new(namespace, name))
            }
            _ => Err(NotATenant(s.to_owned())),
        }
    }
}

/// How the identity store is told which tenant: a [`Tenant`], or its written form
/// `namespace/name` (what the store keeps, and how tools and tests name a tenant).
pub trait TenantKey {
    /// The written form, `namespace/name`.
    fn key(&self) -> Cow<'_, str>;
}

impl TenantKey for Tenant {
    fn key(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl<T: TenantKey + ?Sized> TenantKey for &T {
    fn key(&self) -> Cow<'_, str> {
        (**self).key()
    }
}

impl TenantKey for str {
    fn key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl TenantKey for String {
    fn key(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_written_namespace_slash_name() {
        assert_eq!(Tenant::new("team-a", "okta").to_string(), "team-a/okta");
    }

    #[test]
    fn a_written_tenant_reads_back_as_itself() {
        let tenant = Tenant::new("team-a", "okta");
        assert_eq!(tenant.to_string().parse::<Tenant>(), Ok(tenant));
        let parsed: Tenant = "ns/name".parse().unwrap();
        assert_eq!(
            (parsed.namespace.as_str(), parsed.name.as_str()),
            ("ns", "name")
        );
        assert_eq!(parsed.to_string(), "ns/name");
    }

    #[test]
    fn only_one_slash_with_text_on_both_sides_is_a_tenant() {
        for text in ["", "/", "ns", "ns/", "/name", "a/b/c", "a//b", "//"] {
            assert!(text.parse::<Tenant>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn the_store_key_of_a_tenant_is_its_written_form() {
        assert_eq!(Tenant::new("team-a", "okta").key(), "team-a/okta");
        assert_eq!("team-a/okta".key(), "team-a/okta");
        assert_eq!(String::from("team-a/okta").key(), "team-a/okta");
    }

    #[test]
    fn tenants_order_by_namespace_then_name() {
        let mut tenants = [
            Tenant::new("b", "a"),
            Tenant::new("a", "b"),
            Tenant::new("a", "a"),
        ];
        tenants.sort();
        assert_eq!(
            tenants.map(|t| t.to_string()),
            ["a/a", "a/b", "b/a"].map(String::from)
        );
    }

    #[test]
    fn a_refusal_says_how_to_write_a_tenant() {
        let err = "okta".parse::<Tenant>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"okta\" is not an IdentityProvider: write it as namespace/name"
        );
    }
}
