//! Writes scanned blocks: claims, reconciliation, the treasury keys' transactions, incidents and the cursor
//! move, in one DB transaction, so a block is either wholly committed or not at all, and a replayed block
//! inserts nothing twice.
//!
//! Incidents ([`payouts_store::incidents`]) are detected after the whole batch is reconciled and its
//! treasury-key transactions recorded: a memo'd transfer executes at least one block after the transaction
//! that carries it, so by then the receipt it came from is known to be ours or not.

use payouts_store::claims::{insert_claims, NewClaim};
use payouts_store::cursor::advance_cursor;
use payouts_store::reconcile::{
    confirm_by_memos, open_tx_ids, open_txs_by_hash, open_txs_by_receipt, record_inclusion, settle,
    MemoPayment, Settlement,
};
use payouts_store::{AsyncConnection, AsyncPgConnection, StoreError};

use std::collections::{HashMap, HashSet};

use payouts_store::incidents::{detect_dead_landed, detect_memo_payments, MemoSighting};
use payouts_store::key_txs::{record_key_txs, treasury_keys, KeyTx};

use near_lake_framework::near_indexer_primitives::CryptoHash;

use crate::metrics::CommitStats;
use crate::scan::BlockFindings;

/// Commits `blocks` (in height order). With `stream`, the cursor moves to the last one in the same
/// transaction; without (replays), it is left alone.
pub async fn commit_blocks(
    conn: &mut AsyncPgConnection,
    stream: Option<&str>,
    blocks: &[BlockFindings],
) -> Result<CommitStats, StoreError> {
    if blocks.is_empty() {
        return Ok(CommitStats::default());
    }
    conn.transaction(async |c| write_blocks(c, stream, blocks).await)
        .await
}

/// [`commit_blocks`] inside a transaction the caller holds (and commits or rolls back).
pub async fn write_blocks(
    c: &mut AsyncPgConnection,
    stream: Option<&str>,
    blocks: &[BlockFindings],
) -> Result<CommitStats, StoreError> {
    let Some(last) = blocks.last() else {
        return Ok(CommitStats::default());
    };
    let mut stats = CommitStats {
        last_height: last.height,
        last_timestamp_nanos: last.timestamp_nanos,
        blocks: blocks.len() as u64,
        ..Default::default()
    };
    for block in blocks {
        stats.events += block.claims.len() as u64;
        stats.malformed += block.malformed.len() as u64;
    }
    // The whole batch's claims in one statement: each row's unique key makes it insert-or-nothing, so
    // neither their order nor the batch's grouping matters.
    stats.inserted += match blocks {
        [one] => insert_claims(c, &one.claims).await?,
        _ => {
            let claims: Vec<NewClaim> = blocks
                .iter()
                .flat_map(|b| b.claims.iter().cloned())
                .collect();
            insert_claims(c, &claims).await?
        }
    } as u64;
    let key_txs = key_transactions(c, blocks).await?;
    stats.key_txs = record_key_txs(c, &key_txs).await? as u64;
    reconcile_batch(c, blocks, &mut stats).await?;
    stats.incidents = detect_incidents(c, blocks, &key_txs).await? as u64;
    if let Some(stream) = stream {
        advance_cursor(c, stream, last.height, Some(&last.hash)).await?;
    }
    Ok(stats)
}

/// Reconciles `blocks` in height order. Usually none of a batch's transactions or receipts is ours: the
/// open transactions (a handful) are read once and matched in memory, and only a block holding one of
/// them gets the look-ups and writes (the same as block by block: with nothing of ours open, a block's
/// look-ups find nothing either).
async fn reconcile_batch(
    c: &mut AsyncPgConnection,
    blocks: &[BlockFindings],
    stats: &mut CommitStats,
) -> Result<(), StoreError> {
    let mut open: HashSet<CryptoHash> = open_tx_ids(c)
        .await?
        .into_iter()
        .flat_map(|(hash, receipt)| std::iter::once(hash).chain(receipt))
        .filter_map(|id| id.parse::<CryptoHash>().ok())
        .collect();
    for block in blocks {
        let ours = !open.is_empty()
            && (block.transactions.iter().any(|t| open.contains(&t.tx_hash))
                || block
                    .receipt_outcomes
                    .iter()
                    .any(|r| open.contains(&r.receipt_id)));
        if ours {
            reconcile(c, block, &mut open, stats).await?;
        } else {
            confirm_memos(c, block, stats).await?;
        }
    }
    Ok(())
}

