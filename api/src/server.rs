//! Binding and serving. Each accepted connection is served by hyper's HTTP/1 with a header-read timeout (a
//! client that trickles its headers, or sends none, is cut off), keep-alive connections idle for
//! `api.keep_alive_timeout_ms` are closed, and at most `api.max_connections` are open at once (lowered at
//! start to fit the file limit): one more replaces the longest-idle connection — one with no request in
//! flight — so a flood of slow or idle sockets can neither exhaust file descriptors nor lock out `/health`.
//! Shutdown stops accepting, lets in-flight requests finish (each bounded by `api.request_timeout_ms`) and
//! stops background work.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::conn::{Conn, ConnHandle};
use crate::error::Error;
use crate::routes::router;
use crate::state::AppState;

/// File descriptors kept free for everything but client connections (database pools, RPC, logs).
const FD_RESERVE: usize = 128;

/// Binds `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (None where that is not readable).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `configured`, lowered so that the connections plus [`FD_RESERVE`] fit in the file limit.
pub(crate) fn connection_cap(configured: usize, fd_limit: Option<usize>) -> usize {
    match fd_limit {
        Some(limit) => {
            let room = if limit > 2 * FD_RESERVE {
                limit - FD_RESERVE
            } else {
                limit / 2
            };
            configured.min(room.max(1))
        }
        None => configured,
    }
}

/// The open connections, for the cap and the idle timeout.
struct Registry {
    cap: usize,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection, first evicting the longest-idle one when at the cap. None: at the cap
    /// and every connection has a request in flight (the new one is refused).
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut conns = self.lock();
        if conns.len() >= self.cap {
            let victim = conns
                .iter()
                .filter(|(_, c)| c.evictable())
                .min_by_key(|(_, c)| c.last_active.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(c) = conns.remove(&victim) {
                c.evict.cancel();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            served: AtomicU64::new(0),
            evict: CancellationToken::new(),
        });
        conns.insert(id, conn.clone());
        Some(Slot {
            registry: self.clone(),
            id,
            conn,
        })
    }

    /// Drops keep-alive connections idle for longer than `idle`.
    fn reap_idle(&self, idle: Duration) {
        let limit = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        let mut conns = self.lock();
        conns.retain(|_, c| {
            let idle_for = now.saturating_sub(c.last_active.load(Ordering::Relaxed));
            let reap = c.served.load(Ordering::Relaxed) > 0
                && c.in_flight.load(Ordering::Acquire) == 0
                && idle_for >= limit;
            if reap {
                c.evict.cancel();
            }
            !reap
        });
    }

    /// Drops one idle connection (after `accept` ran out of file descriptors).
    fn evict_one(&self) {
        let mut conns = self.lock();
        let victim = conns
            .iter()
            .filter(|(_, c)| c.evictable())
            .min_by_key(|(_, c)| c.last_active.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        if let Some(c) = victim.and_then(|id| conns.remove(&id)) {
            c.evict.cancel();
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A registered connection; unregisters on drop.
struct Slot {
    registry: Arc<Registry>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Marks a request in flight on its connection while alive.
struct Busy {
    registry: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Busy {
    fn new(registry: Arc<Registry>, conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self { registry, conn }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .last_active
            .store(self.registry.now_ms(), Ordering::Relaxed);
        self.conn.served.fetch_add(1, Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves the router on `listener` until `shutdown` is cancelled (see the module doc).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let cfg = state.config().clone();
    if state.inner.tokens.is_empty() {
        tracing::warn!(
            "no [[api.tokens]] configured: only /health, /ready and the dashboard page will answer"
        );
    }
    let fd_limit = open_files_limit();
    let cap = connection_cap(cfg.max_connections, fd_limit);
    if cap < cfg.max_connections {
        tracing::warn!(
            configured = cfg.max_connections,
            cap,
            fd_limit = fd_limit.unwrap_or_default(),
            "api.max_connections lowered to fit the open-files limit"
        );
    }
    tracing::info!(%addr, tokens = state.inner.tokens.len(), max_connections = cap, "API listening");
    let app = router(state.clone());
    let registry = Arc::new(Registry {
        cap,
        epoch: Instant::now(),
        next_id: AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(cfg.header_read_timeout_ms))
        .keep_alive(cfg.keep_alive_timeout_ms > 0)
        .max_buf_size(64 * 1024);
    let tasks = TaskTracker::new();
    // Graceful stop of every connection (not eviction): cancelled once `shutdown` is.
    let graceful = CancellationToken::new();

    if cfg.keep_alive_timeout_ms > 0 {
        let idle = Duration::from_millis(cfg.keep_alive_timeout_ms);
        let registry = registry.clone();
        let stop = graceful.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(
                (idle / 4).clamp(Duration::from_millis(10), Duration::from_millis(500)),
            );
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => registry.reap_idle(idle),
                }
            }
        });
    }

    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (or another per-connection error): free one and back off
                    // briefly, instead of spinning on a failing accept.
                    tracing::warn!(error = %e, open = registry.len(), "accept failed");
                    registry.evict_one();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let Some(slot) = registry.admit() else {
            tracing::debug!(%peer, "connection refused: at api.max_connections with every connection busy");
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!(error = %e, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        let reg = registry.clone();
        let conn_state = slot.conn.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::new(reg.clone(), conn_state.clone());
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(ConnHandle(conn_state.clone()));
            let app = app.clone();
            async move {
                let resp = match app.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = http.serve_connection(TokioIo::new(tcp), service);
        let graceful = graceful.clone();
        tasks.spawn(async move {
            let evict = slot.conn.evict.clone();
            tokio::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                // Evicted: no request in flight, so dropping the connection loses nothing.
                _ = evict.cancelled() => {}
                _ = graceful.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.cancel();
    tasks.close();
    let deadline = Duration::from_millis(cfg.request_timeout_ms) + Duration::from_secs(1);
    if tokio::time::timeout(deadline, tasks.wait()).await.is_err() {
        tracing::warn!(
            open = registry.len(),
            "connections still open at the shutdown deadline; dropping them"
        );
    }
    state.shutdown_background();
    tracing::info!(%addr, "API stopped");
    Ok(())
}

/// [`bind`] then [`serve`].
pub async fn serve_addr(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    serve(bind(addr).await?, state, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::connection_cap;

    #[test]
    fn cap_fits_the_file_limit() {
        assert_eq!(connection_cap(512, Some(1024)), 512);
        assert_eq!(connection_cap(2048, Some(1024)), 1024 - 128);
        assert_eq!(connection_cap(512, Some(200)), 100);
        assert_eq!(connection_cap(512, None), 512);
    }
}
