//! sso-operator installed as a user installs it, on a real node: the release image built by
//! `tests/image/build` is imported into the node's container runtime and the chart is installed
//! with `helm install` (its CRDs included) into a namespace that enforces the `restricted` Pod
//! Security Standard. Then, as a user would: `kubectl apply` of examples/okta with the IdP
//! console's values filled in, a SCIM push and a signed SP-initiated sign-in through the
//! server's Service, the identity headers of `/auth/verify`, the SQLite volume keeping users
//! and sessions across a server pod deletion, the standby controller taking over from a deleted
//! leader, `helm upgrade` rolling every pod without losing anything, `helm uninstall` leaving
//! nothing behind, and PostgreSQL mode with two server replicas serving one session on both.
//!
//! These tests need the node started by `tests/kube/up --node` (root; only one node per host).
//! `scripts/test` starts one when it runs as root and sets `SSO_E2E=required`, which turns a
//! missing node into a failure. Run alone, without a node, they print why and check nothing:
//! start the node, then run `cargo test --test e2e`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use openssl::pkey::{PKey, Private};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::{Value, json};
use sso_operator::api::{IdentityProvider, ScimToken};
use support::chart::{chart, helm, tools};
use support::operator::EXTERNAL_URL;
use support::{
    TestNamespace, admin_kubeconfig, kube_dir, repo_root, set_cookies, urlencode, wait_for,
};

/// How long pods get to start and pass their probes on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a standby controller may take to lead and reconcile a new object after the
/// leader's pod was deleted.
const FAILOVER_WITHIN: Duration = Duration::from_secs(15);

/// Where a sign-in returns to: the example's Default RelayState, allowed by the installation.
const APP_URL: &str = "https://app.example.com/";

/// The test IdP's issuer (Okta: Issuer) and Sign on URL, as a user copies them from Okta.
const OKTA_ISSUER: &str = "http://www.okta.com/exk1e2e";
const OKTA_SSO_URL: &str = "https://example-org.okta.com/app/example-org_sso_1/exk1e2e/sso/saml";

/// The Secret holding the PostgreSQL connection string.
const DATABASE_SECRET: &str = "e2e-database";

/// The user the IdP pushes and signs in.
const ADA: &str = "ada.lovelace@example.com";

/// A client for the local cluster when it runs a Ready node; `None` (after saying why) otherwise.
async fn node_client() -> Option<Client> {
    let kubeconfig_path = kube_dir().join("admin.kubeconfig");
    let skip = |why: &str| {
        let why = format!(
            "{why}; these tests need the local node: start it with `tests/kube/up --node` (as root)"
        );
        // scripts/test started a node: its absence is a failure, not a reason to skip.
        assert!(
            std::env::var("SSO_E2E").as_deref() != Ok("required"),
            "{why}"
        );
        eprintln!("skipped: {why}");
    };
    if !kube_dir().join("node").is_dir() || !kubeconfig_path.is_file() {
        skip(&format!("no node state in {}", kube_dir().display()));
        return None;
    }
    let kubeconfig = Kubeconfig::read_from(&kubeconfig_path).expect("read the admin kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the admin kubeconfig is usable");
    let client = Client::try_from(config).expect("a client for the local cluster");
    let nodes = Api::<Node>::all(client.clone());
    let ready = tokio::time::timeout(Duration::from_secs(20), nodes.list(&ListParams::default()))
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|list| {
            list.items.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        });
    if !ready {
        skip("the local control plane has no Ready node");
        return None;
    }
    Some(client)
}

/// Builds the release image (cached when nothing changed) and imports it into the node, once
/// per test binary; its repository and tag.
fn image_on_node() -> (String, String) {
    static IMAGE: OnceLock<(String, String)> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let out = Command::new(repo_root().join("tests/image/build"))
                .output()
                .expect("run tests/image/build");
            assert!(
                out.status.success(),
                "tests/image/build failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let archive = &vars["IMAGE_ARCHIVE"];
            assert!(Path::new(archive).is_file(), "no image archive {archive}");
            let out = Command::new(repo_root().join("tests/kube/node-image"))
                .args(["import", archive])
                .output()
                .expect("run tests/kube/node-image");
            assert!(
                out.status.success(),
                "tests/kube/node-image import failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (vars["IMAGE_REPOSITORY"].clone(), vars["IMAGE_TAG"].clone())
        })
        .clone()
}

