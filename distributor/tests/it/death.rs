//! Tries to break the death rule (distributor/src/death.rs) on a devnet that answers as nearcore does: resends
//! rejected while the first copy still lands, `tx` look-ups answered by lagging nodes, and a transaction that
//! truly never lands. Every claim must be paid exactly once, and no transaction the store declared dead may
//! be on chain.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use near_primitives::hash::CryptoHash;
use payouts_devnet::{Faults, InjectedError};
use payouts_store::cursor::read_cursor;
use payouts_store::schema::transactions;
use payouts_store::{ClaimStatus, TxStatus};

use crate::world::{registered_user, World};

/// Hashes and failure reasons of the transactions the store declared dead.
async fn dropped(world: &World) -> Vec<(String, String, Option<String>)> {
    let mut conn = payouts_store::get(&world.pool).await.unwrap();
    transactions::table
        .filter(transactions::status.eq(TxStatus::Dropped))
        .select((
            transactions::hash,
            transactions::block_hash,
            transactions::failure,
        ))
        .load(&mut conn)
        .await
        .unwrap()
}

/// No transaction declared dead ever landed.
async fn assert_dead_never_landed(world: &World) {
    for (hash, _, reason) in dropped(world).await {
        let h: CryptoHash = hash.parse().unwrap();
        assert!(
            !world.devnet.is_on_chain(&h),
            "transaction {hash} was declared dead ({reason:?}) but is on chain"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_rejected_while_the_first_copy_lands_pay_once() {
    // Issue 16's case: every re-submission answered ShardCongested, copies held in node pools for a few
    // blocks, three nodes lagging up to two blocks behind one URL.
    let world = World::start(|c| {
        c.nodes = 3;
        c.max_node_lag_blocks = 2;
    })
    .await;
    world.devnet.set_faults(Faults {
        resend_reject_share: 1.0,
        resend_reject_error: InjectedError::ShardCongested,
        hold_share: 0.3,
        hold_blocks: 6,
        seed: 5,
        ..Faults::default()
    });
    let items: Vec<(String, u128)> = (0..150)
        .map(|i| (registered_user(i), 10 + i as u128))
        .collect();
    let ids = world.claims("rj", &items).await;
    let mut cfg = world.config(0..2);
    cfg.max_transfers_per_tx = 10;
    cfg.rebroadcast_after_ms = 300;
    cfg.outcome_timeout_ms = 1_000;
    let d = world.spawn(cfg).await;
    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&150),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    assert_dead_never_landed(&world).await;
    let m = d.metrics.snapshot();
    assert!(m.rejections > 0, "the faults did not bite: {m:?}");
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_nonce_on_resends_with_lagging_lookups_pays_once() {
    // A resend rejected with InvalidNonce because the original landed, while `tx` look-ups hit a node far
    // behind (so they answer UNKNOWN_TRANSACTION for a transaction that is on chain).
    let world = World::start(|c| {
        c.nodes = 2;
        c.max_node_lag_blocks = 0;
    })
    .await;
    world.devnet.set_node_lag(1, Some(8));
    world.devnet.set_faults(Faults {
        resend_reject_share: 1.0,
        resend_reject_error: InjectedError::InvalidNonce,
        seed: 9,
        ..Faults::default()
    });
    let items: Vec<(String, u128)> = (0..100)
        .map(|i| (registered_user(i), 100 + i as u128))
        .collect();
    let ids = world.claims("nonce", &items).await;
    let mut cfg = world.config(0..2);
    cfg.max_transfers_per_tx = 10;
    cfg.rebroadcast_after_ms = 300;
    cfg.outcome_timeout_ms = 1_000;
    let d = world.spawn(cfg).await;
    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&100),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    assert_dead_never_landed(&world).await;
    let m = d.metrics.snapshot();
    assert!(m.rejections > 0, "the faults did not bite: {m:?}");
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_never_lands_is_dead_only_past_its_validity_in_the_indexed_chain() {
    const VALIDITY: u64 = 40;
    let world = World::start(|c| {
        c.validity_period = VALIDITY;
        c.nodes = 1;
    })
    .await;
    // Every node loses what it forwards: the transaction never reaches a chunk producer.
    world.devnet.set_faults(Faults {
        forward_drop_share: 1.0,
        ..Faults::default()
    });
    let before = world.balance(&registered_user(3));
    let ids = world.claims("lost", &[(registered_user(3), 777)]).await;
    let mut cfg = world.config(0..1);
    cfg.rebroadcast_after_ms = 200;
    cfg.outcome_timeout_ms = 500;
    let d = world.spawn(cfg).await;

    // Wait (with a deadline) for the store to declare it dead; read the indexer's cursor right after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (hash, block_hash, reason) = loop {
        if let Some(t) = dropped(&world).await.into_iter().next() {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never declared dead"
        );
        let next = world.devnet.head_height() + 1;
        world
            .devnet
            .wait_for_height(next, Duration::from_secs(1))
            .await;
    };
    let mut conn = payouts_store::get(&world.pool).await.unwrap();
    let cursor = read_cursor(&mut conn, "main").await.unwrap().unwrap();
    drop(conn);
    let chain =
        payouts_distributor::chain::Chain::new(&world.devnet.rpc_url(), Duration::from_secs(5))
            .unwrap();
    let base = chain
        .block_height(block_hash.parse().unwrap())
        .await
        .unwrap();
    assert!(
        cursor.block_height > base.0 + VALIDITY + 1,
        "declared dead at indexed height {} with base {base} (validity {VALIDITY}): {reason:?}",
        cursor.block_height
    );
    assert!(
        reason.as_deref().unwrap_or("").contains("expired"),
        "{reason:?}"
    );
    assert!(!world.devnet.is_on_chain(&hash.parse().unwrap()));

    // The network heals: the claim is paid once, by a new transaction.
    world.devnet.set_faults(Faults::default());
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&1), "{counts:?}");
    world.assert_exactly_once(&ids).await;
    assert_eq!(world.balance(&registered_user(3)), before + 777);
    assert_dead_never_landed(&world).await;
    // A retry signed before the faults were cleared may expire as well; every death the metric
    // counts is one the store shows, and each of them is an expiry proven by the indexed chain.
    let dead = dropped(&world).await;
    assert!(!dead.is_empty());
    assert_eq!(
        d.metrics.snapshot().txs_dead as usize,
        dead.len(),
        "{dead:?}"
    );
    for (_, _, reason) in &dead {
        assert!(
            reason.as_deref().unwrap_or("").contains("expired"),
            "{dead:?}"
        );
    }
    d.shutdown().await;
    world.stop().await;
}
