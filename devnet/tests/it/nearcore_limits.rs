//! The devnet's limits and prices are nearcore's, one test per row of issue 15's table (the
//! rows about chunk admission, congestion, gas price, per-token gas, protocol limits and the
//! JSON-RPC shapes): receipts are admitted by compute, congestion rejects new transactions
//! (`ShardCongested`, and `ShardStuck` after missed chunks), the gas price follows nearcore's
//! formula, a token whose `ft_transfer` needs more gas than attached fails the whole receipt,
//! mainnet's protocol-83 numbers are the defaults, and `tx` takes positional params. Driven by
//! the real near-jsonrpc-client over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use near_crypto::{InMemorySigner, KeyType, SecretKey};
use near_jsonrpc_client::methods;
use near_jsonrpc_client::methods::send_tx::RpcTransactionError;
use near_jsonrpc_primitives::types::query::QueryResponseKind;
use near_primitives::errors::{
    ActionErrorKind, FunctionCallError, InvalidTxError, TxExecutionError,
};
use near_primitives::hash::CryptoHash;
use near_primitives::types::{AccountId, BlockId, BlockReference, Finality};
use near_primitives::views::{
    BlockView, FinalExecutionOutcomeViewEnum, FinalExecutionStatus, QueryRequest, TxExecutionStatus,
};
use payouts_devnet::{CongestionOverrides, DevnetConfig, TGAS};

use crate::common::{config, function_call, id, start_with, user, TestNet};
use crate::rpc::reqwest_like;

fn transfers(n: usize, first_user: usize, gas: u64) -> Vec<near_primitives::action::Action> {
    (0..n)
        .map(|i| {
            function_call(
                "ft_transfer",
                serde_json::json!({
                    "receiver_id": user(2 * (first_user + i)),
                    "amount": "1",
                    "memo": format!("m{first_user}-{i}"),
                }),
                gas,
                1,
            )
        })
        .collect()
}

async fn block(net: &TestNet, height: u64) -> BlockView {
    net.client
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Height(height)),
        })
        .await
        .expect("block")
}

async fn final_outcome(
    net: &TestNet,
    hash: CryptoHash,
    sender: &AccountId,
) -> near_primitives::views::FinalExecutionOutcomeView {
    let r = net
        .client
        .call(methods::tx::RpcTransactionStatusRequest {
            transaction_info: methods::tx::TransactionInfo::TransactionId {
                tx_hash: hash,
                sender_account_id: sender.clone(),
            },
            wait_until: TxExecutionStatus::Final,
        })
        .await
        .expect("tx");
    match r.final_execution_outcome {
        Some(FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(o)) => o,
        other => panic!("no outcome: {other:?}"),
    }
}

