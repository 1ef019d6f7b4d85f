//! System benchmark (`scripts/bench`): the release binaries against the local control plane,
//! loaded with `wrk` on loopback. Bounded in count and time. Writes `bench/results/system.json`
//! and `system.md` (or under `SSO_BENCH_OUT`).
//!
//! - reconcile: apply → Ready latency of an IdentityProvider with a ScimToken (p50, p99);
//! - scale: N IdentityProviders and N ScimTokens from a cold controller start to all Ready,
//!   and the controller's resident memory then (`SSO_BENCH_SCALE`, default 1000);
//! - ACS: validated, Okta-shaped, signed (signxml) IdP-initiated responses per second over
//!   HTTP with the replay cache on, p99, with 1 and 2 wrk connections per core;
//! - forward-auth: `/auth/verify` with a valid session cookie, keep-alive;
//! - server resident memory idle and after the load.

mod common;

use common::{env_number, percentile, wanted};

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sso_operator::api::{IdentityProvider, ScimToken};
use support::operator::{EXTERNAL_URL, Operator, controller_kubeconfig, server_kubeconfig};
use support::{TestNamespace, admin_client, install_crds, wait_for};

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

fn ready(v: &Value) -> bool {
    v["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn idp_object(name: &str, cert: &str, extra: Value) -> Value {
    let mut spec = json!({ "provider": "okta", "idp": { "ssoUrl": "https://idp.example.test/sso", "entityId": "http://www.okta.com/exk1", "certificates": [{ "pem": cert }] } });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider", "metadata": { "name": name }, "spec": spec })
}

fn token_object(name: &str) -> Value {
    json!({ "apiVersion": "sso-operator.dev/v1alpha1", "kind": "ScimToken", "metadata": { "name": name }, "spec": { "identityProviderRef": { "name": name } } })
}

/// Parsed `wrk --latency` output.
fn wrk(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new("wrk")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run wrk (Debian package wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let number = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.replace(',', "").parse::<f64>().ok())
    };
    let latency = |pct: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(pct))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(|v| {
                let (n, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
                let n: f64 = n.parse().unwrap_or(0.0);
                match unit {
                    "us" => n / 1000.0,
                    "s" => n * 1000.0,
                    _ => n,
                }
            })
    };
    let total = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let failed = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    json!({
        "requests_per_second": number("Requests/sec:").unwrap_or(0.0),
        "p50_ms": latency("50%").unwrap_or(0.0),
        "p99_ms": latency("99%").unwrap_or(0.0),
        "requests": total,
        "non_2xx_3xx": failed,
    })
}

