//! `query`: `view_account`, `view_access_key`, `view_access_key_list`, `call_function`,
//! `view_code` / `view_state` (empty: contracts are native), in the object form and the legacy
//! path form (`["account/ID"]`, `["access_key/ID/KEY"]`, `["access_key/ID"]`,
//! `["call/ID/METHOD", "<base58 args>"]`).
//!
//! A query reads the state of the block it refers to (nearcore reads that block's state root), so
//! a `final` query sees the state of about two blocks ago; a block older than the kept state
//! history answers `GARBAGE_COLLECTED_BLOCK`.

use near_crypto::PublicKey;
use near_jsonrpc_primitives::errors::RpcError;
use near_jsonrpc_primitives::types::query::{QueryResponseKind, RpcQueryError, RpcQueryResponse};
use near_primitives::hash::{hash, CryptoHash};
use near_primitives::types::{AccountId, Balance, BlockReference, Finality, FunctionArgs};
use near_primitives::views::{
    AccessKeyInfoView, AccessKeyList, AccessKeyView, AccountView, CallResult, ContractCodeView,
    QueryRequest, ViewStateResult,
};
use serde_json::{json, Value};

use super::chain::resolve;
use super::{bad_params, RpcResult};
use crate::chain::Chain;
use crate::contracts::{self, CallError};
use crate::shared::Shared;

fn legacy_request(mut items: Vec<Value>) -> Result<QueryRequest, RpcError> {
    let Some(Value::String(path)) = items.first_mut().map(Value::take) else {
        return Err(bad_params("expected [path, data]"));
    };
    let data = match items.get(1) {
        Some(Value::String(d)) => d.clone(),
        _ => String::new(),
    };
    let parts: Vec<&str> = path.splitn(3, '/').collect();
    let account = |s: &str| s.parse::<AccountId>().map_err(bad_params);
    Ok(match parts.as_slice() {
        ["account", id] => QueryRequest::ViewAccount {
            account_id: account(id)?,
        },
        ["access_key", id] => QueryRequest::ViewAccessKeyList {
            account_id: account(id)?,
        },
        ["access_key", id, key] => QueryRequest::ViewAccessKey {
            account_id: account(id)?,
            public_key: key.parse::<PublicKey>().map_err(bad_params)?,
        },
        ["call", id, method] => {
            let args = bs58::decode(&data).into_vec().map_err(bad_params)?;
            QueryRequest::CallFunction {
                account_id: account(id)?,
                method_name: (*method).to_owned(),
                args: FunctionArgs::from(args),
            }
        }
        _ => return Err(bad_params(format!("unknown query path {path}"))),
    })
}

fn request(params: Value) -> Result<(BlockReference, QueryRequest), RpcError> {
    match params {
        Value::Array(items) => Ok((
            BlockReference::Finality(Finality::None),
            legacy_request(items)?,
        )),
        Value::Object(_) => {
            let r: near_jsonrpc_primitives::types::query::RpcQueryRequest = super::parse(params)?;
            Ok((r.block_reference, r.request))
        }
        other => Err(bad_params(format!("unexpected params {other}"))),
    }
}

/// The legacy "successful error" result nearcore answers for a missing access key and for
/// contract errors in views.
fn legacy_error(error: String, height: u64, hash: CryptoHash) -> RpcResult {
    Ok(json!({ "error": error, "logs": [], "block_height": height, "block_hash": hash }))
}

