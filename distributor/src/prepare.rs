//! The first half of paying a batch: in ONE database transaction, lock the oldest pending claims of a token,
//! sign a batch with the next nonce of a key this process has leased, store the signed transaction, move the
//! key's nonce forward (fenced on the lease) and mark the claims `submitted`. Only after that commits may the
//! bytes be broadcast; if anything fails, nothing is stored and nothing is sent.

use near_primitives::hash::CryptoHash;
use payouts_store::claims::{lock_pending, update_claims, ClaimUpdate};
use payouts_store::keys::use_nonce;
use payouts_store::transactions::{insert_tx, NewTx};
use payouts_store::{AsyncConnection, AsyncPgConnection, ClaimId, ClaimStatus, StoreError};

use crate::keyfile::TreasuryKey;
use crate::plan::{plan, Limits};
use crate::tx::{build_batch, BuildError, SignedBatch};

/// A batch stored and ready to broadcast.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The signed transaction.
    pub batch: SignedBatch,
    /// The claims it pays, in action order.
    pub claim_ids: Vec<ClaimId>,
}

/// What can stop a batch from being prepared. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Database failure, or the key's lease was lost ([`StoreError::LeaseLost`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The batch could not be signed.
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl From<diesel::result::Error> for PrepareError {
    fn from(e: diesel::result::Error) -> Self {
        PrepareError::Store(e.into())
    }
}

/// Where the next transaction of a lane goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneState {
    /// The nonce to use (key nonce + 1).
    pub nonce: u64,
    /// A recent block hash.
    pub block_hash: CryptoHash,
}

/// Prepares at most one batch of `token` on the lane of `key` (held by `owner`). `Ok(None)`: nothing pending.
/// Claims that can never be paid are failed in the same transaction.
pub async fn prepare_batch(
    conn: &mut AsyncPgConnection,
    owner: &str,
    key: &TreasuryKey,
    token: &str,
    lane: LaneState,
    limits: &Limits,
) -> Result<Option<PreparedBatch>, PrepareError> {
    let per_tx = i64::try_from(limits.transfers_per_tx().max(1)).unwrap_or(1);
    conn.transaction(async |c| {
        let pending = lock_pending(c, token, per_tx).await?;
        let (batches, unpayable) = plan(pending, limits);
        for bad in &unpayable {
            let fail = ClaimUpdate::Fail { error: &bad.reason };
            update_claims(c, &[bad.id], ClaimStatus::Pending, fail).await?;
        }
        // One batch per call: an isolated claim comes first when it is the oldest.
        let Some(claims) = batches.into_iter().next() else {
            return Ok(None);
        };
        let gas = limits.gas_per_transfer;
        let batch = build_batch(key, token, &claims, lane.nonce, lane.block_hash, gas)?;
        let claim_ids: Vec<ClaimId> = claims.iter().map(|c| c.id).collect();
        let nonce = i64::try_from(lane.nonce)
            .map_err(|_| StoreError::Corrupt(format!("nonce {}", lane.nonce)))?;
        let row = NewTx {
            hash: batch.hash.to_string(),
            signer_id: key.account_id.to_string(),
            public_key: key.public_key.to_string(),
            nonce,
            block_hash: lane.block_hash.to_string(),
            signed_bytes: batch.bytes.clone(),
            token_contract: token.to_string(),
            claim_ids: claim_ids.iter().map(|id| id.0).collect(),
        };
        insert_tx(c, &row).await?;
        use_nonce(c, &row.public_key, owner, nonce).await?;
        update_claims(
            c,
            &claim_ids,
            ClaimStatus::Pending,
            ClaimUpdate::Submit { tx_hash: &row.hash },
        )
        .await?;
        Ok(Some(PreparedBatch { batch, claim_ids }))
    })
    .await
}
