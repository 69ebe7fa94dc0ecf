//! Signed batches. A row is written *before* its bytes are broadcast (see DESIGN "Exactly-once payouts").

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::schema::transactions;
use crate::types::{TxStatus, Yocto};

/// A stored signed transaction.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = transactions, check_for_backend(diesel::pg::Pg))]
pub struct StoredTx {
    /// Transaction hash (base58).
    pub hash: String,
    /// Signer account.
    pub signer_id: String,
    /// Signing public key.
    pub public_key: String,
    /// Nonce used on that key.
    pub nonce: i64,
    /// Referenced block hash.
    pub block_hash: String,
    /// borsh(SignedTransaction): what gets (re-)broadcast.
    #[serde(skip)]
    pub signed_bytes: Vec<u8>,
    /// Token contract the batch pays from.
    pub token_contract: String,
    /// Claims carried, in action order.
    pub claim_ids: Vec<i64>,
    /// Lifecycle state.
    pub status: TxStatus,
    /// Outcome summary once known.
    pub outcome: Option<serde_json::Value>,
    /// Failure or drop reason.
    pub failure: Option<String>,
    /// Block it was included in.
    pub included_block_height: Option<i64>,
    /// The receipt it converted into (its actions on the token contract), once seen.
    pub receipt_id: Option<String>,
    /// Row creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First broadcast.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Claims per `ft_transfer` action, in action order (`claim_ids` flattened); `None`: one each.
    pub transfer_claims: Option<Vec<i32>>,
}

impl StoredTx {
    /// The claims of each of its `ft_transfer`s, in action order: runs of `claim_ids` as `transfer_claims`
    /// cuts them (one claim per transfer when it is absent or does not add up).
    pub fn transfers(&self) -> Vec<&[i64]> {
        transfer_runs(&self.claim_ids, self.transfer_claims.as_deref())
    }
}

/// `ids` cut into runs of `counts` (one id a run when `counts` is absent or does not add up to `ids`).
pub fn transfer_runs<'a>(ids: &'a [i64], counts: Option<&[i32]>) -> Vec<&'a [i64]> {
    let usable = counts.filter(|c| {
        c.iter().all(|n| *n > 0) && c.iter().map(|n| *n as usize).sum::<usize>() == ids.len()
    });
    match usable {
        Some(counts) => {
            let mut out = Vec::with_capacity(counts.len());
            let mut at = 0;
            for n in counts {
                let n = *n as usize;
                out.push(&ids[at..at + n]);
                at += n;
            }
            out
        }
        None => ids.chunks(1).collect(),
    }
}

/// Records how `hash`'s claims are grouped into its `ft_transfer`s (claims per transfer, action order), in
/// the caller's DB transaction, right after [`insert_tx`]. Skipped when every transfer pays one claim.
pub async fn record_transfers(
    conn: &mut AsyncPgConnection,
    hash: &str,
    claims_per_transfer: &[i32],
) -> Result<()> {
    if claims_per_transfer.iter().all(|n| *n == 1) {
        return Ok(());
    }
    diesel::update(transactions::table.find(hash))
        .set(transactions::transfer_claims.eq(claims_per_transfer))
        .execute(conn)
        .await?;
    Ok(())
}

/// A transaction to store before broadcasting it.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = transactions)]
pub struct NewTx {
    /// Transaction hash (base58).
    pub hash: String,
    /// Signer account.
    pub signer_id: String,
    /// Signing public key.
    pub public_key: String,
    /// Nonce used on that key.
    pub nonce: i64,
    /// Referenced block hash.
    pub block_hash: String,
    /// borsh(SignedTransaction).
    pub signed_bytes: Vec<u8>,
    /// Token contract.
    pub token_contract: String,
    /// Claims carried.
    pub claim_ids: Vec<i64>,
    /// What its `ft_transfer`s move in total (the guards count it while it is in flight).
    pub amount: Option<Yocto>,
    /// The UTC day whose `daily_spend` holds its reservation ([`crate::spend::reserve_spend`]).
    pub spend_day: Option<chrono::NaiveDate>,
    /// Gas attached to each of its actions ([`crate::gas`]).
    pub gas_per_action: Option<i64>,
    /// Its actions (`ft_transfer`s and registrations).
    pub action_count: Option<i32>,
}

