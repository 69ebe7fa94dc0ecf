//! Claim rows: idempotent inserts and guarded status transitions here; what the distributor locks and peeks
//! of the pending claims in [`pending`]; where confirmed claims' time went in [`timing`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::on_constraint;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::schema::claims;
use crate::types::{ClaimId, ClaimSource, ClaimStatus, Yocto};

mod pending;
mod timing;

pub use pending::{
    lock_pending, lock_pending_of_receivers, peek_pending_receivers, pending_tokens,
};
pub use timing::{payout_timing, PayoutTiming};

/// Rows per INSERT statement (each statement binds one array per column).
const INSERT_CHUNK: usize = 5_000;

/// A claim as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = claims, check_for_backend(diesel::pg::Pg))]
pub struct Claim {
    /// Primary key.
    pub id: ClaimId,
    /// Event or manual.
    pub source: ClaimSource,
    /// Event claims: the indexer rule that matched.
    pub rule: Option<String>,
    /// Event claims: the receipt whose log held the event.
    pub receipt_id: Option<String>,
    /// Event claims: index of the log line within the receipt outcome.
    pub log_index: Option<i32>,
    /// Event claims: index of the event within the log's NEP-297 `data` array.
    pub event_index: Option<i32>,
    /// Manual claims: the client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Manual claims: digest of the request body, to tell a replay from a conflicting reuse of the key.
    pub request_digest: Option<String>,
    /// NEP-141 contract paying the claim.
    pub token_contract: String,
    /// Account receiving the tokens.
    pub receiver_id: String,
    /// Amount in the token's smallest unit.
    pub amount: Yocto,
    /// Memo passed to `ft_transfer`.
    pub memo: Option<String>,
    /// Lifecycle state.
    pub status: ClaimStatus,
    /// Times a transaction carrying it was provably dead.
    pub attempts: i32,
    /// Last failure message.
    pub last_error: Option<String>,
    /// Its last batch failed as a whole: pay it in a smaller batch.
    pub needs_isolation: bool,
    /// With `needs_isolation`: the half of a failed batch it belongs to; it is batched only with its group.
    pub split_group: Option<String>,
    /// Height of the block whose event created it.
    pub trigger_block_height: Option<i64>,
    /// The transaction carrying it now (or last).
    pub current_tx_hash: Option<String>,
    /// Row creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// After a transient failure: not tried again before this.
    pub retry_at: Option<DateTime<Utc>>,
    /// The kind of its last transient failure (`paused`, `balance`, `registration`, `unknown`; see
    /// [`crate::retry`]).
    pub retry_kind: Option<String>,
    /// Transient failures so far (bounded by [`crate::retry::MAX_RETRIES`]).
    pub retries: i32,
    /// May share one `ft_transfer` with other claims of the same token and receiver (coalescing); off for
    /// a manual send that opted out.
    pub may_coalesce: bool,
    /// The campaign it belongs to (a row of an uploaded file, or a single send held for approval).
    pub campaign_id: Option<i64>,
    /// Its row's key in the campaign (`external_id`, or `#<line number>`).
    pub row_key: Option<String>,
}

/// One `RETURNING id` row of a raw statement.
#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// A claim to insert.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = claims)]
pub struct NewClaim {
    /// Event or manual.
    pub source: ClaimSource,
    /// See [`Claim::rule`].
    pub rule: Option<String>,
    /// See [`Claim::receipt_id`].
    pub receipt_id: Option<String>,
    /// See [`Claim::log_index`].
    pub log_index: Option<i32>,
    /// See [`Claim::event_index`].
    pub event_index: Option<i32>,
    /// See [`Claim::idempotency_key`].
    pub idempotency_key: Option<String>,
    /// See [`Claim::request_digest`].
    pub request_digest: Option<String>,
    /// See [`Claim::token_contract`].
    pub token_contract: String,
    /// See [`Claim::receiver_id`].
    pub receiver_id: String,
    /// See [`Claim::amount`].
    pub amount: Yocto,
    /// See [`Claim::memo`].
    pub memo: Option<String>,
    /// See [`Claim::trigger_block_height`].
    pub trigger_block_height: Option<i64>,
    /// See [`Claim::may_coalesce`].
    pub may_coalesce: bool,
}

