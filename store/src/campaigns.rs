//! Campaigns (issue 20): a named set of transfers from one uploaded file, paid exactly once per row, held for
//! a second person's approval above a threshold.
//!
//! # Data model
//! - `campaigns`: id, kind (`file` | `send`), a service-wide unique `name`, the token contract, `created_by`
//!   (the API token's name, never its secret), `file_digest` (sha256 of the uploaded bytes, hex), status
//!   ([`CampaignStatus`]: `uploaded | awaiting_approval | approved | rejected | running | done`),
//!   `approval_required`, row counts, `amount_total` (`NUMERIC(39,0)`, the sum of the valid rows), and who
//!   approved or rejected it and when.
//! - Each valid row is one claim (`source = 'campaign'`) carrying `campaign_id` and `row_key` (the row's
//!   `external_id`, or `#<row number>` without one), unique together (`claims_campaign_key`). Keyed by row
//!   number, "the same file" means the same rows in the same order: reordering rows changes their keys
//!   (under the same name the digest refuses the changed file anyway; under a new name it is a new campaign).
//!
//! # Exactly once per row
//! The row key is the claim's natural key, as the receipt/log/rule triple is for event claims: rows are inserted
//! with `ON CONFLICT ON CONSTRAINT claims_campaign_key DO NOTHING`, so a retried request, a crash between chunks
//! or a second upload can never create a second claim for a row, and the distributor's exactly-once rules
//! (DESIGN.md) take over from there. Re-uploading the same bytes under the same name finds the existing campaign
//! by name and digest and inserts nothing ([`CreateOutcome::Existing`]); other bytes under the same name are
//! refused ([`CreateOutcome::NameTaken`], a 409). Names are unique across API tokens on purpose: another token
//! uploading the same file must not pay it a second time. The campaign row and all its claims are written in
//! one DB transaction by the caller, so a campaign is never half stored.
//!
//! # The approval gate
//! A campaign whose total is above `api.approval_threshold` (and a single send above
//! `api.single_approval_threshold`, stored as a one-row campaign of kind `send`) gets its claims inserted
//! `held`. The distributor only ever locks `pending` claims (`lock_pending`, `lock_pending_of_receivers`,
//! `peek_pending_receivers`, `pending_tokens` all filter `status = 'pending'`), so a held claim cannot enter a
//! batch: the gate is the claim's status itself, with no join on the hot path and no scan of held rows by the
//! partial pending indexes. [`approve_campaign`] records the approver and turns the claims `pending` in one DB
//! transaction, under a row lock on the campaign; the creator's own approval is refused here and by the
//! `campaigns_second_person` CHECK. [`reject_campaign`] fails the held claims with the reason. The database
//! also refuses a held claim outside a campaign (`claims_held_in_campaign`) and a campaign past approval
//! without an approver (`campaigns_gate`). Tests: store `it::campaigns`.
//!
//! # Status, failures, retries
//! `running` and `done` are computed when read, from the claims ([`summary`]); the stored status records the
//! decisions only. Which failed claims `retry-failed` may queue again, and why that never pays a row twice:
//! [`retry`].
//!
//! # Streaming (the API's side, for the record)
//! `POST /campaigns` spools the body to a temporary file while hashing it (never the whole file in memory,
//! size capped by config), so the digest is known before any database work and a slow client never holds a
//! DB transaction open; it then reads the file line by line, validating each row, and inserts valid rows in
//! chunks of [`INSERT_CHUNK`] inside one DB transaction, rolling it back if any row is invalid and
//! `skip_invalid` is off. A dry run makes the same pass with no writes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::schema::{campaigns, claims};
use crate::types::{CampaignKind, CampaignStatus, ClaimStatus, Yocto};

pub mod retry;
pub mod rows;
pub mod send;
pub mod summary;

/// Rows per INSERT statement of campaign claims.
pub const INSERT_CHUNK: usize = 5_000;

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = campaigns, check_for_backend(diesel::pg::Pg))]
pub struct Campaign {
    /// Primary key.
    pub id: i64,
    /// What it was made from.
    pub kind: CampaignKind,
    /// Unique name (across API tokens).
    pub name: String,
    /// NEP-141 contract paying it.
    pub token_contract: String,
    /// Name of the API token that created it.
    pub created_by: String,
    /// sha256 of the uploaded bytes, hex.
    pub file_digest: String,
    /// Lifecycle state.
    pub status: CampaignStatus,
    /// Its total was above the approval threshold: a second token must approve it.
    pub approval_required: bool,
    /// Rows in the file (valid and invalid).
    pub rows_total: i64,
    /// Rows skipped as invalid (`skip_invalid`).
    pub rows_invalid: i64,
    /// Sum of the valid rows' amounts, in the token's smallest unit.
    pub amount_total: Yocto,
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
    /// Row creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A campaign to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    /// What it is made from.
    pub kind: CampaignKind,
    /// Unique name.
    pub name: String,
    /// Token contract.
    pub token_contract: String,
    /// Creating API token's name.
    pub created_by: String,
    /// sha256 of the uploaded bytes, hex (64 lowercase digits).
    pub file_digest: String,
    /// Whether a second token must approve it before anything is paid.
    pub approval_required: bool,
    /// Rows in the file.
    pub rows_total: i64,
    /// Rows skipped as invalid.
    pub rows_invalid: i64,
    /// Sum of the valid rows.
    pub amount_total: Yocto,
}

