//! The webhook outbox triggers: one row per (event, interested endpoint), written with the change itself.

use diesel_async::RunQueryDsl;
use payouts_store::claims::{get_claim, insert_claims, lock_pending, update_claims, ClaimUpdate};
use payouts_store::reconcile::{open_txs_by_receipt, record_inclusion, settle, Settlement};
use payouts_store::status::{report_heartbeat, report_started};
use payouts_store::testdb::TestDb;
use payouts_store::webhooks::{
    endpoint_summaries, lease_endpoint, list_dead, mark_delivered, mark_failed, pending_deliveries,
    redeliver, sync_endpoints, Delivery, EndpointSpec, Redelivery,
};
use payouts_store::{AsyncConnection, AsyncPgConnection, ClaimId, ClaimStatus, StoreError};

use crate::support::{event_claim, stored_tx};

fn spec(name: &str, events: &[&str]) -> EndpointSpec {
    EndpointSpec {
        name: name.into(),
        url: format!("http://127.0.0.1:9/{name}"),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

const ALL: [&str; 5] = [
    "claim.created",
    "claim.submitted",
    "claim.confirmed",
    "claim.failed",
    "distributor.paused",
];

async fn pending(conn: &mut AsyncPgConnection, endpoint: &str) -> Vec<Delivery> {
    pending_deliveries(conn, endpoint, 10_000).await.unwrap()
}

fn kinds(ds: &[Delivery]) -> Vec<(String, Option<i64>)> {
    ds.iter()
        .map(|d| (d.event_type.clone(), d.claim_id))
        .collect()
}

#[tokio::test]
async fn without_endpoints_nothing_is_written() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    insert_claims(&mut conn, &[event_claim("r", 0, "alice.devnet", 5)])
        .await
        .unwrap();
    sync_endpoints(&mut conn, &[spec("late", &ALL)])
        .await
        .unwrap();
    assert!(pending(&mut conn, "late").await.is_empty());
}

#[tokio::test]
async fn a_claim_lifecycle_notifies_each_endpoint_of_what_it_asked_for() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    sync_endpoints(
        &mut conn,
        &[
            spec("all", &ALL),
            spec("final", &["claim.confirmed", "claim.failed"]),
        ],
    )
    .await
    .unwrap();
    let rows: Vec<_> = (0..3)
        .map(|i| event_claim("r", i, "alice.devnet", 5 + u128::from(i)))
        .collect();
    insert_claims(&mut conn, &rows).await.unwrap();
    // The same rows again (a replay): no claim, no event.
    insert_claims(&mut conn, &rows).await.unwrap();
    let ids: Vec<ClaimId> = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 3).await)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    stored_tx(&mut conn, "tx1", 1, ids[..2].iter().map(|i| i.0).collect()).await;
    update_claims(
        &mut conn,
        &ids[..2],
        ClaimStatus::Pending,
        ClaimUpdate::Submit { tx_hash: "tx1" },
    )
    .await
    .unwrap();
    assert!(record_inclusion(&mut conn, "tx1", 42, "rc1").await.unwrap());
    let tx = open_txs_by_receipt(&mut conn, &["rc1".into()])
        .await
        .unwrap()
        .remove(0);
    settle(&mut conn, &tx, Settlement::Success).await.unwrap();
    update_claims(
        &mut conn,
        &ids[2..],
        ClaimStatus::Pending,
        ClaimUpdate::Fail {
            error: "receiver not registered",
        },
    )
    .await
    .unwrap();
    // A change that rolls back leaves no notification.
    let rolled: Result<(), StoreError> = conn
        .transaction(async |c| {
            update_claims(
                c,
                &ids[..1],
                ClaimStatus::Confirmed,
                ClaimUpdate::Fail { error: "x" },
            )
            .await
            .map(|_| ())
        })
        .await;
    assert!(rolled.is_err());

    let (a, b, c) = (Some(ids[0].0), Some(ids[1].0), Some(ids[2].0));
    let all = pending(&mut conn, "all").await;
    assert_eq!(
        kinds(&all),
        [
            ("claim.created".to_string(), a),
            ("claim.created".into(), b),
            ("claim.created".into(), c),
            ("claim.submitted".into(), a),
            ("claim.submitted".into(), b),
            ("claim.confirmed".into(), a),
            ("claim.confirmed".into(), b),
            ("claim.failed".into(), c),
        ]
    );
    let fin = pending(&mut conn, "final").await;
    assert_eq!(
        kinds(&fin),
        [
            ("claim.confirmed".to_string(), a),
            ("claim.confirmed".into(), b),
            ("claim.failed".into(), c),
        ]
    );
    // Both endpoints share an event's id; every event has its own.
    assert_eq!(all[5].event_id, fin[0].event_id);
    let mut unique: Vec<_> = all.iter().map(|d| d.event_id).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len());

    // The payload is the claim as it was at that moment, with the transaction and its block.
    let confirmed = get_claim(&mut conn, ids[0]).await.unwrap().unwrap();
    let p = &all[5].payload;
    assert_eq!(p["claim"]["id"], ids[0].0);
    assert_eq!(p["claim"]["status"], "confirmed");
    assert_eq!(p["claim"]["amount"], confirmed.amount.0.to_string());
    assert_eq!(p["claim"]["receiver_id"], "alice.devnet");
    assert_eq!(p["claim"]["token"], "token.devnet");
    assert_eq!(p["transaction_hash"], "tx1");
    assert_eq!(p["block_height"], 42);
    assert_eq!(all[0].payload["claim"]["status"], "pending");
    assert_eq!(all[0].payload["block_height"], 7, "the event's block");
    assert_eq!(
        all[7].payload["claim"]["last_error"],
        "receiver not registered"
    );
}

