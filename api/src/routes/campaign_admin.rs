//! A campaign's state and its second person: `GET /campaigns/{id}` (scope `read`: rows by status, paid total)
//! and `POST /admin/campaigns/{id}/approve` / `…/reject` (scope `approve`, never the creator's token; see
//! `payouts_store::campaigns` for the gate).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payouts_store::campaigns::summary::{claim_counts, is_settled, list_campaigns, ClaimCounts};
use payouts_store::campaigns::{
    approve_campaign, get_campaign, reject_campaign, Campaign, Decision,
};
use payouts_store::{AsyncPgConnection, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::campaigns::view::{CampaignPage, CampaignSummary};
use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::routes::status::authorize_read;
use crate::state::AppState;

pub(crate) fn campaign_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(raw) = id.map_err(|e| ApiError::bad_request("invalid_id", e.body_text()))?;
    positive(&raw).ok_or_else(|| {
        ApiError::bad_request("invalid_id", "campaign id must be a positive whole number")
    })
}

fn positive(raw: &str) -> Option<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && !raw.starts_with('0') && raw.bytes().all(|b| b.is_ascii_digit()))
}

/// Settled campaigns' counts kept at most (then the cache starts over).
const SETTLED_CACHE: usize = 10_000;

/// The summaries of `campaigns`, with their claims counted in one query (settled campaigns' counts from the
/// cache while their `updated_at` has not moved; see `payouts_store::campaigns::summary`).
pub(crate) async fn summaries(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    campaigns: Vec<Campaign>,
) -> Result<Vec<CampaignSummary>, ApiError> {
    let mut counts: HashMap<i64, ClaimCounts> = HashMap::new();
    let mut wanted = Vec::new();
    {
        let cache = state
            .inner
            .settled_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in &campaigns {
            match cache.get(&c.id) {
                Some((at, n)) if *at == c.updated_at => {
                    counts.insert(c.id, *n);
                }
                _ => wanted.push(c.id),
            }
        }
    }
    if !wanted.is_empty() {
        let fresh = claim_counts(conn, &wanted).await?;
        let mut cache = state
            .inner
            .settled_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in campaigns.iter().filter(|c| wanted.contains(&c.id)) {
            let n = fresh.get(&c.id).copied().unwrap_or_default();
            if is_settled(c.status, &n) {
                if cache.len() >= SETTLED_CACHE {
                    cache.clear();
                }
                cache.insert(c.id, (c.updated_at, n));
            }
            counts.insert(c.id, n);
        }
    }
    Ok(campaigns
        .into_iter()
        .map(|c| {
            let n = counts.remove(&c.id).unwrap_or_default();
            CampaignSummary::new(c, n)
        })
        .collect())
}

/// `GET /campaigns` query. Empty values count as absent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CampaignsQuery {
    /// `next_cursor` of the previous page: campaigns with a smaller id. `cursor` is accepted too.
    #[serde(alias = "cursor")]
    pub before: Option<String>,
    /// Page size (default `api.default_page_size`, at most `api.max_page_size`).
    pub limit: Option<String>,
}

/// Campaigns, newest first; keyset pagination on the campaign id.
#[utoipa::path(
    get,
    path = "/campaigns",
    tag = "read",
    params(CampaignsQuery),
    responses(
        (status = 200, description = "One page", body = CampaignPage),
        (status = 400, description = "Invalid cursor or limit", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CampaignsQuery>, QueryRejection>,
) -> Result<Json<CampaignPage>, ApiError> {
    authorize_read(&state, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let cfg = state.config();
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(positive(v).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "before: must be a positive whole number")
        })?),
    };
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => i64::from(cfg.default_page_size),
        Some(v) => positive(v)
            .filter(|n| *n <= i64::from(cfg.max_page_size))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("limit: a whole number from 1 to {}", cfg.max_page_size),
                )
            })?,
    };
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let rows = list_campaigns(&mut conn, before, limit).await?;
    let next_cursor = if rows.len() as i64 == limit {
        rows.last().map(|c| c.id.to_string())
    } else {
        None
    };
    let campaigns = summaries(&state, &mut conn, rows).await?;
    Ok(Json(CampaignPage {
        campaigns,
        next_cursor,
    }))
}

