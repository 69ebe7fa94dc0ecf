//! Produced blocks, kept as near-indexer-primitives `StreamerMessage`s (the richest view: the
//! RPC `block` / `chunk` views are cut out of it), with their JSON serialized once, lazily.

use std::sync::OnceLock;

use crate::config::DEVNET_PROTOCOL_VERSION as PROTOCOL_VERSION;
use axum::body::Bytes;
use near_crypto::{KeyType, Signature};
use near_indexer_primitives::{
    IndexerChunkView, IndexerExecutionOutcomeWithReceipt, IndexerShard,
    IndexerTransactionWithOutcome, StreamerMessage,
};
use near_primitives::account::id::AccountIdRef;
use near_primitives::hash::{hash, CryptoHash};
use near_primitives::types::{AccountId, Balance, Gas, ShardId};
use near_primitives::views::{BlockHeaderView, BlockView, ChunkHeaderView, ChunkView, ReceiptView};

/// The block producer's account id shown as `author`.
pub const AUTHOR: &str = "devnet";

/// One produced block.
pub struct Block {
    /// Height.
    pub height: u64,
    /// Hash.
    pub hash: CryptoHash,
    /// Gas burnt by the block's transactions and receipts.
    pub gas_used: u64,
    /// Gas limit in force when it was produced (`None`: lifted); also the compute limit.
    pub gas_limit: Option<u64>,
    /// Compute spent by the block's transactions and receipts (≥ `gas_used`: storage operations
    /// cost more compute than gas).
    pub compute_used: u64,
    /// The chunk's congestion info after it was applied.
    pub congestion: super::Congestion,
    /// Whether the block holds a chunk (false: the shard missed it).
    pub has_chunk: bool,
    /// Compute used when the last receipt of the block was admitted (always below the limit:
    /// only that last receipt may take the block over it); `None` when no receipt ran.
    pub last_admitted_at: Option<u64>,
    /// Everything about the block, in the neardata / Lake shape.
    pub message: StreamerMessage,
    json: OnceLock<Bytes>,
    header_json: OnceLock<Bytes>,
}

fn to_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()))
}

impl Block {
    /// The block producer account shown as `author` ([`AUTHOR`]).
    pub fn author() -> AccountId {
        const ID: &AccountIdRef = AccountIdRef::new_or_panic(AUTHOR);
        ID.to_owned()
    }

    /// The `StreamerMessage` JSON (neardata `/v0/block/{h}`), serialized on first use.
    pub fn json(&self) -> Bytes {
        self.json.get_or_init(|| to_bytes(&self.message)).clone()
    }

    /// The `BlockView` JSON (neardata `/v0/block/{h}/headers`).
    pub fn header_json(&self) -> Bytes {
        self.header_json
            .get_or_init(|| to_bytes(&self.message.block))
            .clone()
    }

    /// The RPC `BlockView`.
    pub fn block_view(&self) -> &BlockView {
        &self.message.block
    }

    /// The shard (the devnet has exactly one, shard 0).
    pub fn shard(&self) -> Option<&IndexerShard> {
        self.message.shards.first()
    }

    /// The RPC `ChunkView` of shard 0.
    pub fn chunk_view(&self) -> Option<ChunkView> {
        let chunk = self.shard()?.chunk.as_ref()?;
        Some(ChunkView {
            author: chunk.author.clone(),
            header: chunk.header.clone(),
            transactions: chunk
                .transactions
                .iter()
                .map(|t| t.transaction.clone())
                .collect(),
            receipts: chunk.receipts.clone(),
        })
    }
}

/// Everything `build_block` needs.
pub(crate) struct BlockParts {
    pub(crate) height: u64,
    pub(crate) genesis_height: u64,
    pub(crate) prev_hash: CryptoHash,
    pub(crate) last_final_hash: CryptoHash,
    pub(crate) timestamp_ns: u64,
    pub(crate) gas_price: u128,
    pub(crate) total_supply: u128,
    pub(crate) gas_used: u64,
    pub(crate) compute_used: u64,
    pub(crate) gas_limit: Option<u64>,
    pub(crate) congestion: super::Congestion,
    /// `None`: the chunk is there; `Some(h)`: missed, the last chunk was included at `h`.
    pub(crate) missed_since: Option<u64>,
    pub(crate) last_admitted_at: Option<u64>,
    pub(crate) balance_burnt: u128,
    pub(crate) transactions: Vec<IndexerTransactionWithOutcome>,
    pub(crate) incoming_receipts: Vec<ReceiptView>,
    pub(crate) outcomes: Vec<IndexerExecutionOutcomeWithReceipt>,
}

