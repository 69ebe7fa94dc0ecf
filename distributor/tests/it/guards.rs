//! Tries to break the money guards (distributor/src/guard.rs): lanes of two processes racing for one daily
//! cap, a token whose balance cannot be read, and a transfer that failed on chain for the treasury's balance.

use std::collections::HashMap;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use near_crypto::{PublicKey, Signature};
use near_jsonrpc_client::{methods, JsonRpcClient};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::views::TxExecutionStatus;
use payouts_distributor::chain::Chain;
use payouts_distributor::prepare::{prepare_batch, LaneState};
use payouts_distributor::{Limits, TreasuryKey};
use payouts_store::claims::{count_by_status, get_claim, insert_claims, NewClaim};
use payouts_store::keys::{lease_keys, register_keys, release_leases};
use payouts_store::schema::{claims, transactions};
use payouts_store::spend::spent_today;
use payouts_store::status::list_status;
use payouts_store::{ClaimStatus, PgPool, TxStatus, Yocto};

use crate::world::{registered_user, World};

const TOKEN: &str = "token.devnet";

/// What the store counts against today's cap two ways: the ledger, and the claims in flight or paid.
async fn committed_today(pool: &PgPool) -> (u128, u128) {
    let mut conn = payouts_store::get(pool).await.unwrap();
    let ledger = spent_today(&mut conn, TOKEN).await.unwrap().0;
    let amounts: Vec<Yocto> = claims::table
        .filter(claims::token_contract.eq(TOKEN))
        .filter(claims::status.eq_any([ClaimStatus::Submitted, ClaimStatus::Confirmed]))
        .select(claims::amount)
        .load(&mut conn)
        .await
        .unwrap();
    (ledger, amounts.iter().map(|a| a.0).sum())
}

async fn pause_reasons(pool: &PgPool) -> HashMap<String, String> {
    let mut conn = payouts_store::get(pool).await.unwrap();
    list_status(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| Some((s.owner, s.paused_reason?)))
        .collect()
}

