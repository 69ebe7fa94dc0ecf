//! Incidents on the devnet (store/src/incidents.rs): payments on chain the store did not expect are
//! recorded, sent as `incident.opened`, and stop the distributor from signing for the token until an admin
//! clears them. The devnet has one token, so "paused" is shown by a new claim of it staying `pending`.

use std::sync::Arc;
use std::time::Duration;

use near_crypto::Signer;
use near_jsonrpc_client::{methods, JsonRpcClient};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::views::TxExecutionStatus;
use payouts_distributor::chain::Chain;
use payouts_store::claims::{get_claim, lock_pending, update_claims, ClaimUpdate};
use payouts_store::incidents::{clear_incident, list_incidents, memo_details, Clearing, Incident};
use payouts_store::keys::register_keys;
use payouts_store::memo::transfer_memo;
use payouts_store::status::list_status;
use payouts_store::transactions::{bury, insert_tx, NewTx};
use payouts_store::{AsyncConnection, ClaimId, ClaimStatus, IncidentKind};
use payouts_webhooks::receiver::{Mode, Receiver};
use payouts_webhooks::{EndpointConfig, EventType, WebhookMetrics, Webhooks, WebhooksConfig};
use tokio_util::sync::CancellationToken;

use crate::world::{registered_user, World};

const SECRET: &str = "incident-test-secret-0123";

/// An `ft_transfer` of `amount` to `to` with `memo`, signed by `signer` with the next nonce.
async fn ft_transfer(
    world: &World,
    signer: &Signer,
    to: &str,
    amount: u128,
    memo: &str,
) -> SignedTransaction {
    let chain = Chain::new(&world.devnet.rpc_url(), Duration::from_secs(5)).unwrap();
    let nonce = chain
        .access_key_nonce(&signer.get_account_id(), &signer.public_key())
        .await
        .unwrap()
        .unwrap();
    let (_, block_hash) = chain.final_block().await.unwrap();
    let args = serde_json::json!({"receiver_id": to, "amount": amount.to_string(), "memo": memo});
    let tx = Transaction::V0(TransactionV0 {
        signer_id: signer.get_account_id(),
        public_key: signer.public_key(),
        nonce: nonce + 1,
        receiver_id: world.devnet.token().clone(),
        block_hash,
        actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
            method_name: "ft_transfer".into(),
            args: args.to_string().into_bytes(),
            gas: Gas::from_gas(10 * payouts_devnet::TGAS),
            deposit: Balance::from_yoctonear(1),
        }))],
    });
    payouts_devnet::validate::sign(tx, signer)
}

async fn send_final(world: &World, tx: SignedTransaction) {
    let client = JsonRpcClient::connect(world.devnet.rpc_url());
    client
        .call(methods::send_tx::RpcSendTransactionRequest {
            signed_transaction: tx,
            wait_until: TxExecutionStatus::Final,
        })
        .await
        .unwrap();
}

