//! `POST /campaigns`: upload a campaign file (CSV with a header, or JSON lines), check every row, and — unless
//! `dry_run` — store the campaign and its rows as claims in one DB transaction (see `payouts_store::campaigns`
//! for the exactly-once argument and the approval gate).
//!
//! The body is streamed to a temporary file while it is hashed (never held in memory, capped at
//! `api.campaign_max_bytes`); a first pass checks every row without touching the database; a second pass, only
//! for a real upload without refused rows, inserts the valid rows in chunks. A dry run writes nothing.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use payouts_store::campaigns::{
    campaign_by_name, create_campaign, insert_campaign_claims, Campaign, CampaignRow,
    CreateOutcome, NewCampaign, INSERT_CHUNK,
};
use payouts_store::{AsyncConnection, CampaignKind, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use utoipa::{IntoParams, ToSchema};

use crate::campaigns::chain_checks::{self, CheckFailed};
use crate::campaigns::validate::{digest, Line, RowError, Rules, StopError, Totals, Validator};
use crate::campaigns::view::CampaignSummary;
use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::routes::campaign_admin::summaries;
use crate::state::AppState;

/// Longest line of a campaign file, in bytes.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
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
}

fn stop_error(e: StopError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_file",
        e.to_string(),
    )
}

/// Streams the body into a temporary file, hashing it; 413 past `limit` bytes.
async fn spool(body: Body, limit: u64) -> Result<(tokio::fs::File, String), ApiError> {
    let file = tempfile::tempfile().map_err(|e| ApiError::internal(&e))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the campaign file is larger than {limit} bytes (api.campaign_max_bytes)"),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    }
    file.flush().await.map_err(|e| ApiError::internal(&e))?;
    if size == 0 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the campaign file is empty",
        ));
    }
    Ok((file, hex::encode(hasher.finalize())))
}

/// One pass over the spooled file, a line at a time, through a fresh validator.
struct FilePass<'f> {
    reader: BufReader<&'f mut tokio::fs::File>,
    validator: Validator,
    line: Vec<u8>,
}

impl<'f> FilePass<'f> {
    async fn start(file: &'f mut tokio::fs::File, rules: &Rules) -> Result<Self, ApiError> {
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| ApiError::internal(&e))?;
        Ok(Self {
            reader: BufReader::new(file),
            validator: Validator::new(rules.clone()),
            line: Vec::with_capacity(256),
        })
    }

    /// The next line's outcome; `None` at the end of the file.
    async fn next(&mut self) -> Result<Option<Line>, ApiError> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        if n == 0 {
            return Ok(None);
        }
        let bytes = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        if bytes.len() > MAX_LINE_BYTES {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_file",
                format!("a line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        self.validator.line(bytes).map(Some).map_err(stop_error)
    }
}

/// What a check pass found.
struct Checked {
    totals: Totals,
    errors: Vec<RowError>,
    truncated: bool,
}

/// The check pass: totals, the first row errors, whether they were cut short.
async fn check(file: &mut tokio::fs::File, rules: &Rules) -> Result<Checked, ApiError> {
    let mut pass = FilePass::start(file, rules).await?;
    let mut out = Checked {
        totals: Totals::default(),
        errors: Vec::new(),
        truncated: false,
    };
    while let Some(line) = pass.next().await? {
        if let Line::Invalid(errs) = line {
            for e in errs {
                if out.errors.len() < MAX_REPORTED_ERRORS {
                    out.errors.push(e);
                } else {
                    out.truncated = true;
                }
            }
        }
    }
    out.totals = pass.validator.totals();
    Ok(out)
}

/// Distinct receivers asked per batch of registration checks.
const RECEIVER_BATCH: usize = 1_024;

