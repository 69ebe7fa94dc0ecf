//! `GET /status`, `/health` and `/ready`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;
/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Always `ok`.
    pub status: String,
    /// Crate version.
    pub version: String,
}

/// `GET /ready` when ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadyView {
    /// Always `ready`.
    pub status: String,
    /// Indexer lag in blocks, when it was checked.
    pub lag_blocks: Option<u64>,
}

/// Where the chain head came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeadSource {
    /// The indexer running in this process.
    Indexer,
    /// The configured NEAR JSON-RPC.
    Rpc,
    /// Not known right now.
    Unavailable,
}

/// The chain as seen now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainView {
    /// Final head height; `null` when unknown (RPC unreachable).
    pub head_height: Option<u64>,
    /// Its timestamp.
    pub head_time: Option<DateTime<Utc>>,
    /// Where the head came from.
    pub source: HeadSource,
    /// Why it is unknown.
    pub error: Option<String>,
}

/// The indexer's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndexerView {
    /// Cursor name.
    pub stream: String,
    /// Last fully processed block; `null` before the first.
    pub indexed_height: Option<u64>,
    /// Chain head minus indexed height.
    pub lag_blocks: Option<u64>,
    /// Seconds between now and the indexed block's timestamp.
    pub lag_seconds: Option<f64>,
    /// Whether the indexer runs in this process (then its counters are in `/metrics`).
    pub in_process: bool,
    /// Why the indexer is not advancing, while it is not (also makes `/ready` answer 503).
    pub stall: Option<StallView>,
    /// Failed fetches of the block source so far (in-process indexer only).
    pub source_errors: Option<u64>,
}

/// An indexer stall (`indexer_stalls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StallView {
    /// `chain_gap` (the next block's `prev_hash` is not the cursor's hash: a block is missing from the
    /// source) or `source` (the block source has failed for longer than `indexer.stuck_after_secs`).
    pub kind: String,
    /// Heights, hashes, object keys and causes.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Last report by the indexer.
    pub updated_at: DateTime<Utc>,
}

impl From<payouts_store::stalls::Stall> for StallView {
    fn from(s: payouts_store::stalls::Stall) -> Self {
        Self {
            kind: s.kind.as_str().to_string(),
            reason: s.reason,
            since: s.since,
            updated_at: s.updated_at,
        }
    }
}

/// Claims of one token, per status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenClaims {
    /// NEP-141 contract.
    pub token: String,
    /// Count per status (`pending`, `submitted`, `confirmed`, `failed`).
    pub by_status: BTreeMap<String, i64>,
    /// All statuses.
    pub total: i64,
}

/// Claim counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimsSummary {
    /// Count per status; every status is present.
    pub by_status: BTreeMap<String, i64>,
    /// Per token.
    pub by_token: Vec<TokenClaims>,
    /// All claims.
    pub total: i64,
}

/// Confirmed transfers per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Throughput {
    /// Over the last minute.
    pub transfers_per_second_1m: f64,
    /// Over the last 10 minutes.
    pub transfers_per_second_10m: f64,
    /// Confirmed in the last minute.
    pub confirmed_1m: i64,
    /// Confirmed in the last 10 minutes.
    pub confirmed_10m: i64,
    /// Width of one `series` bucket, seconds.
    pub bucket_secs: u32,
    /// Transfers/s per bucket over the last 10 minutes, oldest first (the last is the most recent).
    pub series: Vec<f64>,
}

/// One key of the treasury pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// `ed25519:…`.
    pub public_key: String,
    /// Treasury account.
    pub account_id: String,
    /// Last nonce used.
    pub last_nonce: Option<i64>,
    /// Process holding the lease, while the lease is live.
    pub lease_owner: Option<String>,
    /// When the lease lapses.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Whether the lease is live now.
    pub leased: bool,
    /// Open transactions signed with it.
    pub in_flight: i64,
}

/// The key pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyPoolView {
    /// Keys in the pool.
    pub total: usize,
    /// Keys with a live lease.
    pub leased: usize,
    /// Open transactions over all keys.
    pub in_flight: i64,
    /// Every key.
    pub keys: Vec<KeyView>,
}

/// What one distributor process reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DistributorView {
    /// Process (lease owner) id.
    pub owner: String,
    /// Why it is not sending; `null` while running normally.
    pub paused_reason: Option<String>,
    /// Last error it met.
    pub last_error: Option<String>,
    /// When.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Set on graceful stop.
    pub stopped_at: Option<DateTime<Utc>>,
    /// Not stopped and heard from in the last 30 s.
    pub alive: bool,
    /// What it reported with its last heartbeat: `rpc_endpoints` (name or redacted URL, healthy, requests,
    /// errors, throttled, failovers, broadcasts, last_error), `gas` per token (gas_per_action,
    /// transfers_per_tx, basis `configured` | `learned` | `raised_after_out_of_gas`, samples, p99_burnt),
    /// `congestion` (lanes backing off: public_key, error, resumes_in_ms), `gas_price`, `min_gas_price` and
    /// `gas_reserve` (yocto strings). `{}` before the first report.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// When these figures were read.
    pub generated_at: DateTime<Utc>,
    /// Chain head.
    pub chain: ChainView,
    /// Indexer progress.
    pub indexer: IndexerView,
    /// Claim counts.
    pub claims: ClaimsSummary,
    /// Transfers per second.
    pub throughput: Throughput,
    /// Treasury key pool.
    pub key_pool: KeyPoolView,
    /// Distributor processes, most recent heartbeat first.
    pub distributors: Vec<DistributorView>,
    /// Tokens `POST /send-ft` accepts; the first is the default.
    pub allowed_tokens: Vec<String>,
    /// The most recent replay requested through the API.
    pub replay: Option<ReplayView>,
    /// Webhook endpoints and the most recent dead deliveries.
    pub webhooks: WebhooksView,
    /// Open incidents (payments on chain the store did not expect), oldest first. While one is open for a
    /// token (or one with `token: null`, for every token) the distributor signs nothing for it.
    pub incidents: Vec<IncidentView>,
}
