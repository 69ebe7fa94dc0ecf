//! The JSON shapes of requests and answers. Money is always a decimal string (u128 end to end), never a
//! JSON number.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use payouts_store::claims::Claim;
use payouts_store::incidents::Incident;
use payouts_store::webhooks::{Delivery, EndpointSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /send-ft` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendFtRequest {
    /// NEAR account receiving the tokens, e.g. `alice.near`.
    #[schema(example = "alice.devnet")]
    #[serde(deserialize_with = "strings::receiver_id")]
    pub receiver_id: String,
    /// Amount in the token's smallest unit: a decimal string of digits only, more than 0, at most the
    /// configured maximum.
    #[schema(example = "1000000000000000000000000", pattern = "^[0-9]{1,39}$")]
    #[serde(deserialize_with = "strings::amount")]
    pub amount: String,
    /// NEP-141 contract; one of the configured allowlist. Omitted: the first of the allowlist.
    #[serde(default, deserialize_with = "strings::token")]
    #[schema(example = "token.devnet")]
    pub token: Option<String>,
    /// Stored with the claim and appended to the `ft_transfer` memo. Printable text, bounded length.
    #[serde(default, deserialize_with = "strings::memo")]
    pub memo: Option<String>,
    /// `false`: pay this claim with an `ft_transfer` of its own, never merged with other claims of the same
    /// receiver (`distributor.coalesce`). Omitted: `true`.
    #[serde(default)]
    pub coalesce: Option<bool>,
}

/// String fields whose type errors name the field (serde's own message does not).
mod strings {
    use std::fmt;

    use serde::de::{Deserializer, Error, Visitor};

    struct Named(&'static str);

    impl<'de> Visitor<'de> for Named {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
    }

    struct OptNamed(&'static str);

    impl<'de> Visitor<'de> for OptNamed {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_string(Named(self.0)).map(Some)
        }
    }

    pub fn receiver_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_string(Named("receiver_id as a JSON string (a NEAR account id)"))
    }

    pub fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_string(Named(
            "amount as a JSON string of digits (money is never a JSON number)",
        ))
    }

    pub fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(OptNamed("token as a JSON string (a NEP-141 contract id)"))
    }

    pub fn memo<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(OptNamed("memo as a JSON string"))
    }
}

/// A claim (one payout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimView {
    /// Claim id.
    pub id: i64,
    /// `event` (found on chain by an indexer rule) or `manual` (`POST /send-ft`).
    pub source: String,
    /// `pending`, `submitted`, `confirmed` or `failed`.
    pub status: String,
    /// NEP-141 contract paying it.
    pub token: String,
    /// Receiving account.
    pub receiver_id: String,
    /// Amount in the token's smallest unit (decimal string).
    pub amount: String,
    /// Memo.
    pub memo: Option<String>,
    /// Transactions carrying it that provably died.
    pub attempts: i32,
    /// Last failure message (the reason of a `failed` claim).
    pub last_error: Option<String>,
    /// A `pending` claim whose transfer failed for a transient reason: `paused`, `balance`, `registration` or
    /// `unknown` (it is tried again from `retry_at`, a bounded number of times).
    pub retry_kind: Option<String>,
    /// Not tried again before this.
    pub retry_at: Option<DateTime<Utc>>,
    /// Hash of the transaction carrying it now (or last).
    pub tx_hash: Option<String>,
    /// Event claims: the indexer rule.
    pub rule: Option<String>,
    /// Event claims: the receipt whose log held the event.
    pub receipt_id: Option<String>,
    /// Event claims: height of the block with the event.
    pub trigger_block_height: Option<i64>,
    /// Manual claims: the client's `Idempotency-Key` (scoped to the API token that sent it).
    pub idempotency_key: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Whether it may share an `ft_transfer` with other claims of its receiver (coalescing).
    #[serde(default = "yes")]
    pub coalesce: bool,
    /// `GET /claims/{id}`: the transfer carrying (or that paid) it, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferView>,
}

fn yes() -> bool {
    true
}

/// The `ft_transfer` that carries a claim: one action of its transaction, paying this claim alone or
/// merged with others of the same receiver (their sum, every id in its memo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// The transaction's hash.
    pub tx_hash: String,
    /// The transaction's status (`signed`, `submitted`, `included`, `final`, `failed`, `dropped`).
    pub tx_status: String,
    /// Index of the transfer among the transaction's `ft_transfer` actions (0-based).
    pub transfer_index: usize,
    /// Every claim the transfer pays (this one included), in memo order.
    pub claim_ids: Vec<i64>,
}

impl From<payouts_store::transactions::ClaimTransfer> for TransferView {
    fn from(t: payouts_store::transactions::ClaimTransfer) -> Self {
        Self {
            tx_hash: t.tx_hash,
            tx_status: t.tx_status.as_str().to_string(),
            transfer_index: t.transfer_index,
            claim_ids: t.claim_ids,
        }
    }
}

impl From<Claim> for ClaimView {
    fn from(c: Claim) -> Self {
        Self {
            id: c.id.0,
            source: c.source.as_str().to_string(),
            status: c.status.as_str().to_string(),
            token: c.token_contract,
            receiver_id: c.receiver_id,
            amount: c.amount.to_string(),
            memo: c.memo,
            attempts: c.attempts,
            last_error: c.last_error,
            retry_kind: c.retry_kind,
            retry_at: c.retry_at,
            tx_hash: c.current_tx_hash,
            rule: c.rule,
            receipt_id: c.receipt_id,
            trigger_block_height: c.trigger_block_height,
            idempotency_key: c
                .idempotency_key
                .as_deref()
                .map(|k| client_key(k).to_string()),
            created_at: c.created_at,
            updated_at: c.updated_at,
            confirmed_at: c.confirmed_at,
            coalesce: c.may_coalesce,
            transfer: None,
        }
    }
}

/// The client's `Idempotency-Key` of a stored key: manual sends store `<token name> <key>` (keys are scoped
/// to the API token that made them); keys stored before that scoping, or by other writers, have no space.
pub fn client_key(stored: &str) -> &str {
    stored.split_once(' ').map_or(stored, |(_, k)| k)
}

/// One page of `GET /claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimPage {
    /// Newest first.
    pub claims: Vec<ClaimView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

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

/// State of a replay started with `POST /admin/replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// Running.
    Running,
    /// Finished.
    Done,
    /// Stopped with an error.
    Failed,
}

/// A replay job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayView {
    /// Job number (per process).
    pub id: u64,
    /// First block.
    pub from: u64,
    /// Last block (inclusive).
    pub to: u64,
    /// Writes rolled back.
    pub dry_run: bool,
    /// State.
    pub state: ReplayState,
    /// Last block committed so far.
    pub progress_height: Option<u64>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Blocks read.
    pub blocks: u64,
    /// Matching event items.
    pub events: u64,
    /// New claim rows (would-be, when dry).
    pub new_claims: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// `POST /admin/replay` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// First block height.
    pub from: u64,
    /// Last block height (inclusive).
    pub to: u64,
    /// Roll every write back and only report.
    #[serde(default)]
    pub dry_run: bool,
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
    /// The most recent replay started through the API in this process.
    pub replay: Option<ReplayView>,
    /// Webhook endpoints and the most recent dead deliveries.
    pub webhooks: WebhooksView,
    /// Open incidents (payments on chain the store did not expect), oldest first. While one is open for a
    /// token (or one with `token: null`, for every token) the distributor signs nothing for it.
    pub incidents: Vec<IncidentView>,
}

