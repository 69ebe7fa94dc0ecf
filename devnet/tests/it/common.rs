//! Shared helpers: start a devnet, sign and send transactions with the real client.

use std::time::Duration;

use near_crypto::Signer;
use near_jsonrpc_client::{methods, JsonRpcClient};
use near_jsonrpc_primitives::types::query::QueryResponseKind;
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, BlockReference, Finality, Gas};
use near_primitives::views::{QueryRequest, TxExecutionStatus};
use payouts_devnet::{Devnet, DevnetConfig, DevnetHandle, TGAS};

pub struct TestNet {
    pub handle: DevnetHandle,
    pub client: JsonRpcClient,
    _keys: tempfile::TempDir,
}

/// The test configuration with one RPC node that never lags: these tests check one rule at a
/// time and read their own writes; `nearcore_rpc.rs` exercises the multi-node front.
pub fn config() -> DevnetConfig {
    DevnetConfig {
        nodes: 1,
        max_node_lag_blocks: 0,
        ..DevnetConfig::for_tests()
    }
}

pub async fn start() -> TestNet {
    start_with(config()).await
}

pub async fn start_with(mut cfg: DevnetConfig) -> TestNet {
    let keys = tempfile::tempdir().expect("tempdir");
    cfg.key_dir = Some(keys.path().to_path_buf());
    let handle = Devnet::start(cfg).await.expect("devnet starts");
    let client = JsonRpcClient::connect(handle.rpc_url());
    TestNet {
        handle,
        client,
        _keys: keys,
    }
}

pub fn id(s: &str) -> AccountId {
    s.parse().expect("valid account id")
}

pub fn user(n: usize) -> AccountId {
    id(&format!("user-{n}.devnet"))
}

pub fn ft_transfer(receiver: &AccountId, amount: u128, memo: &str) -> Action {
    let args =
        serde_json::json!({ "receiver_id": receiver, "amount": amount.to_string(), "memo": memo });
    function_call("ft_transfer", args, 3 * TGAS, 1)
}

pub fn function_call(method: &str, args: serde_json::Value, gas: u64, deposit: u128) -> Action {
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: method.to_owned(),
        args: args.to_string().into_bytes(),
        gas: Gas::from_gas(gas),
        deposit: Balance::from_yoctonear(deposit),
    }))
}

impl TestNet {
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }

    pub async fn nonce(&self, signer: &Signer) -> u64 {
        let request = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::None),
            request: QueryRequest::ViewAccessKey {
                account_id: signer.get_account_id(),
                public_key: signer.public_key(),
            },
        };
        match self
            .client
            .call(request)
            .await
            .expect("view_access_key")
            .kind
        {
            QueryResponseKind::AccessKey(key) => key.nonce,
            other => panic!("unexpected {other:?}"),
        }
    }

    pub async fn latest_hash(&self) -> CryptoHash {
        let request = methods::block::RpcBlockRequest {
            block_reference: BlockReference::Finality(Finality::Final),
        };
        self.client.call(request).await.expect("block").header.hash
    }

    /// A transaction with nonce = key nonce + 1 and a recent block hash.
    pub async fn tx(
        &self,
        signer: &Signer,
        receiver: &AccountId,
        actions: Vec<Action>,
    ) -> SignedTransaction {
        let nonce = self.nonce(signer).await + 1;
        self.tx_with(signer, receiver, actions, nonce, self.latest_hash().await)
    }

    pub fn tx_with(
        &self,
        signer: &Signer,
        receiver: &AccountId,
        actions: Vec<Action>,
        nonce: u64,
        block_hash: CryptoHash,
    ) -> SignedTransaction {
        let tx = Transaction::V0(TransactionV0 {
            signer_id: signer.get_account_id(),
            public_key: signer.public_key(),
            nonce,
            receiver_id: receiver.clone(),
            block_hash,
            actions,
        });
        payouts_devnet::validate::sign(tx, signer)
    }

    pub async fn send(
        &self,
        tx: SignedTransaction,
        wait_until: TxExecutionStatus,
    ) -> Result<
        methods::send_tx::RpcTransactionResponse,
        near_jsonrpc_client::errors::JsonRpcError<methods::send_tx::RpcTransactionError>,
    > {
        let request = methods::send_tx::RpcSendTransactionRequest {
            signed_transaction: tx,
            wait_until,
        };
        self.client.call(request).await
    }

    pub async fn ft_balance_rpc(&self, account: &AccountId) -> u128 {
        let request = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::None),
            request: QueryRequest::CallFunction {
                account_id: id("token.devnet"),
                method_name: "ft_balance_of".into(),
                args: serde_json::json!({ "account_id": account })
                    .to_string()
                    .into_bytes()
                    .into(),
            },
        };
        match self.client.call(request).await.expect("call_function").kind {
            QueryResponseKind::CallResult(r) => {
                let s: String = serde_json::from_slice(&r.result).expect("json string");
                s.parse().expect("u128")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Waits for a condition on the handle, polling each block, with a deadline.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&DevnetHandle) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !cond(&self.handle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            let next = self.handle.head_height() + 1;
            self.handle
                .wait_for_height(next, Duration::from_secs(1))
                .await;
        }
    }
}
