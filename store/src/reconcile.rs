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
    let carried: Vec<i64> = claims::table
        .filter(claims::id.eq_any(&tx.claim_ids))
        .filter(claims::status.eq(ClaimStatus::Submitted))
        .filter(claims::current_tx_hash.eq(&tx.hash))
        .select(claims::id)
        .load(conn)
        .await?;
    // Per transfer, in the batch's action order, so halves are contiguous runs of whole transfers.
    let transfers = tx.transfers();
    let runs: Vec<Vec<ClaimId>> = transfers
        .iter()
        .map(|run| {
            run.iter()
                .filter(|id| carried.contains(id))
                .map(|id| ClaimId(*id))
                .collect::<Vec<_>>()
        })
        .filter(|run| !run.is_empty())
        .collect();
    update_carried(conn, &tx.hash, &runs, how, transfers.len()).await
}

/// Hands the claims of a failed transaction back (or fails them): `runs` are the claims it still carries,
/// grouped per `ft_transfer` in action order; `transfers` is how many transfers it had.
async fn update_carried(
    conn: &mut AsyncPgConnection,
    tx_hash: &str,
    runs: &[Vec<ClaimId>],
    how: Settlement<'_>,
    transfers: usize,
) -> Result<Settled> {
    let mut out = Settled::default();
    let carried: Vec<ClaimId> = runs.iter().flatten().copied().collect();
    if carried.is_empty() {
        return Ok(out);
    }
    match how {
        Settlement::Success => {
            out.confirmed =
                update_claims(conn, &carried, ClaimStatus::Submitted, ClaimUpdate::Confirm).await?;
        }
        Settlement::Failure(error) => {
            let kind = FailureKind::classify(error);
            if kind.batch_wide() || (transfers <= 1 && kind != FailureKind::Permanent) {
                // A transient failure: back to pending with back-off, the whole batch at once when the error
                // is not about one claim (bisecting would fail every half alike). See `crate::retry`.
                let held = hold(conn, tx_hash, &carried, kind, error).await?;
                out.handed_back = held.held;
                out.failed = held.failed;
            } else if transfers <= 1 && carried.len() <= 1 {
                out.failed = update_claims(
                    conn,
                    &carried,
                    ClaimStatus::Submitted,
                    ClaimUpdate::Fail { error },
                )
                .await?;
            } else if transfers <= 1 {
                // One merged transfer failed for good: nothing was paid, and the sum may be what failed.
                // Each claim goes on alone (a split group of one), so each gets its own verdict.
                for (i, id) in carried.iter().enumerate() {
                    let group = format!("{tx_hash}/c{i}");
                    let requeue = ClaimUpdate::Requeue {
                        error,
                        split_group: Some(&group),
                    };
                    out.handed_back +=
                        update_claims(conn, &[*id], ClaimStatus::Submitted, requeue).await?;
                }
            } else {
                // Bisection by whole transfers: each half goes on as its own group until a bad transfer
                // stands alone.
                let (left, right) = runs.split_at(runs.len().div_ceil(2));
                for (half, part) in [(0, left), (1, right)] {
                    let part: Vec<ClaimId> = part.iter().flatten().copied().collect();
                    if part.is_empty() {
                        continue;
                    }
                    let group = format!("{tx_hash}/{half}");
                    let requeue = ClaimUpdate::Requeue {
                        error,
                        split_group: Some(&group),
                    };
                    out.handed_back +=
                        update_claims(conn, &part, ClaimStatus::Submitted, requeue).await?;
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
    /// The claims named by the memo (one, or several for a merged transfer).
    pub claim_ids: Vec<ClaimId>,
    /// Token contract.
    pub token: &'a str,
    /// Sender.
    pub from: &'a str,
    /// Receiver.
    pub to: &'a str,
    /// Amount: for a merged transfer, the sum of its claims.
    pub amount: Yocto,
}

/// [`confirm_by_memo`] for many transfers in one statement (a block can carry thousands). A transfer
/// confirms the claims its memo names all together or not at all: every one of them `submitted` in the same
/// current transaction, signed by the sender, with this token and receiver, and their amounts summing to
/// exactly the transfer's. Returns how many claims were confirmed.
pub async fn confirm_by_memos(
    conn: &mut AsyncPgConnection,
    payments: &[MemoPayment<'_>],
) -> Result<usize> {
    use diesel::sql_types::Array;
    if payments.is_empty() {
        return Ok(0);
    }
    let n: usize = payments.iter().map(|p| p.claim_ids.len()).sum();
    let (mut grps, mut ids, mut tokens, mut froms, mut tos, mut amounts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (g, p) in payments.iter().enumerate() {
        for id in &p.claim_ids {
            grps.push(i64::try_from(g).unwrap_or(i64::MAX));
            ids.push(id.0);
            tokens.push(p.token);
            froms.push(p.from);
            tos.push(p.to);
            amounts.push(p.amount);
        }
    }
    Ok(diesel::sql_query(
        "WITH m AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::numeric[]) \
                    AS m(grp, id, token, sender, receiver, amount)), \
              named AS (SELECT grp, count(*) AS n FROM m GROUP BY grp), \
              ok AS ( \
                SELECT m.grp FROM m \
                JOIN claims c ON c.id = m.id AND c.status = 'submitted' AND c.token_contract = m.token \
                               AND c.receiver_id = m.receiver \
                JOIN transactions t ON t.hash = c.current_tx_hash AND t.signer_id = m.sender \
                GROUP BY m.grp \
                HAVING count(*) = (SELECT n FROM named WHERE named.grp = m.grp) \
                   AND count(DISTINCT c.current_tx_hash) = 1 \
                   AND sum(c.amount) = min(m.amount) AND min(m.amount) = max(m.amount)) \
         UPDATE claims c SET status = 'confirmed', confirmed_at = now(), needs_isolation = false, split_group = NULL, updated_at = now() \
         FROM m JOIN ok ON ok.grp = m.grp \
         WHERE c.id = m.id AND c.status = 'submitted'",
    )
    .bind::<Array<BigInt>, _>(grps)
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(tokens)
    .bind::<Array<Text>, _>(froms)
    .bind::<Array<Text>, _>(tos)
    .bind::<Array<Numeric>, _>(amounts)
    .execute(conn)
    .await?)
}
