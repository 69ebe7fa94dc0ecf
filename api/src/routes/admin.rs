//! `POST /admin/replay`: re-scan a block range in the background through the indexer's own replay path
//! (idempotent: an indexed range adds no rows). One replay at a time; `GET /admin/replay` shows it.
//!
//! `POST /admin/webhooks/{id}/redeliver`: queue a dead (or delivered) webhook delivery again.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use payouts_indexer::replay::replay;
use payouts_store::webhooks::{redeliver, Redelivery};

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::model::{ReplayRequest, ReplayState, ReplayView, WebhookDeliveryView};
use crate::routes::send::{parse_body, require_json};
use crate::state::AppState;

fn update(state: &AppState, id: u64, f: impl FnOnce(&mut ReplayView)) {
    let mut slot = state
        .inner
        .replay
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = slot.as_mut().filter(|v| v.id == id) {
        f(v);
    }
}

/// Starts replaying blocks `from..=to` (needs the `admin` scope). Answers 202 at once with the job; its
/// progress shows in `GET /admin/replay` and `/status`.
#[utoipa::path(
    post,
    path = "/admin/replay",
    tag = "admin",
    request_body = ReplayRequest,
    responses(
        (status = 202, description = "Replay started", body = ReplayView),
        (status = 400, description = "Invalid range or JSON", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 409, description = "A replay is already running", body = ErrorBody),
        (status = 501, description = "This process has no indexer configuration", body = ErrorBody),
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
    let Some(indexer) = state.inner.indexer.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "replay_unavailable",
            "this process has no indexer configuration ([indexer]); run the replay where the indexer is configured",
        ));
    };
    let id = state.inner.replay_seq.fetch_add(1, Ordering::Relaxed) + 1;
    let view = ReplayView {
        id,
        from: req.from,
        to: req.to,
        dry_run: req.dry_run,
        state: ReplayState::Running,
        progress_height: None,
        started_at: Utc::now(),
        finished_at: None,
        blocks: 0,
        events: 0,
        new_claims: 0,
        error: None,
    };
    {
        let mut slot = state
            .inner
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(running) = slot.as_ref().filter(|v| v.state == ReplayState::Running) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "replay_running",
                format!(
                    "replay {} of blocks {}..={} is still running",
                    running.id, running.from, running.to
                ),
            ));
        }
        *slot = Some(view.clone());
    }
    tracing::info!(by = %principal.name, from = req.from, to = req.to, dry_run = req.dry_run, "replay requested");
    let bg = state.clone();
    let cancel = state.inner.background.clone();
    tokio::spawn(async move {
        let progress_state = bg.clone();
        let progress = move |h: u64| update(&progress_state, id, |v| v.progress_height = Some(h));
        let pool = bg.inner.pool.clone();
        let run = replay(&pool, &indexer, req.from, req.to, req.dry_run, progress);
        let result = tokio::select! {
            r = run => Some(r),
            () = cancel.cancelled() => None,
        };
        update(&bg, id, |v| {
            v.finished_at = Some(Utc::now());
            match result {
                Some(Ok(report)) => {
                    v.state = ReplayState::Done;
                    v.blocks = report.blocks;
                    v.events = report.events;
                    v.new_claims = report.new_claims;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "replay failed");
                    v.state = ReplayState::Failed;
                    v.error = Some(e.to_string());
                }
                None => {
                    v.state = ReplayState::Failed;
                    v.error = Some("stopped: the server is shutting down".into());
                }
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// The most recent replay started through the API (needs the `admin` scope).
#[utoipa::path(
    get,
    path = "/admin/replay",
    tag = "admin",
    responses(
        (status = 200, description = "The most recent replay", body = ReplayView),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No replay was started", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn replay_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReplayView>, ApiError> {
    state.inner.tokens.authorize(&headers, Scope::Admin)?;
    let view = state
        .inner
        .replay
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    view.map(Json)
        .ok_or_else(|| ApiError::not_found("no replay was started in this process"))
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
