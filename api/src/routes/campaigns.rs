//! `POST /campaigns`: upload a campaign file (CSV with a header, or JSON lines), check every row, and — unless
//! `dry_run` — store the campaign and its rows as claims in one DB transaction (see `payouts_store::campaigns`
//! for the exactly-once argument and the approval gate).
//!
//! The body is streamed to a temporary file while it is hashed (never held in memory, capped at
//! `api.campaign_max_bytes`); a first pass checks every row without touching the database; when the chain is
//! to be asked (`crate::campaigns::chain_checks`: registrations while the distributor does not register
//! receivers, the treasury's balance), a pass asks each distinct receiver once and, if some are unregistered,
//! a pass checks the file again with them refused; a last pass, only for a real upload without refused rows
//! (or with `skip_invalid`), inserts the valid rows in chunks. A dry run writes nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use payouts_store::campaigns::{
    campaign_by_name, create_campaign, Campaign, CreateOutcome, NewCampaign,
};
use payouts_store::{AsyncConnection, CampaignKind, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::campaigns::validate::{RowError, Rules, Totals};
use crate::campaigns::view::CampaignSummary;
use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::routes::campaign_admin::summaries;
use crate::routes::campaign_passes::{
    chain_checks, check, insert_rows, spool, ChainReport, Checked,
};
use crate::state::AppState;

/// Longest line of a campaign file, in bytes.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// How the names of held single sends' campaigns start (`payouts_store::campaigns::send`); file campaigns may
/// not use it.
pub const SEND_PREFIX: &str = payouts_store::campaigns::send::SEND_NAME_PREFIX;
/// Longest campaign name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Row errors listed in one answer (the count covers them all).
pub const MAX_REPORTED_ERRORS: usize = 1_000;

/// Query parameters of `POST /campaigns`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Unique campaign name; the same name with the same file answers with the existing campaign.
    pub name: String,
    /// Token contract (from `api.allowed_tokens`; the first when absent).
    pub token: Option<String>,
    /// Check only: write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Store the valid rows even if some are invalid (otherwise a file with errors is refused whole).
    #[serde(default)]
    pub skip_invalid: bool,
}

/// The answer: the check's result, and the campaign when one was stored or found.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// sha256 of the uploaded bytes, hex.
    pub file_digest: String,
    /// Token contract.
    pub token: String,
    /// Row counts and the total of the valid rows (smallest unit, as a string).
    pub totals: Totals,
    /// Whether the total needs a second person's approval (`api.approval_threshold`).
    pub approval_required: bool,
    /// The first [`MAX_REPORTED_ERRORS`] row errors.
    pub errors: Vec<RowError>,
    /// Whether `errors` is cut short.
    pub errors_truncated: bool,
    /// Receiver registrations and the treasury's balance, as the chain reports them.
    pub chain: ChainReport,
    /// The stored (or already existing) campaign, as `GET /campaigns/{id}` shows it.
    pub campaign: Option<CampaignSummary>,
    /// Claims inserted by this request.
    pub inserted: usize,
    /// Set when the upload is refused (422 `invalid_rows`: row errors without `skip_invalid`), so the answer
    /// carries the same `error.code` / `error.message` as every other error beside the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorDetail>,
}

fn choose_token(state: &AppState, token: Option<&str>) -> Result<String, ApiError> {
    let allowed = &state.config().allowed_tokens;
    match token {
        None => allowed.first().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "token_not_allowed",
                "payouts are disabled: api.allowed_tokens is empty",
            )
        }),
        Some(t) if allowed.iter().any(|a| a == t) => Ok(t.to_string()),
        Some(t) => {
            let shown: String = t.chars().take(64).collect();
            Err(ApiError::bad_request(
                "token_not_allowed",
                format!(
                    "token `{shown}` is not in the allowlist ({})",
                    allowed.join(", ")
                ),
            ))
        }
    }
}

