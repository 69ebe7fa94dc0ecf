//! `GET /health` (the process answers) and `GET /ready` (the database answers and the indexer keeps up).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use payouts_store::api_queries::ping;
use payouts_store::cursor::read_cursor;
use payouts_store::stalls::read_stall;

use crate::error::{ApiError, ErrorBody};
use crate::model::{HealthView, ReadyView};
use crate::routes::status::position;
use crate::state::AppState;

/// Liveness: answers while the process serves requests. Touches nothing else.
#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    responses((status = 200, description = "The process is alive", body = HealthView))
)]
pub async fn health() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

fn not_ready(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
}

/// Readiness: the database answers, the indexer has stored no stall (a block that does not chain onto its
/// cursor, or a block source failing for longer than `indexer.stuck_after_secs`), and (unless
/// `api.ready_max_lag_blocks = 0`) the indexer has committed a block and is at most that many blocks behind
/// the chain head.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "ops",
    responses(
        (status = 200, description = "Ready to serve", body = ReadyView),
        (status = 503, description = "Not ready; the message says why", body = ErrorBody),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<ReadyView>, ApiError> {
    let inner = &state.inner;
    let mut conn = payouts_store::get(&inner.read_pool)
        .await
        .map_err(|e| not_ready(format!("database: {}", ApiError::from(e).message)))?;
    ping(&mut conn)
        .await
        .map_err(|e| not_ready(format!("database: {}", ApiError::from(e).message)))?;
    if let Some(stall) = read_stall(&mut conn, &inner.stream).await? {
        return Err(not_ready(format!(
            "the indexer is stalled ({}) since {}: {}",
            stall.kind.as_str(),
            stall.since.to_rfc3339(),
            stall.reason
        )));
    }
    let max_lag = state.config().ready_max_lag_blocks;
    if max_lag == 0 {
        return Ok(Json(ReadyView {
            status: "ready".into(),
            lag_blocks: None,
        }));
    }
    let cursor = read_cursor(&mut conn, &inner.stream).await?;
    drop(conn);
    let Some(cursor) = cursor else {
        return Err(not_ready(format!(
            "the indexer has not committed a block yet (stream `{}`)",
            inner.stream
        )));
    };
    let (chain, indexer) = position(&state, Some(cursor.block_height)).await;
    let Some(lag) = indexer.lag_blocks else {
        return Err(not_ready(format!(
            "chain head unknown: {}",
            chain.error.unwrap_or_else(|| "no source".into())
        )));
    };
    if lag > max_lag {
        return Err(not_ready(format!(
            "the indexer is {lag} blocks behind the chain head (api.ready_max_lag_blocks = {max_lag})"
        )));
    }
    Ok(Json(ReadyView {
        status: "ready".into(),
        lag_blocks: Some(lag),
    }))
}
