//! When a stored transaction is dead — the only place that decides it, and why no path can sign two live
//! transactions for one claim.
//!
//! # The rule (DESIGN "Exactly-once payouts", rule 3)
//! A transaction `T` (signer key `K`, nonce `n`, base block `B` at height `h(B)`) is dead only when the
//! **indexed final chain** proves that it can never be included. With `F` the height of the indexer's cursor
//! (read from the database, never from the node) and `T` still `signed`/`submitted` in the store:
//! - (a) `F > h(B) + validity_period + 1`: every block that could include `T` is at or below `F`;
//! - (b) the nonce of `K` in the state of block `F` is ≥ `n`: a nonce at or above `T`'s was used by block
//!   `F`, and nonces of a key only grow, so `T` can never pass its nonce check again.
//!
//! Nothing an RPC node answers is a verdict: a rejection of a resend (`InvalidNonce`, `Expired`,
//! `ShardCongested`, `ShardStuck`, `NotEnoughBalance`), a timeout, a 5xx or `UNKNOWN_TRANSACTION` only make
//! the lane look again and re-broadcast the same bytes with back-off. On nearcore a transaction may sit in
//! another node's pool while the node we asked rejects the resend or does not know it, and `InvalidNonce` on a
//! resend usually means the original landed (see devnet/README.md "nearcore semantics").
//!
//! # Why no path signs two live transactions for one claim
//! 1. A claim gets a transaction only in [`crate::prepare`], which moves it `pending → submitted` and stores the
//!    signed bytes in one DB transaction, before any broadcast. A `submitted` claim is never batched again.
//! 2. A claim returns to `pending` only (i) when its transaction's receipt failed on chain (settlement: the
//!    transaction is included, its nonce used, its actions reverted together — the same bytes cannot land
//!    again), or (ii) through [`payouts_store::transactions::bury`] after [`prove`] found (a) or (b).
//! 3. (ii) is sound. The indexer records every inclusion of a stored transaction (status leaves
//!    `signed`/`submitted`) in the same DB transaction that moves its cursor past the block
//!    (indexer/src/apply.rs). `T`'s row is committed before its first broadcast, so any block holding `T` is
//!    produced after the row exists and is reconciled against it. [`prove`] reads `F` first; `bury`'s update
//!    (`WHERE status IN (signed, submitted)`) runs after, so when it moves the row no block ≤ `F` holds `T`.
//!    By (a) no block above `F` may include it (nearcore refuses a base block more than `validity_period`
//!    blocks old at chunk production); by (b) no block above `F` may either (its nonce check fails). So `T` is
//!    dead when its claims go back, and the new transaction that pays them is the only live one. When `bury`
//!    moves nothing (the stream saw `T` included after [`prove`] read `F`), the lane keeps `T` in flight until
//!    the store shows it settled and does not count it dead (distributor/src/lane/events.rs).
//! 4. The node is asked only for facts *at block `F`* (the base block's height, the key's nonce in `F`'s
//!    state), which every honest node answers alike; a node that cannot answer (lagging, garbage collected)
//!    yields "not proven yet", never "dead".
//!
//! # Merged transfers (coalescing)
//! One `ft_transfer` may pay several claims of one receiver with their sum ([`crate::plan`]). Nothing above
//! changes, because the unit of every rule is the *transaction*, and a merged transfer lives inside one:
//! 5. Its claims are locked, moved `pending → submitted` and listed in the stored row's `claim_ids` in the
//!    same DB transaction as the signed bytes ([`crate::prepare`]), exactly as claims of separate transfers
//!    of the batch are; a `submitted` claim is never batched again, so no claim is in two live memos.
//! 6. The transaction's actions are one receipt: they succeed or revert together, the merged transfer with
//!    them. A success confirms every claim the row lists; a failure (or a proof of death, rule 2 (ii)) hands
//!    every one of them back, and only then may they be signed again (merged anew or not) — the old bytes can
//!    never land again (nonce used, or proven unusable).
//! 7. The indexed stream confirms claims from an event only all together: every id the memo names must be
//!    `submitted` in the same transaction of the event's signer, to this receiver, with amounts summing to
//!    exactly the event's (payouts_store::reconcile `confirm_by_memos`); a memo naming a claim its receipt's
//!    transaction does not carry is an incident for that claim (payouts_store::incidents), merged or not.
//!    Replaying the stream repeats the same checks on rows that have moved on, and changes nothing.
//!
//! Tests that try to break it: `distributor/tests/it/coalesce.rs` (a merged transfer whose receipt fails is
//! paid once later; a crash between sign and send re-broadcasts the same merged bytes; replaying the blocks
//! confirms nothing twice), `distributor/tests/it/death.rs` (resends rejected while the first copy lands,
//! look-ups answered by lagging nodes, a transaction that truly never lands) and the unit tests below.

use near_primitives::transaction::SignedTransaction;
use payouts_near::BlockHeight;
use payouts_store::cursor::read_cursor;
use payouts_store::AsyncPgConnection;

