//! Incidents (store/src/incidents.rs): what counts as an unexpected payment, idempotence under replay,
//! what pauses which token, clearing, and the `incident.opened` webhook row.

use payouts_store::claims::{insert_claims, lock_pending, update_claims, ClaimUpdate};
use payouts_store::incidents::{
    clear_incident, detect_dead_landed, detect_memo_payments, list_incidents, open_counts,
    open_for_token, record_nonce_ahead, Clearing, MemoSighting,
};
use payouts_store::key_txs::{record_key_txs, KeyTx};
use payouts_store::keys::register_keys;
use payouts_store::reconcile::record_inclusion;
use payouts_store::testdb::TestDb;
use payouts_store::transactions::bury;
use payouts_store::webhooks::{pending_deliveries, sync_endpoints, EndpointSpec};
use payouts_store::{
    AsyncConnection, AsyncPgConnection, ClaimId, ClaimStatus, IncidentKind, Yocto,
};

use crate::support::{event_claim, stored_tx};

/// Claim `log` submitted in stored transaction `hash`.
async fn submitted(conn: &mut AsyncPgConnection, hash: &str, log: u32) -> ClaimId {
    insert_claims(conn, &[event_claim("r", log, "alice.devnet", 5)])
        .await
        .unwrap();
    let id = conn
        .transaction(async |c| lock_pending(c, "token.devnet", 1).await)
        .await
        .unwrap()[0]
        .id;
    stored_tx(conn, hash, i64::from(log) + 1, vec![id.0]).await;
    update_claims(
        conn,
        &[id],
        ClaimStatus::Pending,
        ClaimUpdate::Submit { tx_hash: hash },
    )
    .await
    .unwrap();
    id
}

fn sighting(id: ClaimId, from: &str, receipt: &str) -> MemoSighting<'static> {
    let from: &'static str = Box::leak(from.to_string().into_boxed_str());
    MemoSighting {
        claim_id: id,
        token: "token.devnet",
        from,
        to: "alice.devnet",
        amount: Yocto(5),
        receipt_id: receipt.into(),
        block_height: 42,
    }
}

fn key_tx(hash: &str, receipt: &str) -> KeyTx {
    KeyTx {
        hash: hash.into(),
        signer_id: "treasury.devnet".into(),
        public_key: "ed25519:key".into(),
        nonce: 1,
        block_height: 41,
        block_hash: "b41".into(),
        receipt_id: Some(receipt.into()),
        failure: None,
    }
}

#[tokio::test]
async fn our_own_payment_is_no_incident_however_the_receipt_is_known() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    register_keys(&mut conn, "treasury.devnet", &["ed25519:key".into()])
        .await
        .unwrap();
    // Known through the stored transaction's receipt (the stream saw the inclusion).
    let a = submitted(&mut conn, "tx-a", 0).await;
    record_inclusion(&mut conn, "tx-a", 41, "rc-a")
        .await
        .unwrap();
    // Known only through key_transactions (settled by a `tx` look-up before the stream saw it).
    let b = submitted(&mut conn, "tx-b", 1).await;
    record_key_txs(&mut conn, &[key_tx("tx-b", "rc-b")])
        .await
        .unwrap();
    let ours = [
        sighting(a, "treasury.devnet", "rc-a"),
        sighting(b, "treasury.devnet", "rc-b"),
    ];
    assert_eq!(detect_memo_payments(&mut conn, &ours).await.unwrap(), 0);
    // The same memo in another receipt is a second payment.
    let again = [sighting(a, "treasury.devnet", "rc-other")];
    assert_eq!(detect_memo_payments(&mut conn, &again).await.unwrap(), 1);
    // A receipt of ours that carries another claim does not cover this one.
    let crossed = [sighting(b, "treasury.devnet", "rc-a")];
    assert_eq!(detect_memo_payments(&mut conn, &crossed).await.unwrap(), 1);
}

#[tokio::test]
async fn replaying_the_same_blocks_yields_one_incident_of_each() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    register_keys(&mut conn, "treasury.devnet", &["ed25519:key".into()])
        .await
        .unwrap();
    let id = submitted(&mut conn, "tx-dead", 0).await;
    // Declared dead, then found on chain, paying the claim: two incidents, once each however often the
    // blocks are scanned (the indexer's replay runs the same statements).
    assert_eq!(
        bury(&mut conn, "tx-dead", "test: expired").await.unwrap(),
        1
    );
    let foreign = [sighting(id, "user-0.devnet", "rc-foreign")];
    for pass in 0..3 {
        record_key_txs(&mut conn, &[key_tx("tx-dead", "rc-dead")])
            .await
            .unwrap();
        let dead = detect_dead_landed(&mut conn, &[("tx-dead", Some("rc-dead"), 41)])
            .await
            .unwrap();
        let memo = detect_memo_payments(&mut conn, &[sighting(id, "treasury.devnet", "rc-dead")])
            .await
            .unwrap();
        let other = detect_memo_payments(&mut conn, &foreign).await.unwrap();
        let expected = usize::from(pass == 0);
        assert_eq!(
            (dead, memo, other),
            (expected, expected, expected),
            "pass {pass}"
        );
    }
    let all = list_incidents(&mut conn, false, 100).await.unwrap();
    assert_eq!(all.len(), 3, "{all:#?}");
    let landed = all
        .iter()
        .find(|i| i.kind == IncidentKind::DeadTransactionLanded)
        .unwrap();
    assert_eq!(landed.tx_hash.as_deref(), Some("tx-dead"));
    assert_eq!(landed.token_contract.as_deref(), Some("token.devnet"));
    assert_eq!(landed.details["claim_ids"], serde_json::json!([id.0]));
    let memo = all
        .iter()
        .find(|i| {
            i.kind == IncidentKind::UnexpectedMemoPayment
                && i.receipt_id.as_deref() == Some("rc-dead")
        })
        .unwrap();
    assert_eq!(memo.tx_hash.as_deref(), Some("tx-dead"));
    assert_eq!(memo.claim_id, Some(id.0));
    assert_eq!(memo.details["amount"], "5");
}

