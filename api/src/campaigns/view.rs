//! The JSON of a campaign, as `GET /campaigns` and `GET /campaigns/{id}` answer it (one shape for both; the
//! dashboard and the CLI build on it). Amounts are decimal strings in the token's smallest unit; progress is
//! two integers (`rows_paid` of `rows_valid`), never a float.

use chrono::{DateTime, Utc};
use payouts_store::campaigns::summary::{shown_status, ClaimCounts};
use payouts_store::campaigns::Campaign;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A campaign's claims counted by status (every status present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimsByStatus {
    /// Waiting for a second token's approval.
    pub held: i64,
    /// Queued for the distributor.
    pub pending: i64,
    /// In a live transaction.
    pub submitted: i64,
    /// Paid.
    pub confirmed: i64,
    /// Failed (see `GET /campaigns/{id}/failures.csv`).
    pub failed: i64,
}

/// One campaign and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignSummary {
    /// Campaign id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// `file` (an uploaded CSV / JSON lines file) or `send` (one `POST /send-ft` above
    /// `api.single_approval_threshold`).
    #[schema(example = "file")]
    pub kind: String,
    /// NEP-141 contract paying it.
    pub token: String,
    /// `uploaded`, `awaiting_approval`, `approved`, `rejected`, `running` or `done`. `running` (a claim has
    /// left `pending`) and `done` (no claim held, pending or submitted) are computed from the claims on read.
    #[schema(example = "running")]
    pub status: String,
    /// Its total was above the approval threshold: a second token must approve it before anything is paid.
    pub approval_required: bool,
    /// Name of the API token that created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Who approved it.
    pub approved_by: Option<String>,
    /// When it was approved.
    pub approved_at: Option<DateTime<Utc>>,
    /// Who rejected it.
    pub rejected_by: Option<String>,
    /// When it was rejected.
    pub rejected_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// sha256 of the uploaded file, hex.
    pub file_digest: String,
    /// Rows in the file, valid and invalid.
    pub rows_total: i64,
    /// Rows skipped as invalid (`skip_invalid`).
    pub rows_invalid: i64,
    /// Rows stored as claims (`rows_total - rows_invalid`).
    pub rows_valid: i64,
    /// Rows paid (confirmed claims): progress is `rows_paid` of `rows_valid`.
    pub rows_paid: i64,
    /// Sum of the valid rows, smallest unit.
    #[schema(example = "1500000")]
    pub amount_total: String,
    /// Sum of the confirmed claims, smallest unit.
    #[schema(example = "1000000")]
    pub paid_total: String,
    /// Failed claims (the same as `claims.failed`).
    pub failed: i64,
    /// Claims by status.
    pub claims: ClaimsByStatus,
}

impl CampaignSummary {
    /// The summary of `c` whose claims counted `counts`.
    pub fn new(c: Campaign, counts: ClaimCounts) -> Self {
        Self {
            id: c.id,
            kind: c.kind.to_string(),
            token: c.token_contract,
            status: shown_status(c.status, &counts).to_string(),
            approval_required: c.approval_required,
            created_by: c.created_by,
            created_at: c.created_at,
            approved_by: c.approved_by,
            approved_at: c.approved_at,
            rejected_by: c.rejected_by,
            rejected_at: c.rejected_at,
            reject_reason: c.reject_reason,
            file_digest: c.file_digest,
            rows_total: c.rows_total,
            rows_invalid: c.rows_invalid,
            rows_valid: c.rows_total - c.rows_invalid,
            rows_paid: counts.confirmed,
            amount_total: c.amount_total.to_string(),
            paid_total: counts.paid.to_string(),
            failed: counts.failed,
            claims: ClaimsByStatus {
                held: counts.held,
                pending: counts.pending,
                submitted: counts.submitted,
                confirmed: counts.confirmed,
                failed: counts.failed,
            },
            name: c.name,
        }
    }
}

/// One page of `GET /campaigns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CampaignPage {
    /// Newest first.
    pub campaigns: Vec<CampaignSummary>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
