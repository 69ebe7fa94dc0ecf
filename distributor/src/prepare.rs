//! The first half of paying a batch: in ONE database transaction, lock the oldest pending claims of a token,
//! take the token's spend lock and size the batch to the money guards ([`crate::guard`]: daily cap, balance
//! less what is in flight), sign it with the next nonce of a key this process has leased, store the signed
//! transaction with its amount, move the key's nonce forward (fenced on the lease), mark the claims
//! `submitted` and reserve the amount against the day's cap. Only after that commits may the bytes be
//! broadcast; if anything fails, nothing is stored, nothing is reserved and nothing is sent.
//!
//! Coalescing (`distributor.coalesce`, [`crate::plan`]): the batch is planned in transfers; a transfer may pay
//! several claims of one receiver, so beyond the oldest pending claims the same DB transaction also locks the
//! other pending claims of the receivers the batch pays ([`lock_pending_of_receivers`]) and merges them in.
//! Every claim a batch pays is locked, moved to `submitted` and listed in `transactions.claim_ids` (in action
//! order, `transfer_claims` saying how many each transfer pays) in the same commit as the signed bytes, so
//! a merged transfer is, for the exactly-once rules, a batch like any other: its claims are paid by that one
//! live transaction or by none (see `crate::death`, "Merged transfers").
//!
//! Fail closed on incidents: the same DB transaction first asks whether an incident that pauses the token
//! is open ([`payouts_store::incidents::open_for_token`]: one of that token, or one of every token); if so it
//! signs nothing and answers [`Prepared::Blocked`]. The check sits here, the only place that signs, so no
//! lane or process can get past it; re-broadcasting bytes signed before the incident adds no payment.

use near_primitives::hash::CryptoHash;
use std::time::Duration;

use payouts_store::claims::{
    lock_pending, lock_pending_of_receivers, update_claims, Claim, ClaimUpdate,
};
use payouts_store::incidents::open_for_token;
use payouts_store::keys::use_nonce;
use payouts_store::spend::{lock_spend, reserve_spend};
use payouts_store::transactions::{insert_tx, record_transfers, NewTx};
use payouts_store::{AsyncConnection, AsyncPgConnection, ClaimId, ClaimStatus, StoreError, Yocto};

use crate::guard::{Budget, TokenBalance};
use crate::keyfile::TreasuryKey;
use crate::plan::{batch_claims, plan_transfers, Limits, Transfer};
use crate::tx::{build_transfers, BuildError, Registrations, SignedBatch};

/// With coalescing, how many claims per transfer of a batch are locked at first (the oldest pending).
const LOOK_AHEAD: usize = 4;
/// With coalescing, how many more claims per transfer of a batch may be merged in from the pending claims
/// of the receivers it pays.
const MERGE_MORE: usize = 8;

