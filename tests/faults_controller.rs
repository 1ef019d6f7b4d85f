//! The controller under faults: the API server going away for longer than the lease under a
//! running `sso-operator run` (on a private control plane, stopped and started by the test),
//! a killed leader replaced by its standby, and a controller that cannot run exiting instead
//! of staying up without reconciling.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sso_operator::api::IdentityProvider;
use sso_operator::config::{self, CompiledIdentityProvider};
use support::control_plane::PrivateControlPlane;
use support::operator::{EXTERNAL_URL, Operator, controller_kubeconfig, free_port};
use support::{TestNamespace, admin_client, install_crds, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const YEAR: i64 = 365 * 86_400;

fn idp_object(name: &str, sso_url: &str) -> Value {
    let pem = support::cert_pem("okta-signing", -3600, YEAR);
    json!({
        "apiVersion": "sso-operator.dev/v1alpha1", "kind": "IdentityProvider",
        "metadata": { "name": name },
        "spec": { "provider": "okta", "idp": {
            "ssoUrl": sso_url, "entityId": "http://www.okta.com/exk1",
            "certificates": [{ "pem": pem }],
        } }
    })
}

/// Sets the IdentityProvider's SSO URL (a new generation).
async fn set_sso_url(idps: &Api<IdentityProvider>, name: &str, sso_url: &str) -> kube::Result<()> {
    let patch = json!({ "spec": { "idp": { "ssoUrl": sso_url } } });
    idps.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Applies the IdentityProvider `okta` with `sso_url`; true once it is reconciled.
async fn apply_until_ready(
    idps: &Api<IdentityProvider>,
    secrets: &Api<Secret>,
    sso_url: &str,
) -> bool {
    idps.patch(
        "okta",
        &PatchParams::apply("sso-operator-tests").force(),
        &Patch::Apply(&idp_object("okta", sso_url)),
    )
    .await
    .expect("apply IdentityProvider");
    wait_for(WAIT, || reconciled(idps, secrets, "okta", sso_url))
        .await
        .is_some()
}

/// Whether the IdentityProvider's current generation is reconciled: Ready in status and
/// compiled with `sso_url`.
async fn reconciled(
    idps: &Api<IdentityProvider>,
    secrets: &Api<Secret>,
    name: &str,
    sso_url: &str,
) -> Option<()> {
    let idp = idps.get(name).await.ok()?;
    let status = idp.status.as_ref()?;
    let ready = status.observed_generation == idp.metadata.generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
    let namespace = idp.metadata.namespace.as_deref()?;
    let secret = secrets
        .get_opt(&config::compiled_secret_name(namespace, name))
        .await
        .ok()??;
    let compiled: CompiledIdentityProvider =
        serde_json::from_slice(&secret.data?.get(config::CONFIG_KEY)?.0).ok()?;
    (ready
        && Some(compiled.generation) == idp.metadata.generation
        && compiled.idp.sso_url == sso_url)
        .then_some(())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn healthz(op: &Operator) -> Option<u16> {
    let url = format!("http://{}/healthz", op.metrics_address);
    let r = reqwest::get(&url).await.ok()?;
    Some(r.status().as_u16())
}

#[tokio::test]
async fn edits_are_reconciled_within_10s_after_an_api_server_outage_longer_than_the_lease() {
    let plane = PrivateControlPlane::start("outage");
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
    let idps: Api<IdentityProvider> = Api::namespaced(admin.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);

    // Both roles in one process, with the default leader election (10 s lease).
    let listen = format!("127.0.0.1:{}", free_port());
    let database = support::sqlite_url("outage");
    let mut op = Operator::spawn(
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
    let first = "https://example.okta.com/app/x/sso/saml";
    assert!(
        apply_until_ready(&idps, &secrets, first).await,
        "the IdentityProvider never became Ready:\n{}",
        tail(&op.log_text())
    );
    let metadata = format!("http://{listen}/saml/{ns}/okta/metadata");
    let http = reqwest::Client::new();
    let serves = || async {
        let r = http.get(&metadata).send().await.ok()?;
        (r.status().as_u16() == 200).then_some(())
    };
    assert!(
        wait_for(WAIT, serves).await.is_some(),
        "the server never served the IdentityProvider:\n{}",
        tail(&op.log_text())
    );

    // 30 s without an API server: three times the lease. The process stays up, healthy, and
    // the server keeps serving its last compiled configuration.
    plane.stop();
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(30) {
        assert!(
            op.try_wait().is_none(),
            "the process exited during the outage:\n{}",
            tail(&op.log_text())
        );
        assert_eq!(healthz(&op).await, Some(200), "/healthz during the outage");
        assert!(
            serves().await.is_some(),
            "the server stopped serving during the outage"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let back = plane.up();
    let second = "https://example.okta.com/app/x/sso/saml2";
    // The test's own client may need a moment to reconnect; that counts against the bound.
    let edited = wait_for(Duration::from_secs(10), || async {
        set_sso_url(&idps, "okta", second).await.ok()
    })
    .await;
    assert!(
        edited.is_some(),
        "could not edit the IdentityProvider after the outage"
    );
    let done = wait_for(
        Duration::from_secs(10).saturating_sub(back.elapsed()),
        || reconciled(&idps, &secrets, "okta", second),
    )
    .await;
    let took = back.elapsed();
    if done.is_some() {
        eprintln!(
            "outage recovery: the edit was reconciled {:.1} s after the API server was ready again",
            took.as_secs_f64()
        );
    }
    assert!(
        done.is_some(),
        "the edit was not reconciled within 10 s of the API server being ready again:\n{}",
        tail(&op.log_text())
    );
    assert!(
        op.log_text().contains("lost leadership"),
        "the outage did not outlast the leadership:\n{}",
        tail(&op.log_text())
    );
    assert!(op.try_wait().is_none(), "the process exited");
    assert_eq!(healthz(&op).await, Some(200), "/healthz after the outage");
    drop(plane);
}

fn lease_flags() -> [&'static str; 6] {
    [
        "--leader-lease-duration",
        "4s",
        "--leader-renew-deadline",
        "3s",
        "--leader-retry-period",
        "1s",
    ]
}

async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("sso-operator-controller")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn a_killed_leader_is_replaced_by_its_standby_with_short_lease_settings() {
    let admin = admin_client().await;
    install_crds(&admin).await;
    let ns = TestNamespace::new(&admin, "takeover").await;
    let kubeconfig = controller_kubeconfig(&admin, &ns.name).await;
    let start = |identity: &str| {
        let mut extra = vec!["--leader-identity", identity];
        extra.extend(lease_flags());
        Operator::start(&kubeconfig, &ns.name, &extra)
    };
    let mut leader = start("first");
    let held = wait_for(WAIT, || async {
        (lease_holder(&admin, &ns.name).await? == "first").then_some(())
    })
    .await;
    assert!(held.is_some(), "no leader:\n{}", tail(&leader.log_text()));
    let standby = start("second");

    let idps: Api<IdentityProvider> = Api::namespaced(admin.clone(), &ns.name);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns.name);
    let first = "https://example.okta.com/app/x/sso/saml";
    assert!(
        apply_until_ready(&idps, &secrets, first).await,
        "the IdentityProvider never became Ready:\n{}",
        tail(&leader.log_text())
    );
    assert_eq!(
        lease_holder(&admin, &ns.name).await.as_deref(),
        Some("first")
    );

    leader.kill();
    let killed = Instant::now();
    let second = "https://example.okta.com/app/x/sso/saml2";
    set_sso_url(&idps, "okta", second)
        .await
        .expect("edit the IdentityProvider");
    let done = wait_for(WAIT, || reconciled(&idps, &secrets, "okta", second)).await;
    eprintln!(
        "takeover with a 4 s lease: the edit was reconciled {:.1} s after the leader was killed",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        done.is_some(),
        "the standby never reconciled the edit:\n{}",
        tail(&standby.log_text())
    );
    assert_eq!(
        lease_holder(&admin, &ns.name).await.as_deref(),
        Some("second")
    );
}

/// Runs `sso-operator` with `args` and waits (60 s at most) for it to exit; its status and
/// output.
fn run_to_exit(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sso-operator"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sso-operator");
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.code(), text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    (None, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn a_controller_that_cannot_run_exits_non_zero_with_the_reason() {
    let kubeconfig = support::admin_kubeconfig();
    let metrics = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let database = support::sqlite_url("bad-flags");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["controller", "--external-url", "ftp://sso.example.test"],
            "--external-url must start with https://",
        ),
        (
            vec![
                "run",
                "--external-url",
                "ftp://sso.example.test",
                "--listen",
                &listen,
                "--database-url",
                &database,
            ],
            "--external-url must start with https://",
        ),
        (
            vec![
                "controller",
                "--external-url",
                EXTERNAL_URL,
                "--leader-renew-deadline",
                "12s",
            ],
            "--leader-renew-deadline (12s) must be shorter than --leader-lease-duration (10s)",
        ),
    ];
    for (mut args, reason) in cases {
        args.extend(["--metrics-address", &metrics]);
        let (code, output) = run_to_exit(&kubeconfig, &args);
        assert_eq!(
            code,
            Some(1),
            "{args:?} did not exit with status 1:\n{output}"
        );
        assert!(output.contains(reason), "{args:?}: {output}");
    }
}