/// Where an event claim was found: its natural key (receipt, log line, item in `data`, rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    /// Rule name.
    pub rule: String,
    /// Receipt id (base58).
    pub receipt_id: String,
    /// Log line index in the receipt's outcome.
    pub log_index: u32,
    /// Index of the event in the log's NEP-297 `data` array.
    pub event_index: u32,
    /// Block height it was found in.
    pub block_height: u64,
}

impl NewClaim {
    /// A claim found in an on-chain event.
    pub fn event(
        key: EventKey,
        token: &str,
        receiver: &str,
        amount: Yocto,
        memo: Option<String>,
    ) -> Self {
        Self {
            source: ClaimSource::Event,
            rule: Some(key.rule),
            receipt_id: Some(key.receipt_id),
            log_index: Some(i32::try_from(key.log_index).unwrap_or(i32::MAX)),
            event_index: Some(i32::try_from(key.event_index).unwrap_or(i32::MAX)),
            idempotency_key: None,
            request_digest: None,
            token_contract: token.to_string(),
            receiver_id: receiver.to_string(),
            amount,
            memo,
            trigger_block_height: i64::try_from(key.block_height).ok(),
            may_coalesce: true,
        }
    }

    /// A manual payout requested through the API.
    pub fn manual(
        idempotency_key: &str,
        request_digest: &str,
        token: &str,
        receiver: &str,
        amount: Yocto,
        memo: Option<String>,
    ) -> Self {
        Self {
            source: ClaimSource::Manual,
            rule: None,
            receipt_id: None,
            log_index: None,
            event_index: None,
            idempotency_key: Some(idempotency_key.to_string()),
            request_digest: Some(request_digest.to_string()),
            token_contract: token.to_string(),
            receiver_id: receiver.to_string(),
            amount,
            memo,
            trigger_block_height: None,
            may_coalesce: true,
        }
    }

    /// The same claim, paid by a transfer of its own (`coalesce: false` on a manual send).
    pub fn coalescing(mut self, may_coalesce: bool) -> Self {
        self.may_coalesce = may_coalesce;
        self
    }
}

/// Inserts claims, skipping any whose natural key (event key or idempotency key) already exists.
/// Returns how many rows were new. Atomic: all chunks commit together or not at all.
pub async fn insert_claims(conn: &mut AsyncPgConnection, rows: &[NewClaim]) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    if rows.len() <= INSERT_CHUNK {
        // One statement: atomic by itself.
        return insert_chunk(conn, rows).await;
    }
    conn.transaction(async |conn| {
        let mut inserted = 0;
        for chunk in rows.chunks(INSERT_CHUNK) {
            inserted += insert_chunk(conn, chunk).await?;
        }
        Ok::<_, StoreError>(inserted)
    })
    .await
}

