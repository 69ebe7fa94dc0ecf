//! A campaign's failures: `GET /campaigns/{id}/failures.csv` (scope `read`), and
//! `POST /campaigns/{id}/retry-failed` (scope `send`), which re-queues the retryable ones (the rule and the
//! exactly-once argument are in `payouts_store::campaigns::retry`).

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payouts_store::campaigns::get_campaign;
use payouts_store::campaigns::retry::{retry_failed, retryable};
use payouts_store::campaigns::rows::{campaign_claims, CampaignClaim};
use payouts_store::{ClaimId, ClaimStatus, PgPool};
use serde::Serialize;
use utoipa::ToSchema;

use crate::campaigns::csv::cell;
use crate::campaigns::view::CampaignSummary;
use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::routes::campaign_admin::{campaign_id, summaries};
use crate::routes::status::authorize_read;
use crate::state::AppState;

/// Failed claims read per page while the CSV streams.
const PAGE: i64 = 1_000;

/// The CSV's header line.
pub const FAILURES_HEADER: &str = "row_key,receiver_id,amount,error,retryable\n";

fn csv_line(c: &CampaignClaim, registering: Option<bool>) -> String {
    let retry = retryable(c.last_error.as_deref(), c.retry_kind.as_deref()).given(registering);
    format!(
        "{},{},{},{},{}\n",
        cell(&c.row_key),
        cell(&c.receiver_id),
        c.amount,
        cell(c.last_error.as_deref().unwrap_or("")),
        retry
    )
}

struct Pages {
    pool: PgPool,
    id: i64,
    after: Option<ClaimId>,
    registering: Option<bool>,
    done: bool,
}

async fn next_page(mut p: Pages) -> Option<(Result<Bytes, std::io::Error>, Pages)> {
    if p.done {
        return None;
    }
    let rows = async {
        let mut conn = payouts_store::get(&p.pool).await?;
        campaign_claims(&mut conn, p.id, ClaimStatus::Failed, p.after, PAGE).await
    }
    .await;
    match rows {
        Err(e) => {
            // The status line is gone already: end the body abnormally so the client sees a cut file.
            tracing::error!(campaign = p.id, error = %e, "failures.csv: page read failed");
            p.done = true;
            Some((Err(std::io::Error::other("database read failed")), p))
        }
        Ok(rows) => {
            if rows.len() < PAGE as usize {
                p.done = true;
            }
            if rows.is_empty() {
                return None;
            }
            p.after = rows.last().map(|c| c.id);
            let text: String = rows.iter().map(|c| csv_line(c, p.registering)).collect();
            Some((Ok(Bytes::from(text)), p))
        }
    }
}

/// The failed claims of a campaign as CSV: `row_key,receiver_id,amount,error,retryable` (amount in the
/// token's smallest unit; `retryable`: whether `retry-failed` would queue it again). Cells are quoted when
/// needed, and a cell starting with `=`, `+`, `-`, `@` (or a tab / carriage return) gets a leading `'` so a
/// spreadsheet never runs it as a formula. Streamed, a page of claims at a time.
#[utoipa::path(
    get,
    path = "/campaigns/{id}/failures.csv",
    tag = "read",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The failures", content_type = "text/csv", body = String),
        (status = 400, description = "The id is not a positive whole number", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn failures_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    authorize_read(&state, &headers)?;
    let id = campaign_id(id)?;
    {
        let mut conn = payouts_store::get(&state.inner.read_pool).await?;
        get_campaign(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))?;
    }
    let pages = Pages {
        pool: state.inner.read_pool.clone(),
        id,
        after: None,
        registering: state.inner.distributor_registers,
        done: false,
    };
    let head = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(Bytes::from_static(FAILURES_HEADER.as_bytes()))
    });
    let body = futures_util::StreamExt::chain(head, futures_util::stream::unfold(pages, next_page));
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"campaign-{id}-failures.csv\""
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// What `retry-failed` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryView {
    /// Failed claims looked at.
    pub failed: usize,
    /// Queued again (`failed → pending`).
    pub requeued: usize,
    /// Left failed: the failure is final (e.g. invalid account, amount refused, rejected campaign).
    pub not_retryable: usize,
    /// Left failed although retryable: a transaction carrying it is not provably dead yet (or an incident
    /// names it); try again later.
    pub unsafe_to_retry: usize,
    /// The campaign now.
    pub campaign: CampaignSummary,
}

/// Queues the retryable failed claims of a campaign again (scope `send`): transient failures (token paused,
/// treasury short, out of gas, unrecognised, each after the automatic retries ran out) and, when the
/// distributor registers receivers, "not registered". Never a claim a transaction may still pay.
#[utoipa::path(
    post,
    path = "/campaigns/{id}/retry-failed",
    tag = "send",
    params(("id" = i64, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "What was re-queued", body = RetryView),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `send` scope", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 409, description = "`campaign_rejected`: a rejected campaign is never paid", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Send)?;
    let id = campaign_id(id)?;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let campaign = get_campaign(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))?;
    if campaign.status == payouts_store::CampaignStatus::Rejected {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "campaign_rejected",
            "the campaign was rejected: its claims are never paid",
        ));
    }
    let r = retry_failed(
        &mut conn,
        id,
        &principal.name,
        state.inner.distributor_registers,
    )
    .await?;
    // Read again: the retry moved its `updated_at` (the key of cached counts).
    let campaign = get_campaign(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no campaign {id}")))?;
    let campaign = summaries(&state, &mut conn, vec![campaign])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal(&"campaign vanished"))?;
    Ok(Json(RetryView {
        failed: r.failed,
        requeued: r.requeued,
        not_retryable: r.not_retryable,
        unsafe_to_retry: r.unsafe_to_retry,
        campaign,
    })
    .into_response())
}
