//! Every validation rule, with the typed error near-jsonrpc-client parses from the answer.

use std::time::Duration;

use near_crypto::{InMemorySigner, KeyType, SecretKey, Signer};
use near_jsonrpc_client::errors::{
    JsonRpcError, JsonRpcServerError, JsonRpcServerResponseStatusError,
};
use near_jsonrpc_client::methods;
use near_jsonrpc_client::methods::send_tx::RpcTransactionError;
use near_primitives::account::{AccessKey, AccessKeyPermission, FunctionCallPermission};
use near_primitives::action::{Action, AddKeyAction, TransferAction};
use near_primitives::errors::{ActionsValidationError, InvalidAccessKeyError, InvalidTxError};
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::{Balance, Gas};
use near_primitives::views::TxExecutionStatus;
use payouts_devnet::{DevnetConfig, TGAS};

use crate::common::{config, ft_transfer, function_call, id, start, start_with, user, TestNet};

async fn rejected(net: &TestNet, tx: SignedTransaction) -> InvalidTxError {
    let err = net
        .send(tx, TxExecutionStatus::Included)
        .await
        .expect_err("rejected");
    match err.handler_error() {
        Some(RpcTransactionError::InvalidTransaction { context }) => context.clone(),
        _ => panic!("not an InvalidTransaction: {err:?}"),
    }
}

fn claim(gas: u64, deposit: u128) -> Action {
    function_call("claim", serde_json::json!({"amount": "1"}), gas, deposit)
}