/// Runs kubectl (built by tests/tools/setup) against the local cluster; panics on failure and
/// returns its output.
fn kubectl(args: &[&str]) -> String {
    let out = Command::new(tools().join("kubectl"))
        .args(args)
        .env("KUBECONFIG", admin_kubeconfig())
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the Deployment has rolled out its current generation: observed, every replica
/// updated and ready, none old left, and Available.
fn rolled_out(d: &Deployment) -> bool {
    let generation = d.metadata.generation;
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions.as_ref().is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            })
            && s.ready_replicas.unwrap_or(0) == replicas
            && s.updated_replicas.unwrap_or(0) == replicas
            && s.replicas.unwrap_or(0) == replicas
    })
}

/// One release of the chart in a namespace of its own, uninstalled when dropped (also when the
/// test fails: its cluster-scoped objects do not go away with the namespace).
struct Release {
    client: Client,
    ns: TestNamespace,
    name: &'static str,
    http: reqwest::Client,
    idp_key: PKey<Private>,
    idp_cert: String,
    /// The values it was installed with.
    sets: Vec<String>,
}

impl Release {
    /// Installs the chart as docs/install.md says, with the locally built image, `sets` added;
    /// the controller watches only this namespace so that releases of parallel tests do not
    /// reconcile each other's objects.
    async fn install(
        client: &Client,
        name: &'static str,
        sets: &[String],
        database_url: Option<&str>,
    ) -> Self {
        let (repository, tag) = image_on_node();
        let ns = TestNamespace::new(client, name).await;
        if let Some(url) = database_url {
            // The connection string, in the Secret the chart is told about
            // (database.postgres.existingSecret), created first as docs/install.md says.
            Api::<Secret>::namespaced(client.clone(), &ns.name)
                .patch(
                    DATABASE_SECRET,
                    &PatchParams::apply("e2e").force(),
                    &Patch::Apply(json!({
                        "apiVersion": "v1", "kind": "Secret",
                        "metadata": { "name": DATABASE_SECRET },
                        "stringData": { "url": url }
                    })),
                )
                .await
                .expect("create the database Secret");
        }
        // Pods must meet the restricted Pod Security Standard, as on a hardened cluster.
        Api::<Namespace>::all(client.clone())
            .patch(
                &ns.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted"
                } } })),
            )
            .await
            .expect("label the namespace");
        let mut all = vec![
            format!("image.repository={repository}"),
            format!("image.tag={tag}"),
            "image.pullPolicy=Never".to_owned(),
            format!("externalUrl={EXTERNAL_URL}"),
            format!("server.allowedRedirects[0]={APP_URL}"),
            format!("controller.watchNamespace={}", ns.name),
        ];
        all.extend(sets.iter().cloned());
        let (ok, out, err) = helm_install(name, &ns.name, &all);
        let (idp_key, idp_cert) = support::self_signed("okta-e2e", -3600, 365 * 86_400);
        let release = Self {
            client: client.clone(),
            ns,
            name,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            idp_key,
            idp_cert,
            sets: all,
        };
        assert!(ok, "helm install: {out}{err}");
        release
    }

    /// `helm install` of this release again, in the same namespace with the same values; waits
    /// until it has rolled out and serves SCIM for the example's IdentityProvider again; the
    /// new Service's URL.
    async fn reinstall(&self) -> String {
        let (ok, out, err) = helm_install(self.name, &self.ns.name, &self.sets);
        assert!(ok, "helm install again: {out}{err}");
        self.wait_rolled_out().await;
        self.wait_ready::<IdentityProvider>("okta").await;
        let url = self.service_url().await;
        self.wait_serving(&url).await;
        let (base, token) = self.scim_credentials(&url).await;
        let users = format!("{base}/Users");
        let served = wait_for(Duration::from_secs(60), || async {
            let r = self
                .http
                .get(&users)
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            served.is_some(),
            "the reinstalled server never served SCIM: {}",
            self.pod_report().await
        );
        url
    }

    /// Waits until the server answers at `url` with the example IdentityProvider's metadata:
    /// after pods are replaced, kube-proxy needs a moment to route the Service to the new ones,
    /// and clients (the IdP, browsers) retry meanwhile.
    async fn wait_serving(&self, url: &str) {
        let metadata = format!("{url}/saml/{}/okta/metadata", self.ns.name);
        let served = wait_for(Duration::from_secs(60), || async {
            let r = self.http.get(&metadata).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            served.is_some(),
            "{metadata} never answered 200: {}",
            self.pod_report().await
        );
    }

    fn deployment_name(&self, component: &str) -> String {
        format!("{}-sso-operator-{component}", self.name)
    }

    /// Waits until both Deployments have rolled out; the controller's and the server's.
    async fn wait_rolled_out(&self) -> (Deployment, Deployment) {
        let deployments = Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name);
        let mut found = Vec::new();
        for component in ["controller", "server"] {
            let name = self.deployment_name(component);
            let d = wait_for(START_TIMEOUT, || {
                let (deployments, name) = (deployments.clone(), name.clone());
                async move { deployments.get(&name).await.ok().filter(rolled_out) }
            })
            .await;
            match d {
                Some(d) => found.push(d),
                None => panic!(
                    "Deployment {name} did not roll out within {START_TIMEOUT:?}: status {:?}\npods: {}",
                    deployments.get(&name).await.ok().and_then(|d| d.status),
                    self.pod_report().await
                ),
            }
        }
        let server = found.pop().unwrap();
        (found.pop().unwrap(), server)
    }

    /// The phase, conditions and container states of the release's pods, for failure messages.
    async fn pod_report(&self) -> String {
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns.name);
        let list = pods.list(&ListParams::default()).await;
        list.map(|l| {
            l.items
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}",
                        p.metadata.name.clone().unwrap_or_default(),
                        serde_json::to_string(&p.status).unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|e| e.to_string())
    }

    /// The release's pods of `component` that are not being deleted.
    async fn pods(&self, component: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), &self.ns.name)
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={},app.kubernetes.io/component={component}",
                self.name
            )))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// The server's Service, as `http://CLUSTER_IP:PORT` (kube-proxy's rules apply to the
    /// host's own connections).
    async fn service_url(&self) -> String {
        let svc = Api::<Service>::namespaced(self.client.clone(), &self.ns.name)
            .get(&self.deployment_name("server"))
            .await
            .expect("the server's Service");
        let spec = svc.spec.expect("a Service spec");
        let port = spec.ports.unwrap_or_default()[0].port;
        format!("http://{}:{port}", spec.cluster_ip.expect("a ClusterIP"))
    }

    /// The leader Lease's holder, once one replica holds it.
    async fn lease_holder(&self) -> Lease {
        let leases = Api::<Lease>::namespaced(self.client.clone(), &self.ns.name);
        wait_for(Duration::from_secs(60), || {
            let leases = leases.clone();
            async move {
                let lease = leases.get("sso-operator-controller").await.ok()?;
                lease.spec.as_ref()?.holder_identity.as_ref()?;
                Some(lease)
            }
        })
        .await
        .expect("no controller replica took the leader Lease")
    }

    /// `kubectl apply -n NS -f DIR` of examples/okta after filling in what the Okta console
    /// shows (Sign on URL, Issuer, Signing Certificate), as the example's comments say; waits
    /// until both resources are Ready.
    async fn apply_okta_example(&self) {
        let dir = std::env::temp_dir()
            .join("sso-operator-tests")
            .join(format!("e2e-example-{}", self.ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        let example = repo_root().join("examples/okta");
        for file in ["identityprovider.yaml", "scimtoken.yaml"] {
            let text = std::fs::read_to_string(example.join(file)).unwrap();
            std::fs::write(dir.join(file), self.fill_in(&text)).unwrap();
        }
        let out = kubectl(&[
            "apply",
            "--namespace",
            &self.ns.name,
            "-f",
            dir.to_str().unwrap(),
        ]);
        assert!(
            out.contains("identityprovider.sso-operator.dev/okta created"),
            "{out}"
        );
        self.wait_ready::<IdentityProvider>("okta").await;
        self.wait_ready::<ScimToken>("okta").await;
    }

    /// The example with the IdP console's values in place of its placeholders.
    fn fill_in(&self, text: &str) -> String {
        let mut out = String::new();
        let mut in_placeholder_cert = false;
        for line in text.lines() {
            let trimmed = line.trim_start();
            if trimmed == "-----BEGIN CERTIFICATE-----" {
                in_placeholder_cert = true;
                let indent = &line[..line.len() - trimmed.len()];
                for pem_line in self.idp_cert.lines() {
                    out.push_str(&format!("{indent}{pem_line}\n"));
                }
                continue;
            }
            if in_placeholder_cert {
                in_placeholder_cert = trimmed != "-----END CERTIFICATE-----";
                continue;
            }
            let line = line
                .replace(
                    "https://REPLACE-ME.okta.com/app/REPLACE-ME/sso/saml",
                    OKTA_SSO_URL,
                )
                .replace("http://www.okta.com/REPLACE-ME", OKTA_ISSUER);
            out.push_str(&line);
            out.push('\n');
        }
        let left: Vec<&str> = out
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains("REPLACE-ME"))
            .collect();
        assert!(
            left.is_empty(),
            "placeholders the test does not fill in: {left:?}"
        );
        out
    }

    /// Waits until resource `name` of kind `K` reports Ready=True.
    async fn wait_ready<K>(&self, name: &str)
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api = Api::<K>::namespaced(self.client.clone(), &self.ns.name);
        let ready = wait_for(Duration::from_secs(60), || {
            let api = api.clone();
            async move {
                let obj = serde_json::to_value(api.get(name).await.ok()?).ok()?;
                obj["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    .then_some(())
            }
        })
        .await;
        if ready.is_none() {
            panic!(
                "{} {name} never became Ready: {:?}\npods: {}",
                K::kind(&Default::default()),
                api.get(name)
                    .await
                    .map(|o| serde_json::to_value(o).unwrap()["status"].clone()),
                self.pod_report().await
            );
        }
    }

    /// The SCIM base URL and token Okta is given (the example's Secret), with the base URL's
    /// external address replaced by `url`.
    async fn scim_credentials(&self, url: &str) -> (String, String) {
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.ns.name)
            .get("okta-scim-token")
            .await
            .expect("the ScimToken's Secret");
        let data = secret.data.expect("Secret data");
        let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        let base = text("scimBaseUrl");
        assert!(base.starts_with(EXTERNAL_URL), "{base}");
        (base.replacen(EXTERNAL_URL, url, 1), text("token"))
    }

    /// Pushes ada and the group engineering over SCIM as Okta does; returns ada's id.
    async fn push_ada(&self, base: &str, token: &str) -> String {
        let user: Value = self
            .scim(
                reqwest::Method::POST,
                &format!("{base}/Users"),
                token,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": ADA,
                    "name": { "givenName": "Ada", "familyName": "Lovelace" },
                    "emails": [{ "primary": true, "value": ADA, "type": "work" }],
                    "displayName": "Ada Lovelace",
                    "active": true
                }),
            )
            .await;
        let id = user["id"].as_str().expect("a user id").to_owned();
        let group: Value = self
            .scim(
                reqwest::Method::POST,
                &format!("{base}/Groups"),
                token,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "engineering",
                    "members": [{ "value": id, "display": ADA }]
                }),
            )
            .await;
        assert_eq!(group["displayName"], "engineering");
        id
    }

    /// A SCIM request that must succeed; its JSON answer.
    async fn scim(&self, method: reqwest::Method, url: &str, token: &str, body: Value) -> Value {
        let mut req = self.http.request(method.clone(), url).bearer_auth(token);
        if method != reqwest::Method::GET {
            req = req
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Users named `name` that the SCIM server at `base` has.
    async fn users_named(&self, base: &str, token: &str, name: &str) -> i64 {
        let filter = format!("userName eq \"{name}\"");
        let url = reqwest::Url::parse_with_params(&format!("{base}/Users"), &[("filter", filter)])
            .unwrap();
        self.scim(reqwest::Method::GET, url.as_str(), token, Value::Null)
            .await["totalResults"]
            .as_i64()
            .expect("totalResults")
    }

    /// An SP-initiated sign-in of ada through `url`: `/login` redirects to Okta's Sign on URL
    /// with an AuthnRequest, the test IdP (signxml) answers with a signed assertion, and the
    /// ACS sends the browser back to the app with a session cookie; the `Cookie` header.
    async fn sign_in(&self, url: &str) -> String {
        let login = format!(
            "{url}/saml/{}/okta/login?redirect={}",
            self.ns.name,
            urlencode(APP_URL)
        );
        let r = self.http.get(&login).send().await.expect("GET login");
        assert_eq!(r.status(), StatusCode::FOUND, "{login}");
        let location = reqwest::Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert!(
            location.as_str().starts_with(OKTA_SSO_URL),
            "login goes to Okta's Sign on URL: {location}"
        );
        let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert!(query.contains_key("SAMLRequest"), "{location}");
        let relay = query["RelayState"].clone();
        let (cookie_name, cookie_value) = set_cookies(&r)
            .into_iter()
            .next()
            .expect("a sign-in cookie");

        let acs = format!("{EXTERNAL_URL}/saml/{}/okta/acs", self.ns.name);
        let now = Timestamp::now();
        let response = support::signed_response(&json!({
            "keyPem": String::from_utf8(self.idp_key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            "certPem": self.idp_cert,
            "issuer": OKTA_ISSUER,
            "destination": acs, "recipient": acs,
            "audience": format!("{EXTERNAL_URL}/saml/{}/okta/metadata", self.ns.name),
            "inResponseTo": relay,
            "nameId": ADA,
            "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            "attributes": { "email": [ADA], "firstName": ["Ada"], "lastName": ["Lovelace"], "groups": ["Everyone"] },
            "sign": "both",
            "notBefore": support::rfc3339(now - SignedDuration::from_secs(30)),
            "notOnOrAfter": support::rfc3339(now + SignedDuration::from_mins(5)),
            "assertionId": support::random_id("_a"),
            "responseId": support::random_id("_r"),
        }));
        let r = self
            .http
            .post(format!("{url}/saml/{}/okta/acs", self.ns.name))
            .header(COOKIE, format!("{cookie_name}={cookie_value}"))
            .form(&[("SAMLResponse", response.as_str()), ("RelayState", &relay)])
            .send()
            .await
            .expect("POST acs");
        let status = r.status();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let session_name =
            sso_operator::session::cookie_name(&format!("{}/okta", self.ns.name), true);
        let session = set_cookies(&r).get(&session_name).cloned();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status.is_redirection() && location.as_deref() == Some(APP_URL),
            "the ACS answered {status} {location:?}: {body}"
        );
        format!("{session_name}={}", session.expect("a session cookie"))
    }

    /// `/auth/NAMESPACE/okta/verify` at `url` with the session `cookie`: the identity headers
    /// of a 200, or the status.
    async fn verify(
        &self,
        url: &str,
        cookie: &str,
    ) -> Result<BTreeMap<String, String>, StatusCode> {
        let r = self
            .http
            .get(format!("{url}/auth/{}/okta/verify", self.ns.name))
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("GET verify");
        if r.status() != StatusCode::OK {
            return Err(r.status());
        }
        Ok(r.headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-auth-request-"))
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect())
    }

    /// Asserts that `cookie` is ada's session at `url`, member of engineering (from SCIM).
    async fn assert_ada(&self, url: &str, cookie: &str) {
        let headers = self
            .verify(url, cookie)
            .await
            .unwrap_or_else(|s| panic!("/auth/verify at {url} answered {s}"));
        assert_eq!(
            headers.get("x-auth-request-user").map(String::as_str),
            Some(ADA),
            "{headers:?}"
        );
        assert_eq!(
            headers.get("x-auth-request-email").map(String::as_str),
            Some(ADA),
            "{headers:?}"
        );
        assert!(
            headers
                .get("x-auth-request-groups")
                .is_some_and(|g| g.split(',').any(|g| g == "engineering")),
            "{headers:?}"
        );
    }

    /// An IdentityProvider applied with kube-rs (a second object for the controller to
    /// reconcile), with this test IdP's certificate.
    async fn apply_identity_provider(&self, name: &str) {
        let api = Api::<IdentityProvider>::namespaced(self.client.clone(), &self.ns.name);
        let obj = json!({
            "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider",
            "metadata": { "name": name },
            "spec": { "provider": "okta", "idp": {
                "ssoUrl": OKTA_SSO_URL, "entityId": format!("{OKTA_ISSUER}-{name}"),
                "certificates": [{ "pem": self.idp_cert }] } }
        });
        api.patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .expect("apply an IdentityProvider");
    }

    /// Runs `helm upgrade` of this release with `--reuse-values` and `sets`.
    fn upgrade(&self, sets: &[&str]) {
        let chart = chart();
        let mut args = vec![
            "upgrade",
            self.name,
            chart.as_str(),
            "--namespace",
            &self.ns.name,
            "--reuse-values",
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        let (ok, out, err) = helm(&args);
        assert!(ok, "helm upgrade: {out}{err}");
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            self.name,
            "--namespace",
            &self.ns.name,
            "--ignore-not-found",
        ]);
    }
}

