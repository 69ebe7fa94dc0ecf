//! Coalescing on the devnet: claims of one receiver pending together are paid by one `ft_transfer` of their
//! sum whose memo names every one of them; and the tries to break it (distributor/src/death.rs, "Merged
//! transfers"): a merged transfer whose receipt fails, a crash between signing and sending, a replay of the
//! indexed stream, a manual send that opted out.

use std::collections::HashMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use payouts_devnet::TGAS;
use payouts_distributor::chain::Chain;
use payouts_distributor::prepare::{prepare, BatchOptions, LaneState, Prepared};
use payouts_distributor::{Limits, TreasuryKey};
use payouts_indexer::replay::replay;
use payouts_indexer::IndexerConfig;
use payouts_store::claims::{get_claim, insert_claims, NewClaim};
use payouts_store::cursor::read_cursor;
use payouts_store::keys::{lease_keys, register_keys, release_leases};
use payouts_store::schema::transactions;
use payouts_store::transactions::{claim_transfer, get_tx};
use payouts_store::{ClaimId, ClaimStatus, TxStatus, Yocto};

use crate::world::{registered_user, World};

const TOKEN: &str = "token.devnet";

/// Every claim id named by exactly one memo on the ledger, and how many transfers there were.
fn memo_census(world: &World) -> (HashMap<ClaimId, usize>, usize) {
    let transfers = world.memo_transfers();
    let mut named: HashMap<ClaimId, usize> = HashMap::new();
    for (ids, _, _) in &transfers {
        for id in ids {
            *named.entry(*id).or_default() += 1;
        }
    }
    (named, transfers.len())
}