#[tokio::test]
async fn a_memo_naming_no_claim_of_that_token_is_noise_unless_the_treasury_sent_it() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    register_keys(&mut conn, "treasury.devnet", &["ed25519:key".into()])
        .await
        .unwrap();
    let id = submitted(&mut conn, "tx-a", 0).await;
    let mut other_token = sighting(id, "user-0.devnet", "rc-1");
    other_token.token = "other.devnet";
    let no_claim = sighting(ClaimId(9_999), "user-0.devnet", "rc-2");
    assert_eq!(
        detect_memo_payments(&mut conn, &[other_token, no_claim])
            .await
            .unwrap(),
        0
    );
    let by_treasury = sighting(ClaimId(9_999), "treasury.devnet", "rc-3");
    assert_eq!(
        detect_memo_payments(&mut conn, &[by_treasury])
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn open_incidents_pause_their_token_or_every_token_until_cleared() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let id = submitted(&mut conn, "tx-a", 0).await;
    assert!(open_for_token(&mut conn, "token.devnet")
        .await
        .unwrap()
        .is_none());
    detect_memo_payments(&mut conn, &[sighting(id, "user-0.devnet", "rc-x")])
        .await
        .unwrap();
    let open = open_for_token(&mut conn, "token.devnet")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.kind, IncidentKind::UnexpectedMemoPayment);
    assert!(open_for_token(&mut conn, "other.devnet")
        .await
        .unwrap()
        .is_none());

    // A key used from outside pauses every token; the same facts found again add nothing.
    assert!(
        record_nonce_ahead(&mut conn, "treasury.devnet", "ed25519:key", 5, 1_005)
            .await
            .unwrap()
    );
    assert!(
        !record_nonce_ahead(&mut conn, "treasury.devnet", "ed25519:key", 5, 1_005)
            .await
            .unwrap()
    );
    let global = open_for_token(&mut conn, "other.devnet")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(global.kind, IncidentKind::NonceAhead);
    assert_eq!(global.token_contract, None);
    let mut counts = open_counts(&mut conn).await.unwrap();
    counts.sort_by_key(|(k, _)| k.as_str());
    assert_eq!(
        counts,
        [
            (IncidentKind::NonceAhead, 1),
            (IncidentKind::UnexpectedMemoPayment, 1)
        ]
    );

    let Clearing::Cleared(c) = clear_incident(&mut conn, open.id, "ops").await.unwrap() else {
        panic!("not cleared");
    };
    assert_eq!(c.cleared_by.as_deref(), Some("ops"));
    assert!(c.cleared_at.is_some());
    assert!(matches!(
        clear_incident(&mut conn, open.id, "ops").await.unwrap(),
        Clearing::AlreadyCleared(_)
    ));
    assert_eq!(
        clear_incident(&mut conn, 12_345, "ops").await.unwrap(),
        Clearing::NotFound
    );
    // The token is still paused by the key incident, then by nothing.
    assert_eq!(
        open_for_token(&mut conn, "token.devnet")
            .await
            .unwrap()
            .map(|i| i.id),
        Some(global.id)
    );
    clear_incident(&mut conn, global.id, "ops").await.unwrap();
    assert!(open_for_token(&mut conn, "token.devnet")
        .await
        .unwrap()
        .is_none());
    // A cleared subject seen again (a replay) stays cleared.
    assert_eq!(
        detect_memo_payments(&mut conn, &[sighting(id, "user-0.devnet", "rc-x")])
            .await
            .unwrap(),
        0
    );
    assert!(open_for_token(&mut conn, "token.devnet")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_new_incident_writes_one_incident_opened_row_per_subscribed_endpoint() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let spec = |name: &str, events: &[&str]| EndpointSpec {
        name: name.into(),
        url: format!("http://127.0.0.1:9/{name}"),
        events: events.iter().map(|e| e.to_string()).collect(),
    };
    sync_endpoints(
        &mut conn,
        &[
            spec("ops", &["incident.opened"]),
            spec("backend", &["claim.confirmed"]),
        ],
    )
    .await
    .unwrap();
    let id = submitted(&mut conn, "tx-a", 0).await;
    for _ in 0..2 {
        detect_memo_payments(&mut conn, &[sighting(id, "user-0.devnet", "rc-x")])
            .await
            .unwrap();
    }
    let ops = pending_deliveries(&mut conn, "ops", 100).await.unwrap();
    assert_eq!(ops.len(), 1, "{ops:#?}");
    assert_eq!(ops[0].event_type, "incident.opened");
    assert_eq!(ops[0].claim_id, Some(id.0));
    let incident = &ops[0].payload["incident"];
    assert_eq!(incident["kind"], "unexpected_memo_payment");
    assert_eq!(incident["token"], "token.devnet");
    assert_eq!(incident["details"]["from"], "user-0.devnet");
    assert!(pending_deliveries(&mut conn, "backend", 100)
        .await
        .unwrap()
        .is_empty());
}
