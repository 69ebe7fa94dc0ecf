//! The distributor end to end: devnet + PostgreSQL + indexer + distributor(s). Each test checks the money.

use std::time::Duration;

use payouts_devnet::Faults;
use payouts_store::ClaimStatus;

use crate::world::{registered_user, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_claims_are_all_confirmed_and_paid_exactly_once() {
    let world = World::start(|_| {}).await;
    let items: Vec<(String, u128)> = (0..1000)
        .map(|i| (registered_user(i), 1_000 + i as u128))
        .collect();
    let before: Vec<u128> = items.iter().map(|(r, _)| world.balance(r)).collect();
    let ids = world.claims("k", &items).await;
    // One transfer per claim here (coalescing has its own tests: coalesce.rs).
    let mut cfg = world.config(0..8);
    cfg.coalesce = false;
    let d = world.spawn(cfg).await;

    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&1000),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    // Every receiver's balance rose by exactly the sum of its claims.
    let mut expected = std::collections::HashMap::<String, u128>::new();
    for ((r, a), b) in items.iter().zip(&before) {
        *expected.entry(r.clone()).or_insert(*b) += a;
    }
    for (r, want) in expected {
        assert_eq!(world.balance(&r), want, "balance of {r}");
    }
    let m = d.metrics.snapshot();
    assert!(m.batches >= 10, "{m:?}");
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_receiver_fails_alone_and_the_others_are_paid() {
    let world = World::start(|_| {}).await;
    // 15 registered receivers and one unregistered (odd-numbered) in the middle of one batch.
    let mut items: Vec<(String, u128)> = (0..15)
        .map(|i| (registered_user(i), 10 + i as u128))
        .collect();
    items.insert(7, ("user-1.devnet".to_string(), 99));
    let ids = world.claims("u", &items).await;
    let d = world.spawn(world.config(0..2)).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&15), "{counts:?}");
    assert_eq!(counts.get(&ClaimStatus::Failed), Some(&1), "{counts:?}");
    let mut conn = world.db.conn().await;
    let bad = payouts_store::claims::get_claim(&mut conn, ids[7])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bad.status, ClaimStatus::Failed);
    let msg = bad.last_error.unwrap_or_default();
    assert!(msg.contains("not registered"), "{msg}");
    world.assert_exactly_once(&ids).await;
    assert_eq!(world.balance("user-1.devnet"), 0);
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_receivers_are_registered_and_paid_when_configured() {
    let world = World::start(|_| {}).await;
    let items: Vec<(String, u128)> = (0..20)
        .map(|i| (format!("user-{}.devnet", 2 * i + 1), 5 + i as u128))
        .chain((0..20).map(|i| (registered_user(i), 7)))
        .collect();
    let ids = world.claims("r", &items).await;
    let mut cfg = world.config(0..2);
    cfg.register_receivers = true;
    let d = world.spawn(cfg).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&40), "{counts:?}");
    world.assert_exactly_once(&ids).await;
    assert_eq!(world.balance("user-1.devnet"), 5);
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_transactions_and_lost_answers_still_pay_everything_once() {
    let world = World::start(|_| {}).await;
    world.devnet.set_faults(Faults {
        drop_tx_share: 0.2,
        rpc_timeout_share: 0.1,
        seed: 11,
        ..Faults::default()
    });
    let items: Vec<(String, u128)> = (0..600)
        .map(|i| (registered_user(i), 1 + i as u128))
        .collect();
    let ids = world.claims("f", &items).await;
    let mut cfg = world.config(0..4);
    cfg.max_transfers_per_tx = 20;
    let d = world.spawn(cfg).await;
    let counts = world.wait_settled(Duration::from_secs(180)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&600),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    let m = d.metrics.snapshot();
    assert!(
        m.txs_dead > 0,
        "no transaction was dropped: the faults did not bite ({m:?})"
    );
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_distributors_on_one_database_use_disjoint_keys_and_pay_once() {
    let world = World::start(|_| {}).await;
    let items: Vec<(String, u128)> = (0..600)
        .map(|i| (registered_user(i), 3 + i as u128))
        .collect();
    let ids = world.claims("two", &items).await;
    // Both may use every key; each leases at most 4.
    let mut a = world.config(0..8);
    a.max_keys = 4;
    // Small batches, few in flight: one process alone cannot hold all 600 claims at once, so both work.
    a.max_transfers_per_tx = 10;
    a.max_in_flight_per_key = 2;
    let b = a.clone();
    let da = world.spawn(a).await;
    let db = world.spawn(b).await;
    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&600),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    // Disjoint keys: every transaction's key was leased by one owner only, and both worked.
    let mut conn = world.db.conn().await;
    let keys = payouts_store::keys::list_keys(&mut conn).await.unwrap();
    let of = |o: &str| {
        keys.iter()
            .filter(|k| k.lease_owner.as_deref() == Some(o))
            .count()
    };
    assert_eq!((of(&da.owner), of(&db.owner)), (4, 4), "{keys:?}");
    let (ma, mb) = (da.metrics.snapshot(), db.metrics.snapshot());
    assert!(ma.batches > 0 && mb.batches > 0, "{ma:?} {mb:?}");
    da.shutdown().await;
    db.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_sent_outside_with_one_of_the_keys_is_recovered_from() {
    use near_jsonrpc_client::{methods, JsonRpcClient};
    use near_primitives::action::{Action, TransferAction};
    use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
    use near_primitives::types::Balance;
    use near_primitives::views::TxExecutionStatus;
    use payouts_distributor::chain::Chain;
    use payouts_distributor::TreasuryKey;

    let world = World::start(|_| {}).await;
    let items: Vec<(String, u128)> = (0..400)
        .map(|i| (registered_user(i), 2 + i as u128))
        .collect();
    let ids = world.claims("n", &items).await;
    let mut cfg = world.config(0..1);
    cfg.max_transfers_per_tx = 5;
    let d = world.spawn(cfg).await;

    // Once paying is under way, someone else uses the same key with a nonce far ahead of the lane.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while d.metrics.snapshot().batches < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no batch sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let key = TreasuryKey::from_file(&world.devnet.treasury_key_files()[0]).unwrap();
    let chain = Chain::new(&world.devnet.rpc_url(), Duration::from_secs(5)).unwrap();
    let nonce = chain
        .access_key_nonce(&key.account_id, &key.public_key)
        .await
        .unwrap()
        .unwrap();
    let (_, block_hash) = chain.final_block().await.unwrap();
    let tx = Transaction::V0(TransactionV0 {
        signer_id: key.account_id.clone(),
        public_key: key.public_key.clone(),
        nonce: nonce + 1_000,
        receiver_id: "user-0.devnet".parse().unwrap(),
        block_hash,
        actions: vec![Action::Transfer(TransferAction {
            deposit: Balance::from_yoctonear(1),
        })],
    });
    let (hash, _) = tx.get_hash_and_size();
    let signed = SignedTransaction::new(key.sign(hash.as_ref()), tx);
    let client = JsonRpcClient::connect(world.devnet.rpc_url());
    client
        .call(methods::send_tx::RpcSendTransactionRequest {
            signed_transaction: signed,
            wait_until: TxExecutionStatus::Included,
        })
        .await
        .unwrap();

    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&400),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    let m = d.metrics.snapshot();
    assert!(m.nonce_resyncs >= 1, "{m:?}");
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_token_is_paid_with_its_own_gas_per_transfer() {
    // heavy.devnet's ft_transfer burns 4.5 Tgas: with the default 3 Tgas a transfer every batch would fail as a
    // whole ("Exceeded the prepaid gas."); its own setting of 5 Tgas pays it, next to token.devnet at 3 Tgas.
    let world = World::start(|_| {}).await;
    let heavy: Vec<(String, u128)> = (0..150)
        .map(|i| (registered_user(i), 7 + i as u128))
        .collect();
    let light: Vec<(String, u128)> = (0..50)
        .map(|i| (registered_user(i), 3 + i as u128))
        .collect();
    let heavy_before: Vec<u128> = heavy
        .iter()
        .map(|(r, _)| world.balance_of("heavy.devnet", r))
        .collect();
    let light_before: Vec<u128> = light.iter().map(|(r, _)| world.balance(r)).collect();
    let mut ids = world.claims_of("heavy.devnet", "h", &heavy).await;
    ids.extend(world.claims("l", &light).await);
    let mut cfg = world.config(0..2);
    cfg.gas_per_transfer_tgas_by_token
        .insert("heavy.devnet".into(), 5);
    let d = world.spawn(cfg).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&200),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    for ((r, a), b) in heavy.iter().zip(&heavy_before) {
        assert_eq!(
            world.balance_of("heavy.devnet", r),
            b + a,
            "heavy balance of {r}"
        );
    }
    for ((r, a), b) in light.iter().zip(&light_before) {
        assert_eq!(world.balance(r), b + a, "balance of {r}");
    }
    d.shutdown().await;
    world.stop().await;
}
