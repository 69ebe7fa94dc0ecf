//! `GET /claims` (filtered, keyset-paginated, newest first) and `GET /claims/{id}`.

use std::str::FromStr;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use near_primitives::types::AccountId;
use payouts_store::api_queries::{list_claims, ClaimFilter};
use payouts_store::claims::get_claim;
use payouts_store::{ClaimId, ClaimStatus};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ErrorBody};
use crate::model::{ClaimPage, ClaimView};
use crate::routes::status::authorize_read;
use crate::state::AppState;

/// `GET /claims` query. Empty values count as absent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClaimsQuery {
    /// `held`, `pending`, `submitted`, `confirmed` or `failed`.
    pub status: Option<String>,
    /// Receiving account (exact).
    pub receiver: Option<String>,
    /// Token contract (exact).
    pub token: Option<String>,
    /// Campaign id: only that campaign's claims.
    pub campaign: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default `api.default_page_size`, at most `api.max_page_size`).
    pub limit: Option<String>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn parse_account(field: &str, v: &str) -> Result<String, ApiError> {
    AccountId::from_str(v).map(|a| a.to_string()).map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("{field}: not a valid NEAR account id ({e})"),
        )
    })
}

fn parse_positive(field: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && !v.starts_with('0') && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("{field}: must be a positive whole number"),
            )
        })
}

/// Claims, newest first, filtered by status, receiver and token; keyset pagination on the claim id.
#[utoipa::path(
    get,
    path = "/claims",
    tag = "read",
    params(ClaimsQuery),
    responses(
        (status = 200, description = "One page", body = ClaimPage),
        (status = 400, description = "Invalid filter, cursor or limit", body = ErrorBody),
        (status = 401, description = "`read_requires_token` is on and no valid token was sent", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ClaimsQuery>, QueryRejection>,
) -> Result<Json<ClaimPage>, ApiError> {
    authorize_read(&state, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let cfg = state.config();
    let status = present(&q.status)
        .map(|s| {
            ClaimStatus::from_str(s).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "status: must be one of held, pending, submitted, confirmed, failed",
                )
            })
        })
        .transpose()?;
    let receiver_id = present(&q.receiver)
        .map(|v| parse_account("receiver", v))
        .transpose()?;
    let token_contract = present(&q.token)
        .map(|v| parse_account("token", v))
        .transpose()?;
    let campaign_id = present(&q.campaign)
        .map(|v| parse_positive("campaign", v))
        .transpose()?;
    let before = present(&q.cursor)
        .map(|v| parse_positive("cursor", v))
        .transpose()?
        .map(ClaimId);
    let limit = match present(&q.limit) {
        None => i64::from(cfg.default_page_size),
        Some(v) => {
            let n = parse_positive("limit", v)?;
            if n > i64::from(cfg.max_page_size) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("limit: at most {}", cfg.max_page_size),
                ));
            }
            n
        }
    };
    let filter = ClaimFilter {
        status,
        receiver_id,
        token_contract,
        campaign_id,
        before,
        limit,
    };
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let rows = list_claims(&mut conn, &filter).await?;
    drop(conn);
    let next_cursor = if rows.len() as i64 == limit {
        rows.last().map(|c| c.id.0.to_string())
    } else {
        None
    };
    Ok(Json(ClaimPage {
        claims: rows.into_iter().map(ClaimView::from).collect(),
        next_cursor,
    }))
}

/// One claim.
#[utoipa::path(
    get,
    path = "/claims/{id}",
    tag = "read",
    params(("id" = i64, Path, description = "Claim id")),
    responses(
        (status = 200, description = "The claim", body = ClaimView),
        (status = 400, description = "The id is not a positive whole number", body = ErrorBody),
        (status = 404, description = "No such claim", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ClaimView>, ApiError> {
    authorize_read(&state, &headers)?;
    let Path(raw) = id.map_err(|e| ApiError::bad_request("invalid_id", e.body_text()))?;
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && !raw.starts_with('0') && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_id", "claim id must be a positive whole number")
        })?;
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let claim = get_claim(&mut conn, ClaimId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("claim {id} does not exist")))?;
    let transfer = payouts_store::transactions::claim_transfer(
        &mut conn,
        id,
        claim.current_tx_hash.as_deref(),
    )
    .await?;
    let mut view = ClaimView::from(claim);
    view.transfer = transfer.map(Into::into);
    Ok(Json(view))
}
