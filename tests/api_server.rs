//! The CRDs against a real kube-apiserver: they install, every example is accepted, every CEL
//! rule rejects a bad object with its message, and the API server applies the same defaults
//! as the Rust types (so GitOps tools see no drift).

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use sso_operator::api::{IdentityProvider, IdentityProviderSpec, ScimToken};
use support::{TestNamespace, admin_client, install_crds, wait_for};

const PLACEHOLDER_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

async fn setup(prefix: &str) -> (Client, TestNamespace) {
    let client = admin_client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    (client, ns)
}

fn idp_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("sso-operator.dev", "v1alpha1", "IdentityProvider");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn token_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("sso-operator.dev", "v1alpha1", "ScimToken");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn object(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "sso-operator.dev/v1alpha1",
        "kind": kind,
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("valid object")
}

fn explicit_idp_spec() -> Value {
    json!({
        "idp": {
            "ssoUrl": "https://idp.example.com/sso",
            "entityId": "https://idp.example.com/entity",
            "certificates": [{ "pem": PLACEHOLDER_PEM }],
        }
    })
}

/// Creates the object and expects the API server to refuse it with `message` in the error.
async fn expect_rejected(api: &Api<DynamicObject>, obj: DynamicObject, message: &str) {
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => panic!("the API server accepted an object that must be rejected with {message:?}"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "unexpected status: {status:?}");
            assert!(
                status.message.contains(message),
                "rejection message {:?} does not contain {message:?}",
                status.message
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = admin_client().await;
    install_crds(&client).await;
    // Both kinds are served: listing works, with and without the short name's resource.
    let ns = TestNamespace::new(&client, "established").await;
    assert!(
        idp_api(&client, &ns.name)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        token_api(&client, &ns.name)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// The server-side table of `resource` in `ns` (what `kubectl get -o wide` prints): the
/// column definitions, and each row's cells by column name, keyed by object name.
async fn table(
    client: &Client,
    ns: &str,
    resource: &str,
) -> (Vec<Value>, std::collections::BTreeMap<String, Value>) {
    let request = axum::http::Request::get(format!(
        "/apis/sso-operator.dev/v1alpha1/namespaces/{ns}/{resource}"
    ))
    .header(
        axum::http::header::ACCEPT,
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .body(Vec::new())
    .unwrap();
    let table: Value = client.request(request).await.expect("table");
    let columns = table["columnDefinitions"].as_array().unwrap().clone();
    let rows = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cells: serde_json::Map<String, Value> = columns
                .iter()
                .zip(row["cells"].as_array().unwrap())
                .map(|(c, v)| (c["name"].as_str().unwrap().to_owned(), v.clone()))
                .collect();
            (
                row["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                Value::Object(cells),
            )
        })
        .collect();
    (columns, rows)
}

/// The definition of the table column `name`.
fn column<'a>(columns: &'a [Value], name: &str) -> &'a Value {
    columns
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name:?} in {columns:#?}"))
}

/// Every example manifest applied as it is, names included, in a namespace of its own, under
/// the real controller.
struct Examples {
    client: Client,
    ns: TestNamespace,
    controller: support::operator::Operator,
    /// The IdentityProviders applied: the file each came from and its name.
    idps: Vec<(std::path::PathBuf, String)>,
}

impl Examples {
    async fn apply() -> Self {
        let (client, ns) = setup("examples").await;
        let root = support::repo_root().join("examples");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(
            files.len() >= 3,
            "expected example manifests under {}",
            root.display()
        );
        let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
        let mut applied = 0;
        let mut idps = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", file.display()));
            for doc in docs.into_iter().filter(|d| !d.is_null()) {
                // Applied as they are, names included (the examples' names are distinct).
                let mut obj: DynamicObject = serde_json::from_value(doc)
                    .unwrap_or_else(|e| panic!("{} holds a malformed object: {e}", file.display()));
                let types = obj.types.clone().expect("apiVersion and kind");
                let gvk = GroupVersionKind::try_from(&types).unwrap();
                let (resource, _) = discovery.resolve_gvk(&gvk).expect("kind is served");
                let name = obj.name_any();
                obj.metadata.namespace = Some(ns.name.clone());
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &ns.name, &resource);
                api.create(&PostParams::default(), &obj)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{}: {} {name} was rejected: {e}", file.display(), gvk.kind)
                    });
                if gvk.kind == "IdentityProvider" {
                    idps.push((file.clone(), name));
                }
                applied += 1;
            }
        }
        assert!(applied >= 6, "applied only {applied} objects");

        let kubeconfig = support::operator::controller_kubeconfig(&client, &ns.name).await;
        let controller = support::operator::Operator::start(&kubeconfig, &ns.name, &[]);
        Self {
            client,
            ns,
            controller,
            idps,
        }
    }

    fn identity_providers(&self) -> Api<IdentityProvider> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// The Ready condition of IdentityProvider `name` (from `file`) once the controller has
    /// assessed its current generation.
    async fn ready(
        &self,
        file: &std::path::Path,
        name: &str,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        wait_for(Duration::from_secs(60), || {
            let api = self.identity_providers();
            async move {
                let idp = api.get(name).await.ok()?;
                let status = idp.status?;
                (status.observed_generation == idp.metadata.generation)
                    .then_some(())
                    .and_then(|_| status.conditions.into_iter().find(|c| c.type_ == "Ready"))
            }
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{}: no Ready condition; operator log:\n{}",
                file.display(),
                self.controller.log_text()
            )
        })
    }

    /// The Ready message of IdentityProvider `okta` (examples/okta).
    async fn okta_ready_message(&self) -> String {
        let file = self
            .idps
            .iter()
            .find(|(_, name)| name == "okta")
            .map(|(file, _)| file.clone())
            .expect("an example IdentityProvider named okta");
        self.ready(&file, "okta").await.message
    }
}

