//! `GET /status`: one JSON document with everything the dashboard shows. Computed at most once per
//! `status_cache_ms` (concurrent callers share one computation), so many open dashboards cost the
//! database one set of queries per period.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use payouts_store::api_queries::{confirmed_by_age, count_by_token_and_status};
use payouts_store::cursor::read_cursor;
use payouts_store::incidents::list_incidents;
use payouts_store::keys::list_keys;
use payouts_store::stalls::read_stall;
use payouts_store::status::list_status;
use payouts_store::transactions::in_flight_by_key;
use payouts_store::webhooks::{endpoint_summaries, list_dead};
use payouts_store::ClaimStatus;

use crate::config::Scope;
use crate::error::{ApiError, ErrorBody};
use crate::model::{
    ChainView, ClaimsSummary, DistributorView, HeadSource, IndexerView, KeyPoolView, KeyView,
    StatusView, Throughput, TokenClaims, WebhooksView,
};
use crate::routes::json_bytes;
use crate::state::AppState;

/// Window of the throughput figures, seconds.
const WINDOW_SECS: u32 = 600;
/// Width of one throughput bucket, seconds.
const BUCKET_SECS: u32 = 5;
/// A distributor not heard from for this long is shown as not alive.
const ALIVE_SECS: i64 = 30;
/// Dead webhook deliveries listed.
const DEAD_SHOWN: i64 = 20;
/// Open incidents listed (the most recent; `/metrics` counts them all).
const OPEN_INCIDENTS_SHOWN: i64 = 100;

