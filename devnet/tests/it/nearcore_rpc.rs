//! The devnet makes nearcore's demands, one test per row of issue 15's table (see
//! devnet/README.md "nearcore semantics"): resends are validated again, `tx` is blind to pools,
//! nodes have their own pools and forward (late, out of order, or not at all), nodes behind one
//! URL lag, and queries read the state of the block asked for. Driven by the real
//! near-jsonrpc-client over HTTP.

use std::time::Duration;

use near_jsonrpc_client::errors::{
    JsonRpcError, JsonRpcServerError, JsonRpcServerResponseStatusError,
};
use near_jsonrpc_client::methods;
use near_jsonrpc_client::methods::send_tx::RpcTransactionError;
use near_jsonrpc_primitives::types::query::{QueryResponseKind, RpcQueryError};
use near_primitives::errors::InvalidTxError;
use near_primitives::hash::CryptoHash;
use near_primitives::types::{BlockId, BlockReference, Finality};
use near_primitives::views::{FinalExecutionOutcomeViewEnum, QueryRequest, TxExecutionStatus};
use payouts_devnet::{DevnetConfig, Faults, InjectedError};

use crate::common::{config, ft_transfer, id, start_with, user, TestNet};
use crate::rpc::reqwest_like;

fn is_timeout<E: std::fmt::Debug>(err: &JsonRpcError<E>) -> bool {
    matches!(
        err,
        JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(
            JsonRpcServerResponseStatusError::TimeoutError
        ))
    )
}

fn invalid_tx(err: &JsonRpcError<RpcTransactionError>) -> InvalidTxError {
    match err.handler_error() {
        Some(RpcTransactionError::InvalidTransaction { context }) => context.clone(),
        _ => panic!("not an InvalidTransaction: {err:?}"),
    }
}

async fn tx_status(
    net: &TestNet,
    hash: CryptoHash,
    wait_until: TxExecutionStatus,
) -> Result<methods::tx::RpcTransactionResponse, JsonRpcError<RpcTransactionError>> {
    let signer = &net.handle.treasury_signers()[0];
    net.client
        .call(methods::tx::RpcTransactionStatusRequest {
            transaction_info: methods::tx::TransactionInfo::TransactionId {
                tx_hash: hash,
                sender_account_id: signer.get_account_id(),
            },
            wait_until,
        })
        .await
}

fn is_unknown(err: &JsonRpcError<RpcTransactionError>) -> bool {
    matches!(
        err.handler_error(),
        Some(RpcTransactionError::UnknownTransaction { .. })
    )
}

/// Waits (per block, with a deadline) until `blocks` more blocks are produced.
async fn blocks(net: &TestNet, blocks: u64) {
    let target = net.handle.head_height() + blocks;
    assert!(
        net.handle
            .wait_for_height(target, Duration::from_secs(30))
            .await,
        "no block {target}"
    );
}

#[tokio::test]
async fn a_resend_is_validated_again_and_only_invalid_nonce_of_a_landed_tx_is_forgiven() {
    let net = start_with(DevnetConfig {
        validity_period: 6,
        ..config()
    })
    .await;
    let signer = &net.handle.treasury_signers()[0];
    let token = id("token.devnet");

    // Landed, then resent: the resend fails its nonce check, which send_tx and
    // broadcast_tx_commit forgive because the transaction is on chain.
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(0), 5, "a")])
        .await;
    net.send(tx.clone(), TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap();
    let again = net
        .send(tx.clone(), TxExecutionStatus::Included)
        .await
        .unwrap();
    assert!(again.final_execution_outcome.is_some());
    let commit = net
        .client
        .call(methods::broadcast_tx_commit::RpcBroadcastTxCommitRequest {
            signed_transaction: tx.clone(),
        })
        .await
        .unwrap();
    assert_eq!(commit.transaction.hash, tx.get_hash());

    // Other bytes with the same (key, nonce): not on chain, so InvalidNonce is the answer.
    let twin = net.tx_with(
        signer,
        &token,
        vec![ft_transfer(&user(1), 5, "twin")],
        tx.transaction.nonce(),
        net.latest_hash().await,
    );
    let err = net
        .send(twin, TxExecutionStatus::Included)
        .await
        .unwrap_err();
    assert!(
        matches!(invalid_tx(&err), InvalidTxError::InvalidNonce { .. }),
        "{err:?}"
    );

    // A copy waiting in a node's pool is not "already known": once its base block is older
    // than the validity period, the resend is `Expired`, and the waiting copy is dropped when
    // the producer validates it again.
    let held = net
        .tx(signer, &token, vec![ft_transfer(&user(2), 5, "held")])
        .await;
    net.handle.hold_tx(held.get_hash(), 12);
    net.client
        .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: held.clone(),
        })
        .await
        .unwrap();
    blocks(&net, 8).await;
    let err = net
        .send(held.clone(), TxExecutionStatus::Included)
        .await
        .unwrap_err();
    assert_eq!(invalid_tx(&err), InvalidTxError::Expired);
    blocks(&net, 8).await;
    assert!(!net.handle.is_on_chain(&held.get_hash()));
    assert_eq!(net.handle.backlog().0, 0, "the held copy was dropped");
    net.shutdown().await;
}

