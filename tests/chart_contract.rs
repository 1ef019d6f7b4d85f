//! The chart's contract with the binary, checked in milliseconds without a cluster: every
//! container the chart renders, for every values combination the chart tests use, passes
//! arguments and environment variables that the binary's own command line definition accepts,
//! the chart's notes point at files that exist, and the server's RBAC reaches Secrets only in
//! the configuration namespace both roles are given.

mod support;

use clap::{CommandFactory, Parser};
use serde_json::Value;
use sso_operator::cli::{Cli, DEFAULT_LOG_FILTER};
use support::chart::{URL, VALUE_COMBINATIONS, kinds, template};
use support::repo_root;

/// (Deployment name, container name, args, env) of every container in `docs`.
fn containers(docs: &[Value]) -> Vec<(String, String, Vec<String>, Vec<Value>)> {
    let mut found = Vec::new();
    for deployment in kinds(docs, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap().to_owned();
        for c in deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
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
        assert_eq!(rendered.len(), 2, "a controller and a server for {sets:?}");
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
            .all(|(_, _, args, _)| args.contains(&"--config-namespace=sso-only".to_owned()))
    );
    let err = template(&[URL, "configNamespace.name=sso"]).unwrap_err();
    assert!(err.contains("configNamespace.create=false"), "{err}");
}
