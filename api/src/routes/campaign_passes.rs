//! The passes of `POST /campaigns` over the uploaded file: spooling the body to a temporary file while hashing
//! it, the check pass, the registration pass and the treasury balance (`crate::campaigns::chain_checks`), and
//! the store pass. Each pass reads the spooled file from the start, a line at a time, through a fresh
//! validator, so nothing but digests is held per row.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::StreamExt;
use payouts_store::campaigns::{insert_campaign_claims, Campaign, CampaignRow, INSERT_CHUNK};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use utoipa::ToSchema;

use crate::campaigns::chain_checks::{self, CheckFailed};
use crate::campaigns::validate::{digest, Line, RowError, Rules, StopError, Totals, Validator};
use crate::error::ApiError;
use crate::routes::campaigns::{MAX_LINE_BYTES, MAX_REPORTED_ERRORS};
use crate::state::AppState;

fn stop_error(e: StopError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_file",
        e.to_string(),
    )
}

/// Streams the body into a temporary file, hashing it; 413 past `limit` bytes.
pub(crate) async fn spool(body: Body, limit: u64) -> Result<(tokio::fs::File, String), ApiError> {
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
pub(crate) struct Checked {
    pub(crate) totals: Totals,
    pub(crate) errors: Vec<RowError>,
    pub(crate) truncated: bool,
}

/// The check pass: totals, the first row errors, whether they were cut short.
pub(crate) async fn check(file: &mut tokio::fs::File, rules: &Rules) -> Result<Checked, ApiError> {
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
pub(crate) async fn chain_checks(
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

/// The store pass, inside the caller's DB transaction: the valid rows as claims of `campaign`, in chunks of
/// [`INSERT_CHUNK`]. The next chunk is read and validated while the database inserts the current one, so
/// the file pass costs no time of its own (the insert is the slow side). Either failing fails the pass,
/// and the caller's transaction rolls back whatever was inserted.
pub(crate) async fn insert_rows(
    conn: &mut payouts_store::AsyncPgConnection,
    file: &mut tokio::fs::File,
    rules: &Rules,
    campaign: &Campaign,
) -> Result<usize, ApiError> {
    let mut pass = FilePass::start(file, rules).await?;
    let mut chunk = next_chunk(&mut pass).await?;
    let mut inserted = 0;
    while !chunk.is_empty() {
        let (stored, next) = tokio::join!(
            insert_campaign_claims(conn, campaign, &chunk),
            next_chunk(&mut pass)
        );
        inserted += stored?;
        chunk = next?;
    }
    Ok(inserted)
}

/// Up to [`INSERT_CHUNK`] more valid rows of `pass` (fewer at the end of the file, none past it).
async fn next_chunk(pass: &mut FilePass<'_>) -> Result<Vec<CampaignRow>, ApiError> {
    let mut chunk = Vec::with_capacity(INSERT_CHUNK);
    while chunk.len() < INSERT_CHUNK {
        match pass.next().await? {
            None => break,
            Some(Line::Valid(row)) => chunk.push(row),
            Some(_) => {}
        }
    }
    Ok(chunk)
}
