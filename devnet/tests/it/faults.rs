//! Fault knobs, changed at run time: dropped transactions, RPC timeouts and 5xx, slow blocks.

use std::time::{Duration, Instant};

use near_jsonrpc_client::errors::{
    JsonRpcError, JsonRpcServerError, JsonRpcServerResponseStatusError,
};
use near_jsonrpc_client::methods;
use near_jsonrpc_client::methods::send_tx::RpcTransactionResponse;
use near_primitives::transaction::SignedTransaction;
use near_primitives::views::TxExecutionStatus;
use payouts_devnet::{DevnetConfig, Faults};

use crate::common::{config, ft_transfer, id, start_with, user, TestNet};

/// Whether `err` is the RPC's `TIMEOUT_ERROR` (HTTP 408).
fn is_timeout<E: std::fmt::Debug>(err: &JsonRpcError<E>) -> bool {
    matches!(
        err,
        JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(
            JsonRpcServerResponseStatusError::TimeoutError
        ))
    )
}

/// Sends `tx` until it reaches `wait_until`. The short `rpc_timeout_ms` these tests need also caps a send
/// that must succeed, and a stalled block producer on a loaded host can overrun it: re-sending the same
/// signed bytes is idempotent (a known transaction is not validated again, its status is returned), so
/// a `TIMEOUT_ERROR` is retried until a deadline. Any other error fails the test.
async fn send_until_landed(
    net: &TestNet,
    tx: SignedTransaction,
    wait_until: TxExecutionStatus,
) -> RpcTransactionResponse {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match net.send(tx.clone(), wait_until.clone()).await {
            Ok(r) => return r,
            Err(err) if is_timeout(&err) && Instant::now() < deadline => {
                eprintln!("send_tx timed out before {wait_until:?}; re-sending the same bytes");
            }
            Err(err) => panic!("send_tx {wait_until:?}: {err:?}"),
        }
    }
}

#[tokio::test]
async fn dropped_transactions_and_rpc_faults() {
    let cfg = DevnetConfig {
        rpc_timeout_ms: 600,
        // The dropped transaction is validated again when re-sent: keep its block hash valid for far
        // longer than a stall of this host (100 blocks of 50 ms would be 5 s).
        validity_period: 10_000,
        ..config()
    };
    let net = start_with(cfg).await;
    let signer = &net.handle.treasury_signers()[0];
    let token = id("token.devnet");

    // Every transaction dropped: the client sees a timeout, the transaction never lands.
    net.handle.set_faults(Faults {
        drop_tx_share: 1.0,
        ..Faults::default()
    });
    let tx = net
        .tx(signer, &token, vec![ft_transfer(&user(0), 1, "dropped")])
        .await;
    let err = net
        .send(tx.clone(), TxExecutionStatus::Included)
        .await
        .unwrap_err();
    assert!(is_timeout(&err), "{err:?}");
    assert_eq!(net.nonce(signer).await, 0);

    // Knob off: re-broadcasting the same bytes lands it.
    net.handle.set_faults(Faults::default());
    let ok = send_until_landed(&net, tx, TxExecutionStatus::ExecutedOptimistic).await;
    assert!(ok.final_execution_outcome.is_some());
    assert_eq!(net.nonce(signer).await, 1);

    // Every call answered 500: the client reports an internal error.
    net.handle.set_faults(Faults {
        rpc_5xx_share: 1.0,
        ..Faults::default()
    });
    let err = net
        .client
        .call(methods::status::RpcStatusRequest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            JsonRpcError::ServerError(JsonRpcServerError::InternalError { .. })
        ),
        "{err:?}"
    );

    // Every answer lost as a 408, but the transaction still reaches the chain.
    net.handle.set_faults(Faults::default());
    let tx = net
        .tx(
            signer,
            &token,
            vec![ft_transfer(&user(2), 1, "lost answer")],
        )
        .await;
    net.handle.set_faults(Faults {
        rpc_timeout_share: 1.0,
        ..Faults::default()
    });
    let err = net
        .send(tx.clone(), TxExecutionStatus::Final)
        .await
        .unwrap_err();
    assert!(is_timeout(&err), "{err:?}");
    net.handle.set_faults(Faults::default());
    let landed = send_until_landed(&net, tx, TxExecutionStatus::Final).await;
    assert_eq!(landed.final_execution_status, TxExecutionStatus::Final);
    assert_eq!(net.handle.ft_balance(&user(2)), Some(1));

    // Slow blocks: with a 300 ms delay, three blocks take at least ~900 ms.
    net.handle.set_faults(Faults {
        block_delay_ms: 300,
        ..Faults::default()
    });
    let h = net.handle.head_height();
    net.handle
        .wait_for_height(h + 1, Duration::from_secs(3))
        .await;
    let started = Instant::now();
    assert!(
        net.handle
            .wait_for_height(h + 4, Duration::from_secs(5))
            .await
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    net.shutdown().await;
}
