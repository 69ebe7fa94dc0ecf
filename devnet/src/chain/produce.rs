//! Block production: execute waiting receipts, then include pool transactions, both in arrival
//! order and within the block gas limit; work that does not fit waits for the next block.

use std::collections::HashMap;
use std::sync::Arc;

use near_crypto::PublicKey;
use near_indexer_primitives::{
    IndexerExecutionOutcomeWithOptionalReceipt, IndexerTransactionWithOutcome,
};
use near_primitives::hash::CryptoHash;
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::utils::create_receipt_id_from_transaction;
use near_primitives::views::{
    ActionView, ExecutionMetadataView, ExecutionOutcomeView, ExecutionOutcomeWithIdView,
    ExecutionStatusView, ReceiptEnumView, ReceiptView, SignedTransactionView,
};
use rand::Rng;

use super::views::{block_hash, build_block, BlockParts};
use super::{Block, Chain, PendingReceipt, PendingTx, TxRecord};
use crate::validate::{self, ChainPoint};

/// Gas accounting of the block being produced.
pub(super) struct GasMeter {
    pub(super) used: u64,
    pub(super) limit: Option<u64>,
}

impl GasMeter {
    /// Whether `gas` more fits. Something always fits in an empty block, so work larger than
    /// the limit (only possible with `max_tx_gas` above the block limit) cannot wait forever.
    fn fits(&self, gas: u64) -> bool {
        match self.limit {
            None => true,
            Some(limit) => self.used == 0 || self.used.saturating_add(gas) <= limit,
        }
    }
}

impl Chain {
    pub(super) fn produce_genesis(&mut self, timestamp_ns: u64) {
        let height = self.params.genesis_height;
        let block = build_block(BlockParts {
            height,
            genesis_height: height,
            prev_hash: CryptoHash::default(),
            last_final_hash: CryptoHash::default(),
            timestamp_ns,
            gas_price: self.params.fees.gas_price,
            total_supply: self.state.total_near(),
            gas_used: 0,
            gas_limit: self.params.gas_limit,
            balance_burnt: 0,
            transactions: vec![],
            incoming_receipts: vec![],
            outcomes: vec![],
        });
        self.hash_to_height.insert(block.hash, height);
        self.blocks.push(Arc::new(block));
    }

    /// Produces the next block at `timestamp_ns` (wall clock, strictly increasing).
    pub fn produce_block(&mut self, timestamp_ns: u64) -> Arc<Block> {
        let prev = self.head().clone();
        let height = prev.height + 1;
        self.take_forwarded(height);
        let timestamp_ns = timestamp_ns.max(prev.message.block.header.timestamp_nanosec + 1);
        let hash = block_hash(height, &prev.hash, timestamp_ns);
        let mut meter = GasMeter {
            used: 0,
            limit: self.params.gas_limit,
        };
        let mut burnt: u128 = 0;

        // 1. Receipts created by earlier blocks, oldest first.
        let mut outcomes = Vec::new();
        let mut created: Vec<PendingReceipt> = Vec::new();
        while let Some(next) = self.receipts.front() {
            if !meter.fits(next.upper_bound) {
                break;
            }
            let Some(receipt) = self.receipts.pop_front() else {
                break;
            };
            let executed = self.execute_receipt(receipt, height, hash);
            meter.used = meter.used.saturating_add(executed.gas_burnt);
            burnt = burnt.saturating_add(self.params.fees.gas_amount(executed.gas_burnt));
            created.extend(executed.children);
            outcomes.push(executed.outcome);
        }

        // 2. Pool transactions, grouped per access key in nonce order.
        let transactions = self.include_transactions(height, hash, &mut meter, &mut created);
        for t in &transactions {
            burnt = burnt.saturating_add(
                t.outcome
                    .execution_outcome
                    .outcome
                    .tokens_burnt
                    .as_yoctonear(),
            );
        }

        let incoming = std::mem::replace(
            &mut self.last_outgoing,
            created.iter().map(|r| r.view.clone()).collect(),
        );
        self.receipts.extend(created);
        self.state.seal_block(height);
        let last_final_height = height
            .saturating_sub(super::FINALITY_LAG)
            .max(self.params.genesis_height);
        let last_final_hash = self
            .block_at(last_final_height)
            .map_or(prev.hash, |b| b.hash);
        let block = Arc::new(build_block(BlockParts {
            height,
            genesis_height: self.params.genesis_height,
            prev_hash: prev.hash,
            last_final_hash,
            timestamp_ns,
            gas_price: self.params.fees.gas_price,
            total_supply: self.state.total_near(),
            gas_used: meter.used,
            gas_limit: self.params.gas_limit,
            balance_burnt: burnt,
            transactions,
            incoming_receipts: incoming,
            outcomes,
        }));
        self.hash_to_height.insert(block.hash, height);
        self.blocks.push(block.clone());
        self.front.advance(height);
        block
    }

