//! The indexer against the devnet: the real FastNear streamer reading the devnet's neardata endpoints, a
//! real PostgreSQL, transactions signed and sent with the real JSON-RPC client.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use near_jsonrpc_client::JsonRpcClient;
use near_primitives::views::FinalExecutionOutcomeView;
use payouts_devnet::{Devnet, DevnetHandle};
use payouts_indexer::replay::replay;
use payouts_indexer::rules::RuleConfig;
use payouts_indexer::{Indexer, IndexerConfig, IndexerMetrics};
use payouts_store::claims::{
    get_claim, insert_manual_claim, lock_pending, update_claims, ClaimUpdate, NewClaim,
};
use payouts_store::cursor::read_cursor;
use payouts_store::memo::transfer_memo;
use payouts_store::testdb::TestDb;
use payouts_store::transactions::{get_tx, insert_tx, NewTx};
use payouts_store::{AsyncConnection, ClaimId, ClaimStatus, PgPool, TxStatus, Yocto};
use tokio_util::sync::CancellationToken;

use crate::chain::{call, id, send_final, sign};

struct Net {
    devnet: DevnetHandle,
    client: JsonRpcClient,
    _keys: tempfile::TempDir,
}

async fn devnet() -> Net {
    let (devnet, keys) = Devnet::start_for_tests(|_| {}).await.unwrap();
    let client = JsonRpcClient::connect(devnet.rpc_url());
    Net {
        devnet,
        client,
        _keys: keys,
    }
}

fn indexer_config(net: &Net) -> IndexerConfig {
    IndexerConfig {
        start_block_height: Some(1),
        rules: vec![RuleConfig {
            name: "claims".into(),
            contract: "claims.devnet".into(),
            standard: "claims".into(),
            event: "claim".into(),
            receiver_field: "account_id".into(),
            amount_field: Some("amount".into()),
            fixed_amount: None,
            token: "token.devnet".into(),
            memo: Some("campaign".into()),
        }],
        ..IndexerConfig::fastnear(net.devnet.rpc_url())
    }
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), payouts_indexer::IndexerError>>,
    metrics: Arc<IndexerMetrics>,
}

fn spawn_indexer(pool: &PgPool, cfg: IndexerConfig) -> Running {
    let metrics = Arc::new(IndexerMetrics::default());
    let indexer = Indexer::new(pool.clone(), cfg, Arc::clone(&metrics)).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(indexer.run(stop.clone()));
    Running {
        stop,
        task,
        metrics,
    }
}

async fn cursor(pool: &PgPool) -> u64 {
    let mut conn = payouts_store::get(pool).await.unwrap();
    read_cursor(&mut conn, "main")
        .await
        .unwrap()
        .map_or(0, |c| c.block_height)
}

/// Waits (with a deadline) until the indexer has committed `height`.
async fn wait_for_cursor(pool: &PgPool, height: u64) {
    let what = format!("the indexer to commit block {height}");
    payouts_store::testdb::wait_until(Duration::from_secs(60), &what, async || {
        let at = cursor(pool).await;
        if at >= height {
            Ok(())
        } else {
            Err(format!("cursor at {at}"))
        }
    })
    .await;
}

/// `(receipt_id, receiver, amount)` of every event claim, from the database.
async fn event_claims(pool: &PgPool) -> Vec<(String, String, Yocto, String)> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use payouts_store::schema::claims;
    let mut conn = payouts_store::get(pool).await.unwrap();
    claims::table
        .filter(claims::source.eq("event"))
        .order(claims::id.asc())
        .select((
            claims::receipt_id.assume_not_null(),
            claims::receiver_id,
            claims::amount,
            claims::token_contract,
        ))
        .load::<(String, String, Yocto, String)>(&mut conn)
        .await
        .unwrap()
}

