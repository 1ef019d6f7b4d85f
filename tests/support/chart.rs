//! The Helm chart as the tests use it: helm built from its Go module (`tests/tools/setup`),
//! `helm template` of the chart in this repository, and the value combinations the chart tests
//! render.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use super::{admin_kubeconfig, repo_root};

/// `--set` value that every render needs.
pub const URL: &str = "externalUrl=https://sso.example.com";

/// Value combinations the chart is rendered with: the defaults, a namespace-scoped SQLite
/// install with every controller option, and PostgreSQL with autoscaling and every optional
/// object.
pub const VALUE_COMBINATIONS: &[&[&str]] = &[
    &[URL],
    &[
        URL,
        "controller.watchNamespace=team-a",
        "controller.allowPrivateMetadataAddresses=true",
        "controller.extraArgs[0]=--metadata-ca-file=/etc/sso/ca.pem",
        "server.allowedRedirects[0]=https://app.example.com/",
        "server.allowedRedirects[1]=https://*.apps.example.com/",
        "server.ingress.enabled=true",
        "networkPolicy.enabled=true",
    ],
    &[
        URL,
        "database.type=postgres",
        "database.postgres.existingSecret=pg",
        "server.autoscaling.enabled=true",
        "server.podDisruptionBudget.enabled=true",
        "server.ingress.enabled=true",
        "networkPolicy.enabled=true",
        "metrics.serviceMonitor.enabled=true",
        "metrics.grafanaDashboard.enabled=true",
        "controller.watchNamespace=team-a",
    ],
];

/// The folder holding helm and argocd-health, built once per test binary.
pub fn tools() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(repo_root().join("tests/tools/setup"))
            .output()
            .expect("run tests/tools/setup");
        assert!(
            out.status.success(),
            "tests/tools/setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// Runs helm against the local control plane; returns (success, stdout, stderr).
pub fn helm(args: &[&str]) -> (bool, String, String) {
    run_helm(args, Some(admin_kubeconfig()))
}

/// Runs helm with no cluster to talk to (`template`, `lint`).
pub fn helm_offline(args: &[&str]) -> (bool, String, String) {
    run_helm(args, None)
}

fn run_helm(args: &[&str], kubeconfig: Option<PathBuf>) -> (bool, String, String) {
    let home = std::env::temp_dir().join("sso-operator-tests");
    let out = Command::new(tools().join("helm"))
        .args(args)
        .env(
            "KUBECONFIG",
            kubeconfig.unwrap_or_else(|| home.join("no-cluster.kubeconfig")),
        )
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The chart's folder.
pub fn chart() -> String {
    repo_root()
        .join("charts/sso-operator")
        .display()
        .to_string()
}

/// `helm template` with `sets`, the way GitOps tools and users render the chart offline (no
/// `--kube-version`, no cluster); the rendered documents, or the error text.
pub fn template(sets: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.as_str(), "--namespace", "sso"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, out, err) = helm_offline(&args);
    if !ok {
        return Err(err);
    }
    Ok(out
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect())
}

/// The documents of `kind`.
pub fn kinds(docs: &[Value], kind: &str) -> Vec<Value> {
    docs.iter().filter(|d| d["kind"] == kind).cloned().collect()
}
