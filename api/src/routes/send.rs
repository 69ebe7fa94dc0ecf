//! `POST /send-ft`: a manual payout. Validates everything, then inserts one claim row — the only write; the
//! distributor pays it. The `Idempotency-Key` header makes retries safe: the same key with the same request
//! gives back the same claim (200), with another request it is refused (409).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use near_primitives::types::AccountId;
use payouts_store::claims::NewClaim;
use payouts_store::types::AmountError;
use payouts_store::Yocto;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::model::{ClaimView, SendFtRequest};
use crate::state::AppState;

/// Longest accepted `Idempotency-Key`, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// Reads the `Idempotency-Key` header: 1 to 128 printable ASCII characters, no spaces.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Err(ApiError::bad_request(
            "missing_idempotency_key",
            "the Idempotency-Key header is required (e.g. a UUID); retrying with the same key never pays twice",
        ));
    };
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "send exactly one Idempotency-Key header",
        ));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY
        || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The stored form of a client's `Idempotency-Key`: `<token name> <key>` (see [`crate::model::client_key`]).
pub(crate) fn scoped_key(token_name: &str, key: &str) -> String {
    format!("{token_name} {key}")
}

/// Checks `Content-Type: application/json` (parameters such as `charset=utf-8` allowed).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ))
    }
}

/// The body as `T`, with 413 for a body over the limit and 400 naming the JSON problem.
pub(crate) fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Transfer {
    receiver: AccountId,
    amount: Yocto,
    token: String,
    memo: Option<String>,
    coalesce: bool,
}

impl Transfer {
    /// SHA-256 over the canonical form: what tells a retry from a different request under the same key.
    fn digest(&self) -> String {
        let mut canonical = serde_json::json!({
            "receiver_id": self.receiver.as_str(),
            "amount": self.amount.to_string(),
            "token": self.token,
            "memo": self.memo,
        });
        // Only an opt-out changes the digest: requests without the field keep theirs.
        if !self.coalesce {
            canonical["coalesce"] = serde_json::Value::Bool(false);
        }
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

fn validate(state: &AppState, req: SendFtRequest) -> Result<Transfer, ApiError> {
    let cfg = state.config();
    let receiver = AccountId::from_str(&req.receiver_id).map_err(|e| {
        ApiError::bad_request(
            "invalid_receiver",
            format!("receiver_id is not a valid NEAR account id: {e}"),
        )
    })?;
    let amount = Yocto::from_str(&req.amount).map_err(|e| {
        let why = match e {
            AmountError::Empty => "amount is empty".to_string(),
            AmountError::NotDigits => {
                "amount must be a whole number in the token's smallest unit, written with the digits 0-9 only (no sign, decimal point, exponent or spaces)".to_string()
            }
            AmountError::TooLarge => e.to_string(),
        };
        ApiError::bad_request("invalid_amount", why)
    })?;
    if req.amount.len() > 1 && req.amount.starts_with('0') {
        return Err(ApiError::bad_request(
            "invalid_amount",
            "amount must be written without leading zeros",
        ));
    }
    if amount.0 == 0 {
        return Err(ApiError::bad_request(
            "invalid_amount",
            "amount must be more than 0",
        ));
    }
    if amount > cfg.max_amount {
        return Err(ApiError::bad_request(
            "amount_too_large",
            format!(
                "amount {amount} is more than the per-transfer maximum {} (api.max_amount)",
                cfg.max_amount
            ),
        ));
    }
    let token = match req.token.as_deref() {
        None => cfg.allowed_tokens.first().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "token_not_allowed",
                "manual sends are disabled: api.allowed_tokens is empty",
            )
        })?,
        Some(t) if cfg.allowed_tokens.iter().any(|a| a == t) => t.to_string(),
        Some(t) => {
            let shown: String = t.chars().take(64).collect();
            return Err(ApiError::bad_request(
                "token_not_allowed",
                format!(
                    "token `{shown}` is not in the allowlist ({})",
                    cfg.allowed_tokens.join(", ")
                ),
            ));
        }
    };
    let memo = match req.memo {
        Some(m) if m.is_empty() => None,
        Some(m) => {
            if let Some(why) = crate::text::memo_problem(&m, cfg.max_memo_chars) {
                return Err(ApiError::bad_request("invalid_memo", why));
            }
            Some(m)
        }
        None => None,
    };
    Ok(Transfer {
        receiver,
        amount,
        token,
        memo,
        coalesce: req.coalesce.unwrap_or(true),
    })
}

