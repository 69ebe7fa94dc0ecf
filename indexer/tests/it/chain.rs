//! Talking to the devnet as any client would: the real near-jsonrpc-client, transactions signed with the
//! devnet's key files' keys.

use near_crypto::Signer;
use near_jsonrpc_client::{methods, JsonRpcClient};
use near_jsonrpc_primitives::types::query::QueryResponseKind;
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, BlockReference, Finality, Gas};
use near_primitives::views::{FinalExecutionOutcomeView, QueryRequest, TxExecutionStatus};
use payouts_devnet::TGAS;

pub fn id(s: &str) -> AccountId {
    s.parse().expect("valid account id")
}

pub fn call(method: &str, args: serde_json::Value, deposit: u128) -> Action {
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: method.to_owned(),
        args: args.to_string().into_bytes(),
        gas: Gas::from_gas(5 * TGAS),
        deposit: Balance::from_yoctonear(deposit),
    }))
}

pub async fn nonce(client: &JsonRpcClient, signer: &Signer) -> u64 {
    let request = methods::query::RpcQueryRequest {
        block_reference: BlockReference::Finality(Finality::None),
        request: QueryRequest::ViewAccessKey {
            account_id: signer.get_account_id(),
            public_key: signer.public_key(),
        },
    };
    match client.call(request).await.expect("view_access_key").kind {
        QueryResponseKind::AccessKey(key) => key.nonce,
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn sign(
    client: &JsonRpcClient,
    signer: &Signer,
    receiver: &AccountId,
    actions: Vec<Action>,
) -> SignedTransaction {
    let nonce = nonce(client, signer).await + 1;
    let block = client
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::Finality(Finality::Final),
        })
        .await
        .expect("block");
    let tx = Transaction::V0(TransactionV0 {
        signer_id: signer.get_account_id(),
        public_key: signer.public_key(),
        nonce,
        receiver_id: receiver.clone(),
        block_hash: block.header.hash,
        actions,
    });
    payouts_devnet::validate::sign(tx, signer)
}

/// Sends and waits for the final outcome.
pub async fn send_final(
    client: &JsonRpcClient,
    tx: SignedTransaction,
) -> FinalExecutionOutcomeView {
    let request = methods::send_tx::RpcSendTransactionRequest {
        signed_transaction: tx,
        wait_until: TxExecutionStatus::Final,
    };
    let response = client.call(request).await.expect("send_tx");
    response
        .final_execution_outcome
        .expect("outcome")
        .into_outcome()
}