#[tokio::test]
async fn a_pause_is_one_event_until_the_reason_changes() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    sync_endpoints(&mut conn, &[spec("ops", &["distributor.paused"])])
        .await
        .unwrap();
    report_started(&mut conn, "d1").await.unwrap();
    for reason in [
        None,
        Some("balance low"),
        Some("balance low"),
        None,
        Some("rpc down"),
    ] {
        report_heartbeat(&mut conn, "d1", reason).await.unwrap();
    }
    let got = pending(&mut conn, "ops").await;
    let reasons: Vec<_> = got
        .iter()
        .map(|d| d.payload["distributor"]["paused_reason"].clone())
        .collect();
    assert_eq!(reasons, ["balance low", "rpc down"]);
    assert!(got
        .iter()
        .all(|d| d.payload["distributor"]["owner"] == "d1"));
}

#[tokio::test]
async fn deliveries_go_dead_and_come_back_on_redelivery() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    sync_endpoints(&mut conn, &[spec("hook", &["claim.created"])])
        .await
        .unwrap();
    let rows: Vec<_> = (0..3)
        .map(|i| event_claim("r", i, "alice.devnet", 5))
        .collect();
    insert_claims(&mut conn, &rows).await.unwrap();
    let ds = pending(&mut conn, "hook").await;
    assert!(lease_endpoint(&mut conn, "hook", "w1", 10_000)
        .await
        .unwrap());
    assert!(!lease_endpoint(&mut conn, "hook", "w2", 10_000)
        .await
        .unwrap());
    assert!(lease_endpoint(&mut conn, "hook", "w1", 10_000)
        .await
        .unwrap());

    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    mark_failed(&mut conn, ds[0].id, "HTTP 500", Some(500), Some(later))
        .await
        .unwrap();
    let head = &pending(&mut conn, "hook").await[0];
    assert_eq!((head.id, head.attempts), (ds[0].id, 1));
    assert_eq!(head.last_http_status, Some(500));
    mark_failed(&mut conn, ds[0].id, "timed out", None, None)
        .await
        .unwrap();
    assert_eq!(
        mark_delivered(&mut conn, "hook", &[ds[1].id, ds[2].id])
            .await
            .unwrap(),
        2
    );
    assert!(pending(&mut conn, "hook").await.is_empty());
    let dead = list_dead(&mut conn, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("timed out"));
    let summary = endpoint_summaries(&mut conn).await.unwrap();
    assert_eq!(
        (
            summary[0].pending,
            summary[0].dead,
            summary[0].delivered_total
        ),
        (0, 1, 2)
    );

    let Redelivery::Queued(again) = redeliver(&mut conn, ds[0].id).await.unwrap() else {
        panic!("not queued");
    };
    assert_eq!((again.status.as_str(), again.attempts), ("pending", 0));
    assert!(matches!(
        redeliver(&mut conn, ds[0].id).await.unwrap(),
        Redelivery::AlreadyPending(_)
    ));
    assert_eq!(
        redeliver(&mut conn, 999_999).await.unwrap(),
        Redelivery::NotFound
    );
    assert_eq!(pending(&mut conn, "hook").await[0].event_id, ds[0].event_id);
    // An endpoint dropped from the configuration gets no new rows.
    sync_endpoints(&mut conn, &[]).await.unwrap();
    insert_claims(&mut conn, &[event_claim("r", 9, "alice.devnet", 5)])
        .await
        .unwrap();
    assert_eq!(pending(&mut conn, "hook").await.len(), 1);
    let n: usize = diesel::sql_query("SELECT 1 FROM webhook_deliveries")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 3);
}
