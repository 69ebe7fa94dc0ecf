//! The load generator: users' `claim` calls land on chain at about the configured rate.

use std::time::Duration;

use payouts_devnet::{DevnetConfig, LoadConfig};

use crate::common::{config, start_with};

#[tokio::test]
async fn generator_produces_claim_events() {
    let cfg = DevnetConfig {
        load: LoadConfig {
            claims_per_second: 100.0,
            ..LoadConfig::default()
        },
        ..config()
    };
    let net = start_with(cfg).await;
    let http = crate::rpc::reqwest_like(&net.handle.rpc_url());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut claims = 0;
    let mut height = 2;
    while claims < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {claims} claims"
        );
        let (status, _, body) = http.get(&format!("/v0/block/{height}")).await;
        if status == 404 {
            // Not final within the long-poll (a slow host): the answer neardata gives; ask again.
            assert!(body.contains("BLOCK_HEIGHT_TOO_HIGH"), "{body}");
            continue;
        }
        assert_eq!(status, 200, "{body}");
        let msg: near_lake_framework::near_indexer_primitives::StreamerMessage =
            serde_json::from_str(&body).unwrap();
        for r in &msg.shards[0].receipt_execution_outcomes {
            for log in &r.execution_outcome.outcome.logs {
                assert!(log.starts_with(r#"EVENT_JSON:{"standard":"claims","version":"1.0.0","event":"claim","data":[{"account_id":"user-"#), "{log}");
                claims += 1;
            }
        }
        height += 1;
    }
    net.shutdown().await;
}