/// A pass over the valid rows asking each distinct receiver's registration once, a batch at a time.
async fn unregistered_receivers(
    state: &AppState,
    rpc: &payouts_near::RpcPool,
    file: &mut tokio::fs::File,
    rules: &Rules,
    token: &str,
) -> Result<HashSet<String>, ApiError> {
    let timeout = std::time::Duration::from_millis(state.config().rpc_timeout_ms);
    let concurrency = state.config().campaign_rpc_concurrency;
    let mut pass = FilePass::start(file, rules).await?;
    let mut asked: HashSet<u128> = HashSet::new();
    let mut batch: Vec<String> = Vec::with_capacity(RECEIVER_BATCH);
    let mut out = HashSet::new();
    loop {
        let line = pass.next().await?;
        let done = line.is_none();
        if let Some(Line::Valid(row)) = line {
            if asked.insert(digest(&row.receiver_id)) {
                batch.push(row.receiver_id);
            }
        }
        if batch.len() >= RECEIVER_BATCH || (done && !batch.is_empty()) {
            let names = std::mem::take(&mut batch);
            out.extend(
                chain_checks::unregistered(rpc, timeout, concurrency, token, names)
                    .await
                    .map_err(chain_failed)?,
            );
        }
        if done {
            return Ok(out);
        }
    }
}

/// What the chain said about the file (see `crate::campaigns::chain_checks`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ChainReport {
    /// Whether receivers were checked for registration with the token (only when the distributor does not
    /// register receivers; unregistered ones are row errors, field `receiver_id`).
    pub registration_checked: bool,
    /// Distinct receivers found not registered.
    pub unregistered_receivers: usize,
    /// The treasury account whose balance was read; `null` when this server is not told it.
    pub treasury: Option<String>,
    /// Its balance of the token (smallest unit) at the final block; `null` when not read.
    pub treasury_balance: Option<String>,
    /// Whether that balance covers the total of the valid rows; `null` when not read. Informational: the
    /// distributor's balance guard holds transfers the balance cannot cover.
    pub covered: Option<bool>,
}

fn chain_failed(e: CheckFailed) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "chain_check_failed",
        format!("the campaign could not be checked against the chain (nothing written): {e}"),
    )
}

/// The chain checks, and the file checked again when receivers turned out unregistered.
async fn chain_checks(
    state: &AppState,
    file: &mut tokio::fs::File,
    rules: &mut Rules,
    token: &str,
    checked: Checked,
) -> Result<(Checked, ChainReport), ApiError> {
    let mut report = ChainReport::default();
    let registration = state.inner.distributor_registers == Some(false);
    if !registration && state.inner.treasury.is_none() {
        return Ok((checked, report));
    }
    let rpc =
        state.inner.rpc.clone().ok_or_else(|| {
            chain_failed(CheckFailed("no NEAR RPC endpoint is configured".into()))
        })?;
    let mut checked = checked;
    if registration {
        let unregistered = unregistered_receivers(state, &rpc, file, rules, token).await?;
        report.registration_checked = true;
        report.unregistered_receivers = unregistered.len();
        if !unregistered.is_empty() {
            rules.unregistered = Arc::new(unregistered);
            checked = check(file, rules).await?;
        }
    }
    if let Some(treasury) = &state.inner.treasury {
        let timeout = std::time::Duration::from_millis(state.config().rpc_timeout_ms);
        let balance = chain_checks::treasury_balance(&rpc, timeout, token, treasury)
            .await
            .map_err(chain_failed)?;
        report.treasury = Some(treasury.clone());
        report.treasury_balance = Some(balance.to_string());
        report.covered = Some(balance >= checked.totals.amount);
    }
    Ok((checked, report))
}

/// The store pass, inside the caller's DB transaction: the valid rows as claims of `campaign`, in chunks.
async fn insert_rows(
    conn: &mut payouts_store::AsyncPgConnection,
    file: &mut tokio::fs::File,
    rules: &Rules,
    campaign: &Campaign,
) -> Result<usize, ApiError> {
    let mut pass = FilePass::start(file, rules).await?;
    let mut chunk: Vec<CampaignRow> = Vec::with_capacity(INSERT_CHUNK);
    let mut inserted = 0;
    while let Some(line) = pass.next().await? {
        if let Line::Valid(row) = line {
            chunk.push(row);
            if chunk.len() == INSERT_CHUNK {
                inserted += insert_campaign_claims(conn, campaign, &chunk).await?;
                chunk.clear();
            }
        }
    }
    inserted += insert_campaign_claims(conn, campaign, &chunk).await?;
    Ok(inserted)
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
        (status = 422, description = "Rows invalid and `skip_invalid` not set (the report; nothing written), or the file is unreadable", body = UploadReport),
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
    let name = q.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 200 characters without control characters",
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
    };
    if q.dry_run {
        return Ok((StatusCode::OK, Json(report)).into_response());
    }
    if totals.invalid > 0 && !q.skip_invalid {
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
