//! Test support: one real local Kubernetes control plane per test run (started by
//! `tests/kube/up`, or reused when already running), a namespace per test, and clients that
//! authenticate as a given ServiceAccount.
#![allow(dead_code)]

pub mod operator;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Field manager used by the tests themselves.
pub const TEST_MANAGER: &str = "sso-operator-tests";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory holding the local control plane's state and admin kubeconfig.
pub fn kube_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SSO_KUBE_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("SSO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/sso-operator")
        });
    cache.join("kube")
}

/// Path of the admin kubeconfig of the local control plane, starting it if needed.
pub fn admin_kubeconfig() -> PathBuf {
    static STARTED: OnceLock<PathBuf> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let status = Command::new(repo_root().join("tests/kube/up"))
                .status()
                .expect("run tests/kube/up");
            assert!(status.success(), "tests/kube/up failed: {status}");
            kube_dir().join("admin.kubeconfig")
        })
        .clone()
}

/// A client with cluster-admin rights on the local control plane.
pub async fn admin_client() -> Client {
    let kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).expect("read admin kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("admin kubeconfig is valid");
    Client::try_from(config).expect("build admin client")
}

/// Installs (server-side apply) both CRDs from `crds/` and waits until they are Established.
pub async fn install_crds(client: &Client) {
    let yaml = std::fs::read_to_string(repo_root().join("crds/sso-operator.yaml"))
        .expect("read crds/sso-operator.yaml");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in serde_saphyr::from_multiple::<CustomResourceDefinition>(&yaml)
        .expect("parse crds/sso-operator.yaml")
    {
        let name = doc.metadata.name.clone().expect("CRD has a name");
        crds.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        names.push(name);
    }
    for name in names {
        wait_for(Duration::from_secs(30), || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                let crd = crds.get(&name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .into_iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            }
        })
        .await
        .unwrap_or_else(|| panic!("CRD {name} did not become Established"));
    }
}

/// A namespace of its own for one test; deleted (best effort) when dropped.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates a namespace whose name starts with `prefix`.
    pub async fn new(client: &Client, prefix: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let name = format!(
            "{prefix}-{}-{:x}{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("sso-operator.dev/test".to_owned(), "true".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's client is driven by the test's (blocked) runtime:
        // delete with a client of its own on a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let api = Api::<Namespace>::all(admin_client().await);
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                });
            }
        })
        .join();
    }
}

/// A client that authenticates as the ServiceAccount `namespace/name` (a bound token from the
/// TokenRequest API), so code can be run with exactly that account's RBAC permissions.
pub async fn service_account_client(admin: &Client, namespace: &str, name: &str) -> Client {
    let token = service_account_token(admin, namespace, name).await;
    let kubeconfig = Kubeconfig::read_from(admin_kubeconfig()).expect("read admin kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("admin kubeconfig is valid");
    config.auth_info =
        serde_json::from_value(serde_json::json!({ "token": token })).expect("token auth info");
    config.default_namespace = namespace.to_owned();
    Client::try_from(config).expect("build ServiceAccount client")
}

/// A bound token (TokenRequest API, one hour) for the ServiceAccount `namespace/name`.
pub async fn service_account_token(admin: &Client, namespace: &str, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    sas.create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("create ServiceAccount token")
        .status
        .expect("token status")
        .token
        .expect("token")
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
