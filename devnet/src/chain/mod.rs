//! The chain: state, transaction pool, pending receipts, produced blocks and the outcome index.
//!
//! Lifecycle of a transaction: `submit` validates it (nearcore's RPC checks, congestion
//! included) and puts it in the pool; the next `produce_block` re-checks it at chunk production
//! (including the nonce upper bound and the fault knob that drops transactions), charges the
//! signer at that block's gas price and converts it into a receipt, within the chunk's
//! transaction budget; a later block executes the receipt (all actions or none) while the
//! chunk's compute is below its limit, and emits gas/deposit refund receipts from `system`,
//! executed in the block after that. Blocks become final two blocks after they are produced,
//! like doomslug finality on nearcore.

pub mod congestion;
mod execute;
pub mod front;
mod outcome;
mod produce;
mod views;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use near_crypto::PublicKey;
use near_primitives::action::Action;
use near_primitives::errors::InvalidTxError;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::AccountId;
use near_primitives::views::{ExecutionOutcomeWithIdView, ReceiptView};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use congestion::Congestion;
pub use front::Front as RpcFront;
pub use outcome::{satisfies as outcome_satisfies, TxLookup, TxProgress};
pub use views::Block;

use crate::config::InjectedError;
use crate::contracts::FtTransferEvent;
use crate::fees::{Fees, TxCost};
use crate::state::State;
use crate::validate::{self, ChainPoint};
use front::Front;

/// Blocks between a block and the moment it is final.
pub const FINALITY_LAG: u64 = 2;

/// Fixed chain parameters.
#[derive(Clone)]
pub struct ChainParams {
    /// Chain id.
    pub chain_id: String,
    /// Height of the genesis block.
    pub genesis_height: u64,
    /// Per-chunk gas limit, which is also its compute limit; `None` when lifted.
    pub gas_limit: Option<u64>,
    /// Lowest gas price, yoctoNEAR per gas (mainnet: 10^8).
    pub min_gas_price: u128,
    /// Highest gas price, yoctoNEAR per gas (mainnet: 10^22).
    pub max_gas_price: u128,
    /// Transaction validity period, blocks.
    pub validity_period: u64,
    /// Fee schedule.
    pub fees: Fees,
}

/// A transaction waiting in the pool.
struct PendingTx {
    tx: SignedTransaction,
    cost: TxCost,
    arrival: u64,
}

/// A receipt waiting for execution.
struct PendingReceipt {
    view: ReceiptView,
    actions: Vec<Action>,
    signer: AccountId,
    /// Gas prepaid for executing it (exec fees + attached gas); refunded when unused. Also its
    /// weight in the shard's congestion (delayed receipt gas).
    prepaid_gas: u64,
    /// The gas price its gas was bought at (refunds are paid at it).
    gas_price: u128,
    /// A refund from `system` (does not count for `EXECUTED` statuses).
    is_refund: bool,
}

/// An included transaction.
pub(crate) struct TxRecord {
    pub(crate) tx: SignedTransaction,
    pub(crate) height: u64,
    pub(crate) outcome: ExecutionOutcomeWithIdView,
}

/// An executed receipt.
pub(crate) struct ReceiptRecord {
    pub(crate) view: ReceiptView,
    pub(crate) outcome: ExecutionOutcomeWithIdView,
    pub(crate) height: u64,
}

/// A successful `ft_transfer` with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedFtTransfer {
    /// The transfer.
    pub event: FtTransferEvent,
    /// Receipt that applied it.
    pub receipt_id: CryptoHash,
    /// Block height.
    pub height: u64,
}