#[tokio::test]
async fn every_example_is_accepted_and_stays_not_ready_on_its_placeholders() {
    // Under the real controller, none turns Ready: each says which placeholders to fill in.
    let examples = Examples::apply().await;
    let api = examples.identity_providers();
    for (file, name) in &examples.idps {
        let ready = examples.ready(file, name).await;
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Placeholder"),
            "{}: {ready:?}",
            file.display()
        );
        assert!(
            ready.message.contains("REPLACE-ME") && ready.message.contains("spec.idp."),
            "{}: the message names the fields to fill in: {}",
            file.display(),
            ready.message
        );
    }
    let okta = api.get("okta").await.unwrap();
    let message =
        &sso_operator::api::conditions::find(&okta.status.as_ref().unwrap().conditions, "Ready")
            .unwrap()
            .message;
    for console in [
        "Sign on URL",
        "Issuer",
        "Signing Certificate",
        "spec.idp.ssoUrl",
    ] {
        assert!(message.contains(console), "{console:?} in {message}");
    }
}

#[tokio::test]
async fn kubectl_get_idp_wide_shows_the_earliest_certificate_expiry_and_the_ready_message() {
    let examples = Examples::apply().await;
    let (client, ns) = (examples.client.clone(), &examples.ns);
    let message = &examples.okta_ready_message().await;
    let okta = examples.identity_providers().get("okta").await.unwrap();
    // `kubectl get idp -o wide`: the earliest certificate expiry and the Ready message.
    let status = okta.status.clone().unwrap();
    let not_after = status
        .certificate_not_after
        .clone()
        .expect("certificateNotAfter");
    assert_eq!(
        Some(&not_after),
        status.certificates.iter().map(|c| &c.not_after).min()
    );
    let (columns, rows) = table(&client, &ns.name, "identityproviders").await;
    for name in ["Certificate Expires", "Message"] {
        assert_eq!(
            column(&columns, name)["priority"],
            1,
            "{name} is a wide column"
        );
    }
    assert_eq!(
        column(&columns, "Certificate Expires")["format"],
        "date-time"
    );
    assert_eq!(
        rows["okta"]["Certificate Expires"],
        serde_json::to_value(&not_after).unwrap()
    );
    assert_eq!(rows["okta"]["Message"], json!(message));
    assert_eq!(rows["okta"]["Reason"], "Placeholder");
}