/// Stores a freshly signed transaction in state `signed`.
pub async fn insert_tx(conn: &mut AsyncPgConnection, tx: &NewTx) -> Result<()> {
    diesel::insert_into(transactions::table)
        .values(tx)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reads one transaction by hash.
pub async fn get_tx(conn: &mut AsyncPgConnection, hash: &str) -> Result<Option<StoredTx>> {
    Ok(transactions::table
        .find(hash)
        .select(StoredTx::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Moves a transaction `from → to` (checked against the lifecycle and the stored state), recording an outcome
/// or failure when given. Errors and changes nothing when the step is illegal or the state is not `from`.
pub async fn set_tx_status(
    conn: &mut AsyncPgConnection,
    hash: &str,
    from: TxStatus,
    to: TxStatus,
    outcome: Option<&serde_json::Value>,
    failure: Option<&str>,
) -> Result<()> {
    if !from.can_become(to) {
        return Err(StoreError::IllegalTxTransition {
            hash: hash.to_string(),
            from,
            to,
        });
    }
    let now = diesel::dsl::now;
    let finished = to.is_terminal().then(Utc::now);
    let moved = diesel::update(
        transactions::table
            .find(hash)
            .filter(transactions::status.eq(from)),
    )
    .set((
        transactions::status.eq(to),
        transactions::outcome.eq(outcome),
        transactions::failure.eq(failure),
        transactions::finished_at.eq(finished),
        transactions::updated_at.eq(now),
    ))
    .execute(conn)
    .await?;
    if moved == 1 {
        return Ok(());
    }
    match get_tx(conn, hash).await? {
        None => Err(StoreError::NotFound(format!("transaction {hash}"))),
        Some(tx) => Err(StoreError::IllegalTxTransition {
            hash: hash.to_string(),
            from: tx.status,
            to,
        }),
    }
}

/// Open (`signed` or `submitted`) transactions signed with `public_key`, lowest nonce first: what a lane must
/// (re-)broadcast after it leased the key.
pub async fn unsettled_of_key(
    conn: &mut AsyncPgConnection,
    public_key: &str,
) -> Result<Vec<StoredTx>> {
    Ok(transactions::table
        .filter(transactions::public_key.eq(public_key))
        .filter(transactions::status.eq_any([TxStatus::Signed, TxStatus::Submitted]))
        .order(transactions::nonce.asc())
        .select(StoredTx::as_select())
        .load(conn)
        .await?)
}

/// Records the first successful broadcast: `signed → submitted`. Returns false when it was already past
/// `signed` (e.g. the indexer saw it included first).
pub async fn mark_submitted(conn: &mut AsyncPgConnection, hash: &str) -> Result<bool> {
    let moved = diesel::update(
        transactions::table
            .find(hash)
            .filter(transactions::status.eq(TxStatus::Signed)),
    )
    .set((
        transactions::status.eq(TxStatus::Submitted),
        transactions::submitted_at.eq(diesel::dsl::now),
        transactions::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(moved == 1)
}

/// A transaction that is provably dead (see the distributor's `death` module): marks it `dropped` with
/// `reason`, releases its daily-cap reservation and hands the claims it still carries back to `pending` (they
/// keep their split group), in one DB transaction. Returns the number of claims handed back; 0 and no change when the
/// transaction is no longer `signed`/`submitted` (the stream saw it included: it is not dead).
pub async fn bury(conn: &mut AsyncPgConnection, hash: &str, reason: &str) -> Result<usize> {
    use crate::claims::{update_claims, ClaimUpdate};
    use crate::schema::claims;
    use crate::types::{ClaimId, ClaimStatus};
    conn.transaction(async |c| {
        let moved = diesel::update(
            transactions::table
                .find(hash)
                .filter(transactions::status.eq_any([TxStatus::Signed, TxStatus::Submitted])),
        )
        .set((
            transactions::status.eq(TxStatus::Dropped),
            transactions::failure.eq(reason),
            transactions::finished_at.eq(diesel::dsl::now),
            transactions::updated_at.eq(diesel::dsl::now),
        ))
        .execute(c)
        .await?;
        if moved == 0 {
            return Ok(0);
        }
        // Dead: it can never pay, so its reservation against the daily cap goes back (once: the move is once).
        crate::spend::release_spend(c, hash).await?;
        let carried: Vec<ClaimId> = claims::table
            .filter(claims::current_tx_hash.eq(hash))
            .filter(claims::status.eq(ClaimStatus::Submitted))
            .select(claims::id)
            .load(c)
            .await?;
        let requeue = ClaimUpdate::Requeue {
            error: reason,
            split_group: None,
        };
        update_claims(c, &carried, ClaimStatus::Submitted, requeue).await
    })
    .await
}

/// Open transactions per signing key (`public_key`, count), for status pages.
pub async fn in_flight_by_key(conn: &mut AsyncPgConnection) -> Result<Vec<(String, i64)>> {
    Ok(transactions::table
        .filter(transactions::status.eq_any([
            TxStatus::Signed,
            TxStatus::Submitted,
            TxStatus::Included,
        ]))
        .group_by(transactions::public_key)
        .select((transactions::public_key, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// The states of the transactions in `hashes` that exist.
pub async fn tx_statuses(
    conn: &mut AsyncPgConnection,
    hashes: &[String],
) -> Result<Vec<(String, TxStatus)>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(transactions::table
        .filter(transactions::hash.eq_any(hashes))
        .select((transactions::hash, transactions::status))
        .load(conn)
        .await?)
}

/// Hashes of the transactions in `status` (audits: e.g. no `dropped` transaction may be on chain).
pub async fn hashes_with_status(
    conn: &mut AsyncPgConnection,
    status: TxStatus,
) -> Result<Vec<String>> {
    Ok(transactions::table
        .filter(transactions::status.eq(status))
        .select(transactions::hash)
        .load(conn)
        .await?)
}

/// Which transfer of which transaction carries (or paid) a claim: for `GET /claims/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimTransfer {
    /// The transaction.
    pub tx_hash: String,
    /// Its status.
    pub tx_status: TxStatus,
    /// Index of the `ft_transfer` among the transaction's transfers (registrations not counted).
    pub transfer_index: usize,
    /// The claims that one transfer pays (more than this one when coalesced), in memo order.
    pub claim_ids: Vec<i64>,
}

/// The transfer of `tx` that pays claim `id`, if it carries it.
pub fn transfer_of(tx: &StoredTx, id: i64) -> Option<ClaimTransfer> {
    let runs = tx.transfers();
    let index = runs.iter().position(|run| run.contains(&id))?;
    Some(ClaimTransfer {
        tx_hash: tx.hash.clone(),
        tx_status: tx.status,
        transfer_index: index,
        claim_ids: runs[index].to_vec(),
    })
}

/// [`transfer_of`] the claim's current transaction, read from the store.
pub async fn claim_transfer(
    conn: &mut AsyncPgConnection,
    claim_id: i64,
    current_tx_hash: Option<&str>,
) -> Result<Option<ClaimTransfer>> {
    let Some(hash) = current_tx_hash else {
        return Ok(None);
    };
    Ok(get_tx(conn, hash)
        .await?
        .and_then(|tx| transfer_of(&tx, claim_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_runs_follow_the_counts_or_fall_back_to_one_each() {
        let ids = [1, 2, 3, 4, 5];
        assert_eq!(
            transfer_runs(&ids, Some(&[2, 1, 2])),
            vec![&[1, 2][..], &[3][..], &[4, 5][..]]
        );
        let single: Vec<&[i64]> = ids.chunks(1).collect();
        assert_eq!(transfer_runs(&ids, None), single);
        assert_eq!(
            transfer_runs(&ids, Some(&[2, 2])),
            single,
            "does not add up"
        );
        assert_eq!(transfer_runs(&ids, Some(&[5, 0])), single, "empty run");
        assert_eq!(transfer_runs(&ids, Some(&[-1, 6])), single, "negative");
    }
}