/// The receipt of `outcome` that logged a `claims` event (its id is the claim's key).
fn claim_receipt(outcome: &FinalExecutionOutcomeView) -> Option<String> {
    outcome
        .receipts_outcome
        .iter()
        .find(|r| {
            r.outcome
                .logs
                .iter()
                .any(|l| l.contains(r#""standard":"claims""#))
        })
        .map(|r| r.id.to_string())
}

async fn user_claim(net: &Net, user: usize, amount: u128, fail: bool) -> FinalExecutionOutcomeView {
    let account = id(&format!("user-{user}.devnet"));
    let signer = net.devnet.signer(&account, 0).unwrap();
    let args = serde_json::json!({ "amount": amount.to_string(), "fail": fail });
    let tx = sign(
        &net.client,
        &signer,
        &id("claims.devnet"),
        vec![call("claim", args, 0)],
    )
    .await;
    send_final(&net.client, tx).await
}

#[tokio::test]
async fn claim_calls_become_claim_rows_and_failed_receipts_none() {
    let net = devnet().await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let running = spawn_indexer(&pool, indexer_config(&net));

    for user in 1..=5 {
        user_claim(&net, user, 1_000 * user as u128, false).await;
    }
    // Logged, then panicked: the receipt failed, so its event never happened.
    let failed = user_claim(&net, 6, 777, true).await;
    assert!(
        claim_receipt(&failed).is_some(),
        "the failed receipt still carries its log"
    );
    wait_for_cursor(&pool, net.devnet.final_height()).await;

    let rows = event_claims(&pool).await;
    let got: Vec<(String, Yocto, String)> = rows
        .iter()
        .map(|(_, r, a, t)| (r.clone(), *a, t.clone()))
        .collect();
    let want: Vec<(String, Yocto, String)> = (1..=5)
        .map(|u| {
            (
                format!("user-{u}.devnet"),
                Yocto(1_000 * u as u128),
                "token.devnet".into(),
            )
        })
        .collect();
    assert_eq!(got, want);
    running.stop.cancel();
    running.task.await.unwrap().unwrap();
    // Stopped: the metrics and the stored cursor must agree. (The runner records a batch's metrics after
    // its COMMIT returns, so they are read only once it has stopped.)
    let snapshot = running.metrics.snapshot();
    assert_eq!((snapshot.claims_inserted, snapshot.malformed_logs), (5, 0));
    assert_eq!(snapshot.last_height, cursor(&pool).await);
    assert!(
        snapshot.head_seen >= snapshot.last_height && snapshot.blocks > 0,
        "{snapshot:?}"
    );
    assert!(snapshot.last_block_timestamp_nanos > 0);
    net.devnet.shutdown().await;
}

#[tokio::test]
async fn killed_and_restarted_indexer_has_no_gap_and_no_duplicate() {
    let net = devnet().await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let mut expected = BTreeSet::new();

    let first = spawn_indexer(&pool, indexer_config(&net));
    for user in 0..6 {
        expected.insert(
            claim_receipt(&user_claim(&net, user, 10 + user as u128, false).await).unwrap(),
        );
    }
    wait_for_cursor(&pool, 2).await;
    // Killed mid-stream: no graceful stop, an in-flight commit is simply dropped.
    first.task.abort();
    let _ = first.task.await;
    let killed_at = cursor(&pool).await;

    for user in 6..12 {
        expected.insert(
            claim_receipt(&user_claim(&net, user, 10 + user as u128, false).await).unwrap(),
        );
    }
    let second = spawn_indexer(&pool, indexer_config(&net));
    wait_for_cursor(&pool, net.devnet.final_height()).await;
    second.stop.cancel();
    second.task.await.unwrap().unwrap();
    assert!(cursor(&pool).await > killed_at);

    let rows = event_claims(&pool).await;
    let got: BTreeSet<String> = rows.iter().map(|(r, ..)| r.clone()).collect();
    assert_eq!(rows.len(), got.len(), "duplicate rows");
    assert_eq!(got, expected, "gap or stray rows");

    // Replaying everything indexed so far adds nothing.
    let report = replay(
        &pool,
        &indexer_config(&net),
        1,
        cursor(&pool).await,
        false,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.new_claims, 0);
    assert_eq!(report.events, 12);
    assert_eq!(event_claims(&pool).await.len(), 12);
    net.devnet.shutdown().await;
}

/// Stores `receivers` as submitted claims carried by a treasury batch, signs it, returns it unsent.
async fn stored_batch(
    net: &Net,
    pool: &PgPool,
    key: &str,
    receivers: &[&str],
) -> (
    near_primitives::transaction::SignedTransaction,
    Vec<ClaimId>,
) {
    let mut conn = payouts_store::get(pool).await.unwrap();
    let mut ids = vec![];
    for (i, r) in receivers.iter().enumerate() {
        let row = NewClaim::manual(
            &format!("{key}-{i}"),
            "d",
            "token.devnet",
            r,
            Yocto(5),
            None,
        );
        ids.push(insert_manual_claim(&mut conn, &row).await.unwrap().0.id);
    }
    let locked = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 100).await)
        .await
        .unwrap();
    assert_eq!(locked.len(), ids.len());
    let treasury = net.devnet.treasury().clone();
    let signer = net.devnet.signer(&treasury, 0).unwrap();
    let actions = receivers
        .iter()
        .zip(&ids)
        .map(|(r, id)| {
            let memo = transfer_memo(*id, None);
            call(
                "ft_transfer",
                serde_json::json!({"receiver_id": r, "amount": "5", "memo": memo}),
                1,
            )
        })
        .collect();
    let tx = sign(&net.client, &signer, &id("token.devnet"), actions).await;
    let stored = NewTx {
        hash: tx.get_hash().to_string(),
        signer_id: treasury.to_string(),
        public_key: signer.public_key().to_string(),
        nonce: tx.transaction.nonce().try_into().unwrap(),
        block_hash: tx.transaction.block_hash().to_string(),
        signed_bytes: borsh::to_vec(&tx).unwrap(),
        token_contract: "token.devnet".into(),
        claim_ids: ids.iter().map(|i| i.0).collect(),
        amount: None,
        spend_day: None,
        gas_per_action: None,
        action_count: None,
    };
    insert_tx(&mut conn, &stored).await.unwrap();
    update_claims(
        &mut conn,
        &ids,
        ClaimStatus::Pending,
        ClaimUpdate::Submit {
            tx_hash: &stored.hash,
        },
    )
    .await
    .unwrap();
    (tx, ids)
}