/// Checks the `read` scope when the configuration asks for it.
pub(crate) fn authorize_read(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config().read_requires_token {
        state.inner.tokens.authorize(headers, Scope::Read)?;
    }
    Ok(())
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn nanos_to_time(nanos: u64) -> Option<DateTime<Utc>> {
    i64::try_from(nanos)
        .ok()
        .map(DateTime::<Utc>::from_timestamp_nanos)
}

/// Chain head and indexer lag, from the in-process indexer or the RPC.
pub(crate) async fn position(state: &AppState, indexed: Option<u64>) -> (ChainView, IndexerView) {
    let inner = &state.inner;
    let now = now_nanos();
    if let Some(p) = &inner.indexer_probe {
        let s = p.position();
        let indexed = indexed.or((s.last_height > 0).then_some(s.last_height));
        let head = (s.head_seen > 0).then_some(s.head_seen);
        let chain = ChainView {
            head_height: head,
            head_time: None,
            source: HeadSource::Indexer,
            error: head
                .is_none()
                .then(|| "the indexer has not seen a block yet".to_string()),
        };
        let indexer = IndexerView {
            stream: inner.stream.clone(),
            indexed_height: indexed,
            lag_blocks: head.zip(indexed).map(|(h, i)| h.saturating_sub(i)),
            lag_seconds: (s.last_block_timestamp_nanos > 0).then(|| s.lag_seconds(now)),
            in_process: true,
            stall: None,
            source_errors: Some(s.source_errors),
        };
        return (chain, indexer);
    }
    let (chain, head) = match inner.chain.head().await {
        Ok(p) => (
            ChainView {
                head_height: Some(p.height),
                head_time: nanos_to_time(p.timestamp_nanos),
                source: HeadSource::Rpc,
                error: None,
            },
            Some(p.height),
        ),
        Err(e) => (
            ChainView {
                head_height: None,
                head_time: None,
                source: HeadSource::Unavailable,
                error: Some(e),
            },
            None,
        ),
    };
    let lag_seconds = match (indexed, head) {
        (Some(h), Some(_)) => inner.chain.block_at(h).await.map(|b| {
            // Display only: precision loss is fine.
            now.saturating_sub(b.timestamp_nanos) as f64 / 1e9
        }),
        _ => None,
    };
    let indexer = IndexerView {
        stream: inner.stream.clone(),
        indexed_height: indexed,
        lag_blocks: head.zip(indexed).map(|(h, i)| h.saturating_sub(i)),
        lag_seconds,
        in_process: false,
        stall: None,
        source_errors: None,
    };
    (chain, indexer)
}

async fn compute(state: &AppState) -> Result<StatusView, ApiError> {
    let inner = &state.inner;
    let mut conn = payouts_store::get(&inner.read_pool).await?;
    let cursor = read_cursor(&mut conn, &inner.stream).await?;
    let stall = read_stall(&mut conn, &inner.stream).await?;
    let counts = count_by_token_and_status(&mut conn).await?;
    let confirmed = confirmed_by_age(&mut conn, WINDOW_SECS, BUCKET_SECS).await?;
    let keys = list_keys(&mut conn).await?;
    let in_flight: HashMap<String, i64> = in_flight_by_key(&mut conn).await?.into_iter().collect();
    let distributors = list_status(&mut conn).await?;
    let webhooks = WebhooksView {
        endpoints: endpoint_summaries(&mut conn)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        dead: list_dead(&mut conn, DEAD_SHOWN)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    };
    let mut incidents = list_incidents(&mut conn, true, OPEN_INCIDENTS_SHOWN).await?;
    incidents.reverse();
    let replay = payouts_store::replay_jobs::latest(&mut conn)
        .await?
        .map(crate::routes::admin::job_view);
    drop(conn);

    let (chain, mut indexer) = position(state, cursor.map(|c| c.block_height)).await;
    indexer.stall = stall.map(Into::into);
    let now = Utc::now();

    let zero = || -> BTreeMap<String, i64> {
        ClaimStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect()
    };
    let mut by_status = zero();
    let mut by_token: BTreeMap<String, TokenClaims> = BTreeMap::new();
    let mut total = 0;
    for c in counts {
        *by_status.entry(c.status.as_str().to_string()).or_default() += c.count;
        let t = by_token
            .entry(c.token_contract.clone())
            .or_insert_with(|| TokenClaims {
                token: c.token_contract.clone(),
                by_status: zero(),
                total: 0,
            });
        *t.by_status
            .entry(c.status.as_str().to_string())
            .or_default() += c.count;
        t.total += c.count;
        total += c.count;
    }

    let (c1, c10) = (confirmed.within(60), confirmed.within(WINDOW_SECS));
    let bucket = f64::from(confirmed.bucket_secs);
    let throughput = Throughput {
        transfers_per_second_1m: c1 as f64 / 60.0,
        transfers_per_second_10m: c10 as f64 / f64::from(WINDOW_SECS),
        confirmed_1m: c1,
        confirmed_10m: c10,
        bucket_secs: confirmed.bucket_secs,
        series: confirmed
            .counts
            .iter()
            .rev()
            .map(|n| *n as f64 / bucket)
            .collect(),
    };

    let keys: Vec<KeyView> = keys
        .into_iter()
        .map(|k| {
            let leased = k.lease_owner.is_some() && k.lease_expires_at.is_some_and(|t| t > now);
            KeyView {
                in_flight: in_flight.get(&k.public_key).copied().unwrap_or(0),
                public_key: k.public_key,
                account_id: k.account_id,
                last_nonce: k.last_nonce,
                lease_owner: k.lease_owner,
                lease_expires_at: k.lease_expires_at,
                leased,
            }
        })
        .collect();
    let key_pool = KeyPoolView {
        total: keys.len(),
        leased: keys.iter().filter(|k| k.leased).count(),
        in_flight: in_flight.values().sum(),
        keys,
    };

    let distributors = distributors
        .into_iter()
        .map(|d| DistributorView {
            alive: d.stopped_at.is_none() && (now - d.heartbeat_at).num_seconds() < ALIVE_SECS,
            owner: d.owner,
            paused_reason: d.paused_reason,
            last_error: d.last_error,
            last_error_at: d.last_error_at,
            started_at: d.started_at,
            heartbeat_at: d.heartbeat_at,
            stopped_at: d.stopped_at,
            details: d.details,
        })
        .collect();

    Ok(StatusView {
        generated_at: now,
        chain,
        indexer,
        claims: ClaimsSummary {
            by_status,
            by_token: by_token.into_values().collect(),
            total,
        },
        throughput,
        key_pool,
        distributors,
        allowed_tokens: state.config().allowed_tokens.clone(),
        replay,
        webhooks,
        incidents: incidents.into_iter().map(Into::into).collect(),
    })
}

/// The status document, serialised, from the cache when fresh.
pub(crate) async fn cached(state: &AppState) -> Result<axum::body::Bytes, ApiError> {
    let ttl = std::time::Duration::from_millis(state.config().status_cache_ms);
    let mut slot = state.inner.status_cache.lock().await;
    if let Some((at, bytes)) = slot.as_ref() {
        if at.elapsed() < ttl {
            return Ok(bytes.clone());
        }
    }
    let view = compute(state).await?;
    let bytes =
        axum::body::Bytes::from(serde_json::to_vec(&view).map_err(|e| ApiError::internal(&e))?);
    *slot = Some((Instant::now(), bytes.clone()));
    Ok(bytes)
}

/// Drops the cached status document, so the next `/status` reads the database (after an admin change).
pub(crate) async fn invalidate(state: &AppState) {
    *state.inner.status_cache.lock().await = None;
}

/// Everything the dashboard shows: chain head, indexer lag, claims per status and token, transfers/s, key
/// pool, distributor processes, webhook endpoints (by name, never their URL), the most recent dead
/// deliveries and the open incidents.
#[utoipa::path(
    get,
    path = "/status",
    tag = "read",
    responses(
        (status = 200, description = "Current state", body = StatusView),
        (status = 401, description = "`read_requires_token` is on and no valid token was sent", body = ErrorBody),
        (status = 403, description = "The token lacks the `read` scope", body = ErrorBody),
        (status = 503, description = "Database busy or unreachable", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_read(&state, &headers)?;
    Ok(json_bytes(StatusCode::OK, cached(&state).await?))
}
