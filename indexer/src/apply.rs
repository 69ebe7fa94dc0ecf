//! Writes scanned blocks: claims, reconciliation and the cursor move, in one DB transaction, so a block is
//! either wholly committed or not at all, and a replayed block inserts nothing twice.

use payouts_store::claims::{insert_claims, NewClaim};
use payouts_store::cursor::advance_cursor;
use payouts_store::reconcile::{
    confirm_by_memos, open_tx_ids, open_txs_by_hash, open_txs_by_receipt, record_inclusion, settle,
    MemoPayment, Settlement,
};
use payouts_store::{AsyncConnection, AsyncPgConnection, StoreError};

use std::collections::HashSet;

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
    reconcile_batch(c, blocks, &mut stats).await?;
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
            claim_id: t.claim_id,
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