/// One incident (`GET /incidents`, `/status`, `POST /admin/incidents/{id}/clear`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    /// Id; the id `POST /admin/incidents/{id}/clear` takes.
    pub id: i64,
    /// `unexpected_memo_payment`, `dead_transaction_landed` or `nonce_ahead`.
    #[schema(example = "unexpected_memo_payment")]
    pub kind: String,
    /// The token it pauses; `null`: every token.
    pub token: Option<String>,
    /// Transaction concerned (for a memo payment: the treasury-key transaction that made it, if it was one).
    pub tx_hash: Option<String>,
    /// Receipt concerned.
    pub receipt_id: Option<String>,
    /// Claim concerned.
    pub claim_id: Option<i64>,
    /// Treasury key concerned.
    pub public_key: Option<String>,
    /// Block where it was seen.
    pub block_height: Option<i64>,
    /// Kind-specific facts: memo payments `{from, to, amount, signed_by_treasury_key}` (amount a decimal
    /// string), dead transactions `{signer_id, nonce, claim_ids, declared_dead}`, nonces `{account_id,
    /// stored_nonce, chain_nonce}`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// When it was recorded.
    pub detected_at: DateTime<Utc>,
    /// When an admin cleared it; `null` while open.
    pub cleared_at: Option<DateTime<Utc>>,
    /// Who cleared it (API token name, or `cli:<name>`).
    pub cleared_by: Option<String>,
}

