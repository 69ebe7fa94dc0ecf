//! A campaign's claims one page at a time, in row order (claim id), for the failures report and for tools.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::Result;
use crate::schema::claims;
use crate::types::{ClaimId, ClaimStatus, Yocto};

/// One claim of a campaign, with what a report about it needs.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = claims, check_for_backend(diesel::pg::Pg))]
pub struct CampaignClaim {
    /// Claim id.
    pub id: ClaimId,
    /// The row's key (`external_id`, or `#<line number>`).
    #[diesel(select_expression = claims::row_key.assume_not_null())]
    pub row_key: String,
    /// Receiving account.
    pub receiver_id: String,
    /// Amount, smallest unit.
    pub amount: Yocto,
    /// Status.
    pub status: ClaimStatus,
    /// Last failure message.
    pub last_error: Option<String>,
    /// Transactions carrying it that provably died.
    pub attempts: i32,
    /// The kind of its last transient failure (`paused`, `balance`, `registration`, `gas`, `unknown`).
    pub retry_kind: Option<String>,
}

/// Up to `limit` claims of campaign `id` in `status`, with a claim id above `after`, by claim id.
pub async fn campaign_claims(
    conn: &mut AsyncPgConnection,
    id: i64,
    status: ClaimStatus,
    after: Option<ClaimId>,
    limit: i64,
) -> Result<Vec<CampaignClaim>> {
    Ok(claims::table
        .filter(claims::campaign_id.eq(id))
        .filter(claims::status.eq(status))
        .filter(claims::id.gt(after.map_or(0, |a| a.0)))
        .order(claims::id.asc())
        .limit(limit)
        .select(CampaignClaim::as_select())
        .load(conn)
        .await?)
}
