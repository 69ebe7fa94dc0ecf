use std::time::{Duration, Instant};

use payouts_devnet::{Devnet, DevnetConfig};
use payouts_indexer::source::{self, Fetch, SourceConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scratch_segments() {
    let keys = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::for_tests();
    cfg.key_dir = Some(keys.path().to_path_buf());
    cfg.block_time_ms = 2;
    cfg.load.claims_per_second = 2000.0;
    let devnet = Devnet::start(cfg).await.unwrap();
    while !devnet.wait_for_height(5010, Duration::from_secs(5)).await {}
    devnet.set_load_rate(0.0);
    let src = SourceConfig::Fastnear {
        endpoint: devnet.rpc_url(),
    };
    let c: u64 = std::env::var("C")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    for round in 0..2 {
        let t = Instant::now();
        let mut stream = source::start(
            &src,
            2,
            Fetch {
                preload: 100,
                concurrency: Some(c),
                until: Some(5000),
            },
        )
        .await
        .unwrap();
        let mut last = Instant::now();
        let mut txs = 0usize;
        while let Some(m) = stream.blocks.recv().await {
            let h = m.block.header.height;
            txs += m.shards[0]
                .chunk
                .as_ref()
                .map_or(0, |c| c.transactions.len());
            let gap = last.elapsed();
            if gap > Duration::from_millis(60) {
                println!(
                    "round {round}: block {h} after a gap of {gap:?} (at {:?})",
                    t.elapsed()
                );
            }
            last = Instant::now();
            if h >= 1000 {
                break;
            }
        }
        println!("round {round}: {:?} txs {txs}", t.elapsed());
    }
    devnet.shutdown().await;
}

#[test]
#[ignore]
fn scratch_client_cost() {
    for _ in 0..5 {
        let t = Instant::now();
        let c = near_lake_framework::FastNearClient::new("http://127.0.0.1:1".into(), None);
        println!("client {:?}", t.elapsed());
        drop(c);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scratch_dump() {
    let keys = tempfile::tempdir().unwrap();
    let mut cfg = DevnetConfig::for_tests();
    cfg.key_dir = Some(keys.path().to_path_buf());
    cfg.block_time_ms = 2;
    cfg.load.claims_per_second = 2000.0;
    let devnet = Devnet::start(cfg).await.unwrap();
    devnet.wait_for_height(700, Duration::from_secs(60)).await;
    let src = SourceConfig::Fastnear {
        endpoint: devnet.rpc_url(),
    };
    let mut stream = source::start(
        &src,
        600,
        Fetch {
            preload: 10,
            concurrency: Some(1),
            until: Some(600),
        },
    )
    .await
    .unwrap();
    let m = stream.blocks.recv().await.unwrap();
    std::fs::write("/tmp/block600.json", serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    devnet.shutdown().await;
}
