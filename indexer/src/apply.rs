//! Writes scanned blocks: claims, reconciliation and the cursor move, in one DB transaction, so a block is
//! either wholly committed or not at all, and a replayed block inserts nothing twice.

use payouts_store::claims::insert_claims;
use payouts_store::cursor::advance_cursor;
use payouts_store::reconcile::{
    confirm_by_memo, open_txs_by_hash, open_txs_by_receipt, record_inclusion, settle, Settlement,
};
use payouts_store::{AsyncConnection, AsyncPgConnection, StoreError};

use crate::metrics::CommitStats;
use crate::scan::BlockFindings;

/// Commits `blocks` (in height order). With `stream`, the cursor moves to the last one in the same
/// transaction; without (replays), it is left alone.
pub async fn commit_blocks(
    conn: &mut AsyncPgConnection,
    stream: Option<&str>,
    blocks: &[BlockFindings],
) -> Result<CommitStats, StoreError> {
    let Some(last) = blocks.last() else {
        return Ok(CommitStats::default());
    };
    conn.transaction(async |c| {
        let mut stats = CommitStats {
            last_height: last.height,
            last_timestamp_nanos: last.timestamp_nanos,
            blocks: blocks.len() as u64,
            ..Default::default()
        };
        for block in blocks {
            stats.events += block.claims.len() as u64;
            stats.malformed += block.malformed.len() as u64;
            stats.inserted += insert_claims(c, &block.claims).await? as u64;
            reconcile(c, block, &mut stats).await?;
        }
        if let Some(stream) = stream {
            advance_cursor(c, stream, last.height, Some(&last.hash)).await?;
        }
        Ok(stats)
    })
    .await
}

async fn reconcile(
    c: &mut AsyncPgConnection,
    block: &BlockFindings,
    stats: &mut CommitStats,
) -> Result<(), StoreError> {
    let hashes: Vec<String> = block
        .transactions
        .iter()
        .map(|t| t.tx_hash.clone())
        .collect();
    for ours in open_txs_by_hash(c, &hashes).await? {
        let Some(seen) = block.transactions.iter().find(|t| t.tx_hash == ours.hash) else {
            continue;
        };
        match (&seen.failure, &seen.receipt_id) {
            (Some(msg), _) => add(stats, settle(c, &ours, Settlement::Failure(msg)).await?),
            (None, Some(receipt)) => {
                record_inclusion(c, &ours.hash, block.height, receipt).await?;
            }
            (None, None) => {}
        }
    }
    let receipts: Vec<String> = block
        .receipt_outcomes
        .iter()
        .map(|r| r.receipt_id.clone())
        .collect();
    for ours in open_txs_by_receipt(c, &receipts).await? {
        let Some(outcome) = block
            .receipt_outcomes
            .iter()
            .find(|r| Some(&r.receipt_id) == ours.receipt_id.as_ref())
        else {
            continue;
        };
        let how = match &outcome.result {
            Ok(()) => Settlement::Success,
            Err(msg) => Settlement::Failure(msg),
        };
        add(stats, settle(c, &ours, how).await?);
    }
    for t in &block.memo_transfers {
        if confirm_by_memo(c, t.claim_id, &t.token, &t.from, &t.to, t.amount).await? {
            stats.confirmed += 1;
        }
    }
    Ok(())
}

fn add(stats: &mut CommitStats, s: payouts_store::reconcile::Settled) {
    stats.confirmed += s.confirmed as u64;
    stats.handed_back += s.handed_back as u64;
    stats.failed += s.failed as u64;
}
