//! Incidents: a payment on chain that the store did not expect (DESIGN "Exactly-once payouts", rule 3). Each
//! is recorded once, and while one is open the distributor signs nothing for its token (fail closed: a
//! payment we cannot explain may be a double payment in progress, and only a human can tell).
//!
//! Kinds ([`IncidentKind`]), and the unique subject that makes detection idempotent under `payouts replay`:
//! - `unexpected_memo_payment` (subject `<receipt>/<claim>`): a successful `ft_transfer` event carrying
//!   `payouts:<claim>` in a receipt that is not the receipt of a non-`dropped` stored transaction carrying
//!   that claim. The receipt is matched through `transactions.receipt_id` *and* through `key_transactions`
//!   (the indexer's own record of what each treasury key signed), so a transaction settled by a `tx` look-up
//!   before the stream saw it is still recognised. It counts when the claim exists with that token, or the
//!   sender is a treasury account (a memo naming no claim of ours, sent by someone else, is noise).
//! - `dead_transaction_landed` (subject: the tx hash): a treasury-key transaction on chain whose stored row
//!   is `dropped`: the death rule was wrong, and its claims were probably paid again.
//! - `nonce_ahead` (subject `<key>@<chain nonce>`): at lane start the key's chain nonce is above the nonce
//!   the store last used; something else signs with our key. It has no token (`NULL`): a key pays any
//!   token, so it pauses every token.
//!
//! Clearing is an admin act (API or CLI), recorded with who did it; a cleared incident is never reopened by
//! the same subject (a replay finds the row and inserts nothing).
//!
//! Tests that try to break it: `store/tests/it/incidents.rs` (replaying the same blocks yields one incident;
//! our own payment raises none; a dropped transaction that lands) and `distributor/tests/it/incidents.rs`
//! (a foreign `ft_transfer` with a claim's memo on the devnet pauses the token until an admin clears it).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::Result;
use crate::schema::incidents;
use crate::types::{ClaimId, IncidentKind, Yocto};

/// One incident row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, QueryableByName, Serialize)]
#[diesel(table_name = incidents, check_for_backend(diesel::pg::Pg))]
pub struct Incident {
    /// Id (creation order).
    pub id: i64,
    /// What it is about.
    pub kind: IncidentKind,
    /// Its idempotency key within the kind.
    pub subject: String,
    /// The token it pauses; `None`: every token.
    pub token_contract: Option<String>,
    /// The transaction concerned, when known.
    pub tx_hash: Option<String>,
    /// The receipt concerned, when known.
    pub receipt_id: Option<String>,
    /// The claim concerned, when known.
    pub claim_id: Option<i64>,
    /// The key concerned, when known.
    pub public_key: Option<String>,
    /// Block where it was seen on chain, when known.
    pub block_height: Option<i64>,
    /// Kind-specific facts (amounts as decimal strings).
    pub details: serde_json::Value,
    /// When it was recorded.
    pub detected_at: DateTime<Utc>,
    /// When an admin cleared it.
    pub cleared_at: Option<DateTime<Utc>>,
    /// Who cleared it.
    pub cleared_by: Option<String>,
}

/// A successful `ft_transfer` carrying a claim memo, with the receipt that emitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoSighting<'a> {
    /// The claim named by the memo.
    pub claim_id: ClaimId,
    /// Token contract that emitted the event.
    pub token: &'a str,
    /// Sender.
    pub from: &'a str,
    /// Receiver.
    pub to: &'a str,
    /// Amount.
    pub amount: Yocto,
    /// Receipt whose outcome logged it (base58).
    pub receipt_id: String,
    /// Block height of that outcome.
    pub block_height: u64,
}

fn height(h: u64) -> i64 {
    i64::try_from(h).unwrap_or(i64::MAX)
}