/// The whole chain. Owned by the node behind a mutex; every method is synchronous and quick.
pub struct Chain {
    params: ChainParams,
    state: State,
    blocks: Vec<Arc<Block>>,
    hash_to_height: HashMap<CryptoHash, u64>,
    pool: Vec<PendingTx>,
    pool_hashes: HashSet<CryptoHash>,
    receipts: VecDeque<PendingReceipt>,
    /// Receipts created by the last block (the next chunk's `receipts`).
    last_outgoing: Vec<ReceiptView>,
    txs: HashMap<CryptoHash, TxRecord>,
    receipt_records: HashMap<CryptoHash, ReceiptRecord>,
    ft_transfers: Vec<AppliedFtTransfer>,
    /// Ids of every refund receipt created (refunds only hold back `FINAL`).
    refund_ids: HashSet<CryptoHash>,
    arrivals: u64,
    drop_rng: StdRng,
    drop_share: f64,
    /// The nodes behind the RPC URL (one node that never lags unless configured).
    front: Front,
    /// Blocks still to be produced without a chunk (fault knob: the shard misses chunks).
    missing_chunks: u64,
}

/// Why a submission through a node was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// nearcore's `InvalidTransaction` (validation, or an injected transient error).
    Invalid(InvalidTxError),
    /// The node did not answer in time (HTTP 408 `TIMEOUT_ERROR`); nothing was processed.
    Timeout,
}

impl Chain {
    /// A chain holding only the genesis block, produced at `timestamp_ns`.
    pub fn new(params: ChainParams, mut state: State, timestamp_ns: u64, drop_seed: u64) -> Self {
        state.set_genesis_height(params.genesis_height);
        let params_genesis_height = params.genesis_height;
        let mut chain = Self {
            params,
            state,
            blocks: Vec::new(),
            hash_to_height: HashMap::new(),
            pool: Vec::new(),
            pool_hashes: HashSet::new(),
            receipts: VecDeque::new(),
            last_outgoing: Vec::new(),
            txs: HashMap::new(),
            receipt_records: HashMap::new(),
            ft_transfers: Vec::new(),
            refund_ids: HashSet::new(),
            arrivals: 0,
            drop_rng: StdRng::seed_from_u64(drop_seed),
            drop_share: 0.0,
            front: Front::new(1, 0, params_genesis_height, drop_seed),
            missing_chunks: 0,
        };
        chain.produce_genesis(timestamp_ns);
        chain
    }

    /// Chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// Current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Makes the next `blocks` blocks miss the shard's chunk: nothing is included or executed,
    /// and the missed-chunks count that congestion control reads grows.
    pub fn miss_chunks(&mut self, blocks: u64) {
        self.missing_chunks = blocks;
    }

    /// The congestion info of the chunk at `height` (the latest before it when it missed none).
    pub fn congestion_at(&self, height: u64) -> Congestion {
        self.block_at(height.min(self.head().height))
            .map(|b| b.congestion)
            .unwrap_or_default()
    }

    /// Sets the share of valid transactions silently dropped at chunk production.
    pub fn set_drop_share(&mut self, share: f64) {
        self.drop_share = share;
    }

    /// The latest block.
    pub fn head(&self) -> &Arc<Block> {
        // `new` always produces genesis, so `blocks` is never empty.
        let last = self.blocks.len().saturating_sub(1);
        &self.blocks[last]
    }

    /// Height of the latest final block.
    pub fn final_height(&self) -> u64 {
        self.head()
            .height
            .saturating_sub(FINALITY_LAG)
            .max(self.params.genesis_height)
    }

    /// The latest final block.
    pub fn final_block(&self) -> &Arc<Block> {
        let h = self.final_height();
        self.block_at(h).unwrap_or_else(|| self.head())
    }

    /// The block at a height.
    pub fn block_at(&self, height: u64) -> Option<&Arc<Block>> {
        let idx = height.checked_sub(self.params.genesis_height)?;
        self.blocks.get(usize::try_from(idx).ok()?)
    }

    /// The block with a hash.
    pub fn block_by_hash(&self, hash: &CryptoHash) -> Option<&Arc<Block>> {
        self.hash_to_height
            .get(hash)
            .and_then(|h| self.block_at(*h))
    }