#[tokio::test]
async fn transient_rejections_of_resends_while_the_first_copy_lands() {
    // The shape of issue 16's double payment: three resends answered ShardCongested while the
    // asynchronous broadcast of the same bytes goes through.
    let net = start_with(config()).await;
    let signer = &net.handle.treasury_signers()[0];
    let token = id("token.devnet");
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(0), 7, "c")])
        .await;
    let hash = tx.get_hash();
    net.client
        .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: tx.clone(),
        })
        .await
        .unwrap();
    net.handle
        .reject_next_submissions(hash, 3, InjectedError::ShardCongested);
    for _ in 0..3 {
        let err = net
            .send(tx.clone(), TxExecutionStatus::Included)
            .await
            .unwrap_err();
        assert!(
            matches!(invalid_tx(&err), InvalidTxError::ShardCongested { .. }),
            "{err:?}"
        );
    }
    net.wait_until("landed", Duration::from_secs(10), |h| h.is_on_chain(&hash))
        .await;
    let ok = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap();
    assert!(ok.final_execution_outcome.is_some());
    assert_eq!(net.handle.ft_transfers().len(), 1);

    // An injected timeout is HTTP 408, and nothing was processed.
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(1), 7, "t")])
        .await;
    net.handle
        .reject_next_submissions(tx.get_hash(), 1, InjectedError::Timeout);
    let err = net
        .send(tx.clone(), TxExecutionStatus::Included)
        .await
        .unwrap_err();
    assert!(is_timeout(&err), "{err:?}");
    blocks(&net, 3).await;
    assert!(!net.handle.is_on_chain(&tx.get_hash()));
    net.shutdown().await;
}

#[tokio::test]
async fn tx_never_looks_at_the_pool() {
    let net = start_with(DevnetConfig {
        rpc_timeout_ms: 500,
        ..config()
    })
    .await;
    let signer = &net.handle.treasury_signers()[0];
    let tx = net
        .tx(
            signer,
            &id("token.devnet"),
            vec![ft_transfer(&user(0), 5, "p")],
        )
        .await;
    let hash = tx.get_hash();
    // Held 30 blocks (1.5 s) in the node's pool: longer than the 500 ms RPC timeout.
    net.handle.hold_tx(hash, 30);
    let sent = net
        .client
        .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: tx.clone(),
        })
        .await
        .unwrap();
    assert_eq!(sent, hash);
    assert_eq!(net.handle.backlog().0, 1, "waiting in the node's pool");

    let err = tx_status(&net, hash, TxExecutionStatus::None)
        .await
        .unwrap_err();
    assert!(is_unknown(&err), "{err:?}");
    let err = tx_status(&net, hash, TxExecutionStatus::Included)
        .await
        .unwrap_err();
    assert!(is_timeout(&err), "{err:?}");
    // Positional params, as nearcore accepts them.
    let raw = reqwest_like(&net.handle.rpc_url());
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tx",
        "params": [hash.to_string(), signer.get_account_id()],
    });
    let (status, answer) = raw.post(&body.to_string()).await;
    assert_eq!(status, 408, "{answer}");
    assert_eq!(
        answer["error"]["cause"]["name"], "TIMEOUT_ERROR",
        "{answer}"
    );

    net.wait_until("landed", Duration::from_secs(10), |h| h.is_on_chain(&hash))
        .await;
    let r = tx_status(&net, hash, TxExecutionStatus::Included)
        .await
        .unwrap();
    assert!(r.final_execution_outcome.is_some());
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tx",
        "params": [hash.to_string(), signer.get_account_id()],
    });
    let (status, answer) = raw.post(&body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["transaction"]["hash"], hash.to_string());
    net.shutdown().await;
}