#[tokio::test]
async fn our_transactions_are_reconciled_from_the_stream() {
    let net = devnet().await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let running = spawn_indexer(&pool, indexer_config(&net));

    // Even-numbered users are registered with the token; odd ones are not.
    let (good, good_ids) =
        stored_batch(&net, &pool, "good", &["user-2.devnet", "user-4.devnet"]).await;
    send_final(&net.client, good.clone()).await;
    let (bad, bad_ids) =
        stored_batch(&net, &pool, "bad", &["user-6.devnet", "user-7.devnet"]).await;
    send_final(&net.client, bad.clone()).await;
    wait_for_cursor(&pool, net.devnet.final_height()).await;

    let mut conn = payouts_store::get(&pool).await.unwrap();
    for id in good_ids {
        assert_eq!(
            get_claim(&mut conn, id).await.unwrap().unwrap().status,
            ClaimStatus::Confirmed
        );
    }
    let tx = get_tx(&mut conn, &good.get_hash().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.status, TxStatus::Final);
    assert!(tx.receipt_id.is_some() && tx.included_block_height.is_some());

    let tx = get_tx(&mut conn, &bad.get_hash().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.status, TxStatus::Failed);
    for id in bad_ids {
        let c = get_claim(&mut conn, id).await.unwrap().unwrap();
        assert_eq!(
            (c.status, c.attempts, c.needs_isolation),
            (ClaimStatus::Pending, 1, true)
        );
        let msg = c.last_error.unwrap_or_default();
        assert!(
            msg.contains("The account user-7.devnet is not registered"),
            "{msg}"
        );
    }
    running.stop.cancel();
    running.task.await.unwrap().unwrap();
    net.devnet.shutdown().await;
}

#[tokio::test]
async fn malformed_logs_are_skipped_and_counted_and_the_rest_indexed() {
    let net = devnet().await;
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let running = spawn_indexer(&pool, indexer_config(&net));

    // One receipt: a valid claim, a broken event line, a matching event with no receiver, a valid claim.
    let account = id("user-3.devnet");
    let signer = net.devnet.signer(&account, 0).unwrap();
    let lines = serde_json::json!({ "lines": [
        "EVENT_JSON:{\"standard\":\"claims\",",
        "EVENT_JSON:{\"standard\":\"claims\",\"version\":\"1.0.0\",\"event\":\"claim\",\"data\":[{\"amount\":\"5\"}]}",
        "just a plain log line",
    ]});
    let actions = vec![
        call("claim", serde_json::json!({ "amount": "11" }), 0),
        call("log", lines, 0),
        call("claim", serde_json::json!({ "amount": "22" }), 0),
    ];
    let tx = sign(&net.client, &signer, &id("claims.devnet"), actions).await;
    let outcome = send_final(&net.client, tx).await;
    let receipt = claim_receipt(&outcome).unwrap();
    wait_for_cursor(&pool, net.devnet.final_height()).await;

    let rows = event_claims(&pool).await;
    let got: Vec<(String, String, Yocto)> = rows
        .iter()
        .map(|(r, to, a, _)| (r.clone(), to.clone(), *a))
        .collect();
    let want = vec![
        (receipt.clone(), "user-3.devnet".to_string(), Yocto(11)),
        (receipt, "user-3.devnet".to_string(), Yocto(22)),
    ];
    assert_eq!(got, want);
    running.stop.cancel();
    running.task.await.unwrap().unwrap();
    // Read once stopped: the runner records a batch's metrics after its COMMIT returns.
    assert_eq!(running.metrics.snapshot().malformed_logs, 2);
    net.devnet.shutdown().await;
}
