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
//! - server resident memory idle and after the load;
//! - OIDC: the token endpoint redeeming authorization codes and rotating refresh tokens, with
//!   RS256 and ES256 keys (see `system/oidc.rs`);
//! - takeover: leader takeover after SIGKILL and recovery after an API-server outage, written
//!   to `takeover.json` and `takeover.md` (see `system/takeover.rs`).

mod common;
#[path = "system/oidc.rs"]
mod oidc;
#[path = "system/takeover.rs"]
mod takeover;

use common::{env_number, load_users, percentile, wanted, write_results};

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

/// Deletes the namespace and waits (five minutes at most) until it is gone. Call it while the
/// controller still runs: it releases the finalizers of the namespace's IdentityProviders.
async fn remove_namespace(client: &kube::Client, ns: TestNamespace) {
    let name = ns.name.clone();
    // The resources first: deleting the namespace would also delete the controller's Role
    // in it, and the controller could no longer release their finalizers.
    let idps: Api<IdentityProvider> = Api::namespaced(client.clone(), &name);
    let _ = idps
        .delete_collection(&Default::default(), &Default::default())
        .await;
    let released = wait_for(Duration::from_secs(300), || async {
        idps.list(&Default::default())
            .await
            .ok()
            .and_then(|l| l.items.is_empty().then_some(()))
    })
    .await;
    if released.is_none() {
        eprintln!("IdentityProviders in {name} still there after 5 minutes");
    }
    drop(ns);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let gone = wait_for(Duration::from_secs(300), || async {
        namespaces
            .get_opt(&name)
            .await
            .ok()
            .and_then(|n| n.is_none().then_some(()))
    })
    .await;
    if gone.is_none() {
        eprintln!("namespace {name} is still terminating after 5 minutes");
    }
}

/// A new namespace with a controller watching it, and the APIs of its resources.
async fn controlled_namespace(
    client: &kube::Client,
    prefix: &str,
) -> (
    TestNamespace,
    Operator,
    Api<IdentityProvider>,
    Api<ScimToken>,
) {
    let ns = TestNamespace::new(client, prefix).await;
    let controller = Operator::start(
        &controller_kubeconfig(client, &ns.name).await,
        &ns.name,
        &[],
    );
    let idps = Api::namespaced(client.clone(), &ns.name);
    let tokens = Api::namespaced(client.clone(), &ns.name);
    (ns, controller, idps, tokens)
}

/// Pins every thread of process `pid` to the CPUs in `cpus` (taskset, util-linux).
fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "taskset -a -p -c {cpus} {pid} failed");
}

/// Signs `specs` (JSON objects for tests/idp/sign_response.py) in one batch and returns
/// `SAMLResponse=...` form bodies, one per spec.
fn signed_bodies(specs: Vec<Value>) -> Vec<String> {
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
    String::from_utf8(signed.stdout)
        .unwrap()
        .lines()
        .map(|b| {
            format!(
                "SAMLResponse={}",
                form_urlencoded::byte_serialize(b.as_bytes()).collect::<String>()
            )
        })
        .collect()
}