impl From<Incident> for IncidentView {
    fn from(i: Incident) -> Self {
        Self {
            id: i.id,
            kind: i.kind.as_str().to_string(),
            token: i.token_contract,
            tx_hash: i.tx_hash,
            receipt_id: i.receipt_id,
            claim_id: i.claim_id,
            public_key: i.public_key,
            block_height: i.block_height,
            details: i.details,
            detected_at: i.detected_at,
            cleared_at: i.cleared_at,
            cleared_by: i.cleared_by,
        }
    }
}

/// `GET /incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentList {
    /// Newest first.
    pub incidents: Vec<IncidentView>,
}

/// One webhook endpoint's state. Its URL is never shown (it may carry credentials): the name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookEndpointView {
    /// `[[webhooks.endpoints]] name`.
    pub name: String,
    /// Whether the configuration still lists it (a removed endpoint stays, disabled, with its deliveries).
    pub enabled: bool,
    /// Event types it wants (`claim.created`, `claim.submitted`, `claim.confirmed`, `claim.failed`,
    /// `distributor.paused`, `incident.opened`, `campaign.approved`, `campaign.rejected`).
    pub events: Vec<String>,
    /// Deliveries waiting, including retries in back-off.
    pub pending: i64,
    /// Deliveries that ran out of attempts (until redelivered).
    pub dead: i64,
    /// Deliveries answered with a 2xx since the endpoint was first configured.
    pub delivered_total: i64,
    /// Last 2xx answer.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Creation time of the oldest pending delivery (how far behind the endpoint is).
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Last error of the oldest pending delivery, if it failed before (it blocks the ones behind it).
    pub head_error: Option<String>,
}

impl From<EndpointSummary> for WebhookEndpointView {
    fn from(e: EndpointSummary) -> Self {
        Self {
            name: e.name,
            enabled: e.enabled,
            events: e.events,
            pending: e.pending,
            dead: e.dead,
            delivered_total: e.delivered_total,
            last_delivered_at: e.last_delivered_at,
            oldest_pending_at: e.oldest_pending_at,
            head_error: e.head_error,
        }
    }
}

/// One webhook delivery (one event to one endpoint), without its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryView {
    /// Delivery id (creation order); the id `POST /admin/webhooks/{id}/redeliver` takes.
    pub id: i64,
    /// Endpoint name.
    pub endpoint: String,
    /// The event's id (a UUID), shared by every endpoint told of the event; receivers deduplicate on it.
    #[schema(example = "0b7e6f9e-3c1d-4f63-9a55-2f1c1f0e8d7a")]
    pub event_id: String,
    /// `claim.created`, `claim.submitted`, `claim.confirmed`, `claim.failed`, `distributor.paused` or
    /// `incident.opened`, `campaign.approved` or `campaign.rejected`.
    pub event_type: String,
    /// The claim, for claim events.
    pub claim_id: Option<i64>,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Requests made so far (reset to 0 by a redelivery).
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// HTTP status of the last answer, if there was one.
    pub last_http_status: Option<i32>,
    /// When the state change happened.
    pub created_at: DateTime<Utc>,
    /// When it ran out of attempts; `null` unless dead.
    pub dead_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for WebhookDeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            endpoint: d.endpoint,
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            claim_id: d.claim_id,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            last_http_status: d.last_http_status,
            created_at: d.created_at,
            dead_at: d.dead_at,
        }
    }
}

/// Webhook delivery state, in `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhooksView {
    /// Every endpoint ever configured, by name (empty when webhooks are not used).
    pub endpoints: Vec<WebhookEndpointView>,
    /// The 20 most recent dead deliveries, newest first; `POST /admin/webhooks/{id}/redeliver` queues one
    /// again.
    pub dead: Vec<WebhookDeliveryView>,
}
