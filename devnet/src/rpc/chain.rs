//! Chain-level methods: `status`, `block`, `chunk`, `gas_price`, `EXPERIMENTAL_protocol_config`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use near_chain_configs::{GenesisConfig, ProtocolConfig, ProtocolConfigView};
use near_crypto::{KeyType, PublicKey};
use near_jsonrpc_primitives::errors::RpcError;
use near_jsonrpc_primitives::types::blocks::RpcBlockError;
use near_jsonrpc_primitives::types::chunks::{ChunkReference, RpcChunkError};
use near_jsonrpc_primitives::types::config::RpcProtocolConfigError;
use near_jsonrpc_primitives::types::gas_price::RpcGasPriceError;
use near_primitives::types::{
    AccountId, Balance, BlockId, BlockReference, EpochId, Finality, Gas, MaybeBlockId, ShardId,
    SyncCheckpoint,
};
use near_primitives::version::Version;

use crate::config::DEVNET_PROTOCOL_VERSION as PROTOCOL_VERSION;
use near_primitives::views::{GasPriceView, StatusResponse, StatusSyncInfo, ValidatorInfo};
use serde_json::Value;

use super::{bad_params, parse, RpcResult};
use crate::chain::{Block, Chain};
use crate::shared::Shared;

fn to_value<T: serde::Serialize>(v: &T) -> RpcResult {
    serde_json::to_value(v).map_err(|e| RpcError::serialization_error(e.to_string()))
}

/// The block a reference points to, as `node` sees the chain: its head is its latest block,
/// final is two blocks behind its head, and blocks above its head do not exist for it.
pub(crate) fn resolve(chain: &Chain, r: &BlockReference, node: usize) -> Option<Arc<Block>> {
    let head = chain.node_head(node);
    let genesis = chain.params().genesis_height;
    let block = match r {
        BlockReference::Finality(Finality::None) => chain.block_at(head),
        BlockReference::Finality(Finality::DoomSlug) => {
            chain.block_at(head.saturating_sub(1).max(genesis))
        }
        BlockReference::Finality(Finality::Final) => {
            chain.block_at(head.saturating_sub(crate::chain::FINALITY_LAG).max(genesis))
        }
        BlockReference::BlockId(BlockId::Height(h)) => chain.block_at(*h),
        BlockReference::BlockId(BlockId::Hash(h)) => chain.block_by_hash(h),
        BlockReference::SyncCheckpoint(SyncCheckpoint::Genesis)
        | BlockReference::SyncCheckpoint(SyncCheckpoint::EarliestAvailable) => {
            Some(chain.genesis())
        }
    };
    block.filter(|b| b.height <= head).cloned()
}

/// `{"finality"|"block_id"|"sync_checkpoint": …}` or the legacy `[block_id]`.
pub(crate) fn block_reference(params: Value) -> Result<BlockReference, RpcError> {
    match params {
        Value::Array(mut items) if items.len() == 1 => {
            parse::<BlockId>(items.remove(0)).map(BlockReference::BlockId)
        }
        Value::Object(_) => parse(params),
        other => Err(bad_params(format!("unexpected params {other}"))),
    }
}

fn author() -> AccountId {
    crate::chain::Block::author()
}

pub(crate) fn status(shared: &Shared, node: usize) -> RpcResult {
    let chain = shared.chain.lock();
    let Some(head) = chain.block_at(chain.node_head(node)) else {
        return Err(RpcError::new_internal_error(None, "no head".to_owned()));
    };
    let head = &head.clone();
    let genesis = chain.genesis();
    let time = |b: &Block| {
        let ns = i128::from(b.block_view().header.timestamp_nanosec);
        near_time::Utc::from_unix_timestamp_nanos(ns).unwrap_or(near_time::Utc::UNIX_EPOCH)
    };
    let response = StatusResponse {
        version: Version {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            build: "payouts-devnet".to_owned(),
            commit: String::new(),
            rustc_version: String::new(),
        },
        chain_id: chain.params().chain_id.clone(),
        protocol_version: PROTOCOL_VERSION,
        latest_protocol_version: PROTOCOL_VERSION,
        rpc_addr: None,
        validators: vec![ValidatorInfo {
            account_id: author(),
        }],
        sync_info: StatusSyncInfo {
            latest_block_hash: head.hash,
            latest_block_height: head.height,
            latest_state_root: Default::default(),
            latest_block_time: time(head),
            syncing: false,
            earliest_block_hash: Some(genesis.hash),
            earliest_block_height: Some(genesis.height),
            earliest_block_time: Some(time(genesis)),
            epoch_id: Some(EpochId::default()),
            epoch_start_height: Some(genesis.height),
        },
        validator_account_id: None,
        validator_public_key: None,
        node_public_key: PublicKey::empty(KeyType::ED25519),
        node_key: None,
        uptime_sec: i64::try_from(shared.started.elapsed().as_secs()).unwrap_or(i64::MAX),
        genesis_hash: genesis.hash,
        detailed_debug_status: None,
    };
    to_value(&response)
}

