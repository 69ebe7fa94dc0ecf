//! A 100-action `ft_transfer` batch from the treasury, end to end through the real client.

use near_jsonrpc_client::methods;
use near_primitives::views::{
    ExecutionStatusView, FinalExecutionOutcomeViewEnum, FinalExecutionStatus, TxExecutionStatus,
};

use crate::common::{ft_transfer, id, start, user};

#[tokio::test]
async fn batch_of_100_transfers_reaches_final() {
    let net = start().await;
    let signer = &net.handle.treasury_signers()[0];
    let token = id("token.devnet");
    let actions = (0..100)
        .map(|i| ft_transfer(&user(2 * i), 1_000 + i as u128, &format!("claim-{i}")))
        .collect();
    let tx = net.tx(signer, &token, actions).await;
    let hash = tx.get_hash();
    let submitted_at = net.handle.head_height();
    let treasury_before = net.handle.ft_balance(&id("treasury.devnet")).unwrap();

    let response = net
        .send(tx.clone(), TxExecutionStatus::Final)
        .await
        .unwrap();
    assert_eq!(response.final_execution_status, TxExecutionStatus::Final);
    let outcome = match response.final_execution_outcome.unwrap() {
        FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(o) => o,
        other => panic!("{other:?}"),
    };
    assert_eq!(outcome.status, FinalExecutionStatus::SuccessValue(vec![]));
    assert_eq!(outcome.transaction.hash, hash);
    assert_eq!(outcome.transaction.actions.len(), 100);
    // The function-call receipt, then the gas refund from `system`.
    let receipt = &outcome.receipts_outcome[0];
    assert_eq!(
        outcome.transaction_outcome.outcome.receipt_ids,
        vec![receipt.id]
    );
    assert_eq!(receipt.outcome.executor_id, token);
    assert_eq!(receipt.outcome.logs.len(), 100);
    assert!(receipt.outcome.logs[7].starts_with(r#"EVENT_JSON:{"standard":"nep141","version":"1.0.0","event":"ft_transfer","data":[{"old_owner_id":"treasury.devnet","new_owner_id":"user-14.devnet","amount":"1007","memo":"claim-7"}]}"#));
    assert!(matches!(
        receipt.outcome.status,
        ExecutionStatusView::SuccessValue(_)
    ));
    assert_eq!(outcome.receipts_outcome.len(), 2, "fc receipt + refund");
    // Burnt gas is in the ~2.7 Tgas per transfer range.
    let burnt = receipt.outcome.gas_burnt.as_gas();
    assert!(
        (250..300).contains(&(burnt / payouts_devnet::TGAS)),
        "{burnt}"
    );

    // Inclusion in the next block, execution in a later one.
    let tx_block = net
        .client
        .call(methods::block::RpcBlockRequest {
            block_reference: near_primitives::types::BlockReference::BlockId(
                near_primitives::types::BlockId::Hash(outcome.transaction_outcome.block_hash),
            ),
        })
        .await
        .unwrap();
    let receipt_block = net
        .client
        .call(methods::block::RpcBlockRequest {
            block_reference: near_primitives::types::BlockReference::BlockId(
                near_primitives::types::BlockId::Hash(receipt.block_hash),
            ),
        })
        .await
        .unwrap();
    assert!(tx_block.header.height > submitted_at);
    assert!(receipt_block.header.height > tx_block.header.height);
    assert!(receipt_block.header.height >= submitted_at + 2);

    // Ledger: balances and applied events.
    let sent: u128 = (0..100).map(|i| 1_000 + i as u128).sum();
    assert_eq!(
        net.handle.ft_balance(&id("treasury.devnet")),
        Some(treasury_before - sent)
    );
    assert_eq!(net.handle.ft_balance(&user(14)), Some(1_007));
    assert_eq!(net.ft_balance_rpc(&user(14)).await, 1_007);
    let events = net.handle.ft_transfers();
    assert_eq!(events.len(), 100);
    assert_eq!(events[7].event.memo.as_deref(), Some("claim-7"));
    assert_eq!(events[7].receipt_id, receipt.id);

    // Re-sending the same bytes returns the status, not an error.
    let again = net
        .send(tx.clone(), TxExecutionStatus::Final)
        .await
        .unwrap();
    assert_eq!(again.final_execution_status, TxExecutionStatus::Final);
    // tx and EXPERIMENTAL_tx_status by hash, with receipts for the latter.
    let status = net
        .client
        .call(methods::tx::RpcTransactionStatusRequest {
            transaction_info: methods::tx::TransactionInfo::TransactionId {
                tx_hash: hash,
                sender_account_id: id("treasury.devnet"),
            },
            wait_until: TxExecutionStatus::Final,
        })
        .await
        .unwrap();
    assert!(matches!(
        status.final_execution_outcome,
        Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(_))
    ));
    let status = net
        .client
        .call(
            methods::EXPERIMENTAL_tx_status::RpcTransactionStatusRequest {
                transaction_info: methods::tx::TransactionInfo::Transaction { signed_tx: tx },
                wait_until: TxExecutionStatus::Executed,
            },
        )
        .await
        .unwrap();
    match status.final_execution_outcome {
        Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcomeWithReceipt(o)) => {
            assert_eq!(o.receipts.len(), 2)
        }
        other => panic!("{other:?}"),
    }
    net.shutdown().await;
}

