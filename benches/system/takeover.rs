//! Leader takeover and recovery from an API-server outage, with the controller's default
//! leader election (`SSO_BENCH_ONLY=takeover`). Written to `takeover.json` and `takeover.md`
//! beside the other results.
//!
//! - takeover: two controllers watch one namespace; the leader is killed (SIGKILL) and an
//!   IdentityProvider edited at once; measured: until the standby holds the Lease, and until
//!   the edit is reconciled (Ready and compiled for the new generation). Each round's standby
//!   is the next round's leader; `SSO_BENCH_TAKEOVERS` rounds (default 5).
//! - outage: `sso-operator run` on a private control plane that is stopped for
//!   `SSO_BENCH_OUTAGE_SECONDS` (default 30, three times the lease) and started again;
//!   measured: from the API server being ready again until an edit made then is reconciled.
//!   `SSO_BENCH_OUTAGES` rounds (default 3).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sso_operator::api::IdentityProvider;
use sso_operator::config::{self, CompiledIdentityProvider};

use crate::common::env_number;
use crate::support::control_plane::PrivateControlPlane;
use crate::support::operator::{EXTERNAL_URL, Operator, controller_kubeconfig, free_port};
use crate::support::{TestNamespace, install_crds, wait_for};

const LEASE: &str = "sso-operator-controller";

/// Both measurements.
pub async fn run(client: &Client, idp_cert: &str) -> Value {
    json!({
        "settings": { "lease_duration_s": 10, "renew_deadline_s": 7, "retry_period_s": 1 },
        "takeover": takeover(client, idp_cert).await,
        "outage": outage(idp_cert).await,
    })
}

/// The Markdown table of [`run`]'s results.
pub fn table(r: &Value) -> String {
    let s = |v: &Value| {
        format!(
            "{:.1} / {:.1} / {:.1} s",
            v["min_s"].as_f64().unwrap_or(0.0),
            v["median_s"].as_f64().unwrap_or(0.0),
            v["max_s"].as_f64().unwrap_or(0.0)
        )
    };
    let t = &r["takeover"];
    let o = &r["outage"];
    format!(
        "Leader election with the defaults (lease 10 s, renew deadline 7 s, retry 1 s); min / median / max.\n\n\
         | workload | result | target |\n| --- | --- | --- |\n\
         | leader killed (SIGKILL) → the standby holds the Lease ({} rounds) | {} | < 15 s |\n\
         | leader killed → an edit made at the kill is reconciled by the standby | {} | < 15 s |\n\
         | API server down {} s → an edit is reconciled, from the API server being ready again ({} rounds) | {} | < 10 s |\n\
         | time without an API server (stop, {} s, start until ready) | {} | |\n",
        t["rounds"],
        s(&t["standby_holds_lease"]),
        s(&t["edit_reconciled"]),
        o["outage_seconds"],
        o["rounds"],
        s(&o["edit_reconciled_after_ready"]),
        o["outage_seconds"],
        s(&o["down_until_ready"]),
    )
}

fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let secs = |d: Option<&Duration>| d.map_or(0.0, Duration::as_secs_f64);
    json!({
        "samples_s": samples.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "min_s": secs(samples.first()),
        "median_s": secs(samples.get(samples.len() / 2)),
        "max_s": secs(samples.last()),
    })
}

fn idp(name: &str, cert: &str, sso_url: &str) -> Value {
    let mut object = super::idp_object(name, cert, json!({}));
    object["spec"]["idp"]["ssoUrl"] = json!(sso_url);
    object
}

async fn set_sso_url(idps: &Api<IdentityProvider>, name: &str, sso_url: &str) -> Option<()> {
    let patch = json!({ "spec": { "idp": { "ssoUrl": sso_url } } });
    idps.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .ok()
        .map(|_| ())
}

/// Applies the IdentityProvider `okta` with `sso_url` and waits (60 s at most) until it is
/// reconciled.
async fn apply_until_ready(
    idps: &Api<IdentityProvider>,
    secrets: &Api<Secret>,
    idp_cert: &str,
    sso_url: &str,
) {
    idps.patch(
        "okta",
        &PatchParams::apply("bench").force(),
        &Patch::Apply(&idp("okta", idp_cert, sso_url)),
    )
    .await
    .expect("apply IdentityProvider");
    let ready = wait_for(Duration::from_secs(60), || async {
        reconciled(idps, secrets, "okta", sso_url)
            .await
            .then_some(())
    })
    .await;
    assert!(ready.is_some(), "the IdentityProvider never became Ready");
}

