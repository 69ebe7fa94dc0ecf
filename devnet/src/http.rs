//! The single HTTP port: JSON-RPC on `POST /`, neardata on `GET /v0/...`, plus nearcore's
//! `GET /status` and `GET /health`.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::shared::Shared;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", post(crate::rpc::handle))
        .route("/status", get(crate::rpc::http_status))
        .route("/health", get(|| async { "" }))
        .merge(crate::neardata::routes(shared.clone()))
        .with_state(shared)
}
