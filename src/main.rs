//! The `sso-operator` command line: `run`, `controller`, `server` and `crd`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sso_operator::controller::{
    self, leader::LeaderElection, metadata::FetchPolicy, sp_keys::RotationPolicy,
};
use sso_operator::ops::Ops;

/// SAML single sign-on and SCIM 2.0 provisioning for Kubernetes.
#[derive(Parser)]
#[command(name = "sso-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller and the server in one process (the embedded default). The server
    /// role is not part of this build yet, so this runs the controller.
    Run(ControllerArgs),
    /// Run only the controller: reconciles IdentityProvider and ScimToken resources.
    Controller(ControllerArgs),
    /// Run only the server: SAML service provider, SCIM 2.0 and forward-auth endpoints.
    Server,
    /// Print both CustomResourceDefinitions as YAML, for `kubectl apply -f -`.
    Crd,
}

#[derive(Args, Clone)]
struct ControllerArgs {
    /// The installation's external base URL, as users' browsers and the IdP reach it, e.g.
    /// https://sso.example.com. Every URL shown in status is built from it.
    #[arg(long, env = "SSO_EXTERNAL_URL")]
    external_url: String,

    /// Namespace for the compiled configuration Secrets and the leader-election Lease
    /// (normally the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sso-operator")]
    operator_namespace: String,

    /// Only reconcile resources in this namespace (default: all namespaces).
    #[arg(long, env = "SSO_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,

    /// Address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "SSO_CONTROLLER_METRICS_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    metrics_address: SocketAddr,

    /// Identity used for leader election (defaults to the host name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    leader_identity: Option<String>,

    /// Lifetime of generated service-provider certificates.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    sp_certificate_validity: jiff::SignedDuration,

    /// Publish the next service-provider certificate this long before the current one
    /// expires; the switch happens after half of it.
    #[arg(long, default_value = "720h", value_parser = parse_duration)]
    sp_certificate_renew_before: jiff::SignedDuration,

    /// Allow metadata URLs that resolve to loopback or private addresses. Off by default
    /// (it would let anyone who can create an IdentityProvider probe the cluster network);
    /// meant for tests and labs only.
    #[arg(long)]
    allow_private_metadata_addresses: bool,

    /// Extra CA certificates (PEM file) trusted for metadata URLs, besides the public roots.
    #[arg(long)]
    metadata_ca_file: Option<std::path::PathBuf>,
}

fn parse_duration(s: &str) -> Result<jiff::SignedDuration, String> {
    sso_operator::api::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 90s, 15m or 720h"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
        Command::Run(args) | Command::Controller(args) => {
            init_tracing();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: could not start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run_controller(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Server => {
            eprintln!(
                "error: the server role (SAML, SCIM, forward-auth) is not part of this build yet"
            );
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .with_current_span(false)
        .init();
}

async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    let external_url = args.external_url.trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&external_url).context("--external-url is not a valid URL")?;
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
        operator_namespace: args.operator_namespace.clone(),
        sp_rotation: RotationPolicy {
            validity: args.sp_certificate_validity,
            renew_before: args.sp_certificate_renew_before,
        },
        watch_namespace: args.watch_namespace.clone(),
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

    let client = kube::Client::try_default()
        .await
        .context("could not configure a Kubernetes client (KUBECONFIG or in-cluster)")?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = controller::metrics::Metrics::new(&mut registry);
    let ops = Ops::new(registry);

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    });
    let wait_shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let (bound, ops_task) = ops
        .serve(args.metrics_address, wait_shutdown(shutdown_rx.clone()))
        .await
        .with_context(|| format!("could not listen on {}", args.metrics_address))?;
    tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
    // A standby replica is healthy and ready: it is waiting to lead.
    ops.set_ready(true);

    let identity = args.leader_identity.unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "sso-operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let election = LeaderElection::new(
        &args.operator_namespace,
        "sso-operator-controller",
        identity,
    );
    let acquired = tokio::select! {
        r = election.acquire(client.clone()) => Some(r),
        () = wait_shutdown(shutdown_rx.clone()) => None,
    };
    let Some((leading, releaser)) = acquired else {
        return Ok(());
    };
    let lost = leading.clone();
    controller::run(
        client,
        settings,
        metrics,
        leading,
        wait_shutdown(shutdown_rx.clone()),
    )
    .await;
    releaser.release().await;
    let _ = ops_task.await;
    anyhow::ensure!(
        *lost.borrow(),
        "lost leadership; exiting so that a fresh start can campaign again"
    );
    Ok(())
}

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
