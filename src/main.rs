//! The `sso-operator` binary: parses the command line (`sso_operator::cli`) and runs the
//! chosen roles.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use sso_operator::cli::{Cli, Command, CommonArgs, ControllerArgs, ServerArgs};
use sso_operator::controller::{
    self, leader::LeaderElection, metadata::FetchPolicy, sp_keys::RotationPolicy,
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
        .unwrap_or_else(|_| "info,kube=warn".into());
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
    let client = kube::Client::try_default()
        .await
        .context("could not configure a Kubernetes client (KUBECONFIG or in-cluster)")?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = controller::metrics::Metrics::new(&mut registry);
    let server_metrics = sso_operator::server::metrics::ServerMetrics::new(&mut registry);
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
        .serve(common.metrics_address, wait_shutdown(shutdown_rx.clone()))
        .await
        .with_context(|| format!("could not listen on {}", common.metrics_address))?;
    tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");

    let server_task = server.map(|args| {
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
            operator_namespace: common.operator_namespace.clone(),
            metrics: server_metrics.clone(),
        };
        tokio::spawn(sso_operator::server::run(
            client.clone(),
            settings,
            ops.clone(),
            wait_shutdown(shutdown_rx.clone()),
        ))
    });
    let result = match controller {
        Some(args) => {
            if server_task.is_none() {
                // A standby controller is healthy and ready: it is waiting to lead.
                ops.set_ready(true);
            }
            run_controller(client, &common, args, metrics, shutdown_rx.clone()).await
        }
        None => Ok(()),
    };
    if let Some(task) = server_task {
        match task.await {
            Ok(r) => r?,
            Err(e) => anyhow::bail!("the server stopped: {e}"),
        }
    }
    let _ = ops_task.await;
    result
}

async fn run_controller(
    client: kube::Client,
    common: &CommonArgs,
    args: ControllerArgs,
    metrics: controller::metrics::Metrics,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let wait_shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
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
        operator_namespace: common.operator_namespace.clone(),
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

    let identity = args.leader_identity.unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "sso-operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let election = LeaderElection::new(
        &common.operator_namespace,
        "sso-operator-controller",
        identity,
    );
    let acquired = tokio::select! {
        r = election.acquire(client.clone()) => Some(r),
        () = wait_shutdown(shutdown.clone()) => None,
    };
    let Some((leading, releaser)) = acquired else {
        return Ok(());
    };
    let lost = leading.clone();
    controller::run(client, settings, metrics, leading, wait_shutdown(shutdown)).await;
    releaser.release().await;
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
