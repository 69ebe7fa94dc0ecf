//! Replays, incidents and webhook deliveries.

use chrono::{DateTime, Utc};
use payouts_store::incidents::Incident;
use payouts_store::webhooks::{Delivery, EndpointSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
/// State of a replay requested with `POST /admin/replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// Waiting for an indexer process (`payouts indexer`, `payouts run`) to take it.
    Queued,
    /// An indexer process runs it.
    Running,
    /// Finished.
    Done,
    /// Stopped with an error.
    Failed,
}

/// A replay job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplayView {
    /// Job id.
    pub id: u64,
    /// First block.
    pub from: u64,
    /// Last block (inclusive).
    pub to: u64,
    /// Writes rolled back.
    pub dry_run: bool,
    /// State.
    pub state: ReplayState,
    /// Name of the API token that asked.
    pub requested_by: String,
    /// Last block committed so far.
    pub progress_height: Option<u64>,
    /// Asked.
    pub requested_at: DateTime<Utc>,
    /// First taken by an indexer process.
    pub started_at: Option<DateTime<Utc>>,
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