/// Requests a payout of `amount` of `token` to `receiver_id`. Needs a token with the `send` scope and an
/// `Idempotency-Key` header. 202: a new claim was created; 200: the same key and request were seen before,
/// here is that claim; 409: the key was used for a different request. Above
/// `api.single_approval_threshold` the claim is `held` in a one-row campaign of kind `send`, and the answer
/// (202, or 200 for a retry) has `status: "awaiting_approval"` and the `campaign_id`: a second token with the
/// `approve` scope releases it with `POST /admin/campaigns/{campaign_id}/approve`.
#[utoipa::path(
    post,
    path = "/send-ft",
    tag = "send",
    request_body = SendFtRequest,
    params(("Idempotency-Key" = String, Header, description = "1-128 printable ASCII characters, e.g. a UUID; the same key always means the same payout")),
    responses(
        (status = 202, description = "Claim created; the distributor will pay it (or, above api.single_approval_threshold, `status: awaiting_approval` with a `campaign_id`: it is paid once a second token approves that campaign)", body = HeldSendView),
        (status = 200, description = "Retry of an earlier request with the same key: the same claim", body = ClaimView),
        (status = 400, description = "Invalid receiver, amount, token, memo, JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 403, description = "The token lacks the `send` scope", body = ErrorBody),
        (status = 409, description = "The Idempotency-Key was used with this token for a different request (keys are scoped to the token)", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable; retry with the same key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn send_ft(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let principal = state.inner.tokens.authorize(&headers, Scope::Send)?;
    let key = idempotency_key(&headers)?;
    require_json(&headers)?;
    let req: SendFtRequest = parse_body(body, state.config().max_body_bytes)?;
    let transfer = validate(&state, req)?;
    let digest = transfer.digest();
    // Keys are scoped to the API token: another caller's key never finds this caller's claim, and a
    // token's name holds no space, so `name key` is unambiguous.
    let scoped = scoped_key(&principal.name, &key);
    let row = NewClaim::manual(
        &scoped,
        &digest,
        &transfer.token,
        transfer.receiver.as_str(),
        transfer.amount,
        transfer.memo.clone(),
    )
    .coalescing(transfer.coalesce);
    if state
        .config()
        .single_approval_threshold
        .is_some_and(|limit| transfer.amount > limit)
    {
        return held_send(&state, row, &digest, &principal.name).await;
    }
    let (claim, created) = state.batcher().insert(row).await?;
    if !created && claim.request_digest.as_deref() != Some(digest.as_str()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_conflict",
            "this Idempotency-Key was already used with this token for a different request; use a new key for a new payout",
        ));
    }
    if !created && claim.status == payouts_store::ClaimStatus::Held {
        // A retry of a held send answered under a threshold lowered since: still awaiting approval.
        let mut conn = payouts_store::get(&state.inner.pool).await?;
        let (campaign, claim) = held_of(&mut conn, claim).await?;
        return held_answer(StatusCode::OK, campaign, claim);
    }
    let status = if created {
        tracing::info!(
            claim = claim.id.0,
            by = %principal.name,
            token = %claim.token_contract,
            receiver = %claim.receiver_id,
            amount = %claim.amount,
            "manual claim created"
        );
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let location = HeaderValue::from_str(&format!("/claims/{}", claim.id))
        .map_err(|e| ApiError::internal(&e))?;
    let mut resp = (status, Json(ClaimView::from(claim))).into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// The answer for a send held for approval: the claim as `/claims/{id}` shows it, with `status`
/// `awaiting_approval` while it is held, and the campaign to approve.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HeldSendView {
    /// The claim (`status`: `awaiting_approval` while held).
    #[serde(flatten)]
    pub claim: ClaimView,
    /// The one-row campaign (kind `send`) to approve: `POST /admin/campaigns/{campaign_id}/approve`.
    pub campaign_id: Option<i64>,
}

fn held_answer(
    status: StatusCode,
    campaign: Option<i64>,
    claim: payouts_store::claims::Claim,
) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&format!("/claims/{}", claim.id))
        .map_err(|e| ApiError::internal(&e))?;
    let held = claim.status == payouts_store::ClaimStatus::Held;
    let mut view = ClaimView::from(claim);
    if held {
        view.status = "awaiting_approval".into();
    }
    let mut resp = (
        status,
        Json(HeldSendView {
            claim: view,
            campaign_id: campaign,
        }),
    )
        .into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// The campaign of a held claim found by its key.
async fn held_of(
    conn: &mut payouts_store::AsyncPgConnection,
    claim: payouts_store::claims::Claim,
) -> Result<(Option<i64>, payouts_store::claims::Claim), ApiError> {
    let name = payouts_store::campaigns::send::send_campaign_name(
        claim.idempotency_key.as_deref().unwrap_or_default(),
    );
    let campaign = payouts_store::campaigns::campaign_by_name(conn, &name)
        .await?
        .map(|c| c.id);
    Ok((campaign, claim))
}

/// Above `api.single_approval_threshold`: the claim held in a one-row campaign (see
/// `payouts_store::campaigns::send`), not through the group-commit batcher.
async fn held_send(
    state: &AppState,
    row: NewClaim,
    digest: &str,
    by: &str,
) -> Result<Response, ApiError> {
    use payouts_store::campaigns::send::{hold_send, HeldSend};
    let mut conn = payouts_store::get(&state.inner.pool).await?;
    let outcome = match hold_send(&mut conn, &row, by).await {
        Err(e) if e.is_unique_violation() => {
            // Another request under the same key won a race: answered on the client's retry.
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "a concurrent request used this Idempotency-Key; retry to see its claim",
            ));
        }
        other => other?,
    };
    match outcome {
        HeldSend::Created { campaign, claim } => {
            tracing::info!(
                claim = claim.id.0,
                campaign = campaign.id,
                by,
                token = %claim.token_contract,
                receiver = %claim.receiver_id,
                amount = %claim.amount,
                "manual claim held for approval"
            );
            held_answer(StatusCode::ACCEPTED, Some(campaign.id), *claim)
        }
        HeldSend::Existing { campaign, claim } => {
            if claim.request_digest.as_deref() != Some(digest) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "this Idempotency-Key was already used with this token for a different request; use a new key for a new payout",
                ));
            }
            held_answer(StatusCode::OK, campaign.map(|c| c.id), *claim)
        }
    }
}