/// A batch stored and ready to broadcast.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The signed transaction.
    pub batch: SignedBatch,
    /// The claims it pays, in action order.
    pub claim_ids: Vec<ClaimId>,
    /// Its `ft_transfer` actions (fewer than its claims when some were merged).
    pub transfers: usize,
    /// What it pays in total.
    pub total: Yocto,
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
    /// The daily-cap reservation was refused although the budget was checked under the spend lock (a
    /// process not taking the lock?). Nothing was written.
    #[error("daily cap reservation of {0} refused under the spend lock; nothing signed")]
    Reservation(String),
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
    /// The treasury's balance of the token; the batch and what is in flight must fit in it. `None`: no
    /// balance guard (tests of batching alone: the lane never signs without a balance, see [`crate::guard`]).
    pub balance: Option<TokenBalance>,
    /// Daily cap of the token, checked against what was reserved today; `None`: no cap.
    pub daily_cap: Option<Yocto>,
    /// Receivers to register first.
    pub registrations: Registrations,
    /// `[distributor] register_receivers`: a claim whose receiver was not registered may be tried again (it
    /// is registered first); off, such a claim is failed.
    pub register_receivers: bool,
    /// `[distributor] coalesce`: claims of one receiver pending together share one transfer.
    pub coalesce: bool,
    /// Nothing of this lane waits for inclusion: a batch sent now goes in the next chunk behind nothing of
    /// ours, so one that is not full goes at once instead of waiting `max_wait` for more claims (latency when
    /// idle; under a backlog batches are full anyway, and while a transaction of the lane waits for a block,
    /// claims gather into the next batch: about one receipt per lane and block).
    pub idle: bool,
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
        let lock = if opts.coalesce { per_tx * LOOK_AHEAD } else { per_tx };
        let mut pending = lock_pending(c, token, i64::try_from(lock).unwrap_or(1)).await?;
        // A receiver found not registered can only be paid after a registration; without one it is final.
        let mut unregistrable = 0;
        if !opts.register_receivers {
            let (stuck, rest): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|cl| cl.retry_kind.as_deref() == Some("registration"));
            pending = rest;
            for cl in &stuck {
                let error = format!(
                    "{}{}",
                    cl.last_error
                        .as_deref()
                        .unwrap_or("receiver not registered"),
                    payouts_store::retry::REGISTRATION_OFF_SUFFIX
                );
                let fail = ClaimUpdate::Fail { error: &error };
                update_claims(c, &[cl.id], ClaimStatus::Pending, fail).await?;
            }
            unregistrable = stuck.len();
        }
        let locked: Vec<ClaimId> = pending.iter().map(|cl| cl.id).collect();
        let (batches, mut unpayable) = plan_transfers(pending, limits, opts.coalesce);
        for bad in &unpayable {
            let fail = ClaimUpdate::Fail { error: &bad.reason };
            update_claims(c, &[bad.id], ClaimStatus::Pending, fail).await?;
        }
        // One batch per call: the one holding the oldest claim.
        let Some(mut transfers) = batches.into_iter().next() else {
            return Ok(Prepared::Idle);
        };
        let isolated = transfers[0].claims[0].needs_isolation;
        // Coalescing: merge in the other pending claims of the receivers this batch pays.
        if opts.coalesce && !isolated {
            let more = more_of_receivers(c, token, &transfers, &locked, per_tx, opts).await?;
            if !more.is_empty() {
                let mut all: Vec<Claim> = transfers.into_iter().flat_map(|t| t.claims).collect();
                all.extend(more);
                all.sort_by_key(|cl| cl.id);
                let (batches, bad) = plan_transfers(all, limits, true);
                for b in &bad {
                    let fail = ClaimUpdate::Fail { error: &b.reason };
                    update_claims(c, &[b.id], ClaimStatus::Pending, fail).await?;
                }
                unpayable.extend(bad);
                let Some(first) = batches.into_iter().next() else {
                    return Ok(Prepared::Idle);
                };
                transfers = first;
            }
        }
        // Flush rule: a batch that is not full waits for more claims, up to max_wait after its oldest claim,
        // unless the lane has nothing waiting for a block (then waiting only adds latency).
        if transfers.len() < per_tx && !isolated && !opts.idle {
            let age = (chrono::Utc::now() - transfers[0].claims[0].created_at)
                .to_std()
                .unwrap_or_default();
            if age < opts.max_wait {
                return Ok(Prepared::Wait(opts.max_wait - age));
            }
        }
        // Registrations take actions too.
        while transfers.len() > 1 && opts.registrations.actions_for_transfers(&transfers) > per_tx {
            transfers.pop();
        }
        // Guards, under the token's spend lock (held to the commit): the day's cap left and the balance left
        // after what is in flight, both as every lane of every process has reserved them (crate::guard).
        let since = opts.balance.map(|b| b.counts_successes_since());
        let spend = lock_spend(c, token, since).await?;
        let budget = Budget::new(&spend, opts.balance, opts.daily_cap);
        let flat: Vec<Claim> = batch_claims(&transfers).cloned().collect();
        let fits = budget.fits(&flat);
        if fits == 0 {
            let why = budget.blocked_reason(token, &spend, flat[0].amount);
            return Ok(Prepared::Blocked(why));
        }
        let (transfers, total) = fitting(transfers, fits);
        let gas = limits.gas_per_transfer;
        let batch = build_transfers(
            key,
            token,
            &transfers,
            lane.nonce,
            lane.block_hash,
            gas,
            &opts.registrations,
        )?;
        let claim_ids: Vec<ClaimId> = batch_claims(&transfers).map(|cl| cl.id).collect();
        let per_transfer: Vec<i32> = transfers
            .iter()
            .map(|t| i32::try_from(t.claims.len()).unwrap_or(i32::MAX))
            .collect();
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
            amount: Some(total),
            spend_day: Some(spend.day),
            gas_per_action: i64::try_from(gas).ok().filter(|g| *g > 0),
            action_count: i32::try_from(opts.registrations.actions_for_transfers(&transfers))
                .ok()
                .filter(|n| *n > 0),
        };
        insert_tx(c, &row).await?;
        record_transfers(c, &row.hash, &per_transfer).await?;
        use_nonce(c, &row.public_key, owner, nonce).await?;
        update_claims(
            c,
            &claim_ids,
            ClaimStatus::Pending,
            ClaimUpdate::Submit { tx_hash: &row.hash },
        )
        .await?;
        // Last, so the daily_spend row is locked only up to the commit. Refused only if a reservation
        // slipped past the spend lock: then nothing of this batch is kept.
        if !reserve_spend(c, token, spend.day, total, opts.daily_cap).await? {
            return Err(PrepareError::Reservation(token.to_string()));
        }
        Ok(Prepared::Batch(Box::new(PreparedBatch {
            batch,
            transfers: transfers.len(),
            claim_ids,
            total,
            unpayable: unpayable.len() + unregistrable,
        })))
    })
    .await
}

