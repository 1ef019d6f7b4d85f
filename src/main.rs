//! The `sso-operator` binary: parses the command line (`sso_operator::cli`) and runs the
//! chosen roles.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use sso_operator::cli::{
    Cli, Command, CommonArgs, ControllerArgs, KubeconfigArgs, ProbeArgs, ServerArgs,
};
use sso_operator::controller::{
    self,
    leader::{LeaderElection, Timing},
    metadata::FetchPolicy,
    sp_keys::RotationPolicy,
};
use sso_operator::ops::Ops;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Reference => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(sso_operator::api::reference::markdown().as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Command::Crd => match sso_operator::api::crds_yaml() {
            Ok(yaml) => {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(yaml.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: could not render the CRDs as YAML: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            common,
            controller,
            server,
        } => run_roles(common, Some(controller), Some(server)),
        Command::Controller { common, controller } => run_roles(common, Some(controller), None),
        Command::Server { common, server } => run_roles(common, None, Some(server)),
        Command::Probe(args) => probe(&args),
        Command::Kubeconfig(args) => kubeconfig(&args),
    }
}

/// `sso-operator kubeconfig`: the snippet for one OidcClient, from its status.
fn kubeconfig(args: &KubeconfigArgs) -> ExitCode {
    let Some(runtime) = command_runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(kubeconfig_text(args)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn kubeconfig_text(args: &KubeconfigArgs) -> anyhow::Result<String> {
    use sso_operator::oidc::kubectl::{self, Grant, KubectlClient};
    let client = kube::Client::try_default()
        .await
        .context("could not read the kubeconfig")?;
    let api: kube::Api<sso_operator::api::OidcClient> =
        kube::Api::namespaced(client, &args.namespace);
    let oidc_client = api.get(&args.oidc_client).await.with_context(|| {
        format!(
            "could not read OidcClient {}/{}",
            args.namespace, args.oidc_client
        )
    })?;
    let status = oidc_client.status.clone().unwrap_or_default();
    let (Some(issuer), Some(client_id)) =
        (status.issuer_url.as_deref(), status.client_id.as_deref())
    else {
        anyhow::bail!(
            "OidcClient {}/{} has no issuer URL in its status yet: check `kubectl describe oidcclient {} -n {}`",
            args.namespace,
            args.oidc_client,
            args.oidc_client,
            args.namespace
        );
    };
    if args.api_server {
        let ca = match &args.certificate_authority {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("could not read {}", path.display()))?,
            ),
            None => None,
        };
        return Ok(kubectl::authentication_config(
            issuer,
            client_id,
            &oidc_client.spec.groups_claim,
            ca.as_deref(),
        ));
    }
    if !oidc_client.spec.public {
        anyhow::bail!(
            "OidcClient {}/{} is confidential: kubectl runs on people's machines, where a client secret is no secret. Use an OidcClient with spec.public: true",
            args.namespace,
            args.oidc_client
        );
    }
    let ca = args
        .certificate_authority
        .as_ref()
        .map(|p| p.display().to_string());
    Ok(kubectl::user_entry(
        &args.user,
        &KubectlClient {
            issuer,
            client_id,
            client_secret: None,
            certificate_authority: ca.as_deref(),
        },
        if args.device_code {
            Grant::DeviceCode
        } else {
            Grant::Browser
        },
    ))
}

/// The single-threaded runtime of a short command; `None` (said on stderr) when it cannot start.
fn command_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            None
        }
    }
}

