//! Resources that name an IdentityProvider of their namespace (`spec.identityProviderRef`)
//! and keep a Secret of their own: which of them a changed IdentityProvider or Secret
//! concerns.

use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use crate::api::{IdentityProvider, OidcClient, ScimToken};

/// A resource of an IdentityProvider, with the Secrets its reconciliation reads or writes.
pub trait UsesIdentityProvider: Resource<DynamicType = ()> + Clone + 'static {
    /// `spec.identityProviderRef.name`.
    fn identity_provider(&self) -> &str;
    /// The Secret (of its namespace) its credentials are read from or written to.
    fn credential_secret(&self) -> String;
}

impl UsesIdentityProvider for ScimToken {
    fn identity_provider(&self) -> &str {
        &self.spec.identity_provider_ref.name
    }
    fn credential_secret(&self) -> String {
        super::scim_token::credential_secret_name(self)
    }
}

impl UsesIdentityProvider for OidcClient {
    fn identity_provider(&self) -> &str {
        &self.spec.identity_provider_ref.name
    }
    fn credential_secret(&self) -> String {
        super::oidc_client::secret_name(self)
    }
}

/// The resources of `store` in the namespace of `obj` for which `concerns` holds.
fn matching<K: UsesIdentityProvider, O: Resource>(
    store: &Store<K>,
    obj: &O,
    concerns: impl Fn(&K, &str) -> bool,
) -> Vec<ObjectRef<K>> {
    let (ns, name) = (obj.namespace(), obj.name_any());
    store
        .state()
        .iter()
        .filter(|t| t.namespace() == ns && concerns(t, &name))
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// The resources of `store` that name this IdentityProvider.
pub fn referencing_idp<K: UsesIdentityProvider>(
    store: &Store<K>,
    idp: &IdentityProvider,
) -> Vec<ObjectRef<K>> {
    matching(store, idp, |t, name| t.identity_provider() == name)
}

/// The resources of `store` that read or write this Secret.
pub fn referencing_secret<K: UsesIdentityProvider, S: Resource>(
    store: &Store<K>,
    secret: &S,
) -> Vec<ObjectRef<K>> {
    matching(store, secret, |t, name| t.credential_secret() == name)
}

/// The IdentityProviders of the resources of `store` that read or write this Secret.
pub fn idps_of_secret<K: UsesIdentityProvider, S: Resource>(
    store: &Store<K>,
    secret: &S,
) -> Vec<ObjectRef<IdentityProvider>> {
    referencing_secret(store, secret)
        .into_iter()
        .filter_map(|r| {
            let obj = store.get(&r)?;
            Some(ObjectRef::new(obj.identity_provider()).within(r.namespace.as_deref()?))
        })
        .collect()
}

/// The IdentityProvider `obj` names.
pub fn idp_of<K: UsesIdentityProvider>(obj: &K) -> Option<ObjectRef<IdentityProvider>> {
    obj.namespace()
        .map(|ns| ObjectRef::new(obj.identity_provider()).within(&ns))
}