/// The other pending claims of the receivers `transfers` pay (only those whose claims may be merged), locked
/// for this DB transaction; `locked` is what the caller holds already.
async fn more_of_receivers(
    c: &mut AsyncPgConnection,
    token: &str,
    transfers: &[Transfer],
    locked: &[ClaimId],
    per_tx: usize,
    opts: &BatchOptions,
) -> Result<Vec<Claim>, PrepareError> {
    let mut receivers: Vec<&str> = transfers
        .iter()
        .filter(|t| t.claims.iter().all(|cl| cl.may_coalesce))
        .map(Transfer::receiver)
        .collect();
    receivers.sort_unstable();
    receivers.dedup();
    let limit = i64::try_from(per_tx * MERGE_MORE).unwrap_or(i64::MAX);
    // The store's query takes the ids as integers (its SQL array parameter).
    let locked: Vec<i64> = locked.iter().map(|id| id.0).collect();
    let mut more = lock_pending_of_receivers(c, token, &receivers, &locked, limit).await?;
    if !opts.register_receivers {
        // Those are failed when the oldest-first pass reaches them (above), not merged.
        more.retain(|cl| cl.retry_kind.as_deref() != Some("registration"));
    }
    Ok(more)
}

/// The first `fits` claims of `transfers` (in action order; the last transfer may lose some), cut further
/// so that the total stays a u128, and that total.
fn fitting(transfers: Vec<Transfer>, fits: usize) -> (Vec<Transfer>, Yocto) {
    let mut left = fits;
    let mut total: u128 = 0;
    let mut out = Vec::with_capacity(transfers.len());
    'outer: for mut t in transfers {
        if left == 0 {
            break;
        }
        t.claims.truncate(left);
        let mut kept = Vec::with_capacity(t.claims.len());
        for cl in t.claims {
            match total.checked_add(cl.amount.0) {
                Some(s) => {
                    total = s;
                    kept.push(cl);
                }
                None => {
                    if !kept.is_empty() {
                        out.push(Transfer { claims: kept });
                    }
                    break 'outer;
                }
            }
        }
        left -= kept.len();
        out.push(Transfer { claims: kept });
    }
    (out, Yocto(total))
}