/// Waits (deadline) until `cond` holds, re-checking every 50 ms.
async fn wait_for<F, Fut>(what: &str, within: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lanes_in_each_of_two_processes_never_pass_one_daily_cap() {
    let world = World::start(|_| {}).await;
    // 400 claims of 100 against a cap of 10,050: exactly 100 fit.
    let items: Vec<(String, u128)> = (0..400).map(|i| (registered_user(i), 100)).collect();
    let ids = world.claims("cap", &items).await;
    let cap = 10_050u128;
    let mut cfg = world.config(0..8);
    cfg.max_keys = 4;
    cfg.max_transfers_per_tx = 3;
    cfg.max_in_flight_per_key = 4;
    cfg.max_batch_wait_ms = 0;
    cfg.daily_caps
        .insert(TOKEN.to_string(), payouts_store::Yocto(cap));
    // Both processes start with their lanes hungry at the same moment.
    let (da, db) = tokio::join!(world.spawn(cfg.clone()), world.spawn(cfg));

    // Sampled while they run: neither the ledger nor the claims in flight or paid ever pass the cap.
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (pool, stop) = (world.pool.clone(), stop.clone());
        tokio::spawn(async move {
            // Recorded, not asserted here: a panic in this task would only show once the run is over.
            let (mut samples, mut ledger_max, mut claimed_max) = (0u64, 0u128, 0u128);
            while !stop.is_cancelled() {
                let (ledger, claimed) = committed_today(&pool).await;
                ledger_max = ledger_max.max(ledger);
                claimed_max = claimed_max.max(claimed);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, ledger_max, claimed_max)
        })
    };

    let pool = world.pool.clone();
    wait_for(
        "100 claims confirmed, none in flight",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move {
                let mut conn = payouts_store::get(&pool).await.unwrap();
                let counts: HashMap<ClaimStatus, i64> = count_by_status(&mut conn)
                    .await
                    .unwrap()
                    .into_iter()
                    .collect();
                // At least 100 (the checks below say so if the cap was passed), none in flight.
                counts
                    .get(&ClaimStatus::Confirmed)
                    .is_some_and(|n| *n >= 100)
                    && !counts.contains_key(&ClaimStatus::Submitted)
            }
        },
    )
    .await;
    // Both processes say why they stopped: the cap.
    let owners = [da.owner.clone(), db.owner.clone()];
    wait_for(
        "both processes paused by the cap",
        Duration::from_secs(20),
        || {
            let (pool, owners) = (pool.clone(), owners.clone());
            async move {
                let reasons = pause_reasons(&pool).await;
                owners
                    .iter()
                    .all(|o| reasons.get(o).is_some_and(|r| r.contains("daily cap")))
            }
        },
    )
    .await;
    stop.cancel();
    let (samples, ledger_max, claimed_max) = sampler.await.unwrap();
    assert!(samples > 20, "sampled only {samples} times");
    assert!(
        ledger_max <= cap,
        "the ledger reached {ledger_max}, past the cap {cap}"
    );
    assert!(
        claimed_max <= cap,
        "in flight or paid reached {claimed_max}, past the cap {cap}"
    );

    // Both processes signed (the race was real), everything beyond the cap is still pending, and the chain
    // paid exactly the 100 that fit, once each.
    let (ma, mb) = (da.metrics.snapshot(), db.metrics.snapshot());
    assert!(ma.batches > 0 && mb.batches > 0, "{ma:?} {mb:?}");
    let mut conn = world.db.conn().await;
    let counts: HashMap<ClaimStatus, i64> = count_by_status(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(counts.get(&ClaimStatus::Pending), Some(&300), "{counts:?}");
    assert_eq!(committed_today(&world.pool).await, (10_000, 10_000));
    world.assert_exactly_once(&ids).await;
    let paid: u128 = world.memo_transfers().iter().map(|(_, _, a)| a).sum();
    assert_eq!(paid, 10_000);
    da.shutdown().await;
    db.shutdown().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_balance_stops_signing_for_that_token() {
    let world = World::start(|_| {}).await;
    // The treasury's balance of `nosuch.devnet` cannot be read (no such contract); token.devnet's can.
    let unknown: Vec<NewClaim> = (0..5)
        .map(|i| {
            let key = format!("nosuch-{i}");
            NewClaim::manual(
                &key,
                "d",
                "nosuch.devnet",
                &registered_user(i),
                Yocto(7),
                None,
            )
        })
        .collect();
    {
        let mut conn = world.db.conn().await;
        insert_claims(&mut conn, &unknown).await.unwrap();
    }
    let items: Vec<(String, u128)> = (0..20).map(|i| (registered_user(i), 9)).collect();
    let ids = world.claims("known", &items).await;
    let d = world.spawn(world.config(0..2)).await;

    let pool = world.pool.clone();
    let owner = d.owner.clone();
    wait_for(
        "the unknown balance is the pause reason",
        Duration::from_secs(60),
        || {
            let (pool, owner) = (pool.clone(), owner.clone());
            async move {
                pause_reasons(&pool)
                    .await
                    .get(&owner)
                    .is_some_and(|r| r.contains("balance of nosuch.devnet unknown"))
            }
        },
    )
    .await;
    wait_for("token.devnet paid", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let mut conn = payouts_store::get(&pool).await.unwrap();
            let n: i64 = claims::table
                .filter(claims::token_contract.eq(TOKEN))
                .filter(claims::status.eq(ClaimStatus::Confirmed))
                .count()
                .get_result(&mut conn)
                .await
                .unwrap();
            n == 20
        }
    })
    .await;
    assert!(d.metrics.snapshot().balance_unknown > 0);
    // Nothing was signed for the token whose balance is unknown, and its claims wait.
    let mut conn = world.db.conn().await;
    let signed: i64 = transactions::table
        .filter(transactions::token_contract.eq("nosuch.devnet"))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(signed, 0);
    let waiting: i64 = claims::table
        .filter(claims::token_contract.eq("nosuch.devnet"))
        .filter(claims::status.eq(ClaimStatus::Pending))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(waiting, 5);
    world.assert_exactly_once(&ids).await;
    d.shutdown().await;
    world.stop().await;
}