/// `GET /status`, as nearcore serves it.
pub(crate) async fn http_status(State(shared): State<Arc<Shared>>) -> Response {
    let node = shared.chain.lock().pick_node().0;
    match status(&shared, node) {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(crate) fn block(shared: &Shared, node: usize, params: Value) -> RpcResult {
    let reference = block_reference(params)?;
    let block = resolve(&shared.chain.lock(), &reference, node);
    match block {
        Some(b) => to_value(b.block_view()),
        None => Err(RpcBlockError::UnknownBlock {
            error_message: format!("{reference:?}"),
        }
        .into()),
    }
}

pub(crate) fn chunk(shared: &Shared, node: usize, params: Value) -> RpcResult {
    let reference: ChunkReference = match params {
        Value::Array(mut items) if items.len() == 1 => ChunkReference::ChunkHash {
            chunk_id: parse(items.remove(0))?,
        },
        other => parse(other)?,
    };
    let chain = shared.chain.lock();
    let block = match &reference {
        ChunkReference::BlockShardId { block_id, shard_id } => {
            if *shard_id != ShardId::new(0) {
                return Err(RpcChunkError::InvalidShardId {
                    shard_id: *shard_id,
                }
                .into());
            }
            let r = BlockReference::BlockId(block_id.clone());
            resolve(&chain, &r, node).ok_or_else(|| RpcChunkError::UnknownBlock {
                error_message: format!("{block_id:?}"),
            })?
        }
        ChunkReference::ChunkHash { chunk_id } => {
            let found = (chain.params().genesis_height..=chain.node_head(node))
                .rev()
                .filter_map(|h| chain.block_at(h))
                .find(|b| {
                    b.block_view()
                        .chunks
                        .first()
                        .is_some_and(|c| c.chunk_hash == *chunk_id)
                });
            found.cloned().ok_or(RpcChunkError::UnknownChunk {
                chunk_hash: near_primitives::sharding::ChunkHash(*chunk_id),
            })?
        }
    };
    drop(chain);
    match block.chunk_view() {
        Some(view) => to_value(&view),
        None => Err(RpcChunkError::InternalError {
            error_message: "no chunk".into(),
        }
        .into()),
    }
}

pub(crate) fn gas_price(shared: &Shared, node: usize, params: Value) -> RpcResult {
    let block_id: MaybeBlockId = match params {
        Value::Array(mut items) if items.len() == 1 => parse(items.remove(0))?,
        Value::Null => None,
        Value::Object(mut map) => parse(map.remove("block_id").unwrap_or(Value::Null))?,
        other => return Err(bad_params(format!("unexpected params {other}"))),
    };
    let chain = shared.chain.lock();
    // The price of the block asked for, else of the answering node's head (nearcore's
    // `gas_price` with `null`).
    let reference = match &block_id {
        Some(id) => BlockReference::BlockId(id.clone()),
        None => BlockReference::Finality(Finality::None),
    };
    let Some(block) = resolve(&chain, &reference, node) else {
        return Err(RpcGasPriceError::UnknownBlock {
            error_message: format!("{block_id:?}"),
        }
        .into());
    };
    to_value(&GasPriceView {
        gas_price: block.message.block.header.gas_price,
    })
}

pub(crate) fn protocol_config(shared: &Shared, node: usize, params: Value) -> RpcResult {
    let reference = match params {
        Value::Null => BlockReference::Finality(Finality::Final),
        other => block_reference(other)?,
    };
    let chain = shared.chain.lock();
    if resolve(&chain, &reference, node).is_none() {
        return Err(RpcProtocolConfigError::UnknownBlock {
            error_message: format!("{reference:?}"),
        }
        .into());
    }
    let p = chain.params();
    let genesis_config = GenesisConfig {
        protocol_version: PROTOCOL_VERSION,
        chain_id: p.chain_id.clone(),
        genesis_height: p.genesis_height,
        gas_limit: Gas::from_gas(p.gas_limit.unwrap_or(u64::MAX)),
        min_gas_price: Balance::from_yoctonear(p.min_gas_price),
        max_gas_price: Balance::from_yoctonear(p.max_gas_price),
        gas_price_adjustment_rate: near_primitives::num_rational::Rational32::new(1, 100),
        transaction_validity_period: p.validity_period,
        epoch_length: 43_200,
        num_block_producer_seats: 1,
        num_block_producer_seats_per_shard: vec![1],
        avg_hidden_validator_seats_per_shard: vec![0],
        ..GenesisConfig::default()
    };
    let view = ProtocolConfigView::from(ProtocolConfig {
        genesis_config,
        runtime_config: p.fees.runtime_config().clone(),
    });
    to_value(&view)
}
