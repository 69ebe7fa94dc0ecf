//! JSON-RPC 2.0 on `POST /`, answering in nearcore's shapes. Errors are built with
//! near-jsonrpc-primitives' own `RpcError` conversions (so `name`, `cause`, `code`, `message`,
//! `data` are exactly nearcore's) and mapped to HTTP statuses as nearcore does: request
//! validation errors 400, `TIMEOUT_ERROR` 408, internal errors 500, other handler errors 200.
//! Malformed input of any kind is a parse error, never a crash.

mod chain;
mod query;
mod tx;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use near_jsonrpc_primitives::errors::{RpcError, RpcErrorKind};
use near_jsonrpc_primitives::message::Message;
use near_jsonrpc_primitives::types::transactions::RpcTransactionError;
use serde_json::Value;

use crate::faults::RpcFault;
use crate::shared::Shared;

pub(crate) use chain::http_status;

type RpcResult = Result<Value, RpcError>;

/// nearcore's HTTP status for an RPC error.
fn status_of(err: &RpcError) -> StatusCode {
    match &err.error_struct {
        Some(RpcErrorKind::RequestValidationError(_)) => StatusCode::BAD_REQUEST,
        Some(RpcErrorKind::HandlerError(v)) if v["name"] == "TIMEOUT_ERROR" => {
            StatusCode::REQUEST_TIMEOUT
        }
        Some(RpcErrorKind::InternalError(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::OK,
    }
}

fn reply(id: Value, result: RpcResult) -> Response {
    let status = result.as_ref().err().map_or(StatusCode::OK, status_of);
    let body = serde_json::to_vec(&Message::response(id, result)).unwrap_or_default();
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A parse error for bad params, with nearcore's wording.
pub(crate) fn bad_params(err: impl std::fmt::Display) -> RpcError {
    RpcError::parse_error(format!("Failed parsing args: {err}"))
}

/// Parses params into `T`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(bad_params)
}

pub(crate) async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(err) => return reply(Value::Null, Err(RpcError::parse_error(err.to_string()))),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = match (request.get("jsonrpc"), request.get("method")) {
        (Some(Value::String(v)), Some(Value::String(m))) if v == "2.0" => m.clone(),
        _ => {
            let err = RpcError::parse_error("JSON RPC Request format was expected".to_owned());
            return reply(id, Err(err));
        }
    };
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let fault = shared.faults.lock().draw_rpc();
    // The load balancer's choice: one node answers the whole request.
    let node = shared.chain.lock().pick_node().0;
    match fault {
        RpcFault::ServerError => {
            let err = RpcError::new_internal_error(None, "devnet fault: internal error".to_owned());
            reply(id, Err(err))
        }
        RpcFault::Timeout => {
            // The call is processed (a transaction reaches the pool), but its answer is lost.
            let _ = dispatch(&shared, node, &method, params, true).await;
            reply(id, Err(RpcError::from(RpcTransactionError::TimeoutError)))
        }
        RpcFault::None => reply(id, dispatch(&shared, node, &method, params, false).await),
    }
}

/// Runs one method. `answer_lost`: only the side effects matter (timeout fault), so waiting
/// methods return as soon as their transaction is submitted.
async fn dispatch(
    shared: &Arc<Shared>,
    node: usize,
    method: &str,
    params: Value,
    answer_lost: bool,
) -> RpcResult {
    tracing::trace!(method, "rpc call");
    match method {
        "status" => chain::status(shared, node),
        "health" => Ok(Value::Null),
        "block" => chain::block(shared, node, params),
        "chunk" => chain::chunk(shared, node, params),
        "gas_price" => chain::gas_price(shared, node, params),
        "EXPERIMENTAL_protocol_config" => chain::protocol_config(shared, node, params),
        "query" => query::query(shared, node, params),
        "send_tx" => tx::send_tx(shared, node, params, answer_lost).await,
        "broadcast_tx_async" => tx::broadcast_async(shared, node, params),
        "broadcast_tx_commit" => tx::broadcast_commit(shared, node, params, answer_lost).await,
        "tx" => tx::status(shared, node, params, false, answer_lost).await,
        "EXPERIMENTAL_tx_status" => tx::status(shared, node, params, true, answer_lost).await,
        other => Err(RpcError::method_not_found(other.to_owned())),
    }
}