#[tokio::test]
async fn wait_levels_and_broadcast_methods() {
    let net = start().await;
    let signer = &net.handle.treasury_signers()[1];
    let token = id("token.devnet");

    // INCLUDED answers once the transaction is in a block, before its receipt runs, with the
    // partial outcome nearcore returns (status `Started`, no receipt outcome yet).
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(0), 5, "a")])
        .await;
    let r = net.send(tx, TxExecutionStatus::Included).await.unwrap();
    assert_eq!(r.final_execution_status, TxExecutionStatus::Included);
    match r.final_execution_outcome {
        Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(o)) => {
            assert_eq!(o.status, FinalExecutionStatus::Started);
            assert!(o.receipts_outcome.is_empty(), "{o:?}");
        }
        other => panic!("{other:?}"),
    }

    // broadcast_tx_async returns the hash at once; tx with EXECUTED_OPTIMISTIC then waits.
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(2), 5, "b")])
        .await;
    let hash = net
        .client
        .call(methods::broadcast_tx_async::RpcBroadcastTxAsyncRequest {
            signed_transaction: tx.clone(),
        })
        .await
        .unwrap();
    assert_eq!(hash, tx.get_hash());
    let status = net
        .client
        .call(methods::tx::RpcTransactionStatusRequest {
            transaction_info: methods::tx::TransactionInfo::TransactionId {
                tx_hash: hash,
                sender_account_id: signer.get_account_id(),
            },
            wait_until: TxExecutionStatus::ExecutedOptimistic,
        })
        .await
        .unwrap();
    assert!(status.final_execution_outcome.is_some());

    // broadcast_tx_commit returns the outcome.
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(4), 5, "c")])
        .await;
    let outcome = net
        .client
        .call(methods::broadcast_tx_commit::RpcBroadcastTxCommitRequest {
            signed_transaction: tx,
        })
        .await
        .unwrap();
    assert_eq!(outcome.status, FinalExecutionStatus::SuccessValue(vec![]));

    // An unknown transaction: at once for NONE (above NONE nearcore polls until its timeout,
    // see nearcore_rpc.rs).
    let err = net
        .client
        .call(methods::tx::RpcTransactionStatusRequest {
            transaction_info: methods::tx::TransactionInfo::TransactionId {
                tx_hash: near_primitives::hash::CryptoHash::hash_bytes(b"nothing"),
                sender_account_id: signer.get_account_id(),
            },
            wait_until: TxExecutionStatus::None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.handler_error(),
            Some(methods::tx::RpcTransactionError::UnknownTransaction { .. })
        ),
        "{err:?}"
    );
    net.shutdown().await;
}
