//! The first half of paying a batch: in ONE database transaction, lock the oldest pending claims of a token,
//! sign a batch with the next nonce of a key this process has leased, store the signed transaction, move the
//! key's nonce forward (fenced on the lease) and mark the claims `submitted`. Only after that commits may the
//! bytes be broadcast; if anything fails, nothing is stored and nothing is sent.
//!
//! Fail closed on incidents: the same DB transaction first asks whether an incident that pauses the token
//! is open ([`payouts_store::incidents::open_for_token`]: one of that token, or one of every token); if so it
//! signs nothing and answers [`Prepared::Blocked`]. The check sits here, the only place that signs, so no
//! lane or process can get past it; re-broadcasting bytes signed before the incident adds no payment.

use near_primitives::hash::CryptoHash;
use std::time::Duration;

use payouts_store::claims::{lock_pending, spent_today, update_claims, ClaimUpdate};
use payouts_store::incidents::open_for_token;
use payouts_store::keys::use_nonce;
use payouts_store::transactions::{insert_tx, NewTx};
use payouts_store::{AsyncConnection, AsyncPgConnection, ClaimId, ClaimStatus, StoreError};

use crate::keyfile::TreasuryKey;
use crate::plan::{plan, Limits};
use crate::tx::{build_batch_registering, BuildError, Registrations, SignedBatch};

/// A batch stored and ready to broadcast.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The signed transaction.
    pub batch: SignedBatch,
    /// The claims it pays, in action order.
    pub claim_ids: Vec<ClaimId>,
    /// What it pays in total.
    pub total: u128,
    /// Claims failed in the same step because they can never be paid.
    pub unpayable: usize,
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

/// What else shapes a batch besides its size.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// A batch that is not full waits until its oldest claim is this old (0: send at once).
    pub max_wait: Duration,
    /// Most the batch may pay in total (token balance left after what is in flight); `None`: unbounded.
    pub budget: Option<u128>,
    /// Daily cap of the token, checked against what was sent today; `None`: no cap.
    pub daily_cap: Option<u128>,
    /// Receivers to register first.
    pub registrations: Registrations,
}

/// What [`prepare`] did.
#[derive(Debug)]
pub enum Prepared {
    /// A batch was stored: broadcast it.
    Batch(Box<PreparedBatch>),
    /// Nothing pending.
    Idle,
    /// A batch that is not full yet: try again after this long.
    Wait(Duration),
    /// A guard holds the claims back (budget or daily cap); the reason is for operators.
    Blocked(String),
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
    let opts = BatchOptions::default();
    Ok(
        match prepare(conn, owner, key, token, lane, limits, &opts).await? {
            Prepared::Batch(b) => Some(*b),
            _ => None,
        },
    )
}

/// [`prepare_batch`] with the flush rule, the guards and registrations of `opts`.
pub async fn prepare(
    conn: &mut AsyncPgConnection,
    owner: &str,
    key: &TreasuryKey,
    token: &str,
    lane: LaneState,
    limits: &Limits,
    opts: &BatchOptions,
) -> Result<Prepared, PrepareError> {
    let per_tx = limits.transfers_per_tx().max(1);
    conn.transaction(async |c| {
        if let Some(i) = open_for_token(c, token).await? {
            let scope = i.token_contract.as_deref().unwrap_or("every token");
            return Ok(Prepared::Blocked(format!(
                "incident {} ({}) is open for {scope}: nothing of {token} is signed until an admin clears it",
                i.id, i.kind
            )));
        }
        let pending = lock_pending(c, token, i64::try_from(per_tx).unwrap_or(1)).await?;
        let (batches, unpayable) = plan(pending, limits);
        for bad in &unpayable {
            let fail = ClaimUpdate::Fail { error: &bad.reason };
            update_claims(c, &[bad.id], ClaimStatus::Pending, fail).await?;
        }
        // One batch per call: the one holding the oldest claim.
        let Some(mut claims) = batches.into_iter().next() else {
            return Ok(Prepared::Idle);
        };
        // Flush rule: a batch that is not full waits for more claims, up to max_wait after its oldest claim.
        if claims.len() < per_tx && !claims[0].needs_isolation {
            let age = (chrono::Utc::now() - claims[0].created_at)
                .to_std()
                .unwrap_or_default();
            if age < opts.max_wait {
                return Ok(Prepared::Wait(opts.max_wait - age));
            }
        }
        // Registrations take actions too.
        while claims.len() > 1 && opts.registrations.actions_for(&claims) > per_tx {
            claims.pop();
        }
        // Guards: the token balance left, and the daily cap.
        let mut budget = opts.budget;
        if let Some(cap) = opts.daily_cap {
            let spent = spent_today(c, token).await?.0;
            let left = cap.saturating_sub(spent);
            budget = Some(budget.map_or(left, |b| b.min(left)));
        }
        if let Some(budget) = budget {
            let mut total: u128 = 0;
            let fits = claims
                .iter()
                .take_while(|cl| match total.checked_add(cl.amount.0) {
                    Some(t) if t <= budget => {
                        total = t;
                        true
                    }
                    _ => false,
                })
                .count();
            if fits == 0 {
                let why = if opts.daily_cap.is_some() && Some(budget) != opts.budget {
                    format!(
                        "daily cap of {token} reached (next claim needs {})",
                        claims[0].amount
                    )
                } else {
                    format!(
                        "{token} balance too low: {budget} available, next claim needs {}",
                        claims[0].amount
                    )
                };
                return Ok(Prepared::Blocked(why));
            }
            claims.truncate(fits);
        }
        let gas = limits.gas_per_transfer;
        let batch = build_batch_registering(
            key,
            token,
            &claims,
            lane.nonce,
            lane.block_hash,
            gas,
            &opts.registrations,
        )?;
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
        let total = claims.iter().map(|c| c.amount.0).sum();
        Ok(Prepared::Batch(Box::new(PreparedBatch {
            batch,
            claim_ids,
            total,
            unpayable: unpayable.len(),
        })))
    })
    .await
}
