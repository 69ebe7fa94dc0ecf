//! Reconciliation writes: how the indexed stream settles our transactions and their claims.
//! Every function is idempotent, so replaying a block changes nothing the first pass already did.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::claims::{update_claims, ClaimUpdate};
use crate::error::Result;
use crate::retry::{hold, FailureKind};
use crate::schema::{claims, transactions};
use crate::transactions::StoredTx;
use crate::types::{ClaimId, ClaimStatus, TxStatus, Yocto};

const OPEN: [TxStatus; 3] = [TxStatus::Signed, TxStatus::Submitted, TxStatus::Included];

/// Which of `hashes` are transactions of ours that are still open.
pub async fn open_txs_by_hash(
    conn: &mut AsyncPgConnection,
    hashes: &[String],
) -> Result<Vec<StoredTx>> {
    if hashes.is_empty() {
        return Ok(vec![]);
    }
    Ok(transactions::table
        .filter(transactions::hash.eq_any(hashes))
        .filter(transactions::status.eq_any(OPEN))
        .select(StoredTx::as_select())
        .load(conn)
        .await?)
}

/// Hash and receipt id (once known) of every open transaction of ours: a handful (keys × transactions in
/// flight), against which the indexer matches each block's transactions and receipts in memory.
pub async fn open_tx_ids(conn: &mut AsyncPgConnection) -> Result<Vec<(String, Option<String>)>> {
    Ok(transactions::table
        .filter(transactions::status.eq_any(OPEN))
        .select((transactions::hash, transactions::receipt_id))
        .load(conn)
        .await?)
}

/// Open transactions of ours whose receipt is one of `receipt_ids`.
pub async fn open_txs_by_receipt(
    conn: &mut AsyncPgConnection,
    receipt_ids: &[String],
) -> Result<Vec<StoredTx>> {
    if receipt_ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(transactions::table
        .filter(transactions::receipt_id.eq_any(receipt_ids))
        .filter(transactions::status.eq_any(OPEN))
        .select(StoredTx::as_select())
        .load(conn)
        .await?)
}

