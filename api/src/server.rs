//! Binding and serving with graceful shutdown.

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::routes::router;
use crate::state::AppState;

/// Binds `addr`; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves the router on `listener` until `shutdown` is cancelled, then stops accepting, lets in-flight
/// requests finish (each is bounded by `api.request_timeout_ms`) and stops background work.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    if state.inner.tokens.is_empty() {
        tracing::warn!("no [[api.tokens]] configured: POST /send-ft and /admin/* will answer 401");
    }
    tracing::info!(%addr, tokens = state.inner.tokens.len(), "API listening");
    let app = router(state.clone());
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let stop = shutdown.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
        .map_err(Error::Serve);
    state.shutdown_background();
    tracing::info!(%addr, "API stopped");
    result
}

/// [`bind`] then [`serve`].
pub async fn serve_addr(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    serve(bind(addr).await?, state, shutdown).await
}
