//! Transaction status: which `TxExecutionStatus` a transaction has reached and its
//! `FinalExecutionOutcomeView` (receipt outcomes in depth-first order, as nearcore lists them).

use near_primitives::hash::CryptoHash;
use near_primitives::views::{
    ExecutionOutcomeWithIdView, ExecutionStatusView, FinalExecutionOutcomeView,
    FinalExecutionOutcomeViewEnum, FinalExecutionOutcomeWithReceiptView, FinalExecutionStatus,
    ReceiptView, SignedTransactionView, TxExecutionStatus,
};

use super::{Chain, TxRecord};

/// Where a transaction is.
pub enum TxLookup {
    /// Never seen, or dropped.
    Unknown,
    /// Waiting in the pool.
    Pending,
    /// Included in a block.
    Included(Box<TxProgress>),
}

/// The progress of an included transaction.
pub struct TxProgress {
    /// The highest status reached.
    pub status: TxExecutionStatus,
    /// The outcome, once every non-refund receipt has executed.
    pub outcome: Option<FinalExecutionOutcomeViewEnum>,
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
}

impl Chain {
    /// Looks a transaction up; `with_receipts` adds the receipts (`EXPERIMENTAL_tx_status`).
    pub fn lookup_tx(&self, hash: &CryptoHash, with_receipts: bool) -> TxLookup {
        if let Some(rec) = self.txs.get(hash) {
            return TxLookup::Included(Box::new(self.progress(rec, with_receipts)));
        }
        if self.pool_hashes.contains(hash) {
            return TxLookup::Pending;
        }
        TxLookup::Unknown
    }

    /// Collects executed receipts depth-first from `id`. A receipt not executed yet holds back
    /// `FINAL`; unless it is a refund from `system`, it also holds back the `EXECUTED*` levels.
    fn walk<'a>(&'a self, id: &CryptoHash, walk: &mut Walk<'a>) {
        let Some(rec) = self.receipt_records.get(id) else {
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

    fn progress(&self, rec: &TxRecord, with_receipts: bool) -> TxProgress {
        let final_height = self.final_height();
        let included_final = rec.height <= final_height;
        let mut walk = Walk {
            outcomes: Vec::new(),
            receipts: Vec::new(),
            non_refund_done: true,
            all_done: true,
            last_height: rec.height,
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
        if !walk.non_refund_done {
            return TxProgress {
                status,
                outcome: None,
            };
        }
        let first = walk.outcomes.first().map(|o| &o.outcome.status);
        let final_status = match first {
            Some(ExecutionStatusView::Failure(e)) => FinalExecutionStatus::Failure(e.clone()),
            Some(ExecutionStatusView::SuccessValue(v)) => {
                FinalExecutionStatus::SuccessValue(v.clone())
            }
            Some(_) => FinalExecutionStatus::Started,
            None => FinalExecutionStatus::NotStarted,
        };
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
        TxProgress {
            status,
            outcome: Some(outcome),
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
