//! The public listener: HTTP/1.1 connections served by hyper with the limits `axum::serve`
//! lacks — a header-read timeout, an idle timeout and a connection limit — and a graceful
//! shutdown that lets requests in flight finish.
//!
//! Each connection is in one of three phases, tracked from what it reads and from its
//! requests: receiving a request's headers (from its first byte; for a new connection, from
//! the connection itself), handling a request and writing its response (no limit here:
//! handlers bound their own work), or idle between requests. A connection that takes longer than the header-read timeout to
//! send its headers, or that stays idle longer than the idle timeout, is closed.
//!
//! hyper's own `header_read_timeout` is not used: its clock also runs while a kept-alive
//! connection waits for its next request, so a header timeout short enough to stop slow
//! clients would also close the idle connections a reverse proxy keeps for reuse.
//!
//! At the connection limit, new connections wait in the listen backlog; to make room, the
//! connection idle the longest is closed (as nginx reuses idle keep-alive connections), so
//! only connections that are sending headers or being answered hold a slot for long, and
//! those are bounded by the header-read timeout and the handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

/// Limits of the public listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest time a client may take to send a request's headers, from their first byte
    /// (for a new connection, from connecting).
    pub header_read_timeout: Duration,
    /// Longest time a connection may stay open between two requests.
    pub idle_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connected, nothing received yet.
    Fresh,
    /// Receiving a request's headers.
    Headers,
    /// A request is being handled.
    Handling,
    /// Between requests.
    Idle,
}

/// What one connection is doing, shared by its stream, its service and its watchdog.
struct Activity {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
    /// Set when the connection is to be closed to make room for a new one.
    reclaim: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new((Phase::Fresh, Instant::now())),
            changed: Notify::new(),
            reclaim: AtomicBool::new(false),
        }
    }

    fn get(&self) -> (Phase, Instant) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = (phase, Instant::now());
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts sending a request (a new connection's
    /// first request is timed from connecting).
    fn bytes_read(&self) {
        let mut guard = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        match guard.0 {
            Phase::Idle => *guard = (Phase::Headers, Instant::now()),
            Phase::Fresh => guard.0 = Phase::Headers,
            Phase::Headers | Phase::Handling => return,
        }
        drop(guard);
        self.changed.notify_one();
    }
}

/// A TCP stream that reports what it reads to its connection's [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A response body that marks its connection idle once hyper is done with it (written out,
/// or abandoned).
struct Reported {
    body: Body,
    activity: Arc<Activity>,
}

impl Drop for Reported {
    fn drop(&mut self) {
        self.activity.set(Phase::Idle);
    }
}

impl http_body::Body for Reported {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The application, reporting when a request starts and when its response is written.
#[derive(Clone)]
struct Tracked {
    app: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<Reported>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Reported>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.set(Phase::Handling);
        let answer = self.app.call(request);
        let activity = self.activity.clone();
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Reported { body, activity }))
        })
    }
}

/// Open connections, to find the one idle the longest when the limit is reached.
type Registry = Arc<Mutex<HashMap<u64, Arc<Activity>>>>;

/// Asks the connection idle the longest to close; false when none is idle.
fn reclaim_idle(registry: &Registry) -> bool {
    let registry = registry.lock().unwrap_or_else(|e| e.into_inner());
    let oldest = registry
        .values()
        .filter(|a| !a.reclaim.load(Ordering::Relaxed))
        .filter_map(|a| {
            let (phase, since) = a.get();
            (phase == Phase::Idle).then_some((since, a))
        })
        .min_by_key(|(since, _)| *since);
    match oldest {
        Some((_, activity)) => {
            activity.reclaim.store(true, Ordering::Relaxed);
            activity.changed.notify_one();
            true
        }
        None => false,
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting, lets the requests in flight finish and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let registry: Registry = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let ids = AtomicU64::new(0);
    let mut last_full_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let reclaimed = reclaim_idle(&registry);
                if last_full_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    last_full_warning = Some(Instant::now());
                    tracing::warn!(
                        max_connections = max,
                        reclaimed_idle = reclaimed,
                        "the connection limit (--max-connections) is reached: new connections \
                         wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause briefly rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, activity.clone());
        let app = app.clone();
        let registry = registry.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, app, activity, limits, stop).await;
            registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it is closed.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Serves one connection, closing it when it breaks a limit, is reclaimed, or (after the
/// request in flight) when the server stops.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    activity: Arc<Activity>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = Tracked {
        app: TowerToHyperService::new(app),
        activity: activity.clone(),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // The header timeout is enforced below (see the module documentation).
    http.header_read_timeout(None);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let changed = activity.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if activity.reclaim.load(Ordering::Relaxed) && activity.get().0 == Phase::Idle {
            tracing::debug!("closing an idle connection to make room for a new one");
            return;
        }
        let (phase, since) = activity.get();
        let deadline = match phase {
            Phase::Fresh | Phase::Headers => Some(since + limits.header_read_timeout),
            Phase::Idle => Some(since + limits.idle_timeout),
            Phase::Handling => None,
        };
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut changed => {}
            () = expired => {
                if activity.get() != (phase, since) {
                    continue;
                }
                // Closed without an answer: a slow client gets no 408 it would not read.
                match phase {
                    Phase::Fresh | Phase::Headers => tracing::debug!(
                        "closing a connection that did not send its request headers in time"
                    ),
                    _ => tracing::debug!("closing an idle connection"),
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                // A connection that has sent nothing yet is closed at once rather than kept
                // until its header timeout; one with a request under way finishes it.
                if activity.get().0 == Phase::Fresh {
                    return;
                }
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