/// Uploads a campaign file (scope `send`): CSV with a header (`receiver_id`, `amount` or `amount_tokens`,
/// optional `memo`, `external_id`) or JSON lines with the same keys. Each row is paid exactly once: its key is
/// `external_id`, or `#<line number>` without one — so without `external_id`, "the same file" means the same
/// rows in the same order (reordering rows changes their keys; the file digest refuses it under the same
/// name anyway).
#[utoipa::path(
    post,
    path = "/campaigns",
    tag = "send",
    params(UploadQuery),
    request_body(content = String, description = "The file: CSV with a header, or JSON lines", content_type = "text/csv"),
    responses(
        (status = 200, description = "Dry run, or the same file under the same name again (nothing written)", body = UploadReport),
        (status = 201, description = "Stored", body = UploadReport),
        (status = 400, description = "Invalid query (name, token)", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `send` scope", body = ErrorBody),
        (status = 409, description = "`campaign_name_taken`: the name was used for another file", body = ErrorBody),
        (status = 413, description = "File over api.campaign_max_bytes", body = ErrorBody),
        (status = 422, description = "Rows invalid and `skip_invalid` not set (the report; nothing written), or the file as a whole is unreadable (`invalid_file`, an error)", body = UploadRefused),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Send)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    // The whole parameter is checked (what the OpenAPI pattern states), then stored trimmed.
    let name = q.name.trim();
    if name.is_empty()
        || q.name.chars().count() > MAX_NAME_CHARS
        || q.name
            .chars()
            .any(|c| c.is_control() || crate::text::is_invisible(c))
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters, not only spaces, without control or invisible characters"),
        ));
    }
    if name.starts_with(SEND_PREFIX) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "names starting with `{SEND_PREFIX}` are kept for single sends held for approval"
            ),
        ));
    }
    let token = choose_token(&state, q.token.as_deref())?;
    let cfg = state.config();
    let mut rules = Rules {
        // Unknown decimals (no RPC answer) make `amount_tokens` rows errors, never a guess.
        decimals: state.inner.chain.decimals(&token).await,
        max_amount: cfg.max_amount,
        max_memo_chars: cfg.max_memo_chars,
        max_rows: cfg.campaign_max_rows,
        unregistered: Arc::default(),
    };
    let (mut file, digest) = spool(body, cfg.campaign_max_bytes).await?;
    let checked = check(&mut file, &rules).await?;
    let (checked, chain) = chain_checks(&state, &mut file, &mut rules, &token, checked).await?;
    let Checked {
        totals,
        errors,
        truncated: errors_truncated,
        ..
    } = checked;
    let approval_required = cfg
        .approval_threshold
        .get(&token)
        .is_some_and(|limit| totals.amount > *limit);
    let mut report = UploadReport {
        dry_run: q.dry_run,
        file_digest: digest.clone(),
        token: token.clone(),
        totals,
        approval_required,
        errors,
        errors_truncated,
        chain,
        campaign: None,
        inserted: 0,
        error: None,
    };
    if q.dry_run {
        return Ok((StatusCode::OK, Json(report)).into_response());
    }
    if totals.invalid > 0 && !q.skip_invalid {
        report.error = Some(crate::error::ErrorDetail {
            code: "invalid_rows".into(),
            message: format!(
                "{} of {} rows are invalid (listed in `errors`); nothing was stored: fix them, or upload with skip_invalid=true to store the valid rows only",
                totals.invalid, totals.rows
            ),
        });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(report)).into_response());
    }
    if totals.valid == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_file",
            "the file has no valid row",
        ));
    }
    let new = NewCampaign {
        kind: CampaignKind::File,
        name: name.to_string(),
        token_contract: token,
        created_by: principal.name.clone(),
        file_digest: digest.clone(),
        approval_required,
        rows_total: i64::try_from(totals.rows).unwrap_or(i64::MAX),
        rows_invalid: i64::try_from(totals.invalid).unwrap_or(i64::MAX),
        amount_total: totals.amount,
    };
    // The store pass runs in a task of its own: a client that hangs up (or the request timeout) must not
    // cancel a DB transaction half way through its chunks.
    let pool = state.inner.pool.clone();
    let outcome = tokio::spawn(async move { store(pool, new, file, rules).await })
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    match outcome {
        (CreateOutcome::Created(c), inserted) => {
            tracing::info!(
                campaign = c.id,
                by = %principal.name,
                token = %c.token_contract,
                rows = inserted,
                total = %c.amount_total,
                approval_required,
                "campaign stored"
            );
            report.campaign = summaries(&state, &mut conn, vec![c]).await?.pop();
            report.inserted = inserted;
            Ok((StatusCode::CREATED, Json(report)).into_response())
        }
        (CreateOutcome::Existing(c) | CreateOutcome::NameTaken(c), _) => {
            if c.file_digest != digest {
                return Err(name_taken(&c));
            }
            report.campaign = summaries(&state, &mut conn, vec![c]).await?.pop();
            Ok((StatusCode::OK, Json(report)).into_response())
        }
    }
}

/// Creates the campaign and inserts its valid rows in one DB transaction; a campaign already stored under
/// the name is answered as it is.
async fn store(
    pool: payouts_store::PgPool,
    new: NewCampaign,
    mut file: tokio::fs::File,
    rules: Rules,
) -> Result<(CreateOutcome, usize), ApiError> {
    let mut conn = payouts_store::get(&pool).await?;
    if let Some(existing) = campaign_by_name(&mut conn, &new.name).await? {
        let outcome = if existing.file_digest == new.file_digest {
            CreateOutcome::Existing(existing)
        } else {
            CreateOutcome::NameTaken(existing)
        };
        return Ok((outcome, 0));
    }
    // The transaction's error type is the store's; a failure of the file pass is kept aside and rolls the
    // transaction back through a stand-in error.
    let mut failure: Option<ApiError> = None;
    let stored = conn
        .transaction(async |conn| {
            let campaign = match create_campaign(conn, &new).await? {
                CreateOutcome::Created(c) => c,
                other => return Ok::<_, StoreError>((other, 0)),
            };
            match insert_rows(conn, &mut file, &rules, &campaign).await {
                Ok(inserted) => Ok((CreateOutcome::Created(campaign), inserted)),
                Err(e) => {
                    failure = Some(e);
                    Err(StoreError::Corrupt("campaign file pass failed".into()))
                }
            }
        })
        .await;
    match (stored, failure) {
        (_, Some(e)) => Err(e),
        (r, None) => Ok(r?),
    }
}

/// A 422 of `POST /campaigns`: the report of a file with invalid rows (nothing written), or an error when the
/// file as a whole cannot be read (bad header, too many rows, a line too long).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UploadRefused {
    /// Rows are invalid and `skip_invalid` is not set.
    Report(Box<UploadReport>),
    /// The file as a whole is refused.
    Error(ErrorBody),
}

fn name_taken(existing: &Campaign) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "campaign_name_taken",
        format!(
            "campaign `{}` was uploaded with another file; choose a new name for a new campaign",
            existing.name
        ),
    )
}
