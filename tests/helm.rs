//! The Helm chart: `helm lint`, `helm template` for the main value combinations (hardened pods,
//! RBAC shape, refusals with clear messages), and `helm install` into the local control plane,
//! after which the real controller and server run with the chart's ServiceAccount credentials,
//! reconcile the Okta example to Ready and are denied what they must not do. The Argo CD
//! health check is run (on gopher-lua, as Argo CD does) against the status objects the
//! controller produced. `sso-operator probe`, which the chart's `helm test` Pod runs, passes
//! only against a server that answers ready.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sso_operator::api::{IdentityProvider, ScimToken};
use support::chart::{URL, VALUE_COMBINATIONS, chart, helm, helm_offline, kinds, template, tools};
use support::operator::{EXTERNAL_URL, Operator, free_port, write_kubeconfig};
use support::{TestNamespace, admin_client, install_crds, repo_root, wait_for};

#[test]
fn the_chart_lints_and_renders_hardened_least_privilege_objects() {
    let chart = chart();
    let (ok, out, err) = helm_offline(&["lint", &chart, "--set", URL]);
    assert!(ok, "helm lint: {out}{err}");
    // The external URL is required, and typos in values are caught by the schema.
    let (ok, out, err) = helm_offline(&["lint", &chart]);
    assert!(!ok && (out + &err).contains("externalUrl"));
    let err = template(&[URL, "server.replicaz=2"]).unwrap_err();
    assert!(err.contains("replicaz"), "{err}");
    let err = template(&[URL, "server.replicas=two"]).unwrap_err();
    assert!(err.contains("replicas"), "{err}");

    // Defaults: SQLite, one server, two controllers, cluster-wide RBAC.
    let docs = template(&[URL]).unwrap();
    let deployments = kinds(&docs, "Deployment");
    assert_eq!(deployments.len(), 2);
    for d in &deployments {
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert!(c["resources"]["requests"]["memory"].is_string());
        assert!(c["resources"]["limits"]["memory"].is_string());
    }
    let controller = deployments
        .iter()
        .find(|d| d["metadata"]["name"] == "rel-sso-operator-controller")
        .expect("controller Deployment");
    assert_eq!(controller["spec"]["replicas"], 2);
    assert!(
        controller["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--external-url=https://sso.example.com"))
    );
    let server = deployments
        .iter()
        .find(|d| d["metadata"]["name"] == "rel-sso-operator-server")
        .expect("server Deployment");
    assert_eq!(server["spec"]["replicas"], 1);
    assert_eq!(server["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(kinds(&docs, "PersistentVolumeClaim").len(), 1);
    assert_eq!(kinds(&docs, "ClusterRole").len(), 2);
    // The server's RBAC: cluster-wide only status, and a look at one IdentityProvider (deleted
    // or only disabled?); Secrets: tests/chart_contract.rs.
    let server_cluster_role = kinds(&docs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"].as_str().unwrap().ends_with("-server"))
        .unwrap();
    assert_eq!(
        server_cluster_role["rules"],
        json!([
            { "apiGroups": ["sso-operator.dev"], "resources": ["identityproviders/status"], "verbs": ["patch"] },
            { "apiGroups": ["sso-operator.dev"], "resources": ["identityproviders"], "verbs": ["get"] }
        ])
    );

    // SQLite cannot be shared by replicas; PostgreSQL needs its Secret.
    let err = template(&[URL, "server.replicas=2"]).unwrap_err();
    assert!(
        err.contains("database.type sqlite supports exactly one server replica"),
        "{err}"
    );
    let err = template(&[URL, "server.autoscaling.enabled=true"]).unwrap_err();
    assert!(err.contains("exactly one server replica"), "{err}");
    let err = template(&[URL, "database.type=postgres"]).unwrap_err();
    assert!(err.contains("database.postgres.existingSecret"), "{err}");

    // PostgreSQL with autoscaling and every optional object, namespace-scoped.
    let docs = template(VALUE_COMBINATIONS[2]).unwrap();
    assert!(
        kinds(&docs, "ClusterRole").is_empty(),
        "namespace-scoped install"
    );
    assert!(kinds(&docs, "PersistentVolumeClaim").is_empty());
    for kind in [
        "HorizontalPodAutoscaler",
        "Ingress",
        "ServiceMonitor",
        "NetworkPolicy",
    ] {
        assert!(!kinds(&docs, kind).is_empty(), "{kind}");
    }
    assert_eq!(kinds(&docs, "PodDisruptionBudget").len(), 2);
    let server = kinds(&docs, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "rel-sso-operator-server")
        .unwrap();
    assert!(
        server["spec"].get("replicas").is_none(),
        "the HPA owns replicas"
    );
    let env = &server["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "SSO_DATABASE_URL"
                && e["valueFrom"]["secretKeyRef"]["name"] == "pg")
    );
    let ingress = &kinds(&docs, "Ingress")[0];
    assert_eq!(ingress["spec"]["rules"][0]["host"], "sso.example.com");
    let dashboard = &kinds(&docs, "ConfigMap")[0];
    let json_text = dashboard["data"]["sso-operator.json"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(json_text).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().unwrap().len() >= 5);
}

async fn access(
    client: &Client,
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    group: &str,
) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_owned),
                group: Some(group.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("access review")
        .status
        .expect("review status")
        .allowed
}