/// One statement whatever the number of rows: every column is bound as one array and `unnest`ed, so
/// Postgres parses and plans the same short statement each time (a multi-row `VALUES` list binds 12
/// parameters a row and is planned anew for every row count; this is about three times faster).
async fn insert_chunk(conn: &mut AsyncPgConnection, rows: &[NewClaim]) -> Result<usize> {
    use diesel::sql_types::{Array, BigInt, Integer, Nullable, Numeric, Text};
    let sources: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    let rules: Vec<Option<&str>> = rows.iter().map(|r| r.rule.as_deref()).collect();
    let receipts: Vec<Option<&str>> = rows.iter().map(|r| r.receipt_id.as_deref()).collect();
    let log_indexes: Vec<Option<i32>> = rows.iter().map(|r| r.log_index).collect();
    let event_indexes: Vec<Option<i32>> = rows.iter().map(|r| r.event_index).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.idempotency_key.as_deref()).collect();
    let digests: Vec<Option<&str>> = rows.iter().map(|r| r.request_digest.as_deref()).collect();
    let tokens: Vec<&str> = rows.iter().map(|r| r.token_contract.as_str()).collect();
    let receivers: Vec<&str> = rows.iter().map(|r| r.receiver_id.as_str()).collect();
    let amounts: Vec<Yocto> = rows.iter().map(|r| r.amount).collect();
    let memos: Vec<Option<&str>> = rows.iter().map(|r| r.memo.as_deref()).collect();
    let heights: Vec<Option<i64>> = rows.iter().map(|r| r.trigger_block_height).collect();
    let coalesce: Vec<bool> = rows.iter().map(|r| r.may_coalesce).collect();
    // Naming the one unique key a row can collide on spares Postgres checking the others (event rows have
    // no idempotency key, manual rows no event key, ids are fresh): ~3.5 µs a row of ~40.
    const INSERT: &str = "INSERT INTO claims (source, rule, receipt_id, log_index, event_index, \
           idempotency_key, request_digest, token_contract, receiver_id, amount, memo, trigger_block_height, \
           may_coalesce) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::text[], \
           $7::text[], $8::text[], $9::text[], $10::numeric[], $11::text[], $12::int8[], $13::bool[]) ";
    let target = if rows.iter().all(|r| r.source == ClaimSource::Event) {
        "ON CONFLICT ON CONSTRAINT claims_event_key DO NOTHING"
    } else if rows.iter().all(|r| r.source == ClaimSource::Manual) {
        "ON CONFLICT ON CONSTRAINT claims_manual_key DO NOTHING"
    } else {
        "ON CONFLICT DO NOTHING"
    };
    Ok(diesel::sql_query(format!("{INSERT}{target}"))
        .bind::<Array<Text>, _>(sources)
        .bind::<Array<Nullable<Text>>, _>(rules)
        .bind::<Array<Nullable<Text>>, _>(receipts)
        .bind::<Array<Nullable<Integer>>, _>(log_indexes)
        .bind::<Array<Nullable<Integer>>, _>(event_indexes)
        .bind::<Array<Nullable<Text>>, _>(keys)
        .bind::<Array<Nullable<Text>>, _>(digests)
        .bind::<Array<Text>, _>(tokens)
        .bind::<Array<Text>, _>(receivers)
        .bind::<Array<Numeric>, _>(amounts)
        .bind::<Array<Nullable<Text>>, _>(memos)
        .bind::<Array<Nullable<BigInt>>, _>(heights)
        .bind::<Array<diesel::sql_types::Bool>, _>(coalesce)
        .execute(conn)
        .await?)
}