/// `sso-operator probe`: one line per URL, on stdout when it answered 2xx, on stderr otherwise.
fn probe(args: &ProbeArgs) -> ExitCode {
    let Some(runtime) = command_runtime() else {
        return ExitCode::FAILURE;
    };
    let mut failed = false;
    for outcome in runtime.block_on(sso_operator::probe::probe(&args.urls, args.timeout)) {
        match outcome {
            Ok(line) => println!("{line}"),
            Err(line) => {
                eprintln!("error: {line}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_roles(
    common: CommonArgs,
    controller: Option<ControllerArgs>,
    server: Option<ServerArgs>,
) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(common, controller, server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| sso_operator::cli::DEFAULT_LOG_FILTER.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .with_current_span(false)
        .init();
}

async fn run(
    common: CommonArgs,
    controller: Option<ControllerArgs>,
    server: Option<ServerArgs>,
) -> anyhow::Result<()> {
    // Settings are checked before anything starts: a mistake ends the process at once.
    let controller = controller
        .map(|args| ControllerRole::new(&common, args))
        .transpose()?;
    let client = kube::Client::try_default()
        .await
        .context("could not configure a Kubernetes client (KUBECONFIG or in-cluster)")?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = controller::metrics::Metrics::new(&mut registry);
    let server_metrics = sso_operator::server::metrics::ServerMetrics::new(&mut registry);
    let ops = Ops::new(registry);

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let stop = shutdown_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });

    let (bound, ops_task) = ops
        .serve(common.metrics_address, wait_shutdown(shutdown_rx.clone()))
        .await
        .with_context(|| format!("could not listen on {}", common.metrics_address))?;
    tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");

    let mut roles = tokio::task::JoinSet::new();
    if let Some(args) = server {
        let settings = sso_operator::server::Settings {
            listen: args.listen,
            database_url: args.database_url,
            store: sso_operator::store::Options {
                timeout: args.database_timeout,
            },
            limits: sso_operator::server::listener::Limits {
                header_read_timeout: args.header_read_timeout,
                idle_timeout: args.idle_timeout,
                max_connections: args.max_connections as usize,
            },
            config_namespace: common.config_namespace().to_owned(),
            metrics: server_metrics.clone(),
            allowed_redirects: args.allowed_redirect,
        };
        let run = sso_operator::server::run(
            client.clone(),
            settings,
            ops.clone(),
            wait_shutdown(shutdown_rx.clone()),
        );
        roles.spawn(async move { ("server", run.await) });
    }
    if let Some(role) = controller {
        if roles.is_empty() {
            // A standby controller is healthy and ready: it is waiting to lead.
            ops.set_ready(true);
        }
        let run = role.run(client, metrics, shutdown_rx.clone());
        roles.spawn(async move { ("controller", run.await) });
    }

    // Each role runs until shutdown. One that ends otherwise (an error, a panic, or no error
    // but no shutdown either) ends the process with a failure, so that it is restarted
    // instead of staying up without reconciling or serving.
    let mut result = Ok(());
    while let Some(joined) = roles.join_next().await {
        let failure = match joined {
            Ok((_, Ok(()))) if *shutdown_rx.borrow() => None,
            Ok((role, Ok(()))) => Some(anyhow::anyhow!("the {role} stopped unexpectedly")),
            Ok((role, Err(e))) => Some(e.context(format!("the {role} stopped"))),
            Err(e) => Some(anyhow::anyhow!("a role's task failed: {e}")),
        };
        if let Some(e) = failure {
            // /healthz fails from now on; the error is logged once, when the process exits.
            ops.set_dead();
            let _ = shutdown_tx.send(true);
            result = Err(e);
            break;
        }
    }
    // The other roles get a bounded time to finish after a failure.
    if tokio::time::timeout(STOP_WITHIN, async {
        while let Some(joined) = roles.join_next().await {
            if let Ok((role, Err(e))) = joined {
                tracing::warn!(role, "{e:#}");
            }
        }
    })
    .await
    .is_err()
    {
        roles.abort_all();
    }
    let _ = tokio::time::timeout(STOP_WITHIN, ops_task).await;
    result
}

/// How long the roles get to stop after a failure of another role.
const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long releasing the Lease may take at the end of a term (the API server may be down).
const RELEASE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

async fn wait_shutdown(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The controller role: campaigns for the Lease and reconciles while it leads, term after
/// term, until shutdown.
struct ControllerRole {
    settings: controller::Settings,
    timing: Timing,
    identity: String,
    owner_deployment: Option<String>,
}

impl ControllerRole {
    /// Checks the controller's flags.
    fn new(common: &CommonArgs, args: ControllerArgs) -> anyhow::Result<Self> {
        let external_url = args.external_url.trim_end_matches('/').to_owned();
        let parsed =
            reqwest::Url::parse(&external_url).context("--external-url is not a valid URL")?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "https" | "http"),
            "--external-url must start with https:// (or http:// for local tests)"
        );
        let mut extra_roots = Vec::new();
        if let Some(path) = &args.metadata_ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("read --metadata-ca-file {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .context("--metadata-ca-file holds no PEM certificates")?
            {
                extra_roots.push(cert);
            }
        }
        let settings = controller::Settings {
            external_url,
            operator_namespace: common.operator_namespace.clone(),
            config_namespace: common.config_namespace().to_owned(),
            sp_rotation: RotationPolicy {
                validity: args.sp_certificate_validity,
                renew_before: args.sp_certificate_renew_before,
            },
            watch_namespace: args.watch_namespace.clone(),
            session_key_rotation: args.session_key_rotation,
            max_concurrent_reconciles: args.max_concurrent_reconciles,
            metadata_fetch: FetchPolicy {
                allow_private_addresses: args.allow_private_metadata_addresses,
                extra_root_certificates: extra_roots,
                ..Default::default()
            },
        };
        anyhow::ensure!(
            settings.sp_rotation.renew_before < settings.sp_rotation.validity,
            "--sp-certificate-renew-before must be shorter than --sp-certificate-validity"
        );
        let timing = args.leader_timing()?;
        let identity = args.leader_identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "sso-operator".into());
            format!("{host}-{:08x}", rand::random::<u32>())
        });
        Ok(Self {
            settings,
            timing,
            identity,
            owner_deployment: args.owner_deployment.clone(),
        })
    }

    /// Campaigns, reconciles while leading, and campaigns again after losing the Lease (an
    /// API-server outage longer than the renew deadline, or another replica took over).
    /// Returns at shutdown, or with an error if the controllers stop by themselves.
    async fn run(
        self,
        client: kube::Client,
        metrics: controller::metrics::Metrics,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut election = LeaderElection::new(
            client.clone(),
            &self.settings.operator_namespace,
            LEASE_NAME,
            self.identity,
            self.timing,
        );
        loop {
            if let Some(name) = &self.owner_deployment
                && !election.has_owner()
            {
                match lease_owner(&client, &self.settings.operator_namespace, name).await {
                    Ok(owner) => election.set_owner(owner),
                    Err(e) => tracing::warn!(
                        deployment = %name,
                        error = %e,
                        "could not read the controller's Deployment; the Lease {LEASE_NAME} is written without an owner for now and stays behind after helm uninstall until this succeeds"
                    ),
                }
            }
            let term = tokio::select! {
                term = election.acquire() => term,
                () = wait_shutdown(shutdown.clone()) => return Ok(()),
            };
            let mut lost = term.leading();
            let reconcile = controller::run(
                client.clone(),
                self.settings.clone(),
                metrics.clone(),
                term.leading(),
                wait_shutdown(shutdown.clone()),
            );
            // Losing the Lease stops the controllers at once (dropping them cancels any
            // reconciliation in flight): another replica may lead soon. Shutdown stops them
            // gracefully.
            tokio::select! {
                () = reconcile => {}
                _ = lost.wait_for(|leading| !*leading) => {}
            }
            let still_leading = *lost.borrow();
            term.release(RELEASE_WITHIN).await;
            if *shutdown.borrow() {
                return Ok(());
            }
            anyhow::ensure!(
                !still_leading,
                "the controllers stopped while leading; restart the process"
            );
            tracing::warn!("lost leadership; the controllers stopped and campaign again");
        }
    }
}

/// A reference to Deployment `name` of `namespace`, as the owner of the leader-election Lease.
async fn lease_owner(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference, kube::Error> {
    use kube::Resource;
    let deployment =
        kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), namespace)
            .get(name)
            .await?;
    Ok(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: k8s_openapi::api::apps::v1::Deployment::api_version(&()).into_owned(),
            kind: k8s_openapi::api::apps::v1::Deployment::kind(&()).into_owned(),
            name: name.to_owned(),
            uid: deployment.metadata.uid.unwrap_or_default(),
            ..Default::default()
        },
    )
}

/// Name of the leader-election Lease in the operator namespace.
const LEASE_NAME: &str = "sso-operator-controller";

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