use crate::chain::Chain;

/// What the evidence says about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Proven dead; the reason names the evidence.
    Dead(String),
    /// Not proven (it may still land): keep re-broadcasting the same bytes.
    NotYet(String),
}

/// The facts [`verdict`] weighs, gathered at the indexer's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// The indexer's cursor `F` (`None`: it has not indexed anything).
    pub indexed_height: Option<BlockHeight>,
    /// Height of the transaction's base block (`None`: unknown to the node asked).
    pub base_height: Option<BlockHeight>,
    /// The node's `transaction_validity_period` (a number of blocks).
    pub validity_period: u64,
    /// The key's nonce in the state of block `F` (`None`: not asked or not answered).
    pub key_nonce_at_indexed: Option<u64>,
    /// The transaction's nonce.
    pub tx_nonce: u64,
}

/// The rule, on gathered facts. The caller must only act on `Dead` through `bury`, which re-checks that the
/// store still shows the transaction not included.
pub fn verdict(e: Evidence) -> Verdict {
    let Some(f) = e.indexed_height else {
        return Verdict::NotYet("the indexer has not processed any block".into());
    };
    if let Some(base) = e.base_height {
        let last_possible = base.plus(e.validity_period).plus(1);
        if f > last_possible {
            return Verdict::Dead(format!(
                "expired: the indexed chain reached block {f}, past its base block {base} + validity \
                 {} blocks, without it",
                e.validity_period
            ));
        }
    }
    match e.key_nonce_at_indexed {
        Some(nonce) if nonce >= e.tx_nonce => Verdict::Dead(format!(
            "nonce {} used: the key's nonce is {nonce} at indexed block {f}, which does not include it",
            e.tx_nonce
        )),
        Some(nonce) => Verdict::NotYet(format!(
            "key nonce {nonce} < {} at indexed block {f}: it can still land",
            e.tx_nonce
        )),
        None => Verdict::NotYet(format!("no key nonce at indexed block {f}")),
    }
}

/// Gathers the evidence for `tx` at the cursor of `stream` and weighs it. An error of the node or the
/// database is "not proven yet".
pub async fn prove(
    conn: &mut AsyncPgConnection,
    chain: &Chain,
    stream: &str,
    validity_period: u64,
    tx: &SignedTransaction,
) -> Verdict {
    let t = &tx.transaction;
    let indexed_height = match read_cursor(conn, stream).await {
        Ok(c) => c.map(|c| BlockHeight(c.block_height)),
        Err(e) => return Verdict::NotYet(format!("cursor of stream {stream}: {e}")),
    };
    let Some(f) = indexed_height else {
        return verdict(Evidence {
            indexed_height,
            base_height: None,
            validity_period,
            key_nonce_at_indexed: None,
            tx_nonce: t.nonce(),
        });
    };
    let base_height = chain.block_height(*t.block_hash()).await.ok();
    let mut evidence = Evidence {
        indexed_height,
        base_height,
        validity_period,
        key_nonce_at_indexed: None,
        tx_nonce: t.nonce(),
    };
    if let Verdict::Dead(reason) = verdict(evidence) {
        return Verdict::Dead(reason);
    }
    match chain
        .access_key_nonce_at(t.signer_id(), t.public_key(), f)
        .await
    {
        Ok(nonce) => evidence.key_nonce_at_indexed = nonce,
        Err(e) => return Verdict::NotYet(format!("key nonce at block {f}: {e}")),
    }
    verdict(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(f: Option<u64>, nonce: Option<u64>) -> Evidence {
        Evidence {
            indexed_height: f.map(BlockHeight),
            base_height: Some(BlockHeight(100)),
            validity_period: 50,
            key_nonce_at_indexed: nonce,
            tx_nonce: 7,
        }
    }

    fn dead(v: &Verdict) -> bool {
        matches!(v, Verdict::Dead(_))
    }

    #[test]
    fn nothing_indexed_proves_nothing() {
        assert!(!dead(&verdict(ev(None, Some(1_000)))));
    }

    #[test]
    fn expiry_counts_only_once_every_possible_block_is_indexed() {
        // Includable up to 100 + 50 + 1 = 151.
        assert!(!dead(&verdict(ev(Some(151), None))));
        assert!(dead(&verdict(ev(Some(152), None))));
        // An unknown base block never proves expiry.
        let e = Evidence {
            base_height: None,
            ..ev(Some(10_000), None)
        };
        assert!(!dead(&verdict(e)));
    }

    #[test]
    fn a_used_nonce_at_the_indexed_block_proves_it() {
        assert!(!dead(&verdict(ev(Some(120), Some(6)))));
        assert!(dead(&verdict(ev(Some(120), Some(7)))));
        assert!(dead(&verdict(ev(Some(120), Some(9)))));
        assert!(!dead(&verdict(ev(Some(120), None))));
    }
}