    fn include_transactions(
        &mut self,
        height: u64,
        block_hash: CryptoHash,
        meter: &mut GasMeter,
        created: &mut Vec<PendingReceipt>,
    ) -> Vec<IndexerTransactionWithOutcome> {
        let mut pool = std::mem::take(&mut self.pool);
        let mut first_arrival: HashMap<(AccountId, PublicKey), u64> = HashMap::new();
        for p in &pool {
            first_arrival.entry(Self::lane(&p.tx)).or_insert(p.arrival);
        }
        pool.sort_by_key(|p| {
            let lane = first_arrival
                .get(&Self::lane(&p.tx))
                .copied()
                .unwrap_or(p.arrival);
            (lane, p.tx.transaction.nonce(), p.arrival)
        });
        let mut included = Vec::new();
        let mut rest = pool.into_iter();
        for p in rest.by_ref() {
            let at = ChainPoint {
                head_height: height - 1,
                base_height: self
                    .hash_to_height
                    .get(p.tx.transaction.block_hash())
                    .copied(),
                validity_period: self.params.validity_period,
                producing_height: Some(height),
            };
            if let Err(err) = validate::check_stateful(&self.state, &p.tx, &p.cost, at) {
                tracing::debug!(tx = %p.tx.get_hash(), ?err, "transaction dropped at chunk production");
                self.pool_hashes.remove(&p.tx.get_hash());
                continue;
            }
            if !meter.fits(p.cost.gas_burnt) {
                self.pool.push(p);
                break;
            }
            if self.drop_share > 0.0 && self.drop_rng.gen::<f64>() < self.drop_share {
                tracing::debug!(tx = %p.tx.get_hash(), "transaction dropped by the fault knob");
                self.pool_hashes.remove(&p.tx.get_hash());
                continue;
            }
            meter.used = meter.used.saturating_add(p.cost.gas_burnt);
            included.push(self.convert_transaction(p, height, block_hash, created));
        }
        self.pool.extend(rest);
        included
    }

    fn convert_transaction(
        &mut self,
        p: PendingTx,
        height: u64,
        block_hash: CryptoHash,
        created: &mut Vec<PendingReceipt>,
    ) -> IndexerTransactionWithOutcome {
        validate::charge(&mut self.state, &p.tx, &p.cost);
        let tx_hash = p.tx.get_hash();
        self.pool_hashes.remove(&tx_hash);
        let receipt_id = create_receipt_id_from_transaction(&tx_hash, height);
        let t = &p.tx.transaction;
        let actions = t.actions().to_vec();
        let fees = &self.params.fees;
        let view = ReceiptView {
            predecessor_id: t.signer_id().clone(),
            receiver_id: t.receiver_id().clone(),
            receipt_id,
            receipt: ReceiptEnumView::Action {
                signer_id: t.signer_id().clone(),
                signer_public_key: t.public_key().clone(),
                gas_price: Balance::from_yoctonear(fees.gas_price),
                output_data_receivers: vec![],
                input_data_ids: vec![],
                actions: actions.iter().cloned().map(ActionView::from).collect(),
                is_promise_yield: false,
                refund_to: None,
            },
            priority: 0,
        };
        created.push(PendingReceipt {
            view,
            upper_bound: fees.receipt_gas_upper_bound(&actions),
            actions,
            signer: t.signer_id().clone(),
            prepaid_gas: p.cost.gas_remaining,
            is_refund: false,
        });
        let outcome = ExecutionOutcomeWithIdView {
            proof: vec![],
            block_hash,
            id: tx_hash,
            outcome: ExecutionOutcomeView {
                logs: vec![],
                receipt_ids: vec![receipt_id],
                gas_burnt: Gas::from_gas(p.cost.gas_burnt),
                tokens_burnt: Balance::from_yoctonear(p.cost.burnt_amount),
                executor_id: t.signer_id().clone(),
                status: ExecutionStatusView::SuccessReceiptId(receipt_id),
                metadata: ExecutionMetadataView::default(),
            },
        };
        let transaction = SignedTransactionView::from(p.tx.clone());
        self.txs.insert(
            tx_hash,
            TxRecord {
                tx: p.tx,
                height,
                outcome: outcome.clone(),
            },
        );
        IndexerTransactionWithOutcome {
            transaction,
            outcome: IndexerExecutionOutcomeWithOptionalReceipt {
                execution_outcome: outcome,
                receipt: None,
            },
        }
    }
}
