//! The Okta walkthrough, the Okta example, the field reference and troubleshooting speak the
//! labels of Okta's console for a custom app integration — what a user of sso-operator creates —
//! and name catalog-app labels only where they say that they belong to catalog apps.

use std::path::Path;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Labels that exist only on Okta catalog (OIN) apps.
const CATALOG_ONLY: &[&str] = &[
    "Configure API Integration",
    "Enable API Integration",
    "API Token",
    "Test API Credentials",
];

/// Spellings Okta's console does not use.
const MISSPELLED: &[&str] = &["Default Relay State", "Single sign on URL"];

#[test]
fn okta_texts_use_the_custom_app_integration_labels() {
    let files = [
        "docs/okta.md",
        "examples/okta/identityprovider.yaml",
        "examples/okta/scimtoken.yaml",
        "docs/troubleshooting.md",
        "docs/reference.md",
        "README.md",
        "scripts/demo",
        "scripts/play-okta.py",
    ];
    for file in files {
        let text = read(file);
        // A paragraph (or comment block) that says it is about catalog apps may name them.
        for paragraph in text.split("\n\n") {
            let about_catalog = paragraph.contains("catalog") || paragraph.contains("Catalog");
            for label in CATALOG_ONLY {
                assert!(
                    about_catalog || !paragraph.contains(label),
                    "{file} names the catalog-app label {label:?} outside a catalog note:\n{paragraph}"
                );
            }
            for wrong in MISSPELLED {
                assert!(
                    !paragraph.contains(wrong),
                    "{file} spells {wrong:?}, which Okta's console does not show"
                );
            }
        }
    }

    // Labels may wrap across lines.
    let walkthrough = read("docs/okta.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for label in [
        "Create App Integration",
        "SAML 2.0",
        "General Settings",
        "Configure SAML",
        "Single sign-on URL",
        "Audience URI (SP Entity ID)",
        "Default RelayState",
        "Name ID format",
        "Application username",
        "Attribute Statements",
        "Group Attribute Statements",
        "Filter",
        "Finish",
        "App Settings",
        "Provisioning",
        "SCIM connector base URL",
        "Unique identifier field for users",
        "Supported provisioning actions",
        "Authentication Mode",
        "HTTP Header",
        "Test Connector Configuration",
        "To App",
        "Create Users",
        "Update User Attributes",
        "Deactivate Users",
        "Sync Password",
        "Assignments",
    ] {
        assert!(
            walkthrough.contains(&format!("**{label}**")),
            "docs/okta.md does not name Okta's **{label}**"
        );
    }
}