/// One campaign and its progress.
#[utoipa::path(
    get,
    path = "/campaigns/{id}",
    tag = "read",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignSummary),
        (status = 400, description = "The id is not a positive whole number", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignSummary>, ApiError> {
    authorize_read(&state, &headers)?;
    let id = campaign_id(id)?;
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let campaign = get_campaign(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))?;
    let mut one = summaries(&state, &mut conn, vec![campaign]).await?;
    one.pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))
}

/// What an approval or a rejection answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// The campaign after the decision.
    pub campaign: CampaignSummary,
    /// Claims released (`held → pending`) or failed (`held → failed`).
    pub claims_changed: usize,
}

/// Optional body of `POST /admin/campaigns/{id}/reject`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (at most 500 characters, no control characters); stored and shown as `reject_reason`.
    pub reason: Option<String>,
}

/// Longest rejection reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Releases a campaign awaiting approval to the distributor (scope `approve`; never the creator's token).
#[utoipa::path(
    post,
    path = "/admin/campaigns/{id}/approve",
    tag = "admin",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Approved: its held claims are pending now", body = DecisionView),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `approve` scope, or created the campaign", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "`not_awaiting_approval`: already decided, or never needed approval", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Approve)?;
    let id = campaign_id(id)?;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let decision = found(id, approve_campaign(&mut conn, id, &principal.name).await)?;
    answer(&state, &mut conn, decision, "approve").await
}

/// Rejects a campaign awaiting approval: its held claims fail unpaid (scope `approve`; never the creator's
/// token). The body is optional.
#[utoipa::path(
    post,
    path = "/admin/campaigns/{id}/reject",
    tag = "admin",
    params(("id" = i64, Path, description = "Campaign id")),
    request_body(content = Option<RejectRequest>, description = "Optional: why", content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected: its held claims failed", body = DecisionView),
        (status = 400, description = "Invalid body or reason", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `approve` scope, or created the campaign", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "`not_awaiting_approval`: already decided, or never needed approval", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Approve)?;
    let id = campaign_id(id)?;
    let req: RejectRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RejectRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_body",
                format!("expected {{\"reason\": \"…\"}}: {e}"),
            )
        })?
    };
    let reason = match req.reason.as_deref().map(str::trim) {
        None | Some("") => "rejected through the API".to_string(),
        Some(r) if r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control) => {
            return Err(ApiError::bad_request(
                "invalid_reason",
                format!("reason: at most {MAX_REASON_CHARS} characters, no control characters"),
            ));
        }
        Some(r) => r.to_string(),
    };
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let decision = found(
        id,
        reject_campaign(&mut conn, id, &principal.name, &reason).await,
    )?;
    answer(&state, &mut conn, decision, "reject").await
}

/// A missing campaign is a 404, not a store failure.
fn found(id: i64, r: Result<Decision, StoreError>) -> Result<Decision, ApiError> {
    match r {
        Err(StoreError::NotFound(_)) => Err(ApiError::not_found(format!("no campaign {id}"))),
        other => Ok(other?),
    }
}

async fn answer(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    decision: Decision,
    verb: &str,
) -> Result<Response, ApiError> {
    match decision {
        Decision::Done { campaign, claims } => {
            let mut one = summaries(state, conn, vec![*campaign]).await?;
            let campaign = one.pop().ok_or_else(|| ApiError::internal(&"campaign vanished"))?;
            Ok((
                StatusCode::OK,
                Json(DecisionView {
                    campaign,
                    claims_changed: claims,
                }),
            )
                .into_response())
        }
        Decision::SelfApproval => Err(ApiError::forbidden(format!(
            "the token that created a campaign cannot {verb} it; a second person's token with the `approve` scope must"
        ))),
        Decision::NotAwaiting(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_awaiting_approval",
            format!("the campaign is `{status}`, not awaiting approval"),
        )),
    }
}