#[tokio::test]
async fn kubectl_get_scimtokens_shows_a_short_name_the_expiry_as_a_time_and_the_message() {
    let examples = Examples::apply().await;
    let (client, ns, op) = (examples.client.clone(), &examples.ns, &examples.controller);
    // ScimTokens: a short name, the expiry as a time (a `date` column would print a future
    // time as `<invalid>`), and the Ready message.
    let groups = client
        .list_api_group_resources("sso-operator.dev/v1alpha1")
        .await
        .unwrap();
    let scim_tokens = groups
        .resources
        .iter()
        .find(|r| r.name == "scimtokens")
        .unwrap();
    assert_eq!(
        scim_tokens.short_names.as_deref(),
        Some(&["scimtok".to_owned()][..])
    );
    let tokens: Api<ScimToken> = Api::namespaced(client.clone(), &ns.name);
    let expires = wait_for(Duration::from_secs(60), || {
        let tokens = tokens.clone();
        async move { tokens.get("okta").await.ok()?.status?.expires_at }
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the okta ScimToken never expires; operator log:\n{}",
            op.log_text()
        )
    });
    let (columns, rows) = table(&client, &ns.name, "scimtokens").await;
    assert_eq!(column(&columns, "Expires")["format"], "date-time");
    assert_eq!(column(&columns, "Message")["priority"], 1);
    assert_eq!(
        rows["okta"]["Expires"],
        serde_json::to_value(&expires).unwrap()
    );
}

#[tokio::test]
async fn idp_requires_metadata_url_or_explicit_fields() {
    let (client, ns) = setup("cel-idp-xor").await;
    let api = idp_api(&client, &ns.name);
    expect_rejected(
        &api,
        object("IdentityProvider", "none", json!({ "idp": {} })),
        "set either idp.metadataUrl, or idp.ssoUrl and idp.entityId",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "no-entity",
            json!({ "idp": {
                "ssoUrl": "https://idp.example.com/sso",
                "certificates": [{ "pem": PLACEHOLDER_PEM }],
            }}),
        ),
        "set either idp.metadataUrl, or idp.ssoUrl and idp.entityId",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "both",
            json!({ "idp": {
                "metadataUrl": "https://idp.example.com/metadata",
                "ssoUrl": "https://idp.example.com/sso",
                "entityId": "https://idp.example.com/entity",
            }}),
        ),
        "idp.metadataUrl cannot be combined with idp.ssoUrl",
    )
    .await;
    // The good forms are accepted.
    api.create(
        &PostParams::default(),
        &object("IdentityProvider", "explicit", explicit_idp_spec()),
    )
    .await
    .expect("explicit fields are accepted");
    api.create(
        &PostParams::default(),
        &object(
            "IdentityProvider",
            "metadata",
            json!({ "idp": { "metadataUrl": "https://idp.example.com/metadata" }}),
        ),
    )
    .await
    .expect("a metadata URL alone is accepted");
}

#[tokio::test]
async fn idp_explicit_fields_require_a_certificate_with_exactly_one_source() {
    let (client, ns) = setup("cel-idp-cert").await;
    let api = idp_api(&client, &ns.name);
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "no-cert",
            json!({ "idp": {
                "ssoUrl": "https://idp.example.com/sso",
                "entityId": "https://idp.example.com/entity",
            }}),
        ),
        "idp.certificates is required with idp.ssoUrl",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "empty-certs",
            json!({ "idp": {
                "ssoUrl": "https://idp.example.com/sso",
                "entityId": "https://idp.example.com/entity",
                "certificates": [],
            }}),
        ),
        "idp.certificates is required with idp.ssoUrl",
    )
    .await;
    expect_rejected(
        &api,
        object("IdentityProvider", "two-sources", json!({ "idp": {
            "ssoUrl": "https://idp.example.com/sso",
            "entityId": "https://idp.example.com/entity",
            "certificates": [{ "pem": PLACEHOLDER_PEM, "secretKeyRef": { "name": "s", "key": "k" } }],
        }})),
        "exactly one of pem, secretKeyRef or configMapKeyRef",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "no-source",
            json!({ "idp": {
                "ssoUrl": "https://idp.example.com/sso",
                "entityId": "https://idp.example.com/entity",
                "certificates": [{}],
            }}),
        ),
        "exactly one of pem, secretKeyRef or configMapKeyRef",
    )
    .await;
}

