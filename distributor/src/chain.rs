//! What the distributor asks of a NEAR node, over real JSON-RPC (near-jsonrpc-client's methods, through the
//! endpoint pool of [`crate::rpc`]: failover, rate limits, secrets scrubbed). Every attempt has a deadline;
//! errors are sorted into what the caller must do about them (see DESIGN "JSON-RPC facts").

use std::sync::Arc;
use std::time::Duration;

use near_jsonrpc_client::errors::{JsonRpcError, JsonRpcServerError};
use near_jsonrpc_client::methods;
use near_jsonrpc_primitives::types::query::QueryResponseKind;
use near_jsonrpc_primitives::types::transactions::{RpcTransactionError, TransactionInfo};
use near_primitives::errors::InvalidTxError;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::{AccountId, BlockId, BlockReference, Finality, FunctionArgs};
use near_primitives::views::{
    FinalExecutionOutcomeViewEnum, FinalExecutionStatus, QueryRequest, TxExecutionStatus,
};
use payouts_near::{failure_message, BlockHeight};
use payouts_store::Yocto;

use payouts_near::rpc::{RpcConfigError, RpcPool};

/// A call that did not give an answer: timeout, transport error, 5xx. The request may or may not have been
/// processed; only the answer is missing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rpc {method}: {message}")]
pub struct RpcFailure {
    /// The method.
    pub method: &'static str,
    /// What went wrong (scrubbed of every endpoint's URL secrets and header values).
    pub message: String,
}

/// What a broadcast learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The node accepted it (and, for waiting calls, it was included or already known).
    Accepted,
    /// The node rejected it at submission: it was not added to the pool.
    Rejected(InvalidTxError),
}

/// Where a transaction stands on chain, by the node's `tx` method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The node does not know it.
    Unknown,
    /// Known, not executed to the end yet.
    Pending,
    /// Executed: `Ok` when every receipt succeeded, else the failure message.
    Done(Result<(), String>),
}

/// Protocol limits read from the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolLimits {
    /// Cap on a transaction's prepaid gas.
    pub max_tx_gas: u64,
    /// Blocks after its `block_hash` during which a transaction can be included.
    pub transaction_validity_period: u64,
    /// Execution fees a receipt burns outside its function calls' attached gas (for learning gas).
    pub fixed_fees: payouts_store::gas::FixedFees,
    /// The protocol's floor under the gas price (yocto per gas): no block's price is lower.
    pub min_gas_price: u128,
    /// A chunk's gas limit, which is also its compute limit (genesis `gas_limit`; `u64::MAX`: lifted).
    pub chunk_gas_limit: u64,
    /// Send fees (burnt converting a transaction): per receipt and per function-call action.
    pub send_fees: payouts_store::gas::FixedFees,
}

/// The node (a pool of endpoints), with a deadline per attempt.
#[derive(Clone)]
pub struct Chain {
    pool: Arc<RpcPool>,
    timeout: Duration,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("endpoints", &self.pool.names())
            .finish()
    }
}

fn failure<E: std::fmt::Debug>(method: &'static str, e: JsonRpcError<E>) -> RpcFailure {
    let message = match &e {
        JsonRpcError::TransportError(t) => format!("transport: {t}"),
        JsonRpcError::ServerError(s) => match s {
            JsonRpcServerError::HandlerError(h) => format!("{h:?}"),
            other => format!("{other:?}"),
        },
    };
    RpcFailure { method, message }
}

impl Chain {
    /// A client of one endpoint at `rpc_url`; every call gives up after `timeout`.
    pub fn new(rpc_url: &str, timeout: Duration) -> Result<Self, RpcConfigError> {
        Ok(Self::with_pool(
            Arc::new(RpcPool::single(rpc_url)?),
            timeout,
        ))
    }

    /// A client of `pool`; every attempt gives up after `timeout`.
    pub fn with_pool(pool: Arc<RpcPool>, timeout: Duration) -> Self {
        Self { pool, timeout }
    }

    /// The endpoint pool (for its state on `/status` and `/metrics`).
    pub fn pool(&self) -> &Arc<RpcPool> {
        &self.pool
    }

    async fn call<M: methods::RpcMethod>(
        &self,
        name: &'static str,
        req: M,
    ) -> Result<Result<M::Response, JsonRpcError<M::Error>>, RpcFailure> {
        let r = self.pool.call(&req, self.timeout).await;
        self.answer(name, r)
    }

    fn answer<T, E>(
        &self,
        name: &'static str,
        r: Result<Result<T, JsonRpcError<E>>, payouts_near::rpc::PoolFailure>,
    ) -> Result<Result<T, JsonRpcError<E>>, RpcFailure> {
        match r {
            Ok(Ok(v)) => Ok(Ok(v)),
            // Handler errors are typed and carry no URL; scrub anyway, the message may be logged.
            Ok(Err(e)) => Ok(Err(e)),
            Err(f) => Err(RpcFailure {
                method: name,
                message: self.pool.scrub(&f.message),
            }),
        }
    }

