//! OidcClients end to end: the real `sso-operator controller` binary, running as a
//! ServiceAccount with the chart's RBAC rules, against the real local control plane; and the
//! CRD's validation rules as `kubectl apply` meets them.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sso_operator::api::OidcClient;
use sso_operator::config::{self, CompiledIdentityProvider};
use support::operator::{EXTERNAL_URL, Operator, controller_kubeconfig};
use support::{TestNamespace, admin_client, apply_identity_provider, cert_pem, install_crds};

const WAIT: Duration = Duration::from_secs(30);

/// A namespace with an IdentityProvider `okta` and the controller running.
struct Story {
    client: Client,
    ns: TestNamespace,
    op: Operator,
}

impl Story {
    async fn begin(prefix: &str) -> Self {
        let client = admin_client().await;
        install_crds(&client).await;
        let ns = TestNamespace::new(&client, prefix).await;
        let kubeconfig = controller_kubeconfig(&client, &ns.name).await;
        let op = Operator::start(&kubeconfig, &ns.name, &[]);
        let spec = json!({
            "provider": "okta",
            "idp": {
                "ssoUrl": "https://example.okta.com/app/x/sso/saml",
                "entityId": "http://www.okta.com/exk1",
                "certificates": [{ "pem": cert_pem("okta-signing", -3600, 365 * 86_400) }],
            }
        });
        apply_identity_provider(&client, &ns.name, "okta", &spec).await;
        Self { client, ns, op }
    }