/// The hash of the block at `height` after `prev_hash` produced at `timestamp_ns`. Computed
/// before the block's outcomes (which carry it) are built.
pub(crate) fn block_hash(height: u64, prev_hash: &CryptoHash, timestamp_ns: u64) -> CryptoHash {
    let mut bytes = Vec::with_capacity(48);
    bytes.extend_from_slice(&height.to_le_bytes());
    bytes.extend_from_slice(prev_hash.as_ref());
    bytes.extend_from_slice(&timestamp_ns.to_le_bytes());
    hash(&bytes)
}

fn author() -> AccountId {
    Block::author()
}

/// Builds a block from its parts (hash: [`block_hash`]).
pub(crate) fn build_block(p: BlockParts) -> Block {
    let hash = block_hash(p.height, &p.prev_hash, p.timestamp_ns);
    let chunk_hash = near_primitives::hash::hash(&[hash.as_ref(), b"chunk0"].concat());
    let header = BlockHeaderView {
        height: p.height,
        prev_height: (p.height > p.genesis_height).then(|| p.height - 1),
        hash,
        prev_hash: p.prev_hash,
        timestamp: p.timestamp_ns,
        timestamp_nanosec: p.timestamp_ns,
        gas_price: Balance::from_yoctonear(p.gas_price),
        total_supply: Balance::from_yoctonear(p.total_supply),
        chunks_included: u64::from(p.missed_since.is_none()),
        chunk_mask: vec![p.missed_since.is_none()],
        block_ordinal: Some(p.height - p.genesis_height + 1),
        last_final_block: p.last_final_hash,
        last_ds_final_block: p.prev_hash,
        signature: Signature::empty(KeyType::ED25519),
        latest_protocol_version: PROTOCOL_VERSION,
        ..BlockHeaderView::default()
    };
    let chunk_header = ChunkHeaderView {
        chunk_hash,
        prev_block_hash: p.prev_hash,
        outcome_root: CryptoHash::default(),
        prev_state_root: CryptoHash::default(),
        encoded_merkle_root: CryptoHash::default(),
        encoded_length: 0,
        height_created: p.missed_since.unwrap_or(p.height),
        height_included: p.missed_since.unwrap_or(p.height),
        shard_id: ShardId::new(0),
        gas_used: Gas::from_gas(p.gas_used),
        gas_limit: Gas::from_gas(p.gas_limit.unwrap_or(u64::MAX)),
        rent_paid: Balance::ZERO,
        validator_reward: Balance::ZERO,
        balance_burnt: Balance::from_yoctonear(p.balance_burnt),
        outgoing_receipts_root: CryptoHash::default(),
        tx_root: CryptoHash::default(),
        validator_proposals: vec![],
        congestion_info: Some(p.congestion.view()),
        bandwidth_requests: None,
        signature: Signature::empty(KeyType::ED25519),
    };
    let block = BlockView {
        author: author(),
        header,
        chunks: vec![chunk_header.clone()],
    };
    let chunk = IndexerChunkView {
        author: author(),
        header: chunk_header,
        transactions: p.transactions,
        receipts: p.incoming_receipts,
        local_receipts: vec![],
    };
    let has_chunk = p.missed_since.is_none();
    let shard = IndexerShard {
        shard_id: ShardId::new(0),
        chunk: has_chunk.then_some(chunk),
        receipt_execution_outcomes: p.outcomes,
        state_changes: vec![],
    };
    Block {
        height: p.height,
        hash,
        gas_used: p.gas_used,
        gas_limit: p.gas_limit,
        compute_used: p.compute_used,
        congestion: p.congestion,
        has_chunk,
        last_admitted_at: p.last_admitted_at,
        message: StreamerMessage {
            block,
            shards: vec![shard],
        },
        json: OnceLock::new(),
        header_json: OnceLock::new(),
    }
}
