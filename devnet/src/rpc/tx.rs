//! Transaction methods: `send_tx`, `broadcast_tx_async`, `broadcast_tx_commit`, `tx`,
//! `EXPERIMENTAL_tx_status`, answered as nearcore's chain/jsonrpc/src/lib.rs answers them.
//!
//! - Every submission is validated again by the node that receives it (see
//!   [`Chain::submit_via`](crate::chain::Chain::submit_via)); a resend of a transaction already
//!   on chain fails its nonce check, and `send_tx` / `broadcast_tx_commit` forgive exactly that
//!   `InvalidNonce` when the answering node finds the transaction on chain (nearcore's
//!   `send_tx_internal` + `tx_exists`), then report its status.
//! - `wait_until: NONE` and `broadcast_tx_async` answer at once and never report errors.
//! - `tx` / `EXPERIMENTAL_tx_status` never look at a pool (view_client_actor.rs
//!   `get_tx_status`): a transaction not in a block the answering node has seen is
//!   `UNKNOWN_TRANSACTION` at once for `wait_until: NONE`; above `NONE` the node polls until the
//!   level is reached or `rpc_timeout_ms` passes, then answers HTTP 408 `TIMEOUT_ERROR` — also
//!   for a transaction it never sees.
//! - An included transaction's outcome is returned at every level, partial (status `Started`)
//!   while receipts are pending.
//! - Positional params as nearcore accepts them: `send_tx`/`broadcast_*` `["<base64>"]`, `tx`
//!   `["<tx hash>", "<sender>"]` or `["<base64>"]`.

use std::time::Duration;

use base64::Engine;
use near_jsonrpc_primitives::errors::RpcError;
use near_jsonrpc_primitives::types::transactions::{
    RpcSendTransactionRequest, RpcTransactionError, RpcTransactionResponse,
    RpcTransactionStatusRequest, TransactionInfo,
};
use near_primitives::errors::InvalidTxError;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::views::TxExecutionStatus;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{bad_params, parse, RpcResult};
use crate::chain::{outcome_satisfies, Rejection, TxLookup, TxProgress};
use crate::shared::Shared;

fn decode_tx(text: &str) -> Result<SignedTransaction, RpcError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(bad_params)?;
    borsh::from_slice::<SignedTransaction>(&bytes).map_err(bad_params)
}

/// `["<base64>"]` or `{"signed_tx_base64": "<base64>"}`.
fn tx_param(params: Value) -> Result<SignedTransaction, RpcError> {
    match &params {
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => decode_tx(s),
            _ => Err(bad_params("expected [signed_tx_base64]")),
        },
        Value::Object(map) => match map.get("signed_tx_base64") {
            Some(Value::String(s)) => decode_tx(s),
            _ => Err(bad_params("missing field `signed_tx_base64`")),
        },
        _ => Err(bad_params("expected [signed_tx_base64]")),
    }
}

/// `send_tx` params: the object form, or `["<base64>"]` (wait_until defaults).
fn send_param(params: Value) -> Result<RpcSendTransactionRequest, RpcError> {
    match params {
        Value::Array(_) => Ok(RpcSendTransactionRequest {
            signed_transaction: tx_param(params)?,
            wait_until: TxExecutionStatus::default(),
        }),
        other => parse(other),
    }
}

/// `tx` params: the object form, `["<tx hash>", "<sender>"]` or `["<base64>"]`.
fn status_param(params: Value) -> Result<RpcTransactionStatusRequest, RpcError> {
    match params {
        Value::Array(items) => {
            let transaction_info = match items.as_slice() {
                [Value::String(hash), Value::String(sender)] => TransactionInfo::TransactionId {
                    tx_hash: hash.parse().map_err(bad_params)?,
                    sender_account_id: sender.parse().map_err(bad_params)?,
                },
                [Value::String(s)] => TransactionInfo::from_signed_tx(decode_tx(s)?),
                _ => return Err(bad_params("expected [tx_hash, sender_account_id]")),
            };
            Ok(RpcTransactionStatusRequest {
                transaction_info,
                wait_until: TxExecutionStatus::default(),
            })
        }
        other => parse(other),
    }
}

fn invalid(err: InvalidTxError) -> RpcError {
    RpcTransactionError::InvalidTransaction { context: err }.into()
}

fn timeout() -> RpcError {
    RpcTransactionError::TimeoutError.into()
}

fn unknown(hash: CryptoHash) -> RpcError {
    RpcTransactionError::UnknownTransaction {
        requested_transaction_hash: hash,
    }
    .into()
}

fn to_value<T: serde::Serialize>(v: &T) -> RpcResult {
    serde_json::to_value(v).map_err(|e| RpcError::serialization_error(e.to_string()))
}

