//! Block production, with nearcore's limits (runtime/runtime/src/lib.rs `process_receipts`,
//! chain/chunks `prepare_transactions`):
//! - the block's gas price moves with how full the previous chunk was (nearcore's
//!   `compute_next_gas_price`: `p · (1 + r · (used / limit − ½))` with r = 1/100, so at most
//!   ±0.5 % a block), clamped to `[min_gas_price, max_gas_price]`;
//! - waiting receipts execute oldest first **while the chunk's compute is below its limit**
//!   (the check is made before each receipt, so the last one may overshoot); storage
//!   operations cost about 3× more compute than gas (`fees` module), so a chunk of token
//!   transfers fills up before its gas does; receipts that do not fit are delayed receipts and
//!   count in the shard's congestion;
//! - pool transactions are converted in arrival order per access key, nonce order within it,
//!   while the gas burnt converting them is below the congestion-dependent budget
//!   (`Congestion::process_tx_limit`: 500 Tgas, down to 20 Tgas when fully congested);
//! - a block may miss its chunk (fault knob): nothing is included or executed and the
//!   missed-chunks count grows.

use std::collections::HashMap;
use std::sync::Arc;

use near_crypto::PublicKey;
use near_indexer_primitives::{
    IndexerExecutionOutcomeWithOptionalReceipt, IndexerTransactionWithOutcome,
};
use near_primitives::hash::CryptoHash;
use near_primitives::num_rational::Rational32;
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

/// nearcore's gas price adjustment rate (genesis `gas_price_adjustment_rate`, mainnet 1/100).
const GAS_PRICE_ADJUSTMENT_RATE: (i32, i32) = (1, 100);

/// Gas and compute accounting of the chunk being produced.
pub(super) struct Meter {
    pub(super) gas: u64,
    pub(super) compute: u64,
    pub(super) limit: Option<u64>,
}

impl Meter {
    /// Whether another receipt may start: the compute used is below the limit.
    fn has_room(&self) -> bool {
        self.limit.is_none_or(|limit| self.compute < limit)
    }
}