#[tokio::test]
async fn every_rule_has_its_typed_error() {
    let net = start().await;
    let treasury = &net.handle.treasury_signers()[0];
    let token = id("token.devnet");
    let hash = net.latest_hash().await;

    // Bad signature: signed by another key than the one named in the transaction.
    let mut tx = net.tx_with(
        treasury,
        &token,
        vec![ft_transfer(&user(0), 1, "x")],
        1,
        hash,
    );
    let other = InMemorySigner::from_secret_key(
        id("treasury.devnet"),
        SecretKey::from_seed(KeyType::ED25519, "other"),
    );
    tx.signature = other.sign(tx.get_hash().as_ref());
    assert_eq!(rejected(&net, tx).await, InvalidTxError::InvalidSignature);

    // Nonce not above the key's nonce (0 at genesis).
    let tx = net.tx_with(
        treasury,
        &token,
        vec![ft_transfer(&user(0), 1, "x")],
        0,
        hash,
    );
    assert_eq!(
        rejected(&net, tx).await,
        InvalidTxError::InvalidNonce {
            tx_nonce: 0,
            ak_nonce: 0
        }
    );

    // Unknown block hash.
    let tx = net.tx_with(
        treasury,
        &token,
        vec![ft_transfer(&user(0), 1, "x")],
        1,
        CryptoHash::hash_bytes(b"?"),
    );
    assert_eq!(rejected(&net, tx).await, InvalidTxError::Expired);

    // Unknown key / unknown signer.
    let stranger = InMemorySigner::from_secret_key(
        id("treasury.devnet"),
        SecretKey::from_seed(KeyType::ED25519, "stranger"),
    );
    let tx = net.tx_with(
        &stranger,
        &token,
        vec![ft_transfer(&user(0), 1, "x")],
        1,
        hash,
    );
    assert_eq!(
        rejected(&net, tx).await,
        InvalidTxError::InvalidAccessKeyError(InvalidAccessKeyError::AccessKeyNotFound {
            account_id: id("treasury.devnet"),
            public_key: Box::new(stranger.public_key()),
        })
    );
    let ghost = InMemorySigner::from_secret_key(
        id("ghost.devnet"),
        SecretKey::from_seed(KeyType::ED25519, "g"),
    );
    let tx = net.tx_with(&ghost, &token, vec![ft_transfer(&user(0), 1, "x")], 1, hash);
    assert!(matches!(
        rejected(&net, tx).await,
        InvalidTxError::SignerDoesNotExist { .. }
    ));

    // Not enough NEAR for gas + deposit (users hold 100 NEAR).
    let u1 = net.handle.signer(&user(1), 0).unwrap();
    let big = 1_000 * 10u128.pow(24);
    let tx = net.tx_with(
        &u1,
        &user(2),
        vec![Action::Transfer(TransferAction {
            deposit: Balance::from_yoctonear(big),
        })],
        1,
        hash,
    );
    match rejected(&net, tx).await {
        InvalidTxError::NotEnoughBalance {
            signer_id,
            balance,
            cost,
        } => {
            assert_eq!(signer_id, user(1));
            assert_eq!(balance.as_near(), 100);
            assert!(cost.as_yoctonear() > big);
        }
        other => panic!("{other:?}"),
    }

    // Per-transaction limits.
    let actions = (0..101)
        .map(|i| ft_transfer(&user(0), 1, &i.to_string()))
        .collect();
    let tx = net.tx_with(treasury, &token, actions, 1, hash);
    assert_eq!(
        rejected(&net, tx).await,
        InvalidTxError::ActionsValidation(ActionsValidationError::TotalNumberOfActionsExceeded {
            total_number_of_actions: 101,
            limit: 100
        })
    );
    let actions = (0..3)
        .map(|_| function_call("ft_transfer", serde_json::json!({}), 334 * TGAS, 1))
        .collect();
    let tx = net.tx_with(treasury, &token, actions, 1, hash);
    assert_eq!(
        rejected(&net, tx).await,
        InvalidTxError::ActionsValidation(ActionsValidationError::TotalPrepaidGasExceeded {
            total_prepaid_gas: Gas::from_gas(1_002 * TGAS),
            limit: Gas::from_gas(1_000 * TGAS),
        })
    );

    // A function-call key (added by the user itself) for claims.devnet `claim` only.
    let fc_key =
        InMemorySigner::from_secret_key(user(1), SecretKey::from_seed(KeyType::ED25519, "fc-key"));
    let add = Action::AddKey(Box::new(AddKeyAction {
        public_key: fc_key.public_key(),
        access_key: AccessKey {
            nonce: 0,
            permission: AccessKeyPermission::FunctionCall(FunctionCallPermission {
                allowance: None,
                receiver_id: "claims.devnet".into(),
                method_names: vec!["claim".into()],
            }),
        },
    }));
    let tx = net.tx(&u1, &user(1), vec![add]).await;
    let added = net
        .send(tx, TxExecutionStatus::ExecutedOptimistic)
        .await
        .unwrap();
    assert!(format!("{:?}", added.final_execution_outcome).contains("SuccessValue"));
    let claims = id("claims.devnet");
    let nonce = net.nonce(&fc_key).await;
    assert!(
        nonce >= 1_000_000,
        "new keys start at (height - 1) * 10^6: {nonce}"
    );
    let fc = |receiver, actions| net.tx_with(&fc_key, receiver, actions, nonce + 1, hash);
    let expect = |e: InvalidAccessKeyError| InvalidTxError::InvalidAccessKeyError(e);
    assert_eq!(
        rejected(&net, fc(&claims, vec![claim(5 * TGAS, 1)])).await,
        expect(InvalidAccessKeyError::DepositWithFunctionCall)
    );
    assert_eq!(
        rejected(&net, fc(&token, vec![claim(5 * TGAS, 0)])).await,
        expect(InvalidAccessKeyError::ReceiverMismatch {
            tx_receiver: token.clone(),
            ak_receiver: "claims.devnet".into()
        })
    );
    let reveal = function_call("reveal", serde_json::json!({"token_id": "t"}), 5 * TGAS, 0);
    assert_eq!(
        rejected(&net, fc(&claims, vec![reveal])).await,
        expect(InvalidAccessKeyError::MethodNameMismatch {
            method_name: "reveal".into()
        })
    );
    assert_eq!(
        rejected(
            &net,
            fc(&claims, vec![claim(5 * TGAS, 0), claim(5 * TGAS, 0)])
        )
        .await,
        expect(InvalidAccessKeyError::RequiresFullAccess)
    );
    // And the allowed call goes through.
    let ok = net
        .send(
            fc(&claims, vec![claim(5 * TGAS, 0)]),
            TxExecutionStatus::ExecutedOptimistic,
        )
        .await
        .unwrap();
    assert!(format!("{:?}", ok.final_execution_outcome).contains("EVENT_JSON"));
    net.shutdown().await;
}

