//! The server (data plane): serves the compiled configuration it watches — SCIM 2.0, the SAML
//! service provider and forward-auth. Stateless: every replica shares
//! the identity store.

pub mod auth;
pub mod config_index;
pub mod figures;
pub mod listener;
pub mod metrics;
pub mod oidc;
pub mod saml;
pub mod scim;
pub mod sessions;
pub mod single_logout;
pub mod tenants;
pub mod web;

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;

use crate::ops::Ops;
use crate::store::Store;

/// Settings of the server role.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address of the public endpoints.
    pub listen: SocketAddr,
    /// Identity store URL (`sqlite://PATH` or `postgres://…`).
    pub database_url: String,
    /// How the identity store is used (the database timeout).
    pub store: crate::store::Options,
    /// Limits of the public listener.
    pub limits: listener::Limits,
    /// Namespace of the compiled configuration and the session keys (the only Secrets the
    /// server reads).
    pub config_namespace: String,
    /// Prometheus metrics.
    pub metrics: metrics::ServerMetrics,
    /// The installation's redirect allow-list (`--allowed-redirect`).
    pub allowed_redirects: Vec<String>,
}

/// The public router: SCIM, SAML, forward-auth and OpenID Connect.
pub fn router(
    state: scim::ScimState,
    metrics: metrics::ServerMetrics,
    allowed_redirects: Vec<String>,
) -> Router {
    let saml_state = saml::SamlState {
        configs: state.configs.clone(),
        store: state.store.clone(),
        figures: state.figures.clone(),
        metrics,
        verifications: std::sync::Arc::new(tokio::sync::Semaphore::new(
            saml::verification_permits(),
        )),
        allowed_redirects: std::sync::Arc::new(allowed_redirects),
    };
    scim::router(state)
        .merge(saml::router(saml_state.clone()))
        .merge(auth::router(saml_state.clone()))
        .merge(oidc::router(oidc::OidcState::new(saml_state)))
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    ops: Ops,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Store::connect_with(&settings.database_url, &settings.store)
        .await
        .context("could not open the identity store (--database-url)")?;
    // The store's state, checked once a second, is what /readyz reports: a database that
    // does not answer, or a SQLite file that was deleted or replaced.
    let checked = store.clone();
    ops.add_readiness_check(std::sync::Arc::new(move || checked.readiness()));
    let checking = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            checking.check_health().await;
        }
    });
    let (configs, drive) = config_index::ConfigIndex::watch(
        client.clone(),
        &settings.config_namespace,
        settings.metrics.clone(),
    );
    tokio::spawn(drive);
    configs.ready().await;
    tracing::info!(namespace = %settings.config_namespace, "watching the compiled configuration");
    // Tenants are bound to their IdentityProvider's UID (purging a replaced incarnation)
    // before they are served; deleted IdentityProviders' tenants are purged.
    let mut keeper = tenants::TenantKeeper::new(
        store.clone(),
        configs.clone(),
        client.clone(),
        settings.metrics.clone(),
    );
    keeper.bind_compiled().await;
    tokio::spawn(keeper.run());

    let purge_store = store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = purge_store.purge_expired().await {
                tracing::warn!(error = %e, "could not purge expired login state");
            }
        }
    });

    let figures = std::sync::Arc::new(figures::Figures::default());
    let publisher = figures.clone();
    let (publish_client, publish_store) = (client.clone(), store.clone());
    tokio::spawn(async move {
        publisher
            .publish_forever(
                publish_client,
                publish_store,
                std::time::Duration::from_secs(5),
            )
            .await
    });
    let app = router(
        scim::ScimState::new(store, configs, figures),
        settings.metrics.clone(),
        settings.allowed_redirects.clone(),
    );
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("could not listen on {}", settings.listen))?;
    tracing::info!(address = %listener.local_addr()?, "serving SCIM, SAML, forward-auth and OpenID Connect");
    ops.set_ready(true);
    listener::serve(listener, app, settings.limits, shutdown).await?;
    Ok(())
}
