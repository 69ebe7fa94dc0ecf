//! Transaction status: which `TxExecutionStatus` a transaction has reached and its
//! `FinalExecutionOutcomeView` (receipt outcomes in depth-first order, as nearcore lists them).
//!
//! As on nearcore (chain/client/src/view_client_actor.rs `get_tx_status`), only transactions
//! included in a block are known: pools are never consulted. Once included, the outcome is
//! returned at every level, partial while receipts are pending (status `Started`, computed as
//! nearcore's `Chain::get_execution_status` follows the `SuccessReceiptId` chain).

use near_primitives::hash::CryptoHash;
use near_primitives::views::{
    ExecutionOutcomeWithIdView, ExecutionStatusView, FinalExecutionOutcomeView,
    FinalExecutionOutcomeViewEnum, FinalExecutionOutcomeWithReceiptView, FinalExecutionStatus,
    ReceiptView, SignedTransactionView, TxExecutionStatus,
};

use super::{Chain, TxRecord};

/// Where a transaction is.
pub enum TxLookup {
    /// Not included in a block (it may still wait in a pool).
    Unknown,
    /// Included in a block.
    Included(Box<TxProgress>),
}

/// The progress of an included transaction.
pub struct TxProgress {
    /// The highest status reached.
    pub status: TxExecutionStatus,
    /// The outcome so far (partial while receipts are pending).
    pub outcome: FinalExecutionOutcomeViewEnum,
}

/// Whether a transaction that reached `reached` satisfies a request for `wanted`.
pub fn satisfies(reached: &TxExecutionStatus, wanted: &TxExecutionStatus) -> bool {
    use TxExecutionStatus as S;
    match wanted {
        S::None | S::Included => true,
        S::ExecutedOptimistic => matches!(reached, S::ExecutedOptimistic | S::Executed | S::Final),
        S::IncludedFinal => matches!(reached, S::IncludedFinal | S::Executed | S::Final),
        S::Executed => matches!(reached, S::Executed | S::Final),
        S::Final => matches!(reached, S::Final),
    }
}

struct Walk<'a> {
    outcomes: Vec<&'a ExecutionOutcomeWithIdView>,
    receipts: Vec<&'a ReceiptView>,
    non_refund_done: bool,
    all_done: bool,
    last_height: u64,
    node_head: u64,
}

impl Chain {
    /// Looks a transaction up; `with_receipts` adds the receipts (`EXPERIMENTAL_tx_status`).
    ///
    /// The view is that of a node whose head is `node_head`: a transaction included above it is
    /// unknown, and statuses are computed against that node's head and final block.
    pub fn lookup_tx(&self, hash: &CryptoHash, with_receipts: bool, node_head: u64) -> TxLookup {
        match self.txs.get(hash) {
            Some(rec) if rec.height <= node_head => {
                TxLookup::Included(Box::new(self.progress(rec, with_receipts, node_head)))
            }
            _ => TxLookup::Unknown,
        }
    }

    /// Collects executed receipts depth-first from `id`. A receipt not executed yet holds back
    /// `FINAL`; unless it is a refund from `system`, it also holds back the `EXECUTED*` levels.
    fn walk<'a>(&'a self, id: &CryptoHash, walk: &mut Walk<'a>) {
        let rec = self
            .receipt_records
            .get(id)
            .filter(|r| r.height <= walk.node_head);
        let Some(rec) = rec else {
            walk.all_done = false;
            if !self.refund_ids.contains(id) {
                walk.non_refund_done = false;
            }
            return;
        };
        walk.outcomes.push(&rec.outcome);
        walk.receipts.push(&rec.view);
        walk.last_height = walk.last_height.max(rec.height);
        for child in &rec.outcome.outcome.receipt_ids {
            self.walk(child, walk);
        }
    }

    fn progress(&self, rec: &TxRecord, with_receipts: bool, node_head: u64) -> TxProgress {
        let node_head = node_head.min(self.head().height);
        let final_height = node_head
            .saturating_sub(super::FINALITY_LAG)
            .max(self.params.genesis_height);
        let included_final = rec.height <= final_height;
        let mut walk = Walk {
            outcomes: Vec::new(),
            receipts: Vec::new(),
            non_refund_done: true,
            all_done: true,
            last_height: rec.height,
            node_head,
        };
        for id in &rec.outcome.outcome.receipt_ids {
            self.walk(id, &mut walk);
        }
        use TxExecutionStatus as S;
        let status = match (included_final, walk.non_refund_done) {
            _ if walk.all_done && walk.last_height <= final_height => S::Final,
            (true, true) => S::Executed,
            (true, false) => S::IncludedFinal,
            (false, true) => S::ExecutedOptimistic,
            (false, false) => S::Included,
        };
        let final_status = execution_status(rec, &walk.outcomes);
        let final_outcome = FinalExecutionOutcomeView {
            status: final_status,
            transaction: SignedTransactionView::from(rec.tx.clone()),
            transaction_outcome: rec.outcome.clone(),
            receipts_outcome: walk.outcomes.iter().map(|o| (*o).clone()).collect(),
        };
        let outcome = if with_receipts {
            FinalExecutionOutcomeViewEnum::FinalExecutionOutcomeWithReceipt(
                FinalExecutionOutcomeWithReceiptView {
                    final_outcome,
                    receipts: walk.receipts.iter().map(|r| (*r).clone()).collect(),
                },
            )
        } else {
            FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(final_outcome)
        };
        TxProgress { status, outcome }
    }
}

/// nearcore's `Chain::get_execution_status`: follow `SuccessReceiptId` from the transaction
/// until a value or a failure; a receipt not executed yet means `Started`.
fn execution_status(
    rec: &TxRecord,
    receipts: &[&ExecutionOutcomeWithIdView],
) -> FinalExecutionStatus {
    let mut status = &rec.outcome.outcome.status;
    loop {
        match status {
            ExecutionStatusView::Failure(e) => return FinalExecutionStatus::Failure(e.clone()),
            ExecutionStatusView::SuccessValue(v) => {
                return FinalExecutionStatus::SuccessValue(v.clone())
            }
            ExecutionStatusView::Unknown => return FinalExecutionStatus::Started,
            ExecutionStatusView::SuccessReceiptId(id) => {
                match receipts.iter().find(|o| o.id == *id) {
                    Some(o) => status = &o.outcome.status,
                    None => return FinalExecutionStatus::Started,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_primitives::views::TxExecutionStatus as S;

    #[test]
    fn satisfaction_lattice() {
        assert!(satisfies(&S::Included, &S::None));
        assert!(!satisfies(&S::Included, &S::ExecutedOptimistic));
        assert!(!satisfies(&S::ExecutedOptimistic, &S::IncludedFinal));
        assert!(!satisfies(&S::IncludedFinal, &S::ExecutedOptimistic));
        assert!(satisfies(&S::Executed, &S::IncludedFinal));
        assert!(satisfies(&S::Final, &S::Executed));
        assert!(!satisfies(&S::Executed, &S::Final));
    }
}
