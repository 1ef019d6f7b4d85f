//! The committed CRD manifests are exactly what `sso-operator crd` prints.

use std::path::Path;

fn assert_file_matches(relative: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let committed =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let generated = sso_operator::api::crds_yaml().expect("render CRDs");
    assert!(
        committed == generated,
        "{relative} is out of date with src/api: run `cargo run -- crd > {relative}` and commit it"
    );
}

#[test]
fn committed_crds_match_the_rust_types() {
    assert_file_matches("crds/sso-operator.yaml");
}

#[test]
fn the_chart_ships_the_same_crds() {
    assert_file_matches("charts/sso-operator/crds/sso-operator.yaml");
}

#[test]
fn printed_crds_name_every_kind_in_the_sso_category() {
    let crds = sso_operator::api::crds();
    let kinds: Vec<_> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
    assert_eq!(kinds, ["IdentityProvider", "ScimToken", "OidcClient"]);
    for crd in &crds {
        assert_eq!(crd.spec.group, "sso-operator.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["sso".to_owned()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
    assert_eq!(
        crds[0].spec.names.short_names.as_deref(),
        Some(&["idp".to_owned()][..])
    );
    assert_eq!(
        crds[1].spec.names.short_names.as_deref(),
        Some(&["scimtok".to_owned()][..])
    );
    assert_eq!(
        crds[2].spec.names.short_names.as_deref(),
        Some(&["oidcc".to_owned()][..])
    );
}

#[test]
fn the_reference_lists_every_condition_type_and_reason() {
    use sso_operator::api::conditions::{TYPES, reason};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).expect("read docs/reference.md");
    let (_, conditions) = committed
        .split_once("\n## Conditions\n")
        .expect("a Conditions section in docs/reference.md");
    for d in TYPES.iter().chain(reason::ALL) {
        let row = format!("| `{}` | {} |", d.value, d.kinds.join(", "));
        assert!(conditions.contains(&row), "docs/reference.md lacks {row}");
    }
    // Each kind's status.conditions field names every condition type it can carry.
    for crd in sso_operator::api::crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let description = schema
            .pointer("/openAPIV3Schema/properties/status/properties/conditions/description")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        for d in TYPES
            .iter()
            .filter(|d| d.kinds.contains(&crd.spec.names.kind.as_str()))
        {
            assert!(
                description.contains(&format!("`{}`", d.value)),
                "{} status.conditions does not mention {}: {description}",
                crd.spec.names.kind,
                d.value
            );
        }
    }
}

#[test]
fn the_reference_lists_every_sign_in_refusal_reason() {
    use sso_operator::api::SignInRefusal;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).expect("read docs/reference.md");
    let (_, refusals) = committed
        .split_once("\n## Sign-in refusal reasons\n")
        .expect("a Sign-in refusal reasons section in docs/reference.md");
    for refusal in SignInRefusal::ALL {
        let row = format!("\n| `{}` | ", refusal.reason());
        assert!(refusals.contains(&row), "docs/reference.md lacks {row:?}");
    }
}

#[test]
fn the_field_reference_matches_the_schemas() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).expect("read docs/reference.md");
    assert!(
        committed == sso_operator::api::reference::markdown(),
        "docs/reference.md is out of date: run `cargo run -- reference > docs/reference.md`"
    );
}

/// Every example folder is a provider's (an IdentityProvider and a ScimToken) or an
/// application's (an OidcClient and the application's own configuration, in files that are not
/// `.yaml`); an application's OidcClient refers to a provider's IdentityProvider.
#[test]
fn every_provider_has_an_identity_provider_and_a_scim_token_for_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut providers = 0;
    let mut all_idps = Vec::new();
    let mut client_refs = Vec::new();
    for entry in std::fs::read_dir(&root).expect("examples/") {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let mut idps = Vec::new();
        let mut token_refs = Vec::new();
        let mut clients = Vec::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
            for doc in docs {
                let reference = || {
                    doc["spec"]["identityProviderRef"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                };
                match doc["kind"].as_str() {
                    Some("IdentityProvider") => {
                        idps.push(doc["metadata"]["name"].as_str().unwrap().to_owned())
                    }
                    Some("ScimToken") => token_refs.push(reference()),
                    Some("OidcClient") => clients.push(reference()),
                    _ => {}
                }
            }
        }
        if idps.is_empty() && !clients.is_empty() {
            client_refs.extend(clients.into_iter().map(|r| (dir.clone(), r)));
            continue;
        }
        providers += 1;
        assert_eq!(idps.len(), 1, "{}: one IdentityProvider", dir.display());
        assert_eq!(token_refs, idps, "{}: a ScimToken for it", dir.display());
        all_idps.extend(idps);
    }
    assert_eq!(
        providers, 8,
        "okta, entra, google, jumpcloud, onelogin, auth0, keycloak, generic"
    );
    for (dir, reference) in client_refs {
        assert!(
            all_idps.contains(&reference),
            "{}: the OidcClient refers to {reference:?}, which no example defines",
            dir.display()
        );
    }
}
