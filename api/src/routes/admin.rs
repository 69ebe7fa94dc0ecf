//! `POST /admin/replay`: queue a re-scan of a block range as a `replay_jobs` row, which an indexer process
//! runs through the indexer's own replay path (idempotent: an indexed range adds no rows). The API runs no
//! indexer code. One replay at a time across the service; `GET /admin/replay` shows the latest.
//!
//! `POST /admin/webhooks/{id}/redeliver`: queue a dead (or delivered) webhook delivery again.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payouts_store::replay_jobs::{enqueue, latest, Enqueued, ReplayJob, ReplayJobState};
use payouts_store::webhooks::{redeliver, Redelivery};

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::model::{ReplayRequest, ReplayState, ReplayView, WebhookDeliveryView};
use crate::routes::send::{parse_body, require_json};
use crate::state::AppState;

/// The view of a stored job.
pub(crate) fn job_view(j: ReplayJob) -> ReplayView {
    ReplayView {
        id: u64::try_from(j.id).unwrap_or(0),
        from: j.from_height,
        to: j.to_height,
        dry_run: j.dry_run,
        state: match j.state {
            ReplayJobState::Queued => ReplayState::Queued,
            ReplayJobState::Running => ReplayState::Running,
            ReplayJobState::Done => ReplayState::Done,
            ReplayJobState::Failed => ReplayState::Failed,
        },
        requested_by: j.requested_by,
        progress_height: j.progress_height,
        requested_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
        blocks: j.blocks,
        events: j.events,
        new_claims: j.new_claims,
        error: j.error,
    }
}

/// Queues a replay of blocks `from..=to` (needs the `admin` scope). Answers 202 at once with the job; an
/// indexer process (`payouts indexer`, `payouts run`) runs it, and its progress shows in
/// `GET /admin/replay` and `/status`.
#[utoipa::path(
    post,
    path = "/admin/replay",
    tag = "admin",
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Replay queued for the indexer", body = ReplayView),
        (status = 400, description = "Invalid range or JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 409, description = "A replay is already queued or running", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn start_replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Admin)?;
    require_json(&headers)?;
    let req: ReplayRequest = parse_body(body, state.config().max_body_bytes)?;
    if req.from > req.to {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("from ({}) is after to ({})", req.from, req.to),
        ));
    }
    let max = state.config().max_replay_blocks;
    if req.to - req.from >= max {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("at most {max} blocks per replay (api.max_replay_blocks)"),
        ));
    }
    if i64::try_from(req.to).is_err() {
        return Err(ApiError::bad_request(
            "invalid_range",
            format!("to ({}) is beyond any block height", req.to),
        ));
    }
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let queued = enqueue(
        &mut conn,
        &state.inner.stream,
        req.from,
        req.to,
        req.dry_run,
        &principal.name,
    )
    .await?;
    match queued {
        Enqueued::Queued(job) => {
            tracing::info!(by = %principal.name, job = job.id, from = req.from, to = req.to, dry_run = req.dry_run, "replay queued");
            Ok((StatusCode::ACCEPTED, Json(job_view(job))).into_response())
        }
        Enqueued::Busy(active) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "replay_running",
            format!(
                "replay {} of blocks {}..={} is still {}",
                active.id,
                active.from_height,
                active.to_height,
                if active.state == ReplayJobState::Queued {
                    "queued"
                } else {
                    "running"
                }
            ),
        )),
    }
}

/// The most recent replay (needs the `admin` scope).
#[utoipa::path(
    get,
    path = "/admin/replay",
    tag = "admin",
    responses(
        (status = 200, description = "The most recent replay", body = ReplayView),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No replay was ever requested", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replay_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReplayView>, ApiError> {
    state.inner.tokens.authorize(&headers, Scope::Admin)?;
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    latest(&mut conn)
        .await?
        .map(|j| Json(job_view(j)))
        .ok_or_else(|| ApiError::not_found("no replay was ever requested"))
}

/// Queues webhook delivery `id` again with a fresh set of attempts (needs the `admin` scope): it goes out
/// next, in its creation order among the endpoint's pending deliveries. Meant for dead deliveries (listed in
/// `/status`); a delivered one is sent again too. No request body.
#[utoipa::path(
    post,
    path = "/admin/webhooks/{id}/redeliver",
    tag = "admin",
    params(("id" = i64, Path, description = "Delivery id (`webhooks.dead[].id` in `/status`)")),
    responses(
        (status = 202, description = "Queued again; the delivery as it is now (status `pending`)", body = WebhookDeliveryView),
        (status = 400, description = "The id is not a positive whole number", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 409, description = "`already_pending`: the delivery is still waiting to go out", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn redeliver_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Admin)?;
    let Path(raw) = id.map_err(|e| ApiError::bad_request("invalid_id", e.body_text()))?;
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && !raw.starts_with('0') && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_id", "delivery id must be a positive whole number")
        })?;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let outcome = redeliver(&mut conn, id).await?;
    drop(conn);
    match outcome {
        Redelivery::Queued(d) => {
            tracing::info!(
                by = %principal.name,
                id,
                endpoint = %d.endpoint,
                event_type = %d.event_type,
                "webhook redelivery queued"
            );
            // The next /status shows it pending, not dead.
            crate::routes::status::invalidate(&state).await;
            Ok((StatusCode::ACCEPTED, Json(WebhookDeliveryView::from(d))).into_response())
        }
        Redelivery::AlreadyPending(d) => {
            tracing::info!(by = %principal.name, id, endpoint = %d.endpoint, "webhook redelivery requested: already pending");
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_pending",
                format!(
                    "delivery {id} to {} is still pending ({} attempts so far); it goes out on its own",
                    d.endpoint, d.attempts
                ),
            ))
        }
        Redelivery::NotFound => {
            tracing::info!(by = %principal.name, id, "webhook redelivery requested: no such delivery");
            Err(ApiError::not_found(format!(
                "webhook delivery {id} does not exist"
            )))
        }
    }
}