/// What [`create_campaign`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new campaign: insert its rows next, in the same DB transaction.
    Created(Campaign),
    /// The same name and the same bytes: a re-upload. Nothing to insert.
    Existing(Campaign),
    /// The name is taken by a campaign with other bytes.
    NameTaken(Campaign),
}

/// One valid row of a campaign, ready to be a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    /// `external_id`, or `#<row number>`.
    pub row_key: String,
    /// Receiving account.
    pub receiver_id: String,
    /// Amount in the token's smallest unit.
    pub amount: Yocto,
    /// Memo passed to `ft_transfer`.
    pub memo: Option<String>,
}

/// What an approval or rejection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Recorded; `claims` held claims were released (approval) or failed (rejection).
    Done {
        /// The campaign after the change.
        campaign: Box<Campaign>,
        /// Claims moved out of `held`.
        claims: usize,
    },
    /// The approver is the creator: refused, nothing changed.
    SelfApproval,
    /// The campaign is not awaiting approval (already decided, or never needed it): nothing changed.
    NotAwaiting(CampaignStatus),
}

/// Creates a campaign, or finds the one already stored under its name. Run it and
/// [`insert_campaign_claims`] in one DB transaction.
pub async fn create_campaign(
    conn: &mut AsyncPgConnection,
    new: &NewCampaign,
) -> Result<CreateOutcome> {
    let status = if new.approval_required {
        CampaignStatus::AwaitingApproval
    } else {
        CampaignStatus::Uploaded
    };
    let created: Option<Campaign> = diesel::insert_into(campaigns::table)
        .values((
            campaigns::kind.eq(new.kind),
            campaigns::name.eq(&new.name),
            campaigns::token_contract.eq(&new.token_contract),
            campaigns::created_by.eq(&new.created_by),
            campaigns::file_digest.eq(&new.file_digest),
            campaigns::status.eq(status),
            campaigns::approval_required.eq(new.approval_required),
            campaigns::rows_total.eq(new.rows_total),
            campaigns::rows_invalid.eq(new.rows_invalid),
            campaigns::amount_total.eq(new.amount_total),
        ))
        .on_conflict(campaigns::name)
        .do_nothing()
        .returning(Campaign::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(c) = created {
        return Ok(CreateOutcome::Created(c));
    }
    let existing = campaign_by_name(conn, &new.name)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("campaign `{}` vanished", new.name)))?;
    if existing.file_digest == new.file_digest {
        Ok(CreateOutcome::Existing(existing))
    } else {
        Ok(CreateOutcome::NameTaken(existing))
    }
}

/// Inserts `rows` as claims of `campaign` (`held` while it awaits approval, else `pending`), skipping rows whose
/// key is already stored. Returns how many were new. Atomic per call; chunk large files with
/// [`INSERT_CHUNK`] inside the caller's DB transaction.
pub async fn insert_campaign_claims(
    conn: &mut AsyncPgConnection,
    campaign: &Campaign,
    rows: &[CampaignRow],
) -> Result<usize> {
    use diesel::sql_types::{Array, BigInt, Nullable, Numeric, Text};
    if rows.is_empty() {
        return Ok(0);
    }
    let status = if campaign.status == CampaignStatus::AwaitingApproval {
        ClaimStatus::Held
    } else {
        ClaimStatus::Pending
    };
    let keys: Vec<&str> = rows.iter().map(|r| r.row_key.as_str()).collect();
    let receivers: Vec<&str> = rows.iter().map(|r| r.receiver_id.as_str()).collect();
    let amounts: Vec<Yocto> = rows.iter().map(|r| r.amount).collect();
    let memos: Vec<Option<&str>> = rows.iter().map(|r| r.memo.as_deref()).collect();
    Ok(diesel::sql_query(
        "INSERT INTO claims (source, campaign_id, row_key, token_contract, receiver_id, amount, memo, status) \
         SELECT 'campaign', $1, k, $2, r, a, m, $3 \
         FROM unnest($4::text[], $5::text[], $6::numeric[], $7::text[]) AS u(k, r, a, m) \
         ON CONFLICT ON CONSTRAINT claims_campaign_key DO NOTHING",
    )
    .bind::<BigInt, _>(campaign.id)
    .bind::<Text, _>(&campaign.token_contract)
    .bind::<Text, _>(status)
    .bind::<Array<Text>, _>(keys)
    .bind::<Array<Text>, _>(receivers)
    .bind::<Array<Numeric>, _>(amounts)
    .bind::<Array<Nullable<Text>>, _>(memos)
    .execute(conn)
    .await?)
}