/// `helm install NAME CHART --namespace NAMESPACE --set ...`.
fn helm_install(name: &str, namespace: &str, sets: &[String]) -> (bool, String, String) {
    let chart = chart();
    let mut args = vec!["install", name, chart.as_str(), "--namespace", namespace];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    helm(&args)
}

/// Asserts that no pod of the release restarted, and prints each pod's created → Ready time.
async fn no_restarts_and_start_times(release: &Release) {
    for pod in Api::<Pod>::namespaced(release.client.clone(), &release.ns.name)
        .list(
            &ListParams::default().labels(&format!("app.kubernetes.io/instance={}", release.name)),
        )
        .await
        .unwrap()
        .items
    {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let created = pod.metadata.creation_timestamp.clone().unwrap().0;
        let status = pod.status.expect("a pod has a status");
        if let Some(ready) = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status == "True")
            .and_then(|c| c.last_transition_time)
        {
            eprintln!(
                "pod {name}: created → Ready in {} s",
                ready.0.duration_since(created).as_secs_f64()
            );
        }
        for c in status.container_statuses.unwrap_or_default() {
            assert_eq!(
                c.restart_count, 0,
                "container {} of {name} restarted",
                c.name
            );
        }
    }
}

/// Waits until `api` lists no object labelled with the release; panics naming what is left.
async fn none_left<K>(api: Api<K>, release: &str, what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let selector = format!("app.kubernetes.io/instance={release}");
    let gone = wait_for(Duration::from_secs(60), || {
        let (api, selector) = (api.clone(), selector.clone());
        async move {
            api.list(&ListParams::default().labels(&selector))
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    if gone.is_none() {
        let left: Vec<String> = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|l| {
                l.items
                    .iter()
                    .map(|o| o.meta().name.clone().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        panic!("helm uninstall left {what}: {left:?}");
    }
}

/// One release's life, as one test: each step starts from what the one before left (the
/// users and the session that must survive the pod deletion, the failover and the upgrade;
/// the claim that the reinstall must adopt), so splitting it would mean installing the chart
/// on the node again for every step.
#[tokio::test]
async fn a_user_installs_the_chart_signs_in_and_keeps_everything_through_pod_deletions_failover_upgrade_and_uninstall()
 {
    let Some(client) = node_client().await else {
        return;
    };
    image_on_node();
    let installed = Instant::now();
    let release = Release::install(&client, "e2e", &[], None).await;

    // The chart's CRDs are installed (or were already: helm never replaces them).
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for name in [
        "identityproviders.sso-operator.dev",
        "scimtokens.sso-operator.dev",
    ] {
        crds.get(name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} after helm install: {e}"));
    }
    release.wait_rolled_out().await;
    eprintln!(
        "helm install → both Deployments Available in {:.1} s",
        installed.elapsed().as_secs_f64()
    );

    // One controller replica leads, and its Lease goes with the controller's Deployment.
    let lease = release.lease_holder().await;
    let holder = lease
        .spec
        .as_ref()
        .unwrap()
        .holder_identity
        .clone()
        .unwrap();
    assert!(
        holder.starts_with(&format!("{}-sso-operator-controller-", release.name)),
        "{holder}"
    );
    let owners = lease.metadata.owner_references.clone().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.kind == "Deployment" && o.name == release.deployment_name("controller")),
        "the Lease is not owned by the controller's Deployment: {owners:?}"
    );
    no_restarts_and_start_times(&release).await;

    let (ok, out, err) = helm(&[
        "test",
        release.name,
        "--namespace",
        &release.ns.name,
        "--timeout",
        "3m",
    ]);
    assert!(ok, "helm test: {out}{err}");
    assert!(out.contains("Phase:          Succeeded"), "{out}");

    // examples/okta, filled in as its comments say, becomes Ready; Okta pushes a user and a
    // group and the user signs in, all through the server's Service.
    release.apply_okta_example().await;
    let url = release.service_url().await;
    release.wait_serving(&url).await;
    let (scim_base, token) = release.scim_credentials(&url).await;
    release.push_ada(&scim_base, &token).await;
    let session = release.sign_in(&url).await;
    release.assert_ada(&url, &session).await;
    assert_eq!(
        release.verify(&url, "no-session=1").await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "without a session /auth/verify refuses"
    );

    // The SQLite volume keeps users and sessions when the server pod is deleted.
    let old_server = release.pods("server").await;
    assert_eq!(old_server.len(), 1, "one SQLite server replica");
    let old_name = old_server[0].metadata.name.clone().unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &release.ns.name);
    pods.delete(&old_name, &DeleteParams::default())
        .await
        .expect("delete the server pod");
    let replaced = wait_for(START_TIMEOUT, || async {
        let now = release.pods("server").await;
        let ready = now.iter().any(|p| {
            p.metadata.name.as_deref() != Some(old_name.as_str())
                && p.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
        });
        let old_gone = pods.get_opt(&old_name).await.ok()?.is_none();
        (ready && old_gone).then_some(())
    })
    .await;
    assert!(
        replaced.is_some(),
        "the server pod was not replaced: {}",
        release.pod_report().await
    );
    release.wait_serving(&url).await;
    assert_eq!(release.users_named(&scim_base, &token, ADA).await, 1);
    release.assert_ada(&url, &session).await;

    // Deleting the leader's pod: the standby leads and reconciles a new object within 15 s.
    // The chart makes each replica's identity its pod name.
    let leader_pod = release
        .lease_holder()
        .await
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let deleted = Instant::now();
    pods.delete(&leader_pod, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete the leader pod {leader_pod}: {e}"));
    // The new object is created once another replica holds the Lease, so that the deleted
    // leader (still stopping) cannot be the one that reconciles it.
    let leases = Api::<Lease>::namespaced(client.clone(), &release.ns.name);
    let new_holder = wait_for(START_TIMEOUT, || async {
        let holder = leases
            .get("sso-operator-controller")
            .await
            .ok()?
            .spec?
            .holder_identity?;
        (holder != leader_pod).then_some(holder)
    })
    .await
    .expect("no other replica took the Lease");
    let led = deleted.elapsed();
    release.apply_identity_provider("after-failover").await;
    release
        .wait_ready::<IdentityProvider>("after-failover")
        .await;
    let failover = deleted.elapsed();
    eprintln!(
        "leader pod {leader_pod} deleted → {new_holder} leads after {:.1} s, and a new IdentityProvider is Ready after {:.1} s",
        led.as_secs_f64(),
        failover.as_secs_f64()
    );
    assert!(
        failover <= FAILOVER_WITHIN,
        "the standby took {failover:?} to reconcile a new object (at most {FAILOVER_WITHIN:?})"
    );
    release.wait_rolled_out().await;

    // helm upgrade changing a value rolls every pod and loses nothing.
    let before: Vec<String> = [
        release.pods("controller").await,
        release.pods("server").await,
    ]
    .concat()
    .iter()
    .map(|p| p.metadata.name.clone().unwrap())
    .collect();
    release.upgrade(&[
        "controller.podLabels.e2e-rolled=yes",
        "server.podLabels.e2e-rolled=yes",
    ]);
    let (controller, server) = release.wait_rolled_out().await;
    for d in [&controller, &server] {
        assert_eq!(
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()["e2e-rolled"],
            "yes"
        );
    }
    let after = [
        release.pods("controller").await,
        release.pods("server").await,
    ]
    .concat();
    for p in &after {
        let name = p.metadata.name.clone().unwrap();
        assert!(
            !before.contains(&name),
            "pod {name} was not replaced by the upgrade"
        );
    }
    release.wait_serving(&url).await;
    assert_eq!(release.users_named(&scim_base, &token, ADA).await, 1);
    release.assert_ada(&url, &session).await;
    let second = release.sign_in(&url).await;
    release.assert_ada(&url, &second).await;
    release.wait_ready::<IdentityProvider>("okta").await;

    // CRD upgrades, as docs/install.md says (helm never upgrades the chart's crds/ folder).
    let crd_path = std::env::temp_dir()
        .join("sso-operator-tests")
        .join(format!("e2e-crds-{}.yaml", release.ns.name));
    let (ok, crds_out, err) = helm(&["show", "crds", chart().as_str()]);
    assert!(ok, "helm show crds: {err}");
    std::fs::write(&crd_path, &crds_out).unwrap();
    let applied = kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crd_path.to_str().unwrap(),
    ]);
    assert!(
        applied.contains("identityproviders.sso-operator.dev serverside-applied"),
        "{applied}"
    );
    no_restarts_and_start_times(&release).await;

    // helm uninstall leaves nothing of the release behind; the user's own objects (the
    // IdentityProviders and what they own) stay.
    let config_ns = format!("{}-config", release.ns.name);
    let (ok, out, err) = helm(&[
        "uninstall",
        release.name,
        "--namespace",
        &release.ns.name,
        "--wait",
    ]);
    assert!(ok, "helm uninstall: {out}{err}");
    // Every kind the chart creates, by its release label.
    macro_rules! none_of_the_release_left {
        ($($kind:ty => $what:literal in $api:expr),* $(,)?) => {
            $(none_left($api as Api<$kind>, release.name, $what).await;)*
        };
    }
    none_of_the_release_left!(
        Deployment => "Deployments" in Api::namespaced(client.clone(), &release.ns.name),
        Pod => "pods" in Api::namespaced(client.clone(), &release.ns.name),
        Service => "Services" in Api::namespaced(client.clone(), &release.ns.name),
        ServiceAccount => "ServiceAccounts" in Api::namespaced(client.clone(), &release.ns.name),
        ConfigMap => "ConfigMaps" in Api::namespaced(client.clone(), &release.ns.name),
        Secret => "Secrets" in Api::namespaced(client.clone(), &release.ns.name),
        Role => "Roles" in Api::namespaced(client.clone(), &release.ns.name),
        RoleBinding => "RoleBindings" in Api::namespaced(client.clone(), &release.ns.name),
        ClusterRole => "ClusterRoles" in Api::all(client.clone()),
        ClusterRoleBinding => "ClusterRoleBindings" in Api::all(client.clone()),
    );
    let leases = Api::<Lease>::namespaced(client.clone(), &release.ns.name);
    let lease_gone = wait_for(Duration::from_secs(60), || async {
        leases
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        lease_gone.is_some(),
        "the leader Lease outlived the release: {:?}",
        leases.list(&ListParams::default()).await.map(|l| l.items)
    );
    let namespaces = Api::<Namespace>::all(client.clone());
    let config_gone = wait_for(Duration::from_secs(120), || async {
        namespaces
            .get_opt(&config_ns)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        config_gone.is_some(),
        "the configuration namespace {config_ns} outlived the release"
    );
    // The user's IdentityProviders stay, with their own Secrets, and so does the SQLite claim
    // (`helm.sh/resource-policy: keep`, as docs/install.md says): installing the release
    // again adopts it, with every user in it.
    let idps = Api::<IdentityProvider>::namespaced(client.clone(), &release.ns.name);
    assert_eq!(
        idps.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &release.ns.name);
    let kept: Vec<String> = claims
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(kept, [format!("{}-sso-operator-data", release.name)]);
    let url = release.reinstall().await;
    let (scim_base, token) = release.scim_credentials(&url).await;
    assert_eq!(release.users_named(&scim_base, &token, ADA).await, 1);
    let (ok, out, err) = helm(&[
        "uninstall",
        release.name,
        "--namespace",
        &release.ns.name,
        "--wait",
    ]);
    assert!(ok, "helm uninstall: {out}{err}");
}

#[tokio::test]
async fn postgresql_mode_with_two_server_replicas_serves_one_session_on_both() {
    let Some(client) = node_client().await else {
        return;
    };
    // The test PostgreSQL server, reached by pods on the node's address (scripts/test starts it
    // with SSO_PG_LISTEN=10.244.0.1); a database of this test's own.
    let node_ip = std::env::var("SSO_NODE_IP").unwrap_or_else(|_| "10.244.0.1".to_owned());
    let database = format!("sso_e2e_{}", &support::random_id("")[..12]);
    let local_url = support::postgres_up(&[("SSO_PG_DB", database.clone())]);
    let pod_url = local_url.replacen("@127.0.0.1:", &format!("@{node_ip}:"), 1);
    assert_ne!(pod_url, local_url, "{local_url}");
    let port = local_url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_owned();
    assert!(
        std::net::TcpStream::connect(format!("{node_ip}:{port}")).is_ok(),
        "PostgreSQL does not listen on {node_ip}:{port}, where the pods connect: start it with SSO_PG_LISTEN={node_ip} tests/postgres/up (scripts/test does)"
    );

    let release = Release::install(
        &client,
        "e2e-pg",
        &[
            "database.type=postgres".to_owned(),
            format!("database.postgres.existingSecret={DATABASE_SECRET}"),
            "server.replicas=2".to_owned(),
            "controller.replicas=1".to_owned(),
        ],
        Some(&pod_url),
    )
    .await;
    let (_, server) = release.wait_rolled_out().await;
    assert_eq!(server.status.unwrap().ready_replicas, Some(2));

    release.apply_okta_example().await;
    let url = release.service_url().await;
    release.wait_serving(&url).await;
    let (scim_base, token) = release.scim_credentials(&url).await;
    release.push_ada(&scim_base, &token).await;
    let session = release.sign_in(&url).await;

    // Both replicas, asked directly on their pod addresses, know the user and the session.
    let servers = release.pods("server").await;
    assert_eq!(servers.len(), 2);
    let mut seen = Vec::new();
    for pod in &servers {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .expect("a pod IP");
        let pod_url = format!("http://{ip}:8080");
        release.assert_ada(&pod_url, &session).await;
        let pod_scim = scim_base.replacen(&url, &pod_url, 1);
        assert_eq!(
            release.users_named(&pod_scim, &token, ADA).await,
            1,
            "{pod_url}"
        );
        seen.push(ip);
    }
    assert_ne!(seen[0], seen[1], "two different pods");
    no_restarts_and_start_times(&release).await;
}
