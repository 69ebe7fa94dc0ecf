//! All actions of one receipt succeed or revert together; failed receipts keep their logs.

use near_primitives::errors::{ActionError, ActionErrorKind, FunctionCallError, TxExecutionError};
use near_primitives::views::{ExecutionStatusView, FinalExecutionStatus, TxExecutionStatus};

use crate::common::{ft_transfer, function_call, id, start, user};

#[tokio::test]
async fn batch_with_one_unregistered_receiver_fails_as_a_whole() {
    let net = start().await;
    let signer = &net.handle.treasury_signers()[0];
    let treasury = id("treasury.devnet");
    let token = id("token.devnet");
    let before: Vec<Option<u128>> = (0..10).map(|i| net.handle.ft_balance(&user(i))).collect();
    let treasury_before = net.handle.ft_balance(&treasury);
    let near_before = net.handle.near_balance(&treasury).unwrap();

    // user-5 (odd) is not registered; it sits in the middle of the batch.
    let actions = (0..10)
        .map(|i| ft_transfer(&user(i * 2 + usize::from(i == 5)), 10, &format!("m{i}")))
        .collect();
    let tx = net.tx(signer, &token, actions).await;
    let response = net.send(tx, TxExecutionStatus::Final).await.unwrap();
    let outcome = response.final_execution_outcome.unwrap().into_outcome();
    let expected = TxExecutionError::ActionError(ActionError {
        index: Some(5),
        kind: ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(
            "Smart contract panicked: The account user-11.devnet is not registered".into(),
        )),
    });
    assert_eq!(
        outcome.status,
        FinalExecutionStatus::Failure(expected.clone())
    );
    let receipt = &outcome.receipts_outcome[0];
    assert_eq!(
        receipt.outcome.status,
        ExecutionStatusView::Failure(expected)
    );
    // The five transfers before the failure logged their events; the receipt still failed.
    assert_eq!(receipt.outcome.logs.len(), 5);
    // Nothing moved, no event applied, the deposits (10 yocto) and unused gas came back.
    let after: Vec<Option<u128>> = (0..10).map(|i| net.handle.ft_balance(&user(i))).collect();
    assert_eq!(before, after);
    assert_eq!(net.handle.ft_balance(&treasury), treasury_before);
    assert!(net.handle.ft_transfers().is_empty());
    let refunds: Vec<_> = outcome.receipts_outcome[1..]
        .iter()
        .map(|o| o.outcome.executor_id.clone())
        .collect();
    assert_eq!(
        refunds,
        vec![treasury.clone(), treasury.clone()],
        "deposit and gas refunds"
    );
    let burnt: u128 = std::iter::once(&outcome.transaction_outcome)
        .chain(&outcome.receipts_outcome)
        .map(|o| o.outcome.tokens_burnt.as_yoctonear())
        .sum();
    assert_eq!(
        net.handle.near_balance(&treasury).unwrap(),
        near_before - burnt
    );
    net.shutdown().await;
}

#[tokio::test]
async fn failed_claim_keeps_its_log_and_wrong_deposit_panics() {
    let net = start().await;
    let signer = net.handle.signer(&user(3), 0).unwrap();
    let claims = id("claims.devnet");
    let tx = net
        .tx(
            &signer,
            &claims,
            vec![function_call(
                "claim",
                serde_json::json!({"amount": "7", "fail": true}),
                5 * payouts_devnet::TGAS,
                0,
            )],
        )
        .await;
    let outcome = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    assert!(matches!(outcome.status, FinalExecutionStatus::Failure(_)));
    assert_eq!(
        outcome.receipts_outcome[0].outcome.logs,
        vec![
            r#"EVENT_JSON:{"standard":"claims","version":"1.0.0","event":"claim","data":[{"account_id":"user-3.devnet","amount":"7"}]}"#
        ]
    );

    // ft_transfer without exactly 1 yocto.
    let token = id("token.devnet");
    let tx = net
        .tx(
            &signer,
            &token,
            vec![function_call(
                "ft_transfer",
                serde_json::json!({"receiver_id": "user-0.devnet", "amount": "1"}),
                5 * payouts_devnet::TGAS,
                0,
            )],
        )
        .await;
    let outcome = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    let FinalExecutionStatus::Failure(TxExecutionError::ActionError(err)) = outcome.status else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        err.kind,
        ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(
            "Smart contract panicked: Requires attached deposit of exactly 1 yoctoNEAR".into()
        ))
    );

    // storage_deposit registers user-3 (odd) with a refund of the excess; then it can receive.
    let deposit = 2_000_000_000_000_000_000_000u128;
    let tx = net
        .tx(
            &signer,
            &token,
            vec![function_call(
                "storage_deposit",
                serde_json::json!({"registration_only": true}),
                10 * payouts_devnet::TGAS,
                deposit,
            )],
        )
        .await;
    let outcome = net
        .send(tx, TxExecutionStatus::Final)
        .await
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    assert!(
        matches!(outcome.status, FinalExecutionStatus::SuccessValue(_)),
        "{outcome:?}"
    );
    assert_eq!(net.handle.ft_balance(&user(3)), Some(0));
    assert_eq!(
        net.handle.near_balance(&token).unwrap(),
        100_000_000_000_000_000_000_000_000 + 1_250_000_000_000_000_000_000
    );
    let treasury_signer = &net.handle.treasury_signers()[2];
    let tx = net
        .tx(
            treasury_signer,
            &token,
            vec![ft_transfer(&user(3), 9, "now registered")],
        )
        .await;
    let outcome = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    assert!(matches!(
        outcome.status,
        FinalExecutionStatus::SuccessValue(_)
    ));
    assert_eq!(net.handle.ft_balance(&user(3)), Some(9));
    // Zero amount.
    let tx = net
        .tx(
            treasury_signer,
            &token,
            vec![ft_transfer(&user(3), 0, "zero")],
        )
        .await;
    let outcome = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    assert!(format!("{:?}", outcome.status).contains("The amount should be a positive number"));
    net.shutdown().await;
}