/// Okta-shaped IdP-initiated sign-in specs for tests/idp/sign_response.py: `count` responses
/// with unique IDs for 500 users, signed assertion, valid for 30 minutes.
fn acs_specs(
    count: usize,
    key_pem: &str,
    cert_pem: &str,
    acs: &str,
    audience: &str,
    tag: &str,
) -> Vec<Value> {
    let now = Timestamp::now();
    (0..count)
        .map(|i| {
            json!({
                "keyPem": key_pem, "certPem": cert_pem, "issuer": "http://www.okta.com/exk1",
                "destination": acs, "audience": audience, "recipient": acs, "inResponseTo": null,
                "nameId": format!("user{}@example.com", i % 500),
                "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "attributes": { "email": [format!("user{}@example.com", i % 500)], "groups": ["eng"] },
                "sign": "assertion",
                "notBefore": (now - SignedDuration::from_secs(30)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "notOnOrAfter": (now + SignedDuration::from_mins(30)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "assertionId": format!("_{tag}{i:08}{}", now.as_second()), "responseId": format!("_r{tag}{i:08}"),
            })
        })
        .collect()
}

/// Runs wrk with benches/forms.lua over `bodies` (SAML responses) against `url`.
fn wrk_acs(url: &str, bodies: &[String], connections: usize, cpus: Option<&str>) -> Value {
    wrk_forms(url, bodies, connections, cpus, None)
}

/// Runs wrk with benches/forms.lua, posting each of `bodies` once to `url` for 3 seconds
/// (with `authorization` as the Authorization header), on `cpus` when given.
fn wrk_forms(
    url: &str,
    bodies: &[String],
    connections: usize,
    cpus: Option<&str>,
    authorization: Option<&str>,
) -> Value {
    let file = std::env::temp_dir().join(format!("sso-bench-forms-{}.txt", std::process::id()));
    std::fs::write(&file, bodies.join("\n")).unwrap();
    let script = support::repo_root().join("benches/forms.lua");
    let (threads, connections) = (
        format!("-t{}", connections.min(2)),
        format!("-c{connections}"),
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(c) = cpus {
        args.extend(["-c".into(), c.into(), "wrk".into()]);
    }
    args.extend([
        threads.clone(),
        connections,
        "-d3s".into(),
        "--latency".into(),
        "-s".into(),
        script.display().to_string(),
        url.into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let path = file.display().to_string();
    let step = threads.trim_start_matches("-t").to_owned();
    let env = [
        ("SSO_BENCH_BODIES", path.as_str()),
        ("SSO_BENCH_THREADS", step.as_str()),
        ("SSO_BENCH_AUTHORIZATION", authorization.unwrap_or("")),
    ];
    let result = if cpus.is_some() {
        wrk_with("taskset", &args, &env)
    } else {
        wrk(&args, &env)
    };
    let _ = std::fs::remove_file(&file);
    result
}

/// The `name=value` of the session cookie of IdentityProvider `tenant` (`namespace/name`) that
/// a sign-in's answer `r` sets.
fn session_cookie(r: &reqwest::Response, tenant: &str) -> String {
    let cookie_name = sso_operator::session::cookie_name(tenant, true);
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&cookie_name))
        .and_then(|v| v.split(';').next())
        .expect("a session")
        .to_owned()
}

/// Parsed `wrk --latency` output.
fn wrk(args: &[&str], env: &[(&str, &str)]) -> Value {
    wrk_with("wrk", args, env)
}

/// Like [`wrk`], started through `program` (e.g. taskset).
fn wrk_with(program: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new(program)
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
    // A number in the first line containing `needle`: its first or last word.
    let count_in = |needle: &str, first: bool| {
        text.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| {
                let mut words = l.split_whitespace();
                if first { words.next() } else { words.last() }
            })
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let total = count_in("requests in", true);
    let failed = count_in("Non-2xx or 3xx responses", false);
    let script = text
        .lines()
        .find(|l| l.contains(".lua: "))
        .map(|l| l.trim().to_owned());
    json!({
        "script": script,
        "requests_per_second": number("Requests/sec:").unwrap_or(0.0),
        "p50_ms": latency("50%").unwrap_or(0.0),
        "p99_ms": latency("99%").unwrap_or(0.0),
        "requests": total,
        "non_2xx_3xx": failed,
    })
}

/// A running SAML Jackson (benches/peer/jackson-server.mjs) and what it printed when ready.
struct Peer {
    child: std::process::Child,
    ready: Value,
    dir: std::path::PathBuf,
}

impl Peer {
    /// Installs (once) and starts Jackson with `workers` processes on its embedded SQLite.
    fn start(cert_file: &std::path::Path, workers: usize) -> Self {
        use std::io::BufRead;
        let setup = Command::new(support::repo_root().join("benches/peer/setup"))
            .output()
            .expect("run benches/peer/setup");
        assert!(setup.status.success(), "benches/peer/setup failed");
        let peer_dir = String::from_utf8(setup.stdout).unwrap().trim().to_owned();
        let dir =
            std::env::temp_dir().join(format!("sso-bench-peer-{}-{workers}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = support::operator::free_port().to_string();
        let mut child = Command::new("node")
            .arg(support::repo_root().join("benches/peer/jackson-server.mjs"))
            .arg(&port)
            .env("SSO_PEER_DIR", &peer_dir)
            .env("SSO_PEER_IDP_CERT_FILE", cert_file)
            .env("SSO_PEER_IDP_ENTITY_ID", "http://www.okta.com/exk1")
            .env("SSO_PEER_DB_FILE", dir.join("jackson.db"))
            .env("SSO_PEER_WORKERS", workers.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start node benches/peer/jackson-server.mjs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).expect("the peer's ready line");
        Self { child, ready, dir }
    }

    fn url(&self) -> String {
        let acs = self.ready["acsUrl"].as_str().unwrap();
        acs[..acs.find("/api/").unwrap()].to_owned()
    }

    /// Resident memory of the peer's processes (the primary and its workers), MiB.
    fn rss_mib(&self) -> f64 {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                .unwrap_or_default();
        rss_mib(self.child.id())
            + children
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(rss_mib)
                .sum::<f64>()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The peer's ACS and SCIM figures, with one and two worker processes, and our/their ratios.
async fn peer(
    idp_key: &openssl::pkey::PKey<openssl::pkey::Private>,
    idp_cert: &str,
    ours_acs: Option<&Value>,
    ours_scim: Option<&Value>,
) -> Value {
    let cert_file = std::env::temp_dir().join(format!("sso-bench-peer-{}.crt", std::process::id()));
    std::fs::write(&cert_file, idp_cert).unwrap();
    let key_pem = String::from_utf8(idp_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let mut runs = serde_json::Map::new();
    for workers in [1, 2] {
        let peer = Peer::start(&cert_file, workers);
        let acs = peer.ready["acsUrl"].as_str().unwrap().to_owned();
        let audience = peer.ready["audience"].as_str().unwrap().to_owned();
        let count = env_number("SSO_BENCH_PEER_RESPONSES", 2500);
        let bodies = signed_bodies(acs_specs(
            count,
            &key_pem,
            idp_cert,
            &acs,
            &audience,
            &format!("peer{workers}"),
        ));
        // Jackson keeps no replay cache, so a body is never refused for being reused; the
        // bodies are still distinct. The first run warms Node's JIT up and is not reported.
        let (warm, measured) = bodies.split_at(bodies.len() / 3);
        let _ = wrk_acs(&acs, warm, 2, None);
        let sign_in = wrk_acs(&acs, measured, 2, None);
        let prefix = peer.ready["scimPrefix"].as_str().unwrap().to_owned();
        let auth = format!(
            "Authorization: Bearer {}",
            peer.ready["scimToken"].as_str().unwrap()
        );
        let script = support::repo_root()
            .join("benches/scim.lua")
            .display()
            .to_string();
        let url = peer.url();
        let run = format!("peer{workers}");
        let sequence = wrk(
            &[
                "-t2",
                "-c2",
                "-d5s",
                "--latency",
                "-s",
                &script,
                "-H",
                &auth,
                &url,
            ],
            &[("SSO_BENCH_SCIM_PREFIX", &prefix), ("SSO_BENCH_RUN", &run)],
        );
        runs.insert(
            format!("workers_{workers}"),
            json!({
                "database": peer.ready["database"],
                "acs_2_connections": sign_in,
                "okta_sequence": sequence,
                "okta_sequences_per_second": sequence["requests_per_second"].as_f64().unwrap_or(0.0) / 3.0,
                "rss_mib_after_load": peer.rss_mib(),
            }),
        );
    }
    let _ = std::fs::remove_file(&cert_file);
    let f = |v: Option<&Value>| v.and_then(Value::as_f64);
    // No ratio from a figure this run did not measure (ours skipped, or theirs failed).
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => json!(a / b),
        _ => Value::Null,
    };
    let ours_sign_in = f(ours_acs.map(|a| &a["connections_2"]["requests_per_second"]));
    let ours_sequence = f(ours_scim
        .and_then(|s| s.as_array())
        .and_then(|a| a.iter().find(|r| r["backend"] == "sqlite"))
        .map(|r| &r["okta_sequences_per_second"]));
    let theirs = |k: &str, path: &[&str]| {
        let mut v = &runs[k];
        for p in path {
            v = &v[*p];
        }
        v.as_f64()
    };
    json!({
        "name": "SAML Jackson 26.2.0 (@boxyhq/saml-jackson), Node.js, embedded SQLite (WAL, synchronous=NORMAL)",
        "runs": runs,
        "ratios_ours_to_theirs": {
            "acs_vs_1_process": ratio(ours_sign_in, theirs("workers_1", &["acs_2_connections", "requests_per_second"])),
            "acs_vs_2_workers": ratio(ours_sign_in, theirs("workers_2", &["acs_2_connections", "requests_per_second"])),
            "okta_sequence_vs_1_process": ratio(ours_sequence, theirs("workers_1", &["okta_sequences_per_second"])),
            "okta_sequence_vs_2_workers": ratio(ours_sequence, theirs("workers_2", &["okta_sequences_per_second"])),
        },
    })
}

/// Server-side apply as the benchmark's field manager.
fn bench_apply() -> PatchParams {
    PatchParams::apply("bench").force()
}

/// Apply → Ready latency of an IdentityProvider with a ScimToken, one pair after the other.
async fn reconcile(client: &kube::Client, idp_cert: &str) -> Value {
    let pp = bench_apply();
    let (ns, controller, idps, tokens) = controlled_namespace(client, "bench-reconcile").await;
    let mut latencies = Vec::new();
    for i in 0..env_number("SSO_BENCH_RECONCILES", 30) {
        let name = format!("lat-{i}");
        let started = Instant::now();
        idps.patch(
            &name,
            &pp,
            &Patch::Apply(&idp_object(&name, idp_cert, json!({}))),
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
    let result = json!({ "samples": latencies.len(), "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99) });
    remove_namespace(client, ns).await;
    drop(controller);
    result
}

/// N IdentityProviders and N ScimTokens from a cold controller start to all Ready, and the
/// controller's resident memory then.
async fn scale(client: &kube::Client, idp_cert: &str) -> Value {
    let scale = env_number("SSO_BENCH_SCALE", 1000);
    let ns_scale = TestNamespace::new(client, "bench-scale").await;
    let kubeconfig = controller_kubeconfig(client, &ns_scale.name).await;
    let idps: Api<IdentityProvider> = Api::namespaced(client.clone(), &ns_scale.name);
    let tokens: Api<ScimToken> = Api::namespaced(client.clone(), &ns_scale.name);
    for i in 0..scale {
        let name = format!("idp-{i:04}");
        let idp: IdentityProvider =
            serde_json::from_value(idp_object(&name, idp_cert, json!({}))).unwrap();
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
    let result = json!({ "identity_providers": scale, "scim_tokens": scale, "all_ready": all_ready.is_some(), "seconds": cold_start.as_secs_f64(), "controller_rss_mib": controller_rss });
    remove_namespace(client, ns_scale).await;
    drop(controller);
    result
}

/// ACS and forward-auth over HTTP under wrk, and the server's resident memory idle and after
/// the load: entries `acs`, `auth_verify` and `server_rss_mib`.
async fn http(
    client: &kube::Client,
    idp_key: &openssl::pkey::PKey<openssl::pkey::Private>,
    idp_cert: &str,
) -> serde_json::Map<String, Value> {
    let pp = bench_apply();
    let (ns, _controller, idps, _) = controlled_namespace(client, "bench-http").await;
    let database = support::sqlite_url("bench-http");
    let (server, url) = Operator::start_server(
        &server_kubeconfig(client, &ns.name).await,
        &ns.name,
        &database,
    );
    idps.patch(
        "okta",
        &pp,
        &Patch::Apply(&idp_object(
            "okta",
            idp_cert,
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
    let count = env_number("SSO_BENCH_ACS_RESPONSES", 16000);
    let acs = format!("{EXTERNAL_URL}/saml/{}/okta/acs", ns.name);
    let entity = format!("{EXTERNAL_URL}/saml/{}/okta/metadata", ns.name);
    let key_pem = String::from_utf8(idp_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let bodies = signed_bodies(acs_specs(count, &key_pem, idp_cert, &acs, &entity, "ours"));
    let acs_url = format!("{url}/saml/{}/okta/acs", ns.name);
    // Both cores (wrk shares them): 2 and 4 connections. Then one core for the server and the
    // other for wrk (taskset), 2 connections.
    let (first, rest) = bodies.split_at(bodies.len() * 5 / 16);
    let (second, third) = rest.split_at(rest.len() * 6 / 11);
    let acs_2 = wrk_acs(&acs_url, first, 2, None);
    let acs_4 = wrk_acs(&acs_url, second, 4, None);
    pin(server.pid(), "0");
    let acs_one_core = wrk_acs(&acs_url, third, 2, Some("1"));
    pin(server.pid(), "0-1");
    let acs_results = json!({ "responses_prepared": bodies.len(), "connections_2": acs_2, "connections_4": acs_4, "one_core_2_connections": acs_one_core });

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
    let session = session_cookie(&r, &format!("{}/okta", ns.name));
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
    let server_rss = json!({ "idle": idle_rss, "after_load": loaded_rss });
    remove_namespace(client, ns).await;
    serde_json::Map::from_iter([
        ("acs".to_owned(), acs_results),
        ("auth_verify".to_owned(), verify),
        ("server_rss_mib".to_owned(), server_rss),
    ])
}

/// SCIM over HTTP on SQLite (and PostgreSQL at `SSO_BENCH_POSTGRES_URL`): Okta's provisioning
/// sequence, lookups among 100,000 users, paging through all of them.
async fn scim(client: &kube::Client, idp_cert: &str) -> Value {
    let pp = bench_apply();
    let (ns, controller, idps, tokens) = controlled_namespace(client, "bench-scim").await;
    idps.patch(
        "okta",
        &pp,
        &Patch::Apply(&idp_object("okta", idp_cert, json!({}))),
    )
    .await
    .unwrap();
    tokens
        .patch("okta", &pp, &Patch::Apply(&token_object("okta")))
        .await
        .unwrap();
    let token = support::wait_for_token(client, &ns.name, "okta-scim-token").await;
    let users = env_number("SSO_BENCH_USERS", 100_000);
    let mut backends = vec![("sqlite", support::sqlite_url("bench-scim"))];
    if let Ok(url) = std::env::var("SSO_BENCH_POSTGRES_URL") {
        backends.push(("postgresql", url));
    }
    let mut results = Vec::new();
    for (backend, database) in backends {
        let (server, url) = Operator::start_server(
            &server_kubeconfig(client, &ns.name).await,
            &ns.name,
            &database,
        );
        let prefix = format!("/scim/v2/{}/okta", ns.name);
        let http = reqwest::Client::new();
        let served = wait_for(Duration::from_secs(60), || async {
            let r = http
                .get(format!("{url}{prefix}/ServiceProviderConfig"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            (r.status().as_u16() == 200).then_some(())
        })
        .await;
        assert!(served.is_some(), "the SCIM endpoint was never served");
        let tenant = format!("{}/okta", ns.name);
        let store = sso_operator::store::Store::connect(&database)
            .await
            .expect("store");
        let loaded = Instant::now();
        load_users(&store, &tenant, users).await;
        let load_seconds = loaded.elapsed().as_secs_f64();
        let auth = format!("Authorization: Bearer {token}");
        let script = |name: &str| support::repo_root().join(name).display().to_string();
        let users_text = users.to_string();
        let lookups = wrk(
            &[
                "-t2",
                "-c8",
                "-d5s",
                "--latency",
                "-s",
                &script("benches/lookup.lua"),
                "-H",
                &auth,
                &url,
            ],
            &[
                ("SSO_BENCH_SCIM_PREFIX", &prefix),
                ("SSO_BENCH_USERS", &users_text),
            ],
        );
        let sequence = wrk(
            &[
                "-t2",
                "-c2",
                "-d5s",
                "--latency",
                "-s",
                &script("benches/scim.lua"),
                "-H",
                &auth,
                &url,
            ],
            &[
                ("SSO_BENCH_SCIM_PREFIX", &prefix),
                ("SSO_BENCH_RUN", backend),
            ],
        );
        // Every user, 200 a page (the server's maximum), one request after the other.
        let paged = Instant::now();
        let (mut seen, mut start, mut total) = (0u64, 1u64, u64::MAX);
        while start <= total {
            let page: Value = serde_json::from_slice(
                &http
                    .get(format!("{url}{prefix}/Users?startIndex={start}&count=200"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
            )
            .unwrap();
            total = page["totalResults"].as_u64().unwrap();
            let n = page["Resources"].as_array().map_or(0, Vec::len) as u64;
            assert!(n > 0, "an empty page before the end");
            seen += n;
            start += n;
        }
        let paging_seconds = paged.elapsed().as_secs_f64();
        let rss = rss_mib(server.pid());
        store.delete_tenant(&tenant).await.expect("clean up");
        drop(server);
        results.push(json!({
                "backend": backend, "users": users, "load_seconds": load_seconds,
                "username_eq_lookups": lookups,
                "okta_sequence": sequence,
                "okta_sequences_per_second": sequence["requests_per_second"].as_f64().unwrap_or(0.0) / 3.0,
                "paginate_all": { "users_seen": seen, "pages": seen.div_ceil(200), "seconds": paging_seconds },
                "server_rss_mib": rss,
            }));
    }
    remove_namespace(client, ns).await;
    drop(controller);
    Value::Array(results)
}

/// The Markdown table of `system.md`: each workload with its result and target.
fn table(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut md = String::from("| workload | result | target |\n| --- | --- | --- |\n");
    let mut row =
        |workload: &str, section: &Value, result: &dyn Fn(&Value) -> String, target: &str| {
            md.push_str(&format!(
                "| {workload} | {} | {target} |\n",
                measured(section, result)
            ));
        };
    let reconcile = &r["reconcile_apply_to_ready"];
    row(
        "reconcile apply → Ready (IdentityProvider + ScimToken)",
        reconcile,
        &|v| {
            format!(
                "p50 {:.0} ms, p99 {:.0} ms",
                f(&v["p50_ms"]),
                f(&v["p99_ms"])
            )
        },
        "p99 < 2 s",
    );
    let scale = &r["scale_cold_start"];
    row(
        "N IdentityProviders + N ScimTokens, cold start → all Ready",
        scale,
        &|v| {
            format!(
                "N = {}: {:.1} s (all Ready: {})",
                v["identity_providers"],
                f(&v["seconds"]),
                v["all_ready"]
            )
        },
        "< 60 s at N = 1000",
    );
    row(
        "controller RSS at that size",
        scale,
        &|v| format!("{:.0} MiB", f(&v["controller_rss_mib"])),
        "< 100 MiB",
    );
    let acs = |v: &Value| {
        format!(
            "{:.0}/s, p99 {:.1} ms ({} refused)",
            f(&v["requests_per_second"]),
            f(&v["p99_ms"]),
            v["non_2xx_3xx"]
        )
    };
    row(
        "ACS, signed Okta-shaped responses, replay cache on, 2 connections",
        &r["acs"]["connections_2"],
        &acs,
        "≥ 2,000/s, p99 < 20 ms",
    );
    row("ACS, 4 connections", &r["acs"]["connections_4"], &acs, "");
    row(
        "ACS, server on 1 core (wrk on the other), 2 connections",
        &r["acs"]["one_core_2_connections"],
        &acs,
        "",
    );
    row(
        "/auth/verify with a session, keep-alive, 32 connections",
        &r["auth_verify"],
        &|v| {
            format!(
                "{:.0}/s, p99 {:.2} ms",
                f(&v["requests_per_second"]),
                f(&v["p99_ms"])
            )
        },
        "≥ 20,000/s, p99 < 5 ms",
    );
    let wrk_figures = |v: &Value| {
        format!(
            "{:.0}/s, p99 {:.2} ms{}",
            f(&v["requests_per_second"]),
            f(&v["p99_ms"]),
            match f(&v["non_2xx_3xx"]) {
                0.0 => String::new(),
                n => format!(" ({n:.0} refused: codes ran out)"),
            }
        )
    };
    for (alg, key) in [("RS256", "rs256"), ("ES256", "es256")] {
        let section = &r["oidc"][key];
        row(
            &format!("OIDC token endpoint, authorization code → tokens, {alg}, 8 connections"),
            &section["code"],
            &wrk_figures,
            "≥ 2,000/s, p99 < 20 ms",
        );
        row(
            &format!("OIDC token endpoint, refresh (rotated), {alg}, 8 connections"),
            &section["refresh"],
            &wrk_figures,
            "≥ 3,000/s, p99 < 20 ms",
        );
    }
    row(
        "server RSS idle / after load",
        &r["server_rss_mib"],
        &|v| format!("{:.0} / {:.0} MiB", f(&v["idle"]), f(&v["after_load"])),
        "idle < 64 MiB",
    );
    match r["scim"].as_array() {
        None => row("SCIM over HTTP", &Value::Null, &|_| String::new(), ""),
        Some(backends) => {
            for b in backends {
                md.push_str(&format!(
                    "| SCIM over HTTP, {backend}: `userName eq` among {users} users, 8 connections | {:.0}/s, p99 {:.2} ms ({}) | p99 < 5 ms |\n\
                     | SCIM over HTTP, {backend}: Okta sequence (filter, POST, PATCH), 2 connections | {:.0} users/s ({:.0} requests/s, p99 {:.1} ms; {}) | |\n\
                     | SCIM over HTTP, {backend}: paging through all {users} users, 200 a page | {:.1} s ({} pages) | |\n",
                    f(&b["username_eq_lookups"]["requests_per_second"]),
                    f(&b["username_eq_lookups"]["p99_ms"]),
                    b["username_eq_lookups"]["script"].as_str().unwrap_or("?"),
                    f(&b["okta_sequences_per_second"]),
                    f(&b["okta_sequence"]["requests_per_second"]),
                    f(&b["okta_sequence"]["p99_ms"]),
                    b["okta_sequence"]["script"].as_str().unwrap_or("?"),
                    f(&b["paginate_all"]["seconds"]),
                    b["paginate_all"]["pages"],
                    backend = b["backend"].as_str().unwrap_or("?"),
                    users = b["users"],
                ));
            }
        }
    }
    if let Some(p) = r.get("peer") {
        md.push_str(&format!("\nPeer, same run, same wrk scripts: {}.\n\n| peer workload | result | ours / theirs |\n| --- | --- | --- |\n", p["name"].as_str().unwrap_or("?")));
        for (workers, label) in [
            ("workers_1", "1 process"),
            ("workers_2", "2 worker processes"),
        ] {
            let w = &p["runs"][workers];
            let ratios = &p["ratios_ours_to_theirs"];
            let (acs_ratio, sequence_ratio) = if workers == "workers_1" {
                ("acs_vs_1_process", "okta_sequence_vs_1_process")
            } else {
                ("acs_vs_2_workers", "okta_sequence_vs_2_workers")
            };
            md.push_str(&format!(
                "| ACS, signed Okta-shaped responses, 2 connections, {label} | {:.0}/s, p99 {:.1} ms ({} refused) | {} |\n\
                 | SCIM Okta sequence, 2 connections, {label} | {:.0} users/s ({:.0} requests/s, p99 {:.1} ms; {}) | {} |\n\
                 | RSS after load, {label} | {:.0} MiB | |\n",
                f(&w["acs_2_connections"]["requests_per_second"]),
                f(&w["acs_2_connections"]["p99_ms"]),
                w["acs_2_connections"]["non_2xx_3xx"],
                ratio_text(&ratios[acs_ratio], "http"),
                f(&w["okta_sequences_per_second"]),
                f(&w["okta_sequence"]["requests_per_second"]),
                f(&w["okta_sequence"]["p99_ms"]),
                w["okta_sequence"]["script"].as_str().unwrap_or("?"),
                ratio_text(&ratios[sequence_ratio], "scim"),
                f(&w["rss_mib_after_load"]),
            ));
        }
    }
    md
}

/// `render` of a section's figures, or "not run" when the section was not measured in this
/// run: a skipped section never reads as a measured zero.
fn measured(section: &Value, render: &dyn Fn(&Value) -> String) -> String {
    if section.is_null() {
        "not run".to_owned()
    } else {
        render(section)
    }
}

/// A ratio of ours to theirs, or why there is none: a ratio is only computed from two
/// figures measured in the same run.
fn ratio_text(ratio: &Value, our_section: &str) -> String {
    match ratio.as_f64() {
        Some(x) => format!("{x:.1}×"),
        None => format!("none: `{our_section}` not run"),
    }
}

/// The sections written to `system.json` and `system.md`.
const SECTIONS: [&str; 6] = ["reconcile", "scale", "http", "scim", "oidc", "peer"];

#[tokio::main]
async fn main() {
    let client = admin_client().await;
    install_crds(&client).await;
    let mut report = serde_json::Map::new();
    let (idp_key, idp_cert) = support::self_signed("idp", -3600, 365 * 86_400);
    if wanted("reconcile") {
        let result = reconcile(&client, &idp_cert).await;
        report.insert("reconcile_apply_to_ready".into(), result);
    }
    if wanted("scale") {
        let result = scale(&client, &idp_cert).await;
        report.insert("scale_cold_start".into(), result);
    }
    if wanted("http") {
        report.extend(http(&client, &idp_key, &idp_cert).await);
    }
    if wanted("scim") {
        let result = scim(&client, &idp_cert).await;
        report.insert("scim".into(), result);
    }
    if wanted("oidc") {
        let result = oidc::run(&client, &idp_key, &idp_cert).await;
        report.insert("oidc".into(), result);
    }
    if wanted("peer") {
        let result = peer(&idp_key, &idp_cert, report.get("acs"), report.get("scim")).await;
        report.insert("peer".into(), result);
    }
    // Leader takeover and outage recovery: results of their own, so that running this
    // section alone leaves the other sections' results as they are.
    if wanted("takeover") {
        let results = takeover::run(&client, &idp_cert).await;
        write_results("takeover", "system", &results, &takeover::table(&results));
    }
    if !SECTIONS.iter().any(|s| wanted(s)) {
        return;
    }
    let report = Value::Object(report);
    write_results("system", "system", &report, &table(&report));
}