/// Reads a campaign by id.
pub async fn get_campaign(conn: &mut AsyncPgConnection, id: i64) -> Result<Option<Campaign>> {
    Ok(campaigns::table
        .find(id)
        .select(Campaign::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Reads a campaign by name.
pub async fn campaign_by_name(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<Option<Campaign>> {
    Ok(campaigns::table
        .filter(campaigns::name.eq(name))
        .select(Campaign::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Locks the campaign row and checks the four-eyes rule; `Ok(Err(..))` is a refusal.
async fn lock_awaiting(
    conn: &mut AsyncPgConnection,
    id: i64,
    by: &str,
) -> Result<std::result::Result<Campaign, Decision>> {
    let campaign: Campaign = campaigns::table
        .find(id)
        .for_update()
        .select(Campaign::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("campaign {id}")))?;
    if campaign.status != CampaignStatus::AwaitingApproval {
        return Ok(Err(Decision::NotAwaiting(campaign.status)));
    }
    if campaign.created_by == by {
        return Ok(Err(Decision::SelfApproval));
    }
    Ok(Ok(campaign))
}

/// Approves a campaign awaiting approval on behalf of API token `by` (not its creator) and releases its held
/// claims to the distributor, in one DB transaction.
pub async fn approve_campaign(conn: &mut AsyncPgConnection, id: i64, by: &str) -> Result<Decision> {
    conn.transaction(async |conn| {
        if let Err(refusal) = lock_awaiting(conn, id, by).await? {
            return Ok(refusal);
        }
        let campaign = diesel::update(campaigns::table.find(id))
            .set((
                campaigns::status.eq(CampaignStatus::Approved),
                campaigns::approved_by.eq(by),
                campaigns::approved_at.eq(diesel::dsl::now),
                campaigns::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Campaign::as_returning())
            .get_result(conn)
            .await?;
        let claims = diesel::update(
            claims::table
                .filter(claims::campaign_id.eq(id))
                .filter(claims::status.eq(ClaimStatus::Held)),
        )
        .set((
            claims::status.eq(ClaimStatus::Pending),
            claims::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        tracing::info!(campaign = id, by, claims, "campaign approved");
        Ok::<_, StoreError>(Decision::Done {
            campaign: Box::new(campaign),
            claims,
        })
    })
    .await
}

/// Rejects a campaign awaiting approval on behalf of API token `by` (not its creator): its held claims fail
/// with `reason`, unpaid, in one DB transaction.
pub async fn reject_campaign(
    conn: &mut AsyncPgConnection,
    id: i64,
    by: &str,
    reason: &str,
) -> Result<Decision> {
    conn.transaction(async |conn| {
        if let Err(refusal) = lock_awaiting(conn, id, by).await? {
            return Ok(refusal);
        }
        let campaign = diesel::update(campaigns::table.find(id))
            .set((
                campaigns::status.eq(CampaignStatus::Rejected),
                campaigns::rejected_by.eq(by),
                campaigns::rejected_at.eq(diesel::dsl::now),
                campaigns::reject_reason.eq(reason),
                campaigns::updated_at.eq(diesel::dsl::now),
            ))
            .returning(Campaign::as_returning())
            .get_result(conn)
            .await?;
        let claims = diesel::update(
            claims::table
                .filter(claims::campaign_id.eq(id))
                .filter(claims::status.eq(ClaimStatus::Held)),
        )
        .set((
            claims::status.eq(ClaimStatus::Failed),
            claims::last_error.eq(format!("campaign rejected by {by}: {reason}")),
            claims::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        tracing::info!(campaign = id, by, claims, "campaign rejected");
        Ok::<_, StoreError>(Decision::Done {
            campaign: Box::new(campaign),
            claims,
        })
    })
    .await
}

/// Claims of a campaign per status: count and sum of amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusTotal {
    /// Claim status.
    pub status: ClaimStatus,
    /// Claims in it.
    pub count: i64,
    /// Sum of their amounts.
    pub amount: Yocto,
}

/// The campaign's claims by status (statuses without claims left out).
pub async fn campaign_progress(conn: &mut AsyncPgConnection, id: i64) -> Result<Vec<StatusTotal>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: ClaimStatus,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
        #[diesel(sql_type = diesel::sql_types::Numeric)]
        amount: Yocto,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT status, count(*) AS count, sum(amount) AS amount FROM claims \
         WHERE campaign_id = $1 GROUP BY status ORDER BY status",
    )
    .bind::<diesel::sql_types::BigInt, _>(id)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| StatusTotal {
            status: r.status,
            count: r.count,
            amount: r.amount,
        })
        .collect())
}