#[tokio::test]
async fn idp_urls_must_be_https() {
    let (client, ns) = setup("cel-https").await;
    let api = idp_api(&client, &ns.name);
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "http-metadata",
            json!({ "idp": { "metadataUrl": "http://idp.example.com/metadata" }}),
        ),
        "idp.metadataUrl must be an https:// URL",
    )
    .await;
    let mut spec = explicit_idp_spec();
    spec["idp"]["ssoUrl"] = json!("http://idp.example.com/sso");
    expect_rejected(
        &api,
        object("IdentityProvider", "http-sso", spec),
        "idp.ssoUrl must be an https:// URL",
    )
    .await;
    let mut spec = explicit_idp_spec();
    spec["idp"]["singleLogoutUrl"] = json!("http://idp.example.com/slo");
    expect_rejected(
        &api,
        object("IdentityProvider", "http-slo", spec),
        "idp.singleLogoutUrl must be an https:// URL",
    )
    .await;
    let mut spec = explicit_idp_spec();
    spec["idp"]["singleLogoutBinding"] = json!("HTTP-Artifact");
    expect_rejected(
        &api,
        object("IdentityProvider", "artifact-slo", spec),
        "Unsupported value",
    )
    .await;
    let mut spec = explicit_idp_spec();
    spec["allowedRedirects"] = json!(["ftp://files.example.com/"]);
    expect_rejected(
        &api,
        object("IdentityProvider", "ftp-redirect", spec),
        "every allowedRedirects entry must start with https:// or http://",
    )
    .await;
    let mut spec = explicit_idp_spec();
    spec["allowIdpInitiated"] = json!(true);
    spec["defaultRelayState"] = json!("//evil.example.com/");
    expect_rejected(
        &api,
        object("IdentityProvider", "protocol-relative", spec),
        "defaultRelayState must be an absolute http(s) URL or a path starting with '/'",
    )
    .await;
}

#[tokio::test]
async fn idp_sha1_requires_explicit_opt_in() {
    let (client, ns) = setup("cel-sha1").await;
    let api = idp_api(&client, &ns.name);
    for (name, saml) in [
        (
            "sha1-signature",
            json!({ "signatureAlgorithm": "rsa-sha1" }),
        ),
        ("sha1-digest", json!({ "digestAlgorithm": "sha1" })),
    ] {
        let mut spec = explicit_idp_spec();
        spec["saml"] = saml.clone();
        expect_rejected(
            &api,
            object("IdentityProvider", name, spec),
            "SHA-1 is broken",
        )
        .await;
        let mut spec = explicit_idp_spec();
        spec["saml"] = saml;
        spec["saml"]["allowSha1"] = json!(true);
        api.create(
            &PostParams::default(),
            &object("IdentityProvider", &format!("{name}-opt-in"), spec),
        )
        .await
        .expect("SHA-1 with allowSha1 is accepted");
    }
}

#[tokio::test]
async fn idp_default_relay_state_requires_idp_initiated_sign_in() {
    let (client, ns) = setup("cel-relay").await;
    let api = idp_api(&client, &ns.name);
    let mut spec = explicit_idp_spec();
    spec["defaultRelayState"] = json!("https://app.example.com/");
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "relay-without-idp-initiated",
            spec.clone(),
        ),
        "defaultRelayState only applies to IdP-initiated sign-in",
    )
    .await;
    spec["allowIdpInitiated"] = json!(true);
    api.create(
        &PostParams::default(),
        &object("IdentityProvider", "relay", spec),
    )
    .await
    .expect("defaultRelayState with allowIdpInitiated is accepted");
}

#[tokio::test]
async fn idp_durations_are_bounded() {
    let (client, ns) = setup("cel-durations").await;
    let api = idp_api(&client, &ns.name);
    let cases = [
        (
            "skew",
            json!({ "saml": { "clockSkew": "11m" } }),
            "saml.clockSkew must be at most 10m",
        ),
        (
            "session-short",
            json!({ "session": { "duration": "1m" } }),
            "session.duration must be between 5m and 720h",
        ),
        (
            "session-long",
            json!({ "session": { "duration": "721h" } }),
            "session.duration must be between 5m and 720h",
        ),
        (
            "not-a-duration",
            json!({ "session": { "duration": "eight hours" } }),
            "should match",
        ),
    ];
    for (name, extra, message) in cases {
        let mut spec = explicit_idp_spec();
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        expect_rejected(&api, object("IdentityProvider", name, spec), message).await;
    }
    expect_rejected(
        &api,
        object(
            "IdentityProvider",
            "refresh",
            json!({ "idp": {
                "metadataUrl": "https://idp.example.com/metadata",
                "metadataRefreshInterval": "30s",
            }}),
        ),
        "idp.metadataRefreshInterval must be at least 1m",
    )
    .await;
}