#[tokio::test]
async fn old_block_hash_expires() {
    let cfg = DevnetConfig {
        validity_period: 3,
        ..config()
    };
    let net = start_with(cfg).await;
    let signer = &net.handle.treasury_signers()[0];
    let genesis_hash = net
        .client
        .call(methods::block::RpcBlockRequest {
            block_reference: near_primitives::types::BlockReference::BlockId(
                near_primitives::types::BlockId::Height(1),
            ),
        })
        .await
        .unwrap()
        .header
        .hash;
    assert!(net.handle.wait_for_height(6, Duration::from_secs(5)).await);
    let tx = net.tx_with(
        signer,
        &id("token.devnet"),
        vec![ft_transfer(&user(0), 1, "x")],
        1,
        genesis_hash,
    );
    assert_eq!(rejected(&net, tx).await, InvalidTxError::Expired);
    net.shutdown().await;
}

#[tokio::test]
async fn nonce_above_upper_bound_times_out_and_never_lands() {
    let cfg = DevnetConfig {
        rpc_timeout_ms: 800,
        ..config()
    };
    let net = start_with(cfg).await;
    let signer: &Signer = &net.handle.treasury_signers()[0];
    let hash = net.latest_hash().await;
    let nonce = (net.handle.head_height() + 1000) * 1_000_000;
    let tx = net.tx_with(
        signer,
        &id("token.devnet"),
        vec![ft_transfer(&user(0), 1, "x")],
        nonce,
        hash,
    );
    let tx_hash = tx.get_hash();
    let err = net
        .send(tx, TxExecutionStatus::Included)
        .await
        .expect_err("times out");
    assert!(
        matches!(
            err,
            JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(
                JsonRpcServerResponseStatusError::TimeoutError
            ))
        ),
        "{err:?}"
    );
    // Dropped at chunk production: unknown afterwards (at once for NONE; a higher level polls
    // until the RPC timeout, as nearcore's `tx_status_fetch`), the key's nonce never moved.
    let lookup = |wait_until| {
        net.client.call(methods::tx::RpcTransactionStatusRequest {
            transaction_info: methods::tx::TransactionInfo::TransactionId {
                tx_hash,
                sender_account_id: signer.get_account_id(),
            },
            wait_until,
        })
    };
    let err = lookup(TxExecutionStatus::Included).await.unwrap_err();
    assert!(
        matches!(
            err,
            JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(
                JsonRpcServerResponseStatusError::TimeoutError
            ))
        ),
        "{err:?}"
    );
    let err = lookup(TxExecutionStatus::None).await.unwrap_err();
    assert!(
        matches!(
            err.handler_error(),
            Some(RpcTransactionError::UnknownTransaction { .. })
        ),
        "{err:?}"
    );
    assert_eq!(net.nonce(signer).await, 0);
    net.shutdown().await;
}

#[tokio::test]
async fn wait_until_none_hides_validation_errors() {
    let net = start().await;
    let signer = &net.handle.treasury_signers()[0];
    let hash = net.latest_hash().await;
    let tx = net.tx_with(
        signer,
        &id("token.devnet"),
        vec![ft_transfer(&user(0), 1, "x")],
        0,
        hash,
    );
    let started = std::time::Instant::now();
    let r = net.send(tx, TxExecutionStatus::None).await.unwrap();
    assert_eq!(r.final_execution_status, TxExecutionStatus::None);
    assert!(r.final_execution_outcome.is_none());
    // Answered at once, not after waiting for a level: well under the 3 s RPC timeout it would otherwise
    // run into (one local round trip; the bound leaves room for a loaded host).
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "send_tx NONE took {took:?}");
    net.shutdown().await;
}