/// Polls `node`'s view until the transaction reaches `wanted`, or the RPC timeout passes.
async fn wait(
    shared: &Shared,
    node: usize,
    hash: CryptoHash,
    wanted: &TxExecutionStatus,
    with_receipts: bool,
) -> Result<TxProgress, RpcError> {
    let deadline = Instant::now() + Duration::from_millis(shared.cfg.rpc_timeout_ms);
    let mut head = shared.head.subscribe();
    let mut stop = shared.stop.subscribe();
    loop {
        let lookup = {
            let chain = shared.chain.lock();
            let node_head = chain.node_head(node);
            chain.lookup_tx(&hash, with_receipts, node_head)
        };
        if let TxLookup::Included(progress) = lookup {
            if outcome_satisfies(&progress.status, wanted) {
                return Ok(*progress);
            }
        }
        tokio::select! {
            r = tokio::time::timeout_at(deadline, head.changed()) => {
                if !matches!(r, Ok(Ok(()))) {
                    return Err(timeout());
                }
            }
            _ = stop.wait_for(|s| *s) => return Err(timeout()),
        }
    }
}

fn response(progress: TxProgress) -> RpcResult {
    to_value(&RpcTransactionResponse {
        final_execution_outcome: Some(progress.outcome),
        final_execution_status: progress.status,
    })
}

/// Submits through `node`; an `InvalidNonce` of a transaction the node finds on chain is
/// forgiven (nearcore's `send_tx_internal`).
fn submit(shared: &Shared, node: usize, tx: SignedTransaction) -> Result<CryptoHash, RpcError> {
    let hash = tx.get_hash();
    let mut chain = shared.chain.lock();
    match chain.submit_via(node, tx) {
        Ok(hash) => Ok(hash),
        Err(Rejection::Invalid(InvalidTxError::InvalidNonce { .. }))
            if chain.is_on_chain(&hash, chain.node_head(node)) =>
        {
            Ok(hash)
        }
        Err(Rejection::Invalid(err)) => Err(invalid(err)),
        Err(Rejection::Timeout) => Err(timeout()),
    }
}

pub(crate) async fn send_tx(
    shared: &Shared,
    node: usize,
    params: Value,
    answer_lost: bool,
) -> RpcResult {
    let req = send_param(params)?;
    let tx = req.signed_transaction;
    let hash = tx.get_hash();
    if req.wait_until == TxExecutionStatus::None {
        if let Err(err) = shared.chain.lock().submit_via(node, tx) {
            tracing::debug!(%hash, ?err, "send_tx NONE: rejection not reported");
        }
        return Ok(json!({ "final_execution_status": "NONE" }));
    }
    submit(shared, node, tx)?;
    if answer_lost {
        return Err(timeout());
    }
    response(wait(shared, node, hash, &req.wait_until, false).await?)
}

pub(crate) fn broadcast_async(shared: &Shared, node: usize, params: Value) -> RpcResult {
    let tx = tx_param(params)?;
    let hash = tx.get_hash();
    if let Err(err) = shared.chain.lock().submit_via(node, tx) {
        tracing::debug!(%hash, ?err, "broadcast_tx_async: rejection not reported");
    }
    to_value(&hash)
}

/// `broadcast_tx_commit`: nearcore's `send_tx_internal` at `EXECUTED_OPTIMISTIC`, answered as
/// an `RpcTransactionResponse` (the outcome with `final_execution_status`).
pub(crate) async fn broadcast_commit(
    shared: &Shared,
    node: usize,
    params: Value,
    answer_lost: bool,
) -> RpcResult {
    let tx = tx_param(params)?;
    let hash = submit(shared, node, tx)?;
    if answer_lost {
        return Err(timeout());
    }
    let wanted = TxExecutionStatus::ExecutedOptimistic;
    response(wait(shared, node, hash, &wanted, false).await?)
}

pub(crate) async fn status(
    shared: &Shared,
    node: usize,
    params: Value,
    with_receipts: bool,
    answer_lost: bool,
) -> RpcResult {
    let req = status_param(params)?;
    let (hash, _) = req.transaction_info.to_tx_hash_and_account();
    if req.wait_until == TxExecutionStatus::None {
        let lookup = {
            let chain = shared.chain.lock();
            chain.lookup_tx(&hash, with_receipts, chain.node_head(node))
        };
        return match lookup {
            TxLookup::Unknown => Err(unknown(hash)),
            TxLookup::Included(progress) if !answer_lost => response(*progress),
            TxLookup::Included(_) => Err(timeout()),
        };
    }
    if answer_lost {
        return Err(timeout());
    }
    response(wait(shared, node, hash, &req.wait_until, with_receipts).await?)
}