async fn ft_balance(net: &TestNet, token: &AccountId, account: &AccountId) -> u128 {
    let request = methods::query::RpcQueryRequest {
        block_reference: BlockReference::Finality(Finality::None),
        request: QueryRequest::CallFunction {
            account_id: token.clone(),
            method_name: "ft_balance_of".into(),
            args: serde_json::json!({ "account_id": account })
                .to_string()
                .into_bytes()
                .into(),
        },
    };
    match net.client.call(request).await.expect("call_function").kind {
        QueryResponseKind::CallResult(r) => {
            let s: String = serde_json::from_slice(&r.result).expect("json string");
            s.parse().expect("u128")
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Sends `count` transactions of `per_tx` transfers from the 8 treasury keys (wait NONE).
async fn load(net: &TestNet, count: usize, per_tx: usize) {
    let signers = net.handle.treasury_signers();
    let hash = net.latest_hash().await;
    for t in 0..count {
        let signer = &signers[t % signers.len()];
        let nonce = (t / signers.len()) as u64 + 1;
        let tx = net.tx_with(
            signer,
            &id("token.devnet"),
            transfers(per_tx, t * per_tx % 400, 3 * TGAS),
            nonce,
            hash,
        );
        net.send(tx, TxExecutionStatus::None)
            .await
            .expect("load tx accepted");
    }
}

/// Sends a `claim` call from user `n` (nonce 1: each probe uses a fresh user) and waits for
/// it to be INCLUDED (with NONE, nearcore does not report validation errors): `Err` with the
/// node's rejection, `Ok` when it was accepted (included, or still waiting when the RPC timed
/// out).
async fn probe(net: &TestNet, n: usize) -> Result<(), InvalidTxError> {
    let signer = net.handle.signer(&user(n), 0).expect("user key");
    let tx = net.tx_with(
        &signer,
        &id("claims.devnet"),
        vec![function_call(
            "claim",
            serde_json::json!({"amount": "1"}),
            3 * TGAS,
            0,
        )],
        1,
        net.latest_hash().await,
    );
    match net.send(tx, TxExecutionStatus::Included).await {
        Ok(_) => Ok(()),
        Err(err) => match err.handler_error() {
            Some(RpcTransactionError::InvalidTransaction { context }) => Err(context.clone()),
            Some(RpcTransactionError::TimeoutError) => Ok(()),
            _ if format!("{err:?}").contains("TimeoutError") => Ok(()),
            _ => panic!("unexpected {err:?}"),
        },
    }
}

fn invalid(err: &near_jsonrpc_client::errors::JsonRpcError<RpcTransactionError>) -> InvalidTxError {
    match err.handler_error() {
        Some(RpcTransactionError::InvalidTransaction { context }) => context.clone(),
        _ => panic!("not an InvalidTransaction: {err:?}"),
    }
}

#[tokio::test]
async fn receipts_are_admitted_by_compute_not_gas() {
    // Three receipts of 5 transfers each: gas alone would admit all three into a 30 Tgas chunk
    // (the third would start at ≈28 Tgas of gas), but storage makes each cost ≈16.5 Tgas of
    // compute, so the third starts at ≈33 Tgas of compute and must wait for the next block.
    let net = start_with(DevnetConfig {
        gas_limit: 30 * TGAS,
        ..config()
    })
    .await;
    let signers = net.handle.treasury_signers();
    let hash = net.latest_hash().await;
    // Hold chunk production while the three are sent, so that one chunk converts them all.
    net.handle.miss_chunks(1_000);
    let mut hashes = Vec::new();
    for (k, signer) in signers.iter().take(3).enumerate() {
        let tx = net.tx_with(
            signer,
            &id("token.devnet"),
            transfers(5, 10 * k, 3 * TGAS),
            1,
            hash,
        );
        hashes.push(tx.get_hash());
        net.send(tx, TxExecutionStatus::None).await.unwrap();
    }
    net.handle.miss_chunks(0);
    let mut included = Vec::new();
    let mut executed = Vec::new();
    let mut receipt_gas = Vec::new();
    for h in &hashes {
        let o = final_outcome(&net, *h, &id("treasury.devnet")).await;
        assert!(
            matches!(o.status, FinalExecutionStatus::SuccessValue(_)),
            "{o:?}"
        );
        included.push(block_height(&net, o.transaction_outcome.block_hash).await);
        executed.push(block_height(&net, o.receipts_outcome[0].block_hash).await);
        receipt_gas.push(o.receipts_outcome[0].outcome.gas_burnt.as_gas());
    }
    assert!(
        included.iter().all(|h| *h == included[0]),
        "one chunk converted all three: {included:?}"
    );
    let first = executed[0];
    assert_eq!(&executed[..2], &[first, first], "{executed:?}");
    assert_eq!(executed[2], first + 1, "{executed:?}");
    let two: u64 = receipt_gas[..2].iter().sum();
    assert!(
        two < 30 * TGAS,
        "by gas the third would have started: {receipt_gas:?}"
    );
    let used = block(&net, first).await.chunks[0].gas_used.as_gas();
    assert!(used > 15 * TGAS && used < 30 * TGAS, "{used}");
    net.shutdown().await;
}

async fn block_height(net: &TestNet, hash: CryptoHash) -> u64 {
    net.client
        .call(methods::block::RpcBlockRequest {
            block_reference: BlockReference::BlockId(BlockId::Hash(hash)),
        })
        .await
        .expect("block")
        .header
        .height
}

#[tokio::test]
async fn a_congested_shard_rejects_new_transactions_until_it_drains() {
    // 40 receipts of ≈19 Tgas prepaid each, two executed per 30 Tgas chunk: the delayed gas
    // stays above 80 % of a (lowered) 100 Tgas threshold for many blocks.
    let net = start_with(DevnetConfig {
        gas_limit: 30 * TGAS,
        congestion: CongestionOverrides {
            max_congestion_incoming_gas: Some(100 * TGAS),
            ..CongestionOverrides::default()
        },
        ..config()
    })
    .await;
    load(&net, 40, 5).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 1;
    let (level, height) = loop {
        match probe(&net, n).await {
            Ok(()) => n += 2,
            Err(err) => match err {
                InvalidTxError::ShardCongested {
                    shard_id,
                    congestion_level,
                } => {
                    assert_eq!(shard_id, 0);
                    break (congestion_level.into_inner(), net.handle.head_height());
                }
                other => panic!("unexpected {other:?}"),
            },
        }
        assert!(
            tokio::time::Instant::now() < deadline && n < 999,
            "never congested"
        );
        let next = net.handle.head_height() + 1;
        net.handle
            .wait_for_height(next, Duration::from_secs(1))
            .await;
    };
    assert!(level >= 0.8, "{level}");
    // The chunk header says why: its delayed receipts carry ≥ 80 Tgas.
    let info = block(&net, height).await.chunks[0]
        .congestion_info
        .clone()
        .expect("congestion info");
    assert!(
        info.delayed_receipts_gas >= u128::from(80 * TGAS),
        "{info:?}"
    );
    // Retryable: once the delayed receipts drain, the same kind of transaction is accepted.
    net.wait_until("drained", Duration::from_secs(60), |h| {
        h.backlog() == (0, 0)
    })
    .await;
    probe(&net, n + 2).await.expect("accepted after draining");
    net.shutdown().await;
}

#[tokio::test]
async fn a_shard_that_misses_chunks_is_stuck_for_new_transactions() {
    let net = start_with(DevnetConfig {
        congestion: CongestionOverrides {
            // 10 missed chunks are 100 % congestion: rejected from 8 on (threshold 0.8).
            max_congestion_missed_chunks: Some(10),
            ..CongestionOverrides::default()
        },
        ..config()
    })
    .await;
    // Chunks stay missing until the test lets them come back.
    net.handle.miss_chunks(100_000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 1;
    let missed = loop {
        match probe(&net, n).await {
            Ok(()) => n += 2,
            Err(err) => match err {
                InvalidTxError::ShardStuck {
                    shard_id,
                    missed_chunks,
                } => {
                    assert_eq!(shard_id, 0);
                    break missed_chunks;
                }
                other => panic!("unexpected {other:?}"),
            },
        }
        assert!(
            tokio::time::Instant::now() < deadline && n < 999,
            "never stuck"
        );
        let next = net.handle.head_height() + 1;
        net.handle
            .wait_for_height(next, Duration::from_secs(1))
            .await;
    };
    assert!(missed >= 8, "{missed}");
    let head = block(&net, net.handle.head_height()).await;
    assert_eq!(head.header.chunk_mask, vec![false], "{head:?}");
    net.handle.miss_chunks(0);
    // Chunks come back: the earlier probes (accepted before the shard was stuck) land and new
    // transactions are accepted again.
    net.wait_until("chunks again", Duration::from_secs(30), |h| {
        h.block_gas().last().is_some_and(|b| b.has_chunk)
    })
    .await;
    probe(&net, n + 2).await.expect("accepted again");
    net.wait_until("probes landed", Duration::from_secs(30), |h| {
        h.backlog() == (0, 0)
    })
    .await;
    net.shutdown().await;
}

#[tokio::test]
async fn the_gas_price_follows_nearcores_formula_and_never_drops_below_the_minimum() {
    let net = start_with(DevnetConfig {
        gas_limit: 30 * TGAS,
        ..config()
    })
    .await;
    let config = net
        .client
        .call(
            methods::EXPERIMENTAL_protocol_config::RpcProtocolConfigRequest {
                block_reference: BlockReference::Finality(Finality::Final),
            },
        )
        .await
        .unwrap();
    let min = config.min_gas_price.as_yoctonear();
    let max = config.max_gas_price.as_yoctonear();
    assert_eq!(min, 100_000_000);
    assert_eq!(max, 10_000_000_000_000_000_000_000);
    assert_eq!(
        (
            *config.gas_price_adjustment_rate.numer(),
            *config.gas_price_adjustment_rate.denom()
        ),
        (1, 100)
    );
    let start = net.handle.head_height();
    load(&net, 40, 5).await;
    net.wait_until("drained", Duration::from_secs(60), |h| {
        h.backlog() == (0, 0)
    })
    .await;
    // Back to the floor: empty chunks lower the price 0.5 % a block.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let head = net.handle.head_height();
        if block(&net, head).await.header.gas_price.as_yoctonear() == min {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "price never fell back"
        );
        net.handle
            .wait_for_height(head + 1, Duration::from_secs(1))
            .await;
    }
    let end = net.handle.head_height();
    let mut prev = block(&net, start).await;
    let mut highest = 0;
    for h in start + 1..=end {
        let b = block(&net, h).await;
        let (used, limit) = (
            u128::from(prev.chunks[0].gas_used.as_gas()),
            u128::from(prev.chunks[0].gas_limit.as_gas()),
        );
        // nearcore: p · (2·d·L + 2·n·U − n·L) / (2·d·L), n/d = 1/100, clamped to [min, max].
        let expected = (prev.header.gas_price.as_yoctonear() * (200 * limit + 2 * used - limit)
            / (200 * limit))
            .clamp(min, max);
        let price = b.header.gas_price.as_yoctonear();
        assert_eq!(price, expected, "block {h}");
        assert!(price >= min);
        highest = highest.max(price);
        prev = b;
    }
    assert!(highest > min, "full chunks raised the price");
    let rpc = net
        .client
        .call(methods::gas_price::RpcGasPriceRequest {
            block_id: Some(BlockId::Height(end)),
        })
        .await
        .unwrap();
    assert_eq!(rpc.gas_price.as_yoctonear(), min);
    net.shutdown().await;
}

#[tokio::test]
async fn a_heavy_token_fails_the_whole_receipt_when_the_attached_gas_is_short() {
    let net = start_with(config()).await;
    let heavy = id("heavy.devnet");
    let signer = &net.handle.treasury_signers()[0];
    let before: Vec<u128> = vec![
        ft_balance(&net, &heavy, &user(0)).await,
        ft_balance(&net, &heavy, &user(2)).await,
    ];
    // 3 Tgas a transfer is enough for token.devnet (1.9 Tgas) but not for heavy.devnet (4.5).
    let tx = net.tx(signer, &heavy, transfers(2, 0, 3 * TGAS)).await;
    let hash = tx.get_hash();
    net.send(tx, TxExecutionStatus::None).await.unwrap();
    let o = final_outcome(&net, hash, &id("treasury.devnet")).await;
    match &o.status {
        FinalExecutionStatus::Failure(TxExecutionError::ActionError(e)) => {
            assert_eq!(e.index, Some(0));
            assert_eq!(
                e.kind,
                ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(
                    "Exceeded the prepaid gas.".into()
                ))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        o.receipts_outcome[0].outcome.gas_burnt.as_gas() > 3 * TGAS,
        "the attached gas is burnt"
    );
    let after = vec![
        ft_balance(&net, &heavy, &user(0)).await,
        ft_balance(&net, &heavy, &user(2)).await,
    ];
    assert_eq!(after, before, "no transfer of the batch applied");
    // With 5 Tgas a transfer, the same batch goes through.
    let tx = net.tx(signer, &heavy, transfers(2, 0, 5 * TGAS)).await;
    let hash = tx.get_hash();
    net.send(tx, TxExecutionStatus::None).await.unwrap();
    let o = final_outcome(&net, hash, &id("treasury.devnet")).await;
    assert!(
        matches!(o.status, FinalExecutionStatus::SuccessValue(_)),
        "{o:?}"
    );
    assert_eq!(ft_balance(&net, &heavy, &user(0)).await, before[0] + 1);
    assert_eq!(ft_balance(&net, &heavy, &user(2)).await, before[1] + 1);
    net.shutdown().await;
}

#[tokio::test]
async fn defaults_are_mainnets_protocol_83_numbers() {
    let keys = tempfile::tempdir().unwrap();
    let cfg = DevnetConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        key_dir: Some(keys.path().to_path_buf()),
        ..DevnetConfig::default()
    };
    assert_eq!(cfg.block_time_ms, 600);
    assert_eq!(cfg.nodes, 3);
    let handle = payouts_devnet::Devnet::start(cfg).await.unwrap();
    let client = near_jsonrpc_client::JsonRpcClient::connect(handle.rpc_url());
    let config = client
        .call(
            methods::EXPERIMENTAL_protocol_config::RpcProtocolConfigRequest {
                block_reference: BlockReference::Finality(Finality::Final),
            },
        )
        .await
        .unwrap();
    assert!(config.protocol_version >= 83);
    assert_eq!(config.transaction_validity_period, 86_400);
    assert_eq!(
        config
            .runtime_config
            .wasm_config
            .limit_config
            .max_total_prepaid_gas
            .as_gas(),
        1_000 * TGAS
    );
    let cc = &config.runtime_config.congestion_control_config;
    assert_eq!(cc.max_congestion_incoming_gas.as_gas(), 400_000 * TGAS);
    assert_eq!(cc.max_congestion_missed_chunks, 125);
    assert_eq!(cc.max_tx_gas.as_gas(), 500 * TGAS);
    assert_eq!(cc.min_tx_gas.as_gas(), 20 * TGAS);
    assert_eq!(cc.reject_tx_congestion_threshold, 0.8);
    handle.shutdown().await;
}

#[tokio::test]
async fn tx_takes_positional_params_and_expiry_is_checked_before_the_signature() {
    let net = start_with(config()).await;
    let signer = &net.handle.treasury_signers()[0];
    let tx = net
        .tx(signer, &id("token.devnet"), transfers(1, 0, 3 * TGAS))
        .await;
    let hash = tx.get_hash();
    net.send(tx, TxExecutionStatus::Final).await.unwrap();
    let http = reqwest_like(&net.handle.rpc_url());
    for method in ["tx", "EXPERIMENTAL_tx_status"] {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": method,
            "params": [hash.to_string(), "treasury.devnet"],
        });
        let (status, v) = http.post(&body.to_string()).await;
        assert_eq!(status, 200, "{method}: {v}");
        assert_eq!(
            v["result"]["final_execution_status"], "FINAL",
            "{method}: {v}"
        );
        assert_eq!(
            v["result"]["transaction"]["hash"],
            hash.to_string(),
            "{method}: {v}"
        );
    }
    // A transaction both expired (unknown block hash) and badly signed: nearcore reports the
    // expiry, which it checks first.
    let mut tx = net.tx_with(
        signer,
        &id("token.devnet"),
        transfers(1, 0, 3 * TGAS),
        net.nonce(signer).await + 1,
        CryptoHash::hash_bytes(b"not a block"),
    );
    let other = InMemorySigner::from_secret_key(
        id("treasury.devnet"),
        SecretKey::from_seed(KeyType::ED25519, "other"),
    );
    tx.signature = other.sign(tx.get_hash().as_ref());
    let err = net.send(tx, TxExecutionStatus::Included).await.unwrap_err();
    assert_eq!(invalid(&err), InvalidTxError::Expired);
    net.shutdown().await;
}