/// Waits (deadline) until the store holds an open incident matching `want`.
async fn wait_incident(world: &World, what: &str, want: impl Fn(&Incident) -> bool) -> Incident {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = world.db.conn().await;
        let open = list_incidents(&mut conn, true, 100).await.unwrap();
        if let Some(i) = open.into_iter().find(&want) {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no incident: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (deadline) until a distributor reports a pause reason containing `needle`.
async fn wait_paused(world: &World, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut conn = world.db.conn().await;
        let reasons: Vec<String> = list_status(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|d| d.paused_reason)
            .collect();
        if let Some(r) = reasons.into_iter().find(|r| r.contains(needle)) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "distributor never paused on {needle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// While paused: `id` is still `pending`, and paid no more than `paid_before` times, after the chain moved
/// on by `blocks` indexed blocks.
async fn assert_stays_pending(world: &World, id: ClaimId, blocks: u64, paid_before: usize) {
    let target = world.devnet.final_height() + blocks;
    world
        .devnet
        .wait_for_height(target, Duration::from_secs(30))
        .await;
    let mut conn = world.db.conn().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while payouts_store::cursor::read_cursor(&mut conn, "main")
        .await
        .unwrap()
        .map_or(0, |c| c.block_height)
        < target
    {
        assert!(tokio::time::Instant::now() < deadline, "indexer stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = get_claim(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(c.status, ClaimStatus::Pending, "{c:?}");
    let paid = world.transfers_per_claim().get(&id).map_or(0, Vec::len);
    assert_eq!(
        paid, paid_before,
        "claim {id:?} was paid while its token was paused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_transfer_with_a_claim_memo_pauses_the_token_until_cleared() {
    let world = World::start(|_| {}).await;
    let rx = Receiver::start(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.as_bytes(),
        Mode::Accept,
    )
    .await
    .unwrap();
    std::env::set_var("WH_INCIDENT_TEST", SECRET);
    let cfg = WebhooksConfig {
        endpoints: vec![EndpointConfig {
            name: "ops".into(),
            url: rx.url(),
            secret_env: "WH_INCIDENT_TEST".into(),
            events: vec![EventType::IncidentOpened],
            max_in_flight: 1,
        }],
        poll_interval_ms: 20,
        ..WebhooksConfig::default()
    };
    let worker =
        Webhooks::new(world.pool.clone(), cfg, Arc::new(WebhookMetrics::default())).unwrap();
    let wh_stop = CancellationToken::new();
    let wh_task = tokio::spawn(worker.run(wh_stop.clone()));

    // A claim paid to user-0, who now holds tokens.
    let payer = registered_user(0);
    let paid = world.claims("first", &[(payer.clone(), 1_000)]).await[0];
    let d = world.spawn(world.config(0..2)).await;
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&1), "{counts:?}");

    // user-0 pays someone else with that claim's memo: a payment in our name that we did not make.
    let user: AccountId = payer.parse().unwrap();
    let signer = world.devnet.signer(&user, 0).unwrap();
    let to = registered_user(1);
    let foreign = ft_transfer(&world, &signer, &to, 10, &transfer_memo(paid, None)).await;
    send_final(&world, foreign).await;
    let incident = wait_incident(&world, "foreign memo payment", |i| {
        i.kind == IncidentKind::UnexpectedMemoPayment
    })
    .await;
    assert_eq!(incident.claim_id, Some(paid.0));
    assert_eq!(incident.token_contract.as_deref(), Some("token.devnet"));
    assert_eq!(incident.tx_hash, None, "not signed by a treasury key");
    assert_eq!(
        memo_details(&incident),
        Some((payer.clone(), to.clone(), payouts_store::Yocto(10)))
    );

    // Sent as a webhook.
    let got = rx
        .wait_until(Duration::from_secs(30), |r| {
            r.iter().any(|r| r.body["type"] == "incident.opened")
        })
        .await;
    assert!(got, "no incident.opened webhook");
    let hook = rx
        .accepted()
        .into_iter()
        .find(|r| r.body["type"] == "incident.opened")
        .unwrap();
    assert!(hook.verified);
    assert_eq!(hook.body["data"]["incident"]["id"], incident.id);
    assert_eq!(hook.body["data"]["incident"]["claim_id"], paid.0);
    assert_eq!(
        hook.body["data"]["incident"]["kind"],
        "unexpected_memo_payment"
    );

    // Fail closed: a new claim of the token is not signed while the incident is open.
    let next = world.claims("after", &[(registered_user(2), 77)]).await[0];
    let reason = wait_paused(&world, "incident").await;
    assert!(
        reason.contains(&format!("incident {}", incident.id)),
        "{reason}"
    );
    assert_stays_pending(&world, next, 6, 0).await;

    // An admin clears it: payouts resume, and the new claim is paid once.
    let mut conn = world.db.conn().await;
    assert!(matches!(
        clear_incident(&mut conn, incident.id, "test-admin")
            .await
            .unwrap(),
        Clearing::Cleared(_)
    ));
    drop(conn);
    let counts = world.wait_settled(Duration::from_secs(60)).await;
    assert_eq!(counts.get(&ClaimStatus::Confirmed), Some(&2), "{counts:?}");
    let transfers = world.transfers_per_claim();
    assert_eq!(transfers[&next], vec![(registered_user(2), 77)]);
    // The first claim: our payment, and the foreign one that raised the incident.
    assert_eq!(transfers[&paid], vec![(payer.clone(), 1_000), (to, 10)]);
    // Nothing else came up: our own payments raise no incident.
    let all = list_incidents(&mut world.db.conn().await, false, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");

    d.shutdown().await;
    wh_stop.cancel();
    wh_task.await.unwrap().unwrap();
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_declared_dead_that_lands_is_an_incident() {
    let world = World::start(|_| {}).await;
    // A treasury key of the pool; no distributor runs, so the test plays its part by hand.
    let treasury = world.devnet.treasury().clone();
    let signer = world.devnet.signer(&treasury, 7).unwrap();
    let mut conn = world.db.conn().await;
    register_keys(
        &mut conn,
        treasury.as_str(),
        &[signer.public_key().to_string()],
    )
    .await
    .unwrap();
    let id = world.claims("dead", &[(registered_user(3), 55)]).await[0];
    let tx = ft_transfer(
        &world,
        &signer,
        &registered_user(3),
        55,
        &transfer_memo(id, None),
    )
    .await;
    let hash = tx.get_hash().to_string();
    conn.transaction(async |c| {
        assert_eq!(lock_pending(c, "token.devnet", 1).await?.len(), 1);
        insert_tx(
            c,
            &NewTx {
                hash: hash.clone(),
                signer_id: treasury.to_string(),
                public_key: signer.public_key().to_string(),
                nonce: i64::try_from(tx.transaction.nonce()).unwrap(),
                block_hash: tx.transaction.block_hash().to_string(),
                signed_bytes: borsh::to_vec(&tx).unwrap(),
                token_contract: "token.devnet".into(),
                claim_ids: vec![id.0],
                amount: None,
                spend_day: None,
                gas_per_action: None,
                action_count: None,
            },
        )
        .await?;
        update_claims(
            c,
            &[id],
            ClaimStatus::Pending,
            ClaimUpdate::Submit { tx_hash: &hash },
        )
        .await?;
        Ok::<_, payouts_store::StoreError>(())
    })
    .await
    .unwrap();
    // Declared dead (wrongly), then it lands.
    assert_eq!(
        bury(&mut conn, &hash, "test: wrongly declared dead")
            .await
            .unwrap(),
        1
    );
    drop(conn);
    send_final(&world, tx).await;

    let landed = wait_incident(&world, "dead transaction landed", |i| {
        i.kind == IncidentKind::DeadTransactionLanded
    })
    .await;
    assert_eq!(landed.tx_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(landed.public_key, Some(signer.public_key().to_string()));
    assert_eq!(landed.details["claim_ids"], serde_json::json!([id.0]));
    // Its transfer carries the claim's memo but is no live transaction's: a memo incident too, which
    // names the treasury-key transaction that made it.
    let memo = wait_incident(&world, "memo of a dead transaction", |i| {
        i.kind == IncidentKind::UnexpectedMemoPayment
    })
    .await;
    assert_eq!(memo.claim_id, Some(id.0));
    assert_eq!(memo.tx_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(memo.details["signed_by_treasury_key"], true);

    // The claim went back to pending with the burial; a distributor now signs nothing for the token.
    let d = world.spawn(world.config(0..1)).await;
    wait_paused(&world, "incident").await;
    // Paid once, by the dead transaction, and not again.
    assert_stays_pending(&world, id, 6, 1).await;
    d.shutdown().await;
    world.stop().await;
}