#[tokio::test]
async fn each_node_forwards_and_a_late_lower_nonce_is_dropped() {
    let net = start_with(config()).await;
    let signer = &net.handle.treasury_signers()[0];
    let token = id("token.devnet");
    let base = net.latest_hash().await;
    let n = net.nonce(signer).await + 1;
    let low = net.tx_with(
        signer,
        &token,
        vec![ft_transfer(&user(0), 1, "low")],
        n,
        base,
    );
    let high = net.tx_with(
        signer,
        &token,
        vec![ft_transfer(&user(1), 1, "high")],
        n + 1,
        base,
    );
    // The lower nonce reaches the chunk producer three blocks after the higher one.
    net.handle.hold_tx(low.get_hash(), 3);
    for tx in [&low, &high] {
        net.client
            .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
                signed_transaction: tx.clone(),
            })
            .await
            .unwrap();
    }
    let high_hash = high.get_hash();
    net.wait_until("high landed", Duration::from_secs(10), |h| {
        h.is_on_chain(&high_hash)
    })
    .await;
    blocks(&net, 5).await;
    assert!(
        !net.handle.is_on_chain(&low.get_hash()),
        "the late lower nonce is invalid"
    );
    assert_eq!(net.handle.backlog().0, 0);
    assert_eq!(net.nonce(signer).await, n + 1);

    // Lost in forwarding: accepted by the node, never reaches the producer.
    net.handle.set_faults(Faults {
        forward_drop_share: 1.0,
        ..Faults::default()
    });
    let lost = net
        .tx(signer, &token, vec![ft_transfer(&user(2), 1, "lost")])
        .await;
    let r = net
        .client
        .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: lost.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r, lost.get_hash());
    blocks(&net, 4).await;
    assert!(!net.handle.is_on_chain(&lost.get_hash()));
    assert_eq!(net.handle.backlog().0, 0);
    net.shutdown().await;
}

#[tokio::test]
async fn a_lagging_node_answers_from_what_it_has_seen() {
    let net = start_with(DevnetConfig {
        block_time_ms: 150,
        ..config()
    })
    .await;
    net.handle.set_node_lag(0, Some(6));
    blocks(&net, 8).await;
    let before = net.handle.head_height();
    let status = net
        .client
        .call(methods::status::RpcStatusRequest)
        .await
        .unwrap();
    let after = net.handle.head_height();
    let seen = status.sync_info.latest_block_height;
    assert!(
        seen + 6 >= before && seen + 6 <= after,
        "{seen} vs {before}..{after}"
    );
    // A block above the node's head is unknown to it.
    let err = net
        .client
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Height(after)),
        })
        .await
        .unwrap_err();
    assert!(err.handler_error().is_some(), "{err:?}");

    // A transaction on chain is unknown to `tx` until the node has seen its block.
    let signer = &net.handle.treasury_signers()[0];
    let tx = net
        .tx(
            signer,
            &id("token.devnet"),
            vec![ft_transfer(&user(0), 5, "lag")],
        )
        .await;
    let hash = tx.get_hash();
    net.client
        .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: tx,
        })
        .await
        .unwrap();
    net.wait_until("landed", Duration::from_secs(10), |h| h.is_on_chain(&hash))
        .await;
    let err = tx_status(&net, hash, TxExecutionStatus::None)
        .await
        .unwrap_err();
    assert!(is_unknown(&err), "{err:?}");
    assert_eq!(
        net.nonce(signer).await,
        0,
        "the node's state is six blocks old"
    );
    let r = tx_status(&net, hash, TxExecutionStatus::Included)
        .await
        .unwrap();
    assert!(r.final_execution_outcome.is_some());
    net.shutdown().await;
}

#[tokio::test]
async fn queries_read_the_state_of_the_block_asked_for() {
    let net = start_with(DevnetConfig {
        state_history_blocks: 8,
        ..config()
    })
    .await;
    let signer = &net.handle.treasury_signers()[0];
    let tx = net
        .tx(
            signer,
            &id("token.devnet"),
            vec![ft_transfer(&user(0), 5, "q")],
        )
        .await;
    let r = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap();
    let Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(o)) = r.final_execution_outcome
    else {
        panic!("no outcome");
    };
    let block = net
        .client
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Hash(
                o.transaction_outcome.block_hash,
            )),
        })
        .await
        .unwrap();
    let h = block.header.height;
    let nonce_at = |height: u64| {
        net.client.call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::BlockId(BlockId::Height(height)),
            request: QueryRequest::ViewAccessKey {
                account_id: signer.get_account_id(),
                public_key: signer.public_key(),
            },
        })
    };
    let nonce = |r: methods::query::RpcQueryResponse| match r.kind {
        QueryResponseKind::AccessKey(k) => (k.nonce, r.block_height),
        other => panic!("{other:?}"),
    };
    assert_eq!(nonce(nonce_at(h - 1).await.unwrap()), (0, h - 1));
    assert_eq!(nonce(nonce_at(h).await.unwrap()), (1, h));
    // The final block trails the head by two: the state it shows is that block's.
    let fin = net
        .client
        .call(methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::ViewAccessKey {
                account_id: signer.get_account_id(),
                public_key: signer.public_key(),
            },
        })
        .await
        .unwrap();
    let (n, at) = nonce(fin);
    assert_eq!(n, u64::from(at >= h));
    // Older than the kept history: garbage collected, as on a nearcore RPC node.
    blocks(&net, 12).await;
    let err = nonce_at(h - 1).await.unwrap_err();
    assert!(
        matches!(
            err.handler_error(),
            Some(RpcQueryError::GarbageCollectedBlock { .. })
        ),
        "{err:?}"
    );
    net.shutdown().await;
}