async fn expected_balances(
    world: &World,
    token: &str,
    items: &[(String, u128)],
) -> HashMap<String, u128> {
    let mut expected = HashMap::<String, u128>::new();
    for (r, a) in items {
        let before = world.balance_of(token, r);
        *expected.entry(r.clone()).or_insert(before) += a;
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_claims_to_fifty_receivers_are_paid_once_in_fewer_transfers() {
    let world = World::start(|_| {}).await;
    let items: Vec<(String, u128)> = (0..1000)
        .map(|i| (registered_user(i % 50), 1_000 + i as u128))
        .collect();
    let expected = expected_balances(&world, TOKEN, &items).await;
    let ids = world.claims("fifty", &items).await;
    let d = world.spawn(world.config(0..4)).await;

    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(
        counts.get(&ClaimStatus::Confirmed),
        Some(&1000),
        "{counts:?}"
    );
    world.assert_exactly_once(&ids).await;
    for (r, want) in &expected {
        assert_eq!(world.balance(r), *want, "balance of {r}");
    }
    // The ledger: fewer transfers than claims, every claim id in exactly one memo.
    let (named, transfers) = memo_census(&world);
    assert!(transfers < 1000, "{transfers} transfers for 1,000 claims");
    assert_eq!(named.len(), 1000);
    assert!(named.values().all(|n| *n == 1), "a claim in two memos");
    for id in &ids {
        assert_eq!(named.get(id), Some(&1), "claim {id:?}");
    }
    // Each claim shows the transfer that paid it, and that transfer names it.
    let mut conn = world.db.conn().await;
    let mut merged = 0;
    for id in &ids {
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        let t = claim_transfer(&mut conn, id.0, c.current_tx_hash.as_deref())
            .await
            .unwrap()
            .expect("the transfer that paid it");
        assert_eq!(t.tx_status, TxStatus::Final);
        assert!(t.claim_ids.contains(&id.0));
        merged += usize::from(t.claim_ids.len() > 1);
    }
    assert!(merged > 500, "{merged} claims paid by merged transfers");
    let m = d.metrics.snapshot();
    assert_eq!(m.transfers as usize, transfers, "{m:?}");
    d.shutdown().await;
    world.stop().await;
}

const HEAVY: &str = "heavy.devnet";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_transfer_whose_receipt_fails_hands_every_claim_back_and_is_paid_once_later() {
    // The token burns 6 Tgas a transfer; the first batches attach the configured 3 and fail whole.
    let world = World::start(|c| {
        c.ft_transfer_gas.insert(HEAVY.into(), 6 * TGAS);
    })
    .await;
    let items: Vec<(String, u128)> = (0..60)
        .map(|i| (registered_user(i % 4), 700 + i as u128))
        .collect();
    let expected = expected_balances(&world, HEAVY, &items).await;
    let ids = world.claims_of(HEAVY, "heavy", &items).await;
    let d = world.spawn(world.config(0..2)).await;
    let counts = world.wait_settled(Duration::from_secs(120)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&60), "{counts:?}");
    world.assert_exactly_once(&ids).await;
    for (r, want) in &expected {
        assert_eq!(world.balance_of(HEAVY, r), *want, "balance of {r}");
    }

    // A merged transfer failed: every claim it carried was paid later by another transaction, once.
    let mut conn = world.db.conn().await;
    let failed: Vec<(String, Vec<i64>, Option<Vec<i32>>)> = transactions::table
        .filter(transactions::token_contract.eq(HEAVY))
        .filter(transactions::status.eq(TxStatus::Failed))
        .select((
            transactions::hash,
            transactions::claim_ids,
            transactions::transfer_claims,
        ))
        .load(&mut conn)
        .await
        .unwrap();
    let merged: Vec<_> = failed
        .iter()
        .filter(|(_, _, per)| per.as_ref().is_some_and(|p| p.iter().any(|n| *n > 1)))
        .collect();
    assert!(!merged.is_empty(), "no merged transfer failed: {failed:?}");
    for (hash, claims, _) in merged {
        for id in claims {
            let c = get_claim(&mut conn, ClaimId(*id)).await.unwrap().unwrap();
            assert_eq!(c.status, ClaimStatus::Confirmed);
            assert_ne!(c.current_tx_hash.as_deref(), Some(hash.as_str()));
        }
    }
    let (named, _) = memo_census(&world);
    assert!(named.values().all(|n| *n == 1));

    // Replaying the whole indexed stream confirms nothing twice and raises nothing.
    d.shutdown().await;
    let cursor = read_cursor(&mut conn, "main")
        .await
        .unwrap()
        .unwrap()
        .block_height;
    let cfg = IndexerConfig {
        start_block_height: Some(1),
        ..IndexerConfig::fastnear(world.devnet.rpc_url())
    };
    let report = replay(&world.pool, &cfg, 1, cursor, false, |_| {})
        .await
        .unwrap();
    assert_eq!(report.new_claims, 0);
    world.assert_exactly_once(&ids).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_batch_signed_before_a_crash_is_sent_as_the_same_bytes_and_paid_once() {
    let world = World::start(|_| {}).await;
    let receiver = registered_user(5);
    let items: Vec<(String, u128)> = (0..6)
        .map(|i| (receiver.clone(), 10 + i as u128))
        .chain([(registered_user(6), 99)])
        .collect();
    let expected = expected_balances(&world, TOKEN, &items).await;
    let ids = world.claims("crash", &items).await;

    // Signed and stored as a lane does, then the process "dies" before broadcasting.
    let files = world.devnet.treasury_key_files();
    let key = TreasuryKey::from_file(&files[0]).unwrap();
    let chain = Chain::new(&world.devnet.rpc_url(), Duration::from_secs(5)).unwrap();
    let nonce = chain
        .access_key_nonce(&key.account_id, &key.public_key)
        .await
        .unwrap()
        .unwrap();
    let (_, block_hash) = chain.final_block().await.unwrap();
    let hash = {
        let mut conn = world.db.conn().await;
        let pk = key.public_key.to_string();
        register_keys(
            &mut conn,
            key.account_id.as_str(),
            std::slice::from_ref(&pk),
        )
        .await
        .unwrap();
        lease_keys(
            &mut conn,
            key.account_id.as_str(),
            Some(&[pk]),
            "crashed",
            1,
            60_000,
        )
        .await
        .unwrap();
        let limits = Limits {
            max_transfers_per_tx: 100,
            gas_per_transfer: 3 * TGAS,
            max_tx_gas: 300 * TGAS,
        };
        let opts = BatchOptions {
            coalesce: true,
            idle: true,
            ..BatchOptions::default()
        };
        let lane = LaneState {
            nonce: nonce + 1,
            block_hash,
        };
        let Prepared::Batch(b) = prepare(&mut conn, "crashed", &key, TOKEN, lane, &limits, &opts)
            .await
            .unwrap()
        else {
            panic!("no batch");
        };
        assert_eq!(b.claim_ids, ids);
        assert_eq!(
            b.transfers, 2,
            "six claims of one receiver merged, one apart"
        );
        assert_eq!(b.total.0, items.iter().map(|(_, a)| a).sum::<u128>());
        release_leases(&mut conn, "crashed").await.unwrap();
        b.batch.hash.to_string()
    };
    let stored = get_tx(&mut world.db.conn().await, &hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.transfer_claims, Some(vec![6, 1]));

    // A new process resumes the key: it broadcasts the stored bytes, it does not sign the claims again.
    let d = world.spawn(world.config(0..1)).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&7), "{counts:?}");
    world.assert_exactly_once(&ids).await;
    for (r, want) in &expected {
        assert_eq!(world.balance(r), *want, "balance of {r}");
    }
    let mut conn = world.db.conn().await;
    for id in &ids {
        let c = get_claim(&mut conn, *id).await.unwrap().unwrap();
        assert_eq!(c.current_tx_hash.as_deref(), Some(hash.as_str()));
    }
    let memos: Vec<_> = world.memo_transfers();
    assert_eq!(memos.len(), 2, "{memos:?}");
    assert!(memos
        .iter()
        .any(|(named, r, a)| named.len() == 6 && *r == receiver && *a == 75));
    d.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_send_with_coalescing_off_gets_a_transfer_of_its_own() {
    let world = World::start(|_| {}).await;
    let receiver = registered_user(9);
    let rows: Vec<NewClaim> = (0..5)
        .map(|i| {
            NewClaim::manual(
                &format!("own-{i}"),
                "d",
                TOKEN,
                &receiver,
                Yocto(100 + i),
                None,
            )
            .coalescing(i != 2)
        })
        .collect();
    let mut conn = world.db.conn().await;
    insert_claims(&mut conn, &rows).await.unwrap();
    drop(conn);
    let ids: Vec<ClaimId> = (1..=5).map(ClaimId).collect();
    let d = world.spawn(world.config(0..1)).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&5), "{counts:?}");
    world.assert_exactly_once(&ids).await;
    // The opted-out claim (id 3) was paid by a transfer naming it alone.
    let memos = world.memo_transfers();
    let own: Vec<_> = memos
        .iter()
        .filter(|(n, _, _)| n.contains(&ClaimId(3)))
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].0, vec![ClaimId(3)]);
    assert_eq!(own[0].2, 102);
    assert!(memos.len() < 5, "the others merged: {memos:?}");
    d.shutdown().await;
    world.stop().await;
}