/// Inserts one manual claim, or returns the existing claim with the same idempotency key.
/// The flag says whether the row is new.
pub async fn insert_manual_claim(
    conn: &mut AsyncPgConnection,
    row: &NewClaim,
) -> Result<(Claim, bool)> {
    let key = row
        .idempotency_key
        .clone()
        .ok_or_else(|| StoreError::Corrupt("manual claim without idempotency key".into()))?;
    let created: Option<Claim> = diesel::insert_into(claims::table)
        .values(row)
        .on_conflict(on_constraint("claims_manual_key"))
        .do_nothing()
        .returning(Claim::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(claim) = created {
        return Ok((claim, true));
    }
    let existing = claims::table
        .filter(claims::idempotency_key.eq(&key))
        .select(Claim::as_select())
        .first(conn)
        .await?;
    Ok((existing, false))
}

/// Reads one claim.
pub async fn get_claim(conn: &mut AsyncPgConnection, id: ClaimId) -> Result<Option<Claim>> {
    Ok(claims::table
        .find(id)
        .select(Claim::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Counts claims per status.
pub async fn count_by_status(conn: &mut AsyncPgConnection) -> Result<Vec<(ClaimStatus, i64)>> {
    Ok(claims::table
        .group_by(claims::status)
        .select((claims::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// A lifecycle step for a set of claims. Each names its target state; the source state is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimUpdate<'a> {
    /// `pending → submitted`, carried by this (already stored) transaction.
    Submit {
        /// hash of the stored transaction
        tx_hash: &'a str,
    },
    /// `submitted → confirmed`.
    Confirm,
    /// `submitted → pending`: the carrying transaction is provably dead, or its batch failed. Counts an attempt.
    Requeue {
        /// why the transaction died
        error: &'a str,
        /// `Some(group)`: the batch failed as a whole, so these claims go on only together with their group
        /// (one half of the failed batch). `None`: the transaction never ran; the claims keep their group.
        split_group: Option<&'a str>,
    },
    /// `pending|submitted → failed`, permanently.
    Fail {
        /// the reason shown to operators
        error: &'a str,
    },
}

impl ClaimUpdate<'_> {
    /// The state this step leads to.
    pub fn target(&self) -> ClaimStatus {
        match self {
            ClaimUpdate::Submit { .. } => ClaimStatus::Submitted,
            ClaimUpdate::Confirm => ClaimStatus::Confirmed,
            ClaimUpdate::Requeue { .. } => ClaimStatus::Pending,
            ClaimUpdate::Fail { .. } => ClaimStatus::Failed,
        }
    }
}

/// Moves every claim in `ids` from `from` by `update`. All or nothing: if the step is illegal, or any claim
/// is not in `from`, nothing changes and an error says why. Returns the number of claims moved.
pub async fn update_claims(
    conn: &mut AsyncPgConnection,
    ids: &[ClaimId],
    from: ClaimStatus,
    update: ClaimUpdate<'_>,
) -> Result<usize> {
    let to = update.target();
    if !from.can_become(to) {
        return Err(StoreError::IllegalTransition { from, to });
    }
    let mut wanted: Vec<i64> = ids.iter().map(|id| id.0).collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(0);
    }
    conn.transaction(async |conn| {
        let target = claims::table
            .filter(claims::id.eq_any(&wanted))
            .filter(claims::status.eq(from));
        let now = diesel::dsl::now;
        let moved: Vec<i64> = match update {
            ClaimUpdate::Submit { tx_hash } => {
                // The stored transaction's hash, looked up once per statement: NULL when it is not
                // stored, which `claims_submitted_has_tx` refuses (migration 5 explains why this
                // replaced a per-row foreign key check).
                diesel::sql_query(
                    "UPDATE claims SET status = $1, \
                       current_tx_hash = (SELECT hash FROM transactions WHERE hash = $2), \
                       updated_at = CURRENT_TIMESTAMP \
                     WHERE id = ANY($3) AND status = $4 RETURNING id",
                )
                .bind::<diesel::sql_types::Text, _>(to.as_str())
                .bind::<diesel::sql_types::Text, _>(tx_hash)
                .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&wanted)
                .bind::<diesel::sql_types::Text, _>(from.as_str())
                .load::<IdRow>(conn)
                .await?
                .into_iter()
                .map(|r| r.id)
                .collect()
            }
            ClaimUpdate::Confirm => {
                diesel::update(target)
                    .set((
                        claims::status.eq(to),
                        claims::confirmed_at.eq(now),
                        claims::needs_isolation.eq(false),
                        claims::split_group.eq(None::<String>),
                        claims::updated_at.eq(now),
                    ))
                    .returning(claims::id)
                    .get_results(conn)
                    .await?
            }
            ClaimUpdate::Requeue {
                error,
                split_group: Some(group),
            } => {
                diesel::update(target)
                    .set((
                        claims::status.eq(to),
                        claims::attempts.eq(claims::attempts + 1),
                        claims::last_error.eq(error),
                        claims::needs_isolation.eq(true),
                        claims::split_group.eq(group),
                        claims::updated_at.eq(now),
                    ))
                    .returning(claims::id)
                    .get_results(conn)
                    .await?
            }
            ClaimUpdate::Requeue {
                error,
                split_group: None,
            } => {
                diesel::update(target)
                    .set((
                        claims::status.eq(to),
                        claims::attempts.eq(claims::attempts + 1),
                        claims::last_error.eq(error),
                        claims::updated_at.eq(now),
                    ))
                    .returning(claims::id)
                    .get_results(conn)
                    .await?
            }
            ClaimUpdate::Fail { error } => {
                diesel::update(target)
                    .set((
                        claims::status.eq(to),
                        claims::last_error.eq(error),
                        claims::updated_at.eq(now),
                    ))
                    .returning(claims::id)
                    .get_results(conn)
                    .await?
            }
        };
        if moved.len() != wanted.len() {
            let missing = wanted
                .iter()
                .filter(|id| !moved.contains(id))
                .map(|id| ClaimId(*id))
                .collect();
            return Err(StoreError::StateMismatch {
                ids: missing,
                expected: from,
            });
        }
        Ok(moved.len())
    })
    .await
}
