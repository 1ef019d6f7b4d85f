//! The operations endpoints every role serves: `/healthz`, `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

/// A readiness condition besides [`Ops::set_ready`]: `Err` says why the process is not ready.
/// Called on every `/readyz`, so it must be cheap (read a cached state).
pub type ReadinessCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Shared state of the operations endpoints.
#[derive(Clone)]
pub struct Ops {
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    alive: Arc<AtomicBool>,
    checks: Arc<std::sync::RwLock<Vec<ReadinessCheck>>>,
}

impl Ops {
    /// Serves `registry`; `/readyz` answers 503 until [`Ops::set_ready`] is called, `/healthz`
    /// answers ok until [`Ops::set_dead`] is called.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
            ready: Arc::new(AtomicBool::new(false)),
            alive: Arc::new(AtomicBool::new(true)),
            checks: Arc::default(),
        }
    }

    /// Makes `/healthz` fail for good: a role of the process stopped and the process is
    /// exiting (a liveness probe restarts it if it does not).
    pub fn set_dead(&self) {
        self.alive.store(false, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
    }

    /// Adds a condition `/readyz` checks (once ready): while it fails, `/readyz` answers 503
    /// with its reason.
    pub fn add_readiness_check(&self, check: ReadinessCheck) {
        self.checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(check);
    }

    /// Marks the process ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The axum router of the endpoints.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Binds `addr` and serves until `shutdown` completes; returns the bound address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        });
        Ok((bound, task))
    }
}

async fn healthz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.alive.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "a role of this process stopped; it is exiting",
        )
    }
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    if !ops.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_owned());
    }
    let checks = ops.checks.read().unwrap_or_else(|e| e.into_inner());
    match checks.iter().find_map(|check| check().err()) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        None => (StatusCode::OK, "ok".to_owned()),
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &ops.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_fails_once_a_role_stopped() {
        let ops = Ops::new(Registry::default());
        let (addr, _task) = ops
            .serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
            .await
            .unwrap();
        let status = |path: &'static str| async move {
            reqwest::get(format!("http://{addr}{path}"))
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        ops.set_ready(true);
        assert_eq!(status("/healthz").await, 200);
        assert_eq!(status("/readyz").await, 200);
        ops.set_dead();
        assert_eq!(status("/healthz").await, 503);
        assert_eq!(status("/readyz").await, 503);
    }
}