    /// The genesis block.
    pub fn genesis(&self) -> &Arc<Block> {
        &self.blocks[0]
    }

    /// Every successful `ft_transfer` applied so far, in order.
    pub fn ft_transfers(&self) -> &[AppliedFtTransfer] {
        &self.ft_transfers
    }

    /// Transactions waiting in the pool.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Receipts waiting for execution.
    pub fn pending_receipts(&self) -> usize {
        self.receipts.len()
    }

    /// Validates a transaction as nearcore's RPC does and adds it to the pool.
    ///
    /// The order is nearcore's (chain/client/src/rpc_handler.rs `process_tx_internal`): the
    /// validity period, then the stateless checks, then the state; only a transaction that
    /// passes all of them meets the pool, where a copy already waiting is a no-op. A resend is
    /// therefore validated again like any other transaction: once it is on chain its nonce is
    /// used and the resend fails with `InvalidNonce` (the RPC layer, like nearcore's
    /// `send_tx`, forgives exactly that error for a transaction it finds on chain).
    pub fn submit(&mut self, tx: SignedTransaction) -> Result<CryptoHash, InvalidTxError> {
        let head = self.head().height;
        let cost = self.validate_at(&tx, head)?;
        Ok(self.admit(tx, cost))
    }

    /// Validates a transaction against the chain as a node whose head is `node_head` sees it:
    /// blocks above `node_head` are unknown to it and the state is that of `node_head`; the
    /// congestion it checks is that of its head's chunk.
    pub fn validate_at(
        &self,
        tx: &SignedTransaction,
        node_head: u64,
    ) -> Result<TxCost, InvalidTxError> {
        self.validate_as(tx, node_head, true)
    }

    /// [`Chain::validate_at`], with or without the congestion check (a node checks it when it
    /// receives a transaction from a client, not again when it forwards one).
    fn validate_as(
        &self,
        tx: &SignedTransaction,
        node_head: u64,
        check_congestion: bool,
    ) -> Result<TxCost, InvalidTxError> {
        let node_head = node_head.min(self.head().height);
        let at = ChainPoint {
            head_height: node_head,
            base_height: self
                .hash_to_height
                .get(tx.transaction.block_hash())
                .copied()
                .filter(|h| *h <= node_head),
            validity_period: self.params.validity_period,
            producing_height: None,
        };
        validate::check_validity(at)?;
        let cost = validate::check_stateless(&self.params.fees, tx)?;
        if check_congestion {
            self.congestion_at(node_head)
                .accepts(&self.params.fees.runtime_config().congestion_control_config)?;
        }
        if node_head >= self.head().height {
            validate::check_stateful(&self.state, tx, &cost, at)?;
        } else {
            // A node further behind than the kept history validates against the oldest state
            // kept (the devnet keeps far more blocks than any node lags).
            match self.state.at(node_head) {
                Ok(view) => validate::check_stateful(&view, tx, &cost, at)?,
                Err(_) => validate::check_stateful(&self.state, tx, &cost, at)?,
            }
        }
        Ok(cost)
    }

    /// Puts a validated transaction into the chunk producer's pool (a copy already there is a
    /// no-op) and returns its hash.
    pub(crate) fn admit(&mut self, tx: SignedTransaction, cost: TxCost) -> CryptoHash {
        let hash = tx.get_hash();
        if self.pool_hashes.contains(&hash) || self.txs.contains_key(&hash) {
            return hash;
        }
        self.arrivals += 1;
        self.pool.push(PendingTx {
            tx,
            cost,
            arrival: self.arrivals,
        });
        self.pool_hashes.insert(hash);
        hash
    }

    /// Whether a transaction is included in a block at or below `height`.
    pub fn is_on_chain(&self, hash: &CryptoHash, height: u64) -> bool {
        self.txs.get(hash).is_some_and(|r| r.height <= height)
    }

