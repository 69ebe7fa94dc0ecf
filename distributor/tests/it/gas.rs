//! Gas learned from outcomes and congestion, on the devnet's nearcore rules: a token whose `ft_transfer`
//! burns more than the configured gas fails its first batch with "Exceeded the prepaid gas." and must then be
//! paid in full, nothing `failed`; a congested shard slows the lanes down without failing or doubling any
//! payment.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use payouts_devnet::{CongestionOverrides, TGAS};
use payouts_distributor::gas::GasBasis;
use payouts_store::schema::{distributor_status, transactions};
use payouts_store::{ClaimStatus, TxStatus};

use crate::world::{registered_user, World};

const HEAVY: &str = "heavy.devnet";

/// Status, gas attached per action, failure, gas burnt.
type TxGas = (TxStatus, Option<i64>, Option<String>, Option<i64>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_token_runs_out_of_gas_once_then_is_paid_with_learned_gas() {
    let world = World::start(|c| {
        c.ft_transfer_gas.insert(HEAVY.into(), 6 * TGAS);
    })
    .await;
    let items: Vec<(String, u128)> = (0..80)
        .map(|i| (registered_user(i), 500 + i as u128))
        .collect();
    let ids = world.claims_of(HEAVY, "heavy", &items).await;
    let mut cfg = world.config(0..2);
    cfg.max_transfers_per_tx = 20;
    assert_eq!(
        cfg.gas_per_transfer_tgas, 3,
        "the default is too little for this token"
    );
    let d = world.spawn(cfg).await;
    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&80), "{counts:?}");
    assert_eq!(counts.get(&ClaimStatus::Failed), None, "{counts:?}");
    world.assert_exactly_once(&ids).await;
    for (r, a) in &items {
        assert!(world.balance_of(HEAVY, r) >= *a);
    }

    // What the store saw: at least one batch ran out of gas at 3 Tgas; the ones that paid attached more.
    let mut conn = payouts_store::get(&world.pool).await.unwrap();
    let txs: Vec<TxGas> = transactions::table
        .filter(transactions::token_contract.eq(HEAVY))
        .select((
            transactions::status,
            transactions::gas_per_action,
            transactions::failure,
            transactions::gas_burnt,
        ))
        .load(&mut conn)
        .await
        .unwrap();
    let out_of_gas: Vec<_> = txs.iter().filter(|t| t.0 == TxStatus::Failed).collect();
    assert!(
        !out_of_gas.is_empty(),
        "the first batch should fail: {txs:?}"
    );
    for t in &out_of_gas {
        assert!(
            t.2.as_deref()
                .is_some_and(|f| f.contains("Exceeded the prepaid gas")),
            "{t:?}"
        );
        assert_eq!(t.1, Some(3 * TGAS as i64), "{t:?}");
    }
    let paid: Vec<_> = txs.iter().filter(|t| t.0 == TxStatus::Final).collect();
    assert!(!paid.is_empty());
    for t in &paid {
        assert!(t.1.is_some_and(|g| g >= 6 * TGAS as i64), "{t:?}");
        assert!(t.3.is_some_and(|b| b > 0), "gas burnt recorded: {t:?}");
    }
    // A whole batch was handed back, not bisected: never more failed batches than gas raises needed.
    // At most the batches signed before the first failure settled (80 claims: 4 batches), and a few more
    // signed while the choice was being refreshed.
    assert!(
        out_of_gas.len() <= 6,
        "{} batches ran out of gas",
        out_of_gas.len()
    );

    // The choice is visible: metrics and the status row.
    let gas = d.metrics.snapshot().gas;
    let heavy = gas
        .iter()
        .find(|g| g.token == HEAVY)
        .expect("heavy token's gas");
    assert!(heavy.gas_per_action >= 6 * TGAS, "{heavy:?}");
    assert!(
        matches!(
            heavy.basis,
            GasBasis::Learned | GasBasis::RaisedAfterOutOfGas
        ),
        "{heavy:?}"
    );
    assert!(
        heavy.transfers_per_tx >= 1 && heavy.transfers_per_tx <= 20,
        "{heavy:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let details: serde_json::Value = distributor_status::table
            .find(&d.owner)
            .select(distributor_status::details)
            .first(&mut conn)
            .await
            .unwrap();
        let shown = details["gas"]
            .as_array()
            .and_then(|a| a.iter().find(|g| g["token"] == HEAVY).cloned());
        if let Some(g) = shown {
            assert!(
                g["gas_per_action"].as_u64().unwrap() >= 6 * TGAS,
                "{details}"
            );
            assert!(details["rpc_endpoints"].is_array(), "{details}");
            assert!(details["gas_price"].is_string(), "{details}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status details never showed the gas: {details}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(conn);
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_congested_shard_slows_the_lanes_down_and_fails_nothing() {
    // Chunks of 40 Tgas (compute) take about one batch of 10 each; 100 Tgas of delayed receipts is full
    // congestion, so a few batches waiting make nodes answer ShardCongested (threshold 80 %).
    let world = World::start(|c| {
        c.gas_limit = 40 * TGAS;
        c.congestion = CongestionOverrides {
            max_congestion_incoming_gas: Some(100 * TGAS),
            ..CongestionOverrides::default()
        };
    })
    .await;
    let items: Vec<(String, u128)> = (0..500)
        .map(|i| (registered_user(i), 2_000 + i as u128))
        .collect();
    let mut cfg = world.config(0..2);
    cfg.max_transfers_per_tx = 10;
    cfg.max_batch_wait_ms = 50;
    let d = world.spawn(cfg).await;
    // Fifty claims a block (five transactions of ten) against chunks that execute one or two such
    // receipts: delayed receipts pile up whatever the host's speed, and the later waves' transactions
    // meet a congested shard. (A two-wave feed depended on the host being fast enough to refill before
    // the backlog drained.)
    let mut ids = Vec::new();
    for (i, wave) in items.chunks(50).enumerate() {
        ids.extend(world.claims(&format!("congested-{i}"), wave).await);
        let next = world.devnet.head_height() + 1;
        assert!(
            world
                .devnet
                .wait_for_height(next, Duration::from_secs(30))
                .await,
            "the devnet stopped producing blocks"
        );
    }
    let counts = world.wait_settled(Duration::from_secs(180)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&500),
        "{counts:?}"
    );
    assert_eq!(counts.get(&ClaimStatus::Failed), None, "{counts:?}");
    world.assert_exactly_once(&ids).await;
    let m = d.metrics.snapshot();
    assert!(
        m.congestion_rejections > 0,
        "the shard never congested: {m:?}"
    );
    // A transaction rejected at every submission never entered a pool: once a later nonce of its key
    // landed it was proven dead and its claims paid by another (counted once above). None of them is on
    // chain.
    let mut conn = payouts_store::get(&world.pool).await.unwrap();
    let dropped: Vec<String> = transactions::table
        .filter(transactions::status.eq(TxStatus::Dropped))
        .select(transactions::hash)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(dropped.len() as u64, m.txs_dead);
    for h in dropped {
        assert!(
            !world.devnet.is_on_chain(&h.parse().unwrap()),
            "{h} declared dead but on chain"
        );
    }
    drop(conn);
    d.shutdown().await;
    world.stop().await;
}