#[tokio::main]
async fn main() {
    let out_dir = std::path::PathBuf::from(
        std::env::var("SSO_BENCH_OUT").unwrap_or_else(|_| "bench/results".into()),
    );
    std::fs::create_dir_all(&out_dir).expect("results folder");
    let client = admin_client().await;
    install_crds(&client).await;
    let mut report = serde_json::Map::new();
    let (idp_key, idp_cert) = support::self_signed("idp", -3600, 365 * 86_400);
    let pp = PatchParams::apply("bench").force();

    // --- reconcile latency ---
    if wanted("reconcile") {
        let ns = TestNamespace::new(&client, "bench-reconcile").await;
        let controller = Operator::start(
            &controller_kubeconfig(&client, &ns.name).await,
            &ns.name,
            &[],
        );
        let idps: Api<IdentityProvider> = Api::namespaced(client.clone(), &ns.name);
        let tokens: Api<ScimToken> = Api::namespaced(client.clone(), &ns.name);
        let mut latencies = Vec::new();
        for i in 0..env_number("SSO_BENCH_RECONCILES", 30) {
            let name = format!("lat-{i}");
            let started = Instant::now();
            idps.patch(
                &name,
                &pp,
                &Patch::Apply(&idp_object(&name, &idp_cert, json!({}))),
            )
            .await
            .unwrap();
            tokens
                .patch(&name, &pp, &Patch::Apply(&token_object(&name)))
                .await
                .unwrap();
            let done = wait_for(Duration::from_secs(30), || async {
                let a = serde_json::to_value(idps.get(&name).await.ok()?).ok()?;
                let b = serde_json::to_value(tokens.get(&name).await.ok()?).ok()?;
                (ready(&a) && ready(&b)).then_some(())
            })
            .await;
            assert!(done.is_some(), "{name} never Ready");
            latencies.push(started.elapsed());
        }
        latencies.sort();
        report.insert(
        "reconcile_apply_to_ready".into(),
        json!({ "samples": latencies.len(), "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99) }),
    );
        drop(controller);
    }

    // --- scale: N of each from a cold controller start ---
    if wanted("scale") {
        let scale = env_number("SSO_BENCH_SCALE", 1000);
        let ns_scale = TestNamespace::new(&client, "bench-scale").await;
        let kubeconfig = controller_kubeconfig(&client, &ns_scale.name).await;
        let idps: Api<IdentityProvider> = Api::namespaced(client.clone(), &ns_scale.name);
        let tokens: Api<ScimToken> = Api::namespaced(client.clone(), &ns_scale.name);
        for i in 0..scale {
            let name = format!("idp-{i:04}");
            let idp: IdentityProvider =
                serde_json::from_value(idp_object(&name, &idp_cert, json!({}))).unwrap();
            idps.create(&PostParams::default(), &idp).await.unwrap();
            let token: ScimToken = serde_json::from_value(token_object(&name)).unwrap();
            tokens.create(&PostParams::default(), &token).await.unwrap();
        }
        let started = Instant::now();
        let controller = Operator::start(&kubeconfig, &ns_scale.name, &[]);
        let all_ready = wait_for(Duration::from_secs(600), || async {
            let a = idps.list(&Default::default()).await.ok()?;
            let b = tokens.list(&Default::default()).await.ok()?;
            let n = a
                .items
                .iter()
                .filter(|o| ready(&serde_json::to_value(o).unwrap()))
                .count()
                + b.items
                    .iter()
                    .filter(|o| ready(&serde_json::to_value(o).unwrap()))
                    .count();
            (n == 2 * scale).then_some(())
        })
        .await;
        let cold_start = started.elapsed();
        let controller_rss = rss_mib(controller.pid());
        report.insert(
        "scale_cold_start".into(),
        json!({ "identity_providers": scale, "scim_tokens": scale, "all_ready": all_ready.is_some(), "seconds": cold_start.as_secs_f64(), "controller_rss_mib": controller_rss }),
    );
        drop(controller);
    }

    // --- server: ACS and forward-auth over HTTP ---
    if wanted("http") {
        let ns = TestNamespace::new(&client, "bench-http").await;
        let _controller = Operator::start(
            &controller_kubeconfig(&client, &ns.name).await,
            &ns.name,
            &[],
        );
        let database = support::sqlite_url("bench-http");
        let (server, url) = Operator::start_server(
            &server_kubeconfig(&client, &ns.name).await,
            &ns.name,
            &database,
        );
        let idps: Api<IdentityProvider> = Api::namespaced(client.clone(), &ns.name);
        idps.patch(
            "okta",
            &pp,
            &Patch::Apply(&idp_object(
                "okta",
                &idp_cert,
                json!({ "allowIdpInitiated": true, "users": { "provisioning": "justInTime" } }),
            )),
        )
        .await
        .unwrap();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let metadata = format!("{url}/saml/{}/okta/metadata", ns.name);
        wait_for(Duration::from_secs(60), || async {
            secrets.get_opt("sso-operator-session-keys").await.ok()??;
            (http.get(&metadata).send().await.ok()?.status().as_u16() == 200).then_some(())
        })
        .await
        .expect("served");
        let idle_rss = rss_mib(server.pid());

        // Pre-signed IdP-initiated responses, one per request (the replay cache refuses repeats).
        let count = env_number("SSO_BENCH_ACS_RESPONSES", 14000);
        let acs = format!("{EXTERNAL_URL}/saml/{}/okta/acs", ns.name);
        let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", ns.name);
        let key_pem = String::from_utf8(idp_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let now = Timestamp::now();
        let specs: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "keyPem": key_pem, "certPem": idp_cert, "issuer": "http://www.okta.com/exk1",
                "destination": acs, "audience": entity, "recipient": acs, "inResponseTo": null,
                "nameId": format!("user{}@example.com", i % 500),
                "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "attributes": { "email": [format!("user{}@example.com", i % 500)], "groups": ["eng"] },
                "sign": "assertion",
                "notBefore": (now - SignedDuration::from_secs(30)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "notOnOrAfter": (now + SignedDuration::from_mins(30)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "assertionId": format!("_bench{i:08}{}", now.as_second()), "responseId": format!("_r{i:08}"),
            })
        })
        .collect();
        let python = String::from_utf8(
            Command::new(support::repo_root().join("tests/idp/setup"))
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let mut child = Command::new(python.trim())
            .arg(support::repo_root().join("tests/idp/sign_response.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            Value::Array(specs).to_string().as_bytes(),
        )
        .unwrap();
        let signed = child.wait_with_output().unwrap();
        let bodies: Vec<String> = String::from_utf8(signed.stdout)
            .unwrap()
            .lines()
            .map(|b| {
                format!(
                    "SAMLResponse={}",
                    form_urlencoded::byte_serialize(b.as_bytes()).collect::<String>()
                )
            })
            .collect();
        let body_file =
            std::env::temp_dir().join(format!("sso-bench-acs-{}.txt", std::process::id()));
        std::fs::write(&body_file, bodies.join("\n")).unwrap();
        let body_path = body_file.display().to_string();
        let acs_url = format!("{url}/saml/{}/okta/acs", ns.name);
        let script = support::repo_root()
            .join("benches/acs.lua")
            .display()
            .to_string();
        // Half the responses with 2 connections, the other half with 4 (one and two per core).
        let half = bodies.len() / 2;
        std::fs::write(&body_file, bodies[..half].join("\n")).unwrap();
        let acs_2 = wrk(
            &["-t2", "-c2", "-d3s", "--latency", "-s", &script, &acs_url],
            &[("SSO_BENCH_BODIES", &body_path), ("SSO_BENCH_THREADS", "2")],
        );
        std::fs::write(&body_file, bodies[half..].join("\n")).unwrap();
        let acs_4 = wrk(
            &["-t2", "-c4", "-d3s", "--latency", "-s", &script, &acs_url],
            &[("SSO_BENCH_BODIES", &body_path), ("SSO_BENCH_THREADS", "2")],
        );
        let _ = std::fs::remove_file(&body_file);
        report.insert(
        "acs".into(),
        json!({ "responses_prepared": bodies.len(), "connections_2": acs_2, "connections_4": acs_4 }),
    );

        // A session cookie for forward-auth.
        let sign_one = |i: usize| {
            let mut spec = json!({
                "keyPem": key_pem, "certPem": idp_cert, "issuer": "http://www.okta.com/exk1",
                "destination": acs, "audience": entity, "recipient": acs, "inResponseTo": null,
                "nameId": "verify@example.com", "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "attributes": { "groups": ["eng"] }, "sign": "assertion",
                "notBefore": (Timestamp::now() - SignedDuration::from_secs(30)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "notOnOrAfter": (Timestamp::now() + SignedDuration::from_mins(5)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            });
            spec["assertionId"] = json!(format!("_verify{i}{}", Timestamp::now().as_millisecond()));
            spec["responseId"] = json!(format!("_rv{i}"));
            support::signed_response(&spec)
        };
        let r = http
            .post(&acs_url)
            .form(&[("SAMLResponse", sign_one(0))])
            .send()
            .await
            .unwrap();
        let cookie_name = sso_operator::session::cookie_name(&format!("{}/okta", ns.name));
        let session = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&cookie_name))
            .and_then(|v| v.split(';').next())
            .expect("a session")
            .to_owned();
        let verify_url = format!("{url}/auth/verify");
        let header = format!("Cookie: {session}");
        let verify = wrk(
            &[
                "-t2",
                "-c32",
                "-d5s",
                "--latency",
                "-H",
                &header,
                &verify_url,
            ],
            &[],
        );
        let loaded_rss = rss_mib(server.pid());
        report.insert("auth_verify".into(), verify);
        report.insert(
            "server_rss_mib".into(),
            json!({ "idle": idle_rss, "after_load": loaded_rss }),
        );
    }

    let machine = json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    });
    let report = json!({ "benchmark": "system", "machine": machine, "results": report });
    std::fs::write(
        out_dir.join("system.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    let r = &report["results"];
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let md = format!(
        "| workload | result | target |\n| --- | --- | --- |\n\
         | reconcile apply → Ready (IdentityProvider + ScimToken) | p50 {:.0} ms, p99 {:.0} ms | p99 < 2 s |\n\
         | {} IdentityProviders + {} ScimTokens, cold start → all Ready | {:.1} s (all Ready: {}) | < 60 s |\n\
         | controller RSS at that size | {:.0} MiB | < 100 MiB |\n\
         | ACS, signed Okta-shaped responses, replay cache on, 2 connections | {:.0}/s, p99 {:.1} ms ({} refused) | ≥ 2,000/s, p99 < 20 ms |\n\
         | ACS, 4 connections | {:.0}/s, p99 {:.1} ms ({} refused) | |\n\
         | /auth/verify with a session, keep-alive, 32 connections | {:.0}/s, p99 {:.2} ms | ≥ 20,000/s, p99 < 5 ms |\n\
         | server RSS idle / after load | {:.0} / {:.0} MiB | idle < 64 MiB |\n",
        f(&r["reconcile_apply_to_ready"]["p50_ms"]),
        f(&r["reconcile_apply_to_ready"]["p99_ms"]),
        r["scale_cold_start"]["identity_providers"],
        r["scale_cold_start"]["scim_tokens"],
        f(&r["scale_cold_start"]["seconds"]),
        r["scale_cold_start"]["all_ready"],
        f(&r["scale_cold_start"]["controller_rss_mib"]),
        f(&r["acs"]["connections_2"]["requests_per_second"]),
        f(&r["acs"]["connections_2"]["p99_ms"]),
        r["acs"]["connections_2"]["non_2xx_3xx"],
        f(&r["acs"]["connections_4"]["requests_per_second"]),
        f(&r["acs"]["connections_4"]["p99_ms"]),
        r["acs"]["connections_4"]["non_2xx_3xx"],
        f(&r["auth_verify"]["requests_per_second"]),
        f(&r["auth_verify"]["p99_ms"]),
        f(&r["server_rss_mib"]["idle"]),
        f(&r["server_rss_mib"]["after_load"]),
    );
    std::fs::write(out_dir.join("system.md"), &md).unwrap();
    print!("{md}");
}
