//! The real near-lake-framework FastNear streamer, pointed at the devnet, sees the same
//! transaction, receipts, logs and events the RPC reported; the Lake S3 layout files match.

use std::time::Duration;

use near_lake_framework::FastNearConfigBuilder;
use near_primitives::views::{ExecutionStatusView, TxExecutionStatus};
use payouts_devnet::DevnetConfig;

use crate::common::{config, ft_transfer, id, start_with, user};

#[tokio::test]
async fn streamer_sees_the_batch() {
    let lake_dir = tempfile::tempdir().unwrap();
    let cfg = DevnetConfig {
        lake_dir: Some(lake_dir.path().to_path_buf()),
        ..config()
    };
    let net = start_with(cfg).await;
    let signer = &net.handle.treasury_signers()[0];
    let actions = (0..20)
        .map(|i| ft_transfer(&user(2 * i), 100, &format!("claim-{i}")))
        .collect();
    let tx = net.tx(signer, &id("token.devnet"), actions).await;
    let tx_hash = tx.get_hash();
    let outcome = net
        .send(tx, TxExecutionStatus::Final)
        .await
        .unwrap()
        .final_execution_outcome
        .unwrap()
        .into_outcome();
    let receipt_id = outcome.receipts_outcome[0].id;
    let receipt_block = outcome.receipts_outcome[0].block_hash;

    let config = FastNearConfigBuilder::default()
        .endpoint(net.handle.rpc_url())
        .start_block_height(1)
        .num_threads(2)
        .build()
        .unwrap();
    let (sender, mut stream) = near_lake_framework::streamer(config);
    let mut seen_tx = None;
    let mut seen_receipt = None;
    let mut expected_height = 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen_tx.is_none() || seen_receipt.is_none() {
        let msg = tokio::time::timeout_at(deadline, stream.recv())
            .await
            .expect("stream in time")
            .expect("stream open");
        assert_eq!(
            msg.block.header.height, expected_height,
            "blocks arrive in order, none skipped"
        );
        expected_height += 1;
        let shard = &msg.shards[0];
        let chunk = shard.chunk.as_ref().unwrap();
        if let Some(t) = chunk
            .transactions
            .iter()
            .find(|t| t.transaction.hash == tx_hash)
        {
            assert_eq!(
                t.outcome.execution_outcome.outcome.receipt_ids,
                vec![receipt_id]
            );
            assert_eq!(t.transaction.actions.len(), 20);
            seen_tx = Some(msg.block.header.height);
        }
        if let Some(r) = shard
            .receipt_execution_outcomes
            .iter()
            .find(|r| r.receipt.receipt_id == receipt_id)
        {
            assert_eq!(msg.block.header.hash, receipt_block);
            assert!(matches!(
                r.execution_outcome.outcome.status,
                ExecutionStatusView::SuccessValue(_)
            ));
            let logs = &r.execution_outcome.outcome.logs;
            assert_eq!(logs.len(), 20);
            assert!(logs[3]
                .contains(r#""new_owner_id":"user-6.devnet","amount":"100","memo":"claim-3""#));
            assert_eq!(r.receipt.predecessor_id, id("treasury.devnet"));
            // The receipt is also listed in the chunk of the block that executes it.
            assert!(chunk.receipts.iter().any(|v| v.receipt_id == receipt_id));
            seen_receipt = Some(msg.block.header.height);
        }
    }
    assert!(seen_receipt > seen_tx);
    drop(stream);
    sender.abort();

    // Lake S3 layout on disk for a final block. The producer publishes a head first and then writes the
    // files of the block that became final with it (height + 2), before it produces the next block: once
    // the head reaches height + 3 they are on disk.
    let height = seen_receipt.unwrap();
    assert!(
        net.handle
            .wait_for_height(height + 3, Duration::from_secs(10))
            .await,
        "the chain stopped before block {}",
        height + 3
    );
    let folder = lake_dir.path().join(format!("{height:012}"));
    let block: near_primitives::views::BlockView =
        serde_json::from_slice(&std::fs::read(folder.join("block.json")).unwrap()).unwrap();
    assert_eq!(block.header.hash, receipt_block);
    let shard: near_lake_framework::near_indexer_primitives::IndexerShard =
        serde_json::from_slice(&std::fs::read(folder.join("shard_0.json")).unwrap()).unwrap();
    assert!(shard
        .receipt_execution_outcomes
        .iter()
        .any(|r| r.receipt.receipt_id == receipt_id));
    net.shutdown().await;
}

#[tokio::test]
async fn neardata_endpoints() {
    let net = start_with(config()).await;
    let http = crate::rpc::reqwest_like(&net.handle.rpc_url());
    assert!(net.handle.wait_for_height(5, Duration::from_secs(5)).await);
    let (status, head, _) = http.get("/v0/last_block/final").await;
    assert_eq!(status, 302);
    assert!(
        head.to_lowercase().contains("location: /v0/block/"),
        "{head}"
    );
    let (status, head, _) = http.get("/v0/last_block/final/headers").await;
    assert_eq!(status, 302);
    assert!(head.contains("/headers"), "{head}");
    let (status, _, body) = http.get("/v0/block/0").await;
    assert_eq!((status, body.as_str()), (200, "null"));
    let (status, _, body) = http.get("/v0/block/2").await;
    assert_eq!(status, 200);
    let msg: near_lake_framework::near_indexer_primitives::StreamerMessage =
        serde_json::from_str(&body).unwrap();
    assert_eq!(msg.block.header.height, 2);
    let (status, _, body) = http.get("/v0/block/2/headers").await;
    assert_eq!(status, 200);
    let view: near_primitives::views::BlockView = serde_json::from_str(&body).unwrap();
    assert_eq!(view.header.hash, msg.block.header.hash);
    let (status, _, _) = http.get("/v0/block/abc").await;
    assert_eq!(status, 400);
    // Far above the head: long-poll, then 404 BLOCK_HEIGHT_TOO_HIGH.
    let (status, _, body) = http.get("/v0/block/100000").await;
    assert_eq!(status, 404);
    assert!(body.contains("BLOCK_HEIGHT_TOO_HIGH"));
    net.shutdown().await;
}
