//! Fault knobs, changed at run time: dropped transactions, RPC timeouts and 5xx, slow blocks.

use std::time::{Duration, Instant};

use near_jsonrpc_client::errors::{
    JsonRpcError, JsonRpcServerError, JsonRpcServerResponseStatusError,
};
use near_jsonrpc_client::methods;
use near_primitives::views::TxExecutionStatus;
use payouts_devnet::{DevnetConfig, Faults};

use crate::common::{ft_transfer, id, start_with, user};

#[tokio::test]
async fn dropped_transactions_and_rpc_faults() {
    let cfg = DevnetConfig {
        rpc_timeout_ms: 600,
        ..DevnetConfig::for_tests()
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
    assert!(matches!(
        err,
        JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(
            JsonRpcServerResponseStatusError::TimeoutError
        ))
    ));
    assert_eq!(net.nonce(signer).await, 0);

    // Knob off: re-broadcasting the same bytes lands it.
    net.handle.set_faults(Faults::default());
    let ok = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap();
    assert!(ok.final_execution_outcome.is_some());

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
    assert!(matches!(
        err,
        JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(
            JsonRpcServerResponseStatusError::TimeoutError
        ))
    ));
    net.handle.set_faults(Faults::default());
    let landed = net.send(tx, TxExecutionStatus::Final).await.unwrap();
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
