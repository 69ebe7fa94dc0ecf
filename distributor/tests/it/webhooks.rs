//! Paying claims produces exactly the configured webhook events: signed, in order, with bodies that match the
//! claims as the database has them (devnet + PostgreSQL + indexer + distributor + webhook worker + receiver).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use payouts_store::claims::get_claim;
use payouts_store::transactions::get_tx;
use payouts_store::webhooks::endpoint_summaries;
use payouts_store::ClaimStatus;
use payouts_webhooks::receiver::{Mode, Received, Receiver};
use payouts_webhooks::{EndpointConfig, EventType, WebhookMetrics, Webhooks, WebhooksConfig};
use tokio_util::sync::CancellationToken;

use crate::world::{registered_user, World};

const SECRET: &str = "distributor-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_claims_sends_exactly_the_configured_events() {
    let world = World::start(|_| {}).await;
    let rx = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes(),
        Mode::Accept,
    )
    .await
    .unwrap();
    std::env::set_var("WH_PAYOUTS_TEST", SECRET);
    let cfg = WebhooksConfig {
        endpoints: vec![EndpointConfig {
            name: "backend".into(),
            url: rx.url(),
            secret_env: "WH_PAYOUTS_TEST".into(),
            // Not claim.submitted: it must not arrive.
            events: vec![
                EventType::ClaimCreated,
                EventType::ClaimConfirmed,
                EventType::ClaimFailed,
            ],
            max_in_flight: 1,
        }],
        poll_interval_ms: 20,
        ..WebhooksConfig::default()
    };
    let worker =
        Webhooks::new(world.pool.clone(), cfg, Arc::new(WebhookMetrics::default())).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while endpoint_summaries(&mut world.db.conn().await)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoint not synced"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 20 payable claims and one to an unregistered receiver.
    let mut items: Vec<(String, u128)> = (0..20)
        .map(|i| (registered_user(i), 100 + i as u128))
        .collect();
    items.insert(5, ("user-1.devnet".to_string(), 7));
    let ids = world.claims("wh", &items).await;
    let d = world.spawn(world.config(0..2)).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&20), "{counts:?}");
    world.assert_exactly_once(&ids).await;

    let expected: BTreeSet<(String, i64)> = ids
        .iter()
        .map(|id| ("claim.created".to_string(), id.0))
        .chain(ids.iter().enumerate().map(|(i, id)| {
            let kind = if i == 5 {
                "claim.failed"
            } else {
                "claim.confirmed"
            };
            (kind.to_string(), id.0)
        }))
        .collect();
    // Delivery is at least once: a request that timed out on the worker's side after the receiver had
    // answered is sent again with the same event id.
    let got = rx
        .wait_for_events(&expected, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(got.iter().all(|r| r.verified), "a signature did not verify");
    assert!(got.iter().all(|r| r.answered == Some(200)));
    if got.len() > expected.len() {
        eprintln!(
            "{} repeated deliveries (same event ids)",
            got.len() - expected.len()
        );
    }

    // Each claim's events arrive in the order they happened, and the final one matches the database.
    let mut conn = world.db.conn().await;
    for id in &ids {
        // Distinct events of this claim in the order they first arrived (repeats skipped).
        let mut mine: Vec<&Received> = Vec::new();
        for r in got.iter().filter(|r| r.body["data"]["claim"]["id"] == id.0) {
            if mine.iter().all(|m| m.event_id != r.event_id) {
                mine.push(r);
            }
        }
        assert_eq!(mine.len(), 2, "claim {id:?}");
        assert_eq!(mine[0].body["type"], "claim.created");
        let last = &mine[1].body;
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        let claim = &last["data"]["claim"];
        assert_eq!(claim["status"], c.status.as_str());
        assert_eq!(claim["receiver_id"], c.receiver_id);
        assert_eq!(claim["amount"], c.amount.0.to_string());
        assert_eq!(claim["token"], c.token_contract);
        assert_eq!(claim["last_error"].as_str(), c.last_error.as_deref());
        assert_eq!(
            last["data"]["transaction_hash"].as_str(),
            c.current_tx_hash.as_deref()
        );
        if c.status == ClaimStatus::Confirmed {
            let tx_hash = c.current_tx_hash.clone().unwrap();
            let tx = get_tx(&mut conn, &tx_hash).await.unwrap().unwrap();
            assert_eq!(
                last["data"]["block_height"].as_i64(),
                tx.included_block_height,
                "block of claim {id:?}"
            );
            assert!(tx.included_block_height.is_some());
        } else {
            assert!(claim["last_error"]
                .as_str()
                .unwrap()
                .contains("not registered"));
        }
    }
    d.shutdown().await;
    stop.cancel();
    task.await.unwrap().unwrap();
    world.stop().await;
}