    fn clients(&self) -> Api<OidcClient> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    async fn apply_client(&self, name: &str, spec: Value) {
        let obj = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "OidcClient", "metadata": { "name": name }, "spec": spec });
        self.clients()
            .patch(
                name,
                &PatchParams::apply("tests").force(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("apply OidcClient {name}: {e}"));
    }

    /// Waits until OidcClient `name` reports Ready `status` with `reason` for its generation.
    async fn ready(&self, name: &str, status: &str, reason: &str) -> OidcClient {
        let found = support::wait_for(WAIT, || async {
            let c = self.clients().get(name).await.ok()?;
            let st = c.status.as_ref()?;
            let ready = st.conditions.iter().find(|c| c.type_ == "Ready")?;
            (st.observed_generation == c.metadata.generation
                && ready.status == status
                && ready.reason == reason)
                .then_some(c)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "OidcClient {name} never had Ready={status} ({reason})\noperator log:\n{}",
                self.op.log_text()
            )
        })
    }

    async fn data(&self, secret: &str) -> std::collections::BTreeMap<String, String> {
        let s = self.secrets().get(secret).await.unwrap();
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    async fn compiled(&self) -> Option<CompiledIdentityProvider> {
        let name = config::compiled_secret_name(&self.ns.name, "okta");
        let secret = self.secrets().get_opt(&name).await.unwrap()?;
        serde_json::from_slice(&secret.data?[config::CONFIG_KEY].0).ok()
    }

    /// Waits until the compiled configuration of `okta` satisfies `check`.
    async fn compiled_when(
        &self,
        what: &str,
        check: impl Fn(&CompiledIdentityProvider) -> bool,
    ) -> CompiledIdentityProvider {
        let found = support::wait_for(WAIT, || async {
            self.compiled().await.filter(|c| check(c))
        })
        .await;
        match found {
            Some(c) => c,
            None => panic!(
                "the compiled configuration never showed {what}; it has {:?}\noperator log:\n{}",
                self.compiled().await.map(|c| c.oidc),
                self.op.log_text()
            ),
        }
    }

    fn keys_secret(&self) -> String {
        sso_operator::controller::oidc_keys::secret_name(&self.ns.name, "okta")
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(openssl::sha::sha256(s.as_bytes()))
}

#[tokio::test]
async fn oidc_clients_get_secrets_signing_keys_rotation_and_conflicts_and_the_keys_go_with_the_last_one()
 {
    let story = Story::begin("oidc-ctl").await;
    let ns = story.ns.name.clone();
    let issuer = format!("{EXTERNAL_URL}/oidc/{ns}/okta");

    // A confidential client: Ready, with its ID, secret and issuer in its own Secret.
    story
        .apply_client(
            "argocd",
            json!({
                "identityProviderRef": { "name": "okta" },
                "redirectUris": ["https://argocd.example.com/auth/callback"],
                "rotation": { "overlap": "1h" },
            }),
        )
        .await;
    let argocd = story.ready("argocd", "True", "Issued").await;
    let status = argocd.status.clone().unwrap();
    assert_eq!(status.client_id.as_deref(), Some("argocd"));
    assert_eq!(status.issuer_url.as_deref(), Some(issuer.as_str()));
    assert_eq!(
        status.discovery_url,
        Some(format!("{issuer}/.well-known/openid-configuration"))
    );
    assert_eq!(status.secret_name.as_deref(), Some("argocd-oidc-client"));
    let data = story.data("argocd-oidc-client").await;
    assert_eq!(data["clientId"], "argocd");
    assert_eq!(data["issuerUrl"], issuer);
    let first = data["clientSecret"].clone();
    assert_eq!(first.len(), 43, "256 bits, URL-safe base64");
    let status_json = serde_json::to_string(&status).unwrap();
    assert!(!status_json.contains(&first) && !status_json.contains(&sha256_hex(&first)));

    // The IdentityProvider now serves an OpenID Provider: one signing key, the client's hash.
    let first_hash = sha256_hex(&first);
    let compiled = story
        .compiled_when("the client's secret hash", |c| {
            c.oidc.as_ref().is_some_and(|o| {
                o.client("argocd")
                    .is_some_and(|a| a.secrets.iter().any(|s| s.sha256 == first_hash))
            })
        })
        .await;
    let oidc = compiled.oidc.unwrap();
    assert_eq!(oidc.issuer, issuer);
    assert_eq!(oidc.signing_keys.keys.len(), 1);
    let keys = story.secrets().get(&story.keys_secret()).await.unwrap();
    assert!(keys.data.as_ref().unwrap().contains_key("keys.json"));
    let idp_uid = Api::<sso_operator::api::IdentityProvider>::namespaced(story.client.clone(), &ns)
        .get("okta")
        .await
        .unwrap()
        .uid();
    assert_eq!(
        keys.annotations()
            .get("sso-operator.dev/identity-provider-uid"),
        idp_uid.as_ref()
    );

    // Rotation on request: a new secret, and the previous one keeps working for the overlap.
    story
        .clients()
        .patch(
            "argocd",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "sso-operator.dev/rotate": "1" } } }),
            ),
        )
        .await
        .unwrap();
    let second = support::wait_for(WAIT, || async {
        let v = story.data("argocd-oidc-client").await["clientSecret"].clone();
        (v != first).then_some(v)
    })
    .await
    .expect("a new client secret is issued when the rotate annotation changes");
    let second_hash = sha256_hex(&second);
    let both = story
        .compiled_when("both secrets", |c| {
            c.oidc
                .as_ref()
                .and_then(|o| o.client("argocd"))
                .is_some_and(|a| {
                    a.secrets.iter().any(|s| s.sha256 == first_hash)
                        && a.secrets.iter().any(|s| s.sha256 == second_hash)
                })
        })
        .await;
    let argocd_compiled = both.oidc.as_ref().unwrap().client("argocd").unwrap();
    let previous = argocd_compiled
        .secrets
        .iter()
        .find(|s| s.sha256 == first_hash)
        .unwrap();
    assert!(
        previous.not_after.is_some(),
        "the previous secret has an end"
    );
    let rotated = support::wait_for(WAIT, || async {
        let c = story.clients().get("argocd").await.ok()?;
        c.status?.previous_secret_expires_at
    })
    .await;
    assert!(rotated.is_some(), "status reports the end of the overlap");

    // A public client: no secret, compiled as public.
    story
        .apply_client(
            "kubectl",
            json!({
                "identityProviderRef": { "name": "okta" },
                "public": true,
                "redirectUris": ["http://localhost:8000"],
            }),
        )
        .await;
    story.ready("kubectl", "True", "Issued").await;
    let data = story.data("kubectl-oidc-client").await;
    assert!(!data.contains_key("clientSecret"));
    assert_eq!(data["clientId"], "kubectl");
    story
        .compiled_when("the public client", |c| {
            c.oidc
                .as_ref()
                .and_then(|o| o.client("kubectl"))
                .is_some_and(|k| k.public && k.secrets.is_empty())
        })
        .await;

    // A later OidcClient with the same client ID conflicts and is left out.
    story
        .apply_client(
            "argocd-copy",
            json!({
                "identityProviderRef": { "name": "okta" },
                "clientId": "argocd",
                "redirectUris": ["https://copy.example.com/callback"],
            }),
        )
        .await;
    story
        .ready("argocd-copy", "False", "ClientIdConflict")
        .await;
    let compiled = story.compiled().await.unwrap();
    let oidc = compiled.oidc.unwrap();
    let holders: Vec<_> = oidc
        .clients
        .iter()
        .filter(|c| c.client_id == "argocd")
        .collect();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].name, "argocd");
    story.ready("argocd", "True", "Issued").await;

    // With the last OidcClient gone, the signing keys go too.
    for name in ["argocd", "kubectl", "argocd-copy"] {
        story
            .clients()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    story
        .compiled_when("no OpenID Provider", |c| c.oidc.is_none())
        .await;
    let gone = support::wait_for(WAIT, || async {
        story
            .secrets()
            .get_opt(&story.keys_secret())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "the signing-key Secret was not deleted");
}

/// Runs `kubectl apply -f -` of `manifest` as the admin; its exit status and stderr.
fn kubectl_apply(manifest: &Value) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .args(["apply", "--server-side", "--field-manager=tests", "-f", "-"])
        .env("KUBECONFIG", support::admin_kubeconfig())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kubectl_apply_of_an_invalid_oidc_client_says_what_to_change() {
    let client = admin_client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "oidc-cel").await;
    let manifest = |spec: Value| {
        json!({
            "apiVersion": "sso-operator.dev/v1alpha1", "kind": "OidcClient",
            "metadata": { "name": "app", "namespace": ns.name }, "spec": spec,
        })
    };
    let idp = json!({ "name": "okta" });
    for (spec, message) in [
        (
            json!({ "identityProviderRef": idp, "redirectUris": ["http://app.example.com/cb"] }),
            "http is allowed only for 127.0.0.1, [::1] and localhost",
        ),
        (
            json!({ "identityProviderRef": idp, "redirectUris": ["https://app.example.com/cb#x"] }),
            "without a fragment",
        ),
        (
            json!({ "identityProviderRef": idp, "public": true, "rotation": { "every": "24h" },
                    "redirectUris": ["http://127.0.0.1/cb"] }),
            "rotation cannot be combined with public: true",
        ),
        (
            json!({ "identityProviderRef": idp, "redirectUris": ["https://app.example.com/cb"],
                    "groupsClaim": "email" }),
            "groupsClaim cannot be a claim the provider sets itself",
        ),
        (
            json!({ "identityProviderRef": idp }),
            "redirectUris is required",
        ),
    ] {
        let (ok, stderr) = kubectl_apply(&manifest(spec.clone()));
        assert!(!ok, "{spec} was accepted");
        assert!(stderr.contains(message), "{spec}: {stderr}");
    }

    // A device-only client needs no redirect URI; its client ID and IdentityProvider are then
    // fixed.
    let device =
        json!({ "identityProviderRef": idp, "public": true, "grantTypes": ["device_code"] });
    let (ok, stderr) = kubectl_apply(&manifest(device.clone()));
    assert!(ok, "{stderr}");
    let mut renamed = device.clone();
    renamed["clientId"] = json!("other");
    let (ok, stderr) = kubectl_apply(&manifest(renamed));
    assert!(
        !ok && stderr.contains("clientId cannot be changed"),
        "{stderr}"
    );
    let mut moved = device;
    moved["identityProviderRef"] = json!({ "name": "entra" });
    let (ok, stderr) = kubectl_apply(&manifest(moved));
    assert!(
        !ok && stderr.contains("identityProviderRef cannot be changed"),
        "{stderr}"
    );
}