    /// The latest final block: (height, hash).
    pub async fn final_block(&self) -> Result<(u64, CryptoHash), RpcFailure> {
        let req = methods::block::RpcBlockRequest {
            block_reference: BlockReference::Finality(Finality::Final),
        };
        let block = self
            .call("block", req)
            .await?
            .map_err(|e| failure("block", e))?;
        Ok((block.header.height, block.header.hash))
    }

    /// The nonce of an access key, `None` when the key does not exist.
    pub async fn access_key_nonce(
        &self,
        account: &AccountId,
        public_key: &near_crypto::PublicKey,
    ) -> Result<Option<u64>, RpcFailure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::ViewAccessKey {
                account_id: account.clone(),
                public_key: public_key.clone(),
            },
        };
        match self.call("query", req).await? {
            Ok(r) => match r.kind {
                QueryResponseKind::AccessKey(k) => Ok(Some(k.nonce)),
                other => Err(RpcFailure {
                    method: "query",
                    message: format!("unexpected answer {other:?}"),
                }),
            },
            // nearcore answers a missing key with an error (or a result carrying "error"; the client maps both).
            Err(e) if format!("{e:?}").contains("UnknownAccessKey") => Ok(None),
            Err(e) => Err(failure("query", e)),
        }
    }

    /// An account's spendable NEAR balance (yocto).
    pub async fn near_balance(&self, account: &AccountId) -> Result<Yocto, RpcFailure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::ViewAccount {
                account_id: account.clone(),
            },
        };
        let r = self
            .call("query", req)
            .await?
            .map_err(|e| failure("query", e))?;
        match r.kind {
            QueryResponseKind::ViewAccount(a) => Ok(Yocto(a.amount.as_yoctonear())),
            other => Err(RpcFailure {
                method: "query",
                message: format!("unexpected answer {other:?}"),
            }),
        }
    }

    /// The gas price of the latest block (yocto per gas): what the gas of a transaction sent now is bought at.
    pub async fn gas_price(&self) -> Result<u128, RpcFailure> {
        let req = methods::gas_price::RpcGasPriceRequest { block_id: None };
        let r = self
            .call("gas_price", req)
            .await?
            .map_err(|e| failure("gas_price", e))?;
        Ok(r.gas_price.as_yoctonear())
    }

    /// Calls a view method and parses its JSON result.
    pub async fn view<T: serde::de::DeserializeOwned>(
        &self,
        contract: &AccountId,
        method: &str,
        args: serde_json::Value,
    ) -> Result<T, RpcFailure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::CallFunction {
                account_id: contract.clone(),
                method_name: method.to_string(),
                args: FunctionArgs::from(args.to_string().into_bytes()),
            },
        };
        let r = self
            .call("query", req)
            .await?
            .map_err(|e| failure("query", e))?;
        match r.kind {
            QueryResponseKind::CallResult(c) => {
                serde_json::from_slice(&c.result).map_err(|e| RpcFailure {
                    method: "query",
                    message: format!("{contract}.{method} answered unreadable JSON: {e}"),
                })
            }
            other => Err(RpcFailure {
                method: "query",
                message: format!("unexpected answer {other:?}"),
            }),
        }
    }

    /// `ft_balance_of` of `account` on `token`.
    pub async fn ft_balance(
        &self,
        token: &AccountId,
        account: &AccountId,
    ) -> Result<Yocto, RpcFailure> {
        let s: String = self
            .view(
                token,
                "ft_balance_of",
                serde_json::json!({ "account_id": account }),
            )
            .await?;
        s.parse().map_err(|e| RpcFailure {
            method: "query",
            message: format!("{token}.ft_balance_of answered `{s}`, not an amount: {e}"),
        })
    }

    /// The node's cap on a transaction's prepaid gas (300 Tgas before protocol 83, 1 PGas after).
    pub async fn max_tx_gas(&self) -> Result<u64, RpcFailure> {
        Ok(self.protocol_limits().await?.max_tx_gas)
    }

    /// The node's protocol limits the distributor relies on (`EXPERIMENTAL_protocol_config`).
    pub async fn protocol_limits(&self) -> Result<ProtocolLimits, RpcFailure> {
        let req = methods::EXPERIMENTAL_protocol_config::RpcProtocolConfigRequest {
            block_reference: BlockReference::Finality(Finality::Final),
        };
        let cfg = self
            .call("EXPERIMENTAL_protocol_config", req)
            .await?
            .map_err(|e| failure("EXPERIMENTAL_protocol_config", e))?;
        let fees = &cfg.runtime_config.transaction_costs;
        Ok(ProtocolLimits {
            max_tx_gas: cfg
                .runtime_config
                .wasm_config
                .limit_config
                .max_total_prepaid_gas
                .as_gas(),
            transaction_validity_period: cfg.transaction_validity_period,
            fixed_fees: payouts_store::gas::FixedFees {
                per_receipt: fees.action_receipt_creation_config.execution.as_gas(),
                per_action: fees
                    .action_creation_config
                    .function_call_cost
                    .execution
                    .as_gas(),
            },
            min_gas_price: cfg.min_gas_price.as_yoctonear(),
            chunk_gas_limit: cfg.gas_limit.as_gas(),
            send_fees: payouts_store::gas::FixedFees {
                per_receipt: fees.action_receipt_creation_config.send_not_sir.as_gas(),
                per_action: fees
                    .action_creation_config
                    .function_call_cost
                    .send_not_sir
                    .as_gas(),
            },
        })
    }

    /// The height of the block with `hash` (an error when the answering node does not know it).
    pub async fn block_height(&self, hash: CryptoHash) -> Result<BlockHeight, RpcFailure> {
        let req = methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Hash(hash)),
        };
        let block = self
            .call("block", req)
            .await?
            .map_err(|e| failure("block", e))?;
        Ok(BlockHeight(block.header.height))
    }

    /// The nonce of an access key in the state of the block at `height` (`None`: no such key there).
    pub async fn access_key_nonce_at(
        &self,
        account: &AccountId,
        public_key: &near_crypto::PublicKey,
        height: BlockHeight,
    ) -> Result<Option<u64>, RpcFailure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::BlockId(BlockId::Height(height.0)),
            request: QueryRequest::ViewAccessKey {
                account_id: account.clone(),
                public_key: public_key.clone(),
            },
        };
        match self.call("query", req).await? {
            Ok(r) if r.block_height != height.0 => Err(RpcFailure {
                method: "query",
                message: format!("asked for block {height}, answered at {}", r.block_height),
            }),
            Ok(r) => match r.kind {
                QueryResponseKind::AccessKey(k) => Ok(Some(k.nonce)),
                other => Err(RpcFailure {
                    method: "query",
                    message: format!("unexpected answer {other:?}"),
                }),
            },
            Err(e) if format!("{e:?}").contains("UnknownAccessKey") => Ok(None),
            Err(e) => Err(failure("query", e)),
        }
    }

    /// Hands the node a transaction without waiting (`wait_until: NONE`): fast, keeps nonce order, reports no
    /// validation error.
    pub async fn submit_async(&self, tx: &SignedTransaction) -> Result<(), RpcFailure> {
        let req = methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: tx.clone(),
        };
        let r = self.pool.broadcast(&req, self.timeout).await;
        self.answer("broadcast_tx_async", r)?
            .map(|_| ())
            .map_err(|e| failure("broadcast_tx_async", e))
    }

    /// Sends a transaction and waits until it is included (`wait_until: INCLUDED`), which also reports
    /// validation errors. A transaction the node already knows is answered with its status.
    pub async fn send_included(&self, tx: &SignedTransaction) -> Result<Sent, RpcFailure> {
        let req = methods::send_tx::RpcSendTransactionRequest {
            signed_transaction: tx.clone(),
            wait_until: TxExecutionStatus::Included,
        };
        match self.call("send_tx", req).await? {
            Ok(_) => Ok(Sent::Accepted),
            Err(e) => match e.handler_error() {
                Some(RpcTransactionError::InvalidTransaction { context }) => {
                    Ok(Sent::Rejected(context.clone()))
                }
                _ => Err(failure("send_tx", e)),
            },
        }
    }

    /// Looks a transaction up (`tx`, final): unknown, pending, or its result.
    pub async fn lookup(&self, hash: CryptoHash, signer: &AccountId) -> Result<Lookup, RpcFailure> {
        let req = methods::tx::RpcTransactionStatusRequest {
            transaction_info: TransactionInfo::TransactionId {
                tx_hash: hash,
                sender_account_id: signer.clone(),
            },
            wait_until: TxExecutionStatus::None,
        };
        let r = match self.call("tx", req).await? {
            Ok(r) => r,
            Err(e) => {
                return match e.handler_error() {
                    Some(RpcTransactionError::UnknownTransaction { .. }) => Ok(Lookup::Unknown),
                    _ => Err(failure("tx", e)),
                }
            }
        };
        let final_enough = matches!(
            r.final_execution_status,
            TxExecutionStatus::Final | TxExecutionStatus::Executed
        );
        let outcome = match r.final_execution_outcome {
            Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(o)) => o,
            Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcomeWithReceipt(o)) => {
                o.final_outcome
            }
            None => return Ok(Lookup::Pending),
        };
        if !final_enough {
            return Ok(Lookup::Pending);
        }
        Ok(match outcome.status {
            FinalExecutionStatus::SuccessValue(_) => Lookup::Done(Ok(())),
            FinalExecutionStatus::Failure(e) => Lookup::Done(Err(failure_message(&e))),
            FinalExecutionStatus::NotStarted | FinalExecutionStatus::Started => Lookup::Pending,
        })
    }
}
