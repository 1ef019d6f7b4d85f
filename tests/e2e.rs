//! sso-operator installed as a user installs it, on a real node: the release image built by
//! `tests/image/build` is imported into the node's container runtime, the chart is installed
//! with `helm install` (its CRDs included), both Deployments become Available with their probes
//! passing in a namespace that enforces the `restricted` Pod Security Standard, one controller
//! replica holds the leader Lease, and `helm test` passes.
//!
//! These tests need the node started by `tests/kube/up --node` (root; only one node per host).
//! `scripts/test` starts one when it runs as root and sets `SSO_E2E=required`, which turns a
//! missing node into a failure. Run alone, without a node, they print why and check nothing:
//! start the node, then run `cargo test --test e2e`.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use support::chart::{chart, helm};
use support::operator::EXTERNAL_URL;
use support::{TestNamespace, kube_dir, repo_root, wait_for};

/// How long pods get to start and pass their probes on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);

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

/// Builds the release image (cached when nothing changed) and imports it into the node; its
/// repository and tag.
fn image_on_node() -> (String, String) {
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
}

/// Whether the Deployment reports the condition Available=True for its current generation.
fn available(d: &Deployment) -> bool {
    let generation = d.metadata.generation;
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions.as_ref().is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            })
            && s.ready_replicas.unwrap_or(0)
                == d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    })
}

/// Uninstalls the release when dropped, also when the test fails: the release's cluster-scoped
/// objects (its configuration namespace) do not go away with the test's namespace.
struct Uninstall {
    release: &'static str,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = helm(&[
            "uninstall",
            self.release,
            "--namespace",
            &self.namespace,
            "--ignore-not-found",
        ]);
    }
}

#[tokio::test]
async fn helm_install_on_the_node_becomes_available_and_passes_helm_test() {
    let Some(client) = node_client().await else {
        return;
    };
    let (repository, tag) = image_on_node();
    let ns = TestNamespace::new(&client, "e2e").await;
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

    let release = "e2e";
    let chart = chart();
    let sets = [
        format!("image.repository={repository}"),
        format!("image.tag={tag}"),
        "image.pullPolicy=Never".to_owned(),
        format!("externalUrl={EXTERNAL_URL}"),
    ];
    let mut args = vec!["install", release, chart.as_str(), "--namespace", &ns.name];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let (ok, out, err) = helm(&args);
    let _release = Uninstall {
        release,
        namespace: ns.name.clone(),
    };
    assert!(ok, "helm install: {out}{err}");

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

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    for component in ["controller", "server"] {
        let name = format!("{release}-sso-operator-{component}");
        let found = wait_for(START_TIMEOUT, || {
            let deployments = deployments.clone();
            let name = name.clone();
            async move { deployments.get(&name).await.ok().filter(available) }
        })
        .await;
        if found.is_none() {
            let d = deployments.get(&name).await.ok();
            panic!(
                "Deployment {name} did not become Available within {START_TIMEOUT:?}: status {:?}",
                d.and_then(|d| d.status)
            );
        }
    }

    // One controller replica leads.
    let leases = Api::<Lease>::namespaced(client.clone(), &ns.name);
    let holder = wait_for(Duration::from_secs(60), || {
        let leases = leases.clone();
        async move {
            leases
                .get("sso-operator-controller")
                .await
                .ok()
                .and_then(|l| l.spec?.holder_identity)
        }
    })
    .await
    .expect("no controller replica took the leader Lease");
    assert!(
        holder.starts_with(&format!("{release}-sso-operator-controller-")),
        "{holder}"
    );

    // Pod created → Ready, and no restarts.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    for pod in pods.list(&ListParams::default()).await.unwrap().items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let created = pod.metadata.creation_timestamp.clone().unwrap().0;
        let status = pod.status.expect("a Ready pod has a status");
        let ready = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status == "True")
            .and_then(|c| c.last_transition_time)
            .unwrap_or_else(|| panic!("pod {name} is not Ready"))
            .0;
        eprintln!(
            "pod {name}: created → Ready in {} s",
            ready.duration_since(created).as_secs_f64()
        );
        for c in status.container_statuses.unwrap_or_default() {
            assert_eq!(
                c.restart_count, 0,
                "container {} of {name} restarted",
                c.name
            );
        }
    }

    let (ok, out, err) = helm(&["test", release, "--namespace", &ns.name, "--timeout", "3m"]);
    assert!(ok, "helm test: {out}{err}");
    assert!(out.contains("Phase:          Succeeded"), "{out}");

    let (ok, out, err) = helm(&["uninstall", release, "--namespace", &ns.name, "--wait"]);
    assert!(ok, "helm uninstall: {out}{err}");
}