/// Sends `ft_transfer` of `amount` from `signer` (key `public_key`, signing with `sign`) and waits until final.
async fn send_ft(
    world: &World,
    signer: &AccountId,
    public_key: &PublicKey,
    sign: impl Fn(&[u8]) -> Signature,
    receiver: &str,
    amount: u128,
) {
    let chain = Chain::new(&world.devnet.rpc_url(), Duration::from_secs(5)).unwrap();
    let nonce = chain
        .access_key_nonce(signer, public_key)
        .await
        .unwrap()
        .unwrap();
    let (_, block_hash) = chain.final_block().await.unwrap();
    let args = serde_json::json!({ "receiver_id": receiver, "amount": amount.to_string() });
    let tx = Transaction::V0(TransactionV0 {
        signer_id: signer.clone(),
        public_key: public_key.clone(),
        nonce: nonce + 1,
        receiver_id: TOKEN.parse().unwrap(),
        block_hash,
        actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
            method_name: "ft_transfer".into(),
            args: args.to_string().into_bytes(),
            gas: Gas::from_gas(30_000_000_000_000),
            deposit: Balance::from_yoctonear(1),
        }))],
    });
    let (hash, _) = tx.get_hash_and_size();
    let signed = SignedTransaction::new(sign(hash.as_ref()), tx);
    JsonRpcClient::connect(world.devnet.rpc_url())
        .call(methods::send_tx::RpcSendTransactionRequest {
            signed_transaction: signed,
            wait_until: TxExecutionStatus::Final,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_that_failed_for_the_treasury_balance_waits_and_is_paid_once_after_a_top_up() {
    let world = World::start(|_| {}).await;
    let receiver = registered_user(3);
    let ids = world.claims("short", &[(receiver.clone(), 500)]).await;
    let before = world.balance(&receiver);

    // A batch is signed and stored while the balance covers it (as a lane does), but not sent yet ...
    let files = world.devnet.treasury_key_files();
    let key = TreasuryKey::from_file(&files[0]).unwrap();
    let chain = Chain::new(&world.devnet.rpc_url(), Duration::from_secs(5)).unwrap();
    let nonce = chain
        .access_key_nonce(&key.account_id, &key.public_key)
        .await
        .unwrap()
        .unwrap();
    let (_, block_hash) = chain.final_block().await.unwrap();
    {
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
            "test",
            1,
            60_000,
        )
        .await
        .unwrap();
        let lane = LaneState {
            nonce: nonce + 1,
            block_hash,
        };
        let limits = Limits {
            max_transfers_per_tx: 100,
            gas_per_transfer: 3_000_000_000_000,
            max_tx_gas: 300_000_000_000_000,
        };
        let prepared = prepare_batch(&mut conn, "test", &key, TOKEN, lane, &limits)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(prepared.claim_ids, ids);
        release_leases(&mut conn, "test").await.unwrap();
    }
    // ... when the treasury's balance is drained (by another of its keys) below the claim's amount.
    let treasury = world.devnet.treasury().clone();
    let drain = TreasuryKey::from_file(&files[1]).unwrap();
    let stash = registered_user(7);
    let balance = world.balance(treasury.as_str());
    let drained = balance - 100;
    send_ft(
        &world,
        &treasury,
        &drain.public_key,
        |d| drain.sign(d),
        &stash,
        drained,
    )
    .await;

    // The distributor sends the stored batch (it resumes its key's open transactions); the transfer fails on
    // chain for the balance, and the claim goes back to pending instead of failing for good.
    let d = world.spawn(world.config(0..1)).await;
    let pool = world.pool.clone();
    let id = ids[0];
    wait_for(
        "the claim is back to pending for the balance",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                let mut conn = payouts_store::get(&pool).await.unwrap();
                let c = get_claim(&mut conn, id).await.unwrap().unwrap();
                c.status == ClaimStatus::Pending && c.retry_kind.as_deref() == Some("balance")
            }
        },
    )
    .await;
    let mut conn = world.db.conn().await;
    let failed: i64 = transactions::table
        .filter(transactions::status.eq(TxStatus::Failed))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(failed, 1);
    // Released: the failed transfer does not count against the day.
    assert_eq!(spent_today(&mut conn, TOKEN).await.unwrap(), Yocto(0));
    // The balance guard now holds it back (100 < 500) rather than signing a transfer bound to fail.
    let owner = d.owner.clone();
    wait_for("paused for the balance", Duration::from_secs(30), || {
        let (pool, owner) = (pool.clone(), owner.clone());
        async move {
            pause_reasons(&pool)
                .await
                .get(&owner)
                .is_some_and(|r| r.contains("balance too low"))
        }
    })
    .await;
    assert_eq!(world.balance(&receiver), before);

    // Topped up, it is paid, once.
    let stash_id: AccountId = stash.parse().unwrap();
    let signer = world.devnet.signer(&stash_id, 0).unwrap();
    send_ft(
        &world,
        &stash_id,
        &signer.public_key(),
        |d| signer.sign(d),
        treasury.as_str(),
        drained,
    )
    .await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&1), "{counts:?}");
    world.assert_exactly_once(&ids).await;
    assert_eq!(world.balance(&receiver), before + 500);
    let c = get_claim(&mut conn, id).await.unwrap().unwrap();
    assert_eq!((c.attempts, c.retries), (1, 1));
    d.shutdown().await;
    world.stop().await;
}