pub(crate) fn query(shared: &Shared, node: usize, params: Value) -> RpcResult {
    let (reference, req) = request(params)?;
    let chain = shared.chain.lock();
    let Some(block) = resolve(&chain, &reference, node) else {
        return Err(RpcQueryError::UnknownBlock {
            block_reference: reference,
        }
        .into());
    };
    let (block_height, block_hash) = (block.height, block.hash);
    let state = chain.state().at(block_height).map_err(|_| -> RpcError {
        RpcQueryError::GarbageCollectedBlock {
            block_height,
            block_hash,
        }
        .into()
    })?;
    let unknown = |id: &AccountId| -> RpcError {
        RpcQueryError::UnknownAccount {
            requested_account_id: id.clone(),
            block_height,
            block_hash,
        }
        .into()
    };
    let kind = match req {
        QueryRequest::ViewAccount { account_id } => {
            let acc = state
                .account(&account_id)
                .ok_or_else(|| unknown(&account_id))?;
            QueryResponseKind::ViewAccount(AccountView {
                amount: Balance::from_yoctonear(acc.amount),
                locked: Balance::ZERO,
                code_hash: code_hash(&chain, &account_id),
                storage_usage: acc.storage_usage,
                storage_paid_at: 0,
                global_contract_hash: None,
                global_contract_account_id: None,
            })
        }
        QueryRequest::ViewAccessKey {
            account_id,
            public_key,
        } => match state.access_key(&account_id, &public_key) {
            Some(key) => QueryResponseKind::AccessKey(AccessKeyView::from(key)),
            None => {
                let msg = format!("access key {public_key} does not exist while viewing");
                return legacy_error(msg, block_height, block_hash);
            }
        },
        QueryRequest::ViewAccessKeyList { account_id } => {
            let keys = state.account(&account_id).map(|a| {
                a.keys
                    .into_iter()
                    .map(|(pk, k)| AccessKeyInfoView {
                        public_key: pk,
                        access_key: AccessKeyView::from(k),
                    })
                    .collect()
            });
            QueryResponseKind::AccessKeyList(AccessKeyList {
                keys: keys.unwrap_or_default(),
            })
        }
        QueryRequest::CallFunction {
            account_id,
            method_name,
            args,
        } => {
            let acc = state
                .account(&account_id)
                .ok_or_else(|| unknown(&account_id))?;
            let Some(kind) = acc.contract else {
                let msg = format!(
                    "wasm execution failed with error: CompilationError(CodeDoesNotExist {{ account_id: AccountId(\"{account_id}\") }})"
                );
                return legacy_error(msg, block_height, block_hash);
            };
            let result = if state.is_current() {
                contracts::view(chain.state(), kind, &account_id, &method_name, &args)
            } else {
                let snapshot = state
                    .contract_state(&account_id)
                    .ok_or_else(|| unknown(&account_id))?;
                contracts::view(&snapshot, kind, &account_id, &method_name, &args)
            };
            match result {
                Ok(result) => QueryResponseKind::CallResult(CallResult {
                    result,
                    logs: vec![],
                }),
                Err(err) => {
                    let msg = match err {
                        CallError::Panic(m) => {
                            format!("ExecutionError(\"Smart contract panicked: {m}\")")
                        }
                        CallError::MethodNotFound => {
                            "MethodResolveError(MethodNotFound)".to_owned()
                        }
                        CallError::ProhibitedInView(m) => {
                            format!("HostError(ProhibitedInView {{ method_name: \"{m}\" }})")
                        }
                    };
                    let msg = format!("wasm execution failed with error: {msg}");
                    return legacy_error(msg, block_height, block_hash);
                }
            }
        }
        QueryRequest::ViewCode { account_id } => {
            chain
                .state()
                .account(&account_id)
                .ok_or_else(|| unknown(&account_id))?;
            QueryResponseKind::ViewCode(ContractCodeView {
                hash: code_hash(&chain, &account_id),
                code: vec![],
            })
        }
        QueryRequest::ViewState { account_id, .. } => {
            chain
                .state()
                .account(&account_id)
                .ok_or_else(|| unknown(&account_id))?;
            QueryResponseKind::ViewState(ViewStateResult {
                values: vec![],
                proof: vec![],
            })
        }
        QueryRequest::ViewGlobalContractCode { .. }
        | QueryRequest::ViewGlobalContractCodeByAccountId { .. } => {
            return Err(bad_params(
                "global contracts are not supported by the devnet",
            ));
        }
    };
    let response = RpcQueryResponse {
        kind,
        block_height,
        block_hash,
    };
    serde_json::to_value(&response).map_err(|e| RpcError::serialization_error(e.to_string()))
}

/// A stable fake code hash for native contracts (default hash: no contract).
fn code_hash(chain: &Chain, account: &AccountId) -> CryptoHash {
    match chain.state().account(account).and_then(|a| a.contract) {
        Some(kind) => hash(format!("payouts-devnet native contract {kind:?}").as_bytes()),
        None => CryptoHash::default(),
    }
}