async fn reconcile(
    c: &mut AsyncPgConnection,
    block: &BlockFindings,
    open: &mut HashSet<CryptoHash>,
    stats: &mut CommitStats,
) -> Result<(), StoreError> {
    let hashes: Vec<String> = block
        .transactions
        .iter()
        .filter(|t| open.contains(&t.tx_hash))
        .map(|t| t.tx_hash.to_string())
        .collect();
    for ours in open_txs_by_hash(c, &hashes).await? {
        let Some(seen) = block
            .transactions
            .iter()
            .find(|t| t.tx_hash.to_string() == ours.hash)
        else {
            continue;
        };
        match (&seen.failure, &seen.receipt_id) {
            (Some(msg), _) => add(stats, settle(c, &ours, Settlement::Failure(msg)).await?),
            (None, Some(receipt)) => {
                record_inclusion(c, &ours.hash, block.height, &receipt.to_string()).await?;
                // Its outcome may come in a later block of this batch: match it there too.
                open.insert(*receipt);
            }
            (None, None) => {
                // Included without a receipt (not a shape nearcore gives a successful conversion): it is on
                // chain all the same, so it must never look unseen to the death rule.
                tracing::warn!(tx = %ours.hash, height = block.height, "our transaction included without a receipt");
                record_inclusion(c, &ours.hash, block.height, "").await?;
            }
        }
    }
    // Receipts of open transactions, including those recorded just above.
    let receipts: Vec<String> = block
        .receipt_outcomes
        .iter()
        .filter(|r| open.contains(&r.receipt_id))
        .map(|r| r.receipt_id.to_string())
        .collect();
    for ours in open_txs_by_receipt(c, &receipts).await? {
        let Some(outcome) = block
            .receipt_outcomes
            .iter()
            .find(|r| ours.receipt_id.as_deref() == Some(r.receipt_id.to_string().as_str()))
        else {
            continue;
        };
        let how = match &outcome.result {
            Ok(()) => Settlement::Success,
            Err(msg) => Settlement::Failure(msg),
        };
        add(stats, settle(c, &ours, how).await?);
        payouts_store::gas::record_gas_burnt(c, &ours.hash, outcome.gas_burnt).await?;
    }
    confirm_memos(c, block, stats).await
}

async fn confirm_memos(
    c: &mut AsyncPgConnection,
    block: &BlockFindings,
    stats: &mut CommitStats,
) -> Result<(), StoreError> {
    // One statement for the whole block: a busy block carries thousands of transfers.
    let payments: Vec<MemoPayment<'_>> = block
        .memo_transfers
        .iter()
        .map(|t| MemoPayment {
            claim_ids: t.claim_ids.clone(),
            token: &t.token,
            from: &t.from,
            to: &t.to,
            amount: t.amount,
        })
        .collect();
    stats.confirmed += confirm_by_memos(c, &payments).await? as u64;
    Ok(())
}

fn add(stats: &mut CommitStats, s: payouts_store::reconcile::Settled) {
    stats.confirmed += s.confirmed as u64;
    stats.handed_back += s.handed_back as u64;
    stats.failed += s.failed as u64;
}

/// The batch's transactions signed by a treasury key (`access_keys`: a handful of rows, read once per
/// batch). Only a transaction whose signer is a treasury account has its key encoded and compared.
async fn key_transactions(
    c: &mut AsyncPgConnection,
    blocks: &[BlockFindings],
) -> Result<Vec<KeyTx>, StoreError> {
    let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
    for (account, pk) in treasury_keys(c).await? {
        keys.entry(account).or_default().insert(pk);
    }
    let mut out = Vec::new();
    if keys.is_empty() {
        return Ok(out);
    }
    for block in blocks {
        for t in &block.transactions {
            let Some(ours) = keys.get(t.signer_id.as_str()) else {
                continue;
            };
            let pk = t.public_key.to_string();
            if !ours.contains(&pk) {
                continue;
            }
            out.push(KeyTx {
                hash: t.tx_hash.to_string(),
                signer_id: t.signer_id.to_string(),
                public_key: pk,
                nonce: i64::try_from(t.nonce).unwrap_or(i64::MAX),
                block_height: i64::try_from(block.height).unwrap_or(i64::MAX),
                block_hash: block.hash.clone(),
                receipt_id: t.receipt_id.map(|r| r.to_string()),
                failure: t.failure.clone(),
            });
        }
    }
    Ok(out)
}

/// Records the batch's incidents: dropped transactions of ours that landed, and memo'd transfers that are
/// not our payment of that claim. Idempotent (each incident's subject is unique). Returns how many are new.
async fn detect_incidents(
    c: &mut AsyncPgConnection,
    blocks: &[BlockFindings],
    key_txs: &[KeyTx],
) -> Result<usize, StoreError> {
    let landed: Vec<_> = key_txs
        .iter()
        .map(|k| {
            let height = u64::try_from(k.block_height).unwrap_or(0);
            (k.hash.as_str(), k.receipt_id.as_deref(), height)
        })
        .collect();
    let mut new = detect_dead_landed(c, &landed).await?;
    let sightings: Vec<MemoSighting<'_>> = blocks
        .iter()
        .flat_map(|b| {
            // One sighting per claim a transfer names: each must be carried by the transaction whose
            // receipt emitted it (a merged transfer names several).
            b.memo_transfers.iter().flat_map(move |t| {
                t.claim_ids.iter().map(move |id| MemoSighting {
                    claim_id: *id,
                    token: &t.token,
                    from: &t.from,
                    to: &t.to,
                    amount: t.amount,
                    receipt_id: t.receipt_id.to_string(),
                    block_height: b.height,
                })
            })
        })
        .collect();
    new += detect_memo_payments(c, &sightings).await?;
    if new > 0 {
        let first = blocks.first().map_or(0, |b| b.height);
        let last = blocks.last().map_or(0, |b| b.height);
        tracing::error!(new, from_height = first, to_height = last, "incident: a payment on chain the store did not expect; payouts of its token are paused");
    }
    Ok(new)
}