#[tokio::test]
async fn idp_service_provider_entity_id_is_immutable() {
    let (client, ns) = setup("cel-immutable").await;
    let api = idp_api(&client, &ns.name);
    let mut spec = explicit_idp_spec();
    spec["serviceProviderEntityId"] = json!("https://sso.example.com/saml/one");
    api.create(
        &PostParams::default(),
        &object("IdentityProvider", "pinned", spec),
    )
    .await
    .unwrap();
    for (patch, what) in [
        (
            json!({ "spec": { "serviceProviderEntityId": "https://sso.example.com/saml/two" }}),
            "changed",
        ),
        (
            json!({ "spec": { "serviceProviderEntityId": null }}),
            "removed",
        ),
    ] {
        let err = api
            .patch("pinned", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err(&format!("the entity ID must not be {what}"));
        let kube::Error::Api(status) = err else {
            panic!("unexpected error {err}")
        };
        assert_eq!(status.code, 422);
        assert!(
            status
                .message
                .contains("serviceProviderEntityId cannot be added, changed or removed"),
            "{}",
            status.message
        );
    }
    // Adding one later is refused too.
    api.create(
        &PostParams::default(),
        &object("IdentityProvider", "default-id", explicit_idp_spec()),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "default-id",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "serviceProviderEntityId": "https://sso.example.com/x" }}),
            ),
        )
        .await
        .expect_err("adding an entity ID later must be refused");
    let kube::Error::Api(status) = err else {
        panic!("unexpected error {err}")
    };
    assert!(
        status
            .message
            .contains("serviceProviderEntityId cannot be added"),
        "{}",
        status.message
    );
    // Other fields stay editable.
    api.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "disabled": true }})),
    )
    .await
    .expect("other fields can change");
}

