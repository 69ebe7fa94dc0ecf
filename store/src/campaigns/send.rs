//! A single `POST /send-ft` above `api.single_approval_threshold`: a one-row campaign of kind `send` whose
//! claim is `held` until a second token approves it.
//!
//! The claim is still the manual claim of its `Idempotency-Key` (`source = 'manual'`, unique key,
//! request digest), so every exactly-once rule of manual sends holds unchanged: a retry finds the same
//! claim, another request under the key is refused. It also carries the campaign (`campaign_id`, row key
//! `#1`), which is what lets it be `held`. The campaign's name is `send <scoped key>` — unique per API token
//! and key — and its `file_digest` the request digest, so a retry finds the campaign as a re-upload would.

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{create_campaign, Campaign, CreateOutcome, NewCampaign};
use crate::claims::{Claim, NewClaim};
use crate::error::{Result, StoreError};
use crate::schema::claims;
use crate::types::{CampaignKind, ClaimStatus};

/// The campaign name of a held single send under `scoped_key`.
pub fn send_campaign_name(scoped_key: &str) -> String {
    format!("send {scoped_key}")
}

/// What [`hold_send`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldSend {
    /// A new held claim in a new campaign.
    Created {
        /// The one-row campaign.
        campaign: Box<Campaign>,
        /// Its held claim.
        claim: Box<Claim>,
    },
    /// A claim with this idempotency key exists already (with its campaign, if it has one); the caller
    /// compares request digests.
    Existing {
        /// The campaign holding it, when it was held too.
        campaign: Option<Box<Campaign>>,
        /// The claim.
        claim: Box<Claim>,
    },
}

/// Stores `row` (a manual claim: idempotency key and digest set) held in a one-row `send` campaign created by
/// API token `by`, in one DB transaction, unless a claim with its key exists.
pub async fn hold_send(conn: &mut AsyncPgConnection, row: &NewClaim, by: &str) -> Result<HeldSend> {
    let key = row
        .idempotency_key
        .clone()
        .ok_or_else(|| StoreError::Corrupt("manual claim without idempotency key".into()))?;
    let digest = row
        .request_digest
        .clone()
        .ok_or_else(|| StoreError::Corrupt("manual claim without request digest".into()))?;
    conn.transaction(async |conn| {
        if let Some(existing) = by_key(conn, &key).await? {
            let campaign = match existing.1 {
                Some(id) => super::get_campaign(conn, id).await?.map(Box::new),
                None => None,
            };
            return Ok(HeldSend::Existing {
                campaign,
                claim: Box::new(existing.0),
            });
        }
        let new = NewCampaign {
            kind: CampaignKind::Send,
            name: send_campaign_name(&key),
            token_contract: row.token_contract.clone(),
            created_by: by.to_string(),
            file_digest: digest,
            approval_required: true,
            rows_total: 1,
            rows_invalid: 0,
            amount_total: row.amount,
        };
        let campaign = match create_campaign(conn, &new).await? {
            CreateOutcome::Created(c) => c,
            // A concurrent request with the same key won: its claim is committed with the campaign.
            CreateOutcome::Existing(c) | CreateOutcome::NameTaken(c) => {
                let (claim, _) = by_key(conn, &key)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("send campaign {} without its claim", c.id)))?;
                return Ok(HeldSend::Existing {
                    campaign: Some(Box::new(c)),
                    claim: Box::new(claim),
                });
            }
        };
        // A claim under the same key inserted concurrently (below the threshold) makes this fail on the
        // unique key and roll the campaign back: the client's retry then finds that claim.
        let claim: Claim = diesel::insert_into(claims::table)
            .values((
                row,
                claims::status.eq(ClaimStatus::Held),
                claims::campaign_id.eq(campaign.id),
                claims::row_key.eq("#1"),
            ))
            .returning(Claim::as_returning())
            .get_result(conn)
            .await?;
        tracing::info!(campaign = campaign.id, claim = claim.id.0, by, amount = %claim.amount, "single send held for approval");
        Ok(HeldSend::Created {
            campaign: Box::new(campaign),
            claim: Box::new(claim),
        })
    })
    .await
}

async fn by_key(conn: &mut AsyncPgConnection, key: &str) -> Result<Option<(Claim, Option<i64>)>> {
    Ok(claims::table
        .filter(claims::idempotency_key.eq(key))
        .select((Claim::as_select(), claims::campaign_id))
        .first(conn)
        .await
        .optional()?)
}
