//! Transaction methods: `send_tx`, `broadcast_tx_async`, `broadcast_tx_commit`, `tx`,
//! `EXPERIMENTAL_tx_status`.
//!
//! As on nearcore: `wait_until: NONE` and `broadcast_tx_async` answer at once and never report
//! validation errors; other levels report `InvalidTransaction` at submission, then wait for the
//! level (HTTP 408 `TIMEOUT_ERROR` after `rpc_timeout_ms`); a transaction already known is not
//! validated again, its status is returned.

use std::time::Duration;

use base64::Engine;
use near_jsonrpc_primitives::errors::RpcError;
use near_jsonrpc_primitives::types::transactions::{
    RpcSendTransactionRequest, RpcTransactionError, RpcTransactionResponse,
    RpcTransactionStatusRequest,
};
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::views::TxExecutionStatus;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{bad_params, parse, RpcResult};
use crate::chain::{outcome_satisfies, TxLookup, TxProgress};
use crate::node::Shared;

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

fn invalid(err: near_primitives::errors::InvalidTxError) -> RpcError {
    RpcTransactionError::InvalidTransaction { context: err }.into()
}

fn timeout() -> RpcError {
    RpcTransactionError::TimeoutError.into()
}

fn to_value<T: serde::Serialize>(v: &T) -> RpcResult {
    serde_json::to_value(v).map_err(|e| RpcError::serialization_error(e.to_string()))
}

/// Waits until the transaction reaches `wanted` or the RPC timeout passes.
async fn wait(
    shared: &Shared,
    hash: CryptoHash,
    wanted: &TxExecutionStatus,
    with_receipts: bool,
) -> Result<TxProgress, RpcError> {
    let deadline = Instant::now() + Duration::from_millis(shared.cfg.rpc_timeout_ms);
    let mut head = shared.head.subscribe();
    let mut stop = shared.stop.subscribe();
    loop {
        let lookup = shared.chain.lock().lookup_tx(&hash, with_receipts);
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
        final_execution_outcome: progress.outcome,
        final_execution_status: progress.status,
    })
}

pub(crate) async fn send_tx(shared: &Shared, params: Value, answer_lost: bool) -> RpcResult {
    let req: RpcSendTransactionRequest = parse(params)?;
    let tx = req.signed_transaction;
    let hash = tx.get_hash();
    let submitted = shared.chain.lock().submit(tx);
    if req.wait_until == TxExecutionStatus::None {
        if let Err(err) = submitted {
            tracing::debug!(%hash, ?err, "send_tx NONE: invalid transaction not reported");
        }
        return Ok(json!({ "final_execution_status": "NONE" }));
    }
    submitted.map_err(invalid)?;
    if answer_lost {
        return Err(timeout());
    }
    response(wait(shared, hash, &req.wait_until, false).await?)
}

pub(crate) fn broadcast_async(shared: &Shared, params: Value) -> RpcResult {
    let tx = tx_param(params)?;
    let hash = tx.get_hash();
    if let Err(err) = shared.chain.lock().submit(tx) {
        tracing::debug!(%hash, ?err, "broadcast_tx_async: invalid transaction not reported");
    }
    to_value(&hash)
}

pub(crate) async fn broadcast_commit(
    shared: &Shared,
    params: Value,
    answer_lost: bool,
) -> RpcResult {
    let tx = tx_param(params)?;
    let hash = tx.get_hash();
    shared.chain.lock().submit(tx).map_err(invalid)?;
    if answer_lost {
        return Err(timeout());
    }
    let progress = wait(shared, hash, &TxExecutionStatus::ExecutedOptimistic, false).await?;
    match progress.outcome {
        Some(outcome) => to_value(&outcome.into_outcome()),
        None => Err(timeout()),
    }
}

pub(crate) async fn status(
    shared: &Shared,
    params: Value,
    with_receipts: bool,
    answer_lost: bool,
) -> RpcResult {
    let req: RpcTransactionStatusRequest = parse(params)?;
    let (hash, _) = req.transaction_info.to_tx_hash_and_account();
    let lookup = shared.chain.lock().lookup_tx(&hash, with_receipts);
    match lookup {
        TxLookup::Unknown => {
            let err = RpcTransactionError::UnknownTransaction {
                requested_transaction_hash: hash,
            };
            return Err(err.into());
        }
        TxLookup::Pending if req.wait_until == TxExecutionStatus::None => {
            return Ok(json!({ "final_execution_status": "NONE" }));
        }
        _ => {}
    }
    if answer_lost {
        return Err(timeout());
    }
    response(wait(shared, hash, &req.wait_until, with_receipts).await?)
}
