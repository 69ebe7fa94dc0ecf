//! What a campaign looks like from outside: its claims counted by status, the paid total, and the status the
//! API shows.
//!
//! # Status on read
//! `running` and `done` are **computed when read** ([`shown_status`]), never stored: the stored status only
//! records the decisions (`uploaded`, `awaiting_approval`, `approved`, `rejected`). A stored move would need
//! the distributor (and the indexer, and `retry-failed`) to touch the campaign row in every claim transition's
//! DB transaction, on the hot path; computing it from the counts read in the same query can never disagree
//! with the claims. The rule: a campaign that was released (`uploaded` or `approved`) is `done` when none of
//! its claims is `held`, `pending` or `submitted`, else `running` once any claim has left `pending`
//! (`submitted`, `confirmed` or `failed`), else it keeps its stored status. `retry-failed` turns a `done`
//! campaign back to `running` simply by re-queueing claims.
//!
//! # Settled counts do not move
//! Once a campaign shows `done` or `rejected`, each of its claims is `confirmed` (final) or `failed`, and a
//! failed claim moves again only through `retry::retry_failed`, which bumps the campaign's `updated_at` in the
//! same DB transaction. So the counts of a settled campaign are a function of `(id, updated_at)`: readers may
//! keep them keyed by both ([`is_settled`]) instead of counting a million rows on every read.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::Campaign;
use crate::error::Result;
use crate::schema::campaigns;
use crate::types::{CampaignStatus, ClaimStatus, Yocto};

/// A campaign's claims counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimCounts {
    /// Waiting for approval.
    pub held: i64,
    /// Queued for the distributor.
    pub pending: i64,
    /// In a live transaction.
    pub submitted: i64,
    /// Paid.
    pub confirmed: i64,
    /// Failed for good (until `retry-failed` re-queues a retryable one).
    pub failed: i64,
    /// Sum of the confirmed claims' amounts.
    pub paid: Yocto,
}

impl ClaimCounts {
    fn add(&mut self, status: ClaimStatus, count: i64, amount: Yocto) {
        match status {
            ClaimStatus::Held => self.held += count,
            ClaimStatus::Pending => self.pending += count,
            ClaimStatus::Submitted => self.submitted += count,
            ClaimStatus::Confirmed => {
                self.confirmed += count;
                self.paid = Yocto(self.paid.0.saturating_add(amount.0));
            }
            ClaimStatus::Failed => self.failed += count,
        }
    }

    /// Claims not yet settled (held, pending or submitted).
    pub fn open(&self) -> i64 {
        self.held + self.pending + self.submitted
    }
}

/// The status to show for `campaign` given its claims (see the module doc).
pub fn shown_status(stored: CampaignStatus, counts: &ClaimCounts) -> CampaignStatus {
    match stored {
        CampaignStatus::Uploaded | CampaignStatus::Approved | CampaignStatus::Running => {
            if counts.open() == 0 {
                CampaignStatus::Done
            } else if counts.submitted + counts.confirmed + counts.failed > 0 {
                CampaignStatus::Running
            } else {
                stored
            }
        }
        other => other,
    }
}

/// Whether counts read for a campaign in `stored` status are final until its `updated_at` moves.
pub fn is_settled(stored: CampaignStatus, counts: &ClaimCounts) -> bool {
    matches!(
        shown_status(stored, counts),
        CampaignStatus::Done | CampaignStatus::Rejected
    )
}

/// Claim counts of each campaign in `ids` (campaigns without claims are absent).
pub async fn claim_counts(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<HashMap<i64, ClaimCounts>> {
    use diesel::sql_types::{Array, BigInt, Numeric, Text};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        campaign_id: i64,
        #[diesel(sql_type = Text)]
        status: ClaimStatus,
        #[diesel(sql_type = BigInt)]
        count: i64,
        #[diesel(sql_type = Numeric)]
        amount: Yocto,
    }
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // The (campaign_id, row_key) unique index serves the lookup.
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT campaign_id, status, count(*) AS count, coalesce(sum(amount), 0) AS amount \
         FROM claims WHERE campaign_id = ANY($1) GROUP BY campaign_id, status",
    )
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    let mut out: HashMap<i64, ClaimCounts> = HashMap::new();
    for r in rows {
        out.entry(r.campaign_id)
            .or_default()
            .add(r.status, r.count, r.amount);
    }
    Ok(out)
}

/// Campaigns newest first (by id), those with an id below `before` when given, at most `limit`.
pub async fn list_campaigns(
    conn: &mut AsyncPgConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Campaign>> {
    let mut q = campaigns::table
        .select(Campaign::as_select())
        .order(campaigns::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        q = q.filter(campaigns::id.lt(before));
    }
    Ok(q.load(conn).await?)
}