fn health(object: &Value) -> Value {
    let mut child = Command::new(tools().join("argocd-health"))
        .arg(repo_root().join("charts/sso-operator/files/argocd-health.lua"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run argocd-health");
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        object.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A release of the chart installed with Helm, namespace-scoped (it watches `apps_ns`; the
/// chart creates `config_ns`), and clients acting as its two ServiceAccounts.
struct Release {
    admin: Client,
    release: String,
    release_ns: TestNamespace,
    apps_ns: TestNamespace,
    config_ns: TestNamespace,
    controller_sa: String,
    server_sa: String,
    controller_client: Client,
    server_client: Client,
}

impl Release {
    async fn install() -> Self {
        let admin = admin_client().await;
        install_crds(&admin).await;
        let release_ns = TestNamespace::new(&admin, "helm").await;
        let apps_ns = TestNamespace::new(&admin, "helm-apps").await;
        let release = format!("sso-{}", &release_ns.name[release_ns.name.len() - 6..]);
        // The chart creates the configuration namespace; deleted with the test's namespaces.
        let config_ns = TestNamespace {
            name: format!("{}-config", release_ns.name),
        };
        let chart = chart();
        let watch = format!("controller.watchNamespace={}", apps_ns.name);
        let url = format!("externalUrl={EXTERNAL_URL}");
        let (ok, out, err) = helm(&[
            "install",
            &release,
            &chart,
            "--namespace",
            &release_ns.name,
            "--skip-crds",
            "--set",
            &url,
            "--set",
            &watch,
        ]);
        assert!(ok, "helm install: {out}{err}");

        // The chart's ServiceAccounts, with exactly the chart's RBAC.
        let sa = |role: &str| format!("{release}-sso-operator-{role}");
        let controller_sa = sa("controller");
        let server_sa = sa("server");
        let controller_client =
            support::service_account_client(&admin, &release_ns.name, &controller_sa).await;
        let server_client =
            support::service_account_client(&admin, &release_ns.name, &server_sa).await;
        Self {
            admin,
            release,
            release_ns,
            apps_ns,
            config_ns,
            controller_sa,
            server_sa,
            controller_client,
            server_client,
        }
    }

    /// Runs both roles as the chart's ServiceAccounts: the controller, the server and the
    /// server's address.
    async fn run(&self) -> (Operator, Operator, String) {
        let Self {
            admin,
            release_ns,
            apps_ns,
            config_ns,
            controller_sa,
            server_sa,
            ..
        } = self;
        // Run both roles as those ServiceAccounts.
        let controller_token =
            support::service_account_token(admin, &release_ns.name, controller_sa).await;
        let controller_kubeconfig =
            write_kubeconfig(&release_ns.name, controller_sa, &controller_token);
        let controller = Operator::spawn(
            &controller_kubeconfig,
            &release_ns.name,
            &[
                "controller",
                "--external-url",
                EXTERNAL_URL,
                "--operator-namespace",
                &release_ns.name,
                "--config-namespace",
                &config_ns.name,
                "--watch-namespace",
                &apps_ns.name,
            ],
        );
        let server_token = support::service_account_token(admin, &release_ns.name, server_sa).await;
        let server_kubeconfig = write_kubeconfig(&release_ns.name, server_sa, &server_token);
        let listen = format!("127.0.0.1:{}", free_port());
        let database = support::sqlite_url("helm");
        let server = Operator::spawn(
            &server_kubeconfig,
            &release_ns.name,
            &[
                "server",
                "--operator-namespace",
                &release_ns.name,
                "--config-namespace",
                &config_ns.name,
                "--listen",
                &listen,
                "--database-url",
                &database,
            ],
        );

        (controller, server, listen)
    }

    /// Applies every example, its placeholders filled in as its comments say, and waits until
    /// the controller has reconciled each: those with explicit certificates to Ready; those
    /// that name a public metadata URL (unreachable from here) to a condition that says so.
    /// Returns IdentityProvider and ScimToken `okta`, both Ready.
    async fn reconcile_examples(&self, _controller: &Operator) -> (Value, Value) {
        let Self { admin, apps_ns, .. } = self;
        let discovery = kube::Discovery::new(admin.clone()).run().await.unwrap();
        let mut explicit = Vec::new();
        let mut all = Vec::new();
        // One folder per identity provider (the OpenID Connect applications' folders hold an
        // OidcClient only).
        let mut providers: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|d| d.join("identityprovider.yaml").exists())
            .collect();
        providers.sort();
        for dir in providers {
            for file in ["identityprovider.yaml", "scimtoken.yaml"] {
                let text = std::fs::read_to_string(dir.join(file)).unwrap();
                let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
                for doc in docs.into_iter().filter(|d| d.is_object()).map(filled_in) {
                    let obj: kube::api::DynamicObject =
                        serde_json::from_value(doc.clone()).unwrap();
                    let types = obj.types.clone().unwrap();
                    let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
                    let (resource, _) = discovery.resolve_gvk(&gvk).unwrap();
                    let api: Api<kube::api::DynamicObject> =
                        Api::namespaced_with(admin.clone(), &apps_ns.name, &resource);
                    let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
                    api.patch(
                        &name,
                        &PatchParams::apply("tests").force(),
                        &Patch::Apply(&doc),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                    if doc["kind"] == "IdentityProvider" {
                        all.push(name.clone());
                        if doc["spec"]["idp"].get("metadataUrl").is_none() {
                            explicit.push(name);
                        }
                    }
                }
            }
        }
        assert!(
            explicit.contains(&"okta".to_owned()) && explicit.len() >= 4,
            "{explicit:?}"
        );
        let idps: Api<IdentityProvider> = Api::namespaced(admin.clone(), &apps_ns.name);
        let tokens: Api<ScimToken> = Api::namespaced(admin.clone(), &apps_ns.name);
        let ready_condition = |v: &Value| {
            v["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        };
        let ready = |v: &Value| ready_condition(v).is_some_and(|c| c["status"] == "True");
        let reconciled = wait_for(Duration::from_secs(60), || async {
            for name in &all {
                let idp = serde_json::to_value(idps.get(name).await.ok()?).ok()?;
                let condition = ready_condition(&idp)?;
                if explicit.contains(name) {
                    ready(&idp).then_some(())?;
                } else {
                    (condition["reason"] != "Ready").then_some(())?;
                }
                let token = serde_json::to_value(tokens.get(name).await.ok()?).ok()?;
                ready_condition(&token)?;
            }
            Some(())
        })
        .await;
        assert!(
            reconciled.is_some(),
            "not every example was reconciled\ncontroller log:\n{}",
            _controller.log_text()
        );
        let idp = serde_json::to_value(idps.get("okta").await.unwrap()).unwrap();
        let token = serde_json::to_value(tokens.get("okta").await.unwrap()).unwrap();
        assert!(ready(&idp) && ready(&token));

        (idp, token)
    }

    fn uninstall(&self) {
        let (ok, out, err) = helm(&[
            "uninstall",
            &self.release,
            "--namespace",
            &self.release_ns.name,
        ]);
        assert!(ok, "helm uninstall: {out}{err}");
    }
}

#[tokio::test]
async fn helm_install_grants_the_controller_and_the_server_exactly_the_charts_rbac() {
    let r = Release::install().await;
    let (controller_client, server_client) = (&r.controller_client, &r.server_client);
    let (apps_ns, release_ns, config_ns) = (&r.apps_ns, &r.release_ns, &r.config_ns);
    assert!(
        access(
            controller_client,
            "watch",
            "identityproviders",
            Some(&apps_ns.name),
            "sso-operator.dev"
        )
        .await
    );
    assert!(
        !access(
            controller_client,
            "watch",
            "identityproviders",
            Some("default"),
            "sso-operator.dev"
        )
        .await,
        "namespace-scoped install: nothing outside the watched namespace"
    );
    // The server reads Secrets in the configuration namespace only: not in the release
    // namespace (Helm's release Secrets, database credentials), not in the watched one.
    for verb in ["get", "list", "watch"] {
        for ns in [&release_ns.name, &apps_ns.name] {
            assert!(
                !access(server_client, verb, "secrets", Some(ns), "").await,
                "the server may {verb} Secrets in {ns}"
            );
        }
        assert!(access(server_client, verb, "secrets", Some(&config_ns.name), "").await);
    }
    assert!(
        !access(
            server_client,
            "create",
            "secrets",
            Some(&config_ns.name),
            ""
        )
        .await
    );

    r.uninstall();
}

#[tokio::test]
async fn examples_filled_in_reconcile_and_are_served_with_the_charts_credentials_only() {
    let r = Release::install().await;
    let (_controller, server, listen) = r.run().await;
    r.reconcile_examples(&_controller).await;
    let (admin, server_client) = (r.admin.clone(), &r.server_client);
    let (apps_ns, release_ns, config_ns) = (&r.apps_ns, &r.release_ns, &r.config_ns);
    // The server serves it with the chart's server credentials.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &apps_ns.name);
    let secret = secrets.get("okta-scim-token").await.unwrap();
    let bearer = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    let http = reqwest::Client::new();
    let scim = format!(
        "http://{listen}/scim/v2/{}/okta/Users?startIndex=1&count=2",
        apps_ns.name
    );
    let served = wait_for(Duration::from_secs(30), || async {
        let r = http.get(&scim).bearer_auth(&bearer).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(served.is_some(), "server log:\n{}", server.log_text());

    // What the server must never do: read a ScimToken's Secret, or any Secret of the release
    // namespace, such as the database's credentials kept beside the operator.
    let as_server: Api<Secret> = Api::namespaced(server_client.clone(), &apps_ns.name);
    match as_server.get("okta-scim-token").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("the server read a token Secret: {other:?}"),
    }
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": { "name": "database-credentials" },
        "stringData": { "url": "postgres://sso:s3cret@db/sso" },
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &release_ns.name)
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();
    let as_server: Api<Secret> = Api::namespaced(server_client.clone(), &release_ns.name);
    match as_server.get("database-credentials").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("the server read a Secret of the release namespace: {other:?}"),
    }
    match as_server.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("the server listed the release namespace's Secrets: {other:?}"),
    }
    // The compiled configuration it serves is in the configuration namespace, and only there.
    let compiled_label = format!("{}=true", sso_operator::config::COMPILED_CONFIG_LABEL);
    let compiled = |ns: &str| {
        let api: Api<Secret> = Api::namespaced(admin.clone(), ns);
        let lp = kube::api::ListParams::default().labels(&compiled_label);
        async move { api.list_metadata(&lp).await.unwrap().items.len() }
    };
    assert!(
        compiled(&config_ns.name).await >= 2,
        "configurations and session keys"
    );
    assert_eq!(compiled(&release_ns.name).await, 0);

    r.uninstall();
}

#[tokio::test]
async fn argo_cd_health_follows_the_status_the_controller_produced() {
    let r = Release::install().await;
    let (_controller, _server, _) = r.run().await;
    let (idp, token) = r.reconcile_examples(&_controller).await;
    let idps: Api<IdentityProvider> = Api::namespaced(r.admin.clone(), &r.apps_ns.name);
    // Argo CD health, on the status objects the controller produced.
    assert_eq!(health(&idp)["status"], "Healthy", "{idp}");
    assert_eq!(health(&token)["status"], "Healthy");
    assert_eq!(
        health(&json!({ "metadata": { "generation": 1 } }))["status"],
        "Progressing"
    );
    let mut stale = idp.clone();
    stale["metadata"]["generation"] =
        json!(idp["status"]["observedGeneration"].as_i64().unwrap() + 1);
    assert_eq!(health(&stale)["status"], "Progressing");
    // A broken certificate: Degraded with the condition's message.
    let pp = PatchParams::apply("tests").force();
    let broken = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": "broken" },
        "spec": { "idp": { "ssoUrl": "https://idp.example.com/sso", "entityId": "https://idp.example.com", "certificates": [{ "pem": "not a certificate" }] } } });
    idps.patch("broken", &pp, &Patch::Apply(&broken))
        .await
        .unwrap();
    let degraded = wait_for(Duration::from_secs(30), || async {
        let v = serde_json::to_value(idps.get("broken").await.ok()?).ok()?;
        let h = health(&v);
        (h["status"] == "Degraded").then_some(h)
    })
    .await
    .expect("Degraded");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{degraded}"
    );
    let disabled = json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": "okta" }, "spec": { "disabled": true } });
    idps.patch(
        "okta",
        &PatchParams::apply("tests-disable"),
        &Patch::Apply(&disabled),
    )
    .await
    .unwrap();
    let suspended = wait_for(Duration::from_secs(30), || async {
        let v = serde_json::to_value(idps.get("okta").await.ok()?).ok()?;
        (health(&v)["status"] == "Suspended").then_some(())
    })
    .await;
    assert!(suspended.is_some());

    r.uninstall();
}

#[tokio::test]
async fn a_cluster_wide_install_grants_exactly_the_shared_rules() {
    let admin = admin_client().await;
    install_crds(&admin).await;
    let ns = TestNamespace::new(&admin, "helm-cluster").await;
    let _config_ns = TestNamespace {
        name: format!("{}-config", ns.name),
    };
    let release = format!("sso-{}", &ns.name[ns.name.len() - 6..]);
    let url = format!("externalUrl={EXTERNAL_URL}");
    // The server runs as a ServiceAccount made beforehand (as for a cloud database identity);
    // the pod options users know from other charts pass the API server's validation.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "sso-db" } })).unwrap(),
        )
        .await
        .unwrap();
    let values = support::chart::values_file(
        r#"
controller:
  serviceAccount: { annotations: { example.com/role: reconcile } }
  podLabels: { team: identity }
  topologySpreadConstraints:
    - { maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway }
  extraEnv: [{ name: HTTPS_PROXY, value: "http://proxy.example.com:3128" }]
  volumes: [{ name: ca, configMap: { name: corporate-ca, optional: true } }]
  volumeMounts: [{ name: ca, mountPath: /etc/sso-operator/ca, readOnly: true }]
  revisionHistoryLimit: 2
server:
  serviceAccount: { create: false, name: sso-db }
  securityContext: { fsGroup: null }
  envFrom: [{ secretRef: { name: pg-settings, optional: true } }]
image:
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
"#,
    );
    let (ok, out, err) = helm(&[
        "install",
        &release,
        &chart(),
        "--namespace",
        &ns.name,
        "--skip-crds",
        "-f",
        &values.display().to_string(),
        "--set",
        &url,
    ]);
    assert!(ok, "helm install: {out}{err}");
    let controller_account = accounts
        .get(&format!("{release}-sso-operator-controller"))
        .await
        .unwrap();
    assert_eq!(
        controller_account
            .metadata
            .annotations
            .unwrap_or_default()
            .get("example.com/role")
            .map(String::as_str),
        Some("reconcile")
    );
    assert!(
        accounts
            .get_opt(&format!("{release}-sso-operator-server"))
            .await
            .unwrap()
            .is_none()
    );
    let controller = support::service_account_client(
        &admin,
        &ns.name,
        &format!("{release}-sso-operator-controller"),
    )
    .await;
    let server = support::service_account_client(&admin, &ns.name, "sso-db").await;
    let g = "sso-operator.dev";
    // The controller: every namespace's IdentityProviders, ScimTokens and their Secrets.
    assert!(access(&controller, "watch", "identityproviders", None, g).await);
    assert!(
        access(
            &controller,
            "patch",
            "scimtokens/status",
            Some("default"),
            g
        )
        .await
    );
    assert!(access(&controller, "create", "secrets", Some("default"), "").await);
    assert!(!access(&controller, "delete", "secrets", Some("default"), "").await);
    assert!(
        !access(
            &controller,
            "delete",
            "identityproviders",
            Some("default"),
            g
        )
        .await
    );
    // The server: status patches anywhere, Secrets only in the release namespace.
    assert!(
        access(
            &server,
            "patch",
            "identityproviders/status",
            Some("default"),
            g
        )
        .await
    );
    assert!(!access(&server, "get", "secrets", Some("default"), "").await);
    assert!(access(&server, "get", "identityproviders", Some("default"), g).await);
    assert!(!access(&server, "list", "identityproviders", Some("default"), g).await);
    assert!(!access(&server, "patch", "identityproviders", Some("default"), g).await);
    let config_ns = &_config_ns.name;
    assert!(access(&server, "watch", "secrets", Some(config_ns), "").await);
    assert!(!access(&server, "watch", "secrets", Some(&ns.name), "").await);
    assert!(!access(&server, "create", "secrets", Some(config_ns), "").await);
    // The controller writes and deletes there; in its own namespace it deletes only to move
    // what earlier releases left there.
    assert!(access(&controller, "delete", "secrets", Some(config_ns), "").await);
    assert!(access(&controller, "delete", "secrets", Some(&ns.name), "").await);
    let (ok, out, err) = helm(&["uninstall", &release, "--namespace", &ns.name]);
    assert!(ok, "helm uninstall: {out}{err}");
}

