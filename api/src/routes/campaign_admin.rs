//! A campaign's state and its second person: `GET /campaigns/{id}` (scope `read`: rows by status, paid total)
//! and `POST /admin/campaigns/{id}/approve` / `…/reject` (scope `approve`, never the creator's token; see
//! `payouts_store::campaigns` for the gate).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payouts_store::campaigns::{
    approve_campaign, campaign_progress, get_campaign, reject_campaign, Campaign, Decision,
    StatusTotal,
};
use payouts_store::StoreError;
use serde::Serialize;

use crate::config::Scope;
use crate::error::ApiError;
use crate::state::AppState;

/// A campaign and its claims by status.
#[derive(Debug, Serialize)]
pub struct CampaignView {
    /// The campaign.
    pub campaign: Campaign,
    /// Its claims by status: count and amount.
    pub claims: Vec<StatusTotal>,
}

fn campaign_id(id: Result<Path<String>, PathRejection>) -> Result<i64, ApiError> {
    let Path(raw) = id.map_err(|e| ApiError::bad_request("invalid_id", e.body_text()))?;
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && !raw.starts_with('0') && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_id", "campaign id must be a positive whole number")
        })
}

/// `GET /campaigns/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CampaignView>, ApiError> {
    state.inner.tokens.authorize(&headers, Scope::Read)?;
    let id = campaign_id(id)?;
    let mut conn = payouts_store::get(&state.inner.read_pool).await?;
    let campaign = get_campaign(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))?;
    let claims = campaign_progress(&mut conn, id).await?;
    Ok(Json(CampaignView { campaign, claims }))
}

/// `POST /admin/campaigns/{id}/approve`: releases a held campaign to the distributor.
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Approve)?;
    let id = campaign_id(id)?;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let decision = found(id, approve_campaign(&mut conn, id, &principal.name).await)?;
    answer(decision, "approve")
}

/// `POST /admin/campaigns/{id}/reject`: its held claims fail unpaid.
pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Approve)?;
    let id = campaign_id(id)?;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let decision = found(
        id,
        reject_campaign(&mut conn, id, &principal.name, "rejected through the API").await,
    )?;
    answer(decision, "reject")
}

/// A missing campaign is a 404, not a store failure.
fn found(id: i64, r: Result<Decision, StoreError>) -> Result<Decision, ApiError> {
    match r {
        Err(StoreError::NotFound(_)) => Err(ApiError::not_found(format!("no campaign {id}"))),
        other => Ok(other?),
    }
}

fn answer(decision: Decision, verb: &str) -> Result<Response, ApiError> {
    match decision {
        Decision::Done { campaign, claims } => Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "campaign": campaign, "claims_changed": claims })),
        )
            .into_response()),
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
