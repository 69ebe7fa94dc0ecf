//! What only the chain knows about a campaign file: whether its receivers are registered with the token
//! (`storage_balance_of`), asked only when the distributor does not register receivers itself (it adds a
//! `storage_deposit` before the transfer otherwise: distributor `runner::unregistered`), and whether the
//! treasury's token balance (`ft_balance_of`) covers the total.
//!
//! Every answer is read at the final block, each distinct receiver once per upload (a set of 128-bit digests
//! of the receivers already asked is the cache: ~32 MB for a million distinct receivers, the names themselves
//! are kept only a batch at a time), at most `api.campaign_rpc_concurrency` calls at a time. A failed or unreadable answer is an error of the whole check,
//! never an "ok": a receiver that could not be checked is not reported registered.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use near_jsonrpc_client::methods::query::RpcQueryRequest;
use near_jsonrpc_primitives::types::query::QueryResponseKind;
use near_primitives::types::{AccountId, BlockReference, Finality, FunctionArgs};
use near_primitives::views::QueryRequest;
use payouts_near::RpcPool;
use payouts_store::Yocto;

/// A check that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

async fn view<T: serde::de::DeserializeOwned>(
    rpc: &RpcPool,
    timeout: Duration,
    contract: &str,
    method: &str,
    args: serde_json::Value,
) -> Result<T, CheckFailed> {
    let account: AccountId = contract
        .parse()
        .map_err(|_| CheckFailed(format!("`{contract}` is not an account id")))?;
    let req = RpcQueryRequest {
        block_reference: BlockReference::Finality(Finality::Final),
        request: QueryRequest::CallFunction {
            account_id: account,
            method_name: method.to_string(),
            args: FunctionArgs::from(args.to_string().into_bytes()),
        },
    };
    let answer = match rpc.call(&req, timeout).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(error = ?e, contract, method, "campaign check call failed");
            return Err(CheckFailed(format!(
                "{contract}.{method} failed on the NEAR RPC"
            )));
        }
        Err(e) => {
            tracing::debug!(error = %e.message, contract, method, "campaign check call failed");
            return Err(CheckFailed(format!(
                "the NEAR RPC gave no answer to {contract}.{method}"
            )));
        }
    };
    let QueryResponseKind::CallResult(c) = answer.kind else {
        return Err(CheckFailed(format!(
            "{contract}.{method}: unexpected answer"
        )));
    };
    serde_json::from_slice(&c.result)
        .map_err(|e| CheckFailed(format!("{contract}.{method} answered unreadable JSON: {e}")))
}

/// Of `receivers` (distinct), those not registered with `token`, asking `concurrency` at a time.
pub async fn unregistered(
    rpc: &RpcPool,
    timeout: Duration,
    concurrency: usize,
    token: &str,
    receivers: Vec<String>,
) -> Result<HashSet<String>, CheckFailed> {
    let mut answers = futures_util::stream::iter(receivers.into_iter().map(|r| async move {
        let v: Result<Option<serde_json::Value>, _> = view(
            rpc,
            timeout,
            token,
            "storage_balance_of",
            serde_json::json!({ "account_id": r }),
        )
        .await;
        (r, v)
    }))
    .buffer_unordered(concurrency.max(1));
    let mut out = HashSet::new();
    while let Some((receiver, answer)) = answers.next().await {
        match answer? {
            Some(serde_json::Value::Null) | None => {
                out.insert(receiver);
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// The treasury's balance of `token`.
pub async fn treasury_balance(
    rpc: &RpcPool,
    timeout: Duration,
    token: &str,
    treasury: &str,
) -> Result<Yocto, CheckFailed> {
    let s: String = view(
        rpc,
        timeout,
        token,
        "ft_balance_of",
        serde_json::json!({ "account_id": treasury }),
    )
    .await?;
    s.parse::<Yocto>().map_err(|_| {
        CheckFailed(format!(
            "{token}.ft_balance_of answered `{s}`, not an amount"
        ))
    })
}