/// Records that `hash` was included at `height` and converted into `receipt_id`.
/// Returns false when it was already past `submitted` (a replayed block).
pub async fn record_inclusion(
    conn: &mut AsyncPgConnection,
    hash: &str,
    height: u64,
    receipt_id: &str,
) -> Result<bool> {
    let height = i64::try_from(height).unwrap_or(i64::MAX);
    let moved = diesel::update(
        transactions::table
            .find(hash)
            .filter(transactions::status.eq_any([TxStatus::Signed, TxStatus::Submitted])),
    )
    .set((
        transactions::status.eq(TxStatus::Included),
        transactions::included_block_height.eq(height),
        transactions::receipt_id.eq(receipt_id),
        transactions::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(moved == 1)
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement<'a> {
    /// Its receipt succeeded: every claim in it is paid.
    Success,
    /// It or its receipt failed: nothing in it was paid (a receipt's actions revert together).
    Failure(&'a str),
}

/// What settling one transaction did to its claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Claims confirmed.
    pub confirmed: usize,
    /// Claims handed back to `pending` for another try (flagged for isolation).
    pub handed_back: usize,
    /// Claims failed for good (they failed alone).
    pub failed: usize,
}

/// Settles an open transaction and its claims. A failed batch of several claims hands them back in two
/// halves (bisection), each flagged for isolation with its own split group; a claim that failed alone is
/// `failed` with the contract's message when the error is permanent, and held for a retry when it is transient
/// (as is a whole batch that failed for a batch-wide transient reason: see [`crate::retry`]). A failed
/// transaction's reservation against the daily cap is released ([`crate::spend`]).
/// A transaction that is already settled is left alone.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    tx: &StoredTx,
    how: Settlement<'_>,
) -> Result<Settled> {
    let (to, failure) = match how {
        Settlement::Success => (TxStatus::Final, None),
        Settlement::Failure(msg) => (TxStatus::Failed, Some(msg)),
    };
    let moved = diesel::update(
        transactions::table
            .find(&tx.hash)
            .filter(transactions::status.eq_any(OPEN)),
    )
    .set((
        transactions::status.eq(to),
        transactions::failure.eq(failure),
        transactions::finished_at.eq(diesel::dsl::now),
        transactions::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    if moved == 0 {
        return Ok(Settled::default());
    }
    if let Settlement::Failure(_) = how {
        // It paid nothing: its reservation against the daily cap goes back, once (the move above is once).
        crate::spend::release_spend(conn, &tx.hash).await?;
    }
    if let Settlement::Success = how {
        // Every claim it still carries is paid: one statement, no look-up first.
        let confirmed = diesel::update(
            claims::table
                .filter(claims::id.eq_any(&tx.claim_ids))
                .filter(claims::status.eq(ClaimStatus::Submitted))
                .filter(claims::current_tx_hash.eq(&tx.hash)),
        )
        .set((
            claims::status.eq(ClaimStatus::Confirmed),
            claims::confirmed_at.eq(diesel::dsl::now),
            claims::needs_isolation.eq(false),
            claims::split_group.eq(None::<String>),
            claims::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        return Ok(Settled {
            confirmed,
            ..Settled::default()
        });
    }
    // The claims this transaction still carries (a claim may have moved on, e.g. confirmed by memo).
    let carried: Vec<ClaimId> = claims::table
        .filter(claims::id.eq_any(&tx.claim_ids))
        .filter(claims::status.eq(ClaimStatus::Submitted))
        .filter(claims::current_tx_hash.eq(&tx.hash))
        .select(claims::id)
        .load(conn)
        .await?;
    // Keep the batch's action order, so halves are contiguous runs of the failed batch.
    let carried: Vec<ClaimId> = tx
        .claim_ids
        .iter()
        .map(|id| ClaimId(*id))
        .filter(|id| carried.contains(id))
        .collect();
    update_carried(conn, &tx.hash, &carried, how, tx.claim_ids.len()).await
}

async fn update_carried(
    conn: &mut AsyncPgConnection,
    tx_hash: &str,
    carried: &[ClaimId],
    how: Settlement<'_>,
    batch_size: usize,
) -> Result<Settled> {
    let mut out = Settled::default();
    if carried.is_empty() {
        return Ok(out);
    }
    match how {
        Settlement::Success => {
            out.confirmed =
                update_claims(conn, carried, ClaimStatus::Submitted, ClaimUpdate::Confirm).await?;
        }
        Settlement::Failure(error) => {
            let kind = FailureKind::classify(error);
            if kind.batch_wide() || (batch_size <= 1 && kind != FailureKind::Permanent) {
                // A transient failure: back to pending with back-off, the whole batch at once when the error
                // is not about one claim (bisecting would fail every half alike). See `crate::retry`.
                let held = hold(conn, tx_hash, carried, kind, error).await?;
                out.handed_back = held.held;
                out.failed = held.failed;
            } else if batch_size <= 1 {
                out.failed = update_claims(
                    conn,
                    carried,
                    ClaimStatus::Submitted,
                    ClaimUpdate::Fail { error },
                )
                .await?;
            } else {
                // Bisection: each half goes on as its own group until a bad claim stands alone.
                let (left, right) = carried.split_at(carried.len().div_ceil(2));
                for (half, part) in [(0, left), (1, right)] {
                    if part.is_empty() {
                        continue;
                    }
                    let group = format!("{tx_hash}/{half}");
                    let requeue = ClaimUpdate::Requeue {
                        error,
                        split_group: Some(&group),
                    };
                    out.handed_back +=
                        update_claims(conn, part, ClaimStatus::Submitted, requeue).await?;
                }
            }
        }
    }
    Ok(out)
}

/// A successful `ft_transfer` event carrying claim `claim_id`'s memo confirms that claim, but only when it
/// matches the claim exactly: same token, receiver and amount, sent by the signer of the claim's current
/// transaction. (Anyone can write any memo; only our treasury paying the right amount counts.)
pub async fn confirm_by_memo(
    conn: &mut AsyncPgConnection,
    claim_id: ClaimId,
    token: &str,
    from: &str,
    to: &str,
    amount: Yocto,
) -> Result<bool> {
    let moved = diesel::sql_query(
        "UPDATE claims c SET status = 'confirmed', confirmed_at = now(), needs_isolation = false, split_group = NULL, updated_at = now() \
         FROM transactions t \
         WHERE c.id = $1 AND c.status = 'submitted' AND c.token_contract = $2 AND c.receiver_id = $3 \
           AND c.amount = $4 AND t.hash = c.current_tx_hash AND t.signer_id = $5",
    )
    .bind::<BigInt, _>(claim_id.0)
    .bind::<Text, _>(token)
    .bind::<Text, _>(to)
    .bind::<Numeric, _>(amount)
    .bind::<Text, _>(from)
    .execute(conn)
    .await?;
    Ok(moved == 1)
}

/// One successful `ft_transfer` carrying a claim memo, as the indexer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoPayment<'a> {
    /// The claim named by the memo.
    pub claim_id: ClaimId,
    /// Token contract.
    pub token: &'a str,
    /// Sender.
    pub from: &'a str,
    /// Receiver.
    pub to: &'a str,
    /// Amount.
    pub amount: Yocto,
}

/// [`confirm_by_memo`] for many transfers in one statement (a block can carry thousands). Returns how many
/// claims were confirmed.
pub async fn confirm_by_memos(
    conn: &mut AsyncPgConnection,
    payments: &[MemoPayment<'_>],
) -> Result<usize> {
    use diesel::sql_types::Array;
    if payments.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = payments.iter().map(|p| p.claim_id.0).collect();
    let tokens: Vec<&str> = payments.iter().map(|p| p.token).collect();
    let froms: Vec<&str> = payments.iter().map(|p| p.from).collect();
    let tos: Vec<&str> = payments.iter().map(|p| p.to).collect();
    let amounts: Vec<Yocto> = payments.iter().map(|p| p.amount).collect();
    Ok(diesel::sql_query(
        "UPDATE claims c SET status = 'confirmed', confirmed_at = now(), needs_isolation = false, split_group = NULL, updated_at = now() \
         FROM transactions t, unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::numeric[]) AS m(id, token, sender, receiver, amount) \
         WHERE c.id = m.id AND c.status = 'submitted' AND c.token_contract = m.token AND c.receiver_id = m.receiver \
           AND c.amount = m.amount AND t.hash = c.current_tx_hash AND t.signer_id = m.sender",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(tokens)
    .bind::<Array<Text>, _>(froms)
    .bind::<Array<Text>, _>(tos)
    .bind::<Array<Numeric>, _>(amounts)
    .execute(conn)
    .await?)
}
