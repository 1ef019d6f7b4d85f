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

/// The folder holding helm, helm-docs and argocd-health, built once per test binary.
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
    template_with(None, sets)
}

/// Like [`template`], with a values file (`-f`) holding `values` (YAML) as well.
pub fn template_values(values: &str, sets: &[&str]) -> Result<Vec<Value>, String> {
    let file = values_file(values);
    template_with(Some(&file.display().to_string()), sets)
}

/// Writes `values` (YAML) to a file of its own for `helm -f`.
pub fn values_file(values: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("sso-operator-tests");
    std::fs::create_dir_all(&dir).expect("create the tests' temporary folder");
    let file = dir.join(format!(
        "values-{}-{}.yaml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, values).expect("write values file");
    file
}

fn template_with(values_file: Option<&str>, sets: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart();
    let mut args = vec!["template", "rel", chart.as_str(), "--namespace", "sso"];
    if let Some(file) = values_file {
        args.extend(["-f", file]);
    }
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