/// An example with its `REPLACE-ME` placeholders filled in, as a user does from the IdP
/// console: the URLs and entity ID get a real-looking tenant, and each certificate (inline or
/// in the example's Secret) becomes a freshly generated one.
fn filled_in(doc: Value) -> Value {
    let text = serde_json::to_string(&doc)
        .unwrap()
        .replace("REPLACE-ME", "tenant-1");
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    if let Some(certificates) = doc
        .pointer_mut("/spec/idp/certificates")
        .and_then(Value::as_array_mut)
    {
        for certificate in certificates {
            if certificate.get("pem").is_some() {
                certificate["pem"] = json!(support::cert_pem("idp", -3600, 365 * 86_400));
            }
        }
    }
    if doc["kind"] == "Secret"
        && let Some(pem) = doc.pointer_mut("/stringData/tls.crt")
    {
        *pem = json!(support::cert_pem("idp", -3600, 365 * 86_400));
    }
    doc
}

/// Runs `sso-operator probe` (what the chart's `helm test` Pod runs) with `args`; returns
/// (success, stdout, stderr).
fn probe(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sso-operator"))
        .arg("probe")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sso-operator probe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_helm_test_probe_passes_only_when_the_server_answers_ready() {
    let admin = admin_client().await;
    install_crds(&admin).await;
    let ns = TestNamespace::new(&admin, "probe").await;
    let kubeconfig = support::operator::server_kubeconfig(&admin, &ns.name).await;
    let http = reqwest::Client::new();
    let status = |url: String| {
        let http = http.clone();
        async move { http.get(&url).send().await.ok().map(|r| r.status()) }
    };

    // A server whose database does not answer: alive, not ready.
    let no_database = format!("postgres://sso@127.0.0.1:{}/sso", free_port());
    let (unready, _) = Operator::start_server(&kubeconfig, &ns.name, &no_database);
    let healthz = format!("http://{}/healthz", unready.metrics_address);
    let readyz = format!("http://{}/readyz", unready.metrics_address);
    let answering = wait_for(Duration::from_secs(60), || async {
        let healthy = status(healthz.clone()).await? == StatusCode::OK;
        let unready = status(readyz.clone()).await? == StatusCode::SERVICE_UNAVAILABLE;
        (healthy && unready).then_some(())
    })
    .await;
    assert!(answering.is_some(), "server log:\n{}", unready.log_text());
    let (ok, out, err) = probe(&["--timeout=2s", &healthz, &readyz]);
    assert!(!ok, "{out}{err}");
    assert!(out.contains(&format!("{healthz}: 200 OK")), "{out}");
    assert!(
        err.contains(&format!("{readyz}: answered 503 Service Unavailable")),
        "{err}"
    );

    // Nothing listening, and a path the server does not serve.
    let closed = format!("http://127.0.0.1:{}/readyz", free_port());
    let (ok, _, err) = probe(&["--timeout=2s", &closed]);
    assert!(!ok && err.contains("could not be reached"), "{err}");
    let missing = format!("http://{}/nothing-here", unready.metrics_address);
    let (ok, _, err) = probe(&[&missing]);
    assert!(!ok && err.contains("answered 404"), "{err}");
    // Only http(s) URLs.
    let (ok, _, err) = probe(&["ftp://127.0.0.1/readyz"]);
    assert!(!ok && err.contains("http or https"), "{err}");

    // A ready server passes.
    let (ready, _) = Operator::start_server(&kubeconfig, &ns.name, &support::sqlite_url("probe"));
    let healthz = format!("http://{}/healthz", ready.metrics_address);
    let readyz = format!("http://{}/readyz", ready.metrics_address);
    let became_ready = wait_for(Duration::from_secs(60), || async {
        (status(readyz.clone()).await? == StatusCode::OK).then_some(())
    })
    .await;
    assert!(became_ready.is_some(), "server log:\n{}", ready.log_text());
    let (ok, out, err) = probe(&["--timeout=20s", &healthz, &readyz]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
}