/// Records an `unexpected_memo_payment` for every sighting that is not one of our own payments of that
/// claim (see the module doc), in one statement. Returns how many incidents are new.
pub async fn detect_memo_payments(
    conn: &mut AsyncPgConnection,
    sightings: &[MemoSighting<'_>],
) -> Result<usize> {
    if sightings.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = sightings.iter().map(|s| s.claim_id.0).collect();
    let tokens: Vec<&str> = sightings.iter().map(|s| s.token).collect();
    let froms: Vec<&str> = sightings.iter().map(|s| s.from).collect();
    let tos: Vec<&str> = sightings.iter().map(|s| s.to).collect();
    let amounts: Vec<Yocto> = sightings.iter().map(|s| s.amount).collect();
    let receipts: Vec<&str> = sightings.iter().map(|s| s.receipt_id.as_str()).collect();
    let heights: Vec<i64> = sightings.iter().map(|s| height(s.block_height)).collect();
    Ok(diesel::sql_query(
        "INSERT INTO incidents (kind, subject, token_contract, tx_hash, receipt_id, claim_id, block_height, details) \
         SELECT 'unexpected_memo_payment', m.receipt || '/' || m.id, m.token, k.hash, m.receipt, m.id, m.height, \
                jsonb_build_object('from', m.sender, 'to', m.receiver, 'amount', m.amount::text, \
                                   'signed_by_treasury_key', k.hash IS NOT NULL) \
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[], $7::bigint[]) \
              AS m(id, token, sender, receiver, amount, receipt, height) \
         LEFT JOIN LATERAL (SELECT kt.hash FROM key_transactions kt WHERE kt.receipt_id = m.receipt LIMIT 1) k ON true \
         WHERE NOT EXISTS ( \
                 SELECT 1 FROM transactions t \
                 WHERE (t.receipt_id = m.receipt OR t.hash = k.hash) \
                   AND t.status <> 'dropped' AND m.id = ANY (t.claim_ids)) \
           AND (EXISTS (SELECT 1 FROM claims c WHERE c.id = m.id AND c.token_contract = m.token) \
                OR EXISTS (SELECT 1 FROM access_keys a WHERE a.account_id = m.sender)) \
         ON CONFLICT (kind, subject) DO NOTHING",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(tokens)
    .bind::<Array<Text>, _>(froms)
    .bind::<Array<Text>, _>(tos)
    .bind::<Array<Numeric>, _>(amounts)
    .bind::<Array<Text>, _>(receipts)
    .bind::<Array<BigInt>, _>(heights)
    .execute(conn)
    .await?)
}

/// A treasury-key transaction seen on chain: `(hash, receipt id, block height)`.
pub type Landed<'a> = (&'a str, Option<&'a str>, u64);

/// Records a `dead_transaction_landed` for every one of `landed` whose stored row is `dropped`, in one
/// statement. Returns how many incidents are new.
pub async fn detect_dead_landed(
    conn: &mut AsyncPgConnection,
    landed: &[Landed<'_>],
) -> Result<usize> {
    if landed.is_empty() {
        return Ok(0);
    }
    let hashes: Vec<&str> = landed.iter().map(|l| l.0).collect();
    let receipts: Vec<Option<&str>> = landed.iter().map(|l| l.1).collect();
    let heights: Vec<i64> = landed.iter().map(|l| height(l.2)).collect();
    Ok(diesel::sql_query(
        "INSERT INTO incidents (kind, subject, token_contract, tx_hash, receipt_id, public_key, block_height, details) \
         SELECT 'dead_transaction_landed', t.hash, t.token_contract, t.hash, l.receipt, t.public_key, l.height, \
                jsonb_build_object('signer_id', t.signer_id, 'nonce', t.nonce, 'claim_ids', to_jsonb(t.claim_ids), \
                                   'declared_dead', t.failure) \
         FROM unnest($1::text[], $2::text[], $3::bigint[]) AS l(hash, receipt, height) \
         JOIN transactions t ON t.hash = l.hash \
         WHERE t.status = 'dropped' \
         ON CONFLICT (kind, subject) DO NOTHING",
    )
    .bind::<Array<Text>, _>(hashes)
    .bind::<Array<Nullable<Text>>, _>(receipts)
    .bind::<Array<BigInt>, _>(heights)
    .execute(conn)
    .await?)
}

/// Records a `nonce_ahead` for key `public_key` of `account` (every token paused). Returns false when the
/// same (key, chain nonce) was recorded before (a lane restarting finds the same facts).
pub async fn record_nonce_ahead(
    conn: &mut AsyncPgConnection,
    account: &str,
    public_key: &str,
    stored_nonce: u64,
    chain_nonce: u64,
) -> Result<bool> {
    let details = serde_json::json!({
        "account_id": account,
        "stored_nonce": stored_nonce,
        "chain_nonce": chain_nonce,
    });
    let n = diesel::insert_into(incidents::table)
        .values((
            incidents::kind.eq(IncidentKind::NonceAhead),
            incidents::subject.eq(format!("{public_key}@{chain_nonce}")),
            incidents::public_key.eq(public_key),
            incidents::details.eq(details),
        ))
        .on_conflict((incidents::kind, incidents::subject))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// The oldest open incident that pauses `token` (one of that token, or one of every token).
pub async fn open_for_token(conn: &mut AsyncPgConnection, token: &str) -> Result<Option<Incident>> {
    Ok(incidents::table
        .filter(incidents::cleared_at.is_null())
        .filter(
            incidents::token_contract
                .eq(token)
                .or(incidents::token_contract.is_null()),
        )
        .order(incidents::id.asc())
        .select(Incident::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Incidents, newest first: only open ones with `open_only`, at most `limit`.
pub async fn list_incidents(
    conn: &mut AsyncPgConnection,
    open_only: bool,
    limit: i64,
) -> Result<Vec<Incident>> {
    let mut q = incidents::table
        .order(incidents::id.desc())
        .limit(limit)
        .select(Incident::as_select())
        .into_boxed();
    if open_only {
        q = q.filter(incidents::cleared_at.is_null());
    }
    Ok(q.load(conn).await?)
}

/// Open incidents per kind (kinds without any are left out).
pub async fn open_counts(conn: &mut AsyncPgConnection) -> Result<Vec<(IncidentKind, i64)>> {
    Ok(incidents::table
        .filter(incidents::cleared_at.is_null())
        .group_by(incidents::kind)
        .select((incidents::kind, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// What [`clear_incident`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Clearing {
    /// Cleared now; the row as it is.
    Cleared(Incident),
    /// It was cleared before (by whom and when the row says).
    AlreadyCleared(Incident),
    /// No such incident.
    NotFound,
}

/// Clears incident `id` on behalf of `by` (an API token's name, or the CLI user).
pub async fn clear_incident(conn: &mut AsyncPgConnection, id: i64, by: &str) -> Result<Clearing> {
    let cleared: Option<Incident> = diesel::update(
        incidents::table
            .find(id)
            .filter(incidents::cleared_at.is_null()),
    )
    .set((
        incidents::cleared_at.eq(diesel::dsl::now),
        incidents::cleared_by.eq(by),
    ))
    .returning(Incident::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(i) = cleared {
        return Ok(Clearing::Cleared(i));
    }
    let existing = incidents::table
        .find(id)
        .select(Incident::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(existing.map_or(Clearing::NotFound, Clearing::AlreadyCleared))
}

/// `details` of a memo incident, for tests and tools: `(from, to, amount)`.
pub fn memo_details(i: &Incident) -> Option<(String, String, Yocto)> {
    let d = &i.details;
    let text = |k: &str| d.get(k).and_then(serde_json::Value::as_str);
    Some((
        text("from")?.to_string(),
        text("to")?.to_string(),
        text("amount")?.parse().ok()?,
    ))
}