    /// Whether a transaction waits in the chunk producer's pool (for tests and metrics; no RPC
    /// method looks at pools, as on nearcore).
    pub fn is_pooled(&self, hash: &CryptoHash) -> bool {
        self.pool_hashes.contains(hash)
    }

    /// Replaces the nodes behind the RPC URL.
    pub fn set_front(&mut self, front: Front) {
        self.front = front;
    }

    /// The nodes behind the RPC URL.
    pub fn front_mut(&mut self) -> &mut Front {
        &mut self.front
    }

    /// Height of `node`'s head.
    pub fn node_head(&self, node: usize) -> u64 {
        self.front.head_of(node, self.head().height)
    }

    /// Picks the node that answers a request and returns it with its head height.
    pub fn pick_node(&mut self) -> (usize, u64) {
        let node = self.front.pick();
        let head = self.front.head_of(node, self.head().height);
        (node, head)
    }

    /// A submission through the RPC front: `node` validates the transaction against what it has
    /// seen (its head and that block's state) and puts it in its pool; it is forwarded to the
    /// chunk producer, who validates it again, when the next block is produced. An injected
    /// transient error answers without processing anything.
    pub fn submit_via(
        &mut self,
        node: usize,
        tx: SignedTransaction,
    ) -> Result<CryptoHash, Rejection> {
        let hash = tx.get_hash();
        let producer_head = self.head().height;
        if let Some(error) = self.front.injected(&hash) {
            tracing::debug!(tx = %hash, ?error, "submission answered by an injected error");
            return Err(self.injected_rejection(&tx, error));
        }
        let node_head = self.front.head_of(node, producer_head);
        self.validate_at(&tx, node_head)
            .map_err(Rejection::Invalid)?;
        self.front.receive(node, tx, producer_head);
        Ok(hash)
    }

    fn injected_rejection(&self, tx: &SignedTransaction, error: InjectedError) -> Rejection {
        use near_primitives::types::Balance;
        let congestion_level = ordered_float::NotNan::<f64>::from(1u8);
        match error {
            InjectedError::ShardCongested => Rejection::Invalid(InvalidTxError::ShardCongested {
                shard_id: 0,
                congestion_level,
            }),
            InjectedError::ShardStuck => Rejection::Invalid(InvalidTxError::ShardStuck {
                shard_id: 0,
                missed_chunks: 10,
            }),
            InjectedError::NotEnoughBalance => {
                Rejection::Invalid(InvalidTxError::NotEnoughBalance {
                    signer_id: tx.transaction.signer_id().clone(),
                    balance: Balance::from_yoctonear(0),
                    cost: Balance::from_yoctonear(1),
                })
            }
            InjectedError::Timeout => Rejection::Timeout,
            InjectedError::InvalidNonce => Rejection::Invalid(InvalidTxError::InvalidNonce {
                tx_nonce: tx.transaction.nonce(),
                ak_nonce: tx.transaction.nonce(),
            }),
        }
    }

    /// Moves what the nodes forward for block `height` into the chunk producer's pool,
    /// validating each transaction again against the producer's state (invalid ones, such as a
    /// lower nonce arriving after a higher one was included, are dropped as nearcore drops them).
    fn take_forwarded(&mut self, height: u64) {
        let head = self.head().height;
        for tx in self.front.forward(height) {
            match self.validate_as(&tx, head, false) {
                Ok(cost) => {
                    self.admit(tx, cost);
                }
                Err(err) => {
                    tracing::debug!(tx = %tx.get_hash(), ?err, "forwarded transaction dropped");
                }
            }
        }
    }

    /// Key of a pool entry used to order transactions of one access key by nonce.
    fn lane(tx: &SignedTransaction) -> (AccountId, PublicKey) {
        (
            tx.transaction.signer_id().clone(),
            tx.transaction.public_key().clone(),
        )
    }
}
