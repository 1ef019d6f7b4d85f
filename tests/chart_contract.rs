//! The chart's contract with the binary, checked in milliseconds without a cluster: every
//! container the chart renders, for every values combination the chart tests use, passes
//! arguments and environment variables that the binary's own command line definition accepts,
//! the chart's notes point at files that exist, and the server's RBAC reaches Secrets only in
//! the configuration namespace both roles are given. The values users know from other charts
//! (name overrides, ServiceAccounts, pod options, image digest, ServiceMonitor, `helm test`)
//! reach the objects, every value is described in the schema, and the chart's README is what
//! helm-docs generates from values.yaml.

mod support;

use clap::{CommandFactory, Parser};
use serde_json::Value;
use sso_operator::cli::{Cli, DEFAULT_LOG_FILTER};
use support::chart::{URL, VALUE_COMBINATIONS, kinds, template};
use support::repo_root;

/// The pod spec of a Deployment or of a Pod (the `helm test` hook).
fn pod_spec(object: &Value) -> &Value {
    if object["kind"] == "Pod" {
        &object["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    }
}

/// (Deployment or Pod name, container name, args, env) of every container in `docs`.
fn containers(docs: &[Value]) -> Vec<(String, String, Vec<String>, Vec<Value>)> {
    let mut found = Vec::new();
    let mut objects = kinds(docs, "Deployment");
    objects.extend(kinds(docs, "Pod"));
    for deployment in objects {
        let name = deployment["metadata"]["name"].as_str().unwrap().to_owned();
        for c in pod_spec(&deployment)["containers"].as_array().unwrap() {
            let args = c["args"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            let env = c["env"].as_array().cloned().unwrap_or_default();
            found.push((
                name.clone(),
                c["name"].as_str().unwrap().to_owned(),
                args,
                env,
            ));
        }
    }
    found
}

#[test]
fn every_container_the_chart_renders_passes_arguments_the_binary_accepts() {
    for sets in VALUE_COMBINATIONS {
        let docs = template(sets).unwrap_or_else(|e| panic!("helm template {sets:?}: {e}"));
        let rendered = containers(&docs);
        assert_eq!(
            rendered.len(),
            3,
            "a controller, a server and the `helm test` probe for {sets:?}"
        );
        for (deployment, container, args, env) in rendered {
            let argv = std::iter::once("sso-operator".to_owned()).chain(args.iter().cloned());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!(
                    "{deployment}/{container} with {sets:?} passes {args:?}, which sso-operator refuses:\n{e}"
                );
            }
            // Environment variables: RUST_LOG, or one that a flag of this role reads.
            let role = args.first().expect("the role is the first argument");
            let cli = Cli::command();
            let subcommand = cli
                .get_subcommands()
                .find(|s| s.get_name() == role)
                .expect("a subcommand of that name");
            let known: Vec<String> = subcommand
                .get_arguments()
                .filter_map(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
                .collect();
            for var in env {
                let name = var["name"].as_str().unwrap();
                assert!(
                    name == "RUST_LOG" || known.iter().any(|k| k == name),
                    "{deployment}/{container} sets {name}, which `sso-operator {role}` does not read (it reads {known:?})"
                );
            }
        }
    }
}

#[test]
fn the_charts_default_log_filter_is_the_binarys() {
    let docs = template(&[URL]).unwrap();
    for (deployment, _, _, env) in containers(&docs) {
        if deployment.ends_with("-test-server") {
            continue;
        }
        let rust_log = env
            .iter()
            .find(|v| v["name"] == "RUST_LOG")
            .unwrap_or_else(|| panic!("{deployment} sets RUST_LOG"));
        assert_eq!(rust_log["value"], DEFAULT_LOG_FILTER, "{deployment}");
    }
}

#[test]
fn the_charts_notes_point_at_files_that_exist() {
    let notes =
        std::fs::read_to_string(repo_root().join("charts/sso-operator/templates/NOTES.txt"))
            .unwrap();
    let mut checked = 0;
    for word in notes.split(|c: char| c.is_whitespace() || "(),`'\"".contains(c)) {
        let word = word.trim_end_matches(['.', ':', ';']);
        // A file shipped in the chart, or one in the repository linked from the chart's home.
        let path = if let Some(rest) = word.strip_prefix("files/") {
            repo_root().join("charts/sso-operator/files").join(rest)
        } else if let Some(rest) = word
            .strip_prefix("}}/blob/main/")
            .or_else(|| word.strip_prefix("}}/tree/main/"))
        {
            repo_root().join(rest)
        } else {
            assert!(
                !word.starts_with("docs/") && !word.starts_with("examples/"),
                "NOTES.txt names {word}, which is not in the chart: link to the repository"
            );
            continue;
        };
        checked += 1;
        assert!(
            path.exists(),
            "NOTES.txt names {word}, which does not exist"
        );
    }
    assert!(checked >= 3, "NOTES.txt names too few files: {notes}");
}

/// The namespace and rules of every Role or ClusterRole bound to ServiceAccount `account`
/// (a ClusterRole bound cluster-wide has no namespace).
fn rules_of(docs: &[Value], account: &str) -> Vec<(Option<String>, Value)> {
    let mut out = Vec::new();
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        for binding in kinds(docs, kind) {
            let binds = binding["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == account);
            if !binds {
                continue;
            }
            let namespace = (kind == "RoleBinding").then(|| {
                binding["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("sso")
                    .to_owned()
            });
            let role_kind = &binding["roleRef"]["kind"];
            let role = docs
                .iter()
                .find(|d| {
                    d["kind"] == *role_kind
                        && d["metadata"]["name"] == binding["roleRef"]["name"]
                        && (d["kind"] == "ClusterRole"
                            || d["metadata"]["namespace"].as_str().unwrap_or("sso")
                                == namespace.as_deref().unwrap())
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{kind} {} names a missing role",
                        binding["metadata"]["name"]
                    )
                });
            out.push((namespace, role["rules"].clone()));
        }
    }
    out
}

#[test]
fn the_server_reads_secrets_only_in_the_configuration_namespace_both_roles_use() {
    for sets in VALUE_COMBINATIONS {
        let docs = template(sets).unwrap();
        let config: Vec<String> = containers(&docs)
            .iter()
            .filter(|(deployment, ..)| !deployment.ends_with("-test-server"))
            .map(|(deployment, _, args, _)| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--config-namespace="))
                    .unwrap_or_else(|| panic!("{deployment} is given no --config-namespace"))
                    .to_owned()
            })
            .collect();
        assert_eq!(config, ["sso-config", "sso-config"], "{sets:?}");
        let namespaces: Vec<Value> = kinds(&docs, "Namespace")
            .iter()
            .map(|n| n["metadata"]["name"].clone())
            .collect();
        assert_eq!(namespaces, [Value::from("sso-config")], "{sets:?}");
        let mut granted = Vec::new();
        for (namespace, rules) in rules_of(&docs, "rel-sso-operator-server") {
            for rule in rules.as_array().unwrap() {
                if rule["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == "secrets" || r == "*")
                {
                    granted.push((namespace.clone(), rule["verbs"].clone()));
                }
            }
        }
        assert_eq!(
            granted,
            [(
                Some("sso-config".to_owned()),
                serde_json::json!(["get", "list", "watch"])
            )],
            "the server may read Secrets in the configuration namespace only ({sets:?})"
        );
    }
    // A namespace created beforehand, or none of its own (not recommended) without creating it.
    let docs = template(&[
        URL,
        "configNamespace.name=sso-only",
        "configNamespace.create=false",
    ])
    .unwrap();
    assert!(kinds(&docs, "Namespace").is_empty());
    assert!(
        containers(&docs)
            .iter()
            .filter(|(deployment, ..)| !deployment.ends_with("-test-server"))
            .all(|(_, _, args, _)| args.contains(&"--config-namespace=sso-only".to_owned()))
    );
    let err = template(&[URL, "configNamespace.name=sso"]).unwrap_err();
    assert!(err.contains("configNamespace.create=false"), "{err}");
}

/// The values a user sets for the conventions of other charts, as one values file.
const CONVENTIONS: &str = r#"
externalUrl: https://sso.example.com
fullnameOverride: corp-sso
nameOverride: corp
image:
  tag: ignored
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
controller:
  revisionHistoryLimit: 3
  serviceAccount:
    annotations: { example.com/purpose: reconcile }
  podLabels: { team: identity }
  podAnnotations: { example.com/scrape: "no" }
  priorityClassName: system-cluster-critical
  topologySpreadConstraints:
    - { maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway }
  extraEnv: [{ name: HTTPS_PROXY, value: "http://proxy.example.com:3128" }]
  envFrom: [{ configMapRef: { name: proxy-settings } }]
  volumes: [{ name: ca, configMap: { name: corporate-ca } }]
  volumeMounts: [{ name: ca, mountPath: /etc/sso-operator/ca, readOnly: true }]
  extraArgs: [--metadata-ca-file=/etc/sso-operator/ca/ca.crt]
  securityContext: { runAsUser: 1000650000 }
server:
  revisionHistoryLimit: 0
  serviceAccount:
    create: false
    name: sso-db
    automount: false
  podLabels: { azure.workload.identity/use: "true" }
  priorityClassName: high
  topologySpreadConstraints:
    - maxSkew: 2
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: DoNotSchedule
      labelSelector: { matchLabels: { anything: else } }
  extraEnv: [{ name: PGSSLROOTCERT, value: /etc/sso-operator/pg/ca.crt }]
  envFrom: [{ secretRef: { name: pg-settings } }]
  volumes: [{ name: pg, secret: { secretName: pg-ca } }]
  volumeMounts: [{ name: pg, mountPath: /etc/sso-operator/pg, readOnly: true }]
  securityContext: { fsGroup: null }
  nodeSelector: { kubernetes.io/os: linux }
metrics:
  serviceMonitor:
    enabled: true
    namespace: monitoring
    interval: 15s
    scrapeTimeout: 5s
    relabelings: [{ action: labeldrop, regex: pod }]
    metricRelabelings: [{ action: drop, sourceLabels: [__name__], regex: go_.* }]
networkPolicy:
  enabled: true
"#;

/// The object of `kind` named `name`.
fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The objects the chart renders with the conventional values (`CONVENTIONS`).
fn conventional_objects() -> Vec<Value> {
    support::chart::template_values(CONVENTIONS, &[]).unwrap()
}

#[test]
fn the_conventional_values_set_the_image_by_digest_and_the_names_of_every_object() {
    let docs = conventional_objects();
    let image = "ghcr.io/sso-operator/sso-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let controller = named(&docs, "Deployment", "corp-sso-controller");
    let server = named(&docs, "Deployment", "corp-sso-server");
    let probe = named(&docs, "Pod", "corp-sso-test-server");
    for object in [controller, server, probe] {
        assert_eq!(pod_spec(object)["containers"][0]["image"], image);
    }
    // nameOverride names the app in every label and selector; fullnameOverride every object
    // (cluster-scoped ones after the release namespace too).
    for d in &docs {
        let name = d["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("corp-sso")
                || name.starts_with("sso-corp-sso")
                || name == "sso-config",
            "{} {name} is not named after fullnameOverride",
            d["kind"]
        );
        assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/name"], "corp");
    }
    assert_eq!(
        controller["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "corp"
    );
}

#[test]
fn the_controller_gets_its_service_account_pod_options_and_ca_volume_from_the_values() {
    let docs = conventional_objects();
    let controller = named(&docs, "Deployment", "corp-sso-controller");
    // Controller: its own ServiceAccount with annotations, every pod option, the CA volume for
    // --metadata-ca-file.
    assert_eq!(controller["spec"]["revisionHistoryLimit"], 3);
    let account = named(&docs, "ServiceAccount", "corp-sso-controller");
    assert_eq!(
        account["metadata"]["annotations"]["example.com/purpose"],
        "reconcile"
    );
    assert_eq!(account["automountServiceAccountToken"], true);
    let template = &controller["spec"]["template"];
    assert_eq!(template["metadata"]["labels"]["team"], "identity");
    assert_eq!(
        template["metadata"]["labels"]["app.kubernetes.io/component"],
        "controller"
    );
    assert_eq!(
        template["metadata"]["annotations"]["example.com/scrape"],
        "no"
    );
    let pod = &template["spec"];
    assert_eq!(pod["serviceAccountName"], "corp-sso-controller");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["topologySpreadConstraints"],
        serde_json::json!([{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": {
                "app.kubernetes.io/name": "corp", "app.kubernetes.io/instance": "rel",
                "app.kubernetes.io/component": "controller" } }
        }])
    );
    // The user's security context is merged into the defaults.
    assert_eq!(
        pod["securityContext"],
        serde_json::json!({ "runAsNonRoot": true, "runAsUser": 1000650000, "seccompProfile": { "type": "RuntimeDefault" } })
    );
    assert_eq!(
        pod["volumes"],
        serde_json::json!([{ "name": "ca", "configMap": { "name": "corporate-ca" } }])
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["volumeMounts"],
        serde_json::json!([{ "name": "ca", "mountPath": "/etc/sso-operator/ca", "readOnly": true }])
    );
    assert!(
        c["args"]
            .as_array()
            .unwrap()
            .contains(&"--metadata-ca-file=/etc/sso-operator/ca/ca.crt".into())
    );
    let env = c["env"].as_array().unwrap();
    assert_eq!(
        env[0]["name"], "POD_NAMESPACE",
        "the chart's own come first"
    );
    assert_eq!(env.last().unwrap()["name"], "HTTPS_PROXY");
    assert_eq!(
        c["envFrom"],
        serde_json::json!([{ "configMapRef": { "name": "proxy-settings" } }])
    );
}

#[test]
fn the_server_runs_as_a_service_account_made_beforehand_and_keeps_its_own_volumes() {
    let docs = conventional_objects();
    let server = named(&docs, "Deployment", "corp-sso-server");
    // Server: a ServiceAccount made beforehand, without a token, and the chart binds its roles
    // to it; its own volumes stay.
    assert_eq!(server["spec"]["revisionHistoryLimit"], 0);
    assert!(
        kinds(&docs, "ServiceAccount")
            .iter()
            .all(|a| a["metadata"]["name"] != "sso-db"
                && a["metadata"]["labels"]["app.kubernetes.io/component"] != "server"),
        "serviceAccount.create=false creates none"
    );
    assert!(!rules_of(&docs, "sso-db").is_empty());
    assert!(rules_of(&docs, "corp-sso-server").is_empty());
    let template = &server["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    let pod = &template["spec"];
    assert_eq!(pod["serviceAccountName"], "sso-db");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["priorityClassName"], "high");
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"],
        serde_json::json!({ "matchLabels": { "anything": "else" } }),
        "a labelSelector given is kept"
    );
    assert_eq!(pod["topologySpreadConstraints"][0]["maxSkew"], 2);
    assert!(
        pod["securityContext"].get("fsGroup").is_none(),
        "{}",
        pod["securityContext"]
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["tmp", "data", "pg"]);
    let c = &pod["containers"][0];
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(
        mounts,
        ["/tmp", "/var/lib/sso-operator", "/etc/sso-operator/pg"]
    );
    assert_eq!(
        c["env"].as_array().unwrap().last().unwrap()["name"],
        "PGSSLROOTCERT"
    );
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "pg-settings");
    assert_eq!(
        c["securityContext"],
        serde_json::json!({ "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } })
    );
}

#[test]
fn the_service_monitor_in_prometheus_namespace_scrapes_the_releases_services() {
    let docs = conventional_objects();
    // The ServiceMonitor, in Prometheus's namespace, scrapes the release's Services.
    let monitor = named(&docs, "ServiceMonitor", "corp-sso");
    assert_eq!(monitor["metadata"]["namespace"], "monitoring");
    assert_eq!(
        monitor["spec"]["namespaceSelector"],
        serde_json::json!({ "matchNames": ["sso"] })
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["interval"], "15s");
    assert_eq!(endpoint["scrapeTimeout"], "5s");
    assert_eq!(endpoint["relabelings"][0]["action"], "labeldrop");
    assert_eq!(endpoint["metricRelabelings"][0]["regex"], "go_.*");
    let scraped = kinds(&docs, "Service")
        .into_iter()
        .filter(|s| {
            monitor["spec"]["selector"]["matchLabels"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| s["metadata"]["labels"][k] == *v)
        })
        .count();
    assert_eq!(
        scraped, 2,
        "the controller's and the server's metrics Services"
    );
}

#[test]
fn the_schema_refuses_values_that_would_render_a_broken_reference_or_name() {
    // The schema refuses what would render a broken reference or name.
    for (set, key) in [
        ("image.digest=latest", "digest"),
        ("fullnameOverride=Corp_SSO", "fullnameOverride"),
        ("server.serviceAccount.automount=yes", "automount"),
        ("metrics.serviceMonitor.scrapeTimeout=5", "scrapeTimeout"),
    ] {
        let err = support::chart::template(&[URL, set]).unwrap_err();
        assert!(err.contains(key), "{set}: {err}");
    }
}

#[test]
fn the_helm_test_pod_probes_the_servers_service_with_the_operators_image() {
    let docs = template(&[URL]).unwrap();
    let probe = named(&docs, "Pod", "rel-sso-operator-test-server");
    assert_eq!(probe["metadata"]["annotations"]["helm.sh/hook"], "test");
    let spec = &probe["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(
        spec["automountServiceAccountToken"], false,
        "it needs no Kubernetes credentials"
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let c = &spec["containers"][0];
    assert_eq!(
        c["image"],
        named(&docs, "Deployment", "rel-sso-operator-server")["spec"]["template"]["spec"]["containers"]
            [0]["image"]
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("sso-operator").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let sso_operator::cli::Command::Probe(probe_args) = cli.command else {
        panic!("the test Pod runs `sso-operator probe`, not {args:?}");
    };
    let paths: Vec<&str> = probe_args.urls.iter().map(|u| u.path()).collect();
    assert_eq!(paths, ["/healthz", "/readyz"]);
    // Through the server's Service, on the port where that Service exposes them.
    let service = named(&docs, "Service", "rel-sso-operator-server");
    for url in &probe_args.urls {
        assert_eq!(url.host_str(), Some("rel-sso-operator-server.sso.svc"));
        let port = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == url.port().unwrap())
            .unwrap_or_else(|| panic!("the server's Service has no port {url}"));
        assert_eq!(port["targetPort"], "metrics");
    }
    // A NetworkPolicy lets it through.
    let docs = template(&[URL, "networkPolicy.enabled=true"]).unwrap();
    let policy = named(&docs, "NetworkPolicy", "rel-sso-operator-server");
    let probe = named(&docs, "Pod", "rel-sso-operator-test-server");
    let allowed = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| rule["ports"][0]["port"] == 8081)
        .flat_map(|rule| rule["from"].as_array().unwrap())
        .filter_map(|from| from["podSelector"]["matchLabels"].as_object())
        .any(|labels| {
            labels
                .iter()
                .all(|(k, v)| probe["metadata"]["labels"][k] == *v)
        });
    assert!(allowed, "{policy}");
    // And it can be left out.
    let docs = template(&[URL, "tests.enabled=false"]).unwrap();
    assert!(kinds(&docs, "Pod").is_empty());
}

/// Every key of `values` (a values.yaml subtree) and the schema node that describes it,
/// descending where the schema lists properties.
fn described(values: &Value, schema: &Value, path: &str, missing: &mut Vec<String>) {
    let Some(map) = values.as_object() else {
        return;
    };
    for (key, value) in map {
        let path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(node) = schema["properties"].get(key) else {
            missing.push(format!("{path} (not in the schema)"));
            continue;
        };
        if node.get("properties").is_some() {
            described(value, node, &path, missing);
        } else if node["description"].as_str().is_none_or(str::is_empty) {
            missing.push(format!("{path} (no description)"));
        }
    }
}

#[test]
fn every_value_is_described_in_the_schema() {
    let dir = repo_root().join("charts/sso-operator");
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap()).unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("values.schema.json")).unwrap())
            .unwrap();
    let mut missing = Vec::new();
    described(&values, &schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "values.schema.json must describe every value of values.yaml:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_charts_readme_is_generated_from_the_values_comments() {
    let dir = repo_root().join("charts/sso-operator");
    let committed = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
    let helm_docs = support::chart::tools().join("helm-docs");
    let out = std::process::Command::new(&helm_docs)
        .args(HELM_DOCS_ARGS)
        .arg("--dry-run")
        .current_dir(repo_root())
        .output()
        .expect("run helm-docs");
    assert!(
        out.status.success(),
        "helm-docs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    assert!(
        committed == generated,
        "charts/sso-operator/README.md is out of date with values.yaml: run \
         `$(tests/tools/setup)/helm-docs {}` and commit it",
        HELM_DOCS_ARGS.join(" ")
    );
    // Every value has a description (a `# --` comment in values.yaml).
    let undocumented: Vec<&str> = generated
        .lines()
        .filter(|l| l.starts_with("| ") && l.ends_with("|  |"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "values without a `# --` comment in values.yaml:\n{}",
        undocumented.join("\n")
    );
}

/// How the chart's README is generated.
const HELM_DOCS_ARGS: &[&str] = &[
    "--chart-search-root",
    "charts",
    "--skip-version-footer",
    "--log-level",
    "warning",
];

#[test]
fn the_schema_describes_each_value_as_its_values_yaml_comment_does() {
    let dir = repo_root().join("charts/sso-operator");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("values.schema.json")).unwrap())
            .unwrap();
    let mut compared = 0;
    let mut differing = Vec::new();
    // The README's table is generated from the `# --` comments: key | type | default | text.
    for row in readme
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Key"))
    {
        let cells: Vec<&str> = row.trim_matches('|').splitn(4, '|').collect();
        let [key, _, _, text] = cells[..] else {
            continue;
        };
        let mut node = &schema;
        for part in key.trim().split('.') {
            node = &node["properties"][part];
        }
        if let Some(description) = node["description"].as_str() {
            compared += 1;
            if description.split_whitespace().ne(text.split_whitespace()) {
                differing.push(format!(
                    "{}:\n  values.yaml: {}\n  schema:      {description}",
                    key.trim(),
                    text.trim()
                ));
            }
        }
    }
    assert!(compared > 50, "only {compared} values compared");
    assert!(
        differing.is_empty(),
        "values.schema.json describes these values otherwise than values.yaml:\n{}",
        differing.join("\n")
    );
}