#[tokio::test]
async fn scim_token_must_name_an_identity_provider_that_never_changes() {
    let (client, ns) = setup("cel-token").await;
    let api = token_api(&client, &ns.name);
    expect_rejected(
        &api,
        object("ScimToken", "no-ref", json!({})),
        "identityProviderRef: Required value",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "ScimToken",
            "empty-ref",
            json!({ "identityProviderRef": { "name": "" } }),
        ),
        "should be at least 1 chars long",
    )
    .await;
    api.create(
        &PostParams::default(),
        &object(
            "ScimToken",
            "t",
            json!({ "identityProviderRef": { "name": "okta" } }),
        ),
    )
    .await
    .unwrap();
    let err = api
        .patch(
            "t",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "identityProviderRef": { "name": "entra" } }})),
        )
        .await
        .expect_err("identityProviderRef is immutable");
    let kube::Error::Api(status) = err else {
        panic!("unexpected error {err}")
    };
    assert!(
        status
            .message
            .contains("identityProviderRef cannot be changed"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn scim_token_rotation_rules() {
    let (client, ns) = setup("cel-rotation").await;
    let api = token_api(&client, &ns.name);
    expect_rejected(
        &api,
        object(
            "ScimToken",
            "byo-rotating",
            json!({
                "identityProviderRef": { "name": "okta" },
                "tokenSecretRef": { "name": "s", "key": "token" },
                "rotation": { "every": "720h" },
            }),
        ),
        "rotation cannot be combined with tokenSecretRef",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "ScimToken",
            "overlap-too-long",
            json!({
                "identityProviderRef": { "name": "okta" },
                "rotation": { "every": "1h", "overlap": "2h" },
            }),
        ),
        "rotation.overlap must be shorter than rotation.every",
    )
    .await;
    expect_rejected(
        &api,
        object(
            "ScimToken",
            "too-often",
            json!({
                "identityProviderRef": { "name": "okta" },
                "rotation": { "every": "30s", "overlap": "10s" },
            }),
        ),
        "rotation.every must be at least 1m",
    )
    .await;
}

#[tokio::test]
async fn api_server_defaults_match_the_rust_defaults() {
    let (client, ns) = setup("defaults").await;
    let minimal = json!({ "idp": { "metadataUrl": "https://idp.example.com/metadata" } });
    let api = idp_api(&client, &ns.name);
    let created = api
        .create(
            &PostParams::default(),
            &object("IdentityProvider", "minimal", minimal.clone()),
        )
        .await
        .unwrap();
    let stored = created.data["spec"].clone();
    // What the operator's own types make of the same minimal spec.
    let from_rust: IdentityProviderSpec = serde_json::from_value(minimal).unwrap();
    assert_eq!(
        stored,
        serde_json::to_value(&from_rust).unwrap(),
        "API server and Rust defaults differ"
    );
    // Spot-check the security-relevant defaults.
    assert_eq!(stored["saml"]["signatureAlgorithm"], "rsa-sha256");
    assert_eq!(stored["saml"]["digestAlgorithm"], "sha256");
    assert_eq!(stored["saml"]["allowSha1"], false);
    assert_eq!(stored["saml"]["wantAssertionsSigned"], true);
    assert_eq!(stored["allowIdpInitiated"], false);
    assert_eq!(stored["users"]["provisioning"], "scim");
    assert_eq!(stored["idp"]["metadataRefreshInterval"], "1h");
    assert_eq!(stored["session"]["singleLogout"], true);

    // The typed client reads it back into the same value.
    let typed: Api<IdentityProvider> = Api::namespaced(client.clone(), &ns.name);
    assert_eq!(typed.get("minimal").await.unwrap().spec, from_rust);

    let tokens = token_api(&client, &ns.name);
    let created = tokens
        .create(
            &PostParams::default(),
            &object("ScimToken", "minimal", json!({ "identityProviderRef": { "name": "minimal" }, "rotation": { "every": "720h" } })),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["rotation"]["overlap"], "1h");
    let typed: Api<ScimToken> = Api::namespaced(client.clone(), &ns.name);
    let token = typed.get("minimal").await.unwrap();
    assert_eq!(
        serde_json::to_value(&token.spec).unwrap(),
        created.data["spec"]
    );
}

#[tokio::test]
async fn applying_the_same_manifest_twice_changes_nothing() {
    let (client, ns) = setup("no-drift").await;
    let api = idp_api(&client, &ns.name);
    let obj = object("IdentityProvider", "gitops", explicit_idp_spec());
    let first = api
        .patch(
            "gitops",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    let second = api
        .patch(
            "gitops",
            &PatchParams::apply("argocd-controller"),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    assert_eq!(
        first.resource_version(),
        second.resource_version(),
        "a no-op apply wrote a new version"
    );
    assert_eq!(first.metadata.generation, second.metadata.generation);
    // Another manager applying the same desired state takes shared ownership without change.
    let third = api
        .patch(
            "gitops",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    assert_eq!(first.metadata.generation, third.metadata.generation);
    assert_eq!(first.data["spec"], third.data["spec"]);
}

#[tokio::test]
async fn owner_references_cascade_through_the_garbage_collector() {
    let (client, ns) = setup("gc").await;
    let api = idp_api(&client, &ns.name);
    let owner = api
        .create(
            &PostParams::default(),
            &object("IdentityProvider", "owner", explicit_idp_spec()),
        )
        .await
        .unwrap();
    let typed: IdentityProvider =
        serde_json::from_value(serde_json::to_value(&owner).unwrap()).unwrap();
    let owner_ref = typed.controller_owner_ref(&()).expect("owner reference");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let child = ConfigMap {
        metadata: ObjectMeta {
            name: Some("owned".into()),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        ..Default::default()
    };
    configmaps
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    let gone = wait_for(Duration::from_secs(60), || {
        let configmaps = configmaps.clone();
        async move {
            configmaps
                .get_opt("owned")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(
        gone.is_some(),
        "the garbage collector did not delete the owned ConfigMap"
    );
}

#[tokio::test]
async fn service_account_clients_have_exactly_their_rbac_permissions() {
    let (client, ns) = setup("rbac").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: ObjectMeta {
                name: Some("reader".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns.name);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("idp-reader".into()),
                    ..Default::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["sso-operator.dev".into()]),
                    resources: Some(vec!["identityproviders".into()]),
                    verbs: vec!["get".into(), "list".into()],
                    ..Default::default()
                }]),
            },
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns.name);
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("idp-reader".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "idp-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "reader".into(),
                    namespace: Some(ns.name.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .unwrap();
    let reader = support::service_account_client(&client, &ns.name, "reader").await;
    let idps: Api<IdentityProvider> = Api::namespaced(reader.clone(), &ns.name);
    // RBAC changes take effect at once on this single apiserver, but allow a short settle.
    let listed = wait_for(Duration::from_secs(10), || {
        let idps = idps.clone();
        async move { idps.list(&Default::default()).await.ok() }
    })
    .await;
    assert!(
        listed.is_some(),
        "the ServiceAccount could not list IdentityProviders it may read"
    );
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(reader.clone(), &ns.name);
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("reading Secrets must be forbidden, got {other:?}"),
    }
    let err = idps
        .create(
            &PostParams::default(),
            &IdentityProvider::new("x", serde_json::from_value(explicit_idp_spec()).unwrap()),
        )
        .await
        .expect_err("creating must be forbidden");
    let kube::Error::Api(status) = err else {
        panic!("unexpected error {err}")
    };
    assert_eq!(status.code, 403);
}