/// Approximate size of a receipt in the shard's queue (congestion's memory measure).
pub(super) fn receipt_size(actions: &[near_primitives::action::Action]) -> u64 {
    use near_primitives::action::Action;
    actions.iter().fold(200, |acc, a| {
        acc + match a {
            Action::FunctionCall(fc) => 40 + (fc.method_name.len() + fc.args.len()) as u64,
            _ => 40,
        }
    })
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
            compute_used: 0,
            gas_limit: self.params.gas_limit,
            congestion: super::Congestion::default(),
            missed_since: None,
            last_admitted_at: None,
            balance_burnt: 0,
            transactions: vec![],
            incoming_receipts: vec![],
            outcomes: vec![],
        });
        self.hash_to_height.insert(block.hash, height);
        self.blocks.push(Arc::new(block));
    }

    /// The gas price of the block after `prev`: nearcore's adjustment by how full `prev`'s
    /// chunk was; unchanged after a missed chunk or with the gas limit lifted.
    fn next_gas_price(&self, prev: &Block) -> u128 {
        let price = prev.message.block.header.gas_price;
        let (Some(limit), true) = (prev.gas_limit, prev.has_chunk) else {
            return price.as_yoctonear();
        };
        let (numer, denom) = GAS_PRICE_ADJUSTMENT_RATE;
        near_primitives::block::Block::compute_next_gas_price_checked(
            price,
            Gas::from_gas(prev.gas_used),
            Gas::from_gas(limit),
            Rational32::new(numer, denom),
            Balance::from_yoctonear(self.params.min_gas_price),
            Balance::from_yoctonear(self.params.max_gas_price),
        )
        .map_or(price.as_yoctonear(), |p| p.as_yoctonear())
    }

    /// Produces the next block at `timestamp_ns` (wall clock, strictly increasing).
    pub fn produce_block(&mut self, timestamp_ns: u64) -> Arc<Block> {
        let prev = self.head().clone();
        let height = prev.height + 1;
        self.take_forwarded(height);
        let timestamp_ns = timestamp_ns.max(prev.message.block.header.timestamp_nanosec + 1);
        let hash = block_hash(height, &prev.hash, timestamp_ns);
        self.params.fees.gas_price = self.next_gas_price(&prev);
        if self.missing_chunks > 0 {
            self.missing_chunks -= 1;
            return self.produce_without_chunk(&prev, height, timestamp_ns);
        }
        let mut meter = Meter {
            gas: 0,
            compute: 0,
            limit: self.params.gas_limit,
        };
        let mut burnt: u128 = 0;

        // 1. Pool transactions, grouped per access key in nonce order, within the budget that
        //    the previous chunk's congestion leaves.
        let tx_budget = match self.params.gas_limit {
            Some(_) => prev
                .congestion
                .process_tx_limit(&self.params.fees.runtime_config().congestion_control_config),
            None => u64::MAX,
        };
        let mut created: Vec<PendingReceipt> = Vec::new();
        let transactions =
            self.include_transactions(height, hash, &mut meter, tx_budget, &mut created);
        for t in &transactions {
            burnt = burnt.saturating_add(
                t.outcome
                    .execution_outcome
                    .outcome
                    .tokens_burnt
                    .as_yoctonear(),
            );
        }

        // 2. Receipts created by earlier blocks (incoming and delayed), oldest first, while
        //    the chunk has compute left.
        let mut outcomes = Vec::new();
        //    Receipts created now (by this chunk's transactions and receipts) run from the next
        //    block on.
        let mut created_now = Vec::new();
        let mut last_admitted_at = None;
        while meter.has_room() {
            let Some(receipt) = self.receipts.pop_front() else {
                break;
            };
            last_admitted_at = Some(meter.compute);
            let executed = self.execute_receipt(receipt, height, hash);
            meter.gas = meter.gas.saturating_add(executed.gas_burnt);
            meter.compute = meter.compute.saturating_add(executed.compute);
            burnt = burnt.saturating_add(executed.tokens_burnt);
            created_now.extend(executed.children);
            outcomes.push(executed.outcome);
        }
        created.extend(created_now);

        let incoming = std::mem::replace(
            &mut self.last_outgoing,
            created.iter().map(|r| r.view.clone()).collect(),
        );
        // What is still waiting now was delayed: the shard's congestion.
        let congestion = super::Congestion {
            delayed_gas: self
                .receipts
                .iter()
                .map(|r| u128::from(r.prepaid_gas))
                .sum(),
            receipt_bytes: self.receipts.iter().map(|r| receipt_size(&r.actions)).sum(),
            missed_chunks: 0,
        };
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
            gas_used: meter.gas,
            compute_used: meter.compute,
            gas_limit: self.params.gas_limit,
            congestion,
            missed_since: None,
            last_admitted_at,
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

    /// A block whose chunk is missing: no transaction is included, no receipt executes, and
    /// the shard's missed-chunks count grows by one.
    fn produce_without_chunk(
        &mut self,
        prev: &Block,
        height: u64,
        timestamp_ns: u64,
    ) -> Arc<Block> {
        self.state.seal_block(height);
        let last_final_height = height
            .saturating_sub(super::FINALITY_LAG)
            .max(self.params.genesis_height);
        let last_final_hash = self
            .block_at(last_final_height)
            .map_or(prev.hash, |b| b.hash);
        let last_chunk = (self.params.genesis_height..height)
            .rev()
            .find(|h| self.block_at(*h).is_some_and(|b| b.has_chunk))
            .unwrap_or(self.params.genesis_height);
        let mut congestion = prev.congestion;
        congestion.missed_chunks += 1;
        let block = Arc::new(build_block(BlockParts {
            height,
            genesis_height: self.params.genesis_height,
            prev_hash: prev.hash,
            last_final_hash,
            timestamp_ns,
            gas_price: self.params.fees.gas_price,
            total_supply: self.state.total_near(),
            gas_used: 0,
            compute_used: 0,
            gas_limit: self.params.gas_limit,
            congestion,
            missed_since: Some(last_chunk),
            last_admitted_at: None,
            balance_burnt: 0,
            transactions: vec![],
            incoming_receipts: vec![],
            outcomes: vec![],
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
        meter: &mut Meter,
        budget: u64,
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
        let mut spent: u64 = 0;
        let mut rest = pool.into_iter();
        for mut p in rest.by_ref() {
            let at = ChainPoint {
                head_height: height - 1,
                base_height: self
                    .hash_to_height
                    .get(p.tx.transaction.block_hash())
                    .copied(),
                validity_period: self.params.validity_period,
                producing_height: Some(height),
            };
            if spent >= budget {
                self.pool.push(p);
                break;
            }
            // The signer pays at this block's gas price.
            match self.params.fees.tx_cost(p.tx.transaction.actions()) {
                Ok(cost) => p.cost = cost,
                Err(err) => {
                    tracing::debug!(tx = %p.tx.get_hash(), ?err, "transaction dropped at chunk production");
                    self.pool_hashes.remove(&p.tx.get_hash());
                    continue;
                }
            }
            if let Err(err) = validate::check_stateful(&self.state, &p.tx, &p.cost, at) {
                tracing::debug!(tx = %p.tx.get_hash(), ?err, "transaction dropped at chunk production");
                self.pool_hashes.remove(&p.tx.get_hash());
                continue;
            }
            if self.drop_share > 0.0 && self.drop_rng.gen::<f64>() < self.drop_share {
                tracing::debug!(tx = %p.tx.get_hash(), "transaction dropped by the fault knob");
                self.pool_hashes.remove(&p.tx.get_hash());
                continue;
            }
            spent = spent.saturating_add(p.cost.gas_burnt);
            meter.gas = meter.gas.saturating_add(p.cost.gas_burnt);
            meter.compute = meter.compute.saturating_add(p.cost.gas_burnt);
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
            gas_price: fees.gas_price,
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
