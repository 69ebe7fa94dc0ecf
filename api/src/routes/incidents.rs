//! `GET /incidents` (read, like `/status`) and `POST /admin/incidents/{id}/clear` (scope `admin`).
//!
//! An incident is a payment on chain the store did not expect (store/src/incidents.rs); while one is open
//! the distributor signs nothing for its token. Clearing is the admin's statement that it was looked into:
//! payouts of the token resume with the next batch. The clearing token's name is recorded.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payouts_store::incidents::{clear_incident, list_incidents, Clearing};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::model::{IncidentList, IncidentView};
use crate::routes::status::authorize_read;
use crate::state::AppState;

/// Most incidents one `GET /incidents` returns.
const MAX_LISTED: i64 = 500;

/// `GET /incidents` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentsQuery {
    /// `true`: only incidents not cleared yet. Default `false` (every incident).
    pub open: Option<String>,
    /// At most this many (default and maximum 500), newest first.
    pub limit: Option<String>,
}

/// Incidents, newest first.
#[utoipa::path(
    get,
    path = "/incidents",
    tag = "read",
    params(IncidentsQuery),
    responses(
        (status = 200, description = "Incidents, newest first", body = IncidentList),
        (status = 400, description = "Invalid `open` or `limit`", body = ErrorBody),
        (status = 401, description = "`read_requires_token` is on and no valid token was sent", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<Json<IncidentList>, ApiError> {
    authorize_read(&state, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let open = match q.open.as_deref().filter(|s| !s.is_empty()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "open: must be `true` or `false`",
            ))
        }
    };
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => MAX_LISTED,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| {
                (1..=MAX_LISTED).contains(n)
                    && !v.starts_with('0')
                    && v.bytes().all(|b| b.is_ascii_digit())
            })
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("limit: must be a whole number from 1 to {MAX_LISTED}"),
                )
            })?,
    };
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let incidents = list_incidents(&mut conn, open, limit).await?;
    Ok(Json(IncidentList {
        incidents: incidents.into_iter().map(Into::into).collect(),
    }))
}

/// Clears incident `id` (needs the `admin` scope): payouts of its token (or of every token) resume with
/// the next batch, unless another incident is still open for it. No request body.
#[utoipa::path(
    post,
    path = "/admin/incidents/{id}/clear",
    tag = "admin",
    params(("id" = i64, Path, description = "Incident id (`incidents[].id` in `/status`)")),
    responses(
        (status = 200, description = "Cleared; the incident as it is now", body = IncidentView),
        (status = 400, description = "The id is not a positive whole number", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such incident", body = ErrorBody),
        (status = 409, description = "`already_cleared`", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn clear(
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
            ApiError::bad_request("invalid_id", "incident id must be a positive whole number")
        })?;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let outcome = clear_incident(&mut conn, id, &principal.name).await?;
    drop(conn);
    match outcome {
        Clearing::Cleared(i) => {
            tracing::warn!(by = %principal.name, id, kind = %i.kind, token = ?i.token_contract, "incident cleared");
            crate::routes::status::invalidate(&state).await;
            Ok((StatusCode::OK, Json(IncidentView::from(i))).into_response())
        }
        Clearing::AlreadyCleared(i) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_cleared",
            format!(
                "incident {id} was cleared by {} at {}",
                i.cleared_by.as_deref().unwrap_or("?"),
                i.cleared_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        )),
        Clearing::NotFound => Err(ApiError::not_found(format!("incident {id} does not exist"))),
    }
}