/// Ready for its current generation, and compiled from it with `sso_url`.
async fn reconciled(
    idps: &Api<IdentityProvider>,
    secrets: &Api<Secret>,
    name: &str,
    sso_url: &str,
) -> bool {
    let check = async {
        let idp = idps.get(name).await.ok()?;
        let status = idp.status.as_ref()?;
        let ready = status.observed_generation == idp.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
        let secret = secrets
            .get_opt(&config::compiled_secret_name(
                idp.metadata.namespace.as_deref()?,
                name,
            ))
            .await
            .ok()??;
        let compiled: CompiledIdentityProvider =
            serde_json::from_slice(&secret.data?.get(config::CONFIG_KEY)?.0).ok()?;
        Some(
            ready
                && Some(compiled.generation) == idp.metadata.generation
                && compiled.idp.sso_url == sso_url,
        )
    };
    check.await.unwrap_or(false)
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(LEASE).await.ok()??.spec?.holder_identity
}

async fn takeover(client: &Client, idp_cert: &str) -> Value {
    let rounds = env_number("SSO_BENCH_TAKEOVERS", 5);
    let ns = TestNamespace::new(client, "bench-takeover").await;
    let kubeconfig = controller_kubeconfig(client, &ns.name).await;
    let start =
        |identity: &str| Operator::start(&kubeconfig, &ns.name, &["--leader-identity", identity]);
    let idps: Api<IdentityProvider> = Api::namespaced(client.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);

    let mut leader = start("replica-0");
    let first = "https://idp.example.test/sso/0";
    apply_until_ready(&idps, &secrets, idp_cert, first).await;

    let (mut lease_times, mut edit_times) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let identity = format!("replica-{round}");
        let standby = start(&identity);
        let standing_by = wait_for(Duration::from_secs(60), || async {
            standby.log_text().contains("standing by").then_some(())
        })
        .await;
        assert!(standing_by.is_some(), "the standby never read the Lease");
        // Kill at a different point of the leader's renewal cycle in each round.
        tokio::time::sleep(Duration::from_millis(2000 + 230 * round as u64)).await;
        leader.kill();
        let killed = Instant::now();
        let url = format!("https://idp.example.test/sso/{round}");
        assert!(
            set_sso_url(&idps, "okta", &url).await.is_some(),
            "edit the IdentityProvider"
        );
        let (mut holds, mut edited) = (None, None);
        while (holds.is_none() || edited.is_none()) && killed.elapsed() < Duration::from_secs(90) {
            if holds.is_none() && holder(&leases).await.as_deref() == Some(identity.as_str()) {
                holds = Some(killed.elapsed());
            }
            if edited.is_none() && reconciled(&idps, &secrets, "okta", &url).await {
                edited = Some(killed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (holds, edited) = (
            holds.expect("the standby never held the Lease"),
            edited.expect("the standby never reconciled the edit"),
        );
        eprintln!(
            "takeover round {round}: Lease after {:.2} s, edit reconciled after {:.2} s",
            holds.as_secs_f64(),
            edited.as_secs_f64()
        );
        lease_times.push(holds);
        edit_times.push(edited);
        leader = standby;
    }
    super::remove_namespace(client, ns).await;
    drop(leader);
    json!({
        "rounds": rounds,
        "standby_holds_lease": summary(lease_times),
        "edit_reconciled": summary(edit_times),
    })
}

async fn outage(idp_cert: &str) -> Value {
    let rounds = env_number("SSO_BENCH_OUTAGES", 3);
    let seconds = env_number("SSO_BENCH_OUTAGE_SECONDS", 30);
    let plane = PrivateControlPlane::start("bench-outage");
    let admin = plane.admin_client().await;
    install_crds(&admin).await;
    let ns = "outage";
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create namespace");
    let listen = format!("127.0.0.1:{}", free_port());
    let database = crate::support::sqlite_url("bench-outage");
    let op = Operator::spawn(
        &plane.kubeconfig(),
        ns,
        &[
            "run",
            "--external-url",
            EXTERNAL_URL,
            "--operator-namespace",
            ns,
            "--watch-namespace",
            ns,
            "--listen",
            &listen,
            "--database-url",
            &database,
        ],
    );
    let idps: Api<IdentityProvider> = Api::namespaced(admin.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let first = "https://idp.example.test/sso/0";
    apply_until_ready(&idps, &secrets, idp_cert, first).await;

    let (mut down, mut recovery) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        plane.stop();
        let stopped = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
        let back = plane.up();
        down.push(stopped.elapsed() - back.elapsed());
        let url = format!("https://idp.example.test/sso/{round}");
        let edited = wait_for(Duration::from_secs(60), || set_sso_url(&idps, "okta", &url)).await;
        assert!(edited.is_some(), "could not edit after the outage");
        let done = wait_for(Duration::from_secs(90), || async {
            reconciled(&idps, &secrets, "okta", &url)
                .await
                .then_some(())
        })
        .await;
        assert!(
            done.is_some(),
            "the edit was never reconciled after the outage:\n{}",
            op.log_text()
        );
        eprintln!(
            "outage round {round}: edit reconciled {:.2} s after the API server was ready",
            back.elapsed().as_secs_f64()
        );
        recovery.push(back.elapsed());
    }
    drop(op);
    drop(plane);
    json!({
        "rounds": rounds,
        "outage_seconds": seconds,
        "down_until_ready": summary(down),
        "edit_reconciled_after_ready": summary(recovery),
    })
}
